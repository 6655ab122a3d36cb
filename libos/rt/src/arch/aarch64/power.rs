//! Stopping the machine: semihosting `SYS_EXIT_EXTENDED` carries the exit code to QEMU
//! (`-semihosting`), PSCI `SYSTEM_OFF` stops it without one.
//!
//! Without `-semihosting` QEMU treats `hlt #0xf000` as an undefined instruction; the
//! exception handler sees that an exit was under way and powers off through PSCI instead,
//! and if that traps too (no PSCI), halts. An exit asked for while one is under way (finding
//! PSCI in a broken device tree reports a boot error, which exits) halts as well.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use unik_platform::devicetree::PsciConduit;

/// Semihosting operation number of `SYS_EXIT_EXTENDED`.
const SYS_EXIT_EXTENDED: u64 = 0x20;
/// `ADP_Stopped_ApplicationExit`: the exit reason that makes QEMU exit with the code.
const APPLICATION_EXIT: u64 = 0x20026;
/// PSCI 0.2 `SYSTEM_OFF` (SMC32 calling convention).
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

// Plain loads and stores only: `power_off` may run before the MMU is on, when memory is
// device memory and exclusive accesses are not guaranteed to work.
static STAGE: AtomicU8 = AtomicU8::new(RUNNING);
const RUNNING: u8 = 0;
const SEMIHOSTING: u8 = 1;
const PSCI: u8 = 2;

/// Whether an exit is under way, so that an exception now is its trap failing.
pub(super) fn exiting() -> bool {
    STAGE.load(Ordering::Relaxed) != RUNNING
}

/// The next way out after the current one trapped.
pub(super) fn after_failed_exit() -> ! {
    if STAGE.load(Ordering::Relaxed) == SEMIHOSTING {
        system_off()
    }
    halt()
}

pub(crate) fn power_off(code: u8) -> ! {
    // Exiting again while an exit is under way: the way out itself failed and reported it
    // (PSCI's conduit is read from the device tree, which may be broken), and trying the
    // same ways again would only repeat that.
    if exiting() {
        halt()
    }
    STAGE.store(SEMIHOSTING, Ordering::Relaxed);
    let block: [u64; 2] = [APPLICATION_EXIT, u64::from(code)];
    // SAFETY: a semihosting call reads the two-word parameter block and, for this operation,
    // does not return when the host honours it.
    unsafe {
        asm!(
            "hlt #0xf000",
            inout("x0") SYS_EXIT_EXTENDED => _,
            in("x1") block.as_ptr(),
            options(nostack, readonly),
        );
    }
    system_off()
}

/// PSCI `SYSTEM_OFF`; halts the CPU if the firmware returns.
fn system_off() -> ! {
    STAGE.store(PSCI, Ordering::Relaxed);
    let conduit = crate::devicetree::psci().unwrap_or(PsciConduit::Hvc);
    // SAFETY: SYSTEM_OFF takes no arguments and does not return when PSCI is present; the
    // conduit comes from the device tree, HVC being what QEMU virt uses at EL1.
    unsafe {
        if conduit == PsciConduit::Smc {
            asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack, nomem));
        } else {
            asm!("hvc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack, nomem));
        }
    }
    halt()
}

fn halt() -> ! {
    loop {
        // SAFETY: waiting for an interrupt that never comes, since interrupts stay masked.
        unsafe { asm!("wfi", options(nostack, nomem)) };
    }
}
