//! The uniklink rtc component: wall-clock time, like `std::time::SystemTime`.
//!
//! The machine's real-time clock is read once, by the init (or the first [`SystemTime::now`]
//! if no init ran): the CMOS clock on x86_64, the PL031 on aarch64 virt. From then on the time
//! is that reading plus the monotonic clock's [`Instant`] since, so it never jumps backwards
//! and costs no device access. Both clocks count whole seconds, so the time is at most a second
//! behind.
//!
//! A machine without a clock (Firecracker, or a clock holding no valid date) gets one console
//! line saying so, and its time counts from the UNIX epoch at the moment of the reading.
#![no_std]

#[cfg(target_arch = "x86_64")]
mod cmos;
#[cfg(target_arch = "aarch64")]
mod pl031;

use core::fmt;
use core::time::Duration;

use spinning_top::Spinlock;
use unik_rt::time::Instant;

/// A moment of wall-clock time, as `std::time::SystemTime`: a duration since [`UNIX_EPOCH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemTime(Duration);

/// 1970-01-01 00:00:00 UTC.
pub const UNIX_EPOCH: SystemTime = SystemTime(Duration::ZERO);

/// A [`SystemTime`] that lies after the one it was measured from; [`duration`](Self::duration)
/// says by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemTimeError(Duration);

impl SystemTimeError {
    /// How far the later time lies after the earlier one.
    pub fn duration(&self) -> Duration {
        self.0
    }
}

impl fmt::Display for SystemTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "second time provided was later than self by {:?}",
            self.0
        )
    }
}

impl core::error::Error for SystemTimeError {}

impl SystemTime {
    pub const UNIX_EPOCH: SystemTime = UNIX_EPOCH;

    /// The current wall-clock time.
    pub fn now() -> SystemTime {
        let anchor = anchor();
        SystemTime(anchor.since_epoch + anchor.at.elapsed())
    }

    /// Time from `earlier` to `self`, or by how much `earlier` is later.
    pub fn duration_since(&self, earlier: SystemTime) -> Result<Duration, SystemTimeError> {
        self.0
            .checked_sub(earlier.0)
            .ok_or_else(|| SystemTimeError(earlier.0 - self.0))
    }

    /// Time from `self` to now, or by how much `self` is in the future.
    pub fn elapsed(&self) -> Result<Duration, SystemTimeError> {
        SystemTime::now().duration_since(*self)
    }

    /// `None` past the end of `Duration`'s range; there is no `+`, which would have to panic.
    pub fn checked_add(&self, duration: Duration) -> Option<SystemTime> {
        self.0.checked_add(duration).map(SystemTime)
    }

    /// `None` before the epoch, which this type cannot represent.
    pub fn checked_sub(&self, duration: Duration) -> Option<SystemTime> {
        self.0.checked_sub(duration).map(SystemTime)
    }
}

/// The wall-clock time at one instant of the monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    since_epoch: Duration,
    at: Instant,
}

static ANCHOR: Spinlock<Option<Anchor>> = Spinlock::new(None);

fn anchor() -> Anchor {
    *ANCHOR.lock().get_or_insert_with(read_clock)
}

fn read_clock() -> Anchor {
    let seconds = clock_seconds();
    let at = Instant::now();
    let since_epoch = seconds.map_or_else(
        || {
            unik_rt::println!(
                "uniklink:warning rtc: no valid real-time clock; SystemTime counts from 1970 at boot"
            );
            Duration::ZERO
        },
        Duration::from_secs,
    );
    Anchor { since_epoch, at }
}

#[cfg(target_arch = "x86_64")]
fn clock_seconds() -> Option<u64> {
    cmos::unix_seconds()
}

#[cfg(target_arch = "aarch64")]
fn clock_seconds() -> Option<u64> {
    pl031::unix_seconds()
}

/// Reads the real-time clock before the app's `main`, when the component is live.
#[unsafe(no_mangle)]
pub extern "C" fn unik_rtc_init() {
    anchor();
}

// The conventional registration, which GNU ld, lld and mold keep; uniklink's weaving calls
// the init from its glue only when the component is live.
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER: extern "C" fn() = unik_rtc_init;
