//! Port I/O.

use core::arch::asm;

pub(super) fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: port reads have no memory effects; the ports used are the PC's fixed ones.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

pub(super) fn outb(port: u16, value: u8) {
    // SAFETY: as for `inb`; the devices written (UART, PIT, debug exit) own no guest memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

pub(super) fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

pub(super) fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb`; used for the ACPI PM1 control ports.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}
