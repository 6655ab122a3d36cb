//! The section graph: input sections as nodes, relocations as edges, and what is reachable
//! from the roots. Unreached sections are garbage-collected.
//!
//! `.eh_frame` is special: an FDE describes a function but must not keep it alive. FDE edges
//! therefore go from the described function to what the FDE references (its LSDA), and FDEs
//! of dropped functions are dropped themselves.

use std::collections::VecDeque;

use object::elf;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::eh_frame::{self, Record, RecordKind};
use crate::error::{Error, Reference, Result, Undefined, display_name};
use crate::id::{IdVec, Idx};
use crate::object::{ObjectId, Reloc, SectionId, SectionIndex, SymbolIndex, SymbolPlace};
use crate::resolve::{Definition, SymbolDb, SymbolId, SymbolRef, start_stop_section};

/// References listed per undefined symbol, and undefined symbols listed, as lld limits them.
const MAX_REFERENCES: usize = 3;
const MAX_UNDEFINED: usize = 20;

/// Which sections are roots regardless of references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRules {
    /// `.init_array`, `.fini_array`, `.preinit_array`, `.ctors`, `.dtors` are roots. The
    /// weaving mode turns this off and decides per component instead.
    pub init_arrays: bool,
}

impl RootRules {
    /// Conventional static linking, as GNU ld does it.
    pub const CONVENTIONAL: RootRules = RootRules { init_arrays: true };
}

pub struct GraphOptions<'s> {
    pub entry: &'s str,
    pub keep: &'s [String],
    pub rules: RootRules,
    /// Roots chosen by a later phase's rules (the weave's non-component init arrays).
    pub extra_roots: &'s [(SectionId, RootReason)],
    /// With `false`, every loaded allocatable section is kept.
    pub gc: bool,
}

/// Why a section is a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootReason {
    Entry,
    Keep,
    Retain,
    Note,
    /// `.init`/`.fini`: their pieces from crti/crtn form one function and are always kept.
    InitFini,
    InitArray,
    EhFrame,
    NoGc,
}

/// The symbol through which one section references another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    pub object: ObjectId,
    pub symbol: SymbolIndex,
}

/// One `.eh_frame` input section split into records, with the records that survive GC.
#[derive(Debug, Clone)]
pub struct EhFrame {
    pub records: Vec<Record>,
    /// For each FDE, the section of the function it describes (if it names one).
    pub functions: Vec<Option<SectionId>>,
    pub kept: Vec<bool>,
}

pub struct SectionGraph<'a> {
    pub db: &'a SymbolDb<'a>,
    marks: Marks,
}

/// A section's node, whose index is the section's
/// [`InputSectionId`](crate::object::InputSectionId)'s: the graph's per-node tables are
/// indexed by it.
impl Idx for NodeIndex {
    fn from_index(index: usize) -> Self {
        NodeIndex::new(index)
    }
    fn index(self) -> usize {
        NodeIndex::index(self)
    }
}

/// The graph and its marking, without the symbols: what a graph keeps while the object
/// declared at resolution is [attached](SymbolDb::attach) (see [`SectionGraph::detach`]).
pub struct Marks {
    /// A node for every section of every object, loaded or not, in the order of their
    /// [`InputSectionId`](crate::object::InputSectionId)s: a section's node has its id's
    /// index.
    graph: DiGraph<SectionId, Via>,
    eligible: IdVec<NodeIndex, bool>,
    kept: IdVec<NodeIndex, bool>,
    parent: IdVec<NodeIndex, Option<EdgeIndex>>,
    root: IdVec<NodeIndex, Option<RootReason>>,
    eh_frames: FxHashMap<SectionId, EhFrame>,
    /// The roots marked from, in the order found.
    roots: Vec<(SectionId, RootReason)>,
    /// References to names declared for the attached object: until it is there they lead to
    /// the names' defaults, through the `provisional` edges; once it is, to their final
    /// definitions, and the provisional edges are `retired`.
    late: Vec<LateRef>,
    provisional: Vec<EdgeIndex>,
    retired: FxHashSet<EdgeIndex>,
}

/// Whether references to names declared for the attached object wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defer {
    /// Before it is attached: such references lead to the names' defaults provisionally.
    Late,
    /// Once it is: every name has its final definition.
    Nothing,
}

impl Defer {
    fn waits(self, db: &SymbolDb<'_>, object: ObjectId, r: Reloc) -> bool {
        self == Defer::Late
            && matches!(db.symbol_ref(object, r.symbol), SymbolRef::Global(g) if db.global(g).late)
    }
}

/// A reference from `from` to a name declared for the attached object.
struct LateRef {
    from: SectionId,
    via: Via,
    reloc: Reloc,
}

/// What scanning a run of sections found, in their order.
#[derive(Default)]
struct Scan {
    edges: Vec<(SectionId, SectionId, Via)>,
    late: Vec<LateRef>,
    provisional: Vec<(SectionId, SectionId, Via)>,
    roots: Vec<(SectionId, RootReason)>,
    eh_frames: Vec<(SectionId, Vec<Record>, Vec<Option<SectionId>>)>,
}

