//! The command-line objects' global symbols resolved on all threads, with the outcome of
//! resolving them one object after the other in command-line order: the same ids in the same
//! order (a name's id follows its first occurrence), the same definitions, the same pending
//! references in the same order, the same duplicates.
//!
//! What happens to a name depends only on the occurrences of that name before it, so names
//! are split into shards by their hash and each shard goes through its occurrences in
//! command-line order on a thread of its own. Tasks first hash runs of symbols and sort each
//! run's symbols by shard; after the shards, ids are given in the order of each name's first
//! occurrence, and each object's table of ids is filled run by run.

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::{
    Definition, GlobalSymbol, Outcome, SymbolId, discard_losing_comdats, name_hash, object_in,
    resolve_symbol,
};
use crate::error::Duplicate;
use crate::id::{IdVec, Idx};
use crate::object::{ObjectFile, ObjectId, SymbolIndex};

const SHARD_BITS: u32 = 6;
pub(super) const SHARDS: usize = 1 << SHARD_BITS;
/// Symbols one task hashes and sorts by shard: enough to outweigh the task's cost, few enough
/// that a single large object spreads over the threads.
const SYMBOLS_PER_RUN: usize = 16 * 1024;

/// A name's shard: hash bits that the shard's table uses neither for the bucket (the low
/// bits) nor for its control bytes (the top seven), so that names sharing a shard still
/// spread over its table.
pub(super) fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

/// A symbol's place in command-line order: the object's place among the command-line
/// objects, then the symbol's index.
type Position = u64;

fn position(ordinal: usize, index: SymbolIndex) -> Position {
    ((ordinal as u64) << 32) | u64::from(index.0)
}

/// What resolving the command-line objects gives [`super::SymbolDb`].
pub(super) struct Loaded<'a> {
    pub globals: IdVec<SymbolId, GlobalSymbol<'a>>,
    pub names: Vec<HashTable<SymbolId>>,
    pub global_map: IdVec<ObjectId, Vec<SymbolId>>,
    pub discarded: IdVec<ObjectId, Vec<bool>>,
    pub pending: Vec<SymbolId>,
    pub duplicates: Vec<Duplicate>,
}

/// Up to [`SYMBOLS_PER_RUN`] consecutive global symbols of one object, hashed and sorted by
/// shard.
struct Run<'a> {
    object: &'a ObjectFile<'a>,
    /// The object's place among the command-line objects.
    ordinal: usize,
    /// The run's first symbol, counted from the object's first global.
    first: usize,
    hashes: Vec<u64>,
    /// The run's symbols (counted from `first`) by shard, in order within each shard.
    by_shard: Vec<u32>,
    /// Where each shard's symbols start in `by_shard`, and where the last shard's end.
    shard_starts: [u32; SHARDS + 1],
}

impl<'a> Run<'a> {
    fn new(object: &'a ObjectFile<'a>, ordinal: usize, first: usize, len: usize) -> Self {
        let symbols = &object.global_symbols()[first..first + len];
        let hashes: Vec<u64> = symbols.iter().map(|sym| name_hash(sym.name)).collect();
        let mut shard_starts = [0u32; SHARDS + 1];
        for &hash in &hashes {
            shard_starts[shard_of(hash) + 1] += 1;
        }
        for shard in 0..SHARDS {
            shard_starts[shard + 1] += shard_starts[shard];
        }
        let mut next = shard_starts;
        let mut by_shard = vec![0u32; len];
        for (offset, &hash) in hashes.iter().enumerate() {
            let slot = &mut next[shard_of(hash)];
            by_shard[*slot as usize] = offset as u32;
            *slot += 1;
        }
        Run {
            object,
            ordinal,
            first,
            hashes,
            by_shard,
            shard_starts,
        }
    }

    /// The run's symbols in `shard`, counted from `first`.
    fn in_shard(&self, shard: usize) -> &[u32] {
        &self.by_shard[self.shard_starts[shard] as usize..self.shard_starts[shard + 1] as usize]
    }

