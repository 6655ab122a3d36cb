//! The PL011 UART of QEMU virt, polled. QEMU's model transmits as soon as a byte is written
//! to the data register; `init` turns its FIFO on, after which one wait for an empty FIFO is
//! enough for 16 bytes instead of one flag read before every byte.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

const PL011: usize = 0x0900_0000;
const DATA: *mut u32 = PL011 as *mut u32;
const FLAGS: *const u32 = (PL011 + 0x18) as *const u32;
const LINE_CONTROL: *mut u32 = (PL011 + 0x2c) as *mut u32;
const TX_FULL: u32 = 1 << 5;
const TX_EMPTY: u32 = 1 << 7;
/// FIFOs on, 8 data bits.
const FIFO_8_BITS: u32 = (1 << 4) | (0b11 << 5);
const FIFO_DEPTH: usize = 16;
/// A UART that never drains must not hang the guest.
const MAX_POLLS: u32 = 100_000;

static FIFO_ON: AtomicBool = AtomicBool::new(false);

pub(crate) fn init() {
    // SAFETY: the PL011's line control register, mapped as device memory.
    unsafe { write_volatile(LINE_CONTROL, FIFO_8_BITS) };
    FIFO_ON.store(true, Ordering::Relaxed);
}

pub(crate) fn write_bytes(bytes: &[u8]) {
    let (burst, wait_while): (usize, fn(u32) -> bool) = if FIFO_ON.load(Ordering::Relaxed) {
        (FIFO_DEPTH, |flags: u32| flags & TX_EMPTY == 0)
    } else {
        (1, |flags: u32| flags & TX_FULL != 0)
    };
    for chunk in bytes.chunks(burst) {
        let mut polls = 0;
        // SAFETY: the PL011's registers, mapped as device memory (or with the MMU still off,
        // when every access is a device access).
        while wait_while(unsafe { read_volatile(FLAGS) }) && polls < MAX_POLLS {
            polls += 1;
        }
        for &byte in chunk {
            // SAFETY: as above.
            unsafe { write_volatile(DATA, u32::from(byte)) };
        }
    }
}
