//! Wall-clock arithmetic: the MC146818 CMOS clock's registers (x86) to a calendar date, and a
//! calendar date to seconds since the UNIX epoch. The PL031 (aarch64 virt) counts seconds
//! since the epoch itself and needs none of this.

/// Status register B: hours count 0–23 instead of 1–12 with a PM flag.
pub const STATUS_B_24_HOUR: u8 = 1 << 1;
/// Status register B: values are binary instead of BCD.
pub const STATUS_B_BINARY: u8 = 1 << 2;
/// In 12-hour mode, the hour register's flag for the afternoon.
const HOUR_PM: u8 = 1 << 7;

/// The value of a BCD byte (0x59 → 59); `None` when a digit is above 9.
pub fn bcd(byte: u8) -> Option<u8> {
    let (tens, ones) = (byte >> 4, byte & 0x0f);
    (tens <= 9 && ones <= 9).then_some(tens * 10 + ones)
}

/// The CMOS clock's date and time registers as read, in the encoding status register B gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmosTime {
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub day: u8,
    pub month: u8,
    /// Two digits: the year within the century.
    pub year: u8,
    /// Register 0x32, where the ACPI tables (and QEMU) keep the century; machines without one
    /// leave it 0 or 0xff, and the year is then taken to be in 2000–2099.
    pub century: u8,
    pub status_b: u8,
}

impl CmosTime {
    /// Seconds since 1970-01-01 00:00:00 UTC, taking the clock to run in UTC (QEMU's default,
    /// `-rtc base=utc`); `None` for registers that are no valid date and time.
    pub fn unix_seconds(&self) -> Option<u64> {
        let binary = self.status_b & STATUS_B_BINARY != 0;
        let decode = |byte: u8| if binary { Some(byte) } else { bcd(byte) };
        let pm = self.status_b & STATUS_B_24_HOUR == 0 && self.hours & HOUR_PM != 0;
        let mut hours = decode(self.hours & !HOUR_PM)?;
        if self.status_b & STATUS_B_24_HOUR == 0 {
            // 12-hour clock: 12 AM is midnight, 12 PM noon.
            if !(1..=12).contains(&hours) {
                return None;
            }
            hours = hours % 12 + if pm { 12 } else { 0 };
        }
        let century = decode(self.century)
            .filter(|c| (19..=99).contains(c))
            .unwrap_or(20);
        let year = u32::from(century) * 100 + u32::from(decode(self.year)?);
        civil_to_unix(
            year,
            decode(self.month)?,
            decode(self.day)?,
            hours,
            decode(self.minutes)?,
            decode(self.seconds)?,
        )
    }
}

/// Seconds since the UNIX epoch of a UTC date and time (proleptic Gregorian calendar); `None`
/// for a date before 1970 or a field out of range.
pub fn civil_to_unix(
    year: u32,
    month: u8,
    day: u8,
    hours: u8,
    minutes: u8,
    seconds: u8,
) -> Option<u64> {
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hours > 23
        || minutes > 59
        || seconds > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + u64::from(hours) * 3_600 + u64::from(minutes) * 60 + u64::from(seconds))
}

