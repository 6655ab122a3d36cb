//! AArch64 relocations for static executables and kernels (ELF for the Arm 64-bit
//! Architecture), with the GOT and TLS relaxations GNU ld and lld perform for them, and the
//! range-extension thunks branches beyond ±128 MiB go through.

use object::elf::*;

use super::table::{
    self, Addresses, Check, Data, Description, Encoding, Field, Kind, Relaxation, Relaxed,
    RelocInfo, page, reloc,
};
use super::{
    Applied, Arch, GotUse, RelocError, RelocValue, TargetKind, ThunkShape, TlsSegment,
    check_signed, write_bytes,
};

use Check::{Either, Signed, Unsigned};
use Data::{Bits16, Bits32, Bits64};
use Form::{Adr, Imm14, Imm19, Imm26, LdrLo12};
use GotUse::{Address, TpOffset};

pub struct Aarch64;

/// The forms of the fields aarch64 relocations write, one writer each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Data(Data),
    /// ADR/ADRP: a 21-bit immediate, immlo in bits 30:29 and immhi in bits 23:5.
    Adr,
    /// ADD/LDR/STR (unsigned immediate): imm12 in bits 21:10, the value shifted right by
    /// `shift` (`:tprel_hi12:`, the GOT page offset in 8-byte units).
    Imm12 {
        shift: u32,
    },
    /// The same field holding the value's low 12 bits (`:lo12:`), scaled by the access size
    /// `1 << shift`.
    Lo12 {
        shift: u32,
    },
    /// [`Form::Lo12`] of a 64-bit LDR, the only instruction a GOT load may be.
    LdrLo12,
    /// LDR literal, B.cond, CBZ/CBNZ: imm19 in bits 23:5, in instructions.
    Imm19,
    /// TBZ/TBNZ: imm14 in bits 18:5, in instructions.
    Imm14,
    /// B/BL: imm26 in bits 25:0, in instructions.
    Imm26,
    /// MOVZ/MOVK: imm16 in bits 20:5, the 16 bits of group `group`; the instruction stays.
    Movw {
        group: u32,
    },
    /// The same for a signed value: MOVZ for X ≥ 0, MOVN of the inverted bits for X < 0.
    MovwSigned {
        group: u32,
    },
}

impl Field for Form {
    fn encoded(self, value: i128) -> i128 {
        match self {
            Form::Lo12 { .. } | Form::LdrLo12 => value & 0xfff,
            _ => value,
        }
    }

    fn write(
        self,
        data: &mut [u8],
        offset: usize,
        v: i128,
        name: &'static str,
    ) -> Result<(), RelocError> {
        let insn = match self {
            Form::Data(d) => return d.write(data, offset, v, name),
            Form::LdrLo12 => {
                let insn = read32(data, offset)?;
                if !is_ldr_x_imm(insn) {
                    return Err(RelocError::Instruction(name));
                }
                with_imm12(insn, (v & 0xfff) >> 3)
            }
            form => {
                let insn = read32(data, offset)?;
                match form {
                    Form::Adr => with_adr_imm(insn, v),
                    Form::Imm12 { shift } => with_imm12(insn, v >> shift),
                    Form::Lo12 { shift } => with_imm12(insn, (v & 0xfff) >> shift),
                    Form::Imm19 => with_imm19(insn, v >> 2),
                    Form::Imm14 => with_imm14(insn, v >> 2),
                    Form::Imm26 => with_imm26(insn, v >> 2),
                    Form::Movw { group } => with_imm16(insn, v >> (16 * group)),
                    Form::MovwSigned { group } if v < 0 => {
                        with_imm16(insn & !(3 << 29), !v >> (16 * group))
                    }
                    Form::MovwSigned { group } => {
                        with_imm16((insn & !(3 << 29)) | (2 << 29), v >> (16 * group))
                    }
                    Form::Data(_) | Form::LdrLo12 => unreachable!("handled above"),
                }
            }
        };
        write32(data, offset, insn)
    }
}

const fn lo12(shift: u32) -> Form {
    Form::Lo12 { shift }
}

const fn movw(group: u32) -> Form {
    Form::Movw { group }
}

const fn movw_signed(group: u32) -> Form {
    Form::MovwSigned { group }
}

