//! x86_64 relocations for static executables and kernels, with the GOT and TLS relaxations
//! of the x86-64 psABI (the same rewrites GNU ld and lld perform).

use object::elf::*;

use super::{Applied, Arch, GotUse, RelocError, RelocValue, TargetKind, TlsSegment};

pub struct X86_64;

const NAMES: &[(u32, &str)] = &[
    (R_X86_64_NONE, "R_X86_64_NONE"),
    (R_X86_64_64, "R_X86_64_64"),
    (R_X86_64_PC32, "R_X86_64_PC32"),
    (R_X86_64_GOT32, "R_X86_64_GOT32"),
    (R_X86_64_PLT32, "R_X86_64_PLT32"),
    (R_X86_64_GOTPCREL, "R_X86_64_GOTPCREL"),
    (R_X86_64_32, "R_X86_64_32"),
    (R_X86_64_32S, "R_X86_64_32S"),
    (R_X86_64_16, "R_X86_64_16"),
    (R_X86_64_PC16, "R_X86_64_PC16"),
    (R_X86_64_8, "R_X86_64_8"),
    (R_X86_64_PC8, "R_X86_64_PC8"),
    (R_X86_64_DTPMOD64, "R_X86_64_DTPMOD64"),
    (R_X86_64_DTPOFF64, "R_X86_64_DTPOFF64"),
    (R_X86_64_TPOFF64, "R_X86_64_TPOFF64"),
    (R_X86_64_TLSGD, "R_X86_64_TLSGD"),
    (R_X86_64_TLSLD, "R_X86_64_TLSLD"),
    (R_X86_64_DTPOFF32, "R_X86_64_DTPOFF32"),
    (R_X86_64_GOTTPOFF, "R_X86_64_GOTTPOFF"),
    (R_X86_64_TPOFF32, "R_X86_64_TPOFF32"),
    (R_X86_64_PC64, "R_X86_64_PC64"),
    (R_X86_64_GOTOFF64, "R_X86_64_GOTOFF64"),
    (R_X86_64_GOTPC32, "R_X86_64_GOTPC32"),
    (R_X86_64_GOT64, "R_X86_64_GOT64"),
    (R_X86_64_GOTPCREL64, "R_X86_64_GOTPCREL64"),
    (R_X86_64_GOTPC64, "R_X86_64_GOTPC64"),
    (R_X86_64_GOTPLT64, "R_X86_64_GOTPLT64"),
    (R_X86_64_PLTOFF64, "R_X86_64_PLTOFF64"),
    (R_X86_64_SIZE32, "R_X86_64_SIZE32"),
    (R_X86_64_SIZE64, "R_X86_64_SIZE64"),
    (R_X86_64_GOTPC32_TLSDESC, "R_X86_64_GOTPC32_TLSDESC"),
    (R_X86_64_TLSDESC_CALL, "R_X86_64_TLSDESC_CALL"),
    (R_X86_64_TLSDESC, "R_X86_64_TLSDESC"),
    (R_X86_64_IRELATIVE, "R_X86_64_IRELATIVE"),
    (R_X86_64_GOTPCRELX, "R_X86_64_GOTPCRELX"),
    (R_X86_64_REX_GOTPCRELX, "R_X86_64_REX_GOTPCRELX"),
];

/// ModRM byte of a `disp32(%rip)` operand.
fn is_rip_relative(modrm: u8) -> bool {
    modrm & 0xc7 == 0x05
}

/// Whether a GOTPCRELX-style load can become a direct reference: `mov` becomes `lea`,
/// indirect `call`/`jmp` become direct ones.
fn gotpcrelx_relaxable(data: &[u8], offset: usize) -> bool {
    let Some(start) = offset.checked_sub(2) else {
        return false;
    };
    let (Some(&op), Some(&modrm)) = (data.get(start), data.get(start + 1)) else {
        return false;
    };
    if !is_rip_relative(modrm) {
        return false;
    }
    match op {
        0x8b => true,
        0xff => modrm == 0x15 || modrm == 0x25,
        _ => false,
    }
}

