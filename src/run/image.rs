//! What the runner needs to know about an image before handing it to QEMU: its architecture
//! and, on x86, whether it has the PVH entry note QEMU boots ELF kernels through. Checking
//! here turns QEMU's terse "invalid kernel header" into an error that names the problem.

use std::io::Read;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
use object::{Architecture, FileKind, Object};

use uniklink_config::Arch;

/// What is read of a file before it is known to be an ELF file: an ELF64 header.
const HEADER_PREFIX: u64 = 64;
/// Xen's note type for the 32-bit physical-address entry point (`XEN_ELFNOTE_PHYS32_ENTRY`).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// An image that looks bootable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub arch: Arch,
    /// The PVH entry address, when the image has a `Xen` note of type 18.
    pub pvh_entry: Option<u32>,
}

/// Why an image cannot be booted.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read image {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{} is not an ELF file (it starts with {magic})", path.display())]
    NotElf { path: PathBuf, magic: String },
    #[error("{}: truncated ELF header ({len} bytes)", path.display())]
    TruncatedHeader { path: PathBuf, len: usize },
    #[error("{} is a malformed ELF file", path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    #[error("{} is an ELF file for {machine:?}; only x86_64 and aarch64 images boot", path.display())]
    UnsupportedMachine {
        path: PathBuf,
        machine: Architecture,
    },
}

/// Reads the header and notes of the image at `path`.
pub fn inspect(path: &Path) -> Result<ImageInfo, ImageError> {
    let read = |source| ImageError::Read {
        path: path.to_owned(),
        source,
    };
    // Checked before reading: opening a FIFO for reading blocks until a writer appears.
    if !std::fs::metadata(path).map_err(read)?.is_file() {
        return Err(ImageError::NotRegular {
            path: path.to_owned(),
        });
    }
    // The header first, so that a large file that is no ELF (a disk image given by mistake)
    // is not read whole.
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut data = Vec::new();
    (&mut file)
        .take(HEADER_PREFIX)
        .read_to_end(&mut data)
        .map_err(read)?;
    if data.starts_with(&elf::ELFMAG) {
        file.read_to_end(&mut data).map_err(read)?;
    }
    match FileKind::parse(&*data) {
        Ok(FileKind::Elf32) => inspect_elf::<elf::FileHeader32<object::Endianness>>(path, &data),
        Ok(FileKind::Elf64) => inspect_elf::<elf::FileHeader64<object::Endianness>>(path, &data),
        _ if data.starts_with(&elf::ELFMAG) => Err(ImageError::TruncatedHeader {
            path: path.to_owned(),
            len: data.len(),
        }),
        _ => Err(ImageError::NotElf {
            path: path.to_owned(),
            magic: describe_magic(&data),
        }),
    }
}

fn inspect_elf<Elf: FileHeader<Endian = object::Endianness>>(
    path: &Path,
    data: &[u8],
) -> Result<ImageInfo, ImageError> {
    let malformed = |source| ImageError::Malformed {
        path: path.to_owned(),
        source,
    };
    let file = ElfFile::<Elf>::parse(data).map_err(malformed)?;
    let arch = match file.architecture() {
        Architecture::X86_64 | Architecture::X86_64_X32 | Architecture::I386 => Arch::X86_64,
        Architecture::Aarch64 => Arch::Aarch64,
        machine => {
            return Err(ImageError::UnsupportedMachine {
                path: path.to_owned(),
                machine,
            });
        }
    };
    let endian = file.endian();
    let mut pvh_entry = None;
    for segment in file.elf_program_headers() {
        let Some(mut notes) = segment.notes(endian, data).map_err(malformed)? else {
            continue;
        };
        while let Some(note) = notes.next().map_err(malformed)? {
            if note.name() == b"Xen"
                && note.n_type(endian) == XEN_ELFNOTE_PHYS32_ENTRY
                && let Some(desc) = note.desc().first_chunk::<4>()
            {
                pvh_entry = Some(endian_u32(endian, *desc));
            }
        }
    }
    Ok(ImageInfo { arch, pvh_entry })
}

fn endian_u32(endian: object::Endianness, bytes: [u8; 4]) -> u32 {
    match endian {
        object::Endianness::Little => u32::from_le_bytes(bytes),
        object::Endianness::Big => u32::from_be_bytes(bytes),
    }
}

fn describe_magic(data: &[u8]) -> String {
    if data.is_empty() {
        return "nothing: the file is empty".to_owned();
    }
    let head: Vec<String> = data.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("bytes {}", head.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_not_elf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let err = inspect(&path).unwrap_err();
        assert!(matches!(err, ImageError::NotElf { .. }), "{err:?}");
        assert!(err.to_string().contains("the file is empty"), "{err}");
    }

    /// Only the header is read of a file that is no ELF: a sparse 64 GiB file (a disk image
    /// given by mistake, say) is refused at once, not read whole.
    #[test]
    fn a_large_file_that_is_no_elf_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(64 << 30).unwrap();
        let err = inspect(&path).unwrap_err();
        assert!(matches!(err, ImageError::NotElf { .. }), "{err:?}");
        assert!(err.to_string().contains("bytes 00 00 00 00"), "{err}");
    }

    #[test]
    fn truncated_elf_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trunc");
        let mut header = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        header.resize(40, 0);
        std::fs::write(&path, &header).unwrap();
        let err = inspect(&path).unwrap_err();
        assert!(matches!(err, ImageError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = inspect(Path::new("/nonexistent/app.elf")).unwrap_err();
        assert!(matches!(err, ImageError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/app.elf"), "{err}");
    }
}