/// Every relocation type applied. A MOVW group g of a checked type must fit in the groups up
/// to it: 16(g+1) bits unsigned, or one more signed.
const TABLE: &[RelocInfo<Form>] = &[
    reloc!(R_AARCH64_NONE, Kind::None, Form::Data(Bits64), Check::None),
    reloc!(
        R_AARCH64_ABS64,
        Kind::Absolute,
        Form::Data(Bits64),
        Check::None
    ),
    reloc!(
        R_AARCH64_ABS32,
        Kind::Absolute,
        Form::Data(Bits32),
        Either(32)
    ),
    reloc!(
        R_AARCH64_ABS16,
        Kind::Absolute,
        Form::Data(Bits16),
        Either(16)
    ),
    reloc!(
        R_AARCH64_PREL64,
        Kind::PcRelative,
        Form::Data(Bits64),
        Check::None
    ),
    reloc!(
        R_AARCH64_PREL32,
        Kind::PcRelative,
        Form::Data(Bits32),
        Either(32)
    ),
    reloc!(
        R_AARCH64_PREL16,
        Kind::PcRelative,
        Form::Data(Bits16),
        Either(16)
    ),
    reloc!(
        R_AARCH64_PLT32,
        Kind::PcRelative,
        Form::Data(Bits32),
        Signed(32)
    ),
    reloc!(
        R_AARCH64_MOVW_UABS_G0,
        Kind::Absolute,
        movw(0),
        Unsigned(16)
    ),
    reloc!(
        R_AARCH64_MOVW_UABS_G0_NC,
        Kind::Absolute,
        movw(0),
        Check::None
    ),
    reloc!(
        R_AARCH64_MOVW_UABS_G1,
        Kind::Absolute,
        movw(1),
        Unsigned(32)
    ),
    reloc!(
        R_AARCH64_MOVW_UABS_G1_NC,
        Kind::Absolute,
        movw(1),
        Check::None
    ),
    reloc!(
        R_AARCH64_MOVW_UABS_G2,
        Kind::Absolute,
        movw(2),
        Unsigned(48)
    ),
    reloc!(
        R_AARCH64_MOVW_UABS_G2_NC,
        Kind::Absolute,
        movw(2),
        Check::None
    ),
    reloc!(R_AARCH64_MOVW_UABS_G3, Kind::Absolute, movw(3), Check::None),
    reloc!(
        R_AARCH64_MOVW_SABS_G0,
        Kind::Absolute,
        movw_signed(0),
        Signed(17)
    ),
    reloc!(
        R_AARCH64_MOVW_SABS_G1,
        Kind::Absolute,
        movw_signed(1),
        Signed(33)
    ),
    reloc!(
        R_AARCH64_MOVW_SABS_G2,
        Kind::Absolute,
        movw_signed(2),
        Signed(49)
    ),
    reloc!(R_AARCH64_LD_PREL_LO19, Kind::PcRelative, Imm19, Signed(21)).aligned(4),
    reloc!(R_AARCH64_ADR_PREL_LO21, Kind::PcRelative, Adr, Signed(21)),
    reloc!(
        R_AARCH64_ADR_PREL_PG_HI21,
        Kind::PageRelative,
        Adr,
        Signed(21)
    ),
    reloc!(
        R_AARCH64_ADR_PREL_PG_HI21_NC,
        Kind::PageRelative,
        Adr,
        Check::None
    ),
    reloc!(
        R_AARCH64_ADD_ABS_LO12_NC,
        Kind::Absolute,
        lo12(0),
        Check::None
    ),
    reloc!(
        R_AARCH64_LDST8_ABS_LO12_NC,
        Kind::Absolute,
        lo12(0),
        Check::None
    ),
    reloc!(
        R_AARCH64_LDST16_ABS_LO12_NC,
        Kind::Absolute,
        lo12(1),
        Check::None
    )
    .aligned(2),
    reloc!(
        R_AARCH64_LDST32_ABS_LO12_NC,
        Kind::Absolute,
        lo12(2),
        Check::None
    )
    .aligned(4),
    reloc!(
        R_AARCH64_LDST64_ABS_LO12_NC,
        Kind::Absolute,
        lo12(3),
        Check::None
    )
    .aligned(8),
    reloc!(
        R_AARCH64_LDST128_ABS_LO12_NC,
        Kind::Absolute,
        lo12(4),
        Check::None
    )
    .aligned(16),
    reloc!(R_AARCH64_TSTBR14, Kind::PcRelative, Imm14, Signed(16)).aligned(4),
    reloc!(R_AARCH64_CONDBR19, Kind::PcRelative, Imm19, Signed(21)).aligned(4),
    reloc!(R_AARCH64_JUMP26, Kind::PcRelative, Imm26, Signed(28))
        .aligned(4)
        .thunk(),
    reloc!(R_AARCH64_CALL26, Kind::PcRelative, Imm26, Signed(28))
        .aligned(4)
        .thunk(),
    reloc!(
        R_AARCH64_GOT_LD_PREL19,
        Kind::SlotPcRelative(Address),
        Imm19,
        Signed(21)
    )
    .aligned(4),
    // An ADRP and the LDRs using it are relocated separately, so whether they relax may
    // depend only on the target: both halves then agree without seeing each other.
    reloc!(
        R_AARCH64_ADR_GOT_PAGE,
        Kind::SlotPageRelative(Address),
        Adr,
        Signed(21)
    )
    .relax(Relaxation::GotToDirect),
    reloc!(
        R_AARCH64_LD64_GOT_LO12_NC,
        Kind::Slot(Address),
        LdrLo12,
        Check::None
    )
    .aligned(8)
    .relax(Relaxation::GotToDirect),
    reloc!(
        R_AARCH64_LD64_GOTPAGE_LO15,
        Kind::SlotGotPageRelative(Address),
        Form::Imm12 { shift: 3 },
        Unsigned(15)
    )
    .aligned(8),
    reloc!(
        R_AARCH64_TLSGD_ADR_PAGE21,
        Kind::DynamicTls,
        Adr,
        Signed(21)
    )
    .relax(Relaxation::GeneralDynamicToLocalExec),
    reloc!(
        R_AARCH64_TLSGD_ADD_LO12_NC,
        Kind::DynamicTls,
        lo12(0),
        Check::None
    )
    .relax(Relaxation::GeneralDynamicToLocalExec),
    reloc!(
        R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21,
        Kind::SlotPageRelative(TpOffset),
        Adr,
        Signed(21)
    )
    .relax(Relaxation::InitialExecToLocalExec),
    reloc!(
        R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC,
        Kind::Slot(TpOffset),
        LdrLo12,
        Check::None
    )
    .aligned(8)
    .relax(Relaxation::InitialExecToLocalExec),
    // The literal load has no local-exec rewrite: it keeps its slot.
    reloc!(
        R_AARCH64_TLSIE_LD_GOTTPREL_PREL19,
        Kind::SlotPcRelative(TpOffset),
        Imm19,
        Signed(21)
    )
    .aligned(4),
    reloc!(
        R_AARCH64_TLSLE_MOVW_TPREL_G2,
        Kind::TpRelative,
        movw_signed(2),
        Signed(49)
    ),
    reloc!(
        R_AARCH64_TLSLE_MOVW_TPREL_G1,
        Kind::TpRelative,
        movw_signed(1),
        Signed(33)
    ),
    reloc!(
        R_AARCH64_TLSLE_MOVW_TPREL_G1_NC,
        Kind::TpRelative,
        movw(1),
        Check::None
    ),
    reloc!(
        R_AARCH64_TLSLE_MOVW_TPREL_G0,
        Kind::TpRelative,
        movw_signed(0),
        Signed(17)
    ),
    reloc!(
        R_AARCH64_TLSLE_MOVW_TPREL_G0_NC,
        Kind::TpRelative,
        movw(0),
        Check::None
    ),
    reloc!(
        R_AARCH64_TLSLE_ADD_TPREL_HI12,
        Kind::TpRelative,
        Form::Imm12 { shift: 12 },
        Unsigned(24)
    ),
    reloc!(
        R_AARCH64_TLSLE_ADD_TPREL_LO12,
        Kind::TpRelative,
        lo12(0),
        Unsigned(12)
    ),
    reloc!(
        R_AARCH64_TLSLE_ADD_TPREL_LO12_NC,
        Kind::TpRelative,
        lo12(0),
        Check::None
    ),
    reloc!(
        R_AARCH64_TLSLE_LDST8_TPREL_LO12,
        Kind::TpRelative,
        lo12(0),
        Unsigned(12)
    ),
    reloc!(
        R_AARCH64_TLSLE_LDST8_TPREL_LO12_NC,
        Kind::TpRelative,
        lo12(0),
        Check::None
    ),
    reloc!(
        R_AARCH64_TLSLE_LDST16_TPREL_LO12,
        Kind::TpRelative,
        lo12(1),
        Unsigned(12)
    )
    .aligned(2),
    reloc!(
        R_AARCH64_TLSLE_LDST16_TPREL_LO12_NC,
        Kind::TpRelative,
        lo12(1),
        Check::None
    )
    .aligned(2),
    reloc!(
        R_AARCH64_TLSLE_LDST32_TPREL_LO12,
        Kind::TpRelative,
        lo12(2),
        Unsigned(12)
    )
    .aligned(4),
    reloc!(
        R_AARCH64_TLSLE_LDST32_TPREL_LO12_NC,
        Kind::TpRelative,
        lo12(2),
        Check::None
    )
    .aligned(4),
    reloc!(
        R_AARCH64_TLSLE_LDST64_TPREL_LO12,
        Kind::TpRelative,
        lo12(3),
        Unsigned(12)
    )
    .aligned(8),
    reloc!(
        R_AARCH64_TLSLE_LDST64_TPREL_LO12_NC,
        Kind::TpRelative,
        lo12(3),
        Check::None
    )
    .aligned(8),
    reloc!(
        R_AARCH64_TLSLE_LDST128_TPREL_LO12,
        Kind::TpRelative,
        lo12(4),
        Unsigned(12)
    )
    .aligned(16),
    reloc!(
        R_AARCH64_TLSLE_LDST128_TPREL_LO12_NC,
        Kind::TpRelative,
        lo12(4),
        Check::None
    )
    .aligned(16),
    reloc!(
        R_AARCH64_TLSDESC_ADR_PAGE21,
        Kind::DynamicTls,
        Adr,
        Signed(21)
    )
    .relax(Relaxation::DescriptorToLocalExec),
    reloc!(
        R_AARCH64_TLSDESC_LD64_LO12,
        Kind::DynamicTls,
        LdrLo12,
        Check::None
    )
    .relax(Relaxation::DescriptorToLocalExec),
    reloc!(
        R_AARCH64_TLSDESC_ADD_LO12,
        Kind::DynamicTls,
        lo12(0),
        Check::None
    )
    .relax(Relaxation::DescriptorToLocalExec),
    reloc!(
        R_AARCH64_TLSDESC_CALL,
        Kind::DynamicTls,
        Form::Data(Bits32),
        Check::None
    )
    .relax(Relaxation::DescriptorToLocalExec),
];

