//! RDRAND and RDSEED.

use core::arch::asm;
use core::arch::x86_64::{__cpuid, __cpuid_count};

/// CPUID leaf 1, ECX.
const RDRAND: u32 = 1 << 30;
/// CPUID leaf 7 subleaf 0, EBX.
const RDSEED: u32 = 1 << 18;

/// The instruction the CPU has: RDRAND (a generator Intel's hardware reseeds, meant for
/// random numbers) when it has both, RDSEED (the conditioned entropy behind it, slower and
/// meant for seeding) when it has only that.
pub(crate) enum Generator {
    Rdrand,
    Rdseed,
}

impl Generator {
    /// The CPU's generator, if CPUID announces one and it passes a self-test.
    pub(crate) fn find(retries: usize) -> Option<Generator> {
        let has_rdseed = __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ebx & RDSEED != 0;
        let generator = if __cpuid(1).ecx & RDRAND != 0 {
            Generator::Rdrand
        } else if has_rdseed {
            Generator::Rdseed
        } else {
            return None;
        };
        // Some AMD CPUs announce RDRAND yet return all ones after a suspend, reporting success;
        // two equal words in a row unmask that (and any other stuck generator).
        let first = generator.word(retries)?;
        (generator.word(retries)? != first).then_some(generator)
    }

    /// Eight random bytes, or `None` if the CPU had none `retries` times running.
    pub(crate) fn word(&self, retries: usize) -> Option<u64> {
        for _ in 0..retries.max(1) {
            let (value, ok): (u64, u8);
            // SAFETY: CPUID announced the instruction; it only writes the output register and
            // the carry flag, which says whether the value is random.
            unsafe {
                match self {
                    Generator::Rdrand => asm!(
                        "rdrand {value}", "setc {ok}",
                        value = out(reg) value, ok = out(reg_byte) ok,
                        options(nomem, nostack),
                    ),
                    Generator::Rdseed => asm!(
                        "rdseed {value}", "setc {ok}",
                        value = out(reg) value, ok = out(reg_byte) ok,
                        options(nomem, nostack),
                    ),
                }
            }
            if ok != 0 {
                return Some(value);
            }
            // Intel's advice for a failed attempt: pause and try again.
            core::hint::spin_loop();
        }
        None
    }
}