/// Days from 1970-01-01 to a date no earlier, after Howard Hinnant's `days_from_civil`: years
/// start in March, so the leap day is the last of its year and each 400-year era has the same
/// 146 097 days.
fn days_from_civil(year: u32, month: u8, day: u8) -> u64 {
    let year = u64::from(if month <= 2 { year - 1 } else { year });
    let (era, year_of_era) = (year / 400, year % 400);
    let month_from_march = (u64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + u64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719 468 days lie between 0000-03-01 and 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::devicetree::DeviceTree;

    #[test]
    fn bcd_digits() {
        assert_eq!(bcd(0x00), Some(0));
        assert_eq!(bcd(0x59), Some(59));
        assert_eq!(bcd(0x99), Some(99));
        assert_eq!(bcd(0x5a), None);
        assert_eq!(bcd(0xa0), None);
    }

    /// Reference values from `date -u -d <date> +%s`.
    #[test]
    fn dates_to_unix_seconds() {
        assert_eq!(civil_to_unix(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(civil_to_unix(1999, 12, 31, 23, 59, 59), Some(946_684_799));
        assert_eq!(civil_to_unix(2000, 2, 29, 12, 0, 0), Some(951_825_600));
        assert_eq!(civil_to_unix(2000, 3, 1, 0, 0, 0), Some(951_868_800));
        assert_eq!(civil_to_unix(2024, 2, 29, 0, 0, 0), Some(1_709_164_800));
        assert_eq!(civil_to_unix(2026, 12, 6, 8, 48, 10), Some(1_796_546_890));
        assert_eq!(civil_to_unix(2038, 1, 19, 3, 14, 8), Some(2_147_483_648));
        assert_eq!(civil_to_unix(2100, 3, 1, 0, 0, 0), Some(4_107_542_400));
    }

    #[test]
    fn impossible_dates_are_none() {
        assert_eq!(civil_to_unix(1969, 12, 31, 23, 59, 59), None);
        assert_eq!(civil_to_unix(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2100, 2, 29, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 4, 31, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 13, 1, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 1, 0, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 1, 1, 24, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 1, 1, 0, 60, 0), None);
    }

    fn cmos(hours: u8, status_b: u8) -> CmosTime {
        CmosTime {
            seconds: 0x10,
            minutes: 0x48,
            hours,
            day: 0x06,
            month: 0x12,
            year: 0x26,
            century: 0x20,
            status_b,
        }
    }

    #[test]
    fn bcd_24_hour_registers() {
        assert_eq!(
            cmos(0x08, STATUS_B_24_HOUR).unix_seconds(),
            Some(1_796_546_890)
        );
        assert_eq!(
            cmos(0x20, STATUS_B_24_HOUR).unix_seconds(),
            Some(1_796_546_890 + 12 * 3_600)
        );
    }

    #[test]
    fn binary_registers() {
        let time = CmosTime {
            seconds: 10,
            minutes: 48,
            hours: 8,
            day: 6,
            month: 12,
            year: 26,
            century: 20,
            status_b: STATUS_B_24_HOUR | STATUS_B_BINARY,
        };
        assert_eq!(time.unix_seconds(), Some(1_796_546_890));
    }

    #[test]
    fn twelve_hour_registers() {
        let morning = 1_796_546_890;
        assert_eq!(cmos(0x08, 0).unix_seconds(), Some(morning));
        assert_eq!(cmos(0x88, 0).unix_seconds(), Some(morning + 12 * 3_600));
        // 12 AM is midnight, 12 PM noon.
        assert_eq!(cmos(0x12, 0).unix_seconds(), Some(morning - 8 * 3_600));
        assert_eq!(cmos(0x92, 0).unix_seconds(), Some(morning + 4 * 3_600));
        let binary = CmosTime {
            seconds: 10,
            minutes: 48,
            hours: 8 | 0x80,
            day: 6,
            month: 12,
            year: 26,
            century: 20,
            status_b: STATUS_B_BINARY,
        };
        assert_eq!(binary.unix_seconds(), Some(morning + 12 * 3_600));
        assert_eq!(cmos(0x00, 0).unix_seconds(), None);
        assert_eq!(cmos(0x13, 0).unix_seconds(), None);
    }

    #[test]
    fn a_missing_century_means_2000_to_2099() {
        for century in [0x00, 0xff] {
            let time = CmosTime {
                century,
                ..cmos(0x08, STATUS_B_24_HOUR)
            };
            assert_eq!(time.unix_seconds(), Some(1_796_546_890));
        }
    }

    #[test]
    fn absent_clock_reads_as_no_time() {
        // Ports nothing answers read 0xff.
        let time = CmosTime {
            seconds: 0xff,
            minutes: 0xff,
            hours: 0xff,
            day: 0xff,
            month: 0xff,
            year: 0xff,
            century: 0xff,
            status_b: 0xff,
        };
        assert_eq!(time.unix_seconds(), None);
    }

    #[test]
    fn qemu_virt_has_a_pl031() {
        let tree = DeviceTree::parse(include_bytes!("../tests/data/virt.dtb")).unwrap();
        let windows: Vec<_> = tree
            .windows("arm,pl031")
            .map(|span| (span.start, span.len()))
            .collect();
        assert_eq!(windows, [(0x0901_0000, 0x1000)]);
    }
}
