//! The TSC and its frequency.

use core::arch::x86_64::{__cpuid, _rdtsc};

use unik_platform::clock::{TscSource, hz_from_base_mhz, hz_from_crystal, hz_from_khz};

use super::pit;

const HYPERVISOR_PRESENT: u32 = 1 << 31;
const HYPERVISOR_BASE: u32 = 0x4000_0000;
const HYPERVISOR_TIMING: u32 = 0x4000_0010;

pub(crate) fn ticks() -> u64 {
    // SAFETY: rdtsc exists on every x86_64 CPU and has no side effects.
    unsafe { _rdtsc() }
}

/// The TSC rate, from the most exact source the platform has: hypervisor and crystal
/// leaves are exact, the PIT is a measurement, the base-frequency leaf only a nominal value.
pub(crate) fn frequency() -> Option<(u64, TscSource)> {
    let max_leaf = __cpuid(0).eax;
    if __cpuid(1).ecx & HYPERVISOR_PRESENT != 0
        && __cpuid(HYPERVISOR_BASE).eax >= HYPERVISOR_TIMING
        && let Some(hz) = hz_from_khz(__cpuid(HYPERVISOR_TIMING).eax)
    {
        return Some((hz, TscSource::HypervisorLeaf));
    }
    if max_leaf >= 0x15 {
        let leaf = __cpuid(0x15);
        if let Some(hz) = hz_from_crystal(leaf.eax, leaf.ebx, leaf.ecx) {
            return Some((hz, TscSource::CpuidCrystal));
        }
    }
    if let Some(hz) = pit::measure_tsc_hz(ticks) {
        return Some((hz, TscSource::Pit));
    }
    if max_leaf >= 0x16 {
        return hz_from_base_mhz(__cpuid(0x16).eax).map(|hz| (hz, TscSource::CpuidBase));
    }
    None
}
