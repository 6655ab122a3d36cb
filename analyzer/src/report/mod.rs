//! The size report: what each kept input section costs in the loaded image, what it retains
//! (the bytes that would go with it, from the dominator tree of the kept graph), who it belongs
//! to, how it was reached, and which components were kept or dropped and why.
//!
//! A [`SizeReport`] is plain data, serialized into the build report, so `report`, `why` and
//! `diff` work from the JSON alone without linking again. Every byte of the loaded image is
//! either in a section row or in a named remainder row (headers, alignment padding, GOT, merged
//! strings, ...): the rows add up to the sum of the PT_LOAD segments' `p_memsz`. Memory size
//! rather than file size, because `.bss` costs guest memory as surely as code does.
//!
//! Sizes are computed after layout; the linker hands over where bytes went as a
//! [`Placement`], which keeps this crate free of the linker's types.

mod crates;
mod diff;
mod dominators;
mod find;
pub mod render;
mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::component::{Attribution, Components, Owner};
use crate::graph::{RootReason, SectionGraph};
use crate::id::IdVec;
use crate::input::Inputs;
use crate::object::{
    InputSectionId, InputSections, ObjectId, SectionId, SectionSymbols, SymbolIndex,
};

pub use diff::{Diff, DiffRow};
pub use find::{Found, Match, Query};
pub use view::{By, Row, Table, WhyStep};

/// What a chunk of an output section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A kept input section (for `.eh_frame`, with the FDEs of dropped functions removed).
    Input(SectionId),
    /// Deduplicated strings of several `SHF_MERGE|SHF_STRINGS` inputs.
    MergedStrings,
    Got,
    /// The `.eh_frame_hdr` table the linker writes.
    EhFrameHdr,
    Commons,
    Thunks,
    /// The translation tables the linker writes for a virt image.
    PageTables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacedChunk {
    pub content: Content,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedSection {
    pub name: String,
    pub size: u64,
    /// `false` for `.tbss`, which takes no room in its segment: each thread gets its copy.
    pub loaded: bool,
    pub chunks: Vec<PlacedChunk>,
}

/// One PT_LOAD segment and the output sections in it, in address order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedSegment {
    pub mem_size: u64,
    /// Bytes of ELF and program headers at the segment's start.
    pub headers: u64,
    pub sections: Vec<PlacedSection>,
}

/// Where the linker put the kept bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    pub segments: Vec<PlacedSegment>,
}

/// A symbol defined in a kept section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolRow {
    /// As in the symbol table (mangled); shown demangled.
    pub name: String,
    pub offset: u64,
    /// `st_size`; 0 when the compiler gave none.
    pub size: u64,
}

/// One kept input section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionRow {
    pub object: String,
    pub section: String,
    /// `app`, `component <name>`, `core`, `alloc`, `compiler_builtins`, `C archive <file>`,
    /// `shared dependencies`, `unwind tables` or `linker-generated`.
    pub owner: String,
    /// The Rust crate (`smoltcp`), else `C archive <file>`, `app`, `unwind tables` or
    /// `linker-generated`; `None` in reports written before crates were recorded.
    #[serde(rename = "crate", default, skip_serializing_if = "Option::is_none")]
    pub krate: Option<String>,
    /// Bytes in the loaded image (0 for strings merged into a shared chunk and for `.tbss`).
    pub size: u64,
    /// This section and every section only reachable through it.
    pub retained: u64,
    /// Row index of the immediate dominator; `None` when only the roots as a whole dominate it.
    pub idom: Option<usize>,
    /// Why it is a root (`entry`, `keep`, ...), if it is one.
    pub root: Option<String>,
    /// Row index of the section whose reference reached it first, on a shortest path from a
    /// root, and the symbol that reference names.
    pub parent: Option<(usize, String)>,
    pub symbols: Vec<SymbolRow>,
}

/// Bytes of the loaded image that belong to no input section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemainderRow {
    pub what: String,
    pub size: u64,
}

/// All sections of one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRow {
    pub owner: String,
    pub size: u64,
    /// What would leave the image with this owner's sections: its own bytes and everything
    /// reachable only through them.
    pub retained: u64,
}

