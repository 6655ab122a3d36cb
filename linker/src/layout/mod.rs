//! Layout: which output section each kept input section goes to, merged strings, the GOT,
//! common symbols, segment and section addresses, and the final value of every symbol. The
//! GOT sub-phase (`got`) decides each relocation once for the whole link; thunk rounds
//! redo the rest.
//!
//! Segments follow the static-executable convention: ELF and program headers (plus notes)
//! in a read-only segment, then code, then read-only data, then writable data with TLS
//! first. Each PT_LOAD starts on a fresh page in memory while the file stays dense: the
//! address keeps the file offset's position within the page, as lld does by default.

use object::elf;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use uniklink_analyzer::eh_frame::RecordKind;
use uniklink_analyzer::graph::SectionGraph;
use uniklink_analyzer::id::{IdVec, Idx};
use uniklink_analyzer::object::{ObjectId, Section, SectionId, SymbolIndex, SymbolPlace};
use uniklink_analyzer::resolve::{Definition, SymbolDb, SymbolId, SymbolRef, start_stop_section};

mod got;

pub use got::{Got, GotEntry, GotSlot, Recorded, RelocIndex};

use crate::arch::{Arch, GotUse, TargetKind, TlsSegment};
use crate::eh_frame_hdr;
use crate::error::{DiscardedTarget, Error, Result};
use crate::thunks::{ThunkGroup, ThunkPlan, insert_islands};

pub struct LayoutOptions<'s> {
    pub entry: &'s str,
    /// Address of the first byte of the image; the architecture's default when `None`.
    pub base: Option<u64>,
    /// Randomize the layout with this seed: the input sections of code, read-only data, data
    /// and bss in a shuffled order, and the base moved up by a whole number of pages (fewer
    /// than [`RANDOM_BASE_PAGES`]). The same seed gives the same layout.
    pub randomize: Option<u64>,
    /// Write `.eh_frame_hdr` and its `PT_GNU_EH_FRAME` (ld's `--eh-frame-hdr`) when there is
    /// an `.eh_frame`; see [`crate::eh_frame_hdr`].
    pub eh_frame_hdr: bool,
}

/// The base moves up by fewer pages than this under [`LayoutOptions::randomize`]: up to
/// 1 MiB, which keeps an x86_64 PVH image below 2 MiB.
pub const RANDOM_BASE_PAGES: u64 = 256;
const PAGE: u64 = 4096;

/// SplitMix64: a small, well-mixed generator; layout randomization needs only that a seed
/// gives one permutation, not unpredictability against someone who knows the seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher-Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

impl Rank {
    /// Whether the order of the input sections inside the output section carries no meaning,
    /// so randomization may shuffle them: not `.init`/`.fini` (crti/crtn frame the code
    /// between them), the init/fini arrays and `.ctors`/`.dtors` (order is run order),
    /// `.eh_frame` (crtend's terminator is last), TLS (the thread pointer's offsets), notes.
    fn shufflable(self) -> bool {
        matches!(
            self,
            Rank::Text
                | Rank::OtherExec
                | Rank::Rodata
                | Rank::OtherRo
                | Rank::DataRelRo
                | Rank::Data
                | Rank::OtherData
                | Rank::Bss
                | Rank::OtherBss
        )
    }
}

/// Output section kinds in address order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    Note,
    Init,
    Text,
    OtherExec,
    Fini,
    Rodata,
    OtherRo,
    EhFrameHdr,
    EhFrame,
    GccExceptTable,
    Tdata,
    Tbss,
    PreinitArray,
    InitArray,
    FiniArray,
    Ctors,
    Dtors,
    DataRelRo,
    Got,
    Data,
    OtherData,
    Bss,
    OtherBss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentKind {
    Headers,
    Exec,
    ReadOnly,
    Writable,
}

impl Rank {
    pub fn segment(self) -> SegmentKind {
        match self {
            Rank::Note => SegmentKind::Headers,
            Rank::Init | Rank::Text | Rank::OtherExec | Rank::Fini => SegmentKind::Exec,
            Rank::Rodata
            | Rank::OtherRo
            | Rank::EhFrameHdr
            | Rank::EhFrame
            | Rank::GccExceptTable => SegmentKind::ReadOnly,
            _ => SegmentKind::Writable,
        }
    }

    fn sh_type(self) -> u32 {
        match self {
            Rank::Note => elf::SHT_NOTE,
            Rank::Tbss | Rank::Bss | Rank::OtherBss => elf::SHT_NOBITS,
            Rank::PreinitArray => elf::SHT_PREINIT_ARRAY,
            Rank::InitArray => elf::SHT_INIT_ARRAY,
            Rank::FiniArray => elf::SHT_FINI_ARRAY,
            _ => elf::SHT_PROGBITS,
        }
    }

    fn flags(self) -> u64 {
        let alloc = u64::from(elf::SHF_ALLOC);
        let write = u64::from(elf::SHF_WRITE);
        match self.segment() {
            SegmentKind::Headers | SegmentKind::ReadOnly => alloc,
            SegmentKind::Exec => alloc | u64::from(elf::SHF_EXECINSTR),
            SegmentKind::Writable if matches!(self, Rank::Tdata | Rank::Tbss) => {
                alloc | write | u64::from(elf::SHF_TLS)
            }
            SegmentKind::Writable => alloc | write,
        }
    }
}

/// Matches `name` or `name.*`.
fn has_prefix(name: &[u8], prefix: &[u8]) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'.')
}

