//! Turning the guest's backtrace addresses into function names, from the image's symbol
//! table (the image carries no DWARF, so there are no source lines yet).
//!
//! The runtime prints a backtrace as `uniklink:backtrace [pc=<addr>] <addr>...`: the
//! interrupted instruction for an exception, then return addresses, innermost first. A return
//! address is looked up one byte back, inside the call that returns to it, so a call that ends
//! its function still names it.

use std::fmt;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol, SymbolKind};

/// The start of the runtime's backtrace line.
pub const BACKTRACE_PREFIX: &str = "uniklink:backtrace";

/// One address of a backtrace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// The instruction an exception interrupted.
    Pc(u64),
    /// Where a call returns to.
    Return(u64),
}

impl Frame {
    pub fn address(self) -> u64 {
        match self {
            Frame::Pc(address) | Frame::Return(address) => address,
        }
    }

    /// The address that lies in the frame's function.
    fn lookup_address(self) -> u64 {
        match self {
            Frame::Pc(address) => address,
            Frame::Return(address) => address.saturating_sub(1),
        }
    }
}

/// The frames of a backtrace line; `None` for any other line or a garbled one.
pub fn parse_backtrace(line: &str) -> Option<Vec<Frame>> {
    let line = line.trim_end_matches('\r');
    let rest = line.strip_prefix(BACKTRACE_PREFIX)?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    rest.split_ascii_whitespace()
        .map(|word| {
            let (frame, hex): (fn(u64) -> Frame, &str) = match word.strip_prefix("pc=") {
                Some(hex) => (Frame::Pc, hex),
                None => (Frame::Return, word),
            };
            let digits = hex.strip_prefix("0x")?;
            u64::from_str_radix(digits, 16).ok().map(frame)
        })
        .collect()
}

/// Why an image's symbols could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an ELF image: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: object::read::Error,
    },
}

/// An image's functions by address.
#[derive(Debug)]
pub struct Symbolizer {
    /// (start, size, demangled name), sorted by start.
    functions: Vec<(u64, u64, String)>,
}

/// Where an address is: a function and the offset into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub function: String,
    pub offset: u64,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.function, self.offset)
    }
}

impl Symbolizer {
    /// The functions of the image at `path`.
    pub fn open(path: &Path) -> Result<Symbolizer, SymbolizeError> {
        let data = std::fs::read(path).map_err(|source| SymbolizeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Symbolizer::parse(&data).map_err(|source| SymbolizeError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A symbolizer that knows no function: backtraces render as bare addresses.
    pub fn empty() -> Symbolizer {
        Symbolizer {
            functions: Vec::new(),
        }
    }

    /// The functions of an image in memory.
    pub fn parse(data: &[u8]) -> Result<Symbolizer, object::read::Error> {
        let file = object::File::parse(data)?;
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|symbol| symbol.kind() == SymbolKind::Text && symbol.address() != 0)
            .filter_map(|symbol| {
                let name = symbol.name().ok()?;
                let name = format!("{:#}", rustc_demangle::demangle(name));
                Some((symbol.address(), symbol.size(), name))
            })
            .collect();
        functions.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
        functions.dedup_by_key(|f| f.0);
        Ok(Symbolizer { functions })
    }

    /// The function `frame` is in: the one whose extent holds it, or for a symbol without a
    /// size (assembly), the nearest one below it.
    pub fn place(&self, frame: Frame) -> Option<Place> {
        let address = frame.lookup_address();
        let index = self
            .functions
            .partition_point(|&(start, _, _)| start <= address)
            .checked_sub(1)?;
        let (start, size, name) = &self.functions[index];
        let inside = *size == 0 || address < start + size;
        inside.then(|| Place {
            function: name.clone(),
            offset: frame.address() - start,
        })
    }

    /// The backtrace as lines: `#0 0x101a2c in hello::fail+0x1c`.
    pub fn render(&self, frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .enumerate()
            .map(|(index, &frame)| match self.place(frame) {
                Some(place) => format!("#{index} {:#x} in {place}", frame.address()),
                None => format!("#{index} {:#x}", frame.address()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtrace_lines_parse() {
        assert_eq!(
            parse_backtrace("uniklink:backtrace pc=0x105476 0x105951 0x1013a3\r"),
            Some(vec![
                Frame::Pc(0x105476),
                Frame::Return(0x105951),
                Frame::Return(0x1013a3)
            ])
        );
        assert_eq!(parse_backtrace("uniklink:backtrace"), Some(vec![]));
        for line in [
            "uniklink:backtraces 0x1",
            "uniklink:backtrace 0x10g",
            "uniklink:backtrace 105951",
            "say uniklink:backtrace 0x1",
        ] {
            assert_eq!(parse_backtrace(line), None, "{line}");
        }
    }

    fn symbolizer() -> Symbolizer {
        Symbolizer {
            functions: vec![
                (0x1000, 0x20, "a::first".to_owned()),
                (0x1020, 0x10, "a::second".to_owned()),
                (0x1040, 0, "_asm_entry".to_owned()),
            ],
        }
    }

    #[test]
    fn a_return_address_names_the_call_it_ends() {
        let s = symbolizer();
        // The call is the last instruction of `first`: its return address is `second`'s start.
        assert_eq!(
            s.place(Frame::Return(0x1020)).unwrap().to_string(),
            "a::first+0x20"
        );
        assert_eq!(
            s.place(Frame::Pc(0x1020)).unwrap().to_string(),
            "a::second+0x0"
        );
        assert_eq!(s.place(Frame::Pc(0x1030)), None, "between functions");
        assert_eq!(
            s.place(Frame::Pc(0x1044)).unwrap().to_string(),
            "_asm_entry+0x4"
        );
        assert_eq!(s.place(Frame::Pc(0xfff)), None);
        assert_eq!(
            s.render(&[Frame::Pc(0x1004), Frame::Return(0x2)]),
            ["#0 0x1004 in a::first+0x4", "#1 0x2"]
        );
    }
}
