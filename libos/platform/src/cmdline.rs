//! The kernel command line (`hvm_start_info.cmdline_paddr`, a NUL-terminated string).
//!
//! The library OS understands `uniklink.<key>[=<value>]` words and ignores the rest, which
//! belong to the application.
//!
//! The app's arguments and environment travel as words of their own, apart from everything
//! else on the line: `uniklink.arg=<value>` per argument, in order, and `uniklink.env=<KEY>=<value>`
//! per variable, the value percent-encoded ([`encode`]) so that spaces, quotes, `=` and
//! UTF-8 survive a line that is split at whitespace. `cargo uniklink run` writes them with
//! this module's [`encode`]; the guest reads them with [`args`], [`env`] and [`decode`].

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootFlags {
    /// `uniklink.verbose`: print the memory map, heap and clock before the ready marker.
    pub verbose: bool,
    /// `uniklink.timeline`: print when each boot phase ended, in one line after the ready
    /// marker.
    pub timeline: bool,
}

impl BootFlags {
    pub fn parse(cmdline: &[u8]) -> Self {
        let mut flags = BootFlags::default();
        for word in cmdline.split(u8::is_ascii_whitespace) {
            let (key, value) = match word.iter().position(|&b| b == b'=') {
                Some(eq) => (&word[..eq], Some(&word[eq + 1..])),
                None => (word, None),
            };
            let flag = match key {
                b"uniklink.verbose" => &mut flags.verbose,
                b"uniklink.timeline" => &mut flags.timeline,
                _ => continue,
            };
            if let Some(on) = switch(value) {
                *flag = on;
            }
        }
        flags
    }
}

/// A bare key means on; unknown values leave the setting alone.
fn switch(value: Option<&[u8]>) -> Option<bool> {
    match value {
        None | Some(b"1" | b"on" | b"yes" | b"true") => Some(true),
        Some(b"0" | b"off" | b"no" | b"false") => Some(false),
        Some(_) => None,
    }
}

const ARG: &[u8] = b"uniklink.arg=";
const ENV: &[u8] = b"uniklink.env=";

/// Whether `byte` stands for itself in an encoded value.
fn plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_.~/:,+@".contains(&byte)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `value` percent-encoded: bytes other than ASCII letters, digits and `-_.~/:,+@` as `%XX`.
pub fn encode(value: &[u8]) -> impl Iterator<Item = u8> + '_ {
    value.iter().flat_map(|&byte| {
        let (bytes, len) = if plain(byte) {
            ([byte, 0, 0], 1)
        } else {
            (
                [
                    b'%',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ],
                3,
            )
        };
        bytes.into_iter().take(len)
    })
}

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEscape;

/// The bytes `encoded` stands for.
pub fn decode(encoded: &[u8]) -> impl Iterator<Item = Result<u8, BadEscape>> + '_ {
    let mut rest = encoded;
    core::iter::from_fn(move || {
        let (&first, tail) = rest.split_first()?;
        if first != b'%' {
            rest = tail;
            return Some(Ok(first));
        }
        let digit = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
        match (digit(tail.first()), digit(tail.get(1))) {
            (Some(high), Some(low)) => {
                rest = &tail[2..];
                Some(Ok((high * 16 + low) as u8))
            }
            _ => {
                rest = &[];
                Some(Err(BadEscape))
            }
        }
    })
}

const TSC_HZ: &[u8] = b"uniklink.tsc_hz=";
/// The TSC rates `uniklink.tsc_hz=` may state; anything else is a garbled word, ignored.
const TSC_HZ_RANGE: core::ops::RangeInclusive<u64> = 1_000_000..=100_000_000_000;

/// The TSC rate the virtual machine monitor states on the command line
/// (`uniklink.tsc_hz=<Hz>`, the last such word), for platforms whose CPU model states none:
/// `cargo uniklink run` measures the host's invariant TSC, which QEMU's TCG runs the guest's
/// at, and passes it. `None` when absent, not a decimal number, or outside 1 MHz to 100 GHz.
pub fn tsc_hz(cmdline: &[u8]) -> Option<u64> {
    let value = cmdline
        .split(u8::is_ascii_whitespace)
        .filter_map(|word| word.strip_prefix(TSC_HZ))
        .next_back()?;
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hz = value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    TSC_HZ_RANGE.contains(&hz).then_some(hz)
}

/// The app's arguments on `cmdline`, in order, still encoded.
pub fn args(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    cmdline
        .split(u8::is_ascii_whitespace)
        .filter_map(|word| word.strip_prefix(ARG))
}

/// The app's environment on `cmdline` as (name, encoded value), in order; a later word for a
/// name overrides an earlier one. Words without `=` after the name are skipped.
pub fn env(cmdline: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    cmdline
        .split(u8::is_ascii_whitespace)
        .filter_map(|word| word.strip_prefix(ENV))
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((&pair[..eq], &pair[eq + 1..]))
        })
}

