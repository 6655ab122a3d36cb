//! The PL011 UART of QEMU virt, polled. QEMU's model needs no set-up: it transmits as soon
//! as a byte is written to the data register.

use core::ptr::{read_volatile, write_volatile};

const PL011: usize = 0x0900_0000;
const DATA: *mut u32 = PL011 as *mut u32;
const FLAGS: *const u32 = (PL011 + 0x18) as *const u32;
const TX_FULL: u32 = 1 << 5;
/// A UART that never drains must not hang the guest.
const MAX_POLLS: u32 = 100_000;

pub(crate) fn write_bytes(bytes: &[u8]) {
    for &byte in bytes {
        let mut polls = 0;
        // SAFETY: the PL011's registers, mapped as device memory (or with the MMU still off,
        // when every access is a device access).
        while unsafe { read_volatile(FLAGS) } & TX_FULL != 0 && polls < MAX_POLLS {
            polls += 1;
        }
        // SAFETY: as above.
        unsafe { write_volatile(DATA, u32::from(byte)) };
    }
}
