//! The out-of-memory report: what a refused allocation asked for against what the heap and the
//! guest have, in the words of the runtime's panic line.

use core::fmt;

/// A refused allocation and the memory it was refused from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory {
    pub size: usize,
    pub align: usize,
    /// Bytes of RAM the heap was given at boot, and in how many spans.
    pub heap_bytes: u64,
    pub heap_spans: usize,
    /// The largest block the heap could still hand out when it refused.
    pub largest_free: u64,
    /// The RAM the guest sees, as [`crate::memory::guest_ram`] counts it.
    pub guest_ram: u64,
}

impl fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spans = if self.heap_spans == 1 {
            "span"
        } else {
            "spans"
        };
        write!(
            f,
            "out of memory: asked for {} bytes (align {}); the heap has {} in {} {spans}, \
             largest free {}; guest RAM {} (raise `memory:` in the manifest)",
            self.size,
            self.align,
            Bytes(self.heap_bytes),
            self.heap_spans,
            Bytes(self.largest_free),
            Bytes(self.guest_ram),
        )
    }
}

/// The size `alloc`'s default allocation error handler names in its panic message, `memory
/// allocation of <size> bytes failed`; `None` for any other message. Stable Rust lets a
/// `no_std` program replace neither that handler nor its message, so the panic handler
/// recognises the message to tell an allocation failure from other panics.
pub fn failed_allocation_size(message: &str) -> Option<usize> {
    message
        .strip_prefix("memory allocation of ")?
        .strip_suffix(" bytes failed")?
        .parse()
        .ok()
}

/// A byte count for people: bytes below 1 KiB, else KiB, MiB or GiB with at most one decimal,
/// rounded down so a free size is never overstated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        let Some(&(unit, name)) = UNITS.iter().find(|(unit, _)| self.0 >= *unit) else {
            return write!(f, "{} bytes", self.0);
        };
        let whole = self.0 / unit;
        match self.0 % unit * 10 / unit {
            0 => write!(f, "{whole} {name}"),
            tenth => write!(f, "{whole}.{tenth} {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::ToString;

    use super::*;

    #[test]
    fn the_report_names_the_request_the_heap_and_the_guest() {
        let report = OutOfMemory {
            size: 1 << 20,
            align: 8,
            heap_bytes: 0x2c_8000,
            heap_spans: 2,
            largest_free: 0x1e_8000,
            guest_ram: 4 << 20,
        };
        assert_eq!(
            report.to_string(),
            "out of memory: asked for 1048576 bytes (align 8); the heap has 2.7 MiB in 2 spans, \
             largest free 1.9 MiB; guest RAM 4 MiB (raise `memory:` in the manifest)"
        );
        let one = OutOfMemory {
            heap_spans: 1,
            ..report
        };
        assert!(one.to_string().contains("2.7 MiB in 1 span, "), "{one}");
    }

    #[test]
    fn only_the_allocation_error_message_gives_a_size() {
        assert_eq!(
            failed_allocation_size("memory allocation of 1048576 bytes failed"),
            Some(1 << 20)
        );
        let largest = format!("memory allocation of {} bytes failed", usize::MAX);
        assert_eq!(failed_allocation_size(&largest), Some(usize::MAX));
        for other in [
            "memory allocation of many bytes failed",
            "memory allocation of 12 bytes failed!",
            "capacity overflow",
            "",
        ] {
            assert_eq!(failed_allocation_size(other), None, "{other}");
        }
    }

    #[test]
    fn sizes_read_in_the_largest_unit_rounded_down() {
        let cases = [
            (0, "0 bytes"),
            (1023, "1023 bytes"),
            (1024, "1 KiB"),
            (64 << 10, "64 KiB"),
            ((1 << 20) - 1, "1023.9 KiB"),
            (1 << 20, "1 MiB"),
            (0x1f_e000, "1.9 MiB"),
            (4 << 20, "4 MiB"),
            (3 << 29, "1.5 GiB"),
            (u64::MAX, "17179869183.9 GiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(Bytes(bytes).to_string(), text, "{bytes:#x}");
        }
    }
}
