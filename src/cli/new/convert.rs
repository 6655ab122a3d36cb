//! `cargo uniklink init` in a crate that exists (`cargo new --lib`): the edits to its
//! Cargo.toml that make it a uniklink app, made with its comments and layout kept, and each
//! told as the user will read it.

use std::fmt;
use std::path::Path;

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

/// One edit `init` makes, as it tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    /// It replaces what someone wrote, so it waits for `--force`.
    pub overwrites: bool,
}

impl Edit {
    pub fn adds(text: impl Into<String>) -> Edit {
        Edit {
            text: text.into(),
            overwrites: false,
        }
    }

    pub fn overwrites(text: impl Into<String>) -> Edit {
        Edit {
            text: text.into(),
            overwrites: true,
        }
    }
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An existing Cargo.toml as `init` leaves it.
#[derive(Debug)]
pub struct Converted {
    /// The package's name, which the manifest's `app.package` names.
    pub package: String,
    /// The new text; the old one when `edits` is empty.
    pub text: String,
    pub edits: Vec<Edit>,
}

/// The keys `new` writes into a Cargo.toml, by table: a static library, not tested on the
/// host (it is `no_std` for a bare-metal target), aborting on panic, and small in release.
fn settings() -> Vec<(&'static [&'static str], &'static str, Value)> {
    vec![
        (
            &["lib"],
            "crate-type",
            Value::Array(Array::from_iter(["staticlib"])),
        ),
        (&["lib"], "test", false.into()),
        (&["lib"], "bench", false.into()),
        (&["profile", "dev"], "panic", "abort".into()),
        (&["profile", "release"], "panic", "abort".into()),
        (&["profile", "release"], "opt-level", "s".into()),
        (&["profile", "release"], "lto", true.into()),
        (&["profile", "release"], "codegen-units", 1.into()),
    ]
}

/// Makes the package in `text` (a Cargo.toml) a uniklink app that depends on the library OS
/// at `libos`: its own workspace, the `unik` dependency and the keys of [`settings`].
pub fn convert(text: &str, libos: &Path) -> miette::Result<Converted> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| miette::miette!("not a valid Cargo.toml: {e}"))?;
    let package = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(Item::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            miette::miette!(
                help = "run `cargo uniklink init` in the directory of the app's own package",
                "it has no [package] name (a workspace's root?)"
            )
        })?;
    let mut edits = Vec::new();
    // Profiles apply only in the workspace root, and the app builds for a bare-metal target
    // apart from any host crates around it.
    if !doc.contains_key("workspace") {
        doc.insert("workspace", Item::Table(Table::new()));
        edits.push(Edit::adds(
            "Cargo.toml: adds [workspace]: the app is a workspace of its own",
        ));
    }
    depend_on_libos(&mut doc, libos, &mut edits)?;
    for (path, key, value) in settings() {
        set(&mut doc, path, key, value, &mut edits)?;
    }
    let text = if edits.is_empty() {
        text.to_owned()
    } else {
        doc.to_string()
    };
    Ok(Converted {
        package,
        text,
        edits,
    })
}

/// `[dependencies] unik = { path = LIBOS }`; a `unik` dependency there keeps its other keys.
fn depend_on_libos(
    doc: &mut DocumentMut,
    libos: &Path,
    edits: &mut Vec<Edit>,
) -> miette::Result<()> {
    let path = libos.display().to_string();
    let dependencies = table_at(doc, &["dependencies"])?;
    match dependencies.get_mut("unik") {
        None => {
            let mut unik = InlineTable::new();
            unik.insert("path", path.as_str().into());
            let item = Value::InlineTable(unik);
            edits.push(Edit::adds(format!(
                "Cargo.toml: adds [dependencies] unik = {item}"
            )));
            dependencies.insert("unik", Item::Value(item));
        }
        Some(unik) => match unik.as_table_like_mut() {
            Some(unik) => match unik.get("path").and_then(Item::as_str) {
                Some(old) if old == path => {}
                old => {
                    let was = old.map_or_else(|| "no path".to_owned(), |old| format!("{old:?}"));
                    edits.push(Edit::overwrites(format!(
                        "Cargo.toml: changes [dependencies] unik to path = {path:?} ({was} now)"
                    )));
                    unik.insert("path", Item::Value(path.as_str().into()));
                }
            },
            None => {
                let mut table = InlineTable::new();
                table.insert("path", path.as_str().into());
                let item = Value::InlineTable(table);
                edits.push(Edit::overwrites(format!(
                    "Cargo.toml: changes [dependencies] unik = {} to {item}",
                    unik.to_string().trim()
                )));
                *unik = Item::Value(item);
            }
        },
    }
    Ok(())
}