/// Sections scanned by one task: enough to outweigh the task, few enough to spread a large
/// object's sections over the threads.
const SCAN_CHUNK: usize = 1024;

/// One step of a why-chain: a kept section and the symbol it reaches the next step through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhyStep {
    pub section: SectionId,
    pub via: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhyChain {
    pub root: RootReason,
    pub steps: Vec<WhyStep>,
}

fn is_eh_frame(s: &crate::object::Section<'_>) -> bool {
    s.name == b".eh_frame" || s.sh_type == elf::SHT_X86_64_UNWIND
}

pub fn is_init_array(s: &crate::object::Section<'_>) -> bool {
    matches!(
        s.sh_type,
        elf::SHT_INIT_ARRAY | elf::SHT_FINI_ARRAY | elf::SHT_PREINIT_ARRAY
    ) || [b".ctors".as_slice(), b".dtors"].iter().any(|p| {
        s.name
            .strip_prefix(*p)
            .is_some_and(|r| r.is_empty() || r[0] == b'.')
    })
}

impl<'a> SectionGraph<'a> {
    pub fn build(db: &'a SymbolDb<'a>, opts: &GraphOptions<'_>) -> Result<Self> {
        let nodes = db.input_sections().len();
        let mut this = SectionGraph {
            db,
            marks: Marks {
                graph: DiGraph::with_capacity(nodes, 0),
                eligible: IdVec::with_capacity(nodes),
                kept: IdVec::with_capacity(nodes),
                parent: IdVec::with_capacity(nodes),
                root: IdVec::with_capacity(nodes),
                eh_frames: FxHashMap::default(),
                roots: Vec::new(),
                late: Vec::new(),
                provisional: Vec::new(),
                retired: FxHashSet::default(),
            },
        };
        for o in db.objects() {
            this.add_nodes(o.id);
        }
        let by_name = this.start_stop_sections(&db.live);
        let mut roots = this.scan(&db.live, opts, &by_name, Defer::Late)?;

        let entry_section = this.symbol_section(opts.entry.as_bytes());
        // A symbol in a section no output contains (debug info, SHF_EXCLUDE) roots nothing.
        match entry_section {
            Some(Some(s)) if this.is_eligible(s) => roots.insert(0, (s, RootReason::Entry)),
            Some(_) => {}
            None => return Err(Error::NoEntry(opts.entry.to_owned())),
        }
        roots.extend(this.keep_roots(opts.keep)?);
        roots.extend(
            opts.extra_roots
                .iter()
                .filter(|(id, _)| this.is_eligible(*id)),
        );

        this.mark(&roots);
        this.marks.roots = roots;
        this.trim_eh_frames();
        this.check_undefined(this.kept_sections(), Defer::Late)?;
        Ok(this)
    }

    /// The marking without the symbols, so that the object declared at resolution can be
    /// attached to them.
    pub fn detach(self) -> Marks {
        self.marks
    }

    /// Adds the object attached after resolution to a detached graph: its sections and
    /// references, and the references that waited for it, which now lead to the final
    /// definitions instead of the defaults. Marking then runs again over the graph as it
    /// stands, from the roots found before and those of the object and `keep` (names it
    /// defines): what it keeps and why is what one marking of all the inputs would give.
    pub fn attach(
        db: &'a SymbolDb<'a>,
        marks: Marks,
        object: ObjectId,
        opts: &GraphOptions<'_>,
    ) -> Result<Self> {
        let mut this = SectionGraph { db, marks };
        this.add_nodes(object);
        let by_name = this.start_stop_sections(&db.live);
        let object_roots = this.scan(&[object], opts, &by_name, Defer::Nothing)?;
        let keep_roots = this.keep_roots(opts.keep)?;

        let late = std::mem::take(&mut this.marks.late);
        let mut edges = Vec::new();
        for r in &late {
            this.reloc_targets(r.from.object, r.reloc, &by_name, |to| {
                edges.push((r.from, to, r.via));
            });
        }
        for (from, to, via) in edges {
            let (from, to) = (this.node(from), this.node(to));
            this.marks.graph.add_edge(from, to, via);
        }
        let provisional = std::mem::take(&mut this.marks.provisional);
        this.marks.retired.extend(provisional);

        let m = &mut this.marks;
        let n = m.graph.node_count();
        let kept_before = std::mem::replace(&mut m.kept, IdVec::filled(false, n));
        m.parent = IdVec::filled(None, n);
        m.root = IdVec::filled(None, n);
        let mut roots = std::mem::take(&mut m.roots);
        roots.extend(object_roots);
        roots.extend(keep_roots);
        this.mark(&roots);
        this.marks.roots = roots;
        this.trim_eh_frames();

        // What was kept before was checked then, but for references to the declared names.
        let mut waited: Vec<SectionId> = late.iter().map(|r| r.from).collect();
        waited.sort_unstable();
        waited.dedup();
        let newly_kept = this
            .marks
            .graph
            .node_indices()
            .filter(|n| this.marks.kept[*n] && !kept_before.get(*n).copied().unwrap_or(false))
            .map(|n| this.marks.graph[n]);
        let waited = waited.into_iter().filter(|&s| this.is_kept(s));
        this.check_undefined(
            newly_kept.chain(waited).collect::<Vec<_>>().into_iter(),
            Defer::Nothing,
        )?;
        Ok(this)
    }

