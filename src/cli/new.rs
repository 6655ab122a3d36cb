//! `cargo uniklink new` and `init`: an app crate with its `uniklink.yaml` that builds and boots
//! as it is.
//!
//! The library OS is not published on crates.io, so the app depends on it by path: the
//! `libos/unik` of the source tree this binary was built from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, WrapErr, miette};

use super::cargo_args::MANIFEST_FILE;
use convert::Edit;

mod convert;

/// The source tree this binary was built from.
const SOURCE_TREE: &str = env!("CARGO_MANIFEST_DIR");

/// Create a unikernel app crate in a new directory.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The directory to create.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    #[command(flatten)]
    name: NameArg,
}

/// Create a unikernel app crate in an existing directory, or make the library crate there
/// (`cargo new --lib`) one.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The directory to put the app in.
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,
    #[command(flatten)]
    name: NameArg,
    /// Change what is there already: values in Cargo.toml, an existing uniklink.yaml, a
    /// src/lib.rs that is not cargo's template. Without it `init` says what it would change.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
struct NameArg {
    /// The image name, and the package's when Cargo.toml is new [default: the package's name,
    /// or the directory's]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

pub fn run_new(args: NewArgs) -> miette::Result<ExitCode> {
    if args.path.exists() {
        return Err(miette!(
            help = "use `cargo uniklink init` to put an app in an existing directory",
            "destination `{}` already exists",
            args.path.display()
        ));
    }
    let name = package_name(&args.path, args.name.name)?;
    let files = scaffold(&name)?;
    // Everything is written into a sibling first, so a failure leaves no half-made app.
    let parent = match args.path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".uniklink-new")
        .tempdir_in(&parent)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create a directory in {}", parent.display()))?;
    write_files(staging.path(), &files)?;
    std::fs::rename(staging.path(), &args.path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create {}", args.path.display()))?;
    created(&name, &args.path);
    Ok(ExitCode::SUCCESS)
}

pub fn run_init(args: InitArgs) -> miette::Result<ExitCode> {
    let dir = std::path::absolute(&args.path).into_diagnostic()?;
    if !dir.is_dir() {
        return Err(miette!(
            help = "use `cargo uniklink new` to create it",
            "`{}` is not a directory",
            args.path.display()
        ));
    }
    let libos = libos_dir()?;
    let cargo_toml_path = dir.join("Cargo.toml");
    let mut files: Vec<(&str, String)> = Vec::new();
    let mut edits = Vec::new();
    let existing = read_if_present(&cargo_toml_path)?;
    let (package, name) = match &existing {
        Some(text) => {
            let converted = convert::convert(text, &libos)
                .wrap_err_with(|| format!("{}", cargo_toml_path.display()))?;
            if !converted.edits.is_empty() {
                files.push(("Cargo.toml", converted.text));
            }
            edits.extend(converted.edits);
            let name = match args.name.name {
                Some(name) => package_name(&dir, Some(name))?,
                None => converted.package.clone(),
            };
            (converted.package, name)
        }
        None => {
            let name = package_name(&dir, args.name.name)?;
            files.push(("Cargo.toml", cargo_toml(&name, &libos)));
            edits.push(Edit::adds("Cargo.toml: writes a new package"));
            (name.clone(), name)
        }
    };
    let schema = Path::new(SOURCE_TREE).join("config-schema/uniklink.schema.json");
    let planned = [
        (
            MANIFEST_FILE,
            manifest(&name, &package, &schema),
            "the manifest",
            (|_: &str| false) as fn(&str) -> bool,
        ),
        (
            "src/lib.rs",
            lib_rs(&package),
            "a `unik::entry!(main)` hello world",
            convert::is_cargo_template,
        ),
    ];
    for (file, text, what, replaceable) in planned {
        match read_if_present(&dir.join(file))? {
            None => edits.push(Edit::adds(format!("{file}: writes {what}"))),
            Some(old) if old == text => continue,
            Some(old) if replaceable(&old) => edits.push(Edit::adds(format!(
                "{file}: replaces cargo's template with {what}"
            ))),
            Some(_) => edits.push(Edit::overwrites(format!(
                "{file}: replaces what it has with {what}"
            ))),
        }
        files.push((file, text));
    }
    if !dir.join(".gitignore").exists() {
        files.push((".gitignore", "/target\n".to_owned()));
        edits.push(Edit::adds(".gitignore: writes /target"));
    }

    let overwrites: Vec<String> = edits
        .iter()
        .filter(|e| e.overwrites)
        .map(|e| format!("\n  {e}"))
        .collect();
    if !overwrites.is_empty() && !args.force {
        return Err(miette!(
            help = "nothing was written; `cargo uniklink init --force` makes these changes",
            "`cargo uniklink init` would change what is in {}:{}",
            args.path.display(),
            overwrites.concat()
        ));
    }
    if files.is_empty() {
        eprintln!(
            "uniklink: {} is a uniklink app already; nothing to change",
            args.path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    write_files(&dir, &files)?;
    for edit in &edits {
        eprintln!("uniklink: {edit}");
    }
    if existing.is_some()
        && edits
            .iter()
            .any(|e| e.text.starts_with("Cargo.toml: adds [workspace]"))
        && let Some(outer) = enclosing_workspace(&dir)
    {
        eprintln!(
            "uniklink: note: {} is a workspace too; if it lists this app in `members`, move it \
             to `exclude`",
            outer.display()
        );
    }
    if existing.is_some() {
        eprintln!(
            "uniklink: made package `{package}` in {} an app; build and boot it:{} cargo uniklink \
             run --release",
            args.path.display(),
            cd_to(&args.path)
        );
    } else {
        created(&name, &args.path);
    }
    Ok(ExitCode::SUCCESS)
}

/// ` cd PATH &&`, or nothing when `path` is the current directory.
fn cd_to(path: &Path) -> String {
    if path == Path::new(".") || path.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" cd {} &&", path.display())
    }
}

/// The file's text, or `None` when there is no such file.
fn read_if_present(path: &Path) -> miette::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read {}", path.display())),
    }
}

