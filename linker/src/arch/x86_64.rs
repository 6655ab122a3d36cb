//! x86_64 relocations for static executables and kernels, with the GOT and TLS relaxations
//! of the x86-64 psABI (the same rewrites GNU ld and lld perform).

use object::elf::*;

use super::table::{
    self, Addresses, Check, Data, Description, Encoding, Kind, Relaxation, Relaxed, RelocInfo,
    Then, reloc,
};
use super::{Applied, Arch, GotUse, RelocError, RelocValue, TargetKind, TlsSegment, write_bytes};

use Check::{Either, Signed, Unsigned};
use Data::{Bits8, Bits16, Bits32, Bits64};
use GotUse::{Address, TpOffset};

pub struct X86_64;

/// Every relocation type applied: x86_64 writes data fields only, and rewrites instructions
/// only to relax them.
const TABLE: &[RelocInfo<Data>] = &[
    reloc!(R_X86_64_NONE, Kind::None, Bits8, Check::None),
    reloc!(R_X86_64_64, Kind::Absolute, Bits64, Check::None),
    reloc!(R_X86_64_32, Kind::Absolute, Bits32, Unsigned(32)),
    // Kernels live in the top 2 GiB: 32S reaches them, 32 does not.
    reloc!(R_X86_64_32S, Kind::Absolute, Bits32, Signed(32)),
    reloc!(R_X86_64_16, Kind::Absolute, Bits16, Either(16)),
    reloc!(R_X86_64_8, Kind::Absolute, Bits8, Either(8)),
    reloc!(R_X86_64_PC64, Kind::PcRelative, Bits64, Check::None),
    reloc!(R_X86_64_PC32, Kind::PcRelative, Bits32, Signed(32)),
    // Static images have no PLT: the PLT entry is the function itself.
    reloc!(R_X86_64_PLT32, Kind::PcRelative, Bits32, Signed(32)),
    reloc!(R_X86_64_PC16, Kind::PcRelative, Bits16, Signed(16)),
    reloc!(R_X86_64_PC8, Kind::PcRelative, Bits8, Signed(8)),
    reloc!(
        R_X86_64_GOTPCREL,
        Kind::SlotPcRelative(Address),
        Bits32,
        Signed(32)
    ),
    reloc!(
        R_X86_64_GOTPCRELX,
        Kind::SlotPcRelative(Address),
        Bits32,
        Signed(32)
    )
    .relax(Relaxation::GotToDirect),
    reloc!(
        R_X86_64_REX_GOTPCRELX,
        Kind::SlotPcRelative(Address),
        Bits32,
        Signed(32)
    )
    .relax(Relaxation::GotToDirect),
    reloc!(
        R_X86_64_GOTPCREL64,
        Kind::SlotPcRelative(Address),
        Bits64,
        Check::None
    ),
    reloc!(
        R_X86_64_GOT32,
        Kind::SlotGotRelative(Address),
        Bits32,
        Signed(32)
    ),
    // Without a PLT a function's GOT entry is its ordinary slot.
    reloc!(
        R_X86_64_GOT64,
        Kind::SlotGotRelative(Address),
        Bits64,
        Check::None
    ),
    reloc!(
        R_X86_64_GOTPLT64,
        Kind::SlotGotRelative(Address),
        Bits64,
        Check::None
    ),
    reloc!(R_X86_64_GOTOFF64, Kind::GotRelative, Bits64, Check::None),
    reloc!(R_X86_64_PLTOFF64, Kind::GotRelative, Bits64, Check::None),
    reloc!(R_X86_64_GOTPC32, Kind::GotPcRelative, Bits32, Signed(32)),
    reloc!(R_X86_64_GOTPC64, Kind::GotPcRelative, Bits64, Check::None),
    reloc!(R_X86_64_SIZE32, Kind::Size, Bits32, Unsigned(32)),
    reloc!(R_X86_64_SIZE64, Kind::Size, Bits64, Check::None),
    reloc!(R_X86_64_TPOFF32, Kind::TpRelative, Bits32, Signed(32)),
    reloc!(R_X86_64_TPOFF64, Kind::TpRelative, Bits64, Check::None),
    // Local-dynamic is always relaxed to local-exec in a static image, so DTPOFF values
    // become thread-pointer offsets, as in GNU ld and lld.
    reloc!(R_X86_64_DTPOFF32, Kind::TpRelative, Bits32, Signed(32)),
    reloc!(R_X86_64_DTPOFF64, Kind::TpRelative, Bits64, Check::None),
    reloc!(
        R_X86_64_GOTTPOFF,
        Kind::SlotPcRelative(TpOffset),
        Bits32,
        Signed(32)
    )
    .relax(Relaxation::InitialExecToLocalExec),
    reloc!(R_X86_64_TLSGD, Kind::DynamicTls, Bits32, Signed(32))
        .relax(Relaxation::GeneralDynamicToLocalExec),
    reloc!(R_X86_64_TLSLD, Kind::DynamicTls, Bits32, Signed(32))
        .relax(Relaxation::LocalDynamicToLocalExec),
    reloc!(
        R_X86_64_GOTPC32_TLSDESC,
        Kind::DynamicTls,
        Bits32,
        Signed(32)
    )
    .relax(Relaxation::DescriptorToLocalExec),
    reloc!(R_X86_64_TLSDESC_CALL, Kind::DynamicTls, Bits8, Check::None)
        .relax(Relaxation::DescriptorToLocalExec),
];

