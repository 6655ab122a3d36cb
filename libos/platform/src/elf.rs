//! The loaded segments of the running image, read from its own ELF and program headers
//! (`__ehdr_start`), and the access each page of them allows. The aarch64 runtime maps the
//! image page by page with these permissions (W^X).
//!
//! The headers are read as little-endian 64-bit words: boot reads them with the MMU off,
//! where every access must be aligned, and word loads are what the target then compiles to
//! one instruction each (byte slices would be read byte by byte).

/// Words of an ELF64 header.
pub const EHDR_WORDS: usize = 8;
/// Words of an ELF64 program header.
const PHDR_WORDS: usize = 7;
/// `\x7fELF`, ELFCLASS64 (2), ELFDATA2LSB (1): the identification's first six bytes.
const ELF64_LITTLE_ENDIAN: u64 = 0x0102_464c_457f;
const IDENT_MASK: u64 = 0xffff_ffff_ffff;
const PT_LOAD: u64 = 1;
const PF_X: u64 = 1;
const PF_W: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Not `\x7fELF`, 64-bit, little endian.
    NotElf64,
    /// Program headers of another size than ELF64's.
    PhdrSize(u16),
    /// Program headers that do not start on a multiple of 8 bytes.
    PhdrAlignment(u64),
    /// The words end before the program headers do.
    Truncated,
    /// More loaded segments than the caller has room for.
    TooMany(usize),
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ElfError::NotElf64 => f.write_str("not a little-endian ELF64 header"),
            ElfError::PhdrSize(size) => write!(f, "program headers of {size} bytes, not 56"),
            ElfError::PhdrAlignment(offset) => {
                write!(f, "program headers at offset {offset}, not a multiple of 8")
            }
            ElfError::Truncated => f.write_str("the program headers are cut short"),
            ElfError::TooMany(most) => write!(f, "more than {most} loaded segments"),
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

/// What a page may be used for, in increasing order of what wins on a page that two
/// segments share: executable over read-only, writable over both, so W^X holds even for a
/// layout that does not keep segments on pages of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    ReadOnly,
    ReadExecute,
    ReadWrite,
}

impl Segment {
    pub fn access(&self) -> Access {
        if self.writable {
            Access::ReadWrite
        } else if self.executable {
            Access::ReadExecute
        } else {
            Access::ReadOnly
        }
    }
}

/// How many words from the ELF header's start cover the program headers, from the first
/// [`EHDR_WORDS`] words.
pub fn headers_words(header: &[u64]) -> Result<usize, ElfError> {
    let [ident, _, _, _, phoff, _, sizes, counts, ..] = *header else {
        return Err(ElfError::NotElf64);
    };
    if ident & IDENT_MASK != ELF64_LITTLE_ENDIAN {
        return Err(ElfError::NotElf64);
    }
    let phentsize = (sizes >> 48) as u16;
    let phnum = counts as u16;
    if usize::from(phentsize) != PHDR_WORDS * 8 && phnum != 0 {
        return Err(ElfError::PhdrSize(phentsize));
    }
    if phoff % 8 != 0 {
        return Err(ElfError::PhdrAlignment(phoff));
    }
    usize::try_from(phoff / 8)
        .ok()
        .and_then(|off| off.checked_add(usize::from(phnum) * PHDR_WORDS))
        .ok_or(ElfError::Truncated)
}

/// Writes the `PT_LOAD` segments of the ELF whose headers are `headers` (at least
/// [`headers_words`] words) into `out`, in program header order, and returns how many.
pub fn loaded_segments(headers: &[u64], out: &mut [Segment]) -> Result<usize, ElfError> {
    let len = headers_words(headers)?;
    if headers.len() < len {
        return Err(ElfError::Truncated);
    }
    // `headers_words` checked both fields.
    let phoff = (headers[4] / 8) as usize;
    let phnum = usize::from(headers[7] as u16);
    let mut count = 0;
    for phdr in headers[phoff..phoff + phnum * PHDR_WORDS].chunks_exact(PHDR_WORDS) {
        if phdr[0] & 0xffff_ffff != PT_LOAD {
            continue;
        }
        let flags = phdr[0] >> 32;
        let slot = out.get_mut(count).ok_or(ElfError::TooMany(count))?;
        *slot = Segment {
            start: phdr[2],
            end: phdr[2].saturating_add(phdr[5]),
            writable: flags & PF_W != 0,
            executable: flags & PF_X != 0,
        };
        count += 1;
    }
    Ok(count)
}