/// A library-OS component and the weave's decision about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRow {
    pub name: String,
    pub kept: bool,
    /// `reached`, `required`, `dependency of <name>`, `unreachable`, `not required` or
    /// `forbidden`.
    pub reason: String,
    /// For a reached component: the symbols leading from a root to its first reached section.
    pub chain: Vec<String>,
    pub size: u64,
    pub retained: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SizeReport {
    /// The sum of the PT_LOAD segments' `p_memsz`: every section row plus every remainder
    /// row.
    pub loadable_size: u64,
    pub sections: Vec<SectionRow>,
    pub remainder: Vec<RemainderRow>,
    /// Sorted by size, largest first.
    pub owners: Vec<OwnerRow>,
    /// The sections of each crate (see [`SectionRow::krate`]), largest first; empty in
    /// reports written before crates were recorded.
    #[serde(default)]
    pub crates: Vec<OwnerRow>,
    /// Empty unless the link wove components; in name order.
    pub components: Vec<ComponentRow>,
    /// `.tbss` bytes, which each thread allocates and no segment's memory size counts.
    pub tls_bss: u64,
}

/// What [`SizeReport::compute`] reads.
pub struct ReportInputs<'r, 'a> {
    pub inputs: &'r Inputs,
    pub graph: &'r SectionGraph<'a>,
    pub attribution: &'r Attribution,
    pub components: &'r Components,
    /// What the weave decided about each component; empty when the link did not weave.
    pub components_decided: &'r [Decision],
    pub placement: &'r Placement,
}

/// The weave's decision about one component, as the pipeline reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub name: String,
    pub kept: bool,
    pub reason: String,
    pub chain: Vec<String>,
}

const HEADERS: &str = "ELF and program headers";
const PADDING: &str = "alignment padding";
const APP: &str = "app";
const UNWIND_TABLES: &str = "unwind tables";
const LINKER_GENERATED: &str = "linker-generated";

fn archive_label(file: &str) -> String {
    format!("C archive {file}")
}

pub fn root_name(reason: RootReason) -> &'static str {
    match reason {
        RootReason::Entry => "entry",
        RootReason::Keep => "keep",
        RootReason::Retain => "SHF_GNU_RETAIN",
        RootReason::Note => "note",
        RootReason::InitFini => ".init/.fini",
        RootReason::InitArray => "init array",
        RootReason::EhFrame => ".eh_frame",
        RootReason::NoGc => "no GC",
    }
}