const INDEX: [u8; 43] = table::index(TABLE);

/// Types only dynamic images carry, named for messages and never applied.
const DYNAMIC: &[(u32, &str)] = &[
    (R_X86_64_DTPMOD64, "R_X86_64_DTPMOD64"),
    (R_X86_64_TLSDESC, "R_X86_64_TLSDESC"),
    (R_X86_64_IRELATIVE, "R_X86_64_IRELATIVE"),
];

/// The 32-bit thread-pointer offset a local-exec sequence holds at `offset`;
/// the addend moves by 4 because the original PC-relative field's addend counted from the
/// field's end.
fn tpoff32_at(offset: usize) -> Option<Then<Data>> {
    Some(Then {
        encoding: Encoding {
            kind: Kind::TpRelative,
            field: Bits32,
            range: Signed(32),
            align: 1,
        },
        offset,
        addend: 4,
    })
}

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

const NOP6: [u8; 6] = [0x66, 0x0f, 0x1f, 0x44, 0, 0];
const NOP10: [u8; 10] = [0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0];

/// The `__tls_get_addr` call sequences compilers emit after a TLSGD/TLSLD `lea`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsCall {
    /// GD: 16 bytes from `data16 lea` (direct or `-fno-plt` call); LD: `lea; call` (12).
    Short,
    /// LD with `-fno-plt`: `lea; call *__tls_get_addr@GOTPCREL(%rip)` (13 bytes).
    ShortIndirect,
    /// Large code model: `lea; movabs $__tls_get_addr@pltoff,%rax; add %reg,%rax;
    /// call *%rax` (22 bytes from the `lea`).
    Large,
}

