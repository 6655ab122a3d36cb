//! Layout: which output section each kept input section goes to, merged strings, the GOT,
//! common symbols, segment and section addresses, and the final value of every symbol. Its
//! sub-phases, in the order [`Layout::build`] runs them, are modules of their own: `got`
//! decides each relocation once (direct, through a GOT slot, relaxed) for the whole link;
//! then, per thunk round, `mapping` gathers input sections into output sections,
//! `commons` places common symbols, `merge` merges strings while each output section's
//! chunks are sized, `addresses` assigns offsets and addresses, and `symbols` gives
//! every global its value.
//!
//! Segments follow the static-executable convention: ELF and program headers (plus notes)
//! in a read-only segment, then code, then read-only data, then writable data with TLS
//! first. Each PT_LOAD starts on a fresh page in memory while the file stays dense: the
//! address keeps the file offset's position within the page, as lld does by default.

use object::elf;
use rustc_hash::{FxHashMap, FxHashSet};
use uniklink_analyzer::eh_frame::RecordKind;
use uniklink_analyzer::graph::SectionGraph;
use uniklink_analyzer::id::{IdVec, Idx};
use uniklink_analyzer::object::{InputSectionId, ObjectId, SectionId, SymbolIndex, SymbolPlace};
use uniklink_analyzer::resolve::{Definition, SymbolDb, SymbolId, SymbolRef};

mod addresses;
mod commons;
mod got;
mod mapping;
mod merge;
mod symbols;

pub use got::{Got, GotEntry, GotSlot, Recorded, RelocIndex, SectionRecord};
pub use mapping::{Rank, SegmentKind};
pub use merge::MergedStrings;

use commons::Commons;
use mapping::{Builder, Mapping, reversed_offset};
use merge::{MergeKind, Piece, merge_kind};

use crate::arch::{Arch, GotUse, TargetKind, TlsSegment};
use crate::eh_frame_hdr;
use crate::error::{DiscardedTarget, Error, Result};
use crate::image::virt;
use crate::thunks::{ThunkGroup, ThunkPlan, insert_islands};
use unik_platform::virt_map;

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
    /// Reserve the image's page tables ([`crate::image::virt`]) when an input refers to
    /// their symbol, sized for the 2 MiB blocks the image ends up touching.
    pub page_tables: bool,
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
    /// The image's page tables for this many 2 MiB blocks, written after layout by
    /// [`crate::image::virt::write_page_tables`].
    PageTables(u64),
}