const INDEX: [u8; 572] = table::index(TABLE);

/// Types only dynamic images carry, named for messages and never applied.
const DYNAMIC: &[(u32, &str)] = &[
    (R_AARCH64_COPY, "R_AARCH64_COPY"),
    (R_AARCH64_GLOB_DAT, "R_AARCH64_GLOB_DAT"),
    (R_AARCH64_JUMP_SLOT, "R_AARCH64_JUMP_SLOT"),
    (R_AARCH64_RELATIVE, "R_AARCH64_RELATIVE"),
    (R_AARCH64_TLS_TPREL, "R_AARCH64_TLS_TPREL"),
    (R_AARCH64_TLSDESC, "R_AARCH64_TLSDESC"),
    (R_AARCH64_IRELATIVE, "R_AARCH64_IRELATIVE"),
];

/// How far a B/BL reaches either way.
const BRANCH26_REACH: u64 = 1 << 27;

const NOP: u32 = 0xd503_201f;
/// `movz xN, #imm, lsl #16` without register and immediate.
const MOVZ_X_LSL16: u32 = 0xd2a0_0000;
/// `movk xN, #imm` without register and immediate.
const MOVK_X: u32 = 0xf280_0000;
/// `ldr xT, [xN, #imm]` (unsigned offset) without registers and immediate.
const LDR_X_IMM: u32 = 0xf940_0000;
/// `add xD, xN, #imm` without registers and immediate.
const ADD_X_IMM: u32 = 0x9100_0000;
/// `mrs x1, tpidr_el0`.
const MRS_X1_TPIDR_EL0: u32 = 0xd53b_d041;
/// `add x0, x1, x0`.
const ADD_X0_X1_X0: u32 = 0x8b00_0020;
/// Range-extension thunk: `adrp x16, target; add x16, x16, :lo12:target; br x16`. x16 (IP0)
/// is the register the procedure call standard leaves to veneers.
const THUNK: [u32; 3] = [0x9000_0010, 0x9100_0210, 0xd61f_0200];

fn read32(data: &[u8], offset: usize) -> Result<u32, RelocError> {
    let bytes = data
        .get(offset..offset + 4)
        .ok_or(RelocError::OutOfBounds)?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
}

fn write32(data: &mut [u8], offset: usize, insn: u32) -> Result<(), RelocError> {
    write_bytes(data, offset, &insn.to_le_bytes())
}

/// ADR/ADRP: immlo in bits 30:29, immhi in bits 23:5.
fn with_adr_imm(insn: u32, imm: i128) -> u32 {
    let imm = imm as u32;
    (insn & !((3 << 29) | (0x7ffff << 5))) | ((imm & 3) << 29) | (((imm >> 2) & 0x7ffff) << 5)
}

/// ADD/LDR/STR (unsigned immediate): imm12 in bits 21:10.
fn with_imm12(insn: u32, imm: i128) -> u32 {
    (insn & !(0xfff << 10)) | (((imm as u32) & 0xfff) << 10)
}

/// LDR literal, B.cond, CBZ/CBNZ: imm19 in bits 23:5.
fn with_imm19(insn: u32, imm: i128) -> u32 {
    (insn & !(0x7ffff << 5)) | (((imm as u32) & 0x7ffff) << 5)
}

/// TBZ/TBNZ: imm14 in bits 18:5.
fn with_imm14(insn: u32, imm: i128) -> u32 {
    (insn & !(0x3fff << 5)) | (((imm as u32) & 0x3fff) << 5)
}

/// B/BL: imm26 in bits 25:0.
fn with_imm26(insn: u32, imm: i128) -> u32 {
    (insn & !0x3ff_ffff) | ((imm as u32) & 0x3ff_ffff)
}

/// MOVZ/MOVN/MOVK: imm16 in bits 20:5.
fn with_imm16(insn: u32, imm: i128) -> u32 {
    (insn & !(0xffff << 5)) | (((imm as u32) & 0xffff) << 5)
}

/// The register an instruction writes (Rd/Rt, bits 4:0).
fn rd(insn: u32) -> u32 {
    insn & 0x1f
}

/// The base register of a load/store (Rn, bits 9:5).
fn rn(insn: u32) -> u32 {
    (insn >> 5) & 0x1f
}

fn is_ldr_x_imm(insn: u32) -> bool {
    insn & 0xffc0_0000 == LDR_X_IMM
}

fn write_thunk(thunk: u64, target: u64, out: &mut [u8]) -> Result<(), RelocError> {
    let s = i128::from(target);
    let p = i128::from(thunk);
    let pages = (page(s) - page(p)) >> 12;
    check_signed(pages, 21)?;
    let code = [
        with_adr_imm(THUNK[0], pages),
        with_imm12(THUNK[1], s),
        THUNK[2],
    ];
    for (i, insn) in code.into_iter().enumerate() {
        write32(out, 4 * i, insn)?;
    }
    Ok(())
}

/// The local-exec sequences hold the thread-pointer offset, which must fit in 32 unsigned
/// bits, in a MOVZ (bits 31:16) and a MOVK (bits 15:0).
fn tprel_half(group: u32, offset: usize) -> Relaxed<Form> {
    Relaxed {
        then: Encoding {
            kind: Kind::TpRelative,
            field: movw(group),
            range: Unsigned(32),
            align: 1,
        }
        .at(offset),
        applied: Applied::Done,
    }
}