/// Calls `set(first, count, access)` for runs of the `page_size`-byte pages of a block
/// starting at `block` (`pages` of them, numbered from 0) so that, once all calls are done,
/// each page has its segments' access, the strongest where segments share it ([`Access`]'s
/// order), and read-write for memory outside the image: first the whole block read-write,
/// then each segment's pages, class by class, strongest last. Runs, not pages, so that the
/// caller fills each with one tight loop: boot does this with the MMU off.
pub fn block_access(
    segments: &[Segment],
    block: u64,
    page_size: u64,
    pages: usize,
    mut set: impl FnMut(usize, usize, Access),
) {
    set(0, pages, Access::ReadWrite);
    let block_end = block + pages as u64 * page_size;
    for class in [Access::ReadOnly, Access::ReadExecute, Access::ReadWrite] {
        for segment in segments {
            let start = segment.start.max(block) / page_size * page_size;
            let end = segment.end.min(block_end);
            if segment.access() == class && start < end {
                let first = ((start - block) / page_size) as usize;
                set(first, (end - start).div_ceil(page_size) as usize, class);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn elf(phdrs: &[(u64, u32, u64, u64)]) -> Vec<u64> {
        let mut bytes = std::vec![0u8; EHDR_WORDS * 8];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[32..40].copy_from_slice(&(EHDR_WORDS as u64 * 8).to_le_bytes());
        bytes[54..56].copy_from_slice(&(PHDR_WORDS as u16 * 8).to_le_bytes());
        bytes[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(p_type, flags, vaddr, memsz) in phdrs {
            let mut phdr = [0u8; PHDR_WORDS * 8];
            phdr[0..4].copy_from_slice(&(p_type as u32).to_le_bytes());
            phdr[4..8].copy_from_slice(&flags.to_le_bytes());
            phdr[16..24].copy_from_slice(&vaddr.to_le_bytes());
            phdr[24..32].copy_from_slice(&vaddr.to_le_bytes());
            phdr[40..48].copy_from_slice(&memsz.to_le_bytes());
            bytes.extend_from_slice(&phdr);
        }
        bytes
            .chunks_exact(8)
            .map(|word| u64::from_le_bytes(word.try_into().unwrap()))
            .collect()
    }

    fn segments(headers: &[u64]) -> Result<Vec<Segment>, ElfError> {
        let mut out = [Segment {
            start: 0,
            end: 0,
            writable: false,
            executable: false,
        }; 8];
        let count = loaded_segments(headers, &mut out)?;
        Ok(out[..count].to_vec())
    }

    /// uniklink's virt layout: headers, code, read-only data, data and .bss, and a note.
    fn virt_image() -> Vec<u64> {
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
        assert_eq!(headers_words(&image), Ok(image.len()));
        let segments = segments(&image).unwrap();
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

    /// The access of every 4 KiB page of the 2 MiB block at `block`.
    fn accesses(segments: &[Segment], block: u64) -> Vec<Access> {
        let mut pages = std::vec![Access::ReadOnly; 512];
        block_access(segments, block, 0x1000, 512, |first, count, access| {
            pages[first..first + count].fill(access)
        });
        pages
    }

    #[test]
    fn each_page_gets_its_segments_access() {
        let image = virt_image();
        let segments = segments(&image).unwrap();
        let pages = accesses(&segments, 0x4020_0000);
        let access = |page: u64| pages[((page - 0x4020_0000) / 0x1000) as usize];
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
        assert!(
            accesses(&segments, 0x4040_0000)
                .iter()
                .all(|&a| a == Access::ReadWrite),
            "a block past the image is all heap"
        );
    }

    #[test]
    fn a_shared_page_is_never_writable_and_executable() {
        let code = Segment {
            start: 0x1000,
            end: 0x1800,
            writable: false,
            executable: true,
        };
        let data = Segment {
            start: 0x1800,
            end: 0x2000,
            writable: true,
            executable: false,
        };
        let rodata = Segment {
            start: 0x2000,
            end: 0x2800,
            writable: false,
            executable: false,
        };
        let code_after_rodata = Segment {
            start: 0x2800,
            end: 0x3000,
            writable: false,
            executable: true,
        };
        for order in [
            [data, code, rodata, code_after_rodata],
            [code_after_rodata, rodata, code, data],
        ] {
            let pages = accesses(&order, 0);
            assert_eq!(pages[1], Access::ReadWrite, "{order:?}");
            assert_eq!(pages[2], Access::ReadExecute, "{order:?}");
        }
    }

    #[test]
    fn damaged_headers_are_errors() {
        let image = virt_image();
        assert_eq!(
            segments(&image[..image.len() - 1]).err(),
            Some(ElfError::Truncated)
        );
        assert_eq!(headers_words(&image[..5]).err(), Some(ElfError::NotElf64));
        let mut big_endian = image.clone();
        big_endian[0] ^= 3 << 40;
        assert_eq!(headers_words(&big_endian).err(), Some(ElfError::NotElf64));
        let mut odd = image.clone();
        odd[6] = (odd[6] & !(0xffff << 48)) | (64 << 48);
        assert_eq!(headers_words(&odd).err(), Some(ElfError::PhdrSize(64)));
        let mut unaligned = image.clone();
        unaligned[4] = 68;
        assert_eq!(
            headers_words(&unaligned).err(),
            Some(ElfError::PhdrAlignment(68))
        );
        let mut room = [Segment {
            start: 0,
            end: 0,
            writable: false,
            executable: false,
        }; 3];
        assert_eq!(
            loaded_segments(&image, &mut room).err(),
            Some(ElfError::TooMany(3))
        );
    }
}
