//! The crate each kept section came from, for `report --by crate`: where the component view
//! folds a component's dependencies into it (smoltcp into `net`) and every crates.io crate the
//! app uses into `app`, this view names each Rust crate. Sections are attributed by the rules
//! components are: the crate named by a section's demangled symbols (which survives LTO and
//! codegen-unit merging), else its rlib/staticlib member's crate (`<crate>-<hash>.<cgu>.rcgu.o`),
//! else its C archive; sections defining no symbol take the crate of the sections referring to
//! them.

use std::collections::BTreeMap;
use std::path::Path;

use rustc_hash::FxHashMap;

use super::ReportInputs;
use crate::component::{ComponentId, inherit_from_referrers, member_crate, symbol_crate};
use crate::id::IdVec;
use crate::object::{ObjectFile, ObjectId, SectionId, SectionIndex, SymbolPlace};

/// What the file a section came from says about its crate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum File {
    /// An rlib or staticlib member of this crate.
    Crate(String),
    /// A C archive's member or a loose object: `C archive <file>` or `app`.
    Other(String),
}

impl File {
    fn new(member: Option<&str>, path: &Path) -> File {
        match member {
            Some(member) => match member_crate(member) {
                Some(krate) => File::Crate(krate.to_owned()),
                None => {
                    let archive = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    File::Other(super::archive_label(&archive))
                }
            },
            None => File::Other(super::APP.to_owned()),
        }
    }

    /// The crate of a section of this file that neither its symbols nor its referrers name,
    /// given the crates of the component it belongs to, by their bytes. A component's section
    /// in an object of a crate that is none of the component's is its main crate's: under
    /// LTO, the library OS's assembly and `#[no_mangle]` functions land in the app crate's one
    /// object.
    fn unnamed(&self, component: Option<&BTreeMap<String, u64>>) -> String {
        match (self, component) {
            (File::Crate(krate), Some(crates)) if !crates.contains_key(krate) => crates
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map_or_else(|| krate.clone(), |(main, _)| main.clone()),
            (File::Crate(krate) | File::Other(krate), _) => krate.clone(),
        }
    }
}

/// The crate of each kept section `ids[i]`; `special[i]` for those whose owner no crate has
/// (unwind tables, linker-generated sections).
pub(super) fn kept_crates(
    r: &ReportInputs<'_, '_>,
    ids: &[SectionId],
    special: &[Option<String>],
) -> Vec<String> {
    let db = r.graph.db;
    let component = |id: SectionId| r.attribution.owner(id).and_then(|o| o.component());

    let mut named: FxHashMap<ObjectId, SectionCrates> = FxHashMap::default();
    for id in ids {
        named
            .entry(id.object)
            .or_insert_with(|| symbol_crates(db.object(id.object)));
    }
    // The crates each component's sections name by their symbols, by bytes.
    let mut components: FxHashMap<ComponentId, BTreeMap<String, u64>> = FxHashMap::default();
    for &id in ids {
        let o = db.object(id.object);
        if let (Some(c), Some(krate)) = (component(id), &named[&id.object].0[id.index]) {
            *components
                .entry(c)
                .or_default()
                .entry(krate.clone())
                .or_default() += o.sections[id.index].size;
        }
    }

    let mut resolved: FxHashMap<ObjectId, IdVec<SectionIndex, String>> = FxHashMap::default();
    for (&object, (crates, named)) in &named {
        let unit = r.inputs.unit_of(object);
        let file = File::new(unit.member.as_deref(), r.inputs.path_of(unit.input));
        let o = db.object(object);
        let unnamed = |index: SectionIndex| {
            let id = SectionId { object, index };
            file.unnamed(component(id).and_then(|c| components.get(&c)))
        };
        resolved.insert(object, section_crates(o, crates.clone(), named, unnamed));
    }
    ids.iter()
        .zip(special)
        .map(|(id, special)| {
            special
                .clone()
                .unwrap_or_else(|| resolved[&id.object][id.index].clone())
        })
        .collect()
}

/// The crate each section's symbols name, and whether it defines a symbol at all.
type SectionCrates = (
    IdVec<SectionIndex, Option<String>>,
    IdVec<SectionIndex, bool>,
);

fn symbol_crates(o: &ObjectFile<'_>) -> SectionCrates {
    let mut crates = IdVec::filled(None, o.sections.len());
    let mut named = IdVec::filled(false, o.sections.len());
    for sym in &o.symbols {
        let SymbolPlace::Section(s) = sym.place() else {
            continue;
        };
        // AArch64 mapping symbols ($x, $d) mark code and data, they name nothing.
        if sym.is_section() || sym.name.is_empty() || sym.name.starts_with(b"$") {
            continue;
        }
        named[s] = true;
        let slot = &mut crates[s];
        if slot.is_none() {
            // rustc names symbols it generates itself (allocator shims, the panic handler)
            // after `__rustc`, which is no crate.
            *slot = symbol_crate(sym.name).filter(|krate| krate != "__rustc");
        }
    }
    (crates, named)
}