/// Rewrites the instructions of a relaxed relocation at `offset`.
fn rewrite(
    relaxation: Relaxation,
    name: &'static str,
    r: &RelocValue,
    data: &mut [u8],
    offset: usize,
) -> Result<Relaxed<Form>, RelocError> {
    let insn = read32(data, offset)?;
    let relaxed = match (relaxation, r.r_type) {
        // adrp x2, :got:sym; ldr x1, [x2, :got_lo12:sym] → adrp x2, sym; add x1, x2, :lo12:sym
        (Relaxation::GotToDirect, R_AARCH64_ADR_GOT_PAGE) => Relaxed {
            then: Encoding {
                kind: Kind::PageRelative,
                field: Adr,
                range: Signed(21),
                align: 1,
            }
            .at(offset),
            applied: Applied::Done,
        },
        (Relaxation::GotToDirect, _) => {
            if !is_ldr_x_imm(insn) {
                return Err(RelocError::Instruction(name));
            }
            write32(data, offset, ADD_X_IMM | (rn(insn) << 5) | rd(insn))?;
            Relaxed {
                then: Encoding {
                    kind: Kind::Absolute,
                    field: lo12(0),
                    range: Check::None,
                    align: 1,
                }
                .at(offset),
                applied: Applied::Done,
            }
        }
        // Initial-exec in a static image: the offset is known, so
        // adrp xN, :gottprel:x; ldr xN, [xN, :gottprel_lo12:x]
        // → movz xN, #:tprel_g1:x; movk xN, #:tprel_g0_nc:x
        (Relaxation::InitialExecToLocalExec, R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21) => {
            write32(data, offset, MOVZ_X_LSL16 | rd(insn))?;
            tprel_half(1, offset)
        }
        (Relaxation::InitialExecToLocalExec, _) => {
            // The MOVK completes the MOVZ only if the load reads and writes one register.
            if !is_ldr_x_imm(insn) || rn(insn) != rd(insn) {
                return Err(RelocError::Instruction(name));
            }
            write32(data, offset, MOVK_X | rd(insn))?;
            tprel_half(0, offset)
        }
        // TLS descriptors relax to local-exec, leaving the offset in x0 as the resolver
        // would have:
        // adrp x0, :tlsdesc:x; ldr x1, [x0, :tlsdesc_lo12:x]; add x0, x0, :tlsdesc_lo12:x;
        // blr x1 → movz x0, #:tprel_g1:x; movk x0, #:tprel_g0_nc:x; nop; nop
        (Relaxation::DescriptorToLocalExec, R_AARCH64_TLSDESC_ADR_PAGE21)
        | (Relaxation::GeneralDynamicToLocalExec, R_AARCH64_TLSGD_ADR_PAGE21) => {
            write32(data, offset, MOVZ_X_LSL16)?;
            tprel_half(1, offset)
        }
        (Relaxation::DescriptorToLocalExec, R_AARCH64_TLSDESC_LD64_LO12) => {
            write32(data, offset, MOVK_X)?;
            tprel_half(0, offset)
        }
        (Relaxation::DescriptorToLocalExec, _) => {
            r.tp_offset.ok_or(RelocError::NoTls)?;
            write32(data, offset, NOP)?;
            Relaxed {
                then: None,
                applied: Applied::Done,
            }
        }
        // The traditional dialect's general dynamic sequence relaxes to local-exec too:
        // adrp x0, :tlsgd:x; add x0, x0, :tlsgd_lo12:x; bl __tls_get_addr; nop
        // → movz x0, #:tprel_g1:x; movk x0, #:tprel_g0_nc:x; mrs x1, tpidr_el0;
        // add x0, x1, x0
        (Relaxation::GeneralDynamicToLocalExec, _) => {
            let call = read32(data, offset + 4);
            let nop = read32(data, offset + 8);
            if !matches!(call, Ok(i) if i & 0xfc00_0000 == 0x9400_0000) || nop != Ok(NOP) {
                return Err(RelocError::Instruction(name));
            }
            write32(data, offset, MOVK_X)?;
            write32(data, offset + 4, MRS_X1_TPIDR_EL0)?;
            write32(data, offset + 8, ADD_X0_X1_X0)?;
            // The call's own R_AARCH64_CALL26 against __tls_get_addr comes next.
            Relaxed {
                applied: Applied::SkipNext,
                ..tprel_half(0, offset)
            }
        }
        (Relaxation::LocalDynamicToLocalExec, _) => {
            return Err(RelocError::Unsupported(r.r_type));
        }
    };
    Ok(relaxed)
}

