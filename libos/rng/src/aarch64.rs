//! RNDR (FEAT_RNG).

use core::arch::asm;

/// ID_AA64ISAR0_EL1.RNDR, bits 63:60: non-zero when the CPU has RNDR and RNDRRS.
const RNDR_SHIFT: u32 = 60;

/// RNDR: random numbers from a generator the hardware reseeds (QEMU's `-cpu max` has it,
/// the cortex-a57 does not).
pub(crate) struct Generator;

impl Generator {
    /// The CPU's generator, if ID_AA64ISAR0_EL1 announces one and it passes a self-test.
    pub(crate) fn find(retries: usize) -> Option<Generator> {
        let features: u64;
        // SAFETY: an ID register, readable at EL1 on every ARMv8-A CPU, with no side effect.
        unsafe {
            asm!("mrs {}, id_aa64isar0_el1", out(reg) features, options(nomem, nostack, preserves_flags))
        };
        if (features >> RNDR_SHIFT) & 0xf == 0 {
            return None;
        }
        // A generator that repeats itself is stuck, whatever its flags say.
        let first = Generator.word(retries)?;
        (Generator.word(retries)? != first).then_some(Generator)
    }

    /// Eight random bytes, or `None` if the CPU had none `retries` times running.
    pub(crate) fn word(&self, retries: usize) -> Option<u64> {
        for _ in 0..retries.max(1) {
            let (value, ok): (u64, u64);
            // SAFETY: ID_AA64ISAR0_EL1 announced RNDR (written by its encoding, so that the
            // assembler needs no `+rand`); it writes the output register and NZCV, whose Z
            // flag is set when no random number was available.
            unsafe {
                asm!(
                    "mrs {value}, s3_3_c2_c4_0", "cset {ok}, ne",
                    value = out(reg) value, ok = out(reg) ok,
                    options(nomem, nostack),
                )
            };
            if ok != 0 {
                return Some(value);
            }
            core::hint::spin_loop();
        }
        None
    }
}
