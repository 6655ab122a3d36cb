//! The PL011 UART of QEMU virt, polled. QEMU's model transmits as soon as a byte is written
//! to the data register; the first write turns its FIFO on, after which one wait for an empty
//! FIFO is enough for 16 bytes instead of one flag read before every byte. At the first write
//! rather than in an init, the register write stays off the boot path of an app that prints
//! nothing before `main`.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

const PL011: usize = 0x0900_0000;
const DATA: *mut u32 = PL011 as *mut u32;
const FLAGS: *const u32 = (PL011 + 0x18) as *const u32;
const LINE_CONTROL: *mut u32 = (PL011 + 0x2c) as *mut u32;
const TX_EMPTY: u32 = 1 << 7;
/// FIFOs on, 8 data bits.
const FIFO_8_BITS: u32 = (1 << 4) | (0b11 << 5);
const FIFO_DEPTH: usize = 16;
/// A UART that never drains must not hang the guest.
const MAX_POLLS: u32 = 100_000;

static FIFO_ON: AtomicBool = AtomicBool::new(false);

fn fifo_on() {
    // SAFETY: the PL011's line control register, mapped as device memory (or with the MMU
    // still off, when every access is a device access).
    unsafe { write_volatile(LINE_CONTROL, FIFO_8_BITS) };
    FIFO_ON.store(true, Ordering::Relaxed);
}

pub(crate) fn write_bytes(bytes: &[u8]) {
    if !FIFO_ON.load(Ordering::Relaxed) {
        fifo_on();
    }
    for chunk in bytes.chunks(FIFO_DEPTH) {
        let mut polls = 0;
        // SAFETY: the PL011's registers, mapped as device memory (or with the MMU still off,
        // when every access is a device access).
        while unsafe { read_volatile(FLAGS) } & TX_EMPTY == 0 && polls < MAX_POLLS {
            polls += 1;
        }
        for &byte in chunk {
            // SAFETY: as above.
            unsafe { write_volatile(DATA, u32::from(byte)) };
        }
    }
}
