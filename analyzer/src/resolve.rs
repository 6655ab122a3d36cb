//! Symbol resolution with static-linker semantics.
//!
//! Every command-line object is loaded; archive members are loaded only when they define a
//! symbol some loaded object references strongly. Lazy definitions are indexed over all
//! archives before anything is fetched, so command-line order does not matter (as in lld),
//! and objects are added before any member is fetched, so a definition in a later object
//! never loses to an archive member. COMDAT groups keep the first copy loaded.

use std::hash::BuildHasher as _;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use object::elf;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use crate::error::{Duplicate, Error, Result, display_name};
use crate::id::{IdVec, Idx};
use crate::object::{
    InputSectionId, InputSections, ObjectFile, ObjectId, SectionId, SymbolIndex, SymbolPlace,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymbolId(pub u32);
crate::id::u32_idx!(SymbolId);

/// Where a global symbol's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Definition {
    Undefined,
    /// Defined in a section or absolute, by symbol `index` of `object`.
    Defined {
        object: ObjectId,
        index: SymbolIndex,
    },
    /// A common symbol; the linker allocates it in `.bss`.
    Common {
        object: ObjectId,
        index: SymbolIndex,
    },
    /// Provided by the linker from the layout (`_end`, `__start_SEC`, ...).
    Linker,
}

#[derive(Debug, Clone)]
pub struct GlobalSymbol<'a> {
    pub name: &'a [u8],
    pub def: Definition,
    /// Some loaded object references it without `STB_WEAK`.
    pub strong_ref: bool,
    /// Declared for the object [attached](SymbolDb::attach) after resolution, which may
    /// define it: until then, what the other objects define is only its default.
    pub late: bool,
}

/// What a symbol index inside one object refers to after resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymbolRef {
    Local {
        object: ObjectId,
        index: SymbolIndex,
    },
    Global(SymbolId),
}

/// Resolved symbols and the set of loaded objects.
pub struct SymbolDb<'a> {
    objects: &'a [ObjectFile<'a>],
    /// The object attached after resolution, whose id follows `objects`.
    attached: Option<&'a ObjectFile<'a>>,
    pub globals: IdVec<SymbolId, GlobalSymbol<'a>>,
    /// The global symbols by name: ids only, each hashed and compared by its `globals` entry's
    /// name, so a table of hundreds of thousands of names holds 4 bytes a slot, not a copy of
    /// each name's slice.
    names: HashTable<SymbolId>,
    /// Per object, the `SymbolId` of each global symbol index, offset by `first_global`.
    global_map: IdVec<ObjectId, Vec<SymbolId>>,
    /// Loaded objects in command-line order (members at their archive's position).
    pub live: Vec<ObjectId>,
    is_live: IdVec<ObjectId, bool>,
    /// Each object's range of input section ids, the attached object's included.
    sections: InputSections,
    /// Sections dropped because another object's COMDAT group won.
    discarded: IdVec<InputSectionId, bool>,
}

/// Names the linker defines when they are referenced but nobody else defines them.
pub fn is_linker_defined(name: &[u8]) -> bool {
    const FIXED: &[&[u8]] = &[
        b"__bss_start",
        b"_end",
        b"end",
        b"_etext",
        b"etext",
        b"__etext",
        b"_edata",
        b"edata",
        b"__ehdr_start",
        b"__executable_start",
        b"__init_array_start",
        b"__init_array_end",
        b"__fini_array_start",
        b"__fini_array_end",
        b"__preinit_array_start",
        b"__preinit_array_end",
        b"_GLOBAL_OFFSET_TABLE_",
        // The page tables a virt image's runtime asks the linker for (0 where none are made).
        b"__uniklink_page_tables",
    ];
    FIXED.contains(&name) || start_stop_section(name).is_some()
}

/// For `__start_SEC`/`__stop_SEC`, the section name `SEC` (only C identifiers qualify).
pub fn start_stop_section(name: &[u8]) -> Option<&[u8]> {
    let rest = name
        .strip_prefix(b"__start_")
        .or_else(|| name.strip_prefix(b"__stop_"))?;
    let ident = !rest.is_empty()
        && !rest[0].is_ascii_digit()
        && rest.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_');
    ident.then_some(rest)
}