impl Arch for Aarch64 {
    fn name(&self) -> &'static str {
        "aarch64"
    }

    fn e_machine(&self) -> u16 {
        EM_AARCH64
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
        _data: &[u8],
        _offset: u64,
        target: TargetKind,
    ) -> bool {
        match relaxation {
            // Only image-relative targets are certainly within an ADRP's reach.
            Relaxation::GotToDirect => target == TargetKind::ImageRelative,
            // A static image knows every offset and has no dynamic TLS.
            Relaxation::InitialExecToLocalExec
            | Relaxation::GeneralDynamicToLocalExec
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
        table::apply(entry, r, data, offset, Addresses::Unsigned, rewrite)
    }

    fn tp_offset(&self, addr: u64, tls: &TlsSegment) -> i64 {
        // Variant I: the thread pointer points at a 16-byte control block, and the TLS block
        // follows it at the segment's alignment.
        let tcb = 16u64.next_multiple_of(tls.align.max(1));
        tcb.wrapping_add(addr.wrapping_sub(tls.addr)) as i64
    }

    fn thunk_shape(&self) -> Option<ThunkShape> {
        Some(ThunkShape {
            size: 4 * THUNK.len() as u64,
            align: 4,
            // Half the reach: a branch anywhere in a group still reaches the island after it.
            spacing: BRANCH26_REACH / 2,
            write: write_thunk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Decision;

    /// TLS block at 0x42_0000 aligned to 16: the thread pointer is 16 bytes below it.
    const TLS: TlsSegment = TlsSegment {
        addr: 0x42_0000,
        file_size: 0x10,
        mem_size: 0x2_0000,
        align: 16,
    };

    fn value(r_type: u32, symbol: u64, addend: i64, place: u64) -> RelocValue {
        RelocValue {
            r_type,
            symbol,
            addend,
            place,
            got: 0x43_0000,
            got_slot: None,
            relaxation: None,
            size: 0x40,
            tp_offset: Some(Aarch64.tp_offset(symbol, &TLS)),
        }
    }

    /// `value` with the relaxation the type's table entry offers.
    fn relaxed(r_type: u32, symbol: u64, addend: i64, place: u64) -> RelocValue {
        RelocValue {
            relaxation: Aarch64.describe(r_type).and_then(|d| d.relax),
            ..value(r_type, symbol, addend, place)
        }
    }

    fn patch(r: RelocValue, insn: u32) -> Result<u32, RelocError> {
        let mut data = insn.to_le_bytes();
        assert_eq!(Aarch64.apply(&r, &mut data, 0)?, Applied::Done);
        Ok(u32::from_le_bytes(data))
    }

    fn name(r_type: u32) -> &'static str {
        Aarch64.reloc_name(r_type).expect("named")
    }

    /// (type, instruction before, S, A, P, instruction after); the expected encodings are
    /// what GNU as gives for the same instruction written with the final immediate.
    #[test]
    fn instruction_relocations_encode_bit_exact() {
        let cases: &[(u32, u32, u64, i64, u64, u32)] = &[
            // bl .+0x100; bl .-4; b .+0x7fffffc; b .-0x8000000
            (
                R_AARCH64_CALL26,
                0x9400_0000,
                0x40_0100,
                0,
                0x40_0000,
                0x9400_0040,
            ),
            (
                R_AARCH64_CALL26,
                0x9400_0000,
                0x40_0000,
                -4,
                0x40_0000,
                0x97ff_ffff,
            ),
            (
                R_AARCH64_JUMP26,
                0x1400_0000,
                0x840_0000,
                -4,
                0x40_0000,
                0x15ff_ffff,
            ),
            (
                R_AARCH64_JUMP26,
                0x1400_0000,
                0x400_0000,
                0,
                0xc00_0000,
                0x1600_0000,
            ),
            // b.eq .+8; tbz w0, #0, .+0x10; ldr x0, .+0x20
            (
                R_AARCH64_CONDBR19,
                0x5400_0000,
                0x40_0008,
                0,
                0x40_0000,
                0x5400_0040,
            ),
            (
                R_AARCH64_TSTBR14,
                0x3600_0000,
                0x40_0010,
                0,
                0x40_0000,
                0x3600_0080,
            ),
            (
                R_AARCH64_LD_PREL_LO19,
                0x5800_0000,
                0x40_0018,
                8,
                0x40_0000,
                0x5800_0100,
            ),
            // adr x0, .+5; adrp x0, .+0x12000 (from a place in the middle of its page)
            (
                R_AARCH64_ADR_PREL_LO21,
                0x1000_0000,
                0x40_0005,
                0,
                0x40_0000,
                0x3000_0020,
            ),
            (
                R_AARCH64_ADR_PREL_PG_HI21,
                0x9000_0000,
                0x41_2345,
                0,
                0x40_0ffc,
                0xd000_0080,
            ),
            (
                R_AARCH64_ADR_PREL_PG_HI21_NC,
                0x9000_0000,
                0x41_2000,
                0x345,
                0x40_0ffc,
                0xd000_0080,
            ),
            // add x0, x0, #0x345 and loads of each width at #0x345..#0x348
            (
                R_AARCH64_ADD_ABS_LO12_NC,
                0x9100_0000,
                0x41_2345,
                0,
                0,
                0x910d_1400,
            ),
            (
                R_AARCH64_LDST8_ABS_LO12_NC,
                0x3940_0000,
                0x41_2345,
                0,
                0,
                0x394d_1400,
            ),
            (
                R_AARCH64_LDST16_ABS_LO12_NC,
                0x7940_0000,
                0x41_2346,
                0,
                0,
                0x7946_8c00,
            ),
            (
                R_AARCH64_LDST32_ABS_LO12_NC,
                0xb940_0000,
                0x41_2340,
                8,
                0,
                0xb943_4800,
            ),
            (
                R_AARCH64_LDST64_ABS_LO12_NC,
                0xf940_0000,
                0x41_2348,
                0,
                0,
                0xf941_a400,
            ),
            (
                R_AARCH64_LDST128_ABS_LO12_NC,
                0x3dc0_0000,
                0x41_2340,
                0,
                0,
                0x3dc0_d000,
            ),
            // movk x0, #0xdef0 / #0x9abc, lsl 16 / #0x5678, lsl 32; movz x0, #0x1234, lsl 48
            (
                R_AARCH64_MOVW_UABS_G0_NC,
                0xf280_0000,
                0x1234_5678_9abc_def0,
                0,
                0,
                0xf29b_de00,
            ),
            (
                R_AARCH64_MOVW_UABS_G1_NC,
                0xf2a0_0000,
                0x1234_5678_9abc_def0,
                0,
                0,
                0xf2b3_5780,
            ),
            (
                R_AARCH64_MOVW_UABS_G2_NC,
                0xf2c0_0000,
                0x1234_5678_9abc_def0,
                0,
                0,
                0xf2ca_cf00,
            ),
            (
                R_AARCH64_MOVW_UABS_G3,
                0xd2e0_0000,
                0x1234_5678_9abc_def0,
                0,
                0,
                0xd2e2_4680,
            ),
            // movz x0, #0xffff; movz x0, #0x9abc, lsl 16; movz x0, #0x5678, lsl 32
            (
                R_AARCH64_MOVW_UABS_G0,
                0xd280_0000,
                0xffff,
                0,
                0,
                0xd29f_ffe0,
            ),
            (
                R_AARCH64_MOVW_UABS_G1,
                0xd2a0_0000,
                0x9abc_def0,
                0,
                0,
                0xd2b3_5780,
            ),
            (
                R_AARCH64_MOVW_UABS_G2,
                0xd2c0_0000,
                0x5678_9abc_def0,
                0,
                0,
                0xd2ca_cf00,
            ),
            // Signed: movn x0, #1 (−2) and movz x0, #2
            (R_AARCH64_MOVW_SABS_G0, 0xd280_0000, 0, -2, 0, 0x9280_0020),
            (R_AARCH64_MOVW_SABS_G0, 0x9280_0000, 2, 0, 0, 0xd280_0040),
            (
                R_AARCH64_MOVW_SABS_G1,
                0xd2a0_0000,
                0x2_0000,
                0,
                0,
                0xd2a0_0040,
            ),
            (
                R_AARCH64_MOVW_SABS_G2,
                0xd2c0_0000,
                0,
                -0x1_0000_0000,
                0,
                0x92c0_0000,
            ),
        ];
        for &(r_type, before, s, a, p, after) in cases {
            let got = patch(value(r_type, s, a, p), before)
                .unwrap_or_else(|e| panic!("{}: {e}", name(r_type)));
            assert_eq!(got, after, "{}: {got:#010x} != {after:#010x}", name(r_type));
        }
    }

    #[test]
    fn data_relocations() {
        // (type, S, A, P, width, expected little-endian value)
        let cases: &[(u32, u64, i64, u64, usize, u64)] = &[
            (R_AARCH64_ABS64, 0x40_1000, 8, 0, 8, 0x40_1008),
            (R_AARCH64_ABS32, 0xffff_fff0, 0xf, 0, 4, 0xffff_ffff),
            (R_AARCH64_ABS32, 0, -1, 0, 4, 0xffff_ffff),
            (R_AARCH64_ABS16, 0x1234, 1, 0, 2, 0x1235),
            (
                R_AARCH64_PREL64,
                0x40_1000,
                0,
                0x40_2000,
                8,
                (-0x1000i64) as u64,
            ),
            (R_AARCH64_PREL32, 0x40_1000, 4, 0x40_0ff0, 4, 0x14),
            (R_AARCH64_PREL32, 0x40_0000, 0, 0x40_0100, 4, 0xffff_ff00),
            (R_AARCH64_PREL16, 0x1000, 0, 0x1100, 2, 0xff00),
            (R_AARCH64_PLT32, 0x40_0000, 0, 0x40_0100, 4, 0xffff_ff00),
        ];
        for &(r_type, s, a, p, width, expected) in cases {
            let mut data = [0u8; 8];
            Aarch64
                .apply(&value(r_type, s, a, p), &mut data, 0)
                .unwrap();
            assert_eq!(
                &data[..width],
                &expected.to_le_bytes()[..width],
                "{}",
                name(r_type)
            );
            assert!(
                data[width..].iter().all(|&b| b == 0),
                "{} wrote past its width",
                name(r_type)
            );
        }
    }

    #[test]
    fn overflow_and_misalignment_are_errors() {
        // (type, instruction, S, A, P)
        let overflows: &[(u32, u32, u64, i64, u64)] = &[
            (R_AARCH64_CALL26, 0x9400_0000, 0x840_0000, 0, 0x40_0000),
            (R_AARCH64_JUMP26, 0x1400_0000, 0x400_0000, -4, 0xc00_0000),
            (R_AARCH64_CONDBR19, 0x5400_0000, 0x50_0000, 0, 0x40_0000),
            (R_AARCH64_TSTBR14, 0x3600_0000, 0x40_8000, 0, 0x40_0000),
            (
                R_AARCH64_LD_PREL_LO19,
                0x5800_0000,
                0x30_0000,
                -4,
                0x40_0000,
            ),
            (
                R_AARCH64_ADR_PREL_LO21,
                0x1000_0000,
                0x50_0000,
                0,
                0x40_0000,
            ),
            (
                R_AARCH64_ADR_PREL_PG_HI21,
                0x9000_0000,
                0x1_0040_0000,
                0,
                0x40_0000,
            ),
            (R_AARCH64_MOVW_UABS_G0, 0xd280_0000, 0x1_0000, 0, 0),
            (R_AARCH64_MOVW_UABS_G1, 0xd2a0_0000, 0x1_0000_0000, 0, 0),
            (R_AARCH64_MOVW_UABS_G2, 0xd2c0_0000, 0, -1, 0),
            (R_AARCH64_MOVW_SABS_G0, 0xd280_0000, 0, -0x1_0001, 0),
            (R_AARCH64_ABS32, 0, 0x1_0000_0000, 0, 0),
            (R_AARCH64_ABS32, 0, 0, -0x8000_0001, 0),
            (R_AARCH64_ABS16, 0, 0x1_0000, 0, 0),
            (R_AARCH64_PREL32, 0, 0x1_0040_0000, 0, 0x40_0000),
            (R_AARCH64_PREL16, 0, 0x1_0000, 0, 0),
        ];
        for &(r_type, insn, s, a, p) in overflows {
            let err = patch(value(r_type, s, a, p), insn).unwrap_err();
            assert!(
                matches!(err, RelocError::Overflow { .. }),
                "{}: {err:?}",
                name(r_type)
            );
        }
        // The _NC forms do not check.
        assert!(
            patch(
                value(R_AARCH64_ADR_PREL_PG_HI21_NC, 0x1_0040_0000, 0, 0x40_0000),
                0x9000_0000
            )
            .is_ok()
        );
        assert!(
            patch(
                value(R_AARCH64_MOVW_UABS_G0_NC, 0x1_0000, 0, 0),
                0xf280_0000
            )
            .is_ok()
        );
        let misaligned: &[(u32, u32, u64)] = &[
            (R_AARCH64_LDST16_ABS_LO12_NC, 0x7940_0000, 0x41_2345),
            (R_AARCH64_LDST32_ABS_LO12_NC, 0xb940_0000, 0x41_2346),
            (R_AARCH64_LDST64_ABS_LO12_NC, 0xf940_0000, 0x41_2344),
            (R_AARCH64_LDST128_ABS_LO12_NC, 0x3dc0_0000, 0x41_2348),
            (R_AARCH64_CALL26, 0x9400_0000, 0x40_0102),
            (R_AARCH64_LD_PREL_LO19, 0x5800_0000, 0x40_0002),
        ];
        for &(r_type, insn, s) in misaligned {
            let err = patch(value(r_type, s, 0, 0x40_0000), insn).unwrap_err();
            assert!(
                matches!(err, RelocError::Misaligned { .. }),
                "{}: {err:?}",
                name(r_type)
            );
        }
    }

    #[test]
    fn unsupported_and_out_of_bounds() {
        for r_type in [
            R_AARCH64_COPY,
            R_AARCH64_TLSLD_ADR_PAGE21,
            R_AARCH64_MOVW_PREL_G0,
        ] {
            let err = patch(value(r_type, 0, 0, 0), 0).unwrap_err();
            assert_eq!(err, RelocError::Unsupported(r_type));
        }
        assert_eq!(
            name(R_AARCH64_TLSGD_ADR_PAGE21),
            "R_AARCH64_TLSGD_ADR_PAGE21"
        );
        assert_eq!(Aarch64.reloc_name(R_AARCH64_TLSLD_ADR_PAGE21), None);
        let mut data = [0u8; 6];
        let r = value(R_AARCH64_CALL26, 0x40_0000, 0, 0x40_0000);
        assert_eq!(
            Aarch64.apply(&r, &mut data, 4).unwrap_err(),
            RelocError::OutOfBounds
        );
        let r = value(R_AARCH64_ABS64, 0, 0, 0);
        assert_eq!(
            Aarch64.apply(&r, &mut data, 0).unwrap_err(),
            RelocError::OutOfBounds
        );
    }

    /// Every named type is either handled or, for the dynamic ones a static image never
    /// takes as input, rejected as unsupported; nothing named falls through by mistake.
    #[test]
    fn every_named_type_is_handled() {
        let named = TABLE
            .iter()
            .map(|e| (e.r_type, e.name))
            .chain(DYNAMIC.iter().copied());
        for (r_type, type_name) in named {
            let mut r = relaxed(r_type, 0x42_0010, 0, 0x40_0000);
            r.got_slot = Some(0x43_0000);
            // ldr x0, [x0]; bl; nop: an instruction every type accepts, followed by what
            // the general dynamic TLS sequence expects.
            let mut data: Vec<u8> = [LDR_X_IMM, 0x9400_0000, NOP]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            let result = Aarch64.apply(&r, &mut data, 0);
            if DYNAMIC.iter().any(|(t, _)| *t == r_type) {
                assert_eq!(result, Err(RelocError::Unsupported(r_type)), "{type_name}");
            } else {
                // Narrow fields may overflow with these values; that is still handling.
                assert!(
                    !matches!(result, Err(RelocError::Unsupported(_))),
                    "{type_name}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn got_loads_relax_to_address_computation() {
        let image = TargetKind::ImageRelative;
        for r_type in [R_AARCH64_ADR_GOT_PAGE, R_AARCH64_LD64_GOT_LO12_NC] {
            assert_eq!(
                Aarch64.decide(r_type, &[], 0, image),
                Decision::Relax(Relaxation::GotToDirect)
            );
            assert_eq!(
                Aarch64.decide(r_type, &[], 0, TargetKind::Absolute),
                Decision::Got(GotUse::Address)
            );
        }
        // adrp x2, :got:sym; ldr x1, [x2, :got_lo12:sym] → adrp x2, sym; add x1, x2, :lo12:sym
        let adrp = relaxed(R_AARCH64_ADR_GOT_PAGE, 0x41_2345, 0, 0x40_0ffc);
        assert_eq!(patch(adrp, 0x9000_0002).unwrap(), 0xd000_0082);
        let ldr = relaxed(R_AARCH64_LD64_GOT_LO12_NC, 0x41_2345, 0, 0x40_1000);
        assert_eq!(patch(ldr, 0xf940_0041).unwrap(), 0x910d_1441);
        // Through the slot at 0x42_0008: ldr x1, [x2, #8].
        let mut adrp = adrp;
        adrp.got_slot = Some(0x42_0008);
        adrp.relaxation = None;
        assert_eq!(patch(adrp, 0x9000_0002).unwrap(), 0x9000_0102);
        let mut ldr = ldr;
        ldr.got_slot = Some(0x42_0008);
        ldr.relaxation = None;
        assert_eq!(patch(ldr, 0xf940_0041).unwrap(), 0xf940_0441);
        // ldr x0, :got:sym (literal) always goes through the slot.
        assert_eq!(
            Aarch64.decide(R_AARCH64_GOT_LD_PREL19, &[], 0, image),
            Decision::Got(GotUse::Address)
        );
        // ldr x1, [x2, #0x18] from the GOT's page; the slot must lie within 32 KiB of it.
        let mut page_off = value(R_AARCH64_LD64_GOTPAGE_LO15, 0x41_2345, 0, 0);
        page_off.got_slot = Some(0x43_0018);
        assert_eq!(patch(page_off, 0xf940_0041).unwrap(), 0xf940_0c41);
        page_off.got_slot = Some(0x43_8000);
        assert!(matches!(
            patch(page_off, 0xf940_0041).unwrap_err(),
            RelocError::Overflow { .. }
        ));
        let mut lit = value(R_AARCH64_GOT_LD_PREL19, 0x41_2345, 0, 0x41_fff0);
        lit.got_slot = Some(0x42_0008);
        assert_eq!(patch(lit, 0x5800_0000).unwrap(), 0x5800_0000 | (6 << 5));
        lit.got_slot = None;
        assert_eq!(patch(lit, 0x5800_0000).unwrap_err(), RelocError::NoGotSlot);
        // The low half must sit on an LDR.
        let err = patch(relaxed(R_AARCH64_LD64_GOT_LO12_NC, 0x41_2345, 0, 0), NOP).unwrap_err();
        assert_eq!(err, RelocError::Instruction("R_AARCH64_LD64_GOT_LO12_NC"));
    }

    #[test]
    fn tls_offsets_are_variant_one() {
        assert_eq!(Aarch64.tp_offset(0x42_0010, &TLS), 0x20);
        let wide = TlsSegment { align: 64, ..TLS };
        assert_eq!(Aarch64.tp_offset(0x42_0010, &wide), 0x50);
        let narrow = TlsSegment { align: 4, ..TLS };
        assert_eq!(Aarch64.tp_offset(0x42_0000, &narrow), 0x10);
    }

    #[test]
    fn local_exec_tls() {
        // The symbol 0x1_2335 into the block is 0x1_2345 from the thread pointer.
        let sym = 0x43_2335;
        // 0x10 into the block: 0x20 from the thread pointer.
        let near = 0x42_0010;
        // 0x1_2345_6789 from the thread pointer.
        let huge = 0x42_0000 + 0x1_2345_6789 - 16;
        // (type, instruction before, S, A, instruction after)
        let cases: &[(u32, u32, u64, i64, u32)] = &[
            // add x0, x0, #0x12, lsl 12; add x0, x0, #0x345; add x0, x0, #0x20
            (
                R_AARCH64_TLSLE_ADD_TPREL_HI12,
                0x9140_0000,
                sym,
                0,
                0x9140_4800,
            ),
            (
                R_AARCH64_TLSLE_ADD_TPREL_LO12_NC,
                0x9100_0000,
                sym,
                0,
                0x910d_1400,
            ),
            (
                R_AARCH64_TLSLE_ADD_TPREL_LO12,
                0x9100_0000,
                near,
                0,
                0x9100_8000,
            ),
            // ldrb w0, [x0, #0x345]; ldrh w0, [x0, #0x346]; ldr w0, [x0, #0x348];
            // ldr x0, [x0, #0x348]; ldr q0, [x0, #0x340]
            (
                R_AARCH64_TLSLE_LDST8_TPREL_LO12_NC,
                0x3940_0000,
                sym,
                0,
                0x394d_1400,
            ),
            (
                R_AARCH64_TLSLE_LDST16_TPREL_LO12_NC,
                0x7940_0000,
                sym,
                1,
                0x7946_8c00,
            ),
            (
                R_AARCH64_TLSLE_LDST32_TPREL_LO12_NC,
                0xb940_0000,
                sym,
                3,
                0xb943_4800,
            ),
            (
                R_AARCH64_TLSLE_LDST64_TPREL_LO12_NC,
                0xf940_0000,
                sym,
                3,
                0xf941_a400,
            ),
            (
                R_AARCH64_TLSLE_LDST128_TPREL_LO12_NC,
                0x3dc0_0000,
                sym,
                -5,
                0x3dc0_d000,
            ),
            // The checked forms with an offset below 4096: ldrb w0, [x0, #0x20] and so on.
            (
                R_AARCH64_TLSLE_LDST8_TPREL_LO12,
                0x3940_0000,
                near,
                0,
                0x3940_8000,
            ),
            (
                R_AARCH64_TLSLE_LDST16_TPREL_LO12,
                0x7940_0000,
                near,
                0,
                0x7940_4000,
            ),
            (
                R_AARCH64_TLSLE_LDST32_TPREL_LO12,
                0xb940_0000,
                near,
                0,
                0xb940_2000,
            ),
            (
                R_AARCH64_TLSLE_LDST64_TPREL_LO12,
                0xf940_0000,
                near,
                0,
                0xf940_1000,
            ),
            (
                R_AARCH64_TLSLE_LDST128_TPREL_LO12,
                0x3dc0_0000,
                near,
                0,
                0x3dc0_0800,
            ),
            // movz x0, #0x1, lsl 16; movk x0, #0x2345; movz x0, #0x20
            (
                R_AARCH64_TLSLE_MOVW_TPREL_G1,
                0xd2a0_0000,
                sym,
                0,
                0xd2a0_0020,
            ),
            (
                R_AARCH64_TLSLE_MOVW_TPREL_G0_NC,
                0xf280_0000,
                sym,
                0,
                0xf284_68a0,
            ),
            (
                R_AARCH64_TLSLE_MOVW_TPREL_G0,
                0xd280_0000,
                near,
                0,
                0xd280_0400,
            ),
            // movz x0, #0x1, lsl 32; movk x0, #0x2345, lsl 16
            (
                R_AARCH64_TLSLE_MOVW_TPREL_G2,
                0xd2c0_0000,
                huge,
                0,
                0xd2c0_0020,
            ),
            (
                R_AARCH64_TLSLE_MOVW_TPREL_G1_NC,
                0xf2a0_0000,
                huge,
                0,
                0xf2a4_68a0,
            ),
        ];
        for &(r_type, before, s, a, after) in cases {
            let got = patch(value(r_type, s, a, 0), before)
                .unwrap_or_else(|e| panic!("{}: {e}", name(r_type)));
            assert_eq!(got, after, "{}: {got:#010x} != {after:#010x}", name(r_type));
        }
        // ldr w0, [x0, #0x348] needs the offset aligned to 4.
        let got = patch(
            value(R_AARCH64_TLSLE_LDST32_TPREL_LO12_NC, sym, 3, 0),
            0xb940_0000,
        );
        assert_eq!(got.unwrap(), 0xb943_4800);
        let overflows = [
            (R_AARCH64_TLSLE_ADD_TPREL_HI12, 0x42_0000 + 0x100_0000),
            (R_AARCH64_TLSLE_ADD_TPREL_LO12, sym),
            (R_AARCH64_TLSLE_LDST8_TPREL_LO12, sym),
            (R_AARCH64_TLSLE_MOVW_TPREL_G0, sym),
        ];
        for (r_type, s) in overflows {
            let err = patch(value(r_type, s, 0, 0), 0x9100_0000).unwrap_err();
            assert!(
                matches!(err, RelocError::Overflow { .. }),
                "{}: {err:?}",
                name(r_type)
            );
        }
        let mut r = value(R_AARCH64_TLSLE_ADD_TPREL_LO12_NC, sym, 0, 0);
        r.tp_offset = None;
        assert_eq!(patch(r, 0x9100_0000).unwrap_err(), RelocError::NoTls);
    }

    #[test]
    fn initial_exec_relaxes_to_local_exec() {
        let sym = 0x43_2335;
        for r_type in [
            R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21,
            R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC,
        ] {
            assert_eq!(
                Aarch64.decide(r_type, &[], 0, TargetKind::ImageRelative),
                Decision::Relax(Relaxation::InitialExecToLocalExec)
            );
        }
        // adrp x3, :gottprel:x; ldr x3, [x3, :gottprel_lo12:x] → movz x3, #1, lsl 16; movk x3, #0x2345
        let adrp = relaxed(R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21, sym, 0, 0x40_0000);
        assert_eq!(patch(adrp, 0x9000_0003).unwrap(), 0xd2a0_0023);
        let ldr = relaxed(R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC, sym, 0, 0x40_0004);
        assert_eq!(patch(ldr, 0xf940_0063).unwrap(), 0xf284_68a3);
        // ldr x3, [x4, ...] cannot become a MOVK of the register the MOVZ wrote.
        assert_eq!(
            patch(ldr, 0xf940_0083).unwrap_err(),
            RelocError::Instruction("R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC")
        );
        // The literal form keeps a GOT slot holding the offset.
        assert_eq!(
            Aarch64.decide(
                R_AARCH64_TLSIE_LD_GOTTPREL_PREL19,
                &[],
                0,
                TargetKind::ImageRelative
            ),
            Decision::Got(GotUse::TpOffset)
        );
        let mut lit = value(R_AARCH64_TLSIE_LD_GOTTPREL_PREL19, sym, 0, 0x42_0000);
        lit.got_slot = Some(0x42_0010);
        assert_eq!(patch(lit, 0x5800_0003).unwrap(), 0x5800_0083);
    }

    #[test]
    fn tls_descriptors_relax_to_local_exec() {
        let sym = 0x43_2335;
        // adrp x0; ldr x1, [x0]; add x0, x0; blr x1 → movz x0; movk x0; nop; nop
        let cases: &[(u32, u32, u32)] = &[
            (R_AARCH64_TLSDESC_ADR_PAGE21, 0x9000_0000, 0xd2a0_0020),
            (R_AARCH64_TLSDESC_LD64_LO12, 0xf940_0001, 0xf284_68a0),
            (R_AARCH64_TLSDESC_ADD_LO12, 0x9100_0000, NOP),
            (R_AARCH64_TLSDESC_CALL, 0xd63f_0020, NOP),
        ];
        for &(r_type, before, after) in cases {
            assert_eq!(
                Aarch64.decide(r_type, &[], 0, TargetKind::ImageRelative),
                Decision::Relax(Relaxation::DescriptorToLocalExec)
            );
            let got = patch(relaxed(r_type, sym, 0, 0x40_0000), before).unwrap();
            assert_eq!(got, after, "{}: {got:#010x} != {after:#010x}", name(r_type));
        }
    }

    #[test]
    fn traditional_general_dynamic_relaxes_to_local_exec() {
        let sym = 0x43_2335;
        let adrp = relaxed(R_AARCH64_TLSGD_ADR_PAGE21, sym, 0, 0x40_0000);
        assert_eq!(patch(adrp, 0x9000_0000).unwrap(), 0xd2a0_0020);
        // add x0, x0, #0; bl __tls_get_addr; nop → movk x0, #0x2345; mrs x1, tpidr_el0;
        // add x0, x1, x0
        let words = [0x9100_0000u32, 0x9400_0000, NOP];
        let mut data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let r = relaxed(R_AARCH64_TLSGD_ADD_LO12_NC, sym, 0, 0x40_0004);
        assert_eq!(Aarch64.apply(&r, &mut data, 0).unwrap(), Applied::SkipNext);
        let want: Vec<u8> = [0xf284_68a0u32, 0xd53b_d041, 0x8b00_0020]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(data, want);
        // Without the call and its nop the sequence is not the one the ABI describes.
        let mut short: Vec<u8> = [0x9100_0000u32, 0x9400_0000, 0xaa00_03e2]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(
            Aarch64.apply(&r, &mut short, 0).unwrap_err(),
            RelocError::Instruction("R_AARCH64_TLSGD_ADD_LO12_NC")
        );
    }

    #[test]
    fn thunks_reach_past_the_branch_range() {
        assert_eq!(Aarch64.branch_reach(R_AARCH64_CALL26), Some(1 << 27));
        assert_eq!(Aarch64.branch_reach(R_AARCH64_JUMP26), Some(1 << 27));
        assert_eq!(Aarch64.branch_reach(R_AARCH64_CONDBR19), None);
        let shape = Aarch64.thunk_shape().expect("aarch64 has thunks");
        let mut out = vec![0u8; shape.size as usize];
        // adrp x16, .+0x8100000; add x16, x16, #0x123; br x16
        (shape.write)(0x40_0000, 0x850_0123, &mut out).unwrap();
        let words: Vec<u32> = out
            .chunks(4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
            .collect();
        assert_eq!(words, [0x9004_0810, 0x9104_8e10, 0xd61f_0200]);
        let err = (shape.write)(0x40_0000, 0x1_0040_0000, &mut out).unwrap_err();
        assert!(matches!(err, RelocError::Overflow { .. }));
    }
}
