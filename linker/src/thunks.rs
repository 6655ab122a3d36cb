//! Range-extension thunks: a branch whose target lies beyond the reach of its instruction
//! (±128 MiB for aarch64's B/BL) goes to a thunk that reaches anywhere in the image.
//!
//! Executable output sections are cut into groups of input chunks spanning at most the
//! architecture's spacing; after a group comes an island with one thunk per far target of
//! the group's branches, close enough for all of them. Which targets are far depends on
//! addresses, which islands move, so layout runs again with the grown plan until no branch
//! lacks the thunk it needs. Groups depend only on input sizes and stay put between runs,
//! and the plan only grows, so this ends.

use rustc_hash::FxHashMap;
use std::ops::Range;

use uniklink_analyzer::id::Idx;
use uniklink_analyzer::resolve::SymbolRef;

use crate::arch::ThunkShape;
use crate::error::{Error, Result};
use crate::layout::{ChunkKind, Layout, RelocIndex};

/// Where a branch goes, named so that it stays the same from one layout to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThunkTarget {
    pub symbol: SymbolRef,
    pub addend: i64,
}

/// A group of input chunks of one executable output section, and its island.
#[derive(Debug, Clone)]
pub struct ThunkGroup {
    /// Index of the output section in [`Layout::sections`].
    pub section: usize,
    /// Position of the group in its section, counting from 0.
    pub number: usize,
    /// The group's chunks in that section.
    pub chunks: Range<usize>,
    /// The island's chunk, right after the group; `None` while no branch needs it.
    pub island: Option<usize>,
    /// One thunk per target, in this order.
    pub targets: Vec<ThunkTarget>,
}

/// Which targets each group's island holds, keyed by (output section, group number).
#[derive(Debug, Default)]
pub struct ThunkPlan {
    islands: FxHashMap<(usize, usize), Vec<ThunkTarget>>,
}

/// Whether a branch at `place` cannot reach `dest` directly.
pub fn out_of_reach(place: u64, dest: u64, reach: u64) -> bool {
    let distance = i128::from(dest) - i128::from(place);
    let reach = i128::from(reach);
    !(-reach..reach).contains(&distance)
}

/// Cuts the chunks (kind, size, alignment) of executable output section `section` into
/// groups and puts each planned island after its group. Groups are recorded in `groups`.
pub fn insert_islands(
    section: usize,
    chunks: Vec<(ChunkKind, u64, u64)>,
    shape: &ThunkShape,
    plan: &ThunkPlan,
    groups: &mut Vec<ThunkGroup>,
) -> Vec<(ChunkKind, u64, u64)> {
    let mut out = Vec::with_capacity(chunks.len());
    let mut number = 0;
    let mut span = 0u64;
    let mut start = 0;
    let mut close = |out: &mut Vec<(ChunkKind, u64, u64)>, start: usize, number: usize| {
        let targets = plan
            .islands
            .get(&(section, number))
            .cloned()
            .unwrap_or_default();
        let end = out.len();
        let island = (!targets.is_empty()).then(|| {
            out.push((
                ChunkKind::Thunks(groups.len()),
                shape.size * targets.len() as u64,
                shape.align,
            ));
            out.len() - 1
        });
        groups.push(ThunkGroup {
            section,
            number,
            chunks: start..end,
            island,
            targets,
        });
    };
    for chunk in chunks {
        if span > 0 && span.saturating_add(chunk.1) > shape.spacing {
            close(&mut out, start, number);
            number += 1;
            span = 0;
            start = out.len();
        }
        span = span.saturating_add(chunk.1);
        out.push(chunk);
    }
    if !out[start..].is_empty() {
        close(&mut out, start, number);
    }
    out
}

impl ThunkPlan {
    /// Adds a thunk for every branch of `layout` that reaches neither its target nor a
    /// thunk for it; returns whether anything was added. When nothing was, every far branch
    /// has its thunk, and [`Layout::thunked`] records which.
    pub fn extend(&mut self, layout: &mut Layout<'_>) -> Result<bool> {
        let db = layout.db;
        let arch = layout.arch;
        let Some(shape) = arch.thunk_shape() else {
            // No thunks, no groups: nothing to extend or record.
            return Ok(false);
        };
        let mut grew = false;
        let mut thunked = FxHashMap::default();
        for group in &layout.thunk_groups {
            let key = (group.section, group.number);
            let section = &layout.sections[group.section];
            for chunk in &section.chunks[group.chunks.clone()] {
                let ChunkKind::Input(id) = chunk.kind else {
                    continue;
                };
                let input = db.object(id.object).section(id.index);
                for (i, r) in input.relocs().enumerate() {
                    let Some(reach) = arch.branch_reach(r.r_type) else {
                        continue;
                    };
                    let target = layout.target(id.object, r.symbol, r.addend, (id, r.offset))?;
                    let dest = target.addr.wrapping_add(target.addend as u64);
                    let place = section.addr + chunk.offset + r.offset;
                    if !out_of_reach(place, dest, reach) {
                        continue;
                    }
                    let wanted = ThunkTarget {
                        symbol: db.symbol_ref(id.object, r.symbol),
                        addend: r.addend,
                    };
                    let placed = group
                        .island
                        .zip(group.targets.iter().position(|t| *t == wanted));
                    if let Some((island, n)) = placed {
                        let thunk =
                            section.addr + section.chunks[island].offset + shape.size * n as u64;
                        thunked.insert((id, RelocIndex::from_index(i)), thunk);
                        continue;
                    }
                    let island = self.islands.entry(key).or_default();
                    if !island.contains(&wanted) {
                        island.push(wanted);
                        grew = true;
                    }
                }
            }
        }
        layout.thunked = thunked;
        Ok(grew)
    }
}

