//! A monotonic clock from the TSC, calibrated once at boot.

use core::ops::{Add, Sub};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use unik_platform::clock::TscScale;

use crate::arch;

static SCALE_MULT: AtomicU64 = AtomicU64::new(0);

pub(crate) fn set_frequency(hz: u64) -> Option<()> {
    let scale = TscScale::from_hz(hz)?;
    SCALE_MULT.store(scale.mult(), Ordering::Relaxed);
    Some(())
}

pub(crate) fn ticks_to_duration(ticks: u64) -> Duration {
    // The scale is set before the app runs, so the zero fallback only covers boot code.
    let ns = TscScale::from_mult(SCALE_MULT.load(Ordering::Relaxed))
        .map_or(0, |scale| scale.ticks_to_ns(ticks));
    Duration::from_nanos(ns)
}

/// A point in time, like `std::time::Instant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub fn now() -> Instant {
        Instant(arch::ticks())
    }

    pub(crate) fn from_ticks(ticks: u64) -> Instant {
        Instant(ticks)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        ticks_to_duration(self.0.saturating_sub(earlier.0))
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }
}

impl Sub for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.duration_since(earlier)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates at the end of the clock's range instead of wrapping.
    fn add(self, duration: Duration) -> Instant {
        let mult = SCALE_MULT.load(Ordering::Relaxed);
        let ticks = if mult == 0 {
            0
        } else {
            ((duration.as_nanos() << 32) / u128::from(mult)).min(u128::from(u64::MAX)) as u64
        };
        Instant(self.0.saturating_add(ticks))
    }
}

/// The current time.
pub fn now() -> Instant {
    Instant::now()
}