/// The Cargo.toml of a workspace in a directory above `dir`, which cargo would have taken
/// the app for a member of.
fn enclosing_workspace(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .skip(1)
        .map(|d| d.join("Cargo.toml"))
        .find(|file| {
            std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.parse::<toml_edit::DocumentMut>().ok())
                .is_some_and(|doc| doc.contains_key("workspace"))
        })
}

fn created(name: &str, path: &Path) {
    eprintln!(
        "uniklink: created app `{name}` in {}; build and boot it:{} cargo uniklink run --release",
        path.display(),
        cd_to(path)
    );
}

/// `--name`, else the directory's name, checked as cargo checks package names.
fn package_name(path: &Path, name: Option<String>) -> miette::Result<String> {
    let name = match name {
        Some(name) => name,
        None => std::path::absolute(path)
            .into_diagnostic()?
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                miette!(
                    help = "name it with --name NAME",
                    "cannot take a package name from `{}`",
                    path.display()
                )
            })?,
    };
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || !valid_chars || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(miette!(
            help = "a package name has ASCII letters, digits, `-` and `_`, and does not start with a digit; name it with --name NAME",
            "invalid package name `{name}`"
        ));
    }
    Ok(name)
}

fn write_files(dir: &Path, files: &[(&str, String)]) -> miette::Result<()> {
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The library OS's `unik` crate in the source tree this binary was built from.
fn libos_dir() -> miette::Result<PathBuf> {
    let source = Path::new(SOURCE_TREE);
    let libos = source.join("libos/unik");
    if !libos.join("Cargo.toml").is_file() {
        return Err(miette!(
            help = "the library OS is not on crates.io: run cargo-uniklink from a uniklink checkout (cargo uniklink there is an alias for it)",
            "this cargo-uniklink was built from {}, which has no libos/unik any more",
            source.display()
        ));
    }
    Ok(libos)
}

/// The files of a new app, by path relative to its directory.
fn scaffold(name: &str) -> miette::Result<Vec<(&'static str, String)>> {
    let libos = libos_dir()?;
    let schema = Path::new(SOURCE_TREE).join("config-schema/uniklink.schema.json");
    Ok(vec![
        ("Cargo.toml", cargo_toml(name, &libos)),
        (MANIFEST_FILE, manifest(name, name, &schema)),
        ("src/lib.rs", lib_rs(name)),
        (".gitignore", "/target\n".to_owned()),
    ])
}

fn cargo_toml(name: &str, libos: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# Its own workspace: the app builds for a bare-metal target, apart from any host crates
# around it.
[workspace]

# uniklink links the app as a static library with the library OS.
[lib]
crate-type = ["staticlib"]
test = false
bench = false

[dependencies]
# The library OS is not on crates.io; this is the checkout cargo-uniklink was built from.
# Its features turn components on: `features = ["net"]` for sockets and DNS (unik::net),
# `"fs"` for files baked into the image and volumes (unik::fs), `"rtc"` for wall-clock time
# (unik::time::SystemTime), `"rng"` for random bytes (unik::random, and the getrandom crate).
# Arguments and environment (unik::env) need none. Weaving links only what the app reaches.
unik = {{ path = "{libos}" }}

[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
opt-level = "s"
lto = true
codegen-units = 1
"#,
        libos = libos.display()
    )
}

/// The manifest of image `name` built from the cargo package `package`.
fn manifest(name: &str, package: &str, schema: &Path) -> String {
    format!(
        r#"# yaml-language-server: $schema={schema}
#
# cargo uniklink run --release     → builds <target-dir>/uniklink/release/{name}-x86_64.elf
#                                    (the small image; without --release, uniklink/debug/)
#                                    and boots it in QEMU
name: {name}
app:
  package: {package}
  path: .
arch: [x86_64]
profile: minimal
memory: 4MiB
"#,
        schema = schema.display()
    )
}

fn lib_rs(name: &str) -> String {
    format!(
        r#"#![no_std]

unik::entry!(main);

fn main() {{
    unik::println!("Hello from {name}!");
    unik::exit(0);
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_cargo() {
        assert_eq!(package_name(Path::new("x/my-app"), None).unwrap(), "my-app");
        assert_eq!(
            package_name(Path::new("x"), Some("other_name".into())).unwrap(),
            "other_name"
        );
        for bad in ["9lives", "has space", "", "ünik"] {
            assert!(
                package_name(Path::new("x"), Some(bad.into())).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_scaffold_manifest_is_valid() {
        let text = manifest("demo", "demo-app", Path::new("/s/uniklink.schema.json"));
        let parsed = uniklink_config::Manifest::from_text(
            Path::new("/app/uniklink.yaml"),
            &text,
            &uniklink_config::ComponentRegistry::builtin(),
        )
        .unwrap();
        assert_eq!(parsed.name, "demo");
        assert!(
            matches!(&parsed.app, uniklink_config::App::Cargo { package, .. } if package == "demo-app")
        );
        assert!(text.starts_with("# yaml-language-server: $schema=/s/uniklink.schema.json\n"));
    }
}