impl SizeReport {
    pub fn compute(r: &ReportInputs<'_, '_>) -> SizeReport {
        let graph = r.graph;
        let db = graph.db;
        let ids: Vec<SectionId> = graph.kept_sections().collect();
        let index = RowIndex::new(db.input_sections(), &ids);

        let mut by_section: IdVec<ObjectId, Option<SectionSymbols>> =
            IdVec::filled(None, db.object_count());
        let mut sections: Vec<SectionRow> = ids
            .iter()
            .map(|&id| {
                let o = db.object(id.object);
                let in_section = by_section[id.object]
                    .get_or_insert_with(|| o.symbols_by_section())
                    .of(id.index);
                let mut symbols: Vec<SymbolRow> = in_section
                    .iter()
                    .map(|&i| &o.symbols[i])
                    .filter(|s| {
                        !s.is_section()
                            && s.st_type != object::elf::STT_FILE
                            && !s.name.is_empty()
                            && !is_mapping_symbol(s.name)
                    })
                    .map(|s| SymbolRow {
                        name: String::from_utf8_lossy(s.name).into_owned(),
                        offset: s.value,
                        size: s.size,
                    })
                    .collect();
                symbols.sort_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
                symbols.dedup();
                SectionRow {
                    object: o.name.clone(),
                    section: o.section_name(id.index),
                    owner: owner_label(r, id, in_section),
                    krate: None,
                    size: 0,
                    retained: 0,
                    idom: None,
                    root: graph.root_reason(id).map(|r| root_name(r).to_owned()),
                    parent: graph
                        .parent(id)
                        .and_then(|(from, via)| Some((index.get(from)?, via))),
                    symbols,
                }
            })
            .collect();

        let special: Vec<Option<String>> = sections
            .iter()
            .map(|s| {
                (s.owner == UNWIND_TABLES || s.owner == LINKER_GENERATED).then(|| s.owner.clone())
            })
            .collect();
        for (row, krate) in sections
            .iter_mut()
            .zip(crates::kept_crates(r, &ids, &special))
        {
            row.krate = Some(krate);
        }

        let mut remainder: BTreeMap<String, u64> = BTreeMap::new();
        let mut loadable_size = 0u64;
        let mut tls_bss = 0u64;
        for segment in &r.placement.segments {
            loadable_size += segment.mem_size;
            *remainder.entry(HEADERS.to_owned()).or_default() += segment.headers;
            let mut placed = segment.headers;
            for s in segment.sections.iter() {
                if !s.loaded {
                    tls_bss += s.size;
                    continue;
                }
                placed += s.size;
                let mut in_chunks = 0;
                for chunk in &s.chunks {
                    in_chunks += chunk.size;
                    let what = match chunk.content {
                        Content::Input(id) => {
                            if let Some(row) = index.get(id) {
                                sections[row].size += chunk.size;
                                continue;
                            }
                            format!("unattributed input ({})", s.name)
                        }
                        Content::MergedStrings => format!("merged strings ({})", s.name),
                        Content::Got => "GOT".to_owned(),
                        Content::EhFrameHdr => "unwind table index (.eh_frame_hdr)".to_owned(),
                        Content::Commons => "common symbols".to_owned(),
                        Content::Thunks => "range-extension thunks".to_owned(),
                        Content::PageTables => "page tables".to_owned(),
                    };
                    *remainder.entry(what).or_default() += chunk.size;
                }
                *remainder.entry(PADDING.to_owned()).or_default() +=
                    s.size.saturating_sub(in_chunks);
            }
            *remainder.entry(PADDING.to_owned()).or_default() +=
                segment.mem_size.saturating_sub(placed);
        }
        let mut remainder: Vec<RemainderRow> = remainder
            .into_iter()
            .filter(|(_, size)| *size > 0)
            .map(|(what, size)| RemainderRow { what, size })
            .collect();
        remainder.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.what.cmp(&b.what)));

        let roots: Vec<usize> = (0..sections.len())
            .filter(|&i| sections[i].root.is_some())
            .collect();
        let edges: Vec<(usize, usize)> = graph
            .kept_edges()
            .filter_map(|(a, b)| Some((index.get(a)?, index.get(b)?)))
            .collect();
        let sizes: Vec<u64> = sections.iter().map(|s| s.size).collect();
        let tree = dominators::DominatorTree::new(sections.len(), &roots, &edges, &sizes);
        for (i, row) in sections.iter_mut().enumerate() {
            row.idom = tree.idom[i];
            row.retained = tree.retained[i];
        }

        let owner_rows = group_rows(&sections, &tree, |row| Some(&row.owner));
        let crate_rows = group_rows(&sections, &tree, |row| row.krate.as_deref());
        let components = component_rows(r.components_decided, &owner_rows);

        SizeReport {
            loadable_size,
            sections,
            remainder,
            owners: owner_rows,
            crates: crate_rows,
            components,
            tls_bss,
        }
    }

    /// Checks what a report read back from a file must satisfy for the views not to go out
    /// of bounds: row references within the rows. Says which row is wrong.
    pub fn check(&self) -> Result<(), String> {
        let n = self.sections.len();
        for (i, row) in self.sections.iter().enumerate() {
            if let Some(d) = row.idom.filter(|&d| d >= n) {
                return Err(format!(
                    "section row {i} has dominator row {d}, past the {n} rows"
                ));
            }
            if let Some((p, _)) = row.parent.as_ref().filter(|(p, _)| *p >= n) {
                return Err(format!(
                    "section row {i} has parent row {p}, past the {n} rows"
                ));
            }
        }
        Ok(())
    }

    /// Whether its sections record their crates, which reports written before `report --by
    /// crate` existed do not.
    pub fn has_crates(&self) -> bool {
        self.sections.iter().all(|s| s.krate.is_some())
    }

    /// Bytes in section rows.
    pub fn attributed(&self) -> u64 {
        self.sections.iter().map(|s| s.size).sum()
    }

    /// Bytes in remainder rows.
    pub fn unattributed(&self) -> u64 {
        self.remainder.iter().map(|r| r.size).sum()
    }
}

