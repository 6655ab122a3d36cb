//! What a uniklink application depends on.
//!
//! An app is a `#![no_std]` `staticlib` crate that names its entry point with
//! [`entry!`]; uniklink links it with the library OS into a bootable image.
//!
//! ```ignore
//! #![no_std]
//!
//! unik::entry!(main);
//!
//! fn main() {
//!     unik::println!("Hello from uniklink!");
//! }
//! ```
//!
//! Returning from `main` exits with code 0; [`exit`] ends the unikernel with any code.
#![no_std]

pub use unik_rt::exit::{BOOT_FAILURE, EXCEPTION, PANIC, SUCCESS, exit};
pub use unik_rt::{print, println};

/// The kernel command line (`-append`, the manifest's `cmdline`), for apps that read their own
/// words from it.
pub mod cmdline {
    pub use unik_rt::cmdline::command_line;
}

/// The app's arguments and environment (the manifest's `args` and `env`, `cargo uniklink run
/// --arg` and `-e`): `args()`, `var(name)`, `vars()`.
pub mod env {
    pub use unik_rt::env::{VarError, args, var, vars};
}

/// The serial console, for `write!`.
pub mod console {
    pub use unik_rt::console::Console;
}

/// Monotonic time from the calibrated TSC; with the `rtc` feature, wall-clock time
/// (`SystemTime`, read from the machine's real-time clock at boot).
pub mod time {
    pub use core::time::Duration;
    pub use unik_rt::time::{Instant, now};
    #[cfg(feature = "rtc")]
    pub use unik_rtc::{SystemTime, SystemTimeError, UNIX_EPOCH};
}

/// The app's one thread: `sleep` and `yield_now` let the library OS do what arrives from
/// outside meanwhile (the network stack answers ARP, handshakes and ACKs), as nothing else
/// moves it while the app computes.
pub mod thread {
    pub use unik_rt::idle::{sleep, yield_now};
}

/// Random bytes (the `rng` feature) from the CPU's generator or a virtio-rng device; the
/// `getrandom` crate, and so `rand` and `uuid`, draws from the same source.
#[cfg(feature = "rng")]
pub mod random {
    pub use unik_rng::{Error, fill};
}

/// TCP and UDP over virtio-net (the `net` feature): `TcpListener`, `TcpStream` (`connect`
/// for outgoing connections), `UdpSocket`, and `lookup_host` for names through DNS. Blocking
/// calls take a timeout (`None` waits without limit).
#[cfg(feature = "net")]
pub mod net {
    pub use unik_net::{Error, TcpListener, TcpStream, UdpSocket, local_addr, lookup_host};
}

/// Files (the `fs` feature): the read-only files the manifest's `files` bakes into the image,
/// and littlefs volumes on the disks its `volumes` attach, in one tree of absolute paths.
/// `std::fs`-like: `File`, `OpenOptions`, `read`, `write`, `read_dir`, `create_dir_all`,
/// `rename`, ...; `format` makes a file system on a new or damaged volume, `mount` mounts a
/// disk by hand.
#[cfg(feature = "fs")]
pub mod fs {
    pub use unik_fs::{
        DirEntry, Error, File, FileType, Metadata, OpenOptions, Result, SeekFrom, create_dir,
        create_dir_all, format, metadata, mount, mounts, read, read_dir, read_to_string,
        remove_dir, remove_file, rename, write,
    };
}

/// Declares the app's entry point: a path to a `fn()` (or `fn() -> !`) the runtime calls
/// once boot is done, right after printing the `uniklink:ready` marker.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __unik_main() {
            $main()
        }
    };
}