impl<'a> SymbolDb<'a> {
    /// Resolves symbols. `required` names (the entry, `--keep` symbols) are treated as strong
    /// references, so they pull archive members like `ld -u`.
    pub fn resolve(objects: &'a [ObjectFile<'a>], required: &[&'a [u8]]) -> Result<Self> {
        Self::resolve_declaring(objects, required, &[])
    }

    /// Resolves symbols, declaring the names the object [attached](SymbolDb::attach) later
    /// may define (the weave's glue, whose contents depend on the graph of the others).
    pub fn resolve_declaring(
        objects: &'a [ObjectFile<'a>],
        required: &[&'a [u8]],
        late: &[&'a [u8]],
    ) -> Result<Self> {
        // Sized up front: growing tables of hundreds of thousands of names rehashes them.
        let globals_of = |from_archive: bool| -> usize {
            objects
                .iter()
                .filter(|o| o.from_archive == from_archive)
                .map(|o| o.symbols.len().saturating_sub(o.first_global))
                .sum()
        };
        let mut lazy: FxHashMap<&'a [u8], ObjectId> =
            FxHashMap::with_capacity_and_hasher(globals_of(true), Default::default());
        for o in objects.iter().filter(|o| o.from_archive) {
            for sym in o.global_symbols() {
                // A common symbol in a member satisfies an undefined reference, as in the
                // archive index ld and lld use; it never replaces another common, though.
                let defines = sym.place() != SymbolPlace::Undefined;
                if defines && sym.bind != elf::STB_LOCAL {
                    lazy.entry(sym.name).or_insert(o.id);
                }
            }
        }

        // Room for every name resolution can meet: the loaded objects', the archive members'
        // (of which only some load) and the declared ones. Too few would double the table.
        let capacity = globals_of(false) + globals_of(true) + late.len() + required.len();
        let mut db = SymbolDb {
            objects,
            attached: None,
            globals: IdVec::with_capacity(capacity),
            names: HashTable::with_capacity(capacity),
            global_map: IdVec::filled(Vec::new(), objects.len()),
            live: Vec::new(),
            is_live: IdVec::filled(false, objects.len()),
            sections: InputSections::new(objects),
            discarded: IdVec::new(),
        };
        db.discarded = db.sections.table(false);
        let mut state = ResolveState::default();
        for o in objects.iter().filter(|o| !o.from_archive) {
            db.add_object(o, &mut state);
        }
        for name in late {
            let id = db.intern(name);
            db.globals[id].late = true;
        }
        for name in required {
            let id = db.intern(name);
            db.globals[id].strong_ref = true;
            state.pending.push(id);
        }
        while let Some(id) = state.pending.pop() {
            let g = &db.globals[id];
            if g.def != Definition::Undefined || !g.strong_ref {
                continue;
            }
            if let Some(&member) = lazy.get(g.name)
                && !db.is_live[member]
            {
                db.add_object(&objects[member.index()], &mut state);
            }
        }
        if !state.duplicates.is_empty() {
            return Err(Error::Duplicates(state.duplicates));
        }

        // The sections `__start_SEC`/`__stop_SEC` references ask for are a handful: find
        // those among the loaded sections rather than hash every section's name.
        let wanted: FxHashSet<&[u8]> = db
            .globals
            .iter()
            .filter(|g| g.def == Definition::Undefined)
            .filter_map(|g| start_stop_section(g.name))
            .collect();
        let present: FxHashSet<&[u8]> = if wanted.is_empty() {
            FxHashSet::default()
        } else {
            db.live
                .iter()
                .flat_map(|&o| db.object(o).sections.iter().map(|s| s.name))
                .filter(|name| wanted.contains(name))
                .collect()
        };
        for g in db.globals.iter_mut() {
            if g.def == Definition::Undefined && is_linker_defined(g.name) {
                let provided = match start_stop_section(g.name) {
                    Some(sec) => present.contains(sec),
                    None => true,
                };
                if provided {
                    g.def = Definition::Linker;
                }
            }
        }
        db.live.sort_unstable();
        Ok(db)
    }

    fn intern(&mut self, name: &'a [u8]) -> SymbolId {
        let globals = &self.globals;
        match self.names.entry(
            name_hash(name),
            |&id| globals[id].name == name,
            |&id| name_hash(globals[id].name),
        ) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let id = self.globals.push(GlobalSymbol {
                    name,
                    def: Definition::Undefined,
                    strong_ref: false,
                    late: false,
                });
                e.insert(id);
                id
            }
        }
    }

    /// Adds the object made after resolution, with the id that follows the others'. Its
    /// definitions override the defaults of the names it was declared with, and must be
    /// among them: references to any other name were resolved without it. Its references
    /// fetch nothing, so what it needs must have been required at resolution.
    pub fn attach(&mut self, o: &'a ObjectFile<'a>) -> Result<()> {
        let misplaced = |reason: &str| Error::Malformed {
            object: o.name.clone(),
            reason: reason.to_owned(),
        };
        if self.attached.is_some() || o.id.index() != self.objects.len() {
            return Err(misplaced("attached after resolution out of order"));
        }
        if let Some(sym) = o.global_symbols().iter().find(|sym| {
            sym.place() != SymbolPlace::Undefined
                && self.lookup(sym.name).is_none_or(|g| !self.global(g).late)
        }) {
            return Err(misplaced(&format!(
                "defines `{}`, which was not declared before resolution",
                display_name(sym.name)
            )));
        }
        self.attached = Some(o);
        self.is_live.push(false);
        self.global_map.push(Vec::new());
        self.sections.push(o);
        self.discarded.resize(self.sections.len(), false);
        let mut state = ResolveState::default();
        self.add_object(o, &mut state);
        if !state.duplicates.is_empty() {
            return Err(Error::Duplicates(state.duplicates));
        }
        Ok(())
    }

    fn add_object(&mut self, o: &'a ObjectFile<'a>, state: &mut ResolveState<'a>) {
        let (objects, attached) = (self.objects, self.attached);
        let object = |id: ObjectId| object_in(objects, attached, id);
        let id = o.id;
        self.is_live[id] = true;
        self.live.push(id);

        let mut any_discarded = false;
        for g in o.groups.iter().filter(|g| g.comdat) {
            if state.comdats.entry(g.signature).or_insert(id) != &id {
                any_discarded = true;
                for &index in &g.sections {
                    let section = self.sections.id(SectionId { object: id, index });
                    self.discarded[section] = true;
                }
            }
        }

        let mut map = Vec::with_capacity(o.symbols.len() - o.first_global);
        for (index, sym) in o.symbols.iter_ids().skip(o.first_global) {
            let in_discarded = any_discarded
                && matches!(sym.place(), SymbolPlace::Section(section)
                    if self.discarded[self.sections.id(SectionId { object: id, index: section })]);
            let sid = self.intern(sym.name);
            map.push(sid);
            let g = &mut self.globals[sid];
            match sym.place() {
                // A definition inside a losing COMDAT copy is satisfied by the winning copy.
                _ if in_discarded => {}
                SymbolPlace::Undefined => {
                    if !sym.is_weak() {
                        g.strong_ref = true;
                        if g.def == Definition::Undefined {
                            state.pending.push(sid);
                        }
                    }
                }
                SymbolPlace::Section(_) | SymbolPlace::Absolute => match g.def {
                    Definition::Undefined | Definition::Linker => {
                        g.def = Definition::Defined { object: id, index };
                    }
                    Definition::Common { .. } => {
                        if !sym.is_weak() {
                            g.def = Definition::Defined { object: id, index };
                        }
                    }
                    Definition::Defined {
                        object: other,
                        index: other_index,
                    } => {
                        let other_weak = object(other).symbols[other_index].is_weak();
                        if sym.is_weak() {
                        } else if other_weak {
                            g.def = Definition::Defined { object: id, index };
                        } else {
                            let first = object(other);
                            state.duplicates.push(Duplicate {
                                name: display_name(sym.name),
                                first: located(first, other_index),
                                second: located(o, index),
                            });
                        }
                    }
                },
                SymbolPlace::Common => match g.def {
                    Definition::Undefined | Definition::Linker => {
                        g.def = Definition::Common { object: id, index };
                    }
                    Definition::Common {
                        object: other,
                        index: other_index,
                    } => {
                        if sym.size > object(other).symbols[other_index].size {
                            g.def = Definition::Common { object: id, index };
                        }
                    }
                    Definition::Defined {
                        object: other,
                        index: other_index,
                    } => {
                        if object(other).symbols[other_index].is_weak() {
                            g.def = Definition::Common { object: id, index };
                        }
                    }
                },
            }
        }
        self.global_map[id] = map;
    }

    pub fn is_live(&self, object: ObjectId) -> bool {
        self.is_live[object]
    }

    pub fn object(&self, object: ObjectId) -> &'a ObjectFile<'a> {
        object_in(self.objects, self.attached, object)
    }

    /// Every object, loaded or not, in id order.
    pub fn objects(&self) -> impl Iterator<Item = &'a ObjectFile<'a>> + use<'a> {
        self.objects.iter().chain(self.attached)
    }

    pub fn object_count(&self) -> usize {
        self.objects.len() + usize::from(self.attached.is_some())
    }

    /// True when the section lost its COMDAT group to another object's copy.
    pub fn is_discarded(&self, section: SectionId) -> bool {
        self.sections
            .get(section)
            .is_some_and(|section| self.discarded[section])
    }

    /// Each object's range of input section ids.
    pub fn input_sections(&self) -> &InputSections {
        &self.sections
    }

    pub fn lookup(&self, name: &[u8]) -> Option<SymbolId> {
        self.names
            .find(name_hash(name), |&id| self.globals[id].name == name)
            .copied()
    }

    pub fn global(&self, id: SymbolId) -> &GlobalSymbol<'a> {
        &self.globals[id]
    }

    /// Resolves symbol `index` of a loaded object.
    pub fn symbol_ref(&self, object: ObjectId, index: SymbolIndex) -> SymbolRef {
        let o = self.object(object);
        match index.index().checked_sub(o.first_global) {
            Some(i) => SymbolRef::Global(self.global_map[object][i]),
            None => SymbolRef::Local { object, index },
        }
    }

    /// The section a reference resolves to, if it resolves to a section at all.
    pub fn target_section(&self, object: ObjectId, index: SymbolIndex) -> Option<SectionId> {
        let (object, index) = match self.symbol_ref(object, index) {
            SymbolRef::Local { object, index } => (object, index),
            SymbolRef::Global(id) => match self.globals[id].def {
                Definition::Defined { object, index } => (object, index),
                _ => return None,
            },
        };
        match self.object(object).symbols[index].place() {
            SymbolPlace::Section(s) => Some(SectionId { object, index: s }),
            _ => None,
        }
    }

    /// Name of symbol `index` in `object` for messages (section symbols take the section name).
    pub fn symbol_name(&self, object: ObjectId, index: SymbolIndex) -> String {
        let o = self.object(object);
        let sym = &o.symbols[index];
        match sym.place() {
            SymbolPlace::Section(s) if sym.is_section() => o.section_name(s),
            _ => display_name(sym.name),
        }
    }
}

