//! The TSC, which the runtime stamps boot with, and its frequency as the CPU or the
//! hypervisor states it: CPUID 0x15 and 0x16, the hypervisor timing leaf 0x40000010, KVM's
//! paravirtual clock, then the command line's `uniklink.tsc_hz=` (which `cargo uniklink run`
//! gives QEMU's TCG, whose CPU states none). None of these measures anything, so boot never
//! waits on a clock; where none answers, the clock component measures the TSC against the PIT
//! the first time the app reads the clock.

use core::arch::asm;
use core::arch::x86_64::{__cpuid, _rdtsc};
use core::ptr::{addr_of, read_volatile};

use unik_platform::clock::{
    TscSource, hz_from_base_mhz, hz_from_crystal, hz_from_khz, hz_from_pvclock,
};
use unik_platform::cmdline::tsc_hz;

const HYPERVISOR_PRESENT: u32 = 1 << 31;
const HYPERVISOR_BASE: u32 = 0x4000_0000;
const HYPERVISOR_TIMING: u32 = 0x4000_0010;
/// Where KVM's leaves start: 0x40000000, or 0x40000100 when Hyper-V's come first.
const KVM_BASES: [u32; 2] = [HYPERVISOR_BASE, HYPERVISOR_BASE + 0x100];
const KVM_SIGNATURE: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];
const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
const MSR_ENABLE: u64 = 1;
/// A structure still unwritten or mid-update after this many reads is given up on.
const MAX_PVCLOCK_READS: u32 = 1000;

#[inline(always)]
pub(crate) fn ticks() -> u64 {
    // SAFETY: rdtsc exists on every x86_64 CPU and has no side effects.
    unsafe { _rdtsc() }
}

/// The counter for the boot timeline's stamps: the TSC as [`ticks`] reads it.
#[inline(always)]
pub(crate) fn stamp_ticks() -> u64 {
    ticks()
}

/// The TSC rate the platform states, in the order of the first source that answers.
pub(crate) fn stated_frequency() -> Option<(u64, TscSource)> {
    cpu_frequency()
        .or_else(|| tsc_hz(crate::cmdline::command_line()).map(|hz| (hz, TscSource::CommandLine)))
}

/// The TSC rate the CPU or the hypervisor states through CPUID or KVM's clock.
fn cpu_frequency() -> Option<(u64, TscSource)> {
    let max_leaf = __cpuid(0).eax;
    if max_leaf >= 0x15 {
        let leaf = __cpuid(0x15);
        if let Some(hz) = hz_from_crystal(leaf.eax, leaf.ebx, leaf.ecx) {
            return Some((hz, TscSource::CpuidCrystal));
        }
    }
    if max_leaf >= 0x16
        && let Some(hz) = hz_from_base_mhz(__cpuid(0x16).eax)
    {
        return Some((hz, TscSource::CpuidBase));
    }
    if __cpuid(1).ecx & HYPERVISOR_PRESENT == 0 {
        return None;
    }
    if __cpuid(HYPERVISOR_BASE).eax >= HYPERVISOR_TIMING
        && let Some(hz) = hz_from_khz(__cpuid(HYPERVISOR_TIMING).eax)
    {
        return Some((hz, TscSource::HypervisorLeaf));
    }
    pvclock_frequency().map(|hz| (hz, TscSource::KvmPvclock))
}

/// KVM's `pvclock_vcpu_time_info`: the hypervisor writes it where the guest asks.
#[repr(C, align(32))]
struct PvclockTimeInfo {
    version: u32,
    _pad0: u32,
    _tsc_timestamp: u64,
    _system_time: u64,
    tsc_to_system_mul: u32,
    tsc_shift: i8,
    _flags: u8,
    _pad: [u8; 2],
}

static mut PVCLOCK: PvclockTimeInfo = PvclockTimeInfo {
    version: 0,
    _pad0: 0,
    _tsc_timestamp: 0,
    _system_time: 0,
    tsc_to_system_mul: 0,
    tsc_shift: 0,
    _flags: 0,
    _pad: [0; 2],
};

/// The TSC rate behind KVM's clock scale: the hypervisor fills the structure when the guest
/// registers it, and stops updating it when the guest unregisters it right after.
fn pvclock_frequency() -> Option<u64> {
    let base = KVM_BASES.into_iter().find(|&base| {
        let leaf = __cpuid(base);
        [leaf.ebx, leaf.ecx, leaf.edx] == KVM_SIGNATURE
    })?;
    if __cpuid(base + 1).eax & KVM_FEATURE_CLOCKSOURCE2 == 0 {
        return None;
    }
    let info = &raw const PVCLOCK;
    // SAFETY: KVM announced the MSR (KVM_FEATURE_CLOCKSOURCE2); the structure is a static the
    // runtime owns, identity-mapped, 32-byte aligned so it does not cross a page, and nothing
    // else reads it. The hypervisor writes it before the guest runs again after the `wrmsr`.
    let scale = unsafe {
        write_msr(MSR_KVM_SYSTEM_TIME_NEW, info as u64 | MSR_ENABLE);
        let scale = (0..MAX_PVCLOCK_READS).find_map(|_| {
            let version = read_volatile(addr_of!((*info).version));
            let mul = read_volatile(addr_of!((*info).tsc_to_system_mul));
            let shift = read_volatile(addr_of!((*info).tsc_shift));
            // An odd version is an update in progress; 0 means never written.
            let settled = version != 0
                && version.is_multiple_of(2)
                && version == read_volatile(addr_of!((*info).version));
            settled.then_some((mul, shift))
        });
        write_msr(MSR_KVM_SYSTEM_TIME_NEW, 0);
        scale
    };
    let (mul, shift) = scale?;
    hz_from_pvclock(mul, shift)
}

/// # Safety
/// `msr` must exist and `value` be valid for it.
unsafe fn write_msr(msr: u32, value: u64) {
    // SAFETY: the caller's guarantee.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags),
        );
    }
}
