//! The 16550 UART on COM1, polled.

use super::port::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2;
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;
const THR_EMPTY: u8 = 1 << 5;
/// A UART that never drains (or is absent and reads 0) must not hang the guest.
const MAX_POLLS: u32 = 100_000;

/// 115200 baud 8N1, FIFOs on, interrupts off.
pub(super) fn init() {
    outb(INTERRUPT_ENABLE, 0);
    outb(LINE_CONTROL, 0x80);
    outb(DATA, 1);
    outb(INTERRUPT_ENABLE, 0);
    outb(LINE_CONTROL, 0x03);
    outb(FIFO_CONTROL, 0xc7);
    outb(MODEM_CONTROL, 0x03);
}

pub(crate) fn write_bytes(bytes: &[u8]) {
    for &byte in bytes {
        let mut polls = 0;
        while inb(LINE_STATUS) & THR_EMPTY == 0 && polls < MAX_POLLS {
            polls += 1;
        }
        outb(DATA, byte);
    }
}
