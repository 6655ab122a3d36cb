//! The clock's counter frequency: CNTFRQ_EL0, which the firmware sets, so there is nothing
//! to measure.

use unik_platform::clock::TscSource;

use super::counter;

pub(crate) fn frequency() -> Option<(u64, TscSource)> {
    counter::stated_frequency()
}