/// One row per group of sections (an owner, a crate), with what the group retains together;
/// largest first.
fn group_rows<'s>(
    sections: &'s [SectionRow],
    tree: &dominators::DominatorTree,
    group: impl Fn(&'s SectionRow) -> Option<&'s str>,
) -> Vec<OwnerRow> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, row) in sections.iter().enumerate() {
        if let Some(name) = group(row) {
            groups.entry(name).or_default().push(i);
        }
    }
    let mut rows: Vec<OwnerRow> = groups
        .iter()
        .map(|(name, members)| OwnerRow {
            owner: (*name).to_owned(),
            size: members.iter().map(|&i| sections[i].size).sum(),
            retained: tree.retained_by_set(members),
        })
        .collect();
    rows.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.owner.cmp(&b.owner)));
    rows
}

/// The row of each kept section: a table by input section rather than a hash map, as every
/// placed chunk and every kept edge looks rows up.
struct RowIndex<'s> {
    sections: &'s InputSections,
    rows: IdVec<InputSectionId, Option<u32>>,
}

impl<'s> RowIndex<'s> {
    fn new(sections: &'s InputSections, ids: &[SectionId]) -> Self {
        let mut rows = sections.table(None);
        for (row, &id) in ids.iter().enumerate() {
            rows[sections.id(id)] = Some(row as u32);
        }
        RowIndex { sections, rows }
    }

    fn get(&self, id: SectionId) -> Option<usize> {
        self.rows[self.sections.get(id)?].map(|row| row as usize)
    }
}

fn component_label(name: &str) -> String {
    format!("component {name}")
}

/// Who a kept section belongs to, as rows name it. `in_section` are the indices of the
/// symbols it defines.
fn owner_label(r: &ReportInputs<'_, '_>, id: SectionId, in_section: &[SymbolIndex]) -> String {
    let db = r.graph.db;
    let o = db.object(id.object);
    let unit = r.inputs.unit_of(id.object);
    if r.inputs.is_generated(unit) {
        return LINKER_GENERATED.to_owned();
    }
    match r.attribution.owner(id) {
        None => UNWIND_TABLES.to_owned(),
        Some(Owner::Component(c)) => component_label(&r.components.def(*c).name),
        Some(Owner::Runtime) => unit
            .member
            .as_deref()
            .filter(|m| m.ends_with(".rcgu.o"))
            .and_then(|m| m.split_once('-'))
            .map(|(krate, _)| krate.to_owned())
            .filter(|krate| RUNTIME_LABELS.contains(&krate.as_str()))
            .or_else(|| {
                in_section
                    .iter()
                    .map(|&i| &o.symbols[i])
                    .filter(|s| !s.is_section())
                    .find_map(|s| leading_crate(s.name))
            })
            .unwrap_or_else(|| "rust runtime".to_owned()),
        Some(Owner::Deps) => "shared dependencies".to_owned(),
        Some(Owner::Archive(name)) => archive_label(name),
        Some(Owner::App) => APP.to_owned(),
    }
}

/// AArch64 mapping symbols (`$x`, `$d`, `$x.12`) mark code and data within a section; they
/// name nothing.
fn is_mapping_symbol(name: &[u8]) -> bool {
    matches!(name, [b'$', b'x' | b'd' | b'a' | b't', rest @ ..] if rest.is_empty() || rest[0] == b'.')
}

/// Sysroot crates named in rows as themselves; the attribution lumps them together.
const RUNTIME_LABELS: &[&str] = &["core", "alloc", "compiler_builtins", "std", "panic_abort"];

/// `core` for `<core::fmt::Arguments as core::fmt::Display>::fmt` (and for
/// `<u128 as core::fmt::Display>::fmt`), when it is a sysroot crate.
fn leading_crate(name: &[u8]) -> Option<String> {
    crate::component::symbol_crate(name).filter(|krate| RUNTIME_LABELS.contains(&krate.as_str()))
}

