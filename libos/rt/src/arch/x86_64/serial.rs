//! The 16550 UART on COM1, polled.
//!
//! Until `init` turns the FIFOs on, the transmitter holds one byte and every byte waits for
//! it to empty. With the FIFOs on, one wait for an empty FIFO is enough for 16 bytes: the
//! line status is read once per 16 bytes instead of once per byte, and each read is a trip out
//! of the guest.

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
pub(crate) fn init() {
    outb(FIFO_CONTROL, FIFO_ON_CLEARED);
    FIFO_ON.store(true, Ordering::Relaxed);
}

pub(crate) fn write_bytes(bytes: &[u8]) {
    let burst = if FIFO_ON.load(Ordering::Relaxed) {
        FIFO_DEPTH
    } else {
        1
    };
    for chunk in bytes.chunks(burst) {
        let mut polls = 0;
        while inb(LINE_STATUS) & THR_EMPTY == 0 && polls < MAX_POLLS {
            polls += 1;
        }
        for &byte in chunk {
            outb(DATA, byte);
        }
    }
}
