//! The kernel command line, kept for components that read their own words from it (the net
//! component finds virtio-mmio devices there). It stays where the loader put it, below the
//! image, which the heap never uses.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static START: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static LEN: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn set(line: &'static [u8]) {
    START.store(line.as_ptr().cast_mut(), Ordering::Relaxed);
    LEN.store(line.len(), Ordering::Relaxed);
}

/// The whole command line (`-append`), without its NUL terminator; empty if there is none.
pub fn command_line() -> &'static [u8] {
    let start = START.load(Ordering::Relaxed);
    if start.is_null() {
        return &[];
    }
    // SAFETY: `set` stored a `'static` slice's pointer and length.
    unsafe { core::slice::from_raw_parts(start, LEN.load(Ordering::Relaxed)) }
}