/// Recognises the sequence around a TLSGD (`gd`) or TLSLD relocation at `offset`.
fn tls_call(data: &[u8], offset: usize, gd: bool) -> Option<TlsCall> {
    let at = |from: usize, len: usize| data.get(from..from.checked_add(len)?);
    let lea = at(offset.checked_sub(3)?, 3)? == [0x48, 0x8d, 0x3d];
    if !lea {
        return None;
    }
    let large = at(offset + 4, 2) == Some(&[0x48, 0xb8])
        && matches!(at(offset + 14, 5), Some(&[0x48 | 0x4c, 0x01, modrm, 0xff, 0xd0]) if modrm & 0xc7 == 0xc0);
    if large {
        return Some(TlsCall::Large);
    }
    if gd {
        let prefixed = offset >= 4 && data[offset - 4] == 0x66;
        match at(offset + 4, 4)? {
            [0x66, 0x66, 0x48, 0xe8] | [0x66, 0x48, 0xff, 0x15] if prefixed => Some(TlsCall::Short),
            _ => None,
        }
    } else {
        match at(offset + 4, 2)? {
            [0xe8, _] => Some(TlsCall::Short),
            [0xff, 0x15] => Some(TlsCall::ShortIndirect),
            _ => None,
        }
    }
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

/// Rewrites the instructions of a relaxed relocation at `offset`.
fn rewrite(
    relaxation: Relaxation,
    name: &'static str,
    r: &RelocValue,
    data: &mut [u8],
    offset: usize,
) -> Result<Relaxed<Data>, RelocError> {
    let done = |then| {
        Ok(Relaxed {
            then,
            applied: Applied::Done,
        })
    };
    match relaxation {
        Relaxation::GotToDirect => {
            // Layout decided on the section's original bytes; an overlapping relocation may
            // have changed them since, and only the forms checked there may be rewritten.
            if !gotpcrelx_relaxable(data, offset) {
                return Err(RelocError::Instruction(name));
            }
            let start = offset.checked_sub(2).ok_or(RelocError::OutOfBounds)?;
            let direct = |at| {
                Encoding {
                    kind: Kind::PcRelative,
                    field: Bits32,
                    range: Signed(32),
                    align: 1,
                }
                .at(at)
            };
            match (data[start], data[start + 1]) {
                (0x8b, _) => {
                    data[start] = 0x8d;
                    done(direct(offset))
                }
                (0xff, 0x15) => {
                    // `call *x@GOTPCREL(%rip)` → `addr32 call x`, same length.
                    data[start] = 0x67;
                    data[start + 1] = 0xe8;
                    done(direct(offset))
                }
                (0xff, 0x25) => {
                    // `jmp *x@GOTPCREL(%rip)` → `jmp x; nop`: the displacement starts one
                    // byte earlier, and so does its place.
                    data[start] = 0xe9;
                    write_bytes(data, offset + 3, &[0x90])?;
                    done(direct(start + 1))
                }
                _ => Err(RelocError::Instruction(name)),
            }
        }
        Relaxation::InitialExecToLocalExec => {
            let start = offset.checked_sub(3).ok_or(RelocError::OutOfBounds)?;
            let (rex, op, modrm) = (data[start], data[start + 1], data[start + 2]);
            let reg = (modrm >> 3) & 7;
            match (rex, op) {
                // `addq x@gottpoff(%rip), %rsp/%r12` cannot use the lea form (rsp/r12 as
                // base need a SIB byte), so it becomes `addq $x, %reg`.
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
                _ => return Err(RelocError::Instruction(name)),
            }
            done(tpoff32_at(offset))
        }
        Relaxation::GeneralDynamicToLocalExec => {
            // The call sequences (PLT, -fno-plt, large model) all become
            // `mov %fs:0,%rax; lea x@tpoff(%rax),%rax`, padded with a nop to their length.
            const LE: [u8; 12] = [0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x48, 0x8d, 0x80];
            let start = match tls_call(data, offset, true) {
                Some(TlsCall::Short) => offset - 4,
                Some(TlsCall::Large) => {
                    write_bytes(data, offset - 3 + 16, &NOP6)?;
                    offset - 3
                }
                _ => return Err(RelocError::Instruction(name)),
            };
            write_bytes(data, start, &LE)?;
            Ok(Relaxed {
                then: tpoff32_at(start + LE.len()),
                applied: Applied::SkipNext,
            })
        }
        Relaxation::LocalDynamicToLocalExec => {
            // The module base becomes the thread pointer: `mov %fs:0,%rax`, with prefixes or
            // a nop filling the call sequence's length.
            r.tp_offset.ok_or(RelocError::NoTls)?;
            let mov = [0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0];
            let start = offset.checked_sub(3).ok_or(RelocError::Instruction(name))?;
            match tls_call(data, offset, false) {
                Some(TlsCall::Short) => {
                    write_bytes(data, start, &[0x66, 0x66, 0x66])?;
                    write_bytes(data, start + 3, &mov)?;
                }
                Some(TlsCall::ShortIndirect) => {
                    write_bytes(data, start, &[0x66, 0x66, 0x66, 0x66])?;
                    write_bytes(data, start + 4, &mov)?;
                }
                Some(TlsCall::Large) => {
                    write_bytes(data, start, &[0x66, 0x66, 0x66])?;
                    write_bytes(data, start + 3, &mov)?;
                    write_bytes(data, start + 12, &NOP10)?;
                }
                None => return Err(RelocError::Instruction(name)),
            }
            Ok(Relaxed {
                then: None,
                applied: Applied::SkipNext,
            })
        }
        Relaxation::DescriptorToLocalExec if r.r_type == R_X86_64_TLSDESC_CALL => {
            // call *x@tlscall(%rax) → xchg %ax,%ax
            expect(data, Some(offset), &[0xff, 0x10], name)?;
            write_bytes(data, offset, &[0x66, 0x90])?;
            done(None)
        }
        Relaxation::DescriptorToLocalExec => {
            // lea x@tlsdesc(%rip),%reg → mov $x@tpoff,%reg
            let start = offset.checked_sub(3).ok_or(RelocError::OutOfBounds)?;
            let (rex, op, modrm) = (data[start], data[start + 1], data[start + 2]);
            if !matches!(rex, 0x48 | 0x4c) || op != 0x8d || !is_rip_relative(modrm) {
                return Err(RelocError::Instruction(name));
            }
            data[start] = if rex == 0x4c { 0x49 } else { 0x48 };
            data[start + 1] = 0xc7;
            data[start + 2] = 0xc0 | ((modrm >> 3) & 7);
            done(tpoff32_at(offset))
        }
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
        table::lookup(TABLE, &INDEX, r_type)
            .map(|e| e.name)
            .or_else(|| DYNAMIC.iter().find(|(t, _)| *t == r_type).map(|(_, n)| *n))
    }

    fn describe(&self, r_type: u32) -> Option<Description> {
        table::lookup(TABLE, &INDEX, r_type).map(RelocInfo::description)
    }

    fn relaxable(
        &self,
        relaxation: Relaxation,
        data: &[u8],
        offset: u64,
        target: TargetKind,
    ) -> bool {
        let offset = offset as usize;
        match relaxation {
            // Only image-relative targets are certainly within reach of a PC-relative lea.
            Relaxation::GotToDirect => {
                target == TargetKind::ImageRelative && gotpcrelx_relaxable(data, offset)
            }
            Relaxation::InitialExecToLocalExec => gottpoff_relaxable(data, offset),
            // A static image has no dynamic TLS: these always relax, and an unexpected
            // sequence is an error when it is rewritten.
            Relaxation::GeneralDynamicToLocalExec
            | Relaxation::LocalDynamicToLocalExec
            | Relaxation::DescriptorToLocalExec => true,
        }
    }

    fn apply(&self, r: &RelocValue, data: &mut [u8], offset: usize) -> Result<Applied, RelocError> {
        if data.len() < offset + 1 {
            return Err(RelocError::OutOfBounds);
        }
        let entry =
            table::lookup(TABLE, &INDEX, r.r_type).ok_or(RelocError::Unsupported(r.r_type))?;
        table::apply(entry, r, data, offset, Addresses::SignExtended, rewrite)
    }

    fn tp_offset(&self, addr: u64, tls: &TlsSegment) -> i64 {
        // Variant II: the thread pointer sits just past the TLS block.
        let block = tls.mem_size.next_multiple_of(tls.align.max(1));
        addr.wrapping_sub(tls.addr).wrapping_sub(block) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Decision;

    const TLS: TlsSegment = TlsSegment {
        addr: 0x1000,
        file_size: 0x10,
        mem_size: 0x1c,
        align: 16,
    };

    fn value(r_type: u32, symbol: u64, addend: i64, place: u64) -> RelocValue {
        RelocValue {
            r_type,
            symbol,
            addend,
            place,
            got: 0x9000,
            got_slot: None,
            relaxation: None,
            size: 0x40,
            tp_offset: Some(X86_64.tp_offset(symbol, &TLS)),
        }
    }

    /// `value` with the relaxation the type's table entry offers.
    fn relaxed(r_type: u32, symbol: u64, addend: i64, place: u64) -> RelocValue {
        RelocValue {
            relaxation: X86_64.describe(r_type).and_then(|d| d.relax),
            ..value(r_type, symbol, addend, place)
        }
    }

    /// Applies `r` at `offset` of `bytes` and returns the patched bytes.
    fn apply(r: RelocValue, bytes: &[u8], offset: usize) -> Result<(Vec<u8>, Applied), RelocError> {
        let mut data = bytes.to_vec();
        let applied = X86_64.apply(&r, &mut data, offset)?;
        Ok((data, applied))
    }

    #[test]
    fn data_relocations() {
        // (type, S, A, P, width, expected little-endian value)
        let cases: &[(u32, u64, i64, u64, usize, u64)] = &[
            (R_X86_64_64, 0x40_1000, 8, 0, 8, 0x40_1008),
            (
                R_X86_64_PC64,
                0x40_1000,
                0,
                0x40_2000,
                8,
                (-0x1000i64) as u64,
            ),
            (R_X86_64_PC32, 0x40_1000, -4, 0x40_0ff0, 4, 0xc),
            (
                R_X86_64_PLT32,
                0x40_0000,
                -4,
                0x40_0100,
                4,
                (-0x104i32) as u32 as u64,
            ),
            (R_X86_64_32, 0xffff_fff0, 0xf, 0, 4, 0xffff_ffff),
            (R_X86_64_32S, 0x40_0000, -0x40_0010, 0, 4, 0xffff_fff0),
            (R_X86_64_16, 0x1234, 1, 0, 2, 0x1235),
            (R_X86_64_PC16, 0x1000, 0, 0x1100, 2, 0xff00),
            (R_X86_64_8, 0x7f, 0, 0, 1, 0x7f),
            (R_X86_64_PC8, 0x1000, 0, 0x1010, 1, 0xf0),
            (R_X86_64_SIZE32, 0, 2, 0, 4, 0x42),
            (R_X86_64_SIZE64, 0, -0x40, 0, 8, 0),
            (R_X86_64_GOTOFF64, 0x9100, 0, 0, 8, 0x100),
            (R_X86_64_GOTPC32, 0, -4, 0x8000, 4, 0xffc),
            (R_X86_64_GOTPC64, 0, 0, 0xa000, 8, (-0x1000i64) as u64),
            (R_X86_64_PLTOFF64, 0x9040, 2, 0, 8, 0x42),
        ];
        for &(r_type, s, a, p, width, expected) in cases {
            let (data, applied) = apply(value(r_type, s, a, p), &[0; 8], 0).unwrap();
            let mut want = expected.to_le_bytes().to_vec();
            want.truncate(width);
            assert_eq!(
                &data[..width],
                &want[..],
                "{}",
                X86_64.reloc_name(r_type).unwrap()
            );
            assert!(
                data[width..].iter().all(|&b| b == 0),
                "{r_type} wrote past its width"
            );
            assert_eq!(applied, Applied::Done);
        }
    }

    #[test]
    fn overflow_is_an_error() {
        let cases: &[(u32, u64, i64, u64)] = &[
            (R_X86_64_PC32, 0x1_0000_0000, 0, 0),
            (R_X86_64_PC32, 0, 0, 0x8000_0001),
            (R_X86_64_PLT32, 0xffff_ffff_8000_0000, -4, 0x40_0000),
            (R_X86_64_32, 0x1_0000_0000, 0, 0),
            (R_X86_64_32, 0, -1, 0),
            (R_X86_64_32S, 0x8000_0000, 0, 0),
            (R_X86_64_16, 0x1_0000, 0, 0),
            (R_X86_64_8, 0x100, 0, 0),
            (R_X86_64_PC8, 0x100, 0, 0),
            (R_X86_64_SIZE32, 0, 0x1_0000_0000, 0),
        ];
        for &(r_type, s, a, p) in cases {
            let err = apply(value(r_type, s, a, p), &[0; 8], 0).unwrap_err();
            assert!(
                matches!(err, RelocError::Overflow { .. }),
                "{}: {err:?}",
                X86_64.reloc_name(r_type).unwrap()
            );
        }
        // Kernels live in the top 2 GiB: 32S reaches them, 32 does not.
        assert!(apply(value(R_X86_64_32S, 0xffff_ffff_8000_1000, 0, 0), &[0; 4], 0).is_ok());
        assert!(apply(value(R_X86_64_32, 0xffff_ffff_8000_1000, 0, 0), &[0; 4], 0).is_err());
    }

    /// Hostile relocations next to the relaxed TLS sequences: an addend whose sum with the
    /// sequence's own +4 overflows, and a local-dynamic one too near the section's start for
    /// its `lea`. Errors, never an arithmetic panic.
    #[test]
    fn hostile_tls_relaxations_are_errors() {
        // movq x@gottpoff(%rip), %rax
        let ie = [0x48, 0x8b, 0x05, 0, 0, 0, 0];
        let err = apply(relaxed(R_X86_64_GOTTPOFF, 0x1000, i64::MAX - 3, 0), &ie, 3).unwrap_err();
        assert!(matches!(err, RelocError::Overflow { .. }), "{err:?}");
        for offset in 0..3 {
            let err = apply(relaxed(R_X86_64_TLSLD, 0x1000, -4, 0), &[0; 16], offset).unwrap_err();
            assert_eq!(
                err,
                RelocError::Instruction("R_X86_64_TLSLD"),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn unsupported_and_out_of_bounds() {
        let err = apply(value(R_X86_64_COPY, 0, 0, 0), &[0; 8], 0).unwrap_err();
        assert_eq!(err, RelocError::Unsupported(R_X86_64_COPY));
        let err = apply(value(R_X86_64_64, 0, 0, 0), &[0; 8], 4).unwrap_err();
        assert_eq!(err, RelocError::OutOfBounds);
        assert_eq!(
            X86_64.reloc_name(R_X86_64_REX_GOTPCRELX),
            Some("R_X86_64_REX_GOTPCRELX")
        );
    }

    /// Every named type is either in the table, found by its index and applied, or one of
    /// the dynamic ones a static image never takes as input, rejected as unsupported.
    #[test]
    fn every_named_type_is_handled() {
        for entry in TABLE {
            assert_eq!(X86_64.reloc_name(entry.r_type), Some(entry.name));
            let r = relaxed(entry.r_type, 0x1004, 0, 0x40_0000);
            let result = X86_64.apply(&r, &mut [0; 16], 4);
            // Narrow fields may overflow and relaxations find no instructions to rewrite
            // in zeros; that is still handling.
            assert!(
                !matches!(result, Err(RelocError::Unsupported(_))),
                "{}: {result:?}",
                entry.name
            );
            assert_eq!(
                X86_64.branch_reach(entry.r_type),
                None,
                "x86_64 has no thunks"
            );
        }
        for &(r_type, name) in DYNAMIC {
            assert_eq!(X86_64.reloc_name(r_type), Some(name));
            let err = apply(value(r_type, 0, 0, 0), &[0; 8], 0).unwrap_err();
            assert_eq!(err, RelocError::Unsupported(r_type), "{name}");
        }
    }

    #[test]
    fn gotpcrelx_relaxes_to_direct_references() {
        let rel = TargetKind::ImageRelative;
        // mov foo@GOTPCREL(%rip), %rax → lea foo(%rip), %rax
        let mov = [0x48, 0x8b, 0x05, 0, 0, 0, 0];
        assert_eq!(
            X86_64.decide(R_X86_64_REX_GOTPCRELX, &mov, 3, rel),
            Decision::Relax(Relaxation::GotToDirect)
        );
        let (data, _) =
            apply(relaxed(R_X86_64_REX_GOTPCRELX, 0x2000, -4, 0x1003), &mov, 3).unwrap();
        assert_eq!(data, [0x48, 0x8d, 0x05, 0xf9, 0x0f, 0, 0]);
        // call *foo@GOTPCREL(%rip) → addr32 call foo
        let call = [0xff, 0x15, 0, 0, 0, 0];
        let (data, _) = apply(relaxed(R_X86_64_GOTPCRELX, 0x2000, -4, 0x1002), &call, 2).unwrap();
        assert_eq!(data, [0x67, 0xe8, 0xfa, 0x0f, 0, 0]);
        // jmp *foo@GOTPCREL(%rip) → jmp foo; nop
        let jmp = [0xff, 0x25, 0, 0, 0, 0];
        let (data, _) = apply(relaxed(R_X86_64_GOTPCRELX, 0x2000, -4, 0x1002), &jmp, 2).unwrap();
        assert_eq!(data, [0xe9, 0xfb, 0x0f, 0, 0, 0x90]);
        // Absolute targets and other instructions keep the GOT.
        assert_eq!(
            X86_64.decide(R_X86_64_REX_GOTPCRELX, &mov, 3, TargetKind::Absolute),
            Decision::Got(GotUse::Address)
        );
        let cmp = [0x48, 0x3b, 0x05, 0, 0, 0, 0];
        assert_eq!(
            X86_64.decide(R_X86_64_REX_GOTPCRELX, &cmp, 3, rel),
            Decision::Got(GotUse::Address)
        );
        assert_eq!(
            X86_64.decide(R_X86_64_GOTPCREL, &mov, 3, rel),
            Decision::Got(GotUse::Address)
        );
    }

    #[test]
    fn got_slot_relocations() {
        let cmp = [0x48, 0x3b, 0x05, 0, 0, 0, 0];
        let mut r = value(R_X86_64_REX_GOTPCRELX, 0x2000, -4, 0x1003);
        r.got_slot = Some(0x9008);
        let (data, _) = apply(r, &cmp, 3).unwrap();
        assert_eq!(data, [0x48, 0x3b, 0x05, 0x01, 0x80, 0, 0]);
        r.r_type = R_X86_64_GOTPCREL;
        let (data, _) = apply(r, &cmp, 3).unwrap();
        assert_eq!(&data[3..], [0x01, 0x80, 0, 0]);
        r.r_type = R_X86_64_GOT32;
        r.addend = 0;
        let (data, _) = apply(r, &[0; 4], 0).unwrap();
        assert_eq!(data, [8, 0, 0, 0]);
        r.got_slot = None;
        assert_eq!(apply(r, &[0; 4], 0).unwrap_err(), RelocError::NoGotSlot);
    }

    #[test]
    fn local_exec_tls() {
        // Block is 0x1c rounded up to 0x20; tp is at 0x1000 + 0x20.
        assert_eq!(X86_64.tp_offset(0x1004, &TLS), -0x1c);
        let (data, _) = apply(value(R_X86_64_TPOFF32, 0x1004, 0, 0), &[0; 4], 0).unwrap();
        assert_eq!(data, (-0x1ci32).to_le_bytes());
        let (data, _) = apply(value(R_X86_64_TPOFF64, 0x1000, 8, 0), &[0; 8], 0).unwrap();
        assert_eq!(data, (-0x18i64).to_le_bytes());
        let (data, _) = apply(value(R_X86_64_DTPOFF32, 0x1010, 0, 0), &[0; 4], 0).unwrap();
        assert_eq!(data, (-0x10i32).to_le_bytes());
        let mut r = value(R_X86_64_TPOFF32, 0x1004, 0, 0);
        r.tp_offset = None;
        assert_eq!(apply(r, &[0; 4], 0).unwrap_err(), RelocError::NoTls);
    }

    #[test]
    fn initial_exec_relaxes_to_local_exec() {
        let cases: &[([u8; 3], [u8; 3])] = &[
            ([0x48, 0x8b, 0x05], [0x48, 0xc7, 0xc0]), // movq x@gottpoff(%rip), %rax
            ([0x4c, 0x8b, 0x2d], [0x49, 0xc7, 0xc5]), // movq ..., %r13
            ([0x48, 0x03, 0x0d], [0x48, 0x8d, 0x89]), // addq ..., %rcx → leaq x(%rcx), %rcx
            ([0x4c, 0x03, 0x05], [0x4d, 0x8d, 0x80]), // addq ..., %r8
            ([0x48, 0x03, 0x25], [0x48, 0x81, 0xc4]), // addq ..., %rsp → addq $x, %rsp
            ([0x4c, 0x03, 0x25], [0x49, 0x81, 0xc4]), // addq ..., %r12
        ];
        for (before, after) in cases {
            let mut bytes = before.to_vec();
            bytes.extend_from_slice(&[0; 4]);
            assert_eq!(
                X86_64.decide(R_X86_64_GOTTPOFF, &bytes, 3, TargetKind::ImageRelative),
                Decision::Relax(Relaxation::InitialExecToLocalExec)
            );
            let (data, _) =
                apply(relaxed(R_X86_64_GOTTPOFF, 0x1004, -4, 0x5000), &bytes, 3).unwrap();
            assert_eq!(&data[..3], after, "{before:x?}");
            assert_eq!(&data[3..], (-0x1ci32).to_le_bytes());
        }
        let other = [0x48, 0x3b, 0x05, 0, 0, 0, 0];
        assert_eq!(
            X86_64.decide(R_X86_64_GOTTPOFF, &other, 3, TargetKind::ImageRelative),
            Decision::Got(GotUse::TpOffset)
        );
    }

    #[test]
    fn general_and_local_dynamic_relax_to_local_exec() {
        let gd = [
            0x66, 0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0x66, 0x66, 0x48, 0xe8, 0, 0, 0, 0,
        ];
        let (data, applied) = apply(relaxed(R_X86_64_TLSGD, 0x1004, -4, 0x5004), &gd, 4).unwrap();
        assert_eq!(applied, Applied::SkipNext);
        let mut want = vec![0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x48, 0x8d, 0x80];
        want.extend_from_slice(&(-0x1ci32).to_le_bytes());
        assert_eq!(data, want);

        let ld = [0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0];
        let (data, applied) = apply(relaxed(R_X86_64_TLSLD, 0x1004, -4, 0x5003), &ld, 3).unwrap();
        assert_eq!(applied, Applied::SkipNext);
        assert_eq!(
            data,
            [0x66, 0x66, 0x66, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0]
        );

        // -fno-plt: data16 lea; data16 rex64 call *__tls_get_addr@GOTPCREL(%rip)
        let gd = [
            0x66, 0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0x66, 0x48, 0xff, 0x15, 0, 0, 0, 0,
        ];
        let (data, _) = apply(relaxed(R_X86_64_TLSGD, 0x1004, -4, 0x5004), &gd, 4).unwrap();
        assert_eq!(data, want);
        // Large model: lea; movabs $__tls_get_addr@pltoff,%rax; add %rbx,%rax; call *%rax
        let mut large = vec![0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0x48, 0xb8];
        large.extend_from_slice(&[0; 8]);
        large.extend_from_slice(&[0x48, 0x01, 0xd8, 0xff, 0xd0]);
        let (data, _) = apply(relaxed(R_X86_64_TLSGD, 0x1004, -4, 0x5003), &large, 3).unwrap();
        assert_eq!(&data[..16], want);
        assert_eq!(&data[16..], NOP6);
        let (data, applied) =
            apply(relaxed(R_X86_64_TLSLD, 0x1004, -4, 0x5003), &large, 3).unwrap();
        assert_eq!(applied, Applied::SkipNext);
        assert_eq!(
            &data[..12],
            [0x66, 0x66, 0x66, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0]
        );
        assert_eq!(&data[12..], NOP10);
        // -fno-plt local dynamic: lea; call *__tls_get_addr@GOTPCREL(%rip)
        let ld = [0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xff, 0x15, 0, 0, 0, 0];
        let (data, _) = apply(relaxed(R_X86_64_TLSLD, 0x1004, -4, 0x5003), &ld, 3).unwrap();
        assert_eq!(
            data,
            [
                0x66, 0x66, 0x66, 0x66, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0
            ]
        );

        let err = apply(relaxed(R_X86_64_TLSGD, 0x1004, -4, 0), &[0; 16], 4).unwrap_err();
        assert_eq!(err, RelocError::Instruction("R_X86_64_TLSGD"));
    }

    #[test]
    fn tls_descriptors_relax_to_local_exec() {
        let lea = [0x48, 0x8d, 0x05, 0, 0, 0, 0];
        let (data, _) = apply(relaxed(R_X86_64_GOTPC32_TLSDESC, 0x1004, -4, 0), &lea, 3).unwrap();
        assert_eq!(&data[..3], [0x48, 0xc7, 0xc0]);
        assert_eq!(&data[3..], (-0x1ci32).to_le_bytes());
        let (data, _) = apply(
            relaxed(R_X86_64_TLSDESC_CALL, 0x1004, 0, 0),
            &[0xff, 0x10],
            0,
        )
        .unwrap();
        assert_eq!(data, [0x66, 0x90]);
    }
}