/// Sets `key` of the table at `path` to `value` unless it has that value already.
fn set(
    doc: &mut DocumentMut,
    path: &[&str],
    key: &str,
    value: Value,
    edits: &mut Vec<Edit>,
) -> miette::Result<()> {
    let table = table_at(doc, path)?;
    let header = path.join(".");
    let shown = value.to_string();
    let shown = shown.trim();
    match table.get(key).and_then(Item::as_value) {
        Some(old) if same(old, &value) => return Ok(()),
        Some(old) => edits.push(Edit::overwrites(format!(
            "Cargo.toml: changes [{header}] {key} = {} to {shown}",
            old.to_string().trim()
        ))),
        None if table.contains_key(key) => {
            return Err(miette::miette!(
                "[{header}] {key} is not a value; set it to {shown} by hand"
            ));
        }
        None => edits.push(Edit::adds(format!(
            "Cargo.toml: adds [{header}] {key} = {shown}"
        ))),
    }
    table.insert(key, Item::Value(value));
    Ok(())
}

/// The table at `path`, created (as `[a.b]` headers, without empty `[a]`) where missing.
fn table_at<'d>(
    doc: &'d mut DocumentMut,
    path: &[&str],
) -> miette::Result<&'d mut dyn toml_edit::TableLike> {
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for (depth, name) in path.iter().enumerate() {
        let item = table.entry(name).or_insert_with(|| {
            let mut new = Table::new();
            // Only the innermost table gets a header of its own.
            new.set_implicit(depth + 1 < path.len());
            Item::Table(new)
        });
        table = item
            .as_table_like_mut()
            .ok_or_else(|| miette::miette!("`{}` is not a table", path[..=depth].join(".")))?;
    }
    Ok(table)
}

/// Whether two TOML values are equal, however each is written.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.value() == b.value(),
        (Value::Integer(a), Value::Integer(b)) => a.value() == b.value(),
        (Value::Boolean(a), Value::Boolean(b)) => a.value() == b.value(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(a, b)| same(a, b))
        }
        _ => a.to_string().trim() == b.to_string().trim(),
    }
}

