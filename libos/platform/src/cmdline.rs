//! The kernel command line (`hvm_start_info.cmdline_paddr`, a NUL-terminated string).
//!
//! The library OS understands `uniklink.<key>[=<value>]` words and ignores the rest, which
//! belong to the application.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootFlags {
    /// `uniklink.verbose`: print the memory map, heap and clock before the ready marker.
    pub verbose: bool,
}

impl BootFlags {
    pub fn parse(cmdline: &[u8]) -> Self {
        let mut flags = BootFlags::default();
        for word in cmdline.split(u8::is_ascii_whitespace) {
            let (key, value) = match word.iter().position(|&b| b == b'=') {
                Some(eq) => (&word[..eq], Some(&word[eq + 1..])),
                None => (word, None),
            };
            if key == b"uniklink.verbose"
                && let Some(on) = switch(value)
            {
                flags.verbose = on;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_flag_forms() {
        assert!(!BootFlags::parse(b"").verbose);
        assert!(BootFlags::parse(b"uniklink.verbose").verbose);
        assert!(BootFlags::parse(b"console=ttyS0  uniklink.verbose=on\tapp.x=1").verbose);
        assert!(!BootFlags::parse(b"uniklink.verbose uniklink.verbose=0").verbose);
        assert!(BootFlags::parse(b"uniklink.verbose uniklink.verbose=maybe").verbose);
        assert!(!BootFlags::parse(b"uniklink.verbosely xuniklink.verbose").verbose);
    }
}
