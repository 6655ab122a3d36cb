//! The vocabulary of the per-architecture relocation tables, and the one way every table entry
//! is applied: compute the value its kind names, check its range and alignment, and hand it
//! to the writer of its field form. Each architecture's file holds its table, its field forms
//! and the instruction rewrites of its relaxations.

use super::{
    Applied, GotUse, RelocError, RelocValue, check_either, check_signed, check_unsigned,
    write_bytes,
};

/// What a relocation's value is computed from, in the psABIs' notation: S the symbol, A the
/// addend, P the place, G the address of the symbol's GOT slot, GOT the start of the GOT, Z
/// the symbol's size, TP the symbol's thread-pointer offset, Page(x) = x & !0xfff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing is written.
    None,
    /// S + A.
    Absolute,
    /// S + A − P.
    PcRelative,
    /// (Page(S + A) − Page(P)) / 4096: the pages between place and target.
    PageRelative,
    /// S + A − GOT.
    GotRelative,
    /// GOT + A − P.
    GotPcRelative,
    /// Z + A.
    Size,
    /// TP + A.
    TpRelative,
    /// G + A, the slot holding what the `GotUse` says.
    Slot(GotUse),
    /// G + A − P.
    SlotPcRelative(GotUse),
    /// (Page(G + A) − Page(P)) / 4096.
    SlotPageRelative(GotUse),
    /// G + A − GOT.
    SlotGotRelative(GotUse),
    /// G + A − Page(GOT).
    SlotGotPageRelative(GotUse),
    /// A general-dynamic, local-dynamic or descriptor TLS access: a static image has no
    /// dynamic TLS machinery, so such a relocation is only ever applied relaxed to local-exec.
    DynamicTls,
}

impl Kind {
    /// The GOT slot the relocation needs when it is not relaxed.
    pub fn got_use(self) -> Option<GotUse> {
        match self {
            Kind::Slot(g)
            | Kind::SlotPcRelative(g)
            | Kind::SlotPageRelative(g)
            | Kind::SlotGotRelative(g)
            | Kind::SlotGotPageRelative(g) => Some(g),
            _ => None,
        }
    }

    /// The value, or `None` for [`Kind::None`] and [`Kind::DynamicTls`], which have none.
    fn value(self, o: &Operands) -> Result<Option<i128>, RelocError> {
        let slot = || o.slot.map(|g| g + o.a).ok_or(RelocError::NoGotSlot);
        Ok(Some(match self {
            Kind::None | Kind::DynamicTls => return Ok(None),
            Kind::Absolute => o.s + o.a,
            Kind::PcRelative => o.s + o.a - o.p,
            Kind::PageRelative => (page(o.s + o.a) - page(o.p)) >> 12,
            Kind::GotRelative => o.s + o.a - o.got,
            Kind::GotPcRelative => o.got + o.a - o.p,
            Kind::Size => o.size + o.a,
            Kind::TpRelative => o.tp.ok_or(RelocError::NoTls)? + o.a,
            Kind::Slot(_) => slot()?,
            Kind::SlotPcRelative(_) => slot()? - o.p,
            Kind::SlotPageRelative(_) => (page(slot()?) - page(o.p)) >> 12,
            Kind::SlotGotRelative(_) => slot()? - o.got,
            Kind::SlotGotPageRelative(_) => slot()? - page(o.got),
        }))
    }
}

/// The 4 KiB page of an address, as ADRP-style page-relative kinds count them.
pub(super) fn page(x: i128) -> i128 {
    x & !0xfff
}

/// Which values a field holds; beyond them the relocation overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Any: the field holds the value's low bits (`_NC` forms, 64-bit data).
    None,
    Signed(u32),
    Unsigned(u32),
    /// Signed or unsigned, whichever fits: narrow data fields, as GNU ld checks them.
    Either(u32),
}

impl Check {
    fn check(self, value: i128) -> Result<(), RelocError> {
        match self {
            Check::None => Ok(()),
            Check::Signed(bits) => check_signed(value, bits),
            Check::Unsigned(bits) => check_unsigned(value, bits),
            Check::Either(bits) => check_either(value, bits),
        }
    }

    /// How far either way a signed PC-relative field reaches.
    fn reach(self) -> Option<u64> {
        match self {
            Check::Signed(bits) => Some(1 << (bits - 1)),
            _ => None,
        }
    }
}

