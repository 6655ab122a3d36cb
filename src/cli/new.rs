//! `cargo uniklink new` and `init`: an app crate with its `uniklink.yaml` that builds and boots
//! as it is.
//!
//! The library OS is not published on crates.io, so the app depends on it by path: the
//! `libos/unik` of the source tree this binary was built from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, WrapErr, miette};

use super::cargo_args::MANIFEST_FILE;

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

/// Create a unikernel app crate in an existing directory.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The directory to put the app in.
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,
    #[command(flatten)]
    name: NameArg,
}

#[derive(Debug, clap::Args)]
struct NameArg {
    /// The package and image name [default: the directory name]
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
    let name = package_name(&dir, args.name.name)?;
    let files = scaffold(&name)?;
    let existing: Vec<&str> = files
        .iter()
        .map(|(file, _)| *file)
        .filter(|file| dir.join(file).exists())
        .collect();
    if !existing.is_empty() {
        return Err(miette!(
            "`cargo uniklink init` would overwrite {} in {}",
            existing.join(", "),
            args.path.display()
        ));
    }
    write_files(&dir, &files)?;
    created(&name, &args.path);
    Ok(ExitCode::SUCCESS)
}

fn created(name: &str, path: &Path) {
    eprintln!(
        "uniklink: created app `{name}` in {}; build and boot it: cd {} && cargo uniklink run --release",
        path.display(),
        path.display()
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

/// The files of a new app, by path relative to its directory.
fn scaffold(name: &str) -> miette::Result<Vec<(&'static str, String)>> {
    let source = Path::new(SOURCE_TREE);
    let libos = source.join("libos/unik");
    if !libos.join("Cargo.toml").is_file() {
        return Err(miette!(
            help = "the library OS is not on crates.io: run cargo-uniklink from a uniklink checkout (cargo uniklink there is an alias for it)",
            "this cargo-uniklink was built from {}, which has no libos/unik any more",
            source.display()
        ));
    }
    let schema = source.join("config-schema/uniklink.schema.json");
    Ok(vec![
        ("Cargo.toml", cargo_toml(name, &libos)),
        (MANIFEST_FILE, manifest(name, &schema)),
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

fn manifest(name: &str, schema: &Path) -> String {
    format!(
        r#"# yaml-language-server: $schema={schema}
#
# cargo uniklink run --release     → builds <target-dir>/uniklink/release/{name}-x86_64.elf
#                                    (the small image; without --release, uniklink/debug/)
#                                    and boots it in QEMU
name: {name}
app:
  package: {name}
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
        let text = manifest("demo", Path::new("/s/uniklink.schema.json"));
        let parsed = uniklink_config::Manifest::from_text(
            Path::new("/app/uniklink.yaml"),
            &text,
            &uniklink_config::ComponentRegistry::builtin(),
        )
        .unwrap();
        assert_eq!(parsed.name, "demo");
        assert!(text.starts_with("# yaml-language-server: $schema=/s/uniklink.schema.json\n"));
    }
}
