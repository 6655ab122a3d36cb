//! The GOT sub-phase: each relocation of the kept code is decided once from the
//! architecture's table, its target and the original instruction bytes — applied directly,
//! through a GOT slot, or relaxed — and the decisions other than direct are recorded for
//! relocation to follow. The GOT holds one slot per distinct target and use the decisions
//! ask for, in first-use order. Decisions do not depend on addresses, so thunk rounds reuse
//! them.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use uniklink_analyzer::graph::SectionGraph;
use uniklink_analyzer::id::{IdVec, Idx};
use uniklink_analyzer::object::SectionId;
use uniklink_analyzer::resolve::SymbolRef;

use super::target_kind;
use crate::arch::{Arch, Decision, GotUse, Relaxation};

/// A slot of the GOT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GotSlot(u32);

impl Idx for GotSlot {
    fn from_index(index: usize) -> Self {
        Self(u32::try_from(index).expect("fewer than 2^32 GOT slots"))
    }

    fn index(self) -> usize {
        self.0 as usize
    }
}

/// A relocation's position in its section's relocation table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelocIndex(u32);

impl Idx for RelocIndex {
    fn from_index(index: usize) -> Self {
        Self(u32::try_from(index).expect("fewer than 2^32 relocations in a section"))
    }

    fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GotEntry {
    pub target: SymbolRef,
    pub kind: GotUse,
}

/// A decision other than direct, as relocation follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Through this slot.
    Got(GotSlot),
    Relax(Relaxation),
}

/// The GOT and the decisions it was built from.
#[derive(Debug, Default)]
pub struct Got {
    pub entries: IdVec<GotSlot, GotEntry>,
    /// Per input section, its relocations not applied directly, in index order. Most
    /// relocations are direct, so only these are kept.
    recorded: FxHashMap<SectionId, Vec<(RelocIndex, Recorded)>>,
}

/// The decisions of one section other than direct, with their targets, in index order.
type SectionDecisions = (SectionId, Vec<(RelocIndex, SymbolRef, Decision)>);

impl Got {
    /// Decides every relocation of the kept sections. `.eh_frame` holds only data
    /// relocations, which are always direct; it is not scanned.
    pub fn decide(graph: &SectionGraph<'_>, arch: &dyn Arch) -> Self {
        let db = graph.db;
        let kept: Vec<SectionId> = graph
            .kept_sections()
            .filter(|id| !graph.eh_frames().contains_key(id))
            .collect();
        let per_section: Vec<SectionDecisions> = kept
            .par_iter()
            .map(|&id| {
                let s = db.object(id.object).section(id.index);
                let decided = s
                    .relocs()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        let kind = target_kind(db, id.object, r.symbol);
                        match arch.decide(r.r_type, s.data, r.offset, kind) {
                            Decision::Direct => None,
                            d => Some((
                                RelocIndex::from_index(i),
                                db.symbol_ref(id.object, r.symbol),
                                d,
                            )),
                        }
                    })
                    .collect();
                (id, decided)
            })
            .filter(|(_, decided): &SectionDecisions| !decided.is_empty())
            .collect();
        Self::record(per_section)
    }

    /// Gives each distinct GOT use a slot, in first-use order, and records the decisions.
    fn record(per_section: Vec<SectionDecisions>) -> Self {
        let mut got = Got::default();
        let mut slots: FxHashMap<GotEntry, GotSlot> = FxHashMap::default();
        for (id, decided) in per_section {
            let recorded = decided
                .into_iter()
                .filter_map(|(index, target, decision)| {
                    let recorded = match decision {
                        Decision::Direct => return None,
                        Decision::Got(kind) => {
                            let entry = GotEntry { target, kind };
                            Recorded::Got(
                                *slots
                                    .entry(entry)
                                    .or_insert_with(|| got.entries.push(entry)),
                            )
                        }
                        Decision::Relax(relaxation) => Recorded::Relax(relaxation),
                    };
                    Some((index, recorded))
                })
                .collect();
            got.recorded.insert(id, recorded);
        }
        got
    }

    /// The recorded decisions of section `id`, looked up once per section.
    pub fn of_section(&self, id: SectionId) -> SectionRecord<'_> {
        SectionRecord(self.recorded.get(&id).map_or(&[], Vec::as_slice))
    }
}

/// One section's decisions other than direct, in relocation index order.
#[derive(Debug, Clone, Copy)]
pub struct SectionRecord<'g>(&'g [(RelocIndex, Recorded)]);

impl SectionRecord<'_> {
    /// How relocation `index` is applied; `None` for directly.
    pub fn get(self, index: RelocIndex) -> Option<Recorded> {
        let at = self.0.binary_search_by_key(&index, |(i, _)| *i).ok()?;
        Some(self.0[at].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniklink_analyzer::object::{ObjectId, SectionIndex, SymbolIndex};
    use uniklink_analyzer::resolve::SymbolId;

    fn section(index: u32) -> SectionId {
        SectionId {
            object: ObjectId(0),
            index: SectionIndex(index),
        }
    }

    fn at(i: usize) -> RelocIndex {
        RelocIndex::from_index(i)
    }

    #[test]
    fn slots_are_shared_per_target_and_use_in_first_use_order() {
        let foo = SymbolRef::Global(SymbolId(3));
        let bar = SymbolRef::Local {
            object: ObjectId(1),
            index: SymbolIndex(5),
        };
        let got = Got::record(vec![
            (
                section(1),
                vec![
                    (at(0), foo, Decision::Got(GotUse::Address)),
                    (
                        at(2),
                        bar,
                        Decision::Relax(Relaxation::InitialExecToLocalExec),
                    ),
                    (at(4), bar, Decision::Got(GotUse::TpOffset)),
                ],
            ),
            (
                section(2),
                vec![
                    (at(1), bar, Decision::Got(GotUse::Address)),
                    (at(3), foo, Decision::Got(GotUse::Address)),
                ],
            ),
        ]);
        let entries: Vec<GotEntry> = got.entries.iter().copied().collect();
        assert_eq!(
            entries,
            [
                GotEntry {
                    target: foo,
                    kind: GotUse::Address
                },
                GotEntry {
                    target: bar,
                    kind: GotUse::TpOffset
                },
                GotEntry {
                    target: bar,
                    kind: GotUse::Address
                },
            ]
        );
        let slot = GotSlot::from_index;
        assert_eq!(
            got.of_section(section(1)).get(at(0)),
            Some(Recorded::Got(slot(0)))
        );
        assert_eq!(
            got.of_section(section(1)).get(at(2)),
            Some(Recorded::Relax(Relaxation::InitialExecToLocalExec))
        );
        assert_eq!(
            got.of_section(section(1)).get(at(4)),
            Some(Recorded::Got(slot(1)))
        );
        assert_eq!(
            got.of_section(section(2)).get(at(1)),
            Some(Recorded::Got(slot(2)))
        );
        assert_eq!(
            got.of_section(section(2)).get(at(3)),
            Some(Recorded::Got(slot(0)))
        );
        // Direct relocations and undecided sections have no record.
        assert_eq!(got.of_section(section(1)).get(at(1)), None);
        assert_eq!(got.of_section(section(3)).get(at(0)), None);
    }
}