/// The crate of every section of `o`: the one its symbols name; for one defining symbols that
/// name none (C functions, `#[no_mangle]` ones, local labels), `unnamed`'s; for one defining
/// none, its referrers' crate when they agree, else `unnamed`'s.
fn section_crates(
    o: &ObjectFile<'_>,
    mut crates: IdVec<SectionIndex, Option<String>>,
    named: &IdVec<SectionIndex, bool>,
    unnamed: impl Fn(SectionIndex) -> String,
) -> IdVec<SectionIndex, String> {
    for index in crates.ids() {
        if crates[index].is_none() && named[index] {
            crates[index] = Some(unnamed(index));
        }
    }
    inherit_from_referrers(o, &mut crates);
    crates
        .iter_ids()
        .map(|(index, krate)| krate.clone().unwrap_or_else(|| unnamed(index)))
        .collect()
}

#[cfg(test)]
mod tests {
    use object::SectionKind;

    use super::*;
    use crate::test_objects::{TestObject, parse_all};

    #[test]
    fn files_name_their_crate_or_archive() {
        let rlib = "smoltcp-0a1b2c3d4e5f6a7b.smoltcp.1f2e3d-cgu.0.rcgu.o";
        assert_eq!(
            File::new(Some(rlib), Path::new("/t/libhttpd.a")),
            File::Crate("smoltcp".to_owned())
        );
        assert_eq!(
            File::new(Some("c5a0dc207513c67b-lfs.o"), Path::new("/t/libkvstore.a")),
            File::Other("C archive libkvstore.a".to_owned())
        );
        assert_eq!(
            File::new(None, Path::new("/t/main.o")),
            File::Other("app".to_owned())
        );
    }

    #[test]
    fn a_components_section_in_the_apps_object_is_its_main_crates() {
        let httpd = File::Crate("httpd".to_owned());
        let rt = BTreeMap::from([
            ("unik_rt".to_owned(), 9000),
            ("unik_platform".to_owned(), 900),
        ]);
        let app = BTreeMap::from([("httpd".to_owned(), 500)]);
        let cases = [
            (&httpd, Some(&rt), "unik_rt"),
            (&httpd, Some(&app), "httpd"),
            (&httpd, None, "httpd"),
            (
                &File::Crate("unik_platform".to_owned()),
                Some(&rt),
                "unik_platform",
            ),
            (
                &File::Other("C archive libkvstore.a".to_owned()),
                Some(&rt),
                "C archive libkvstore.a",
            ),
        ];
        for (file, component, krate) in cases {
            assert_eq!(file.unnamed(component), krate, "{file:?} {component:?}");
        }
    }

    /// One LTO object of crate `httpd` holding smoltcp's code: each section is the crate its
    /// symbols name; an unnamed constant is its referrers' crate when they agree, the file's
    /// when they do not; a C function is the file's, and so is rustc's allocator shim.
    #[test]
    fn sections_are_the_crate_their_symbols_name() {
        let mut o = TestObject::new();
        let poll = o.section(".text.poll", SectionKind::Text, &[0; 16]);
        let main = o.section(".text.main", SectionKind::Text, &[0; 16]);
        let memcpy = o.section(".text.memcpy", SectionKind::Text, &[0; 16]);
        let shim = o.section(".text.shim", SectionKind::Text, &[0; 16]);
        let only_smoltcp = o.section(".rodata.a", SectionKind::ReadOnlyData, &[0; 8]);
        let shared = o.section(".rodata.b", SectionKind::ReadOnlyData, &[0; 8]);
        o.define(
            "_ZN7smoltcp5iface9Interface4poll17h0123456789abcdefE",
            poll,
            0,
            false,
        );
        o.define("_ZN5httpd4main17h0123456789abcdefE", main, 0, false);
        o.define("memcpy", memcpy, 0, false);
        o.define(
            "_RNvCsfLfy6EI15iL_7___rustc14___rust_dealloc",
            shim,
            0,
            false,
        );
        let a = o.section_symbol(only_smoltcp);
        let b = o.section_symbol(shared);
        o.refer(poll, 0, a);
        o.refer(poll, 8, b);
        o.refer(main, 0, b);
        let inputs = [("x.o", true, o.bytes())];
        let objects = parse_all(&inputs);
        let o = &objects[0];
        let (crates, named) = symbol_crates(o);
        let crates = section_crates(o, crates, &named, |_| "httpd".to_owned());
        let by_name: Vec<(String, &str)> = o
            .sections
            .ids()
            .skip(1)
            .map(|i| (o.section_name(i), crates[i].as_str()))
            .filter(|(name, _)| name.starts_with(".text") || name.starts_with(".rodata"))
            .collect();
        assert_eq!(
            by_name,
            [
                (".text.poll".to_owned(), "smoltcp"),
                (".text.main".to_owned(), "httpd"),
                (".text.memcpy".to_owned(), "httpd"),
                (".text.shim".to_owned(), "httpd"),
                (".rodata.a".to_owned(), "smoltcp"),
                (".rodata.b".to_owned(), "httpd"),
            ]
        );
    }
}