/// A rewrite of an instruction sequence that makes a relocation need less than its table
/// entry says: no GOT slot, no dynamic TLS. The same rewrites GNU ld and lld perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relaxation {
    /// A load of the symbol's address from its GOT slot becomes the address computation.
    GotToDirect,
    /// A load of the thread-pointer offset from the GOT becomes the offset itself.
    InitialExecToLocalExec,
    /// A `__tls_get_addr` call for the symbol becomes the thread pointer plus its offset.
    GeneralDynamicToLocalExec,
    /// A `__tls_get_addr` call for the module becomes the thread pointer.
    LocalDynamicToLocalExec,
    /// A TLS descriptor call becomes the offset itself.
    DescriptorToLocalExec,
}

/// How a relocation is applied, decided once from its type, its target and the original
/// instruction bytes; layout allocates GOT slots from these and relocation follows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// As the table entry says, needing no GOT slot.
    Direct,
    /// Through a GOT slot holding this.
    Got(GotUse),
    /// Rewritten by this relaxation.
    Relax(Relaxation),
}

/// The form of the field a relocation writes: data of some width or an instruction's
/// immediate. One writer each.
pub trait Field: Copy {
    /// The part of `value` the field encodes, whose alignment the table entry requires: the
    /// value itself but for forms that take its low bits.
    fn encoded(self, value: i128) -> i128 {
        value
    }

    /// Writes `value` into the field at `offset`; `name` names the relocation for errors
    /// about the instruction found there.
    fn write(
        self,
        data: &mut [u8],
        offset: usize,
        value: i128,
        name: &'static str,
    ) -> Result<(), RelocError>;
}

/// Little-endian data of a width, the value truncated to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    Bits8,
    Bits16,
    Bits32,
    Bits64,
}

impl Field for Data {
    fn write(
        self,
        data: &mut [u8],
        offset: usize,
        v: i128,
        _: &'static str,
    ) -> Result<(), RelocError> {
        match self {
            Data::Bits8 => write_bytes(data, offset, &[v as u8]),
            Data::Bits16 => write_bytes(data, offset, &(v as u16).to_le_bytes()),
            Data::Bits32 => write_bytes(data, offset, &(v as u32).to_le_bytes()),
            Data::Bits64 => write_bytes(data, offset, &(v as u64).to_le_bytes()),
        }
    }
}

/// How a value is computed, checked and written: a table entry's semantics, and what a
/// relaxed sequence still needs done.
#[derive(Debug, Clone, Copy)]
pub struct Encoding<F> {
    pub kind: Kind,
    pub field: F,
    pub range: Check,
    /// The encoded value must be a multiple of this.
    pub align: u32,
}

impl<F> Encoding<F> {
    /// This encoding applied `offset` bytes into the data, the addend unchanged.
    pub fn at(self, offset: usize) -> Option<Then<F>> {
        Some(Then {
            encoding: self,
            offset,
            addend: 0,
        })
    }
}

/// One relocation type of an architecture's table.
#[derive(Debug, Clone, Copy)]
pub struct RelocInfo<F> {
    pub r_type: u32,
    pub name: &'static str,
    pub encoding: Encoding<F>,
    /// A range-extension thunk may stand in for a target beyond the field's range.
    pub thunk: bool,
    /// The rewrite the relocation may take instead.
    pub relax: Option<Relaxation>,
}

impl<F: Copy> RelocInfo<F> {
    pub const fn new(r_type: u32, name: &'static str, kind: Kind, field: F, range: Check) -> Self {
        RelocInfo {
            r_type,
            name,
            encoding: Encoding {
                kind,
                field,
                range,
                align: 1,
            },
            thunk: false,
            relax: None,
        }
    }

    pub const fn aligned(mut self, align: u32) -> Self {
        self.encoding.align = align;
        self
    }

    pub const fn thunk(mut self) -> Self {
        self.thunk = true;
        self
    }

    pub const fn relax(mut self, relaxation: Relaxation) -> Self {
        self.relax = Some(relaxation);
        self
    }

    /// The entry without its field form, which is all layout and the thunk pass read.
    pub fn description(&self) -> Description {
        Description {
            name: self.name,
            kind: self.encoding.kind,
            reach: if self.thunk {
                self.encoding.range.reach()
            } else {
                None
            },
            relax: self.relax,
        }
    }
}

