//! x86_64: PVH boot in 32-bit protected mode, identity paging, 16550 console, TSC clock,
//! isa-debug-exit.

mod boot;
mod counter;
mod exceptions;
mod gdt;
mod paging;
mod pit;
mod port;
mod power;
pub(crate) mod serial;
mod tsc;
mod weave;

pub(crate) use boot::{device_tree, find_command_line, heap_spans, memory_map};
pub(crate) use counter::{stamp_ticks, stated_frequency, ticks};
pub(crate) use power::power_off;
pub(crate) use tsc::frequency as clock_frequency;

/// The caller's frame pointer (rbp): where its frame record is. Always inlined, so that the
/// register is read in the caller's own frame.
#[inline(always)]
pub(crate) fn frame_pointer() -> u64 {
    let fp: u64;
    // SAFETY: reading a register has no side effects.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    fp
}