#[derive(Debug, Clone)]
pub struct Chunk {
    pub kind: ChunkKind,
    /// Offset within the output section.
    pub offset: u64,
    pub size: u64,
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
    /// The address of each input section placed in the image.
    section_addr: IdVec<InputSectionId, Option<u64>>,
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

impl<'a> Layout<'a> {
    pub fn build(
        graph: &'a SectionGraph<'a>,
        arch: &'static dyn Arch,
        opts: &LayoutOptions<'_>,
    ) -> Result<Self> {
        let mut got = Got::decide(graph, arch);
        let mut plan = ThunkPlan::default();
        let db = graph.db;
        let wants_tables = opts.page_tables
            && db
                .lookup(virt::PAGE_TABLES_SYMBOL)
                .is_some_and(|g| db.global(g).def == Definition::Linker);
        // The tables lie inside the image they map, so their size follows the image's: one
        // more block's table can move the image's end into one more block.
        let mut table_blocks = wants_tables.then_some(1);
        loop {
            let mut layout = Self::build_with(graph, arch, opts, &plan, got, table_blocks)?;
            let more_thunks = plan.extend(&mut layout)?;
            let more_tables = table_blocks
                .map(|_| virt_map::blocks_of(layout.base..layout.end()))
                .filter(|&needed| Some(needed) > table_blocks);
            if !more_thunks && more_tables.is_none() {
                return Ok(layout);
            }
            table_blocks = more_tables.or(table_blocks);
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
        table_blocks: Option<u64>,
    ) -> Result<Self> {
        let db = graph.db;
        let Mapping {
            mut builders,
            reversed,
        } = Mapping::of(graph);
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
        if table_blocks.is_some() {
            builders.push(Builder {
                name: virt::PAGE_TABLES_SECTION,
                rank: Rank::PageTables,
                inputs: Vec::new(),
            });
        }
        let commons = Commons::place(db);
        let has_commons = !matches!(&commons, Ok(c) if c.is_empty());
        if has_commons && !builders.iter().any(|b| b.rank == Rank::Bss) {
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
            section_addr: db.input_sections().table(None),
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
        let commons = commons.map_err(|size| Error::AddressOverflow {
            base,
            section: ".bss".to_owned(),
            size,
        })?;
        for b in &builders {
            let mut chunks = layout.chunks_for(b, &commons, table_blocks)?;
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
        if !commons.is_empty() {
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
            let at = bss.addr + chunk.offset;
            layout.commons = commons
                .offsets
                .iter()
                .map(|&(id, offset)| (id, at + offset))
                .collect();
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
        commons: &Commons,
        table_blocks: Option<u64>,
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
                            out += u64::from(r.len);
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
            let strings = self.merge(kind, &inputs, align, index)?;
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
            Rank::PageTables => {
                let blocks = table_blocks.unwrap_or(0);
                chunks.push((
                    ChunkKind::PageTables(blocks),
                    virt_map::tables_size(blocks),
                    PAGE,
                ));
            }
            Rank::Bss if !commons.is_empty() => {
                chunks.push((ChunkKind::Commons, commons.size, commons.align));
            }
            _ => {}
        }
        Ok(chunks)
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
        match sym.place() {
            SymbolPlace::Absolute => {
                target.addr = sym.value;
                target.kind = TargetKind::Absolute;
            }
            SymbolPlace::Undefined | SymbolPlace::Common => target.kind = TargetKind::Absolute,
            SymbolPlace::Section(s) => {
                let id = SectionId { object, index: s };
                let Some(base) = self.section_address(id) else {
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
                    // Past the end (or before the start: a negative addend wraps) names no
                    // string; compilers never write one.
                    let size = o.section(s).size;
                    if off > size {
                        return Err(Error::Section {
                            object: o.name.clone(),
                            section: o.section_name(s),
                            reason: format!(
                                "symbol `{}` with addend {addend} refers to offset {} of this mergeable section, which is {size:#x} bytes",
                                self.db.symbol_name(object, index),
                                off as i64
                            ),
                        });
                    }
                    let i = pieces.partition_point(|p| p.input <= off).saturating_sub(1);
                    let p = pieces.get(i).copied().unwrap_or(Piece {
                        input: 0,
                        output: self.strings[*strings].data.len() as u64,
                    });
                    target.addr = base + p.output + off.saturating_sub(p.input);
                } else if let Some(offsets) = self.eh_offsets.get(&id) {
                    let frame = &self.graph.eh_frames()[&id];
                    let i = frame.records.partition_point(|r| r.end() <= sym.value);
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
                                .filter_map(|(r, o)| o.map(|_| u64::from(r.len)))
                                .sum()
                        });
                    let delta = match (frame.records.get(i), offsets.get(i)) {
                        (Some(r), Some(Some(_))) => sym.value - r.start(),
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
        self.section_addr[self.db.input_sections().get(id)?]
    }

    /// Final address of symbol `index` as `object` defines it, following merged strings and
    /// trimmed `.eh_frame`s. `None` if its section was not kept.
    pub fn symbol_address(&self, object: ObjectId, index: SymbolIndex) -> Option<u64> {
        let sym = &self.db.object(object).symbols[index];
        if let SymbolPlace::Section(s) = sym.place() {
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

/// Whether a relocation's target is image-relative or fixed, for GOT relaxation decisions.
pub fn target_kind(db: &SymbolDb<'_>, object: ObjectId, index: SymbolIndex) -> TargetKind {
    let place = match db.symbol_ref(object, index) {
        SymbolRef::Local { object, index } => db.object(object).symbols[index].place(),
        SymbolRef::Global(g) => match db.global(g).def {
            Definition::Defined { object, index } => db.object(object).symbols[index].place(),
            Definition::Common { .. } | Definition::Linker => return TargetKind::ImageRelative,
            Definition::Undefined => return TargetKind::Absolute,
        },
    };
    match place {
        SymbolPlace::Section(_) => TargetKind::ImageRelative,
        _ => TargetKind::Absolute,
    }
}