/// A table entry as architecture-independent code sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Description {
    pub name: &'static str,
    pub kind: Kind,
    /// How far either way the relocation reaches, when a range-extension thunk may stand in
    /// for a target beyond that.
    pub reach: Option<u64>,
    pub relax: Option<Relaxation>,
}

/// `reloc!(R_X, Kind, field, check)`: a table entry named after its constant.
macro_rules! reloc {
    ($r_type:ident, $kind:expr, $field:expr, $range:expr) => {
        $crate::arch::table::RelocInfo::new($r_type, stringify!($r_type), $kind, $field, $range)
    };
}
pub(super) use reloc;

/// Position of each relocation type's entry in `table`, for lookup without a search;
/// `u8::MAX` where the type has none. `N` exceeds every type of the table.
pub const fn index<F, const N: usize>(table: &[RelocInfo<F>]) -> [u8; N] {
    assert!(table.len() < u8::MAX as usize);
    let mut index = [u8::MAX; N];
    let mut i = 0;
    while i < table.len() {
        let r_type = table[i].r_type as usize;
        assert!(index[r_type] == u8::MAX, "a relocation type listed twice");
        index[r_type] = i as u8;
        i += 1;
    }
    index
}

/// The entry of `r_type` through its `index`.
pub fn lookup<'t, F, const N: usize>(
    table: &'t [RelocInfo<F>],
    index: &[u8; N],
    r_type: u32,
) -> Option<&'t RelocInfo<F>> {
    let i = *index.get(r_type as usize)?;
    table.get(usize::from(i))
}

/// Whether an architecture reads addresses as signed: x86_64 kernels live in the top
/// (negative) half of the address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    Unsigned,
    SignExtended,
}

/// The inputs of [`Kind::value`], in 128 bits so that nothing wraps.
#[derive(Clone, Copy)]
struct Operands {
    s: i128,
    a: i128,
    p: i128,
    got: i128,
    slot: Option<i128>,
    size: i128,
    tp: Option<i128>,
}

impl Operands {
    fn new(r: &RelocValue, addresses: Addresses) -> Self {
        let addr = |a: u64| match addresses {
            Addresses::Unsigned => i128::from(a),
            Addresses::SignExtended => i128::from(a as i64),
        };
        Operands {
            s: addr(r.symbol),
            a: i128::from(r.addend),
            p: addr(r.place),
            got: addr(r.got),
            slot: r.got_slot.map(addr),
            size: i128::from(r.size),
            tp: r.tp_offset.map(i128::from),
        }
    }
}

/// What remains after a relaxation rewrote the instructions.
pub struct Relaxed<F> {
    /// The relocation the rewritten sequence still needs, if any.
    pub then: Option<Then<F>>,
    pub applied: Applied,
}

/// A relocation a relaxed sequence needs, applied at `offset`: the place moves with it.
pub struct Then<F> {
    pub encoding: Encoding<F>,
    pub offset: usize,
    /// Added to the original addend.
    pub addend: i64,
}

