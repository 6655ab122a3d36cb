//! `.eh_frame_hdr`: the table an unwinder binary-searches for the FDE covering a return
//! address, found through the `PT_GNU_EH_FRAME` program header. LLVM's libunwind, which Rust's
//! musl programs link, finds FDEs only this way (no crtbegin registers them), so without it a
//! Rust panic cannot unwind and aborts.
//!
//! The table is filled after relocation, from the output `.eh_frame` itself: each FDE's
//! `pc_begin` is read as its CIE's augmentation encodes it, at the address it was written to.
//! Layout reserves [`size`] bytes for the FDEs it kept.

use crate::error::{Error, Result};

/// `version`, `eh_frame_ptr_enc`, `fde_count_enc`, `table_enc`: version 1, a pc-relative
/// `.eh_frame` pointer, a plain 4-byte count, and table entries relative to the header.
const HEADER: [u8; 4] = [1, DW_EH_PE_PCREL | DW_EH_PE_SDATA4, DW_EH_PE_UDATA4, 0x3b];
const DW_EH_PE_OMIT: u8 = 0xff;
const DW_EH_PE_UDATA2: u8 = 0x02;
const DW_EH_PE_UDATA4: u8 = 0x03;
const DW_EH_PE_UDATA8: u8 = 0x04;
const DW_EH_PE_SDATA2: u8 = 0x0a;
const DW_EH_PE_SDATA4: u8 = 0x0b;
const DW_EH_PE_SDATA8: u8 = 0x0c;
const DW_EH_PE_PCREL: u8 = 0x10;

/// Bytes of a header indexing `fdes` FDEs.
pub fn size(fdes: u64) -> u64 {
    12 + 8 * fdes
}

/// Writes the header at `hdr_addr` into `hdr` for the `.eh_frame` bytes `frame`, loaded at
/// `frame_addr`. `hdr` was sized by [`size`] for the FDEs layout kept.
pub fn fill(hdr: &mut [u8], hdr_addr: u64, frame: &[u8], frame_addr: u64) -> Result<()> {
    let mut table = fde_starts(frame, frame_addr)?;
    table.sort_unstable();
    let fdes = table.len() as u64;
    if size(fdes) != hdr.len() as u64 {
        return Err(error(format!(
            "{fdes} FDEs in the output .eh_frame, but {} reserved",
            (hdr.len() as u64).saturating_sub(12) / 8
        )));
    }
    let relative = |to: u64, from: u64| -> Result<[u8; 4]> {
        i32::try_from(to.wrapping_sub(from) as i64)
            .map(i32::to_le_bytes)
            .map_err(|_| error(format!("{to:#x} is out of 32-bit reach of {from:#x}")))
    };
    hdr[..4].copy_from_slice(&HEADER);
    hdr[4..8].copy_from_slice(&relative(frame_addr, hdr_addr + 4)?);
    hdr[8..12].copy_from_slice(
        &u32::try_from(fdes)
            .map_err(|_| error(format!("{fdes} FDEs")))?
            .to_le_bytes(),
    );
    for (entry, (pc, fde)) in hdr[12..].chunks_exact_mut(8).zip(table) {
        entry[..4].copy_from_slice(&relative(pc, hdr_addr)?);
        entry[4..].copy_from_slice(&relative(fde, hdr_addr)?);
    }
    Ok(())
}

fn error(reason: String) -> Error {
    Error::EhFrameHdr(reason)
}