    fn add_nodes(&mut self, object: ObjectId) {
        let db = self.db;
        let o = db.object(object);
        let live = db.is_live(object);
        let m = &mut self.marks;
        // Nodes are added object after object in id order, the attached object last: marks
        // detached from another database, or attached for another object, would misplace
        // every node after this one.
        assert_eq!(
            db.input_sections().first(object).index(),
            m.graph.node_count(),
            "{}'s nodes at its input sections' place",
            o.name
        );
        for (index, s) in o.sections.iter_ids() {
            let id = SectionId { object, index };
            m.graph.add_node(id);
            m.eligible.push(
                live && index != SectionIndex(0) && !s.is_dropped_kind() && !db.is_discarded(id),
            );
            m.kept.push(false);
            m.parent.push(None);
            m.root.push(None);
        }
    }

    /// The eligible sections of `objects` by name, for each `__start_SEC`/`__stop_SEC` the
    /// linker provides.
    fn start_stop_sections(&self, objects: &[ObjectId]) -> FxHashMap<&'a [u8], Vec<SectionId>> {
        let db = self.db;
        let mut by_name: FxHashMap<&[u8], Vec<SectionId>> = FxHashMap::default();
        for g in &db.globals {
            if g.def == Definition::Linker
                && let Some(sec) = start_stop_section(g.name)
            {
                by_name.entry(sec).or_default();
            }
        }
        if !by_name.is_empty() {
            for &oid in objects {
                for (index, s) in db.object(oid).sections.iter_ids() {
                    let id = SectionId { object: oid, index };
                    if let Some(list) = by_name.get_mut(s.name)
                        && self.is_eligible(id)
                    {
                        list.push(id);
                    }
                }
            }
        }
        by_name
    }

    /// Adds the edges of the eligible sections of `objects`; returns the root sections
    /// found.
    fn scan(
        &mut self,
        objects: &[ObjectId],
        opts: &GraphOptions<'_>,
        by_name: &FxHashMap<&[u8], Vec<SectionId>>,
        defer: Defer,
    ) -> Result<Vec<(SectionId, RootReason)>> {
        let db = self.db;
        // Relocations are read in parallel; the graph is assembled sequentially in input
        // order so edge order, and with it every why-chain, is deterministic.
        let eligible: Vec<SectionId> = objects
            .iter()
            .flat_map(|&object| {
                db.object(object)
                    .sections
                    .ids()
                    .map(move |index| SectionId { object, index })
            })
            .filter(|&id| self.is_eligible(id))
            .collect();
        let scans = eligible
            .par_chunks(SCAN_CHUNK)
            .map(|chunk| {
                let mut scan = Scan::default();
                for &id in chunk {
                    self.scan_section(id, opts, by_name, defer, &mut scan)?;
                }
                Ok(scan)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut roots = Vec::new();
        for scan in scans {
            for (from, to, via) in scan.edges {
                let (from, to) = (self.node(from), self.node(to));
                self.marks.graph.add_edge(from, to, via);
            }
            for (from, to, via) in scan.provisional {
                let (from, to) = (self.node(from), self.node(to));
                let e = self.marks.graph.add_edge(from, to, via);
                self.marks.provisional.push(e);
            }
            self.marks.late.extend(scan.late);
            roots.extend(scan.roots);
            for (id, records, functions) in scan.eh_frames {
                let kept = vec![true; records.len()];
                self.marks.eh_frames.insert(
                    id,
                    EhFrame {
                        records,
                        functions,
                        kept,
                    },
                );
            }
        }
        Ok(roots)
    }

    fn keep_roots(&self, keep: &[String]) -> Result<Vec<(SectionId, RootReason)>> {
        let mut roots = Vec::new();
        for name in keep {
            // A kept name that nothing defines is almost always a typo or a renamed symbol;
            // keeping nothing in silence would hide it (lld's --require-defined, not ld -u).
            match self.symbol_section(name.as_bytes()) {
                Some(Some(s)) if self.is_eligible(s) => roots.push((s, RootReason::Keep)),
                Some(_) => {}
                None => return Err(Error::KeepUndefined(name.to_owned())),
            }
        }
        Ok(roots)
    }

    fn node(&self, id: SectionId) -> NodeIndex {
        NodeIndex::from_index(self.db.input_sections().id(id).index())
    }

    fn is_eligible(&self, id: SectionId) -> bool {
        self.marks.eligible[self.node(id)]
    }

    /// `None` if the symbol is undefined; `Some(None)` if defined outside any section.
    fn symbol_section(&self, name: &[u8]) -> Option<Option<SectionId>> {
        let g = self.db.global(self.db.lookup(name)?);
        match g.def {
            Definition::Defined { object, index } => {
                Some(self.db.target_section(object, index).filter(|_| {
                    matches!(
                        self.db.object(object).symbols[index].place(),
                        SymbolPlace::Section(_)
                    )
                }))
            }
            Definition::Common { .. } | Definition::Linker => Some(None),
            Definition::Undefined => None,
        }
    }

    /// Sections a relocation in `object` keeps alive.
    fn reloc_targets(
        &self,
        object: ObjectId,
        r: Reloc,
        by_name: &FxHashMap<&[u8], Vec<SectionId>>,
        mut f: impl FnMut(SectionId),
    ) {
        if let Some(t) = self.db.target_section(object, r.symbol) {
            if self.is_eligible(t) {
                f(t);
            }
        } else if let SymbolRef::Global(g) = self.db.symbol_ref(object, r.symbol) {
            let g = self.db.global(g);
            if g.def == Definition::Linker
                && let Some(list) = start_stop_section(g.name).and_then(|s| by_name.get(s))
            {
                list.iter().copied().for_each(f);
            }
        }
    }

    /// Adds the edges and root status of one eligible section to `scan`.
    fn scan_section(
        &self,
        id: SectionId,
        opts: &GraphOptions<'_>,
        by_name: &FxHashMap<&[u8], Vec<SectionId>>,
        defer: Defer,
        scan: &mut Scan,
    ) -> Result<()> {
        let o = self.db.object(id.object);
        let s = o.section(id.index);
        let Scan {
            edges,
            late,
            provisional,
            roots,
            eh_frames,
        } = scan;
        let mut edge = |from: SectionId, r: Reloc| {
            let via = Via {
                object: id.object,
                symbol: r.symbol,
            };
            if defer.waits(self.db, id.object, r) {
                late.push(LateRef {
                    from,
                    via,
                    reloc: r,
                });
                self.reloc_targets(id.object, r, by_name, |to| {
                    provisional.push((from, to, via))
                });
            } else {
                self.reloc_targets(id.object, r, by_name, |to| edges.push((from, to, via)));
            }
        };
        if is_eh_frame(s) {
            let records = eh_frame::parse(s.data).map_err(|reason| Error::Malformed {
                object: o.name.clone(),
                reason: format!("section {}: {reason}", o.section_name(id.index)),
            })?;
            let mut relocs: Vec<Reloc> = s.relocs().collect();
            relocs.sort_by_key(|r| r.offset);
            let mut next = 0;
            let mut functions = Vec::with_capacity(records.len());
            for rec in &records {
                let end = rec.end();
                let first = next;
                while next < relocs.len() && relocs[next].offset < end {
                    next += 1;
                }
                let in_record = &relocs[first..next];
                match rec.kind {
                    RecordKind::Fde { .. } => {
                        let pc_begin = rec.id_offset() + 4;
                        let function = in_record
                            .iter()
                            .find(|r| r.offset == pc_begin)
                            .and_then(|r| self.db.target_section(id.object, r.symbol))
                            .filter(|t| self.is_eligible(*t));
                        let from = function.unwrap_or(id);
                        for r in in_record.iter().filter(|r| r.offset != pc_begin) {
                            edge(from, *r);
                        }
                        functions.push(function);
                    }
                    RecordKind::Cie | RecordKind::Terminator => {
                        for r in in_record {
                            edge(id, *r);
                        }
                        functions.push(None);
                    }
                }
            }
            roots.push((id, RootReason::EhFrame));
            eh_frames.push((id, records, functions));
            return Ok(());
        }
        for r in s.relocs() {
            edge(id, r);
        }
        let root = if !opts.gc {
            Some(RootReason::NoGc)
        } else if is_init_array(s) {
            // Rust's `#[used]` registrations carry SHF_GNU_RETAIN; without the init-array
            // rule (weaving) the weave decides which arrays are roots, retained or not.
            opts.rules.init_arrays.then_some(RootReason::InitArray)
        } else if s.flags & u64::from(elf::SHF_GNU_RETAIN) != 0 {
            Some(RootReason::Retain)
        } else if s.sh_type == elf::SHT_NOTE && s.name != b".note.gnu.property" {
            // Property notes need merging, not concatenation, and static loaders ignore
            // them without PT_GNU_PROPERTY; they are kept only if referenced.
            Some(RootReason::Note)
        } else if s.name == b".init" || s.name == b".fini" {
            Some(RootReason::InitFini)
        } else {
            None
        };
        roots.extend(root.map(|reason| (id, reason)));
        Ok(())
    }

    /// Breadth-first marking. The entry and `--keep` roots are explored first so why-chains
    /// lead from them when they can; the other roots only add what those do not reach.
    /// Retired edges lead nowhere.
    fn mark(&mut self, roots: &[(SectionId, RootReason)]) {
        let primary = |r: &RootReason| matches!(r, RootReason::Entry | RootReason::Keep);
        let (first, rest): (Vec<_>, Vec<_>) = roots.iter().partition(|(_, r)| primary(r));
        for batch in [first, rest] {
            let mut queue = VecDeque::new();
            for (id, reason) in batch {
                let n = self.node(id);
                if !self.marks.kept[n] {
                    self.marks.kept[n] = true;
                    self.marks.root[n] = Some(reason);
                    queue.push_back(n);
                }
            }
            let m = &mut self.marks;
            let retired = |e: EdgeIndex| !m.retired.is_empty() && m.retired.contains(&e);
            while let Some(n) = queue.pop_front() {
                for e in m.graph.edges(n) {
                    let t = e.target();
                    if !m.kept[t] && !retired(e.id()) {
                        m.kept[t] = true;
                        m.parent[t] = Some(e.id());
                        queue.push_back(t);
                    }
                }
            }
        }
    }

    /// Drops FDEs whose function was not kept (or that name no function).
    fn trim_eh_frames(&mut self) {
        let mut frames = std::mem::take(&mut self.marks.eh_frames);
        for frame in frames.values_mut() {
            for ((rec, function), kept) in frame
                .records
                .iter()
                .zip(&frame.functions)
                .zip(&mut frame.kept)
            {
                if let RecordKind::Fde { .. } = rec.kind {
                    *kept = function.is_some_and(|f| self.is_kept(f));
                }
            }
        }
        self.marks.eh_frames = frames;
    }

    /// Strong references from `sections` to symbols nobody defines, but for names `defer`
    /// leaves to the object attached later.
    fn check_undefined(
        &self,
        sections: impl Iterator<Item = SectionId>,
        defer: Defer,
    ) -> Result<()> {
        struct Missing {
            symbol: SymbolId,
            shown: Vec<(SectionId, u64)>,
            seen: usize,
        }
        // In order of first reference.
        let mut by_symbol: FxHashMap<SymbolId, usize> = FxHashMap::default();
        let mut undefined: Vec<Missing> = Vec::new();
        let sections: Vec<SectionId> = sections.collect();
        for id in sections {
            let o = self.db.object(id.object);
            let s = o.section(id.index);
            let frame = self.marks.eh_frames.get(&id);
            for r in s.relocs() {
                let SymbolRef::Global(g) = self.db.symbol_ref(id.object, r.symbol) else {
                    continue;
                };
                let global = self.db.global(g);
                if global.def != Definition::Undefined
                    || o.symbols[r.symbol].is_weak()
                    || defer.waits(self.db, id.object, r)
                {
                    continue;
                }
                if let Some(frame) = frame {
                    let i = frame.records.partition_point(|rec| rec.end() <= r.offset);
                    if !frame.kept.get(i).copied().unwrap_or(false) {
                        continue;
                    }
                }
                let slot = *by_symbol.entry(g).or_insert_with(|| {
                    undefined.push(Missing {
                        symbol: g,
                        shown: Vec::new(),
                        seen: 0,
                    });
                    undefined.len() - 1
                });
                let missing = &mut undefined[slot];
                missing.seen += 1;
                if missing.shown.len() < MAX_REFERENCES {
                    missing.shown.push((id, r.offset));
                }
            }
        }
        if undefined.is_empty() {
            return Ok(());
        }
        let more_symbols = undefined.len().saturating_sub(MAX_UNDEFINED);
        // Source lines are looked up only for what is printed: DWARF parsing is slow.
        let symbols = undefined
            .into_iter()
            .take(MAX_UNDEFINED)
            .map(|m| Undefined {
                name: display_name(self.db.global(m.symbol).name),
                more_references: m.seen - m.shown.len(),
                references: m
                    .shown
                    .into_iter()
                    .map(|(id, offset)| {
                        let o = self.db.object(id.object);
                        Reference {
                            object: o.name.clone(),
                            section: o.section_name(id.index),
                            offset,
                            source: crate::debug::source_line(o, id.index, offset),
                        }
                    })
                    .collect(),
                help: None,
            })
            .collect();
        Err(Error::Undefined {
            symbols,
            more_symbols,
        })
    }

    /// Each `.eh_frame` input section split into records, with the records kept.
    pub fn eh_frames(&self) -> &FxHashMap<SectionId, EhFrame> {
        &self.marks.eh_frames
    }

    pub fn is_kept(&self, id: SectionId) -> bool {
        self.marks.kept[self.node(id)]
    }

    /// Kept sections in input order.
    pub fn kept_sections(&self) -> impl Iterator<Item = SectionId> + '_ {
        self.marks
            .graph
            .node_indices()
            .filter(|n| self.marks.kept[*n])
            .map(|n| self.marks.graph[n])
    }

    /// Allocatable sections GC removed, in input order.
    pub fn dropped_sections(&self) -> impl Iterator<Item = SectionId> + '_ {
        self.marks
            .graph
            .node_indices()
            .filter(|n| self.marks.eligible[*n] && !self.marks.kept[*n])
            .map(|n| self.marks.graph[n])
    }

    /// The chain of references from a root to the section defining `name`, shortest first
    /// found. `None` if the symbol is not defined in a kept section.
    pub fn why(&self, name: &str) -> Option<WhyChain> {
        self.why_section(self.symbol_section(name.as_bytes())??)
    }

    /// References between kept sections, in input order.
    pub fn kept_edges(&self) -> impl Iterator<Item = (SectionId, SectionId)> + '_ {
        self.marks
            .graph
            .edge_indices()
            .filter(|e| !self.marks.retired.contains(e))
            .filter_map(|e| self.marks.graph.edge_endpoints(e))
            .filter(|(a, b)| self.marks.kept[*a] && self.marks.kept[*b])
            .map(|(a, b)| (self.marks.graph[a], self.marks.graph[b]))
    }

    /// Why a kept section is a root; `None` for sections kept by a reference.
    pub fn root_reason(&self, id: SectionId) -> Option<RootReason> {
        self.marks.root[self.node(id)]
    }

    /// The kept section whose reference marked `id` first (one step up its why-chain), with
    /// the symbol named by that reference; `None` for roots and sections not kept.
    pub fn parent(&self, id: SectionId) -> Option<(SectionId, String)> {
        let e = self.marks.parent[self.node(id)]?;
        let (from, _) = self.marks.graph.edge_endpoints(e)?;
        let via = self.marks.graph[e];
        Some((
            self.marks.graph[from],
            self.db.symbol_name(via.object, via.symbol),
        ))
    }

    /// The chain of references from a root to `target`; `None` if it is not kept.
    pub fn why_section(&self, target: SectionId) -> Option<WhyChain> {
        let mut n = self.node(target);
        if !self.marks.kept[n] {
            return None;
        }
        let mut steps = vec![WhyStep {
            section: target,
            via: None,
        }];
        while let Some(e) = self.marks.parent[n] {
            let (from, _) = self.marks.graph.edge_endpoints(e).expect("edge exists");
            let via = self.marks.graph[e];
            steps.push(WhyStep {
                section: self.marks.graph[from],
                via: Some(self.db.symbol_name(via.object, via.symbol)),
            });
            n = from;
        }
        steps.reverse();
        Some(WhyChain {
            root: self.marks.root[n].expect("chain starts at a root"),
            steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use object::SectionKind;

    use super::*;
    use crate::test_objects::{TestObject, parse_all};

    fn kept_and_dropped(graph: &SectionGraph<'_>) -> (Vec<String>, Vec<String>) {
        let name = |id: SectionId| graph.db.object(id.object).section_name(id.index);
        let mut kept: Vec<String> = graph.kept_sections().map(name).collect();
        let mut dropped: Vec<String> = graph.dropped_sections().map(name).collect();
        kept.sort();
        dropped.sort();
        (kept, dropped)
    }

    /// `_start` in .text references `used`; everything else is reachable only through a
    /// root rule, or not at all.
    fn roots_object() -> Vec<u8> {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 32]);
        o.define("_start", text, 0, false);
        let used = o.section(".text.used", SectionKind::Text, &[0; 8]);
        let used_sym = o.define("used", used, 0, false);
        o.refer(text, 0, used_sym);
        let unused = o.section(".text.unused", SectionKind::Text, &[0; 8]);
        o.define("unused", unused, 0, false);
        let kept = o.section(".text.kept", SectionKind::Text, &[0; 8]);
        o.define("kept_by_flag", kept, 0, false);
        let ctor = o.section(".text.ctor", SectionKind::Text, &[0; 8]);
        let ctor_sym = o.define("ctor", ctor, 0, false);
        let array = o.elf_section(
            ".init_array",
            elf::SHT_INIT_ARRAY,
            u64::from(elf::SHF_ALLOC | elf::SHF_WRITE),
            &[0; 8],
        );
        o.refer(array, 0, ctor_sym);
        o.elf_section(
            ".note.test",
            elf::SHT_NOTE,
            u64::from(elf::SHF_ALLOC),
            &[0; 12],
        );
        o.elf_section(
            ".text.retained",
            elf::SHT_PROGBITS,
            u64::from(elf::SHF_ALLOC | elf::SHF_EXECINSTR | elf::SHF_GNU_RETAIN),
            &[0; 4],
        );
        let set = o.section("my_set", SectionKind::Data, &[0; 8]);
        o.define("set_entry", set, 0, false);
        let start = o.undefined("__start_my_set", false);
        o.refer(text, 8, start);
        o.bytes()
    }

    fn build<'a>(
        db: &'a SymbolDb<'a>,
        keep: &[String],
        rules: RootRules,
    ) -> Result<SectionGraph<'a>> {
        SectionGraph::build(
            db,
            &GraphOptions {
                entry: "_start",
                keep,
                rules,
                extra_roots: &[],
                gc: true,
            },
        )
    }

    /// `_start` calls `start`, a name declared for the object attached later, whose weak
    /// default (`.text.default`) calls `enter`; the attached object's `start` calls `enter`
    /// and `chosen`, which reads `param`, another declared name with a weak default.
    #[test]
    fn an_attached_object_replaces_the_defaults_it_overrides() {
        let mut app = TestObject::new();
        let text = app.section(".text", SectionKind::Text, &[0; 16]);
        app.define("_start", text, 0, false);
        let start = app.undefined("start", false);
        app.refer(text, 0, start);
        let enter = app.section(".text.enter", SectionKind::Text, &[0; 8]);
        let enter_sym = app.define("enter", enter, 0, false);
        let default = app.section(".text.default", SectionKind::Text, &[0; 8]);
        app.define("start", default, 0, true);
        app.refer(default, 0, enter_sym);
        let chosen = app.section(".text.chosen", SectionKind::Text, &[0; 8]);
        let param_ref = app.undefined("param", false);
        app.refer(chosen, 0, param_ref);
        app.define("chosen", chosen, 0, false);
        let param_default = app.section(".rodata.param", SectionKind::ReadOnlyData, &[0; 8]);
        app.define("param", param_default, 0, true);
        app.section(".text.unused", SectionKind::Text, &[0; 8]);

        let mut glue = TestObject::new();
        let glue_text = glue.section(".text.glue", SectionKind::Text, &[0; 16]);
        glue.define("start", glue_text, 0, false);
        for (offset, callee) in [(0, "chosen"), (8, "enter")] {
            let callee = glue.undefined(callee, false);
            glue.refer(glue_text, offset, callee);
        }
        let glue_data = glue.section(".rodata.glue", SectionKind::ReadOnlyData, &[0; 8]);
        glue.define("param", glue_data, 0, false);

        // An archive member nothing needs, between them: never loaded, so its sections are
        // neither kept nor dropped.
        let mut member = TestObject::new();
        let unloaded = member.section(".text.member", SectionKind::Text, &[0; 8]);
        member.define("member_function", unloaded, 0, false);

        let inputs = [
            ("app.o", false, app.bytes()),
            ("lib.a(member.o)", true, member.bytes()),
            ("glue.o", false, glue.bytes()),
        ];
        let mut objects = parse_all(&inputs);
        let glue = objects.pop().unwrap();
        let mut db =
            SymbolDb::resolve_declaring(&objects, &[b"_start", b"chosen"], &[b"start", b"param"])
                .unwrap();
        let opts = GraphOptions {
            entry: "_start",
            keep: &[],
            rules: RootRules::CONVENTIONAL,
            extra_roots: &[],
            gc: true,
        };
        let graph = SectionGraph::build(&db, &opts).unwrap();
        // Before the object, references to its names lead to their defaults.
        let (kept, _) = kept_and_dropped(&graph);
        assert_eq!(kept, [".text", ".text.default", ".text.enter"]);

        let marks = graph.detach();
        db.attach(&glue).unwrap();
        let keep = ["start".to_owned()];
        let graph = SectionGraph::attach(
            &db,
            marks,
            glue.id,
            &GraphOptions {
                keep: &keep,
                ..opts
            },
        )
        .unwrap();
        let (kept, dropped) = kept_and_dropped(&graph);
        assert_eq!(
            kept,
            [
                ".rodata.glue",
                ".text",
                ".text.chosen",
                ".text.enter",
                ".text.glue"
            ]
        );
        assert_eq!(dropped, [".rodata.param", ".text.default", ".text.unused"]);
        let member = SectionId {
            object: ObjectId(1),
            index: SectionIndex(1),
        };
        assert!(!db.is_live(member.object) && !graph.is_kept(member));
        assert!(graph.why_section(member).is_none());
        // The kept name roots its chains, as in one marking of all the inputs; the default's
        // edge leads nowhere any more.
        let chain = graph.why("enter").unwrap();
        assert_eq!(chain.root, RootReason::Keep);
        let vias: Vec<_> = chain.steps.iter().map(|s| s.via.clone()).collect();
        assert_eq!(vias, [Some("enter".to_owned()), None]);
        assert!(graph.why("param").unwrap().steps.len() == 3);
        assert_eq!(graph.kept_edges().count(), 4);
    }

    #[test]
    fn roots_and_reachability() {
        let inputs = [("roots.o", false, roots_object())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[b"_start"]).unwrap();
        let graph = build(&db, &["kept_by_flag".to_owned()], RootRules::CONVENTIONAL).unwrap();
        let (kept, dropped) = kept_and_dropped(&graph);
        assert_eq!(
            kept,
            [
                ".init_array",
                ".note.test",
                ".text",
                ".text.ctor",
                ".text.kept",
                ".text.retained",
                ".text.used",
                "my_set"
            ]
        );
        assert_eq!(dropped, [".text.unused"]);

        let graph = build(&db, &[], RootRules { init_arrays: false }).unwrap();
        let (_, dropped) = kept_and_dropped(&graph);
        assert_eq!(
            dropped,
            [".init_array", ".text.ctor", ".text.kept", ".text.unused"]
        );
    }

    #[test]
    fn a_kept_symbol_nothing_defines_is_an_error() {
        let inputs = [("roots.o", false, roots_object())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[b"_start", b"kv_panic_hook"]).unwrap();
        let err = build(&db, &["kv_panic_hook".to_owned()], RootRules::CONVENTIONAL)
            .err()
            .expect("an undefined kept symbol must fail the link");
        assert!(
            matches!(&err, Error::KeepUndefined(name) if name == "kv_panic_hook"),
            "{err}"
        );
    }

    #[test]
    fn why_chain_starts_at_a_root() {
        let inputs = [("roots.o", false, roots_object())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[b"_start"]).unwrap();
        let graph = build(&db, &[], RootRules::CONVENTIONAL).unwrap();
        let chain = graph.why("used").unwrap();
        assert_eq!(chain.root, RootReason::Entry);
        let steps: Vec<(String, Option<String>)> = chain
            .steps
            .iter()
            .map(|s| {
                (
                    db.object(s.section.object).section_name(s.section.index),
                    s.via.clone(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                (".text".to_owned(), Some("used".to_owned())),
                (".text.used".to_owned(), None)
            ]
        );
        assert_eq!(graph.why("unused"), None);
    }

    #[test]
    fn missing_entry_is_an_error() {
        let inputs = [("roots.o", false, roots_object())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[]).unwrap();
        let err = SectionGraph::build(
            &db,
            &GraphOptions {
                entry: "main",
                keep: &[],
                rules: RootRules::CONVENTIONAL,
                extra_roots: &[],
                gc: true,
            },
        )
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "entry symbol `main` is not defined");
    }

    #[test]
    fn undefined_references_from_kept_sections_only() {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 16]);
        o.define("_start", text, 0, false);
        let missing = o.undefined("missing", false);
        o.refer(text, 8, missing);
        let weak = o.undefined("maybe", true);
        o.refer(text, 0, weak);
        let dead = o.section(".text.dead", SectionKind::Text, &[0; 8]);
        let also = o.undefined("dead_ref", false);
        o.refer(dead, 0, also);
        let inputs = [("main.o", false, o.bytes())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[b"_start"]).unwrap();
        let err = build(&db, &[], RootRules::CONVENTIONAL).err().unwrap();
        assert_eq!(
            err.to_string(),
            "undefined symbol `missing`, referenced by main.o (section .text+0x8)"
        );
    }

    #[test]
    fn undefined_references_are_grouped_and_limited() {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 8 * 30]);
        o.define("_start", text, 0, false);
        let common = o.undefined("everywhere", false);
        for i in 0..5 {
            o.refer(text, 8 * i, common);
        }
        for i in 0..25 {
            let missing = o.undefined(&format!("missing_{i}"), false);
            o.refer(text, 8 * (5 + i), missing);
        }
        let inputs = [("many.o", false, o.bytes())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[b"_start"]).unwrap();
        let err = build(&db, &[], RootRules::CONVENTIONAL)
            .err()
            .unwrap()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "undefined symbol `everywhere`, referenced by many.o (section .text+0x0)",
                "  also referenced by many.o (section .text+0x8)",
                "  also referenced by many.o (section .text+0x10)",
                "  and 2 more references",
            ]
        );
        assert_eq!(lines.len(), 4 + 19 + 1);
        assert_eq!(lines.last(), Some(&"and 6 more undefined symbols"));
    }

    /// A CIE, then FDEs for `.text` (kept) and `.text.dead` (dropped), then a terminator.
    fn eh_frame_object() -> Vec<u8> {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 16]);
        o.define("_start", text, 0, false);
        let dead = o.section(".text.dead", SectionKind::Text, &[0; 16]);
        let lsda = o.section(".gcc_except_table.dead", SectionKind::ReadOnlyData, &[0; 4]);
        let mut data = Vec::new();
        data.extend_from_slice(&12u32.to_le_bytes());
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&[1, b'z', b'R', 0, 1, 0x78, 0x10, 0]);
        let fde = |data: &mut Vec<u8>| {
            let start = data.len() as u32;
            data.extend_from_slice(&20u32.to_le_bytes());
            data.extend_from_slice(&(start + 4).to_le_bytes());
            data.extend_from_slice(&[0; 16]);
            start
        };
        let first = fde(&mut data);
        let second = fde(&mut data);
        data.extend_from_slice(&0u32.to_le_bytes());
        let eh = o.section(".eh_frame", SectionKind::ReadOnlyData, &data);
        let text_sym = o.section_symbol(text);
        let dead_sym = o.section_symbol(dead);
        let lsda_sym = o.section_symbol(lsda);
        o.reloc(eh, u64::from(first) + 8, text_sym, elf::R_X86_64_PC32, 0);
        o.reloc(eh, u64::from(second) + 8, dead_sym, elf::R_X86_64_PC32, 0);
        o.reloc(eh, u64::from(second) + 16, lsda_sym, elf::R_X86_64_PC32, 0);
        o.bytes()
    }

    #[test]
    fn fdes_do_not_keep_functions_and_die_with_them() {
        let inputs = [("eh.o", false, eh_frame_object())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[b"_start"]).unwrap();
        let graph = build(&db, &[], RootRules::CONVENTIONAL).unwrap();
        let (kept, dropped) = kept_and_dropped(&graph);
        assert_eq!(kept, [".eh_frame", ".text"]);
        assert_eq!(dropped, [".gcc_except_table.dead", ".text.dead"]);
        let frame = graph.eh_frames().values().next().unwrap();
        assert_eq!(frame.kept, [true, true, false, true]);
    }
}