/// Whether `name` can be an environment variable's name: a letter or `_`, then letters,
/// digits and `_`, as POSIX shells take them.
pub fn is_env_name(name: &[u8]) -> bool {
    matches!(name.first(), Some(b) if b.is_ascii_alphabetic() || *b == b'_')
        && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The word that carries argument `value`, as the runner writes it.
pub fn arg_word(value: &[u8]) -> impl Iterator<Item = u8> + '_ {
    ARG.iter().copied().chain(encode(value))
}

/// The word that carries variable `name` = `value`.
pub fn env_word<'a>(name: &'a [u8], value: &'a [u8]) -> impl Iterator<Item = u8> + 'a {
    ENV.iter()
        .copied()
        .chain(name.iter().copied())
        .chain(core::iter::once(b'='))
        .chain(encode(value))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    fn decoded(encoded: &[u8]) -> Result<Vec<u8>, BadEscape> {
        decode(encoded).collect()
    }

    #[test]
    fn values_round_trip_through_one_word() {
        for value in [
            &b""[..],
            b"plain-value_1.2~/:,+@",
            b"with space and \"quotes\" and 'single'",
            "gr\u{fc}\u{df}e \u{1f980} \u{4e2d}".as_bytes(),
            b"%41 = 100% \t\n",
        ] {
            let word: Vec<u8> = arg_word(value).collect();
            assert!(!word.iter().any(u8::is_ascii_whitespace), "{word:?}");
            let args: Vec<&[u8]> = args(&word).collect();
            assert_eq!(args.len(), 1);
            assert_eq!(decoded(args[0]).unwrap(), value);
        }
    }

    #[test]
    fn arguments_and_variables_keep_their_order_apart_from_other_words() {
        let mut line: Vec<u8> = b"uniklink.verbose ".to_vec();
        line.extend(arg_word(b"a b"));
        line.extend_from_slice(b" console=x ");
        line.extend(env_word(b"HOME", b"/root"));
        line.push(b' ');
        line.extend(arg_word(b"c"));
        line.extend_from_slice(b" uniklink.env=noequals");
        let args: Vec<Vec<u8>> = args(&line).map(|a| decoded(a).unwrap()).collect();
        assert_eq!(args, [b"a b".to_vec(), b"c".to_vec()]);
        let env: Vec<(&[u8], Vec<u8>)> =
            env(&line).map(|(k, v)| (k, decoded(v).unwrap())).collect();
        assert_eq!(env, [(&b"HOME"[..], b"/root".to_vec())]);
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert_eq!(decoded(b"%4"), Err(BadEscape));
        assert_eq!(decoded(b"%zz"), Err(BadEscape));
        assert_eq!(decoded(b"ok%2"), Err(BadEscape));
        assert_eq!(decoded(b"%2f%2F").unwrap(), b"//");
    }

    #[test]
    fn environment_names() {
        assert!(is_env_name(b"PATH") && is_env_name(b"_x1"));
        assert!(!is_env_name(b"") && !is_env_name(b"1A") && !is_env_name(b"A-B"));
        assert!(!is_env_name(b"A=B"));
    }

    #[test]
    fn verbose_flag_forms() {
        assert!(!BootFlags::parse(b"").verbose);
    }

    #[test]
    fn a_stated_tsc_rate_is_a_plausible_decimal() {
        assert_eq!(tsc_hz(b"uniklink.tsc_hz=2600000000"), Some(2_600_000_000));
        assert_eq!(
            tsc_hz(b"uniklink.tsc_hz=1000000 x uniklink.tsc_hz=3000000000"),
            Some(3_000_000_000),
            "the last word wins"
        );
        for bad in [
            &b""[..],
            b"uniklink.tsc_hz=",
            b"uniklink.tsc_hz=999999",
            b"uniklink.tsc_hz=100000000001",
            b"uniklink.tsc_hz=2.6e9",
            b"uniklink.tsc_hz=-2600000000",
            b"uniklink.tsc_hz=99999999999999999999999",
            b"xuniklink.tsc_hz=2600000000",
        ] {
            assert_eq!(tsc_hz(bad), None, "{bad:?}");
        }
        assert!(BootFlags::parse(b"uniklink.verbose").verbose);
        assert!(BootFlags::parse(b"console=ttyS0  uniklink.verbose=on\tapp.x=1").verbose);
        assert!(!BootFlags::parse(b"uniklink.verbose uniklink.verbose=0").verbose);
        assert!(BootFlags::parse(b"uniklink.verbose uniklink.verbose=maybe").verbose);
        assert!(!BootFlags::parse(b"uniklink.verbosely xuniklink.verbose").verbose);
    }

    #[test]
    fn timeline_flag_is_apart_from_verbose() {
        let flags = BootFlags::parse(b"uniklink.timeline app=1");
        assert!(flags.timeline && !flags.verbose);
        assert!(!BootFlags::parse(b"uniklink.timeline uniklink.timeline=off").timeline);
        assert!(!BootFlags::parse(b"uniklink.verbose").timeline);
    }
}
