//! TSC calibration against the 8254 PIT.
//!
//! Channel 0 is read back through the latch command rather than watching channel 2's
//! output on port 0x61: that port belongs to the PC speaker logic, which QEMU's microvm
//! does not have, while channel 0's gate is always high.

use unik_platform::clock::{PIT_HZ, hz_from_reference, pit_ticks_for_micros};

use super::port::{inb, outb};

const CHANNEL_0_DATA: u16 = 0x40;
const COMMAND: u16 = 0x43;
/// Channel 0, low byte then high byte, mode 0 (interrupt on terminal count), binary: it
/// counts down once and raises its output a single time, so nothing keeps firing IRQ 0
/// after calibration.
const CHANNEL_0_ONE_SHOT: u8 = 0b0011_0000;
const LATCH_CHANNEL_0: u8 = 0b0000_0000;
const START_COUNT: u16 = 0xffff;
/// Long enough for a 0.1% measurement under emulation, short enough not to dominate boot.
const CALIBRATION_MICROS: u32 = 5_000;
/// A counter that does not move is absent (reads all ones) or broken; give up instead of
/// hanging.
const MAX_POLLS: u32 = 1_000_000;

/// Counts TSC ticks while the PIT counts `CALIBRATION_MICROS`; `None` when there is no
/// working PIT. Never inlined, so that its symbol tells whether an image contains it.
#[inline(never)]
pub(super) fn measure_tsc_hz(ticks: fn() -> u64) -> Option<u64> {
    let target = pit_ticks_for_micros(CALIBRATION_MICROS)?;
    outb(COMMAND, CHANNEL_0_ONE_SHOT);
    let [low, high] = START_COUNT.to_le_bytes();
    outb(CHANNEL_0_DATA, low);
    outb(CHANNEL_0_DATA, high);

    // Start on a counter edge so the partial first PIT tick does not count.
    let first = read_count();
    let mut polls = 0;
    let mut start_count = read_count();
    while start_count == first {
        polls += 1;
        if polls == MAX_POLLS {
            return None;
        }
        start_count = read_count();
    }
    let start = ticks();
    loop {
        let elapsed = start_count.wrapping_sub(read_count());
        if elapsed >= target {
            return hz_from_reference(ticks() - start, u64::from(elapsed), PIT_HZ);
        }
        polls += 1;
        if polls == MAX_POLLS {
            return None;
        }
    }
}

fn read_count() -> u16 {
    outb(COMMAND, LATCH_CHANNEL_0);
    let low = inb(CHANNEL_0_DATA);
    let high = inb(CHANNEL_0_DATA);
    u16::from_le_bytes([low, high])
}
