//! Library-OS components as the analyzer sees them, and attribution: which component (or the
//! app, the Rust runtime crates, a C archive) produced each input section.
//!
//! A section belongs to the crate named by its demangled symbols (`unik_net::...`), which
//! survives LTO and codegen-unit merging; failing that, to the crate of its rlib/staticlib
//! member (`<crate>-<hash>.<cgu>.rcgu.o`); failing that, to the C archive it came from.
//! Dependency crates map to the component that depends on them through the caller's crate
//! table.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::id::IdVec;
use crate::input::{InputId, Inputs};
use crate::object::{ObjectFile, ObjectId, SectionId, SectionIndex, SymbolPlace};
use crate::resolve::SymbolDb;

/// Index into [`Components::defs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId(pub u32);
crate::id::u32_idx!(ComponentId);

/// A parameter as the analyzer checks it: the glue object defines `size` bytes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDef {
    pub name: String,
    pub size: u64,
}

/// One component with the manifest's decision about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDef {
    pub name: String,
    pub init: Option<String>,
    pub depends: Vec<String>,
    /// The manifest (or profile) requires it: live even when unreached.
    pub required: bool,
    /// The manifest forbids it: reaching it is an error.
    pub forbidden: bool,
    /// Rust crates, or module paths inside a crate (`unik_rt::heap`), that are this
    /// component, not its dependencies.
    pub crates: Vec<String>,
    /// Unmangled symbols (assembly entry points, `#[no_mangle]` functions) that are this
    /// component's; one ending in `*` names every symbol with that prefix.
    pub symbols: Vec<String>,
    /// For a C component, the archive holding its code.
    pub archive: Option<PathBuf>,
    pub params: Vec<ParamDef>,
}

/// The symbol carrying a resolved parameter, defined by the glue object.
pub fn param_symbol(component: &str, param: &str) -> String {
    format!("__uniklink_param_{component}_{param}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    #[error("component `{0}` is declared twice")]
    Duplicate(String),
    #[error("component `{component}` depends on `{missing}`, which is not a declared component")]
    MissingDependency { component: String, missing: String },
    #[error("components depend on each other in a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
}

/// A validated set of components: unique names, dependencies that exist, no cycles.
#[derive(Debug, Clone)]
pub struct Components {
    pub defs: IdVec<ComponentId, ComponentDef>,
    /// Every component, dependencies before dependents; independent ones by name.
    order: Vec<ComponentId>,
}

impl Components {
    pub fn new(mut defs: Vec<ComponentDef>) -> Result<Components, ComponentError> {
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = defs.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ComponentError::Duplicate(w[0].name.clone()));
        }
        let defs: IdVec<ComponentId, ComponentDef> = defs.into_iter().collect();
        let index: FxHashMap<&str, ComponentId> = defs
            .iter_ids()
            .map(|(id, d)| (d.name.as_str(), id))
            .collect();
        let mut deps = IdVec::with_capacity(defs.len());
        for d in &defs {
            let mut ids = Vec::new();
            for dep in &d.depends {
                match index.get(dep.as_str()) {
                    Some(&id) => ids.push(id),
                    None => {
                        return Err(ComponentError::MissingDependency {
                            component: d.name.clone(),
                            missing: dep.clone(),
                        });
                    }
                }
            }
            deps.push(ids);
        }
        let order = topological(&defs, &deps)?;
        Ok(Components { defs, order })
    }

    pub fn id(&self, name: &str) -> Option<ComponentId> {
        self.defs.ids().find(|&id| self.defs[id].name == name)
    }

    pub fn def(&self, id: ComponentId) -> &ComponentDef {
        &self.defs[id]
    }

    pub fn ids(&self) -> impl Iterator<Item = ComponentId> + use<> {
        self.defs.ids()
    }

    /// All components, each after the components it depends on.
    pub fn dependency_order(&self) -> &[ComponentId] {
        &self.order
    }

    pub fn dependencies(&self, id: ComponentId) -> impl Iterator<Item = ComponentId> + '_ {
        self.def(id).depends.iter().filter_map(|name| self.id(name))
    }
}

