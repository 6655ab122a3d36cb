//! Decimal digits of an integer without `core::fmt`: the runtime prints its ready marker with
//! this, since formatting machinery run for the first time is slow to start under emulation.

/// Room for the digits of any `u64`.
pub const MAX_DIGITS: usize = 20;

/// The decimal digits of `value`, written into the end of `buf`.
pub fn decimal(value: u64, buf: &mut [u8; MAX_DIGITS]) -> &[u8] {
    let mut rest = value;
    let mut start = MAX_DIGITS;
    loop {
        start -= 1;
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return &buf[start..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        let mut buf = [0; MAX_DIGITS];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(41_250, &mut buf), b"41250");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