/// Whether an initial-exec `movq`/`addq x@gottpoff(%rip), %reg` can become local-exec.
fn gottpoff_relaxable(data: &[u8], offset: usize) -> bool {
    let Some(start) = offset.checked_sub(3) else {
        return false;
    };
    match data.get(start..offset) {
        Some(&[rex, op, modrm]) => {
            matches!(rex, 0x48 | 0x4c) && matches!(op, 0x8b | 0x03) && is_rip_relative(modrm)
        }
        _ => false,
    }
}

fn fits_signed(value: i128, bits: u32) -> Result<(), RelocError> {
    let min = -(1i128 << (bits - 1));
    let max = (1i128 << (bits - 1)) - 1;
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RelocError::Overflow { value, bits })
    }
}

fn fits_unsigned(value: i128, bits: u32) -> Result<(), RelocError> {
    if (0..(1i128 << bits)).contains(&value) {
        Ok(())
    } else {
        Err(RelocError::Overflow { value, bits })
    }
}

/// Either interpretation is accepted, as GNU ld does for the narrow absolute types.
fn fits_either(value: i128, bits: u32) -> Result<(), RelocError> {
    fits_signed(value, bits).or_else(|_| fits_unsigned(value, bits))
}

fn write(data: &mut [u8], offset: usize, bytes: &[u8]) -> Result<(), RelocError> {
    data.get_mut(offset..offset + bytes.len())
        .ok_or(RelocError::OutOfBounds)?
        .copy_from_slice(bytes);
    Ok(())
}

fn expect(
    data: &[u8],
    at: Option<usize>,
    bytes: &[u8],
    what: &'static str,
) -> Result<(), RelocError> {
    match at.and_then(|at| data.get(at..at + bytes.len())) {
        Some(found) if found == bytes => Ok(()),
        _ => Err(RelocError::Instruction(what)),
    }
}