    fn index(&self, offset: u32) -> SymbolIndex {
        SymbolIndex::from_index(self.object.first_global + self.first + offset as usize)
    }
}

/// A name met in one shard, with what resolution made of it so far.
struct Named<'a> {
    global: GlobalSymbol<'a>,
    first: Position,
}

/// One shard's names, in the order met, and the outcomes of its symbols.
struct Shard<'a> {
    /// Indices into `names`, until [`resolve`] turns them into ids.
    table: HashTable<SymbolId>,
    names: Vec<Named<'a>>,
    /// Each symbol's index into `names`, run after run in the order of `Run::in_shard`.
    met: Vec<u32>,
    pending: Vec<(Position, u32)>,
    duplicates: Vec<(Position, Duplicate)>,
}

/// Resolves every command-line object's global symbols. `capacity` is the number of names
/// the tables should make room for (the members' too); `comdats` receives each COMDAT
/// signature's first object.
pub(super) fn resolve<'a>(
    objects: &'a [ObjectFile<'a>],
    capacity: usize,
    comdats: &mut FxHashMap<&'a [u8], ObjectId>,
) -> Loaded<'a> {
    // COMDAT groups first, in order: which copy a symbol's section belongs to decides
    // whether its definition counts.
    let mut discarded = IdVec::filled(Vec::new(), objects.len());
    let loaded: Vec<&'a ObjectFile<'a>> = objects.iter().filter(|o| !o.from_archive).collect();
    for o in &loaded {
        discarded[o.id] = discard_losing_comdats(o, comdats);
    }

    let runs: Vec<Run<'a>> = loaded
        .iter()
        .enumerate()
        .flat_map(|(ordinal, o)| {
            let count = o.global_symbols().len();
            (0..count)
                .step_by(SYMBOLS_PER_RUN)
                .map(move |first| (ordinal, *o, first, SYMBOLS_PER_RUN.min(count - first)))
        })
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(ordinal, o, first, len)| Run::new(o, ordinal, first, len))
        .collect();

    let object = |id: ObjectId| object_in(objects, None, id);
    let per_shard = capacity / SHARDS + capacity / (4 * SHARDS) + 16;
    let mut shards: Vec<Shard<'a>> = (0..SHARDS)
        .into_par_iter()
        .map(|shard| {
            let mut table = HashTable::with_capacity(per_shard);
            let mut names: Vec<Named<'a>> = Vec::with_capacity(per_shard);
            let mut met = Vec::new();
            let mut pending = Vec::new();
            let mut duplicates = Vec::new();
            for run in &runs {
                for &offset in run.in_shard(shard) {
                    let index = run.index(offset);
                    let sym = &run.object.symbols[index];
                    let at = position(run.ordinal, index);
                    let local = match table.entry(
                        run.hashes[offset as usize],
                        |&local: &SymbolId| names[local.index()].global.name == sym.name,
                        |&local| name_hash(names[local.index()].global.name),
                    ) {
                        Entry::Occupied(e) => *e.get(),
                        Entry::Vacant(e) => {
                            let local = SymbolId::from_index(names.len());
                            names.push(Named {
                                global: GlobalSymbol {
                                    name: sym.name,
                                    def: Definition::Undefined,
                                    strong_ref: false,
                                    late: false,
                                },
                                first: at,
                            });
                            e.insert(local);
                            local
                        }
                    };
                    met.push(local.0);
                    let global = &mut names[local.index()].global;
                    match resolve_symbol(
                        global,
                        run.object,
                        index,
                        &discarded[run.object.id],
                        object,
                    ) {
                        Outcome::Nothing => {}
                        Outcome::Pending => pending.push((at, local.0)),
                        Outcome::Duplicate(duplicate) => duplicates.push((at, duplicate)),
                    }
                }
            }
            Shard {
                table,
                names,
                met,
                pending,
                duplicates,
            }
        })
        .collect();

    // Ids in the order of first occurrences, as one object after the other would give them.
    let mut firsts: Vec<(Position, u32, u32)> = shards
        .iter()
        .enumerate()
        .flat_map(|(shard, s)| {
            s.names
                .iter()
                .enumerate()
                .map(move |(local, named)| (named.first, shard as u32, local as u32))
        })
        .collect();
    firsts.par_sort_unstable_by_key(|&(first, _, _)| first);
    let mut globals = IdVec::with_capacity(capacity);
    let mut ids: Vec<Vec<SymbolId>> = shards
        .iter()
        .map(|s| vec![SymbolId(0); s.names.len()])
        .collect();
    for &(_, shard, local) in &firsts {
        let named = &shards[shard as usize].names[local as usize];
        ids[shard as usize][local as usize] = globals.push(named.global.clone());
    }
    drop(firsts);
    shards.par_iter_mut().zip(&ids).for_each(|(shard, ids)| {
        for slot in shard.table.iter_mut() {
            *slot = ids[slot.index()];
        }
    });

    // Each object's ids, run by run: a run's symbols of a shard are the next ones that
    // shard met.
    let mut global_map = IdVec::filled(Vec::new(), objects.len());
    for o in &loaded {
        global_map[o.id] = vec![SymbolId(0); o.global_symbols().len()];
    }
    let mut met_before = vec![[0u32; SHARDS]; runs.len()];
    let mut met = [0u32; SHARDS];
    for (run, before) in runs.iter().zip(&mut met_before) {
        *before = met;
        for (shard, count) in met.iter_mut().enumerate() {
            *count += run.in_shard(shard).len() as u32;
        }
    }
    let mut chunks: Vec<&mut [SymbolId]> = Vec::with_capacity(runs.len());
    for (o, map) in objects.iter().zip(global_map.iter_mut()) {
        if !o.from_archive {
            chunks.extend(map.chunks_mut(SYMBOLS_PER_RUN));
        }
    }
    chunks
        .into_par_iter()
        .zip(&runs)
        .zip(&met_before)
        .for_each(|((map, run), before)| {
            for (shard, s) in shards.iter().enumerate() {
                let met = &s.met[before[shard] as usize..];
                for (&offset, &local) in run.in_shard(shard).iter().zip(met) {
                    map[offset as usize] = ids[shard][local as usize];
                }
            }
        });

    let mut pending: Vec<(Position, SymbolId)> = shards
        .iter()
        .zip(&ids)
        .flat_map(|(s, ids)| {
            s.pending
                .iter()
                .map(|&(at, local)| (at, ids[local as usize]))
        })
        .collect();
    pending.sort_unstable_by_key(|&(at, _)| at);
    let mut duplicates: Vec<(Position, Duplicate)> = shards
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.duplicates))
        .collect();
    duplicates.sort_by_key(|(at, _)| *at);

    Loaded {
        globals,
        names: shards.into_iter().map(|s| s.table).collect(),
        global_map,
        discarded,
        pending: pending.into_iter().map(|(_, id)| id).collect(),
        duplicates: duplicates.into_iter().map(|(_, d)| d).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use object::SectionKind;

    use super::*;
    use crate::test_objects::{TestObject, parse_all};

    /// The reference: each command-line object's symbols resolved one after the other.
    fn one_after_another<'a>(objects: &'a [ObjectFile<'a>]) -> Loaded<'a> {
        let mut comdats = FxHashMap::default();
        let mut ids: HashMap<&[u8], SymbolId> = HashMap::new();
        let mut loaded = Loaded {
            globals: IdVec::new(),
            names: Vec::new(),
            global_map: IdVec::filled(Vec::new(), objects.len()),
            discarded: IdVec::filled(Vec::new(), objects.len()),
            pending: Vec::new(),
            duplicates: Vec::new(),
        };
        for o in objects.iter().filter(|o| !o.from_archive) {
            let discarded = discard_losing_comdats(o, &mut comdats);
            for (index, sym) in o.symbols.iter_ids().skip(o.first_global) {
                let id = *ids.entry(sym.name).or_insert_with(|| {
                    loaded.globals.push(GlobalSymbol {
                        name: sym.name,
                        def: Definition::Undefined,
                        strong_ref: false,
                        late: false,
                    })
                });
                loaded.global_map[o.id].push(id);
                let object = |id: ObjectId| &objects[id.index()];
                match resolve_symbol(&mut loaded.globals[id], o, index, &discarded, object) {
                    Outcome::Nothing => {}
                    Outcome::Pending => loaded.pending.push(id),
                    Outcome::Duplicate(duplicate) => loaded.duplicates.push(duplicate),
                }
            }
            loaded.discarded[o.id] = discarded;
        }
        loaded
    }

    type Seen<'a> = Vec<(&'a [u8], Definition, bool)>;

    fn seen<'a>(loaded: &Loaded<'a>) -> Seen<'a> {
        let globals = loaded.globals.iter();
        globals.map(|g| (g.name, g.def, g.strong_ref)).collect()
    }

    fn duplicates(loaded: &Loaded<'_>) -> Vec<(String, String, String)> {
        let duplicates = loaded.duplicates.iter();
        duplicates
            .map(|d| (d.name.clone(), d.first.clone(), d.second.clone()))
            .collect()
    }

    /// Objects whose names recur across runs, shards and objects in every way resolution
    /// distinguishes: strong and weak definitions, commons, strong and weak references, a
    /// duplicate, and an archive member that takes no part.
    fn inputs() -> Vec<(&'static str, bool, Vec<u8>)> {
        let names = 3 * SYMBOLS_PER_RUN;
        let mut big = TestObject::new();
        let text = big.section(".text", SectionKind::Text, &[0; 64]);
        for i in 0..names {
            match i % 5 {
                0 => drop(big.define(&format!("f{i}"), text, 0, true)),
                1 => drop(big.undefined(&format!("f{i}"), i % 2 == 0)),
                2 => drop(big.common(&format!("f{i}"), 8, 8)),
                3 => drop(big.undefined(&format!("f{}", i * 7 % names), false)),
                _ => drop(big.define(&format!("f{i}"), text, 8, false)),
            }
        }
        let mut later = TestObject::new();
        let text = later.section(".text", SectionKind::Text, &[0; 64]);
        for i in (0..names).rev().step_by(3) {
            match i % 4 {
                0 => drop(later.define(&format!("f{i}"), text, 0, false)),
                1 => drop(later.common(&format!("f{i}"), 16, 8)),
                2 => drop(later.undefined(&format!("g{i}"), false)),
                _ => drop(later.define(&format!("f{i}"), text, 0, true)),
            }
        }
        let mut member = TestObject::new();
        let text = member.section(".text", SectionKind::Text, &[0; 8]);
        member.define("g2", text, 0, false);
        vec![
            ("big.o", false, big.bytes()),
            ("member.o", true, member.bytes()),
            ("later.o", false, later.bytes()),
        ]
    }

    #[test]
    fn shards_give_what_one_object_after_another_gives() {
        let inputs = inputs();
        let objects = parse_all(&inputs);
        let expected = one_after_another(&objects);
        let got = resolve(&objects, 0, &mut FxHashMap::default());

        assert!(expected.globals.len() > SYMBOLS_PER_RUN);
        assert_eq!(seen(&got), seen(&expected));
        assert!(got.global_map == expected.global_map);
        assert!(got.discarded == expected.discarded);
        assert_eq!(got.pending, expected.pending);
        assert!(!expected.duplicates.is_empty());
        assert_eq!(duplicates(&got), duplicates(&expected));
        for (id, g) in got.globals.iter_ids() {
            let hash = name_hash(g.name);
            let table = &got.names[shard_of(hash)];
            assert_eq!(table.find(hash, |&other| other == id), Some(&id));
        }
    }
}
