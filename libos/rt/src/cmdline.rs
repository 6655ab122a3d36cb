//! The kernel command line, kept for the runtime's own words (`uniklink.verbose`,
//! `uniklink.timeline`) and for components that read theirs from it (the net component finds
//! virtio-mmio devices there). It stays where the loader put it, which the heap never uses,
//! and is found at its first read rather than during boot (x86_64: the NUL terminator after
//! the start info's pointer; aarch64: the device tree's `/chosen/bootargs`).

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::arch;

static START: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static LEN: AtomicUsize = AtomicUsize::new(0);

/// The whole command line (`-append`), without its NUL terminator; empty if there is none.
pub fn command_line() -> &'static [u8] {
    let start = START.load(Ordering::Relaxed);
    if start.is_null() {
        let line = arch::find_command_line();
        START.store(line.as_ptr().cast_mut(), Ordering::Relaxed);
        LEN.store(line.len(), Ordering::Relaxed);
        return line;
    }
    // SAFETY: the pointer and length of a `'static` slice, stored above.
    unsafe { core::slice::from_raw_parts(start, LEN.load(Ordering::Relaxed)) }
}