/// Depth-first order with cycle detection; children and roots visited by name so the order
/// is deterministic.
fn topological(
    defs: &IdVec<ComponentId, ComponentDef>,
    deps: &IdVec<ComponentId, Vec<ComponentId>>,
) -> Result<Vec<ComponentId>, ComponentError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    struct Walk<'d> {
        defs: &'d IdVec<ComponentId, ComponentDef>,
        deps: &'d IdVec<ComponentId, Vec<ComponentId>>,
        marks: IdVec<ComponentId, Mark>,
        stack: Vec<ComponentId>,
        order: Vec<ComponentId>,
    }
    impl Walk<'_> {
        fn visit(&mut self, id: ComponentId) -> Result<(), ComponentError> {
            match self.marks[id] {
                Mark::Done => return Ok(()),
                Mark::Active => {
                    let start = self.stack.iter().position(|&s| s == id).unwrap_or(0);
                    let mut cycle: Vec<String> = self.stack[start..]
                        .iter()
                        .map(|&s| self.defs[s].name.clone())
                        .collect();
                    cycle.push(self.defs[id].name.clone());
                    return Err(ComponentError::Cycle(cycle));
                }
                Mark::New => {}
            }
            self.marks[id] = Mark::Active;
            self.stack.push(id);
            let mut children = self.deps[id].clone();
            children.sort();
            for child in children {
                self.visit(child)?;
            }
            self.stack.pop();
            self.marks[id] = Mark::Done;
            self.order.push(id);
            Ok(())
        }
    }
    let mut walk = Walk {
        defs,
        deps,
        marks: IdVec::filled(Mark::New, defs.len()),
        stack: Vec::new(),
        order: Vec::with_capacity(defs.len()),
    };
    for id in defs.ids() {
        walk.visit(id)?;
    }
    Ok(walk.order)
}

/// Who produced an input section.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Component(ComponentId),
    /// `core`, `alloc`, `compiler_builtins` and the other sysroot crates.
    Runtime,
    /// A dependency crate shared by several components.
    Deps,
    /// A C archive that is not a component, by file name (`libc.a`).
    Archive(String),
    /// Everything else: the application's crates and objects.
    App,
}

impl Owner {
    pub fn component(&self) -> Option<ComponentId> {
        match self {
            Owner::Component(id) => Some(*id),
            _ => None,
        }
    }
}

/// Owners for the crates that are not components themselves.
#[derive(Debug, Clone, Default)]
pub struct CrateOwners {
    /// Crate name (underscores) or module path → the component it belongs to or that depends
    /// on it, or `None` when several do.
    pub dependencies: BTreeMap<String, Option<String>>,
}

const RUNTIME_CRATES: &[&str] = &[
    "core",
    "alloc",
    "compiler_builtins",
    "std",
    "panic_abort",
    "rustc_std_workspace_core",
];

/// The owner of every section of every loaded object (`.eh_frame` excepted).
pub struct Attribution {
    owners: FxHashMap<SectionId, Owner>,
}

impl Attribution {
    pub fn compute(
        inputs: &Inputs,
        db: &SymbolDb<'_>,
        components: &Components,
        crates: &CrateOwners,
    ) -> Attribution {
        Self::compute_for(inputs, db, components, crates, &db.live)
    }

