//! Turning the guest's backtrace addresses into function names, from the image's symbol
//! table, and into source lines with inlined calls from the DWARF in `<image>.debug` where
//! `build` wrote one (an app built with debug info).
//!
//! The runtime prints a backtrace as `uniklink:backtrace [pc=<addr>] <addr>...`: the
//! interrupted instruction for an exception, then return addresses, innermost first. A return
//! address is looked up one byte back, inside the call that returns to it, so a call that ends
//! its function still names it.

use std::fmt;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

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
    #[error("{}: its DWARF does not parse: {message}", path.display())]
    Dwarf { path: PathBuf, message: String },
}

type Dwarf = addr2line::Context<gimli::EndianRcSlice<gimli::LittleEndian>>;

/// An image's functions by address, and its DWARF when there is some.
pub struct Symbolizer {
    /// (start, size, demangled name), sorted by start.
    functions: Vec<(u64, u64, String)>,
    dwarf: Option<Dwarf>,
}

/// Where an address is: a function and the offset into it, and with DWARF the source
/// lines, innermost inlined call first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub function: String,
    pub offset: u64,
    pub lines: Vec<SourceLine>,
}

/// One frame of the DWARF's view of an address: a function (inlined into the next, for all
/// but the last) and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub function: Option<String>,
    /// `file:line[:column]`.
    pub location: Option<String>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.function, self.offset)
    }
}

/// The DWARF of the debug file at `path`, if it exists and has a `.debug_info`.
fn load_dwarf(path: &Path) -> Result<Option<Dwarf>, SymbolizeError> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SymbolizeError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let parse = |source| SymbolizeError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let file = object::File::parse(&*data).map_err(parse)?;
    if file.section_by_name(".debug_info").is_none() {
        return Ok(None);
    }
    let section = |id: gimli::SectionId| -> Result<_, object::read::Error> {
        let bytes = match file.section_by_name(id.name()) {
            Some(section) => section.uncompressed_data()?.into_owned(),
            None => Vec::new(),
        };
        Ok(gimli::EndianRcSlice::new(
            std::rc::Rc::from(bytes),
            gimli::LittleEndian,
        ))
    };
    let dwarf = gimli::Dwarf::load(section).map_err(parse)?;
    let context = addr2line::Context::from_dwarf(dwarf).map_err(|e| SymbolizeError::Dwarf {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Some(context))
}

impl Symbolizer {
    /// The functions of the image at `path`, with the DWARF of `<path>.debug` if there is one.
    pub fn open(path: &Path) -> Result<Symbolizer, SymbolizeError> {
        let data = std::fs::read(path).map_err(|source| SymbolizeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut symbolizer = Symbolizer::parse(&data).map_err(|source| SymbolizeError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        symbolizer.dwarf = load_dwarf(&crate::build::debug_file_path(path))?;
        Ok(symbolizer)
    }

    /// A symbolizer that knows no function: backtraces render as bare addresses.
    pub fn empty() -> Symbolizer {
        Symbolizer {
            functions: Vec::new(),
            dwarf: None,
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
        Ok(Symbolizer {
            functions,
            dwarf: None,
        })
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
            lines: self.source_lines(address),
        })
    }

    /// The DWARF's frames at `address`, innermost inlined call first; none without DWARF.
    fn source_lines(&self, address: u64) -> Vec<SourceLine> {
        let Some(dwarf) = &self.dwarf else {
            return Vec::new();
        };
        let Ok(mut frames) = dwarf.find_frames(address).skip_all_loads() else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        while let Ok(Some(frame)) = frames.next() {
            let function = frame
                .function
                .as_ref()
                .and_then(|f| f.raw_name().ok())
                .map(|name| format!("{:#}", rustc_demangle::demangle(&name)));
            let location = frame.location.as_ref().and_then(|l| {
                let file = l.file?;
                Some(match (l.line, l.column) {
                    (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
                    (Some(line), None) => format!("{file}:{line}"),
                    _ => file.to_owned(),
                })
            });
            lines.push(SourceLine { function, location });
        }
        lines
    }

    /// The backtrace as text, one entry per frame: `#0 0x101a2c in hello::fail+0x1c`, then
    /// with DWARF one line per source frame, `at src/lib.rs:12:5` (a call inlined there
    /// first, each named).
    pub fn render(&self, frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .enumerate()
            .map(|(index, &frame)| match self.place(frame) {
                Some(place) => {
                    let mut text = format!("#{index} {:#x} in {place}", frame.address());
                    let count = place.lines.len();
                    for (i, line) in place.lines.iter().enumerate() {
                        let at = line.location.as_deref().unwrap_or("?");
                        match (&line.function, i + 1 < count) {
                            (Some(function), true) => {
                                text.push_str(&format!("\n    {function} (inlined) at {at}"))
                            }
                            _ => text.push_str(&format!("\n    at {at}")),
                        }
                    }
                    text
                }
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
            dwarf: None,
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