fn component_rows(decisions: &[Decision], owners: &[OwnerRow]) -> Vec<ComponentRow> {
    decisions
        .iter()
        .map(|d| {
            let label = component_label(&d.name);
            let owner = owners.iter().find(|o| o.owner == label);
            ComponentRow {
                name: d.name.clone(),
                kept: d.kept,
                reason: d.reason.clone(),
                chain: d.chain.clone(),
                size: owner.map_or(0, |o| o.size),
                retained: owner.map_or(0, |o| o.retained),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const F64: &str =
        "_RINvNtNtCsfySoobUK4LL_4core3fmt5float29float_to_decimal_common_exactdE";
    const F32: &str = "_RINvNtNtCsfySoobUK4LL_4core3fmt5float29float_to_decimal_common_exactfE";
    const DISPLAY: &str = "_RNvXs8_NtCsg3SjgaGcPXb_4core3fmtNtB5_9ArgumentsNtB5_7Display3fmt";

    /// A kept section: object, section, owner, crate, size, symbol, parent row.
    type Kept = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        u64,
        Option<&'static str>,
        Option<usize>,
    );

    /// Kept sections of an httpd-like image.
    pub(super) fn image() -> SizeReport {
        let app = "/t/libhttpd.a(httpd-1a2b.httpd.3c4d-cgu.0.rcgu.o)";
        let rows: [Kept; 10] = [
            (app, ".text.f64", "core", "core", 300, Some(F64), Some(2)),
            (app, ".text.f32", "core", "core", 200, Some(F32), Some(2)),
            (
                app,
                ".text.main",
                "app",
                "httpd",
                50,
                Some("_ZN5httpd4main17h0123456789abcdefE"),
                None,
            ),
            (
                app,
                ".text.poll",
                "component net",
                "smoltcp",
                400,
                Some("_ZN7smoltcp5iface9Interface4poll17h0123456789abcdefE"),
                Some(2),
            ),
            (
                app,
                ".text.verify",
                "component net",
                "smoltcp",
                100,
                Some("_ZN7smoltcp4wire4ipv46Packet6verify17h0123456789abcdefE"),
                Some(3),
            ),
            (
                "/t/libhttpd.a(compiler_builtins-5e6f.compiler_builtins.7a8b-cgu.1.rcgu.o)",
                ".text.memcpy",
                "compiler_builtins",
                "compiler_builtins",
                80,
                Some("memcpy"),
                Some(3),
            ),
            (
                app,
                ".text.display",
                "core",
                "core",
                60,
                Some(DISPLAY),
                Some(2),
            ),
            (
                "/t/graph.o",
                ".rodata.cst16",
                "app",
                "app",
                16,
                None,
                Some(2),
            ),
            ("/t/a.o", ".text.d", "app", "app", 8, Some("d"), Some(2)),
            ("/t/b.o", ".text.d", "app", "app", 4, Some("d"), Some(2)),
        ];
        let sections = rows
            .iter()
            .map(
                |&(object, section, owner, krate, size, symbol, parent)| SectionRow {
                    object: object.to_owned(),
                    section: section.to_owned(),
                    owner: owner.to_owned(),
                    krate: Some(krate.to_owned()),
                    size,
                    retained: size,
                    idom: parent,
                    root: parent.is_none().then(|| "entry".to_owned()),
                    parent: parent.map(|p| (p, format!("via {p}"))),
                    symbols: symbol
                        .iter()
                        .map(|&name| SymbolRow {
                            name: name.to_owned(),
                            offset: 0,
                            size,
                        })
                        .collect(),
                },
            )
            .collect();
        SizeReport {
            sections,
            ..SizeReport::default()
        }
    }

    #[test]
    fn row_index_finds_each_kept_section_and_nothing_else() {
        use crate::object::ObjectId;
        use crate::test_objects::{parse_all, text_sections};

        let inputs = [
            ("a.o", false, text_sections(3)),
            ("b.o", false, text_sections(40)),
            ("c.o", false, text_sections(1)),
        ];
        let objects = parse_all(&inputs);
        let id = |object: u32, index: u32| SectionId {
            object: ObjectId(object),
            index: crate::object::SectionIndex(index),
        };
        let kept = [id(1, 5), id(0, 1), id(2, 1), id(1, 39)];
        let sections = crate::object::InputSections::new(&objects);
        let index = RowIndex::new(&sections, &kept);
        for (row, &section) in kept.iter().enumerate() {
            assert_eq!(index.get(section), Some(row), "{section:?}");
        }
        for (o, object) in objects.iter().enumerate() {
            for i in 0..object.sections.len() as u32 + 2 {
                let section = id(o as u32, i);
                if !kept.contains(&section) {
                    assert_eq!(index.get(section), None, "{section:?}");
                }
            }
        }
        assert_eq!(index.get(id(3, 0)), None);
    }

    #[test]
    fn mapping_symbols_are_not_names() {
        for name in ["$x", "$d", "$x.12", "$t"] {
            assert!(is_mapping_symbol(name.as_bytes()), "{name}");
        }
        for name in ["$xyz", "x", "$", "main"] {
            assert!(!is_mapping_symbol(name.as_bytes()), "{name}");
        }
    }
}
