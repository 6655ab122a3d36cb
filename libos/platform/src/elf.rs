//! The loaded segments of the running image, read from its own ELF and program headers
//! (`__ehdr_start`), and the access each page of them allows. The aarch64 runtime maps the
//! image page by page with these permissions (W^X).

/// Size of an ELF64 header.
pub const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Not `\x7fELF`, 64-bit, little endian.
    NotElf64,
    /// Program headers of another size than ELF64's.
    PhdrSize(u16),
    /// The bytes end before the program headers do.
    Truncated,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ElfError::NotElf64 => f.write_str("not a little-endian ELF64 header"),
            ElfError::PhdrSize(size) => write!(f, "program headers of {size} bytes, not 56"),
            ElfError::Truncated => f.write_str("the program headers are cut short"),
        }
    }
}

/// A loaded segment: its addresses and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub writable: bool,
    pub executable: bool,
}

/// What a page may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadExecute,
    ReadOnly,
    ReadWrite,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// How many bytes from the ELF header's start cover the program headers, from the first
/// [`EHDR_SIZE`] bytes.
pub fn headers_len(header: &[u8]) -> Result<usize, ElfError> {
    if header.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err(ElfError::NotElf64);
    }
    let phoff = u64_at(header, 32).ok_or(ElfError::NotElf64)?;
    let phentsize = u16_at(header, 54).ok_or(ElfError::NotElf64)?;
    let phnum = u16_at(header, 56).ok_or(ElfError::NotElf64)?;
    if usize::from(phentsize) != PHDR_SIZE && phnum != 0 {
        return Err(ElfError::PhdrSize(phentsize));
    }
    usize::try_from(phoff)
        .ok()
        .and_then(|off| off.checked_add(usize::from(phnum) * PHDR_SIZE))
        .ok_or(ElfError::Truncated)
}

/// The `PT_LOAD` segments of the ELF whose headers are `headers` (at least
/// [`headers_len`] bytes), in program header order.
pub fn loaded_segments(headers: &[u8]) -> Result<impl Iterator<Item = Segment> + '_, ElfError> {
    let len = headers_len(headers)?;
    if headers.len() < len {
        return Err(ElfError::Truncated);
    }
    // `headers_len` checked both fields.
    let phoff = u64_at(headers, 32).unwrap_or(0) as usize;
    let phnum = usize::from(u16_at(headers, 56).unwrap_or(0));
    Ok((0..phnum).filter_map(move |i| {
        let phdr = &headers[phoff + i * PHDR_SIZE..phoff + (i + 1) * PHDR_SIZE];
        if u32_at(phdr, 0)? != PT_LOAD {
            return None;
        }
        let flags = u32_at(phdr, 4)?;
        let start = u64_at(phdr, 16)?;
        Some(Segment {
            start,
            end: start.saturating_add(u64_at(phdr, 40)?),
            writable: flags & PF_W != 0,
            executable: flags & PF_X != 0,
        })
    }))
}

