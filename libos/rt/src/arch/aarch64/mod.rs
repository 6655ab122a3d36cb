//! aarch64 on QEMU's `virt` machine: ELF entry at EL1 with the MMU off, identity mapping
//! with W^X, PL011 console, generic timer clock, semihosting and PSCI exit.

mod boot;
mod counter;
mod exceptions;
mod mmu;
mod power;
pub(crate) mod serial;
mod timer;
mod weave;

pub(crate) use boot::{device_tree, find_command_line, heap_spans, memory_map};
pub(crate) use counter::{stamp_ticks, stated_frequency, ticks};
pub(crate) use power::power_off;
pub(crate) use timer::frequency as clock_frequency;

/// The caller's frame pointer (x29): where its frame record is. Always inlined, so that the
/// register is read in the caller's own frame.
#[inline(always)]
pub(crate) fn frame_pointer() -> u64 {
    let fp: u64;
    // SAFETY: reading a register has no side effects.
    unsafe {
        core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    fp
}