/// Whether `text` is the `src/lib.rs` of `cargo new --lib` (of any cargo since 1.0), or
/// empty: nothing anyone wrote would be lost by replacing it.
pub fn is_cargo_template(text: &str) -> bool {
    const TEMPLATES: &[&str] = &[
        "pub fn add(left: u64, right: u64) -> u64 { left + right } #[cfg(test)] mod tests { \
         use super::*; #[test] fn it_works() { let result = add(2, 2); assert_eq!(result, 4); } }",
        "pub fn add(left: usize, right: usize) -> usize { left + right } #[cfg(test)] mod tests \
         { use super::*; #[test] fn it_works() { let result = add(2, 2); assert_eq!(result, 4); \
         } }",
        "#[cfg(test)] mod tests { #[test] fn it_works() { let result = 2 + 2; \
         assert_eq!(result, 4); } }",
        "#[cfg(test)] mod tests { #[test] fn it_works() { assert_eq!(2 + 2, 4); } }",
        "",
    ];
    TEMPLATES
        .iter()
        .any(|template| template.split_whitespace().eq(text.split_whitespace()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARGO_NEW_LIB: &str = "[package]\nname = \"tmpl\"\nversion = \"0.1.0\"\n\
        edition = \"2024\"\n\n[dependencies]\n";

    fn libos() -> &'static Path {
        Path::new("/src/uniklink/libos/unik")
    }

    #[test]
    fn a_cargo_new_lib_crate_gets_only_additions() {
        let converted = convert(CARGO_NEW_LIB, libos()).unwrap();
        assert_eq!(converted.package, "tmpl");
        assert!(
            converted.edits.iter().all(|e| !e.overwrites),
            "{:?}",
            converted.edits
        );
        assert_eq!(
            converted.text,
            "[package]\nname = \"tmpl\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\nunik = { path = \"/src/uniklink/libos/unik\" }\n\n\
             [workspace]\n\n\
             [lib]\ncrate-type = [\"staticlib\"]\ntest = false\nbench = false\n\n\
             [profile.dev]\npanic = \"abort\"\n\n\
             [profile.release]\npanic = \"abort\"\nopt-level = \"s\"\nlto = true\n\
             codegen-units = 1\n"
        );
        assert!(
            converted
                .edits
                .iter()
                .any(|e| e.text == "Cargo.toml: adds [lib] crate-type = [\"staticlib\"]"),
            "{:?}",
            converted.edits
        );
        // Once converted there is nothing left to do.
        let again = convert(&converted.text, libos()).unwrap();
        assert!(again.edits.is_empty(), "{:?}", again.edits);
        assert_eq!(again.text, converted.text);
    }

    #[test]
    fn changes_to_what_is_there_are_told_and_comments_stay() {
        let text = "# my crate\n[package]\nname = \"mine\" # the name\n\n[lib]\n\
            crate-type = ['rlib']\n\n[dependencies]\nunik = \"0.1\"\n\n\
            [profile.release]\nopt-level = 3\nlto = true\n";
        let converted = convert(text, libos()).unwrap();
        let overwrites: Vec<&str> = converted
            .edits
            .iter()
            .filter(|e| e.overwrites)
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(
            overwrites,
            [
                "Cargo.toml: changes [dependencies] unik = \"0.1\" to { path = \"/src/uniklink/libos/unik\" }",
                "Cargo.toml: changes [lib] crate-type = ['rlib'] to [\"staticlib\"]",
                "Cargo.toml: changes [profile.release] opt-level = 3 to \"s\"",
            ]
        );
        assert!(
            converted
                .text
                .starts_with("# my crate\n[package]\nname = \"mine\" # the name\n")
        );
        assert!(!converted.edits.iter().any(|e| e.text.contains("lto")));
    }

    #[test]
    fn a_unik_dependency_keeps_its_features() {
        let text = "[package]\nname = \"net\"\n\n[dependencies]\n\
            unik = { path = \"/old/libos/unik\", features = [\"net\"] }\n";
        let converted = convert(text, libos()).unwrap();
        assert!(
            converted
                .text
                .contains("unik = { path = \"/src/uniklink/libos/unik\", features = [\"net\"] }"),
            "{}",
            converted.text
        );
        assert!(converted.edits.contains(&Edit::overwrites(
            "Cargo.toml: changes [dependencies] unik to path = \"/src/uniklink/libos/unik\" \
             (\"/old/libos/unik\" now)"
        )));
    }

    #[test]
    fn a_workspace_root_is_not_an_app() {
        let error = convert("[workspace]\nmembers = [\"a\"]\n", libos()).unwrap_err();
        assert!(error.to_string().contains("no [package] name"), "{error}");
    }

    #[test]
    fn cargo_templates_are_recognised_and_code_is_not() {
        assert!(is_cargo_template(
            "pub fn add(left: u64, right: u64) -> u64 {\n    left + right\n}\n\n#[cfg(test)]\n\
             mod tests {\n    use super::*;\n\n    #[test]\n    fn it_works() {\n        \
             let result = add(2, 2);\n        assert_eq!(result, 4);\n    }\n}\n"
        ));
        assert!(is_cargo_template("\n"));
        assert!(!is_cargo_template(
            "pub fn add(left: u64, right: u64) -> u64 { left - right }"
        ));
    }
}
