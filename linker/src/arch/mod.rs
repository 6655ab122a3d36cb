//! Per-architecture knowledge behind one trait: a table of the relocation types applied (kind,
//! field form, range, alignment, thunk reach, relaxation; see `table.rs`), the instruction
//! rewrites of relaxations, TLS offsets, ELF machine number, page size and default base.
//! Adding an architecture means one new file here, its table included, plus one entry in
//! [`for_machine`].

mod aarch64;
mod table;
mod x86_64;

use std::fmt;

pub use aarch64::Aarch64;
pub use table::{Decision, Description, Kind, Relaxation};
pub use x86_64::X86_64;

/// The PT_TLS segment as laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsSegment {
    pub addr: u64,
    pub file_size: u64,
    pub mem_size: u64,
    pub align: u64,
}

/// What a GOT slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GotUse {
    /// The symbol's address.
    Address,
    /// The symbol's thread-pointer offset (initial-exec TLS not relaxed).
    TpOffset,
}

/// Whether a target's address moves with the image or is fixed (absolute symbols, undefined
/// weak symbols resolving to 0). Only image-relative targets can be reached PC-relatively
/// for certain, so only they allow GOT relaxation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    ImageRelative,
    Absolute,
}

/// Everything an architecture needs to compute one relocation.
#[derive(Debug, Clone, Copy)]
pub struct RelocValue {
    pub r_type: u32,
    /// Symbol value (S).
    pub symbol: u64,
    /// Addend (A).
    pub addend: i64,
    /// Address of the place being relocated (P).
    pub place: u64,
    /// Start of the GOT.
    pub got: u64,
    /// Address of the symbol's GOT slot, when [`Arch::decide`] asked for one.
    pub got_slot: Option<u64>,
    /// The relaxation [`Arch::decide`] chose, applied instead of the table entry.
    pub relaxation: Option<Relaxation>,
    /// Symbol size (Z).
    pub size: u64,
    /// Thread-pointer offset of the symbol, when the image has TLS.
    pub tp_offset: Option<i64>,
}

/// The outcome of applying one relocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The relaxed sequence replaced the instruction the next relocation patches (the
    /// `__tls_get_addr` call after TLSGD/TLSLD); that relocation must be skipped.
    SkipNext,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelocError {
    #[error("value {} does not fit in {range} {bits} bits", Shown(*value))]
    Overflow {
        value: i128,
        bits: u32,
        range: Range,
    },
    #[error("unsupported relocation type {0}")]
    Unsupported(u32),
    #[error("unexpected instruction bytes for {0}")]
    Instruction(&'static str),
    #[error("relocation does not fit in the section")]
    OutOfBounds,
    #[error("thread-local relocation but the image has no TLS segment")]
    NoTls,
    #[error("relocation needs a GOT slot that was not allocated")]
    NoGotSlot,
    #[error(
        "value {} is not a multiple of {align}, which the instruction requires",
        Shown(*value)
    )]
    Misaligned { value: i128, align: u32 },
}

/// How a relocated field's bits are read, which decides the values it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Signed,
    Unsigned,
    /// Signed or unsigned, whichever fits (narrow data fields).
    Either,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::Signed => "signed",
            Range::Unsigned => "unsigned",
            Range::Either => "signed or unsigned",
        })
    }
}

/// A relocation value for messages: computed in 128 bits so nothing wraps, but read by people
/// as a signed number and as the 64-bit word the image would hold.
struct Shown(i128);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        match (i64::try_from(value), u64::try_from(value)) {
            (Ok(v), _) => write!(f, "{v} ({:#x})", v as u64),
            (_, Ok(v)) => write!(f, "{v} ({v:#x})"),
            _ => write!(f, "{value} (beyond 64 bits)"),
        }
    }
}

/// Range-extension thunks of an architecture: a branch that cannot reach its target jumps to
/// a thunk in an island placed after its group of input sections, and the thunk jumps on.
#[derive(Clone, Copy)]
pub struct ThunkShape {
    /// Bytes of one thunk.
    pub size: u64,
    pub align: u64,
    /// Input bytes between islands, small enough that every branch of a group reaches the
    /// island after it.
    pub spacing: u64,
    /// Writes the thunk at address `thunk` jumping to `target` into `out`.
    pub write: fn(thunk: u64, target: u64, out: &mut [u8]) -> Result<(), RelocError>,
}