fn is_c_identifier(name: &[u8]) -> bool {
    !name.is_empty()
        && !name[0].is_ascii_digit()
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The output section an input section goes to. Sections named like C identifiers keep
/// their own output section so `__start_`/`__stop_` symbols can bound them.
/// `crt_lists` marks crtbegin/crtend objects, whose `.ctors`/`.dtors` hold list sentinels for
/// crtstuff's own walker and stay out of the init arrays, as in GNU ld's default script.
fn output_section_for<'d>(s: &Section<'d>, crt_lists: bool) -> (&'d [u8], Rank) {
    let name = s.name;
    let exec = s.flags & u64::from(elf::SHF_EXECINSTR) != 0;
    let write = s.flags & u64::from(elf::SHF_WRITE) != 0;
    if s.sh_type == elf::SHT_NOTE {
        return (name, Rank::Note);
    }
    if s.flags & u64::from(elf::SHF_TLS) != 0 {
        return if s.is_nobits() {
            (b".tbss", Rank::Tbss)
        } else {
            (b".tdata", Rank::Tdata)
        };
    }
    if s.sh_type == elf::SHT_PREINIT_ARRAY || has_prefix(name, b".preinit_array") {
        return (b".preinit_array", Rank::PreinitArray);
    }
    if s.sh_type == elf::SHT_INIT_ARRAY || has_prefix(name, b".init_array") {
        return (b".init_array", Rank::InitArray);
    }
    if s.sh_type == elf::SHT_FINI_ARRAY || has_prefix(name, b".fini_array") {
        return (b".fini_array", Rank::FiniArray);
    }
    if has_prefix(name, b".ctors") {
        return if crt_lists {
            (b".ctors", Rank::Ctors)
        } else {
            (b".init_array", Rank::InitArray)
        };
    }
    if has_prefix(name, b".dtors") {
        return if crt_lists {
            (b".dtors", Rank::Dtors)
        } else {
            (b".fini_array", Rank::FiniArray)
        };
    }
    if exec {
        return match name {
            b".init" => (name, Rank::Init),
            b".fini" => (name, Rank::Fini),
            _ if has_prefix(name, b".text") => (b".text", Rank::Text),
            _ if is_c_identifier(name) => (name, Rank::OtherExec),
            _ => (b".text", Rank::Text),
        };
    }
    if write {
        return if s.is_nobits() {
            if is_c_identifier(name) {
                (name, Rank::OtherBss)
            } else {
                (b".bss", Rank::Bss)
            }
        } else if has_prefix(name, b".data.rel.ro") {
            (b".data.rel.ro", Rank::DataRelRo)
        } else if is_c_identifier(name) {
            (name, Rank::OtherData)
        } else {
            (b".data", Rank::Data)
        };
    }
    if name == b".eh_frame" || s.sh_type == elf::SHT_X86_64_UNWIND {
        (b".eh_frame", Rank::EhFrame)
    } else if has_prefix(name, b".gcc_except_table") {
        (b".gcc_except_table", Rank::GccExceptTable)
    } else if is_c_identifier(name) {
        (name, Rank::OtherRo)
    } else {
        (b".rodata", Rank::Rodata)
    }
}

/// GNU ld's order for `.init_array.N`/`.fini_array.N`: by priority, unsuffixed last.
/// `.ctors.N` counts priorities down from 65535, so it sorts by `65535 - N`.
fn init_priority(name: &[u8]) -> u32 {
    let digits = name.rsplit(|&c| c == b'.').next().unwrap_or_default();
    let Some(n) = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u16>().ok())
    else {
        return u32::from(u16::MAX) + 1;
    };
    if is_ctors_dtors(name) {
        u32::from(u16::MAX - n)
    } else {
        u32::from(n)
    }
}

fn is_ctors_dtors(name: &[u8]) -> bool {
    has_prefix(name, b".ctors") || has_prefix(name, b".dtors")
}

/// crtbegin*.o/crtend*.o, by file name (GNU ld's `*crtbegin?.o` patterns).
fn is_crt_list_object(name: &str) -> bool {
    let file = name.rsplit(['/', '(']).next().unwrap_or(name);
    let file = file.trim_end_matches(')');
    ["crtbegin", "crtend"].iter().any(|p| {
        file.strip_prefix(p)
            .and_then(|rest| rest.strip_suffix(".o"))
            .is_some_and(|mid| mid.len() <= 1)
    })
}

/// Pointers of `.ctors`/`.dtors` run last to first; in the init arrays, which run first to
/// last, they are stored in reverse (as GNU ld does). Maps an offset into such a section.
fn reversed_offset(size: u64, offset: u64) -> u64 {
    const WORD: u64 = 8;
    if offset >= size {
        offset
    } else {
        size - WORD - (offset - offset % WORD) + offset % WORD
    }
}

/// How a mergeable input splits into pieces that can be shared across inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MergeKind {
    /// NUL-terminated strings of bytes.
    Strings,
    /// Fixed-size constants of this many bytes (`.rodata.cst16`).
    Constants(u64),
}

/// Mergeable inputs without relocations; anything else is copied as is.
fn merge_kind(s: &Section<'_>) -> Option<MergeKind> {
    let mergeable = s.flags & u64::from(elf::SHF_MERGE) != 0
        && s.entsize > 0
        && !s.is_nobits()
        && s.relocs().len() == 0;
    if !mergeable {
        None
    } else if s.flags & u64::from(elf::SHF_STRINGS) != 0 {
        (s.entsize == 1).then_some(MergeKind::Strings)
    } else {
        s.size
            .is_multiple_of(s.entsize)
            .then_some(MergeKind::Constants(s.entsize))
    }
}