impl Arch for X86_64 {
    fn name(&self) -> &'static str {
        "x86_64"
    }

    fn e_machine(&self) -> u16 {
        EM_X86_64
    }

    fn page_size(&self) -> u64 {
        0x1000
    }

    fn default_base(&self) -> u64 {
        0x40_0000
    }

    fn reloc_name(&self, r_type: u32) -> Option<&'static str> {
        NAMES.iter().find(|(t, _)| *t == r_type).map(|(_, n)| *n)
    }

    fn got_use(&self, r_type: u32, data: &[u8], offset: u64, target: TargetKind) -> GotUse {
        let offset = offset as usize;
        match r_type {
            R_X86_64_GOTPCREL | R_X86_64_GOT32 | R_X86_64_GOT64 | R_X86_64_GOTPCREL64 => {
                GotUse::Address
            }
            R_X86_64_GOTPCRELX | R_X86_64_REX_GOTPCRELX => {
                if target == TargetKind::ImageRelative && gotpcrelx_relaxable(data, offset) {
                    GotUse::None
                } else {
                    GotUse::Address
                }
            }
            R_X86_64_GOTTPOFF if !gottpoff_relaxable(data, offset) => GotUse::TpOffset,
            _ => GotUse::None,
        }
    }

    fn apply(&self, r: &RelocValue, data: &mut [u8], offset: usize) -> Result<Applied, RelocError> {
        let s = i128::from(r.symbol);
        let a = i128::from(r.addend);
        let p = i128::from(r.place);
        let got = i128::from(r.got);
        let slot = || r.got_slot.map(i128::from).ok_or(RelocError::NoGotSlot);
        let tp = || r.tp_offset.map(i128::from).ok_or(RelocError::NoTls);
        let w32 = |data: &mut [u8], v: i128| write(data, offset, &(v as u32).to_le_bytes());
        let w64 = |data: &mut [u8], v: i128| write(data, offset, &(v as u64).to_le_bytes());
        if data.len() < offset + 1 {
            return Err(RelocError::OutOfBounds);
        }
        match r.r_type {
            R_X86_64_NONE => {}
            R_X86_64_64 => w64(data, s + a)?,
            R_X86_64_PC64 => w64(data, s + a - p)?,
            R_X86_64_PC32 | R_X86_64_PLT32 => {
                let v = s + a - p;
                fits_signed(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_32 => {
                let v = s + a;
                fits_unsigned(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_32S => {
                let v = s + a;
                fits_signed(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_16 => {
                let v = s + a;
                fits_either(v, 16)?;
                write(data, offset, &(v as u16).to_le_bytes())?;
            }
            R_X86_64_PC16 => {
                let v = s + a - p;
                fits_signed(v, 16)?;
                write(data, offset, &(v as u16).to_le_bytes())?;
            }
            R_X86_64_8 => {
                let v = s + a;
                fits_either(v, 8)?;
                write(data, offset, &[v as u8])?;
            }
            R_X86_64_PC8 => {
                let v = s + a - p;
                fits_signed(v, 8)?;
                write(data, offset, &[v as u8])?;
            }
            R_X86_64_GOTPCREL => {
                let v = slot()? + a - p;
                fits_signed(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_GOTPCRELX | R_X86_64_REX_GOTPCRELX => {
                if let Some(g) = r.got_slot {
                    let v = i128::from(g) + a - p;
                    fits_signed(v, 32)?;
                    w32(data, v)?;
                } else {
                    let v = s + a - p;
                    fits_signed(v, 32)?;
                    let start = offset.checked_sub(2).ok_or(RelocError::OutOfBounds)?;
                    match (data[start], data[start + 1]) {
                        (0x8b, _) => {
                            data[start] = 0x8d;
                            w32(data, v)?;
                        }
                        (0xff, 0x15) => {
                            // `call *x@GOTPCREL(%rip)` → `addr32 call x`, same length.
                            data[start] = 0x67;
                            data[start + 1] = 0xe8;
                            w32(data, v)?;
                        }
                        (0xff, 0x25) => {
                            // `jmp *x@GOTPCREL(%rip)` → `jmp x; nop`: the displacement
                            // starts one byte earlier, so it is one larger.
                            data[start] = 0xe9;
                            write(data, start + 1, &((v + 1) as u32).to_le_bytes())?;
                            write(data, offset + 3, &[0x90])?;
                        }
                        _ => return Err(RelocError::Instruction("R_X86_64_GOTPCRELX")),
                    }
                }
            }
            R_X86_64_GOT32 => {
                let v = slot()? - got + a;
                fits_signed(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_GOT64 => w64(data, slot()? - got + a)?,
            R_X86_64_GOTPCREL64 => w64(data, slot()? + a - p)?,
            R_X86_64_GOTOFF64 => w64(data, s + a - got)?,
            R_X86_64_GOTPC32 => {
                let v = got + a - p;
                fits_signed(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_GOTPC64 => w64(data, got + a - p)?,
            R_X86_64_SIZE32 => {
                let v = i128::from(r.size) + a;
                fits_unsigned(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_SIZE64 => w64(data, i128::from(r.size) + a)?,
            // Local-dynamic is always relaxed to local-exec in a static image, so DTPOFF
            // values become thread-pointer offsets, as in GNU ld and lld.
            R_X86_64_TPOFF32 | R_X86_64_DTPOFF32 => {
                let v = tp()? + a;
                fits_signed(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_TPOFF64 | R_X86_64_DTPOFF64 => w64(data, tp()? + a)?,
            R_X86_64_GOTTPOFF => {
                if let Some(g) = r.got_slot {
                    let v = i128::from(g) + a - p;
                    fits_signed(v, 32)?;
                    w32(data, v)?;
                } else {
                    let start = offset.checked_sub(3).ok_or(RelocError::OutOfBounds)?;
                    let (rex, op, modrm) = (data[start], data[start + 1], data[start + 2]);
                    let reg = (modrm >> 3) & 7;
                    match (rex, op) {
                        // `addq x@gottpoff(%rip), %rsp/%r12` cannot use the lea form
                        // (rsp/r12 as base need a SIB byte), so it becomes `addq $x, %reg`.
                        (0x48 | 0x4c, 0x03) if reg == 4 => {
                            data[start] = if rex == 0x4c { 0x49 } else { 0x48 };
                            data[start + 1] = 0x81;
                            data[start + 2] = 0xc0 | reg;
                        }
                        (0x48 | 0x4c, 0x03) => {
                            data[start] = if rex == 0x4c { 0x4d } else { 0x48 };
                            data[start + 1] = 0x8d;
                            data[start + 2] = 0x80 | (reg << 3) | reg;
                        }
                        (0x48 | 0x4c, 0x8b) => {
                            data[start] = if rex == 0x4c { 0x49 } else { 0x48 };
                            data[start + 1] = 0xc7;
                            data[start + 2] = 0xc0 | reg;
                        }
                        _ => return Err(RelocError::Instruction("R_X86_64_GOTTPOFF")),
                    }
                    // The PC-relative form's addend carried -4 for the displacement's end.
                    let v = tp()? + a + 4;
                    fits_signed(v, 32)?;
                    w32(data, v)?;
                }
            }
            R_X86_64_TLSGD => {
                // data16 lea x@tlsgd(%rip),%rdi; data16 data16 rex64 call __tls_get_addr
                // → mov %fs:0,%rax; lea x@tpoff(%rax),%rax
                expect(
                    data,
                    offset.checked_sub(4),
                    &[0x66, 0x48, 0x8d, 0x3d],
                    "R_X86_64_TLSGD",
                )?;
                expect(
                    data,
                    Some(offset + 4),
                    &[0x66, 0x66, 0x48, 0xe8],
                    "R_X86_64_TLSGD",
                )?;
                let v = tp()? + a + 4;
                fits_signed(v, 32)?;
                let mut seq = [
                    0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x48, 0x8d, 0x80, 0, 0, 0, 0,
                ];
                seq[12..].copy_from_slice(&(v as u32).to_le_bytes());
                write(data, offset - 4, &seq)?;
                return Ok(Applied::SkipNext);
            }
            R_X86_64_TLSLD => {
                // lea x@tlsld(%rip),%rdi; call __tls_get_addr → data16×3 mov %fs:0,%rax
                expect(
                    data,
                    offset.checked_sub(3),
                    &[0x48, 0x8d, 0x3d],
                    "R_X86_64_TLSLD",
                )?;
                expect(data, Some(offset + 4), &[0xe8], "R_X86_64_TLSLD")?;
                tp()?;
                write(
                    data,
                    offset - 3,
                    &[0x66, 0x66, 0x66, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0],
                )?;
                return Ok(Applied::SkipNext);
            }
            R_X86_64_GOTPC32_TLSDESC => {
                // lea x@tlsdesc(%rip),%reg → mov $x@tpoff,%reg
                let start = offset.checked_sub(3).ok_or(RelocError::OutOfBounds)?;
                let (rex, op, modrm) = (data[start], data[start + 1], data[start + 2]);
                if !matches!(rex, 0x48 | 0x4c) || op != 0x8d || !is_rip_relative(modrm) {
                    return Err(RelocError::Instruction("R_X86_64_GOTPC32_TLSDESC"));
                }
                data[start] = if rex == 0x4c { 0x49 } else { 0x48 };
                data[start + 1] = 0xc7;
                data[start + 2] = 0xc0 | ((modrm >> 3) & 7);
                let v = tp()? + a + 4;
                fits_signed(v, 32)?;
                w32(data, v)?;
            }
            R_X86_64_TLSDESC_CALL => {
                // call *x@tlscall(%rax) → xchg %ax,%ax
                expect(data, Some(offset), &[0xff, 0x10], "R_X86_64_TLSDESC_CALL")?;
                write(data, offset, &[0x66, 0x90])?;
            }
            other => return Err(RelocError::Unsupported(other)),
        }
        Ok(Applied::Done)
    }

    fn tp_offset(&self, addr: u64, tls: &TlsSegment) -> i64 {
        // Variant II: the thread pointer sits just past the TLS block.
        let block = tls.mem_size.next_multiple_of(tls.align.max(1));
        addr.wrapping_sub(tls.addr).wrapping_sub(block) as i64
    }
}