pub trait Arch: Sync {
    fn name(&self) -> &'static str;
    fn e_machine(&self) -> u16;
    fn page_size(&self) -> u64;
    fn default_base(&self) -> u64;
    /// The relocation's ELF name, for messages; types named but not in the table are
    /// unsupported.
    fn reloc_name(&self, r_type: u32) -> Option<&'static str>;
    /// The table entry of a relocation type, without its field form; `None` if unsupported.
    fn describe(&self, r_type: u32) -> Option<Description>;
    /// Whether the instruction sequence around `offset` of the original section bytes `data`
    /// admits `relaxation` for a target of the given kind.
    fn relaxable(
        &self,
        relaxation: Relaxation,
        data: &[u8],
        offset: u64,
        target: TargetKind,
    ) -> bool;
    /// Decides from the table, the target and the original section bytes how a relocation
    /// is applied: layout records the decision and relocation follows it, so the GOT slots
    /// allocated and the ones used agree.
    fn decide(&self, r_type: u32, data: &[u8], offset: u64, target: TargetKind) -> Decision {
        let Some(entry) = self.describe(r_type) else {
            // Unsupported: applying it reports the error.
            return Decision::Direct;
        };
        if let Some(relaxation) = entry.relax
            && self.relaxable(relaxation, data, offset, target)
        {
            return Decision::Relax(relaxation);
        }
        entry.kind.got_use().map_or(Decision::Direct, Decision::Got)
    }
    /// Patches `data` at `offset`.
    fn apply(&self, r: &RelocValue, data: &mut [u8], offset: usize) -> Result<Applied, RelocError>;
    /// Thread-pointer-relative offset of a TLS address.
    fn tp_offset(&self, addr: u64, tls: &TlsSegment) -> i64;
    /// How far (bytes either way) a branch relocation of this type reaches, when a
    /// range-extension thunk may stand in for a target beyond that.
    fn branch_reach(&self, r_type: u32) -> Option<u64> {
        self.describe(r_type)?.reach
    }
    /// The architecture's range-extension thunks, if it has any.
    fn thunk_shape(&self) -> Option<ThunkShape> {
        None
    }
}

// Range checks and stores of relocated fields, which no architecture does its own way.

fn check_signed(value: i128, bits: u32) -> Result<(), RelocError> {
    let min = -(1i128 << (bits - 1));
    let max = (1i128 << (bits - 1)) - 1;
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RelocError::Overflow {
            value,
            bits,
            range: Range::Signed,
        })
    }
}

fn check_unsigned(value: i128, bits: u32) -> Result<(), RelocError> {
    if (0..(1i128 << bits)).contains(&value) {
        Ok(())
    } else {
        Err(RelocError::Overflow {
            value,
            bits,
            range: Range::Unsigned,
        })
    }
}

/// Either interpretation is accepted, −2^(bits−1) ≤ X < 2^bits: the psABIs' check for
/// narrow data fields, as GNU ld does it.
fn check_either(value: i128, bits: u32) -> Result<(), RelocError> {
    check_signed(value, bits)
        .or_else(|_| check_unsigned(value, bits))
        .map_err(|_| RelocError::Overflow {
            value,
            bits,
            range: Range::Either,
        })
}

fn write_bytes(data: &mut [u8], offset: usize, bytes: &[u8]) -> Result<(), RelocError> {
    data.get_mut(offset..offset + bytes.len())
        .ok_or(RelocError::OutOfBounds)?
        .copy_from_slice(bytes);
    Ok(())
}

/// The architecture for an ELF `e_machine`, if supported.
pub fn for_machine(e_machine: u16) -> Option<&'static dyn Arch> {
    const ARCHES: &[&dyn Arch] = &[&X86_64, &Aarch64];
    ARCHES.iter().copied().find(|a| a.e_machine() == e_machine)
}