/// Splits a mergeable input into (input offset, bytes) pieces.
fn split_pieces(kind: MergeKind, bytes: &[u8]) -> Vec<(u64, &[u8])> {
    match kind {
        MergeKind::Strings => {
            let mut pieces = Vec::new();
            let mut pos = 0;
            while pos < bytes.len() {
                let end = bytes[pos..]
                    .iter()
                    .position(|&c| c == 0)
                    .map_or(bytes.len(), |n| pos + n + 1);
                pieces.push((pos as u64, &bytes[pos..end]));
                pos = end;
            }
            pieces
        }
        MergeKind::Constants(size) => bytes
            .chunks(size as usize)
            .enumerate()
            .map(|(i, c)| (i as u64 * size, c))
            .collect(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    Input(SectionId),
    /// An `.eh_frame` input with dropped FDEs removed.
    EhFrame(SectionId),
    /// Index into [`Layout::strings`]: deduplicated strings or constants.
    Strings(usize),
    Got,
    /// The `.eh_frame_hdr` table of the given number of FDEs, filled after relocation.
    EhFrameHdr(u64),
    Commons,
    /// The range-extension thunks of [`Layout::thunk_groups`]`[i]`.
    Thunks(usize),
}

#[derive(Debug, Clone)]
pub struct Chunk {
    pub kind: ChunkKind,
    /// Offset within the output section.
    pub offset: u64,
    pub size: u64,
    pub align: u64,
}

#[derive(Debug, Clone)]
pub struct OutputSection {
    pub name: Vec<u8>,
    pub rank: Rank,
    pub sh_type: u32,
    pub flags: u64,
    pub align: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub chunks: Vec<Chunk>,
}

impl OutputSection {
    pub fn is_nobits(&self) -> bool {
        self.sh_type == elf::SHT_NOBITS
    }

    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub kind: SegmentKind,
    pub offset: u64,
    pub addr: u64,
    pub file_size: u64,
    pub mem_size: u64,
    /// `PF_*` flags.
    pub flags: u32,
}

/// Deduplicated pieces of the `SHF_MERGE` inputs of one output section that share a kind and
/// alignment: strings (with common suffixes shared) or fixed-size constants.
pub struct MergedStrings {
    pub data: Vec<u8>,
    pub align: u64,
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    input: u64,
    output: u64,
}

/// Where a relocation's symbol ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: u64,
    pub kind: TargetKind,
    pub size: u64,
    /// The addend left to apply: zero when it was folded into `addr` (merged strings).
    pub addend: i64,
}

pub struct Layout<'a> {
    pub arch: &'static dyn Arch,
    pub graph: &'a SectionGraph<'a>,
    pub db: &'a SymbolDb<'a>,
    pub base: u64,
    pub sections: Vec<OutputSection>,
    pub segments: Vec<Segment>,
    pub tls: Option<TlsSegment>,
    pub strings: Vec<MergedStrings>,
    /// Per loaded object, the address of each input section placed in the image.
    section_addr: IdVec<ObjectId, Vec<Option<u64>>>,
    pieces: FxHashMap<SectionId, (usize, Vec<Piece>)>,
    /// `.ctors`/`.dtors` inputs stored word-reversed in an init array.
    reversed: FxHashSet<SectionId>,
    /// Per `.eh_frame` input, the output offset of each record (relative to its chunk).
    pub eh_offsets: FxHashMap<SectionId, Vec<Option<u64>>>,
    /// The GOT's slots and the decisions about relocations relocation follows.
    pub got: Got,
    pub got_addr: u64,
    commons: FxHashMap<SymbolId, u64>,
    pub global_addr: IdVec<SymbolId, u64>,
    pub entry: u64,
    pub headers_size: u64,
    pub phnum: usize,
    /// End of loaded file data; non-loaded tables (symtab) follow.
    pub file_size: u64,
    /// Groups of executable input sections and their range-extension thunks.
    pub thunk_groups: Vec<ThunkGroup>,
    /// The thunk address of each branch that goes through one, by section and relocation.
    pub thunked: FxHashMap<(SectionId, RelocIndex), u64>,
}

pub const EHDR_SIZE: u64 = 64;
pub const PHDR_SIZE: u64 = 56;

struct Builder<'d> {
    name: &'d [u8],
    rank: Rank,
    inputs: Vec<SectionId>,
}

impl<'a> Layout<'a> {
    pub fn build(
        graph: &'a SectionGraph<'a>,
        arch: &'static dyn Arch,
        opts: &LayoutOptions<'_>,
    ) -> Result<Self> {
        let mut got = Got::decide(graph, arch);
        let mut plan = ThunkPlan::default();
        loop {
            let mut layout = Self::build_with(graph, arch, opts, &plan, got)?;
            if !plan.extend(&mut layout)? {
                return Ok(layout);
            }
            got = layout.got;
        }
    }

