//! Backtraces for the panic and exception reports: the return addresses of the frames on the
//! boot stack, found by walking the frame records that `cargo uniklink build` has every
//! function keep (`-C force-frame-pointers=yes`): at the frame pointer (rbp, x29) the caller's
//! frame pointer, above it the return address. Nothing is allocated and nothing is read
//! outside the stack, so a frame pointer that a function built without frame records (core's,
//! precompiled) left holding something else ends the walk instead of faulting.
//!
//! One line, which `cargo uniklink run` symbolizes against the image: the interrupted
//! instruction first for an exception (`pc=`), then return addresses, innermost first:
//! `uniklink:backtrace pc=0x101a2c 0x1015b4 0x105234`.

use crate::{print, println};

/// Frames past this many are left out: a runaway recursion repeats itself.
const MAX_FRAMES: usize = 48;

/// Prints `pc` (the faulting instruction, for an exception) and then the return address of
/// each frame from the frame pointer `fp` up.
pub(crate) fn print(pc: Option<u64>, fp: u64) {
    print!("uniklink:backtrace");
    if let Some(pc) = pc {
        print!(" pc={pc:#x}");
    }
    for return_address in frames(fp) {
        print!(" {return_address:#x}");
    }
    println!();
}

/// The return addresses of the frame records from `fp` up, while each lies on the stack above
/// its guard page, above the one before.
fn frames(mut fp: u64) -> impl Iterator<Item = u64> {
    let stack = crate::stack::range();
    let lowest = crate::stack::guard_page().end;
    // A record is two words; the last one must end inside the stack.
    let valid = move |fp: u64| fp.is_multiple_of(8) && fp >= lowest && fp + 16 <= stack.end;
    let mut count = 0;
    core::iter::from_fn(move || {
        if count == MAX_FRAMES || !valid(fp) {
            return None;
        }
        // SAFETY: `fp` is 8-aligned and its two words lie on the boot stack, mapped and
        // readable for the image's whole life.
        let (caller_fp, return_address) = unsafe {
            (
                core::ptr::read_volatile(fp as *const u64),
                core::ptr::read_volatile((fp + 8) as *const u64),
            )
        };
        if return_address == 0 {
            return None;
        }
        count += 1;
        // Callers' frames lie higher; anything else is not a frame record.
        fp = if caller_fp > fp { caller_fp } else { 0 };
        Some(return_address)
    })
}
