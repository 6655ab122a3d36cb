//! The clock's TSC frequency: what the platform states, else a measurement against the PIT.
//! Only the clock reaches this, the first time the app reads it, so an app without a clock
//! links no calibration code and no app pays for it during boot.

use unik_platform::clock::TscSource;

use super::{counter, pit};

pub(crate) fn frequency() -> Option<(u64, TscSource)> {
    counter::stated_frequency()
        .or_else(|| pit::measure_tsc_hz(counter::ticks).map(|hz| (hz, TscSource::Pit)))
}
