//! A monotonic clock from the TSC (x86_64) or the generic timer (aarch64).
//!
//! The counter's frequency is found the first time the app reads the clock: stated by the
//! platform where it says it, else measured (x86_64: against the PIT, about 5 ms). Boot never
//! waits for it; the runtime's own boot stamps are raw counter values.

use core::ops::{Add, Sub};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use unik_platform::clock::TscScale;

use crate::arch;
use crate::exit::fatal;

/// The scale's multiplier; 0 until the app first reads the clock.
static SCALE_MULT: AtomicU64 = AtomicU64::new(0);

fn scale() -> TscScale {
    TscScale::from_mult(SCALE_MULT.load(Ordering::Relaxed)).unwrap_or_else(find_scale)
}

#[cold]
#[inline(never)]
fn find_scale() -> TscScale {
    let Some((hz, source)) = arch::clock_frequency() else {
        fatal(format_args!(
            "no clock frequency (CPUID 0x15/0x16, hypervisor leaf 0x40000010, KVM pvclock, PIT)"
        ))
    };
    let Some(scale) = TscScale::from_hz(hz) else {
        fatal(format_args!("a clock frequency of 0 Hz from {source}"))
    };
    SCALE_MULT.store(scale.mult(), Ordering::Relaxed);
    scale
}

/// A point in time, like `std::time::Instant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The current time. The first call finds the counter's frequency.
    pub fn now() -> Instant {
        scale();
        Instant(arch::ticks())
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        Duration::from_nanos(scale().ticks_to_ns(self.0.saturating_sub(earlier.0)))
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
        let ticks = ((duration.as_nanos() << 32) / u128::from(scale().mult()))
            .min(u128::from(u64::MAX)) as u64;
        Instant(self.0.saturating_add(ticks))
    }
}

/// The current time.
pub fn now() -> Instant {
    Instant::now()
}