/// Rewrites the instructions around a relocation for a relaxation; the name is the
/// relocation's, for errors about the instructions found.
pub type Rewrite<F> =
    fn(Relaxation, &'static str, &RelocValue, &mut [u8], usize) -> Result<Relaxed<F>, RelocError>;

/// Applies `r` at `offset` by `entry`, or by the relaxation it carries through `rewrite`.
pub fn apply<F: Field>(
    entry: &RelocInfo<F>,
    r: &RelocValue,
    data: &mut [u8],
    offset: usize,
    addresses: Addresses,
    rewrite: Rewrite<F>,
) -> Result<Applied, RelocError> {
    let Some(relaxation) = r.relaxation else {
        if entry.encoding.kind == Kind::DynamicTls {
            return Err(RelocError::Unsupported(r.r_type));
        }
        encode(&entry.encoding, entry.name, r, addresses, data, offset)?;
        return Ok(Applied::Done);
    };
    if entry.relax != Some(relaxation) {
        return Err(RelocError::Unsupported(r.r_type));
    }
    let relaxed = rewrite(relaxation, entry.name, r, data, offset)?;
    if let Some(then) = relaxed.then {
        let moved = RelocValue {
            place: r
                .place
                .wrapping_add(then.offset.wrapping_sub(offset) as u64),
            // A hostile addend next to the sequence's own adjustment must not overflow.
            addend: r
                .addend
                .checked_add(then.addend)
                .ok_or(RelocError::Overflow {
                    value: i128::from(r.addend) + i128::from(then.addend),
                    bits: 64,
                    range: super::Range::Signed,
                })?,
            ..*r
        };
        encode(
            &then.encoding,
            entry.name,
            &moved,
            addresses,
            data,
            then.offset,
        )?;
    }
    Ok(relaxed.applied)
}

/// Computes the value, checks its range and alignment, and writes it.
fn encode<F: Field>(
    e: &Encoding<F>,
    name: &'static str,
    r: &RelocValue,
    addresses: Addresses,
    data: &mut [u8],
    offset: usize,
) -> Result<(), RelocError> {
    let Some(value) = e.kind.value(&Operands::new(r, addresses))? else {
        return Ok(());
    };
    e.range.check(value)?;
    let encoded = e.field.encoded(value);
    if encoded % i128::from(e.align) != 0 {
        return Err(RelocError::Misaligned {
            value: encoded,
            align: e.align,
        });
    }
    e.field.write(data, offset, value, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[RelocInfo<Data>] = &[
        RelocInfo::new(
            7,
            "SEVEN",
            Kind::PcRelative,
            Data::Bits32,
            Check::Signed(28),
        )
        .aligned(4)
        .thunk(),
        RelocInfo::new(
            2,
            "TWO",
            Kind::Slot(GotUse::Address),
            Data::Bits64,
            Check::None,
        )
        .relax(Relaxation::GotToDirect),
    ];
    const INDEX: [u8; 8] = index(TABLE);

    #[test]
    fn lookup_finds_each_entry_and_nothing_else() {
        assert_eq!(lookup(TABLE, &INDEX, 7).map(|e| e.name), Some("SEVEN"));
        assert_eq!(lookup(TABLE, &INDEX, 2).map(|e| e.name), Some("TWO"));
        assert!(lookup(TABLE, &INDEX, 3).is_none());
        assert!(lookup(TABLE, &INDEX, 1000).is_none());
    }

    #[test]
    fn descriptions_give_reach_only_to_thunk_reachable_entries() {
        let seven = TABLE[0].description();
        assert_eq!(seven.reach, Some(1 << 27));
        assert_eq!(seven.kind.got_use(), None);
        let two = TABLE[1].description();
        assert_eq!(two.reach, None);
        assert_eq!(two.kind.got_use(), Some(GotUse::Address));
        assert_eq!(two.relax, Some(Relaxation::GotToDirect));
    }

    #[test]
    fn kinds_compute_the_psabi_formulas() {
        let o = Operands {
            s: 0x5000,
            a: 8,
            p: 0x1ff8,
            got: 0x9000,
            slot: Some(0x9010),
            size: 0x40,
            tp: Some(-0x20),
        };
        let cases = [
            (Kind::Absolute, 0x5008),
            (Kind::PcRelative, 0x3010),
            (Kind::PageRelative, 4),
            (Kind::GotRelative, 0x5008 - 0x9000),
            (Kind::GotPcRelative, 0x9008 - 0x1ff8),
            (Kind::Size, 0x48),
            (Kind::TpRelative, -0x18),
            (Kind::Slot(GotUse::Address), 0x9018),
            (Kind::SlotPcRelative(GotUse::Address), 0x9018 - 0x1ff8),
            (Kind::SlotPageRelative(GotUse::TpOffset), 8),
            (Kind::SlotGotRelative(GotUse::Address), 0x18),
            (Kind::SlotGotPageRelative(GotUse::Address), 0x18),
        ];
        for (kind, want) in cases {
            assert_eq!(kind.value(&o), Ok(Some(want)), "{kind:?}");
        }
        assert_eq!(Kind::None.value(&o), Ok(None));
        let bare = Operands {
            slot: None,
            tp: None,
            ..o
        };
        assert_eq!(
            Kind::SlotPcRelative(GotUse::Address).value(&bare),
            Err(RelocError::NoGotSlot)
        );
        assert_eq!(Kind::TpRelative.value(&bare), Err(RelocError::NoTls));
    }
}
