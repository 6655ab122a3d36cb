//! The hand-over from the runtime to the app, and what uniklink's weaving replaces.
//!
//! The runtime calls `uniklink_start`. Its weak default (defined in assembly by the
//! architecture, since Rust has no stable weak linkage) runs every `.init_array` entry, as any
//! linker keeps them all, then hands over to the app through `unik_rt_enter_main`. uniklink
//! links a glue object with a strong `uniklink_start` that runs only the live components'
//! inits, in dependency order, calling `unik_rt_stamp_init` after each for the boot timeline;
//! the default and the registrations then drop out of the image. The glue object also
//! carries a text report of its decisions, printed in verbose mode, the names of the
//! components whose inits it runs, and the platform's boot-timer address.

use core::ptr::addr_of;

use crate::timeline;

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
    static __uniklink_init_names: [u8; 0];
    static __uniklink_init_names_len: u64;
    static __uniklink_boot_timer: u64;
}

/// Runs the component inits and then the app. Inlined: a call costs the emulator as much
/// during boot as a few instructions more.
#[inline(always)]
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
        timeline::stamp_init();
    }
    unik_rt_enter_main();
}

/// Called by the glue object after each init it runs.
#[unsafe(no_mangle)]
extern "C" fn unik_rt_stamp_init() {
    timeline::stamp_init();
}

/// Called by the glue object, or the conventional walk, once the inits have run: the ready
/// marker, then the app's `main`.
#[unsafe(no_mangle)]
extern "C" fn unik_rt_enter_main() {
    crate::start::enter_main();
}

/// The app's `main`.
pub(crate) fn run_main() {
    __unik_main();
}

/// Text the glue object defines as `<symbol>` with its length in `<symbol>_len`; empty when
/// the image was not woven.
fn glue_text(text: *const u8, len: u64) -> &'static str {
    // SAFETY: the glue object defines `len` bytes at `text`, read-only for the whole run; the
    // weak defaults define zero bytes.
    let bytes = unsafe { core::slice::from_raw_parts(text, len as usize) };
    core::str::from_utf8(bytes).unwrap_or("")
}

/// The glue object's report: one line per component and parameter.
pub(crate) fn report() -> &'static str {
    // SAFETY: a `u64` the glue object or the weak default defines.
    glue_text(addr_of!(__uniklink_report).cast(), unsafe {
        __uniklink_report_len
    })
}

/// The components whose inits the glue object runs, in order, separated by spaces.
pub(crate) fn init_names() -> &'static str {
    // SAFETY: a `u64` the glue object or the weak default defines.
    glue_text(addr_of!(__uniklink_init_names).cast(), unsafe {
        __uniklink_init_names_len
    })
}

/// Where the platform's boot timer takes its byte (Firecracker's), or 0 for none.
pub(crate) fn boot_timer() -> u64 {
    // SAFETY: a `u64` the glue object or the weak default defines.
    unsafe { __uniklink_boot_timer }
}