/// Every FDE's (`pc_begin`, address of the FDE), in section order.
fn fde_starts(frame: &[u8], frame_addr: u64) -> Result<Vec<(u64, u64)>> {
    let mut encodings: Vec<(usize, u8)> = Vec::new();
    let mut table = Vec::new();
    let mut pos = 0usize;
    while pos + 4 <= frame.len() {
        let length = u32::from_le_bytes(frame[pos..pos + 4].try_into().expect("4 bytes"));
        if length == 0 {
            pos += 4;
            continue;
        }
        if length == u32::MAX {
            return Err(error(format!(
                "record at .eh_frame offset {pos:#x} has a 64-bit length"
            )));
        }
        let body = pos + 4;
        let end = body
            .checked_add(length as usize)
            .filter(|&end| end <= frame.len())
            .ok_or_else(|| {
                error(format!(
                    "record at .eh_frame offset {pos:#x} runs past the end"
                ))
            })?;
        if end < body + 4 {
            return Err(error(format!(
                "record at .eh_frame offset {pos:#x} is too short for its id"
            )));
        }
        let id = u32::from_le_bytes(read(frame, body, 4, pos)?.try_into().expect("4 bytes"));
        if id == 0 {
            encodings.push((pos, cie_fde_encoding(&frame[body + 4..end], pos)?));
        } else {
            let cie = body.checked_sub(id as usize);
            let encoding = encodings
                .iter()
                .find(|&&(at, _)| Some(at) == cie)
                .map(|&(_, encoding)| encoding)
                .ok_or_else(|| {
                    error(format!("FDE at .eh_frame offset {pos:#x} points at no CIE"))
                })?;
            let field = body + 4;
            let pc = read_encoded(frame, field, frame_addr + field as u64, encoding, pos)?;
            table.push((pc, frame_addr + pos as u64));
        }
        pos = end;
    }
    Ok(table)
}

/// The `R` augmentation's encoding of FDE addresses in the CIE whose body after the CIE id is
/// `cie`; absolute 8 bytes when there is none.
fn cie_fde_encoding(cie: &[u8], at: usize) -> Result<u8> {
    let bad = || error(format!("CIE at .eh_frame offset {at:#x} is malformed"));
    let version = *cie.first().ok_or_else(bad)?;
    let aug_end = cie[1..].iter().position(|&b| b == 0).ok_or_else(bad)? + 1;
    let augmentation = &cie[1..aug_end];
    let mut pos = aug_end + 1;
    if augmentation.starts_with(b"eh") {
        pos += 8;
    }
    uleb(cie, &mut pos).ok_or_else(bad)?; // code alignment
    uleb(cie, &mut pos).ok_or_else(bad)?; // data alignment (sleb: same length)
    if version == 1 {
        pos += 1;
    } else {
        uleb(cie, &mut pos).ok_or_else(bad)?;
    }
    if augmentation.first() != Some(&b'z') {
        return Ok(0);
    }
    uleb(cie, &mut pos).ok_or_else(bad)?;
    for &letter in &augmentation[1..] {
        match letter {
            b'R' => return cie.get(pos).copied().ok_or_else(bad),
            b'L' => pos += 1,
            b'P' => {
                let encoding = *cie.get(pos).ok_or_else(bad)?;
                pos += 1 + encoded_size(encoding, at)?;
            }
            b'S' | b'B' => {}
            _ => {
                return Err(error(format!(
                    "CIE at .eh_frame offset {at:#x} has augmentation {:?}",
                    String::from_utf8_lossy(augmentation)
                )));
            }
        }
    }
    Ok(0)
}

