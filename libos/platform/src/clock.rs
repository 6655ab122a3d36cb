//! Turning TSC ticks into nanoseconds, and the arithmetic of each way to learn the TSC rate.

use core::fmt;

/// Input clock of the 8254 PIT.
pub const PIT_HZ: u64 = 1_193_182;

/// Where the TSC frequency came from; printed in verbose mode so a wrong clock can be traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID 0x15: crystal frequency times the TSC/crystal ratio.
    CpuidCrystal,
    /// CPUID 0x16 base frequency, which the TSC runs at on the CPUs that have the leaf.
    CpuidBase,
    /// Hypervisor timing leaf 0x40000010 (TSC kHz).
    HypervisorLeaf,
    /// KVM's paravirtual clock: the TSC-to-nanoseconds scale the hypervisor keeps for the
    /// guest.
    KvmPvclock,
    /// The command line's `uniklink.tsc_hz=`, from the virtual machine monitor.
    CommandLine,
    /// Measured against PIT channel 0.
    Pit,
    /// aarch64: the generic timer's frequency register CNTFRQ_EL0, set by the firmware.
    GenericTimer,
}

impl fmt::Display for TscSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TscSource::CpuidCrystal => "cpuid-0x15",
            TscSource::CpuidBase => "cpuid-0x16",
            TscSource::HypervisorLeaf => "cpuid-0x40000010",
            TscSource::KvmPvclock => "kvm-pvclock",
            TscSource::CommandLine => "uniklink.tsc_hz",
            TscSource::Pit => "pit",
            TscSource::GenericTimer => "cntfrq_el0",
        })
    }
}

/// CPUID leaf 0x15: eax = ratio denominator, ebx = numerator, ecx = crystal Hz. Any zero
/// means the leaf does not enumerate the frequency.
pub fn hz_from_crystal(denominator: u32, numerator: u32, crystal_hz: u32) -> Option<u64> {
    if denominator == 0 || numerator == 0 || crystal_hz == 0 {
        return None;
    }
    Some(u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator))
}

/// CPUID leaf 0x16 eax: processor base frequency in MHz (low 16 bits).
pub fn hz_from_base_mhz(eax: u32) -> Option<u64> {
    let mhz = u64::from(eax & 0xffff);
    (mhz != 0).then_some(mhz * 1_000_000)
}

/// Hypervisor timing leaf 0x40000010 eax: TSC frequency in kHz.
pub fn hz_from_khz(khz: u32) -> Option<u64> {
    (khz != 0).then_some(u64::from(khz) * 1000)
}

/// TSC rate from KVM's `pvclock_vcpu_time_info`, whose `tsc_to_system_mul` and `tsc_shift`
/// turn TSC ticks into nanoseconds as `ns = (ticks << shift) * mul >> 32` (a right shift for a
/// negative `shift`).
pub fn hz_from_pvclock(mul: u32, shift: i8) -> Option<u64> {
    if mul == 0 || !(-32..=32).contains(&shift) {
        return None;
    }
    let mut scaled = 1_000_000_000u128 << 32;
    if shift < 0 {
        scaled <<= shift.unsigned_abs();
    }
    let mut hz = scaled / u128::from(mul);
    if shift > 0 {
        hz >>= shift;
    }
    u64::try_from(hz).ok().filter(|&hz| hz != 0)
}

/// TSC rate from `tsc_ticks` elapsed while a reference clock of `reference_hz` advanced
/// `reference_ticks`.
pub fn hz_from_reference(tsc_ticks: u64, reference_ticks: u64, reference_hz: u64) -> Option<u64> {
    if reference_ticks == 0 || tsc_ticks == 0 {
        return None;
    }
    let hz = u128::from(tsc_ticks) * u128::from(reference_hz) / u128::from(reference_ticks);
    u64::try_from(hz).ok().filter(|&hz| hz != 0)
}

/// PIT ticks in `micros` microseconds, as a 16-bit channel reload value.
pub fn pit_ticks_for_micros(micros: u32) -> Option<u16> {
    let ticks = PIT_HZ * u64::from(micros) / 1_000_000;
    u16::try_from(ticks).ok().filter(|&t| t != 0)
}

/// `ns = ticks * mult >> 32`: a multiply and shift instead of a 128-bit division per read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscScale {
    mult: u64,
}

impl TscScale {
    const SHIFT: u32 = 32;

