//! Stopping the machine.

use core::arch::asm;

use super::port::outl;

/// QEMU's `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: writing v exits QEMU with
/// status `(v << 1) | 1`. Where the device is absent the write goes nowhere.
const DEBUG_EXIT_PORT: u16 = 0xf4;

pub(crate) fn power_off(code: u8) -> ! {
    outl(DEBUG_EXIT_PORT, u32::from(code));
    halt()
}

/// Stops the CPU for good: interrupts are off, so `hlt` never returns except for an NMI,
/// after which it halts again.
fn halt() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting touch no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
