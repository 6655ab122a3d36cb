//! The generic timer's virtual counter, which the runtime stamps boot with: a fixed-frequency
//! monotonic counter whose frequency the firmware (QEMU) publishes in CNTFRQ_EL0, so nothing
//! needs measuring.

use core::arch::asm;

use unik_platform::clock::TscSource;

#[inline(always)]
pub(crate) fn ticks() -> u64 {
    let ticks: u64;
    // SAFETY: EL1 may always read the virtual counter. The ISB keeps the read from being
    // hoisted above earlier instructions, so an interval never comes out shorter than it was.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack)) };
    ticks
}

/// The counter for the boot timeline's stamps: without `ticks`' ISB, so a stamp may be read
/// as early as the CPU runs ahead of it (nanoseconds on hardware), as x86's `rdtsc` may. Under
/// TCG an ISB ends a block of translated code, which costs more than the phase it measures.
#[inline(always)]
pub(crate) fn stamp_ticks() -> u64 {
    let ticks: u64;
    // SAFETY: EL1 may always read the virtual counter.
    unsafe { asm!("mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack)) };
    ticks
}

pub(crate) fn stated_frequency() -> Option<(u64, TscSource)> {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack)) };
    // Only the low 32 bits are the frequency; the rest is reserved.
    let hz = hz & 0xffff_ffff;
    (hz != 0).then_some((hz, TscSource::GenericTimer))
}
