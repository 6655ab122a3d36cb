//! The hand-over from the runtime to the app, and what uniklink's weaving replaces.
//!
//! The runtime calls `uniklink_start`. Its weak default (defined in assembly by the
//! architecture, since Rust has no stable weak linkage) runs every `.init_array` entry, as any
//! linker keeps them all, then the app's `__unik_main`. uniklink links a glue object with a
//! strong `uniklink_start` that runs only the live components' inits, in dependency order;
//! the default and the registrations then drop out of the image. The glue object also
//! carries a text report of its decisions, printed in verbose mode.

use core::ptr::addr_of;

unsafe extern "Rust" {
    /// Defined by the app through `unik::entry!`.
    safe fn __unik_main();
}

unsafe extern "C" {
    fn uniklink_start();
    static __init_array_start: [extern "C" fn(); 0];
    static __init_array_end: [extern "C" fn(); 0];
    /// Weak empty defaults in the architecture's assembly; the glue object's when woven.
    static __uniklink_report: [u8; 0];
    static __uniklink_report_len: u64;
}

/// Runs the component inits and then the app.
pub(crate) fn start() {
    // SAFETY: `uniklink_start` is the weak default below or the glue object's routine; both
    // take no arguments and return after the app's main returns.
    unsafe { uniklink_start() }
}

/// The weak `uniklink_start`'s body: the conventional init-array walk.
#[unsafe(no_mangle)]
extern "C" fn unik_rt_conventional_start() {
    let mut entry = addr_of!(__init_array_start).cast::<extern "C" fn()>();
    let end = addr_of!(__init_array_end).cast::<extern "C" fn()>();
    while entry < end {
        // SAFETY: the linker fills `__init_array_start..__init_array_end` with function
        // pointers, one per registration.
        unsafe {
            (*entry)();
            entry = entry.add(1);
        }
    }
    __unik_main();
}

/// The glue object's report: one line per component and parameter; empty when the image was
/// not woven.
pub(crate) fn report() -> &'static str {
    // SAFETY: the glue object defines `__uniklink_report_len` bytes at `__uniklink_report`,
    // read-only for the whole run; the weak defaults define zero bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            addr_of!(__uniklink_report).cast::<u8>(),
            __uniklink_report_len as usize,
        )
    };
    core::str::from_utf8(bytes).unwrap_or("")
}