    /// `None` for 0 Hz. Any rate of at least 1 Hz fits: 10^9 << 32 < 2^64.
    pub const fn from_hz(hz: u64) -> Option<Self> {
        if hz == 0 {
            return None;
        }
        Some(TscScale {
            mult: (1_000_000_000u64 << Self::SHIFT) / hz,
        })
    }

    pub const fn mult(&self) -> u64 {
        self.mult
    }

    /// Rebuilds a scale from [`TscScale::mult`], for keeping it in an atomic.
    pub const fn from_mult(mult: u64) -> Option<Self> {
        if mult == 0 {
            None
        } else {
            Some(TscScale { mult })
        }
    }

    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let ns = (u128::from(ticks) * u128::from(self.mult)) >> Self::SHIFT;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crystal_leaf() {
        // A 24 MHz crystal with ratio 2/176 gives the 2.112 GHz TSC of a Skylake part.
        assert_eq!(hz_from_crystal(2, 176, 24_000_000), Some(2_112_000_000));
        assert_eq!(hz_from_crystal(2, 176, 0), None);
        assert_eq!(hz_from_crystal(0, 176, 24_000_000), None);
    }

    #[test]
    fn base_and_hypervisor_leaves() {
        assert_eq!(hz_from_base_mhz(0xdead_0bb8), Some(3_000_000_000));
        assert_eq!(hz_from_base_mhz(0x1_0000), None);
        assert_eq!(hz_from_khz(2_400_000), Some(2_400_000_000));
        assert_eq!(hz_from_khz(0), None);
    }

    #[test]
    fn pvclock_scale() {
        // What KVM gives a 2.4 GHz TSC: halve the ticks, then multiply by 0.8333.. (2^32 scale).
        assert_eq!(hz_from_pvclock(3_579_139_413, -1), Some(2_400_000_000));
        // A 1 GHz TSC as a scale that doubles the ticks, then halves them.
        assert_eq!(hz_from_pvclock(1 << 31, 1), Some(1_000_000_000));
        assert_eq!(hz_from_pvclock(0, -1), None);
        assert_eq!(hz_from_pvclock(1, 64), None);
    }

    #[test]
    fn reference_measurement() {
        // One second of PIT ticks while the TSC advanced 3 billion: 3 GHz.
        assert_eq!(
            hz_from_reference(3_000_000_000, PIT_HZ, PIT_HZ),
            Some(3_000_000_000)
        );
        // Integer division rounds down: 10 ticks in 3 reference ticks of a 1 Hz clock.
        assert_eq!(hz_from_reference(10, 3, 1), Some(3));
        let pit = u64::from(pit_ticks_for_micros(5000).unwrap());
        assert_eq!(pit, 5965);
        assert_eq!(hz_from_reference(0, pit, PIT_HZ), None);
        assert_eq!(hz_from_reference(10, 0, PIT_HZ), None);
        assert_eq!(hz_from_reference(u64::MAX, 1, PIT_HZ), None);
    }

    #[test]
    fn pit_reload_must_fit_16_bits() {
        assert_eq!(pit_ticks_for_micros(54_925), Some(65_535));
        assert_eq!(pit_ticks_for_micros(60_000), None);
        assert_eq!(pit_ticks_for_micros(0), None);
    }

    #[test]
    fn scale_converts_ticks_to_ns() {
        let ghz3 = TscScale::from_hz(3_000_000_000).unwrap();
        assert_eq!(ghz3.ticks_to_ns(3_000_000_000), 999_999_999);
        assert_eq!(ghz3.ticks_to_ns(3), 0);
        assert_eq!(ghz3.ticks_to_ns(30), 9);
        let mhz1 = TscScale::from_hz(1_000_000).unwrap();
        assert_eq!(mhz1.ticks_to_ns(1), 1000);
        assert_eq!(mhz1.ticks_to_ns(u64::MAX), u64::MAX);
        assert_eq!(TscScale::from_hz(0), None);
        assert_eq!(TscScale::from_mult(ghz3.mult()), Some(ghz3));
        assert_eq!(TscScale::from_mult(0), None);
    }

    #[test]
    fn slowest_rate_does_not_overflow() {
        let hz1 = TscScale::from_hz(1).unwrap();
        assert_eq!(hz1.ticks_to_ns(2), 2_000_000_000);
    }
}