fn uleb(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        if shift < 64 {
            value |= u64::from(byte & 0x7f) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
}

fn encoded_size(encoding: u8, at: usize) -> Result<usize> {
    match encoding & 0x0f {
        0x00 | DW_EH_PE_UDATA8 | DW_EH_PE_SDATA8 => Ok(8),
        DW_EH_PE_UDATA4 | DW_EH_PE_SDATA4 => Ok(4),
        DW_EH_PE_UDATA2 | DW_EH_PE_SDATA2 => Ok(2),
        _ => Err(error(format!(
            "record at .eh_frame offset {at:#x}: pointer encoding {encoding:#x}"
        ))),
    }
}

fn read(frame: &[u8], at: usize, len: usize, record: usize) -> Result<&[u8]> {
    frame.get(at..at + len).ok_or_else(|| {
        error(format!(
            "record at .eh_frame offset {record:#x} is truncated"
        ))
    })
}

/// The pointer encoded with `encoding` at `frame[at..]`, whose address is `addr`. Only
/// absolute and pc-relative values occur in static executables' `.eh_frame`.
fn read_encoded(frame: &[u8], at: usize, addr: u64, encoding: u8, record: usize) -> Result<u64> {
    if encoding == DW_EH_PE_OMIT || encoding & !(0x0f | DW_EH_PE_PCREL) != 0 {
        return Err(error(format!(
            "FDE at .eh_frame offset {record:#x}: pointer encoding {encoding:#x}"
        )));
    }
    let bytes = read(frame, at, encoded_size(encoding, record)?, record)?;
    let value = match encoding & 0x0f {
        DW_EH_PE_UDATA2 => u64::from(u16::from_le_bytes(bytes.try_into().expect("2 bytes"))),
        DW_EH_PE_SDATA2 => i16::from_le_bytes(bytes.try_into().expect("2 bytes")) as u64,
        DW_EH_PE_UDATA4 => u64::from(u32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
        DW_EH_PE_SDATA4 => i32::from_le_bytes(bytes.try_into().expect("4 bytes")) as u64,
        _ => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
    };
    Ok(if encoding & DW_EH_PE_PCREL != 0 {
        addr.wrapping_add(value)
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CIE with augmentation "zR" and pc-relative sdata4 FDE pointers, then two FDEs out of
    /// address order and crtend's terminator.
    fn frame() -> Vec<u8> {
        let mut frame = Vec::new();
        // CIE: length, id 0, version 1, "zR", code align 1, data align -8, ra 16, aug len 1, R.
        frame.extend_from_slice(&[
            0x10, 0, 0, 0, 0, 0, 0, 0, 1, b'z', b'R', 0, 1, 0x78, 16, 1, 0x1b,
        ]);
        frame.extend_from_slice(&[0, 0, 0]); // padding to the CIE's length
        for (back, pc) in [(0x18u32, 0x2000i32), (0x2c, -0x1000)] {
            frame.extend_from_slice(&[0x10, 0, 0, 0]);
            frame.extend_from_slice(&back.to_le_bytes());
            frame.extend_from_slice(&pc.to_le_bytes());
            frame.extend_from_slice(&[0x10, 0, 0, 0, 0, 0, 0, 0]);
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame
    }

    #[test]
    fn table_is_sorted_by_pc_and_relative_to_the_header() {
        let frame = frame();
        let (frame_addr, hdr_addr) = (0x10_000u64, 0xf000u64);
        let mut hdr = vec![0u8; size(2) as usize];
        fill(&mut hdr, hdr_addr, &frame, frame_addr).unwrap();
        let word = |at: usize| i32::from_le_bytes(hdr[at..at + 4].try_into().unwrap());
        assert_eq!(hdr[..4], HEADER);
        assert_eq!(i64::from(word(4)), (frame_addr - hdr_addr - 4) as i64);
        assert_eq!(word(8), 2);
        // The second FDE (at 0x28, pc_begin field at 0x30) begins lower.
        let first_pc = frame_addr + 0x30 - 0x1000;
        assert_eq!(i64::from(word(12)), first_pc as i64 - hdr_addr as i64);
        assert_eq!(i64::from(word(16)), (frame_addr + 0x28 - hdr_addr) as i64);
        let second_pc = frame_addr + 0x1c + 0x2000;
        assert_eq!(i64::from(word(20)), second_pc as i64 - hdr_addr as i64);
        assert_eq!(i64::from(word(24)), (frame_addr + 0x14 - hdr_addr) as i64);
    }

    #[test]
    fn a_count_other_than_the_reserved_one_is_an_error() {
        let mut hdr = vec![0u8; size(3) as usize];
        let error = fill(&mut hdr, 0xf000, &frame(), 0x10_000).unwrap_err();
        assert!(error.to_string().contains("2 FDEs"), "{error}");
    }
}