/// The access the page at `page` (`page_size` bytes) allows: its segment's, or read-write
/// for memory outside the image. A page that two segments share gets the union of their
/// rights, writable winning over executable, so W^X holds even for a layout that does not
/// keep segments on pages of their own.
pub fn page_access(segments: &[Segment], page: u64, page_size: u64) -> Access {
    let page_end = page.saturating_add(page_size);
    let mut access = None;
    for segment in segments {
        if segment.start >= page_end || segment.end <= page || segment.start == segment.end {
            continue;
        }
        let this = if segment.writable {
            Access::ReadWrite
        } else if segment.executable {
            Access::ReadExecute
        } else {
            Access::ReadOnly
        };
        access = Some(match (access, this) {
            (None, this) => this,
            (Some(Access::ReadWrite), _) | (_, Access::ReadWrite) => Access::ReadWrite,
            (Some(Access::ReadExecute), _) | (_, Access::ReadExecute) => Access::ReadExecute,
            _ => Access::ReadOnly,
        });
    }
    access.unwrap_or(Access::ReadWrite)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn elf(phdrs: &[(u32, u32, u64, u64)]) -> Vec<u8> {
        let mut bytes = std::vec![0u8; EHDR_SIZE];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        bytes[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        bytes[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(p_type, flags, vaddr, memsz) in phdrs {
            let mut phdr = [0u8; PHDR_SIZE];
            phdr[0..4].copy_from_slice(&p_type.to_le_bytes());
            phdr[4..8].copy_from_slice(&flags.to_le_bytes());
            phdr[16..24].copy_from_slice(&vaddr.to_le_bytes());
            phdr[24..32].copy_from_slice(&vaddr.to_le_bytes());
            phdr[40..48].copy_from_slice(&memsz.to_le_bytes());
            bytes.extend_from_slice(&phdr);
        }
        bytes
    }

    /// uniklink's virt layout: headers, code, read-only data, data and .bss, and a note.
    fn virt_image() -> Vec<u8> {
        elf(&[
            (PT_LOAD, 4, 0x4020_0000, 0x1b4),
            (PT_LOAD, 5, 0x4020_11b4, 0x7a08),
            (PT_LOAD, 4, 0x4020_9bbc, 0x1fec),
            (PT_LOAD, 6, 0x4020_cba8, 0x3_1590),
            (4, 4, 0x4020_0190, 0x24),
        ])
    }

    #[test]
    fn segments_of_a_virt_image() {
        let image = virt_image();
        assert_eq!(headers_len(&image), Ok(image.len()));
        let segments: Vec<_> = loaded_segments(&image).unwrap().collect();
        assert_eq!(segments.len(), 4, "the note is not loaded separately");
        assert_eq!(
            segments[1],
            Segment {
                start: 0x4020_11b4,
                end: 0x4020_8bbc,
                writable: false,
                executable: true
            }
        );
        assert!(segments[3].writable && !segments[3].executable);
    }

    #[test]
    fn each_page_gets_its_segments_access() {
        let image = virt_image();
        let segments: Vec<_> = loaded_segments(&image).unwrap().collect();
        let access = |page| page_access(&segments, page, 0x1000);
        assert_eq!(access(0x4020_0000), Access::ReadOnly, "headers");
        assert_eq!(
            access(0x4020_1000),
            Access::ReadExecute,
            "code's first page"
        );
        assert_eq!(access(0x4020_8000), Access::ReadExecute, "code's last page");
        assert_eq!(access(0x4020_9000), Access::ReadOnly, "rodata");
        assert_eq!(access(0x4020_c000), Access::ReadWrite, "data");
        assert_eq!(access(0x4023_d000), Access::ReadWrite, ".bss's last page");
        assert_eq!(
            access(0x4030_0000),
            Access::ReadWrite,
            "heap above the image"
        );
    }

    #[test]
    fn a_shared_page_is_never_writable_and_executable() {
        let segments = [
            Segment {
                start: 0x1000,
                end: 0x1800,
                writable: false,
                executable: true,
            },
            Segment {
                start: 0x1800,
                end: 0x2000,
                writable: true,
                executable: false,
            },
        ];
        assert_eq!(page_access(&segments, 0x1000, 0x1000), Access::ReadWrite);
    }

    #[test]
    fn damaged_headers_are_errors() {
        let image = virt_image();
        assert_eq!(
            loaded_segments(&image[..image.len() - 1]).err(),
            Some(ElfError::Truncated)
        );
        assert_eq!(headers_len(&image[..20]).err(), Some(ElfError::NotElf64));
        let mut big_endian = image.clone();
        big_endian[5] = 2;
        assert_eq!(headers_len(&big_endian).err(), Some(ElfError::NotElf64));
        let mut odd = image;
        odd[54] = 64;
        assert_eq!(headers_len(&odd).err(), Some(ElfError::PhdrSize(64)));
    }
}
