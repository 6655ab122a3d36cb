//! Input files: memory-mapped once, split into the ELF objects they contain.
//!
//! A plain object is one unit; an archive contributes one unit per ELF member. Thin archive
//! members name files beside the archive, which are mapped too. Non-ELF members (the `lib.rmeta`
//! of an rlib, LLVM bitcode) are skipped because no linker could use them.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use object::read::archive::ArchiveFile;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Position of a file on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId(pub u32);

/// A read-only mapping of one file.
pub struct MappedFile {
    pub path: PathBuf,
    map: Option<Mmap>,
}

impl MappedFile {
    fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // Mapping an empty file fails on Linux; an empty file simply has no bytes.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: inputs are not expected to change while we link; the same assumption
            // every mmap-based linker (mold, lld, wild) makes.
            Some(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        Ok(Self {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn data(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// One ELF relocatable object: a whole file or an archive member.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The command-line input this unit came from.
    pub input: InputId,
    /// Index into [`Inputs::files`] of the file holding the bytes.
    pub file: usize,
    pub range: Range<usize>,
    /// Member name when the unit came from an archive.
    pub member: Option<String>,
}

/// All mapped files and the units found in them, in command-line order.
pub struct Inputs {
    pub files: Vec<MappedFile>,
    /// Number of command-line inputs; `files` beyond this are thin-archive members.
    pub command_line: usize,
    pub units: Vec<Unit>,
}

const ELF_MAGIC: &[u8] = b"\x7fELF";
const AR_MAGIC: &[u8] = b"!<arch>\n";
const THIN_MAGIC: &[u8] = b"!<thin>\n";

impl Inputs {
    /// Maps every path and enumerates the objects inside. Files are mapped in parallel.
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::NoInputs);
        }
        let mut files = paths
            .par_iter()
            .map(|p| MappedFile::open(p))
            .collect::<Result<Vec<_>>>()?;
        let command_line = files.len();
        let mut units = Vec::new();
        for index in 0..command_line {
            let input = InputId(index as u32);
            let data = files[index].data();
            if data.starts_with(ELF_MAGIC) {
                units.push(Unit {
                    input,
                    file: index,
                    range: 0..data.len(),
                    member: None,
                });
            } else if data.starts_with(AR_MAGIC) || data.starts_with(THIN_MAGIC) {
                let (members, thin) = archive_members(&files[index].path, data)?;
                let is_elf = |files: &[MappedFile], range: &Range<usize>| {
                    files[index].data()[range.clone()].starts_with(ELF_MAGIC)
                };
                for m in members {
                    if let Some(path) = thin.as_ref().map(|dir| dir.join(&m.name)) {
                        let mapped = MappedFile::open(&path)?;
                        if mapped.data().starts_with(ELF_MAGIC) {
                            units.push(Unit {
                                input,
                                file: files.len(),
                                range: 0..mapped.data().len(),
                                member: Some(m.name),
                            });
                            files.push(mapped);
                        }
                    } else if is_elf(&files, &m.range) {
                        units.push(Unit {
                            input,
                            file: index,
                            range: m.range,
                            member: Some(m.name),
                        });
                    }
                }
            } else {
                return Err(Error::UnknownFormat {
                    path: files[index].path.clone(),
                });
            }
        }
        Ok(Self {
            files,
            command_line,
            units,
        })
    }

    pub fn unit_data(&self, unit: &Unit) -> &[u8] {
        &self.files[unit.file].data()[unit.range.clone()]
    }

    /// `path` or `path(member)`, as linkers print them.
    pub fn unit_name(&self, unit: &Unit) -> String {
        let path = self.files[unit.input.0 as usize].path.display();
        match &unit.member {
            Some(m) => format!("{path}({m})"),
            None => path.to_string(),
        }
    }
}

struct Member {
    name: String,
    range: Range<usize>,
}

/// Lists archive members; for thin archives also returns the directory member names are
/// relative to.
fn archive_members(path: &Path, data: &[u8]) -> Result<(Vec<Member>, Option<PathBuf>)> {
    let bad = |e: object::read::Error| Error::Archive {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let archive = ArchiveFile::parse(data).map_err(bad)?;
    // The symbol index is not used for extraction (members are indexed by parsing them), but a
    // corrupt index means a corrupt archive, which other tools would choke on too.
    if let Some(symbols) = archive.symbols().map_err(bad)? {
        for symbol in symbols {
            let symbol = symbol.map_err(bad)?;
            let offset = symbol.offset().0;
            if offset >= data.len() as u64 {
                return Err(Error::Archive {
                    path: path.to_path_buf(),
                    reason: format!(
                        "symbol index entry `{}` points at offset {offset:#x}, past the end ({:#x} bytes)",
                        String::from_utf8_lossy(symbol.name()),
                        data.len()
                    ),
                });
            }
        }
    }
    let thin = archive
        .is_thin()
        .then(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
    let mut members = Vec::new();
    for member in archive.members() {
        let member = member.map_err(bad)?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        let (offset, size) = member.file_range();
        let range = if member.is_thin() {
            0..0
        } else {
            let start = usize::try_from(offset).ok();
            let end = start.and_then(|s| s.checked_add(usize::try_from(size).ok()?));
            match (start, end) {
                (Some(s), Some(e)) if e <= data.len() => s..e,
                _ => {
                    return Err(Error::Archive {
                        path: path.to_path_buf(),
                        reason: format!("member {name} at offset {offset:#x} runs past the end"),
                    });
                }
            }
        };
        members.push(Member { name, range });
    }
    Ok((members, thin))
}