    /// The owners of the sections of `objects` only.
    pub fn compute_for(
        inputs: &Inputs,
        db: &SymbolDb<'_>,
        components: &Components,
        crates: &CrateOwners,
        objects: &[ObjectId],
    ) -> Attribution {
        let mut by_crate: FxHashMap<&str, Owner> = FxHashMap::default();
        for name in RUNTIME_CRATES {
            by_crate.insert(name, Owner::Runtime);
        }
        for (dep, owner) in &crates.dependencies {
            let owner = match owner.as_deref().and_then(|c| components.id(c)) {
                Some(id) => Owner::Component(id),
                None => Owner::Deps,
            };
            by_crate.insert(dep, owner);
        }
        for id in components.ids() {
            for krate in &components.def(id).crates {
                by_crate.insert(krate, Owner::Component(id));
            }
        }
        let mut by_symbol: FxHashMap<&[u8], Owner> = FxHashMap::default();
        // `lfs_*`: every symbol with the prefix, for C libraries whose functions (static
        // ones included) share one.
        let mut by_prefix: Vec<(&[u8], Owner)> = Vec::new();
        for id in components.ids() {
            for symbol in &components.def(id).symbols {
                match symbol.strip_suffix('*') {
                    Some(prefix) => by_prefix.push((prefix.as_bytes(), Owner::Component(id))),
                    None => {
                        by_symbol.insert(symbol.as_bytes(), Owner::Component(id));
                    }
                }
            }
        }
        let archives: Vec<(PathBuf, ComponentId)> = components
            .ids()
            .filter_map(|id| {
                let path = components.def(id).archive.as_deref()?;
                Some((canonical(path), id))
            })
            .collect();
        // Which component's archive each input file is, resolving each path once rather than
        // once per archive member and component.
        let archive_of: IdVec<InputId, Option<ComponentId>> = inputs
            .files
            .iter()
            .map(|file| {
                let path = canonical(&file.path);
                archives.iter().find(|(p, _)| *p == path).map(|(_, id)| *id)
            })
            .collect();

        let mut owners = FxHashMap::default();
        for &oid in objects {
            let o = db.object(oid);
            let unit = inputs.unit_of(oid);
            let path = inputs.path_of(unit.input);
            let file_owner = match archive_of[unit.input] {
                Some(id) => Owner::Component(id),
                None => {
                    let member_crate = unit.member.as_deref().and_then(member_crate);
                    match member_crate {
                        Some(krate) => by_crate.get(krate).cloned().unwrap_or(Owner::App),
                        None if unit.member.is_some() => Owner::Archive(
                            path.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                        ),
                        None => Owner::App,
                    }
                }
            };
            let mut section_owner: IdVec<SectionIndex, Option<Owner>> =
                IdVec::filled(None, o.sections.len());
            // Sections defining a symbol nothing above attributes are the file's; sections
            // defining none (anonymous constants, assembly stubs) take their referrers' owner.
            let mut named: IdVec<SectionIndex, bool> = IdVec::filled(false, o.sections.len());
            for sym in &o.symbols {
                let SymbolPlace::Section(s) = sym.place() else {
                    continue;
                };
                // AArch64 mapping symbols ($x, $d) mark code and data, they name nothing.
                if sym.is_section() || sym.name.is_empty() || sym.name.starts_with(b"$") {
                    continue;
                }
                named[s] = true;
                let slot = &mut section_owner[s];
                if slot.is_some() {
                    continue;
                }
                let owner = by_symbol
                    .get(sym.name)
                    .or_else(|| {
                        by_prefix
                            .iter()
                            .find(|(prefix, _)| sym.name.starts_with(prefix))
                            .map(|(_, owner)| owner)
                    })
                    .or_else(|| symbol_path(sym.name).and_then(|p| path_owner(&p, &by_crate)));
                if let Some(owner) = owner {
                    *slot = Some(owner.clone());
                }
            }
            for index in section_owner.ids() {
                if section_owner[index].is_none() && named[index] {
                    section_owner[index] = Some(file_owner.clone());
                }
            }
            inherit_from_referrers(o, &mut section_owner);
            for (index, owner) in section_owner.iter_ids().skip(1) {
                // Unwind tables are shared by whatever they describe, and survive GC record
                // by record; counting them would make every component look used.
                if o.sections[index].name == b".eh_frame" {
                    continue;
                }
                let id = SectionId { object: oid, index };
                owners.insert(id, owner.clone().unwrap_or_else(|| file_owner.clone()));
            }
        }
        Attribution { owners }
    }

    pub fn owner(&self, id: SectionId) -> Option<&Owner> {
        self.owners.get(&id)
    }

    /// Adds the owners of another object's sections.
    pub fn extend(&mut self, other: Attribution) {
        self.owners.extend(other.owners);
    }
}