/// The hash of a global symbol's name in [`SymbolDb`]'s table.
fn name_hash(name: &[u8]) -> u64 {
    FxBuildHasher.hash_one(name)
}

/// Object ids run through `objects`, then the attached object.
fn object_in<'a>(
    objects: &'a [ObjectFile<'a>],
    attached: Option<&'a ObjectFile<'a>>,
    id: ObjectId,
) -> &'a ObjectFile<'a> {
    match objects.get(id.index()) {
        Some(o) => o,
        None => attached
            .filter(|o| o.id == id)
            .expect("object ids come from the objects resolved or attached"),
    }
}

/// `object` or `object [file:line]` for the definition of symbol `index`.
fn located(o: &ObjectFile<'_>, index: SymbolIndex) -> String {
    let sym = &o.symbols[index];
    let source = match sym.place() {
        SymbolPlace::Section(section) => crate::debug::source_line(o, section, sym.value),
        _ => None,
    };
    match source {
        Some(source) => format!("{} [{source}]", o.name),
        None => o.name.clone(),
    }
}

#[derive(Default)]
struct ResolveState<'a> {
    comdats: FxHashMap<&'a [u8], ObjectId>,
    pending: Vec<SymbolId>,
    duplicates: Vec<Duplicate>,
}

#[cfg(test)]
mod tests {
    use object::SectionKind;

