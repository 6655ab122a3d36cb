//! Input files: memory-mapped once, split into the ELF objects they contain.
//!
//! A plain object is one unit; an archive contributes one unit per ELF member. Thin archive
//! members name files beside the archive, which are mapped too. Non-ELF members of regular
//! archives (the `lib.rmeta` of an rlib, LLVM bitcode) are skipped because no linker could use
//! them; a thin member that is not ELF is an error.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;
use object::read::archive::ArchiveFile;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::Idx;
use crate::object::ObjectId;

/// Position of a file on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId(pub u32);
crate::id::u32_idx!(InputId);

/// A read-only mapping of one file, or the bytes of an object the linker generated.
pub struct MappedFile {
    pub path: PathBuf,
    contents: Contents,
}

enum Contents {
    /// `None` for an empty file: mapping one fails on Linux.
    Mapped(Option<Mmap>),
    /// Set once: at once for an object generated before the link, or when the link has
    /// decided what a [reserved](Inputs::reserve_generated) one holds.
    Generated(OnceLock<Vec<u8>>),
}

/// An object made in memory (notes, glue code) and linked like a file on the command line.
#[derive(Debug, Clone)]
pub struct GeneratedObject {
    /// How reports name it; not a file.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl MappedFile {
    fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // Checked before opening: opening a FIFO for reading blocks until a writer appears.
        let kind = std::fs::metadata(path).map_err(io)?.file_type();
        if !kind.is_file() {
            return Err(Error::NotRegular {
                path: path.to_path_buf(),
                kind: file_kind(kind),
            });
        }
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: inputs are not expected to change while we link; the same assumption
            // every mmap-based linker (mold, lld, wild) makes.
            Some(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        Ok(Self {
            path: path.to_path_buf(),
            contents: Contents::Mapped(map),
        })
    }

    fn generated(name: String) -> Self {
        Self {
            path: PathBuf::from(name),
            contents: Contents::Generated(OnceLock::new()),
        }
    }

    /// Empty for a reserved generated object that is not filled in yet.
    pub fn data(&self) -> &[u8] {
        match &self.contents {
            Contents::Mapped(map) => map.as_deref().unwrap_or_default(),
            Contents::Generated(bytes) => bytes.get().map_or(&[], Vec::as_slice),
        }
    }
}

/// A unit of [`Inputs`] reserved for an object the link generates once it has decided what
/// the object holds (the weave's glue): its symbols are declared before resolution, its
/// bytes arrive after the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedUnit(usize);

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
    /// Number of command-line inputs; `files` beyond this are thin-archive members and
    /// generated objects.
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
                        let archive = &files[index].path;
                        let member_error = |reason: String| Error::ThinMember {
                            archive: archive.clone(),
                            member: path.clone(),
                            reason,
                        };
                        let mapped = MappedFile::open(&path).map_err(|e| {
                            member_error(match e {
                                Error::Io { source, .. } => source.to_string(),
                                Error::NotRegular { kind, .. } => {
                                    format!("is {kind}, not a regular file")
                                }
                                other => other.to_string(),
                            })
                        })?;
                        // A thin member is a file the archive points at, not a packed
                        // payload like an rlib's metadata; one that is not ELF is a mistake.
                        if !mapped.data().starts_with(ELF_MAGIC) {
                            return Err(member_error("not an ELF object".to_owned()));
                        }
                        units.push(Unit {
                            input,
                            file: files.len(),
                            range: 0..mapped.data().len(),
                            member: Some(m.name),
                        });
                        files.push(mapped);
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

    /// Appends an object made in memory as one more input. Its contents can depend on the
    /// loaded files (a build id hashes them), which is why it comes after [`Inputs::load`].
    pub fn add_generated(&mut self, object: GeneratedObject) -> Result<()> {
        let unit = self.reserve_generated(object.name);
        self.fill_generated(unit, object.bytes).map(drop)
    }

    /// Appends a unit for an object generated later in the link, which [`object::parse_all`]
    /// skips until [`Inputs::fill_generated`] gives it its bytes. Reserve it after every other
    /// input, so that the object ids of the others do not depend on it.
    ///
    /// [`object::parse_all`]: crate::object::parse_all
    pub fn reserve_generated(&mut self, name: String) -> ReservedUnit {
        let index = self.files.len();
        self.units.push(Unit {
            input: InputId(index as u32),
            file: index,
            range: 0..0,
            member: None,
        });
        self.files.push(MappedFile::generated(name));
        ReservedUnit(self.units.len() - 1)
    }

    /// Gives a reserved unit its bytes, once; they stay borrowed from `self` like a mapped
    /// file's, which is what lets the link add the object after resolving the others.
    pub fn fill_generated(&self, unit: ReservedUnit, bytes: Vec<u8>) -> Result<&Unit> {
        let unit = &self.units[unit.0];
        let file = &self.files[unit.file];
        let filled = match &file.contents {
            Contents::Generated(slot) if bytes.starts_with(ELF_MAGIC) => slot.set(bytes).is_ok(),
            _ => false,
        };
        if !filled {
            return Err(Error::UnknownFormat {
                path: file.path.clone(),
            });
        }
        Ok(unit)
    }

    /// A reserved unit whose bytes are not there yet.
    pub fn is_pending(&self, unit: &Unit) -> bool {
        matches!(&self.files[unit.file].contents, Contents::Generated(slot) if slot.get().is_none())
    }

    /// The bytes of each file named on the command line, in order.
    pub fn command_line_data(&self) -> impl Iterator<Item = &[u8]> {
        self.files[..self.command_line].iter().map(MappedFile::data)
    }

    /// A generated object is its whole file, whenever it was filled in.
    pub fn unit_data(&self, unit: &Unit) -> &[u8] {
        let file = &self.files[unit.file];
        match &file.contents {
            Contents::Mapped(_) => &file.data()[unit.range.clone()],
            Contents::Generated(_) => file.data(),
        }
    }

    /// The unit object `object` was parsed from (units and objects share positions).
    pub fn unit_of(&self, object: ObjectId) -> &Unit {
        &self.units[object.index()]
    }

    /// The path of a command-line input, an archive's for its members.
    pub fn path_of(&self, input: InputId) -> &Path {
        &self.files[input.index()].path
    }

    /// An object the linker generated rather than a file or member it was given.
    pub fn is_generated(&self, unit: &Unit) -> bool {
        unit.input.index() >= self.command_line && unit.member.is_none()
    }

    /// `path` or `path(member)`, as linkers print them.
    pub fn unit_name(&self, unit: &Unit) -> String {
        let path = self.path_of(unit.input).display();
        match &unit.member {
            Some(m) => format!("{path}({m})"),
            None => path.to_string(),
        }
    }
}