/// Gives each section without an owner the owner of the sections in the same object that
/// refer to it, when they all agree, until nothing changes: a constant only one crate's code
/// uses is that crate's, even after LTO merged every crate into one object.
///
/// A section is decided once the last of its referrers has an owner, so each is looked at
/// once, in time linear in the object's relocations, however long the chains of sections
/// that define no symbol.
pub(crate) fn inherit_from_referrers<T: Clone + PartialEq>(
    o: &ObjectFile<'_>,
    owners: &mut IdVec<SectionIndex, Option<T>>,
) {
    // referred section → the sections referring to it
    let mut referrers: FxHashMap<SectionIndex, Vec<SectionIndex>> = FxHashMap::default();
    for (index, section) in o.sections.iter_ids().skip(1) {
        if section.name == b".eh_frame" {
            continue;
        }
        for reloc in section.relocs() {
            let Some(sym) = o.symbols.get(reloc.symbol) else {
                continue;
            };
            if let SymbolPlace::Section(target) = sym.place()
                && target != index
                && owners.get(target).is_some_and(Option::is_none)
            {
                referrers.entry(target).or_default().push(index);
            }
        }
    }
    // section without an owner → the sections it refers to that wait for it
    let mut waited_on: FxHashMap<SectionIndex, Vec<SectionIndex>> = FxHashMap::default();
    // referred section → how many of its referrers have no owner yet
    let mut waiting: FxHashMap<SectionIndex, usize> = FxHashMap::default();
    let mut ready = Vec::new();
    for (&target, from) in &referrers {
        let mut unowned = 0;
        for &r in from.iter().filter(|&&r| owners[r].is_none()) {
            waited_on.entry(r).or_default().push(target);
            unowned += 1;
        }
        waiting.insert(target, unowned);
        if unowned == 0 {
            ready.push(target);
        }
    }
    while let Some(target) = ready.pop() {
        let mut from = referrers[&target].iter().map(|&r| &owners[r]);
        let Some(Some(first)) = from.next() else {
            continue;
        };
        if !from.all(|owner| owner.as_ref() == Some(first)) {
            // Referrers that disagree leave it, and whatever waits for it, without an owner.
            continue;
        }
        owners[target] = Some(first.clone());
        for next in waited_on.get(&target).into_iter().flatten() {
            let count = waiting
                .get_mut(next)
                .expect("every referred section counts");
            *count -= 1;
            if *count == 0 {
                ready.push(*next);
            }
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The crate of an rlib/staticlib member: `unik_net-1a2b3c4d5e6f7a8b.unik_net.abc-cgu.0.rcgu.o`.
pub(crate) fn member_crate(member: &str) -> Option<&str> {
    if !member.ends_with(".rcgu.o") {
        return None;
    }
    let (krate, _) = member.split_once('-')?;
    Some(krate)
}

/// The module path a Rust symbol starts with, down to the item: `unik_net::init` for
/// `unik_net::init`, `smoltcp::wire::Ipv4Address` for
/// `<smoltcp::wire::Ipv4Address as core::fmt::Debug>::fmt`.
pub fn symbol_path(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let demangled = rustc_demangle::try_demangle(name).ok()?;
    let text = format!("{demangled:#}");
    // `<u128 as core::fmt::Display>::fmt`: a type without a path is a primitive or generic,
    // so the code is the trait's.
    module_path(&text).or_else(|| {
        let (_, rest) = text.split_once(" as ")?;
        module_path(rest)
    })
}

fn module_path(text: &str) -> Option<String> {
    let path = text.trim_start_matches(['<', '&', '*', '(']);
    let path = path
        .strip_prefix("mut ")
        .or_else(|| path.strip_prefix("const "))
        .or_else(|| path.strip_prefix("dyn "))
        .unwrap_or(path);
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(path.len());
    let path = path[..end].trim_end_matches(':');
    let segments: Vec<&str> = path.split("::").collect();
    let valid = segments.len() > 1 && segments.iter().all(|s| !s.is_empty());
    valid.then(|| path.to_owned())
}

/// The crate a Rust symbol belongs to: the first segment of [`symbol_path`].
pub fn symbol_crate(name: &[u8]) -> Option<String> {
    let path = symbol_path(name)?;
    path.split("::").next().map(str::to_owned)
}

/// The owner of the longest prefix of `path` (`unik_rt::heap::offer` → `unik_rt::heap`, else
/// `unik_rt`) that the table names.
fn path_owner<'t>(path: &str, table: &'t FxHashMap<&str, Owner>) -> Option<&'t Owner> {
    let mut prefix = path;
    loop {
        if let Some(owner) = table.get(prefix) {
            return Some(owner);
        }
        prefix = &prefix[..prefix.rfind("::")?];
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Component(id) => write!(f, "component #{}", id.0),
            Owner::Runtime => f.write_str("core/alloc/compiler_builtins"),
            Owner::Deps => f.write_str("shared dependencies"),
            Owner::Archive(name) => f.write_str(name),
            Owner::App => f.write_str("app"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a` (owned by x) → c0 → c1 → … → c199, a long chain of sections defining no symbol;
    /// `a` and `b` (owned by y) → `d` → `e`; `a` and c199 → `f`.
    #[test]
    fn owners_flow_down_chains_and_stop_where_referrers_disagree() {
        use crate::test_objects::{TestObject, parse_all};
        use object::SectionKind;

        let mut t = TestObject::new();
        let section = |t: &mut TestObject, name: &str| {
            let id = t.section(name, SectionKind::Data, &[0; 8]);
            (id, t.section_symbol(id))
        };
        let (a, _) = section(&mut t, ".data.a");
        let (b, _) = section(&mut t, ".data.b");
        let (d, d_sym) = section(&mut t, ".data.d");
        let (_, e_sym) = section(&mut t, ".data.e");
        let (_, f_sym) = section(&mut t, ".data.f");
        let chain: Vec<_> = (0..200)
            .map(|i| section(&mut t, &format!(".data.c{i}")))
            .collect();
        t.refer(a, 0, chain[0].1);
        for pair in chain.windows(2) {
            t.refer(pair[0].0, 0, pair[1].1);
        }
        t.refer(a, 0, d_sym);
        t.refer(b, 0, d_sym);
        t.refer(d, 0, e_sym);
        t.refer(a, 0, f_sym);
        t.refer(chain[199].0, 0, f_sym);
        let inputs = [("t.o", false, t.bytes())];
        let objects = parse_all(&inputs);
        let o = &objects[0];
        let index = |name: &str| {
            o.sections
                .iter_ids()
                .find(|(_, s)| s.name == name.as_bytes())
                .expect("a test section")
                .0
        };
        let mut owners: IdVec<SectionIndex, Option<&str>> = IdVec::filled(None, o.sections.len());
        owners[index(".data.a")] = Some("x");
        owners[index(".data.b")] = Some("y");
        inherit_from_referrers(o, &mut owners);
        for i in 0..200 {
            assert_eq!(owners[index(&format!(".data.c{i}"))], Some("x"), "c{i}");
        }
        assert_eq!(owners[index(".data.d")], None);
        assert_eq!(owners[index(".data.e")], None);
        assert_eq!(owners[index(".data.f")], Some("x"));
    }

    fn def(name: &str, depends: &[&str]) -> ComponentDef {
        ComponentDef {
            name: name.to_owned(),
            init: Some(format!("{name}_init")),
            depends: depends.iter().map(|d| (*d).to_owned()).collect(),
            required: false,
            forbidden: false,
            crates: Vec::new(),
            symbols: Vec::new(),
            archive: None,
            params: Vec::new(),
        }
    }

    #[test]
    fn dependencies_come_first() {
        let c = Components::new(vec![
            def("net", &["heap", "clock"]),
            def("heap", &["console"]),
            def("console", &[]),
            def("clock", &[]),
            def("fs", &["heap"]),
        ])
        .unwrap();
        let order: Vec<&str> = c
            .dependency_order()
            .iter()
            .map(|&id| c.def(id).name.as_str())
            .collect();
        assert_eq!(order, ["clock", "console", "heap", "fs", "net"]);
    }

    #[test]
    fn cycles_and_missing_dependencies_name_the_components() {
        let err = Components::new(vec![
            def("a", &["b"]),
            def("b", &["c"]),
            def("c", &["a"]),
            def("d", &[]),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "components depend on each other in a cycle: a → b → c → a"
        );
        let err = Components::new(vec![def("net", &["dns"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component `net` depends on `dns`, which is not a declared component"
        );
        let err = Components::new(vec![def("net", &[]), def("net", &[])]).unwrap_err();
        assert_eq!(err.to_string(), "component `net` is declared twice");
    }

    #[test]
    fn crates_from_members_and_symbols() {
        assert_eq!(
            member_crate("unik_net-1a2b3c4d5e6f7a8b.unik_net.abc-cgu.0.rcgu.o"),
            Some("unik_net")
        );
        assert_eq!(member_crate("net.o"), None);
        let legacy = b"_ZN8unik_net4init17h0123456789abcdefE";
        assert_eq!(symbol_path(legacy).as_deref(), Some("unik_net::init"));
        let trait_impl =
            b"_ZN63_$LT$smoltcp..wire..Ipv4Address$u20$as$u20$core..fmt..Debug$GT$3fmt17h0123456789abcdefE";
        assert_eq!(
            symbol_path(trait_impl).as_deref(),
            Some("smoltcp::wire::Ipv4Address")
        );
        assert_eq!(symbol_path(b"net_init"), None);
        let primitive = b"_RNvXNtNtCsg3SjgaGcPXb_4core3fmt3numoNtB4_7Display3fmt";
        assert_eq!(
            symbol_path(primitive).as_deref(),
            Some("core::fmt::Display")
        );
        assert_eq!(symbol_crate(trait_impl).as_deref(), Some("smoltcp"));
        let table = FxHashMap::from_iter([
            ("unik_rt::heap", Owner::Component(ComponentId(0))),
            ("unik_rt", Owner::App),
        ]);
        let owner = |p: &str| path_owner(p, &table).cloned();
        assert_eq!(
            owner("unik_rt::heap::offer"),
            Some(Owner::Component(ComponentId(0)))
        );
        assert_eq!(owner("unik_rt::heapless::x"), Some(Owner::App));
        assert_eq!(owner("talc::Talc::malloc"), None);
    }
}