    use super::*;
    use crate::input::InputId;
    use crate::object::parse;
    use crate::test_objects::{TestObject, parse_all};

    /// An object defining `defines` in .text and referencing `refs` (`weak_refs` weakly).
    fn object(defines: &[&str], refs: &[&str], weak_refs: &[&str]) -> Vec<u8> {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 64]);
        for d in defines {
            o.define(d, text, 0, false);
        }
        for (i, r) in refs.iter().enumerate() {
            let s = o.undefined(r, false);
            o.refer(text, 8 * i as u64, s);
        }
        for (i, r) in weak_refs.iter().enumerate() {
            let s = o.undefined(r, true);
            o.refer(text, 32 + 8 * i as u64, s);
        }
        o.bytes()
    }

    fn live_names(inputs: &[(&str, bool, Vec<u8>)]) -> Vec<String> {
        let objects = parse_all(inputs);
        let db = SymbolDb::resolve(&objects, &[b"_start"]).unwrap();
        let mut names: Vec<String> = db.live.iter().map(|o| db.object(*o).name.clone()).collect();
        names.sort();
        names
    }

    #[test]
    fn an_attached_object_overrides_weak_defaults_of_declared_names_only() {
        let main = object(&["_start"], &["param"], &[]);
        let mut weak = TestObject::new();
        let data = weak.section(".rodata", SectionKind::ReadOnlyData, &[0; 8]);
        weak.define("param", data, 0, true);
        weak.define("strong", data, 4, false);
        let inputs = [
            ("main.o", false, main),
            ("defaults.o", false, weak.bytes()),
            ("glue.o", false, object(&["param"], &[], &[])),
            ("bad-glue.o", false, object(&["undeclared"], &[], &[])),
            ("clash-glue.o", false, object(&["strong"], &[], &[])),
        ];
        let objects = parse_all(&inputs[..2]);
        let attached = |input: usize, id: u32| {
            let (name, _, bytes) = &inputs[input];
            parse(ObjectId(id), InputId(id), (*name).to_owned(), false, bytes).unwrap()
        };
        let resolve =
            || SymbolDb::resolve_declaring(&objects, &[b"_start"], &[b"param", b"strong"]).unwrap();
        let defined_in = |db: &SymbolDb<'_>, name: &str| match db
            .global(db.lookup(name.as_bytes()).unwrap())
            .def
        {
            Definition::Defined { object, .. } => db.object(object).name.clone(),
            other => panic!("{name}: {other:?}"),
        };

        let mut db = resolve();
        assert!(db.global(db.lookup(b"param").unwrap()).late);
        assert_eq!(defined_in(&db, "param"), "defaults.o");
        let glue = attached(2, 2);
        db.attach(&glue).unwrap();
        assert_eq!(defined_in(&db, "param"), "glue.o");
        assert!(db.is_live(ObjectId(2)));
        assert_eq!(db.object_count(), 3);

        let bad = attached(3, 2);
        let error = resolve().attach(&bad).unwrap_err().to_string();
        assert!(
            error.contains("defines `undeclared`, which was not declared"),
            "{error}"
        );
        let clash = attached(4, 2);
        let error = resolve().attach(&clash).unwrap_err();
        assert!(matches!(error, Error::Duplicates(_)), "{error}");
        let misplaced = attached(2, 3);
        let misplaced = resolve().attach(&misplaced).unwrap_err().to_string();
        assert!(misplaced.contains("out of order"), "{misplaced}");
    }

    #[test]
    fn archive_extraction_ignores_command_line_order() {
        let main = (
            "main.o",
            false,
            object(&["_start"], &["foo"], &["weak_only"]),
        );
        let foo = ("lib.a(foo.o)", true, object(&["foo"], &["bar"], &[]));
        let bar = ("lib.a(bar.o)", true, object(&["bar"], &[], &[]));
        let unused = (
            "lib.a(unused.o)",
            true,
            object(&["unused"], &["missing"], &[]),
        );
        let weak = ("lib.a(weak.o)", true, object(&["weak_only"], &[], &[]));
        let expected = vec!["lib.a(bar.o)", "lib.a(foo.o)", "main.o"];
        let forward = [
            main.clone(),
            foo.clone(),
            bar.clone(),
            unused.clone(),
            weak.clone(),
        ];
        let backward = [weak, unused, bar, foo, main];
        assert_eq!(live_names(&forward), expected);
        assert_eq!(live_names(&backward), expected);
    }

    #[test]
    fn objects_win_over_archive_members_regardless_of_order() {
        let main = ("main.o", false, object(&["_start"], &["foo"], &[]));
        let member = ("lib.a(foo.o)", true, object(&["foo"], &[], &[]));
        let late = ("late.o", false, object(&["foo"], &[], &[]));
        assert_eq!(live_names(&[main, member, late]), vec!["late.o", "main.o"]);
    }

    #[test]
    fn common_symbols_in_members_satisfy_references() {
        let mut member = TestObject::new();
        member.common("shared_buffer", 64, 8);
        let main = (
            "main.o",
            false,
            object(&["_start"], &["shared_buffer"], &[]),
        );
        let inputs = [main, ("lib.a(buffer.o)", true, member.bytes())];
        assert_eq!(live_names(&inputs), vec!["lib.a(buffer.o)", "main.o"]);
    }

    #[test]
    fn required_symbols_pull_members() {
        let inputs = [("lib.a(start.o)", true, object(&["_start"], &[], &[]))];
        assert_eq!(live_names(&inputs), vec!["lib.a(start.o)"]);
    }

    #[test]
    fn duplicate_strong_definitions_name_both_objects() {
        let inputs = [
            ("a.o", false, object(&["_start", "dup"], &[], &[])),
            ("b.o", false, object(&["dup"], &[], &[])),
        ];
        let objects = parse_all(&inputs);
        let Err(err) = SymbolDb::resolve(&objects, &[]) else {
            panic!("duplicate accepted");
        };
        assert_eq!(
            err.to_string(),
            "duplicate symbol `dup`: defined in a.o and b.o"
        );
    }

    #[test]
    fn strong_beats_weak_and_common_merges_to_the_largest() {
        let mut weak = TestObject::new();
        let text = weak.section(".text", SectionKind::Text, &[0; 8]);
        weak.define("f", text, 0, true);
        weak.common("c", 4, 4);
        let mut strong = TestObject::new();
        let text = strong.section(".text", SectionKind::Text, &[0; 8]);
        strong.define("f", text, 4, false);
        strong.common("c", 16, 8);
        let inputs = [
            ("weak.o", false, weak.bytes()),
            ("strong.o", false, strong.bytes()),
        ];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[]).unwrap();
        let f = db.global(db.lookup(b"f").unwrap());
        assert!(matches!(
            f.def,
            Definition::Defined {
                object: ObjectId(1),
                ..
            }
        ));
        let c = db.global(db.lookup(b"c").unwrap());
        let Definition::Common { object, index } = c.def else {
            panic!("common expected, got {:?}", c.def);
        };
        assert_eq!(db.object(object).symbols[index].size, 16);
    }

    #[test]
    fn comdat_groups_keep_the_first_copy() {
        let copy = || {
            let mut o = TestObject::new();
            let text = o.section(".text.inl", SectionKind::Text, &[0; 8]);
            let inl = o.define("inl", text, 0, false);
            o.comdat(inl, vec![text]);
            o.bytes()
        };
        let inputs = [("a.o", false, copy()), ("b.o", false, copy())];
        let objects = parse_all(&inputs);
        let db = SymbolDb::resolve(&objects, &[]).unwrap();
        let inl = db.global(db.lookup(b"inl").unwrap());
        assert!(matches!(
            inl.def,
            Definition::Defined {
                object: ObjectId(0),
                ..
            }
        ));
        let section = |object| {
            let o = db.object(object);
            let (index, _) = o
                .sections
                .iter_ids()
                .find(|(_, s)| s.name == b".text.inl")
                .unwrap();
            SectionId { object, index }
        };
        assert!(!db.is_discarded(section(ObjectId(0))));
        assert!(db.is_discarded(section(ObjectId(1))));
    }

    #[test]
    fn linker_defined_names() {
        assert!(is_linker_defined(b"__init_array_start"));
        assert!(is_linker_defined(b"__start_my_section"));
        assert!(!is_linker_defined(b"__start_.text"));
        assert!(!is_linker_defined(b"printf"));
        assert_eq!(start_stop_section(b"__stop_set"), Some(&b"set"[..]));
    }
}