impl Layout<'_> {
    /// Writes the thunks of group `index`, placed at `addr`, into `buf`.
    pub fn write_thunks(&self, index: usize, addr: u64, buf: &mut [u8]) -> Result<()> {
        let Some(shape) = self.arch.thunk_shape() else {
            return Ok(());
        };
        let size = shape.size as usize;
        for (i, target) in self.thunk_groups[index].targets.iter().enumerate() {
            let symbol = match target.symbol {
                SymbolRef::Local { object, index } => self.symbol_address(object, index),
                SymbolRef::Global(g) => self.global_addr.get(g).copied(),
            };
            let thunk = addr + shape.size * i as u64;
            let name = || match target.symbol {
                SymbolRef::Local { object, index } => self.db.symbol_name(object, index),
                SymbolRef::Global(g) => String::from_utf8_lossy(self.db.global(g).name).into(),
            };
            let dest = symbol
                .ok_or_else(|| Error::Thunk {
                    symbol: name(),
                    reason: "the target's section was not kept".into(),
                })?
                .wrapping_add(target.addend as u64);
            (shape.write)(thunk, dest, &mut buf[i * size..(i + 1) * size]).map_err(|source| {
                Error::Thunk {
                    symbol: name(),
                    reason: source.to_string(),
                }
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::RelocError;
    use uniklink_analyzer::object::{ObjectId, SectionId, SectionIndex};
    use uniklink_analyzer::resolve::SymbolId;

    fn shape() -> ThunkShape {
        fn write(_: u64, _: u64, _: &mut [u8]) -> Result<(), RelocError> {
            Ok(())
        }
        ThunkShape {
            size: 12,
            align: 4,
            spacing: 100,
            write,
        }
    }

    fn input(index: u32, size: u64) -> (ChunkKind, u64, u64) {
        let id = SectionId {
            object: ObjectId(0),
            index: SectionIndex(index),
        };
        (ChunkKind::Input(id), size, 4)
    }

    #[test]
    fn reach_is_half_open() {
        assert!(!out_of_reach(0x1000, 0x1000 + 0x7ff_fffc, 1 << 27));
        assert!(out_of_reach(0x1000, 0x1000 + 0x800_0000, 1 << 27));
        assert!(!out_of_reach(0x800_1000, 0x1000, 1 << 27));
        assert!(out_of_reach(0x800_1004, 0x1000, 1 << 27));
    }

    #[test]
    fn groups_span_at_most_the_spacing_and_islands_follow_them() {
        let chunks = vec![
            input(1, 40),
            input(2, 50),
            input(3, 30),
            input(4, 250),
            input(5, 8),
        ];
        let mut groups = Vec::new();
        let out = insert_islands(
            3,
            chunks.clone(),
            &shape(),
            &ThunkPlan::default(),
            &mut groups,
        );
        assert_eq!(out, chunks, "no plan, no islands");
        let spans: Vec<Range<usize>> = groups.iter().map(|g| g.chunks.clone()).collect();
        // A chunk larger than the spacing forms a group of its own.
        assert_eq!(spans, [0..2, 2..3, 3..4, 4..5]);
        let numbers: Vec<usize> = groups.iter().map(|g| g.number).collect();
        assert_eq!(numbers, [0, 1, 2, 3]);

        let far = ThunkTarget {
            symbol: SymbolRef::Global(SymbolId(7)),
            addend: 0,
        };
        let mut plan = ThunkPlan::default();
        plan.islands.insert((3, 0), vec![far]);
        plan.islands
            .insert((3, 2), vec![far, ThunkTarget { addend: 8, ..far }]);
        let mut groups = Vec::new();
        let out = insert_islands(3, chunks.clone(), &shape(), &plan, &mut groups);
        let kinds: Vec<ChunkKind> = out.iter().map(|c| c.0).collect();
        assert_eq!(
            kinds,
            [
                chunks[0].0,
                chunks[1].0,
                ChunkKind::Thunks(0),
                chunks[2].0,
                chunks[3].0,
                ChunkKind::Thunks(2),
                chunks[4].0
            ]
        );
        assert_eq!(out[2].1, 12);
        assert_eq!(out[5].1, 24);
        assert_eq!(groups[0].island, Some(2));
        assert_eq!(groups[2].chunks, 4..5);
        assert_eq!(groups[2].island, Some(5));
        assert_eq!(groups[1].island, None);
    }
}
