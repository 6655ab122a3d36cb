//! The 16550 UART on COM1, polled.
//!
//! The first write turns the FIFOs on: without them the transmitter holds one byte and every
//! byte waits for it to empty; with them one wait for an empty FIFO is enough for 16 bytes, so
//! the line status (each read a trip out of the guest) is read once per 16 bytes. Doing it at
//! the first write rather than in an init keeps the register write off the boot path of an
//! app that prints nothing before `main`, and nothing can be lost by the FIFO reset: nothing
//! was written before.

use core::sync::atomic::{AtomicBool, Ordering};

use super::port::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const FIFO_CONTROL: u16 = COM1 + 2;
const LINE_STATUS: u16 = COM1 + 5;
/// FIFOs on and emptied, receive trigger at 14 bytes.
const FIFO_ON_CLEARED: u8 = 0xc7;
/// The transmit holding register (with FIFOs on, the whole transmit FIFO) is empty.
const THR_EMPTY: u8 = 1 << 5;
const FIFO_DEPTH: usize = 16;
/// A UART that never drains (or is absent and reads 0) must not hang the guest.
const MAX_POLLS: u32 = 100_000;

static FIFO_ON: AtomicBool = AtomicBool::new(false);

/// Turns the FIFOs on. The line settings (speed, word length) stay as the machine set them:
/// the UARTs of QEMU and Firecracker pass every byte on whatever they are, and each register
/// write is a trip out of the guest.
fn fifo_on() {
    outb(FIFO_CONTROL, FIFO_ON_CLEARED);
    FIFO_ON.store(true, Ordering::Relaxed);
}

pub(crate) fn write_bytes(bytes: &[u8]) {
    if !FIFO_ON.load(Ordering::Relaxed) {
        fifo_on();
    }
    for chunk in bytes.chunks(FIFO_DEPTH) {
        let mut polls = 0;
        while inb(LINE_STATUS) & THR_EMPTY == 0 && polls < MAX_POLLS {
            polls += 1;
        }
        for &byte in chunk {
            outb(DATA, byte);
        }
    }
}