/// How messages name a file type that is not a regular file.
fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

struct Member {
    name: String,
    range: Range<usize>,
}

/// The members of an archive held in memory, as [`Inputs::load`] lists them: each name and
/// byte range (empty for a thin archive's members, which name files). The fuzz targets read
/// archives through it.
pub fn archive_members_in(data: &[u8]) -> Result<Vec<(String, Range<usize>)>> {
    let (members, _) = archive_members(Path::new("<memory>"), data)?;
    Ok(members.into_iter().map(|m| (m.name, m.range)).collect())
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

#[cfg(test)]
mod tests {
    use object::SectionKind;

    use super::*;
    use crate::test_objects::TestObject;

    fn elf(symbol: &str) -> Vec<u8> {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 4]);
        o.define(symbol, text, 0, false);
        o.bytes()
    }

    /// A GNU-format archive; thin archives store the member headers only.
    fn archive(members: &[(&str, &[u8])], thin: bool) -> Vec<u8> {
        let mut out = if thin {
            b"!<thin>\n".to_vec()
        } else {
            b"!<arch>\n".to_vec()
        };
        for (name, data) in members {
            let header = format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                format!("{name}/"),
                0,
                0,
                0,
                644,
                data.len()
            );
            assert_eq!(header.len(), 60);
            out.extend_from_slice(header.as_bytes());
            if !thin {
                out.extend_from_slice(data);
                if data.len() % 2 == 1 {
                    out.push(b'\n');
                }
            }
        }
        out
    }

    #[test]
    fn objects_archives_and_thin_archives() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (elf("a"), elf("b"));
        std::fs::write(dir.path().join("a.o"), &a).unwrap();
        std::fs::write(dir.path().join("b.o"), &b).unwrap();
        let fat = archive(
            &[("a.o", &a), ("lib.rmeta", b"rust metadata"), ("b.o", &b)],
            false,
        );
        std::fs::write(dir.path().join("libfat.a"), fat).unwrap();
        let thin = archive(&[("a.o", &a), ("b.o", &b)], true);
        std::fs::write(dir.path().join("libthin.a"), thin).unwrap();

        let paths: Vec<PathBuf> = ["a.o", "libfat.a", "libthin.a"]
            .iter()
            .map(|p| dir.path().join(p))
            .collect();
        let inputs = Inputs::load(&paths).unwrap();
        let names: Vec<String> = inputs
            .units
            .iter()
            .map(|u| {
                let name = inputs.unit_name(u);
                name.rsplit('/').next().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "a.o",
                "libfat.a(a.o)",
                "libfat.a(b.o)",
                "libthin.a(a.o)",
                "libthin.a(b.o)"
            ]
        );
        for (unit, expected) in inputs.units.iter().zip([&a, &a, &b, &a, &b]) {
            assert_eq!(inputs.unit_data(unit), &expected[..]);
        }
        assert_eq!(inputs.units[4].input, InputId(2));
    }

    #[test]
    fn unreadable_and_unknown_inputs_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        let err = Inputs::load(std::slice::from_ref(&text)).err().unwrap();
        assert!(
            err.to_string()
                .ends_with("notes.txt: not an ELF relocatable object or ar archive")
        );
        let missing = dir.path().join("missing.o");
        let err = Inputs::load(&[missing]).err().unwrap();
        assert!(err.to_string().starts_with("cannot read "), "{err}");
        assert!(err.to_string().contains("missing.o"), "{err}");
        assert!(matches!(Inputs::load(&[]), Err(Error::NoInputs)));
    }

    #[test]
    fn truncated_archive_member_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut fat = archive(&[("a.o", &elf("a"))], false);
        fat.truncate(fat.len() - 10);
        let path = dir.path().join("libcut.a");
        std::fs::write(&path, fat).unwrap();
        let err = Inputs::load(&[path]).err().unwrap();
        assert!(
            err.to_string().contains("libcut.a: malformed archive"),
            "{err}"
        );
    }
}