    /// One layout with the range-extension thunks `plan` asks for.
    fn build_with(
        graph: &'a SectionGraph<'a>,
        arch: &'static dyn Arch,
        opts: &LayoutOptions<'_>,
        plan: &ThunkPlan,
        got: Got,
    ) -> Result<Self> {
        let db = graph.db;
        let mut builders: Vec<Builder<'a>> = Vec::new();
        let mut reversed = FxHashSet::default();
        let mut by_name: FxHashMap<(&'a [u8], Rank), usize> = FxHashMap::default();
        for id in graph.kept_sections() {
            let s = db.object(id.object).section(id.index);
            let crt_lists = is_crt_list_object(&db.object(id.object).name);
            let (name, rank) = output_section_for(s, crt_lists);
            if matches!(rank, Rank::InitArray | Rank::FiniArray)
                && is_ctors_dtors(s.name)
                && s.size.is_multiple_of(8)
            {
                reversed.insert(id);
            }
            let i = *by_name.entry((name, rank)).or_insert_with(|| {
                builders.push(Builder {
                    name,
                    rank,
                    inputs: Vec::new(),
                });
                builders.len() - 1
            });
            builders[i].inputs.push(id);
        }
        for b in &mut builders {
            if matches!(
                b.rank,
                Rank::InitArray | Rank::FiniArray | Rank::PreinitArray
            ) {
                b.inputs
                    .sort_by_key(|id| init_priority(db.object(id.object).section(id.index).name));
            }
        }

        let needs_got = !got.entries.is_empty()
            || db
                .lookup(b"_GLOBAL_OFFSET_TABLE_")
                .is_some_and(|g| db.global(g).def == Definition::Linker);
        if needs_got {
            builders.push(Builder {
                name: b".got",
                rank: Rank::Got,
                inputs: Vec::new(),
            });
        }
        if opts.eh_frame_hdr && builders.iter().any(|b| b.rank == Rank::EhFrame) {
            builders.push(Builder {
                name: b".eh_frame_hdr",
                rank: Rank::EhFrameHdr,
                inputs: Vec::new(),
            });
        }
        let mut commons = Vec::new();
        for (i, g) in db.globals.iter().enumerate() {
            if let Definition::Common { object, index } = g.def {
                commons.push((SymbolId(i as u32), object, index));
            }
        }
        if !commons.is_empty() && !builders.iter().any(|b| b.rank == Rank::Bss) {
            builders.push(Builder {
                name: b".bss",
                rank: Rank::Bss,
                inputs: Vec::new(),
            });
        }
        // Stable: equal ranks keep first-seen order.
        builders.sort_by_key(|b| b.rank);
        let mut random = opts.randomize.map(SplitMix64);
        if let Some(random) = &mut random {
            for b in builders.iter_mut().filter(|b| b.rank.shufflable()) {
                random.shuffle(&mut b.inputs);
            }
        }
        let base = opts.base.unwrap_or(arch.default_base())
            + random.map_or(0, |mut r| r.next() % RANDOM_BASE_PAGES * PAGE);

        let mut layout = Layout {
            arch,
            graph,
            db,
            base,
            sections: Vec::new(),
            segments: Vec::new(),
            tls: None,
            strings: Vec::new(),
            section_addr: db
                .objects()
                .map(|o| {
                    if db.is_live(o.id) {
                        vec![None; o.sections.len()]
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            pieces: FxHashMap::default(),
            reversed,
            eh_offsets: FxHashMap::default(),
            got,
            got_addr: 0,
            commons: FxHashMap::default(),
            global_addr: IdVec::filled(0, db.globals.len()),
            entry: 0,
            headers_size: 0,
            phnum: 0,
            file_size: 0,
            thunk_groups: Vec::new(),
            thunked: FxHashMap::default(),
        };
        let mut common_offsets = Vec::new();
        for b in &builders {
            let mut chunks = layout.chunks_for(b, &commons, &mut common_offsets)?;
            if let Some(shape) = arch.thunk_shape()
                && b.rank.segment() == SegmentKind::Exec
            {
                let section = layout.sections.len();
                chunks = insert_islands(section, chunks, &shape, plan, &mut layout.thunk_groups);
            }
            let mut size = 0u64;
            let mut align = 1u64;
            let mut placed = Vec::with_capacity(chunks.len());
            for (kind, csize, calign) in chunks {
                let overflow = || Error::AddressOverflow {
                    base: layout.base,
                    section: String::from_utf8_lossy(b.name).into_owned(),
                    size: csize,
                };
                let offset = size.checked_next_multiple_of(calign).ok_or_else(overflow)?;
                size = offset.checked_add(csize).ok_or_else(overflow)?;
                align = align.max(calign);
                placed.push(Chunk {
                    kind,
                    offset,
                    size: csize,
                    align: calign,
                });
            }
            let sh_type = match b.rank {
                Rank::OtherData | Rank::OtherRo | Rank::OtherExec => {
                    b.inputs.first().map_or(elf::SHT_PROGBITS, |id| {
                        let t = db.object(id.object).section(id.index).sh_type;
                        if t == elf::SHT_NOBITS {
                            elf::SHT_PROGBITS
                        } else {
                            t
                        }
                    })
                }
                r => r.sh_type(),
            };
            layout.sections.push(OutputSection {
                name: b.name.to_vec(),
                rank: b.rank,
                sh_type,
                flags: b.rank.flags(),
                align,
                addr: 0,
                offset: 0,
                size,
                chunks: placed,
            });
        }
        layout.assign_addresses()?;
        for (id, offset) in common_offsets {
            let bss = layout
                .sections
                .iter()
                .find(|s| s.rank == Rank::Bss)
                .expect("commons create .bss");
            let chunk = bss
                .chunks
                .iter()
                .find(|c| c.kind == ChunkKind::Commons)
                .expect("commons chunk");
            layout.commons.insert(id, bss.addr + chunk.offset + offset);
        }
        layout.assign_globals()?;
        layout.entry = match db.lookup(opts.entry.as_bytes()) {
            Some(g) => layout.global_addr[g],
            None => 0,
        };
        Ok(layout)
    }

    /// Chunks of one output section as (kind, size, alignment), in order.
    fn chunks_for(
        &mut self,
        b: &Builder<'a>,
        commons: &[(SymbolId, ObjectId, SymbolIndex)],
        common_offsets: &mut Vec<(SymbolId, u64)>,
    ) -> Result<Vec<(ChunkKind, u64, u64)>> {
        let db = self.db;
        let mut chunks = Vec::with_capacity(b.inputs.len());
        let mut merged: FxHashMap<(MergeKind, u64), usize> = FxHashMap::default();
        let mut merged_inputs: Vec<(usize, MergeKind, Vec<SectionId>)> = Vec::new();
        // Merged inputs become `self.strings` entries in the order they are first met.
        let first_strings = self.strings.len();
        for &id in &b.inputs {
            let s = db.object(id.object).section(id.index);
            if let Some(frame) = self.graph.eh_frames().get(&id) {
                let mut out = 0;
                let offsets = frame
                    .records
                    .iter()
                    .zip(&frame.kept)
                    .map(|(r, &k)| {
                        k.then(|| {
                            let o = out;
                            out += r.len;
                            o
                        })
                    })
                    .collect();
                self.eh_offsets.insert(id, offsets);
                chunks.push((ChunkKind::EhFrame(id), out, s.align));
            } else if let Some(kind) = merge_kind(s) {
                let slot = *merged.entry((kind, s.align)).or_insert_with(|| {
                    let index = first_strings + merged_inputs.len();
                    merged_inputs.push((chunks.len(), kind, Vec::new()));
                    chunks.push((ChunkKind::Strings(index), 0, s.align));
                    merged_inputs.len() - 1
                });
                merged_inputs[slot].2.push(id);
            } else {
                chunks.push((ChunkKind::Input(id), s.size, s.align));
            }
        }
        for (chunk, kind, inputs) in merged_inputs {
            let align = chunks[chunk].2;
            let index = self.strings.len();
            let strings = self.merge(kind, &inputs, align, index);
            chunks[chunk].1 = strings.data.len() as u64;
            self.strings.push(strings);
        }
        match b.rank {
            Rank::Got => chunks.push((ChunkKind::Got, 8 * self.got.entries.len() as u64, 8)),
            Rank::EhFrameHdr => {
                let fdes = self
                    .graph
                    .eh_frames()
                    .iter()
                    .filter(|(id, _)| self.graph.is_kept(**id))
                    .flat_map(|(_, frame)| frame.records.iter().zip(&frame.kept))
                    .filter(|(record, kept)| {
                        **kept && matches!(record.kind, RecordKind::Fde { .. })
                    })
                    .count() as u64;
                chunks.push((ChunkKind::EhFrameHdr(fdes), eh_frame_hdr::size(fdes), 4));
            }
            Rank::Bss if !commons.is_empty() => {
                let mut size = 0u64;
                let mut align = 1u64;
                for &(id, object, index) in commons {
                    let sym = &db.object(object).symbols[index];
                    let overflow = || Error::AddressOverflow {
                        base: self.base,
                        section: String::from_utf8_lossy(b.name).into_owned(),
                        size: sym.size,
                    };
                    let a = sym
                        .value
                        .max(1)
                        .checked_next_power_of_two()
                        .ok_or_else(overflow)?;
                    let offset = size.checked_next_multiple_of(a).ok_or_else(overflow)?;
                    common_offsets.push((id, offset));
                    size = offset.checked_add(sym.size).ok_or_else(overflow)?;
                    align = align.max(a);
                }
                chunks.push((ChunkKind::Commons, size, align));
            }
            _ => {}
        }
        Ok(chunks)
    }

    /// Deduplicates pieces across inputs. Every piece stays aligned as its section was, since
    /// code may rely on the alignment the compiler asked for; byte-aligned strings also share
    /// storage with strings they are a suffix of, as GNU ld does.
    fn merge(
        &mut self,
        kind: MergeKind,
        inputs: &[SectionId],
        align: u64,
        index: usize,
    ) -> MergedStrings {
        let db = self.db;
        let mut unique: Vec<&'a [u8]> = Vec::new();
        let mut seen: FxHashMap<&'a [u8], usize> = FxHashMap::default();
        let per_input: Vec<(SectionId, Vec<(u64, usize)>)> = inputs
            .iter()
            .map(|&id| {
                let bytes = db.object(id.object).section(id.index).data;
                let pieces = split_pieces(kind, bytes)
                    .into_iter()
                    .map(|(offset, piece)| {
                        let u = *seen.entry(piece).or_insert_with(|| {
                            unique.push(piece);
                            unique.len() - 1
                        });
                        (offset, u)
                    })
                    .collect();
                (id, pieces)
            })
            .collect();

        // With strings sorted by their reversed bytes, a string that is a suffix of another
        // sorts right before it or before another string with that suffix.
        let mut host: Vec<usize> = (0..unique.len()).collect();
        let tail_merge = kind == MergeKind::Strings && align == 1;
        if tail_merge {
            let mut order: Vec<usize> = (0..unique.len()).collect();
            order.sort_by(|&a, &b| unique[a].iter().rev().cmp(unique[b].iter().rev()));
            for w in (0..order.len().saturating_sub(1)).rev() {
                let (short, long) = (order[w], order[w + 1]);
                if unique[long].ends_with(unique[short]) {
                    host[short] = host[long];
                }
            }
        }
        let mut data = Vec::new();
        let mut output = vec![0u64; unique.len()];
        for (u, piece) in unique.iter().enumerate() {
            if host[u] == u {
                let at = (data.len() as u64).next_multiple_of(align);
                data.resize(at as usize, 0);
                data.extend_from_slice(piece);
                output[u] = at;
            }
        }
        for u in 0..unique.len() {
            let h = host[u];
            if h != u {
                output[u] = output[h] + (unique[h].len() - unique[u].len()) as u64;
            }
        }
        for (id, pieces) in per_input {
            let pieces = pieces
                .into_iter()
                .map(|(input, u)| Piece {
                    input,
                    output: output[u],
                })
                .collect();
            self.pieces.insert(id, (index, pieces));
        }
        MergedStrings { data, align }
    }

    fn assign_addresses(&mut self) -> Result<()> {
        let page = self.arch.page_size();
        let kinds = [
            SegmentKind::Headers,
            SegmentKind::Exec,
            SegmentKind::ReadOnly,
            SegmentKind::Writable,
        ];
        let loads = kinds
            .iter()
            .filter(|&&k| {
                k == SegmentKind::Headers
                    || self
                        .sections
                        .iter()
                        .any(|s| s.rank.segment() == k && s.size > 0)
            })
            .count();
        let has_tls = self
            .sections
            .iter()
            .any(|s| matches!(s.rank, Rank::Tdata | Rank::Tbss));
        // One PT_NOTE per note section: notes of different alignment cannot share one.
        let notes = self
            .sections
            .iter()
            .filter(|s| s.rank == Rank::Note && s.size > 0)
            .count();
        let has_eh_frame_hdr = self.sections.iter().any(|s| s.rank == Rank::EhFrameHdr);
        self.phnum = loads + 1 + usize::from(has_tls) + notes + usize::from(has_eh_frame_hdr);
        self.headers_size = EHDR_SIZE + PHDR_SIZE * self.phnum as u64;

        let mut offset = self.headers_size;
        let mut addr = self
            .base
            .checked_add(offset)
            .ok_or_else(|| Error::AddressOverflow {
                base: self.base,
                section: "the ELF headers".to_owned(),
                size: offset,
            })?;
        let mut tls: Option<(u64, u64, u64, u64)> = None;
        for kind in kinds {
            let members: Vec<usize> = (0..self.sections.len())
                .filter(|&i| self.sections[i].rank.segment() == kind)
                .collect();
            if kind != SegmentKind::Headers && members.iter().all(|&i| self.sections[i].size == 0) {
                for &i in &members {
                    self.sections[i].addr = addr;
                    self.sections[i].offset = offset;
                }
                continue;
            }
            let (seg_offset, seg_addr) = if kind == SegmentKind::Headers {
                (0, self.base)
            } else {
                addr = addr
                    .checked_next_multiple_of(page)
                    .and_then(|a| a.checked_add(offset % page))
                    .ok_or_else(|| Error::AddressOverflow {
                        base: self.base,
                        section: self.sections[members[0]].name_str(),
                        size: self.sections[members[0]].size,
                    })?;
                (offset, addr)
            };
            let mut file_end = offset;
            let tbss_align = tls_bss_align(&self.sections);
            for &i in &members {
                let s = &mut self.sections[i];
                if s.rank == Rank::Tdata {
                    // The TLS block's start must be aligned for its strictest member, .tbss
                    // included, for the variant II offset computation.
                    s.align = s.align.max(tbss_align);
                }
                let unpadded = addr;
                let pad = addr.checked_next_multiple_of(s.align).ok_or_else(|| {
                    Error::AddressOverflow {
                        base: self.base,
                        section: s.name_str(),
                        size: s.size,
                    }
                })? - addr;
                addr += pad;
                if !s.is_nobits() {
                    offset += pad;
                }
                s.addr = addr;
                s.offset = offset;
                match s.rank {
                    Rank::Tdata => {
                        tls = Some((addr, offset, s.size, s.align));
                    }
                    Rank::Tbss => {
                        let (start, off, file, align) = tls.unwrap_or((addr, offset, 0, 1));
                        let end =
                            addr.checked_add(s.size)
                                .ok_or_else(|| Error::AddressOverflow {
                                    base: self.base,
                                    section: s.name_str(),
                                    size: s.size,
                                })?;
                        tls = Some((start, off, file, align.max(s.align)));
                        self.tls = Some(TlsSegment {
                            addr: start,
                            file_size: file,
                            mem_size: end - start,
                            align: align.max(s.align),
                        });
                        // .tbss occupies no address space in the image itself.
                        addr = unpadded;
                        continue;
                    }
                    _ => {}
                }
                addr = addr
                    .checked_add(s.size)
                    .ok_or_else(|| Error::AddressOverflow {
                        base: self.base,
                        section: s.name_str(),
                        size: s.size,
                    })?;
                if !s.is_nobits() {
                    offset += s.size;
                    file_end = offset;
                }
            }
            if let Some((start, _, file, align)) = tls
                && self.tls.is_none()
            {
                self.tls = Some(TlsSegment {
                    addr: start,
                    file_size: file,
                    mem_size: file,
                    align,
                });
            }
            let flags = match kind {
                SegmentKind::Headers | SegmentKind::ReadOnly => elf::PF_R,
                SegmentKind::Exec => elf::PF_R | elf::PF_X,
                SegmentKind::Writable => elf::PF_R | elf::PF_W,
            };
            self.segments.push(Segment {
                kind,
                offset: seg_offset,
                addr: seg_addr,
                file_size: file_end - seg_offset,
                mem_size: addr - seg_addr,
                flags,
            });
        }
        self.file_size = offset;

        for s in &self.sections {
            for c in &s.chunks {
                let at = s.addr + c.offset;
                match c.kind {
                    ChunkKind::Input(id) | ChunkKind::EhFrame(id) => {
                        self.section_addr[id.object][id.index.index()] = Some(at);
                    }
                    ChunkKind::Got => self.got_addr = at,
                    ChunkKind::Strings(_)
                    | ChunkKind::EhFrameHdr(_)
                    | ChunkKind::Commons
                    | ChunkKind::Thunks(_) => {}
                }
            }
        }
        for s in &self.sections {
            for c in &s.chunks {
                if let ChunkKind::Strings(index) = c.kind {
                    for (sid, (i, _)) in &self.pieces {
                        if *i == index {
                            self.section_addr[sid.object][sid.index.index()] =
                                Some(s.addr + c.offset);
                        }
                    }
                }
            }
        }
        if self.got_addr == 0 {
            self.got_addr = self
                .sections
                .iter()
                .find(|s| s.rank == Rank::Got)
                .map_or(0, |s| s.addr);
        }
        Ok(())
    }

    /// The end of the last segment in memory, `.bss` included.
    pub fn end(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.addr + s.mem_size)
            .max()
            .unwrap_or(self.base)
    }

    fn segment_end(&self, kind: SegmentKind) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.addr + s.mem_size)
    }

    fn section_bounds(&self, name: &[u8]) -> Option<(u64, u64)> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| (s.addr, s.addr + s.size))
    }

    /// Value of a linker-defined symbol.
    fn linker_symbol(&self, name: &[u8]) -> u64 {
        let rw = self
            .segments
            .iter()
            .find(|s| s.kind == SegmentKind::Writable);
        let image_end = self.end();
        let data_end = rw.map_or(image_end, |s| s.addr + s.file_size);
        let array = |n: &[u8], end: bool| {
            self.section_bounds(n)
                .map(|(s, e)| if end { e } else { s })
                .unwrap_or(rw.map_or(image_end, |s| s.addr))
        };
        match name {
            b"__ehdr_start" | b"__executable_start" => self.base,
            b"_etext" | b"etext" | b"__etext" => self
                .segment_end(SegmentKind::Exec)
                .unwrap_or(self.base + self.headers_size),
            b"_edata" | b"edata" => data_end,
            b"_end" | b"end" => image_end,
            b"__bss_start" => self.section_bounds(b".bss").map_or(data_end, |(s, _)| s),
            b"__init_array_start" => array(b".init_array", false),
            b"__init_array_end" => array(b".init_array", true),
            b"__fini_array_start" => array(b".fini_array", false),
            b"__fini_array_end" => array(b".fini_array", true),
            b"__preinit_array_start" => array(b".preinit_array", false),
            b"__preinit_array_end" => array(b".preinit_array", true),
            b"_GLOBAL_OFFSET_TABLE_" => self.got_addr,
            _ => match start_stop_section(name) {
                Some(sec) => {
                    let (start, end) = self.section_bounds(sec).unwrap_or((0, 0));
                    if name.starts_with(b"__start_") {
                        start
                    } else {
                        end
                    }
                }
                None => 0,
            },
        }
    }

    fn assign_globals(&mut self) -> Result<()> {
        let db = self.db;
        let values = db
            .globals
            .as_slice()
            .par_iter()
            .enumerate()
            .map(|(i, g)| {
                Ok(match g.def {
                    Definition::Defined { object, index } => {
                        self.local_target(object, index, 0, None)?.addr
                    }
                    Definition::Common { .. } => self.commons[&SymbolId::from_index(i)],
                    Definition::Linker => self.linker_symbol(g.name),
                    Definition::Undefined => 0,
                })
            })
            .collect::<Result<Vec<u64>>>()?;
        self.global_addr = values.into();
        Ok(())
    }

    /// Address of symbol `index` of `object` as defined there (not through resolution).
    /// `from` names the referencing place for the discarded-section error.
    fn local_target(
        &self,
        object: ObjectId,
        index: SymbolIndex,
        addend: i64,
        from: Option<(SectionId, u64)>,
    ) -> Result<Target> {
        let o = self.db.object(object);
        let sym = &o.symbols[index];
        let mut target = Target {
            addr: 0,
            kind: TargetKind::ImageRelative,
            size: sym.size,
            addend,
        };
        match sym.place {
            SymbolPlace::Absolute => {
                target.addr = sym.value;
                target.kind = TargetKind::Absolute;
            }
            SymbolPlace::Undefined | SymbolPlace::Common => target.kind = TargetKind::Absolute,
            SymbolPlace::Section(s) => {
                let id = SectionId { object, index: s };
                let Some(base) = self.section_addr[object][s.index()] else {
                    let Some((from, offset)) = from else {
                        // A global defined in a section GC removed; nothing kept refers to it.
                        return Ok(target);
                    };
                    let fo = self.db.object(from.object);
                    return Err(Error::DiscardedTarget(Box::new(DiscardedTarget {
                        object: fo.name.clone(),
                        section: fo.section_name(from.index),
                        offset,
                        symbol: self.db.symbol_name(object, index),
                        target: o.section_name(s),
                    })));
                };
                if let Some((strings, pieces)) = self.pieces.get(&id) {
                    // A section symbol plus addend names a string by offset; fold the
                    // addend in to find which string, as the strings moved independently.
                    let off = if sym.is_section() {
                        target.addend = 0;
                        sym.value.wrapping_add(addend as u64)
                    } else {
                        sym.value
                    };
                    let i = pieces.partition_point(|p| p.input <= off).saturating_sub(1);
                    let p = pieces.get(i).copied().unwrap_or(Piece {
                        input: 0,
                        output: self.strings[*strings].data.len() as u64,
                    });
                    target.addr = base + p.output + off.saturating_sub(p.input);
                } else if let Some(offsets) = self.eh_offsets.get(&id) {
                    let frame = &self.graph.eh_frames()[&id];
                    let i = frame
                        .records
                        .partition_point(|r| r.start + r.len <= sym.value);
                    let out = offsets[i..]
                        .iter()
                        .flatten()
                        .next()
                        .copied()
                        .unwrap_or_else(|| {
                            frame
                                .records
                                .iter()
                                .zip(offsets)
                                .filter_map(|(r, o)| o.map(|_| r.len))
                                .sum()
                        });
                    let delta = match (frame.records.get(i), offsets.get(i)) {
                        (Some(r), Some(Some(_))) => sym.value - r.start,
                        _ => 0,
                    };
                    target.addr = base + out + delta;
                } else if self.reversed.contains(&id) {
                    let size = self.db.object(object).section(s).size;
                    target.addr = base.wrapping_add(reversed_offset(size, sym.value));
                } else {
                    target.addr = base.wrapping_add(sym.value);
                }
            }
        }
        Ok(target)
    }

    /// Resolves the symbol a relocation at `from`+`offset` uses.
    pub fn target(
        &self,
        object: ObjectId,
        index: SymbolIndex,
        addend: i64,
        from: (SectionId, u64),
    ) -> Result<Target> {
        match self.db.symbol_ref(object, index) {
            SymbolRef::Local { object, index } => {
                self.local_target(object, index, addend, Some(from))
            }
            SymbolRef::Global(g) => {
                let global = self.db.global(g);
                match global.def {
                    Definition::Defined { object, index } => {
                        self.local_target(object, index, addend, Some(from))
                    }
                    Definition::Common { object, index } => Ok(Target {
                        addr: self.global_addr[g],
                        kind: TargetKind::ImageRelative,
                        size: self.db.object(object).symbols[index].size,
                        addend,
                    }),
                    Definition::Linker => Ok(Target {
                        addr: self.global_addr[g],
                        kind: TargetKind::ImageRelative,
                        size: 0,
                        addend,
                    }),
                    Definition::Undefined => Ok(Target {
                        addr: 0,
                        kind: TargetKind::Absolute,
                        size: 0,
                        addend,
                    }),
                }
            }
        }
    }

    /// Address of a GOT slot.
    pub fn got_slot_addr(&self, slot: GotSlot) -> u64 {
        self.got_addr + 8 * slot.index() as u64
    }

    /// Whether an input `.ctors`/`.dtors` is stored word-reversed in an init array.
    pub fn is_reversed(&self, id: SectionId) -> bool {
        self.reversed.contains(&id)
    }

    /// Where input offset `offset` of a placed input section lands within its chunk:
    /// identical except for `.ctors`/`.dtors` stored reversed in an init array.
    pub fn output_offset(&self, id: SectionId, offset: u64) -> u64 {
        if self.reversed.contains(&id) {
            reversed_offset(self.db.object(id.object).section(id.index).size, offset)
        } else {
            offset
        }
    }

    /// Output address of an input section, if placed.
    pub fn section_address(&self, id: SectionId) -> Option<u64> {
        *self.section_addr.get(id.object)?.get(id.index.index())?
    }

    /// Final address of symbol `index` as `object` defines it, following merged strings and
    /// trimmed `.eh_frame`s. `None` if its section was not kept.
    pub fn symbol_address(&self, object: ObjectId, index: SymbolIndex) -> Option<u64> {
        let sym = &self.db.object(object).symbols[index];
        if let SymbolPlace::Section(s) = sym.place {
            self.section_address(SectionId { object, index: s })?;
        }
        self.local_target(object, index, 0, None)
            .ok()
            .map(|t| t.addr)
    }

    /// Value a GOT slot holds.
    pub fn got_value(&self, entry: &GotEntry) -> Result<u64> {
        let t = match entry.target {
            SymbolRef::Local { object, index } => self.local_target(object, index, 0, None)?,
            SymbolRef::Global(g) => Target {
                addr: self.global_addr[g],
                kind: TargetKind::ImageRelative,
                size: 0,
                addend: 0,
            },
        };
        Ok(match entry.kind {
            GotUse::TpOffset => match &self.tls {
                Some(tls) => self.arch.tp_offset(t.addr, tls) as u64,
                None => 0,
            },
            GotUse::Address => t.addr,
        })
    }
}

fn tls_bss_align(sections: &[OutputSection]) -> u64 {
    sections
        .iter()
        .filter(|s| s.rank == Rank::Tbss)
        .map(|s| s.align)
        .max()
        .unwrap_or(1)
}

/// Whether a relocation's target is image-relative or fixed, for GOT relaxation decisions.
pub fn target_kind(db: &SymbolDb<'_>, object: ObjectId, index: SymbolIndex) -> TargetKind {
    let place = match db.symbol_ref(object, index) {
        SymbolRef::Local { object, index } => db.object(object).symbols[index].place,
        SymbolRef::Global(g) => match db.global(g).def {
            Definition::Defined { object, index } => db.object(object).symbols[index].place,
            Definition::Common { .. } | Definition::Linker => return TargetKind::ImageRelative,
            Definition::Undefined => return TargetKind::Absolute,
        },
    };
    match place {
        SymbolPlace::Section(_) => TargetKind::ImageRelative,
        _ => TargetKind::Absolute,
    }
}
