//! Summary statistics the benchmarks share.

use std::time::Duration;

/// A measurement two of which can be averaged.
pub trait Mean: Copy + Ord {
    fn mean(a: Self, b: Self) -> Self;
}

impl Mean for u64 {
    fn mean(a: u64, b: u64) -> u64 {
        a.midpoint(b)
    }
}

impl Mean for Duration {
    fn mean(a: Duration, b: Duration) -> Duration {
        (a + b) / 2
    }
}

/// The middle value; for an even count, the mean of the two middle values.
pub fn median<T: Mean>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        T::mean(sorted[mid - 1], sorted[mid])
    } else {
        sorted[mid]
    }
}
