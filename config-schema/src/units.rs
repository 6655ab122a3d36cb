//! Sizes and durations as manifests spell them: `512KiB`, `1MiB`, `64M`, `50ms`, `2s`.
//!
//! Sizes are binary: `K`/`KiB`, `M`/`MiB` and `G`/`GiB` all mean powers of 1024, the way QEMU's
//! `-m 64M` does. Decimal spellings (`KB`, `MB`) are rejected rather than guessed, because a
//! silent factor of 1.024 in a memory budget is exactly the kind of error a manifest check
//! should catch.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("K", 1 << 10),
    ("KiB", 1 << 10),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
];

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
];

/// Why a size or duration did not parse. The message is complete on its own; the caller adds
/// where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UnitError {
    message: String,
}

impl UnitError {
    fn new(message: String) -> Self {
        UnitError { message }
    }
}

/// Splits `"512 KiB"` into `(512, "KiB")`.
fn split_number(text: &str) -> Result<(u64, &str), UnitError> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if unit.starts_with(['.', ',']) {
        return Err(UnitError::new(format!(
            "`{text}` is not a whole number; use a smaller unit instead of a fraction"
        )));
    }
    if digits.is_empty() {
        return Err(UnitError::new(format!(
            "`{text}` does not start with a number"
        )));
    }
    let number = digits
        .replace('_', "")
        .parse::<u64>()
        .map_err(|_| UnitError::new(format!("`{digits}` is too large")))?;
    Ok((number, unit.trim_start()))
}

fn parse_with_units(
    text: &str,
    units: &[(&str, u64)],
    what: &str,
    allow_bare: bool,
) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text)?;
    let factor = if unit.is_empty() && allow_bare {
        1
    } else if let Some((_, factor)) = units.iter().find(|(name, _)| *name == unit) {
        *factor
    } else {
        let names: Vec<&str> = units.iter().map(|(name, _)| *name).collect();
        let mut message = if unit.is_empty() {
            format!("{what} `{text}` needs a unit")
        } else {
            format!("unknown {what} unit `{unit}` in `{text}`")
        };
        message.push_str(&format!("; use one of {}", names.join(", ")));
        if let Some(close) = crate::suggest::closest(unit, names.iter().copied()) {
            message.push_str(&format!(" (did you mean `{number}{close}`?)"));
        }
        return Err(UnitError::new(message));
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| UnitError::new(format!("{what} `{text}` does not fit in 64 bits")))
}

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        ByteSize(n << 10)
    }

    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        parse_with_units(text, SIZE_UNITS, "size", true).map(ByteSize)
    }
}

/// Prints the largest binary unit that divides the size exactly, so the output parses back to
/// the same value.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 != 0 && self.0.is_multiple_of(factor) {
                return write!(f, "{}{name}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// JSON reports want numbers they can compare, so sizes serialize as plain byte counts (which
/// a manifest also accepts).
impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 4096, 512KiB, 1MiB or 64M")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative, got {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
                Err(E::custom(format!(
                    "size `{v}` is not a whole number of bytes (or too large)"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a byte count, or a number with a binary unit (B, K, KiB, M, MiB, G, GiB), e.g. 512KiB, 1MiB, 64M.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9][0-9_]*\\s*(B|K|KiB|M|MiB|G|GiB)?\\s*$" }
            ]
        })
    }
}

/// A length of time, written with a unit: `50ms`, `2s`, `250us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl std::str::FromStr for Duration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        parse_with_units(text, DURATION_UNITS, "duration", false)
            .map(|ns| Duration(std::time::Duration::from_nanos(ns)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        for (name, factor) in [("s", 1_000_000_000u128), ("ms", 1_000_000), ("us", 1_000)] {
            if ns != 0 && ns.is_multiple_of(factor) {
                return write!(f, "{}{name}", ns / factor);
            }
        }
        write!(f, "{ns}ns")
    }
}

/// Serialized in the manifest's own spelling so a JSON report's value can be pasted back.
impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit such as 50ms or 2s")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration `{v}` needs a unit; write e.g. `{v}ms` or `{v}s`"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!("duration `{v}` needs a unit")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration `{v}` needs a unit and a whole number; write e.g. `1500ms`"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with a unit (ns, us, ms, s), e.g. 50ms, 2s.",
            "type": "string",
            "pattern": "^\\s*[0-9][0-9_]*\\s*(ns|us|ms|s)\\s*$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        let cases = [
            ("4096", 4096),
            ("512KiB", 512 << 10),
            ("1MiB", 1 << 20),
            ("64M", 64 << 20),
            ("2 GiB", 2 << 30),
            ("16K", 16 << 10),
            ("1_024B", 1024),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_rejected_with_a_hint() {
        let err = "64MB".parse::<ByteSize>().unwrap_err().to_string();
        assert!(err.contains("unknown size unit `MB`"), "{err}");
        assert!(err.contains("did you mean `64M"), "{err}");
        assert!("MiB".parse::<ByteSize>().is_err());
        assert!("99999999999GiB".parse::<ByteSize>().is_err());
        assert!("-1K".parse::<ByteSize>().is_err());
        let err = "1.5MiB".parse::<ByteSize>().unwrap_err().to_string();
        assert!(err.contains("not a whole number"), "{err}");
    }

    #[test]
    fn durations_need_units() {
        assert_eq!("50ms".parse::<Duration>(), Ok(Duration::from_millis(50)));
        assert_eq!("2s".parse::<Duration>(), Ok(Duration::from_millis(2000)));
        assert!("50".parse::<Duration>().is_err());
        assert!("5 min".parse::<Duration>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["512KiB", "64MiB", "3B", "1GiB", "1025B"] {
            let size: ByteSize = text.parse().unwrap();
            assert_eq!(size.to_string(), text);
        }
        for text in ["50ms", "2s", "250us", "7ns"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
    }
}
