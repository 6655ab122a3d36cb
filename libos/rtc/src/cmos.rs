//! The PC's MC146818-compatible CMOS clock, behind the index port 0x70 and the data port 0x71.

use core::arch::asm;
use core::time::Duration;

use unik_platform::rtc::CmosTime;
use unik_rt::time::Instant;

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;

const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const STATUS_A: u8 = 0x0a;
const STATUS_B: u8 = 0x0b;
const CENTURY: u8 = 0x32;

/// Status register A: the clock is about to update, or updating, its registers.
const UPDATE_IN_PROGRESS: u8 = 1 << 7;

/// The flag rises at most 244 µs before an update that takes at most 2 ms, so two clean
/// reads come long before this; a machine without the clock reads 0xff (the flag stuck) and
/// gives up after it.
const PATIENCE: Duration = Duration::from_millis(20);

/// Seconds since the UNIX epoch, or `None` if there is no clock or it holds no valid time.
pub(crate) fn unix_seconds() -> Option<u64> {
    let deadline = Instant::now() + PATIENCE;
    let mut previous = None;
    while Instant::now() < deadline {
        if register(STATUS_A) & UPDATE_IN_PROGRESS != 0 {
            continue;
        }
        // An update can still start between the check and the last register, mixing two
        // seconds (the old minute with the new second 0); two equal reads in a row cannot.
        let time = read_all();
        if previous == Some(time) {
            return time.unix_seconds();
        }
        previous = Some(time);
    }
    None
}

fn read_all() -> CmosTime {
    CmosTime {
        seconds: register(SECONDS),
        minutes: register(MINUTES),
        hours: register(HOURS),
        day: register(DAY),
        month: register(MONTH),
        year: register(YEAR),
        century: register(CENTURY),
        status_b: register(STATUS_B),
    }
}

fn register(index: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the PC's CMOS index and data ports; selecting and reading a
    // clock register changes nothing else (bit 7 of the index, NMI masking, stays clear, as
    // the boot left it).
    unsafe {
        asm!("out dx, al", in("dx") INDEX, in("al") index, options(nomem, nostack, preserves_flags));
        let value: u8;
        asm!("in al, dx", out("al") value, in("dx") DATA, options(nomem, nostack, preserves_flags));
        value
    }
}
