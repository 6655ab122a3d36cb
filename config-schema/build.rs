//! Embeds the library OS's `component.yaml` files, so the component registry manifests are
//! validated against is the library OS's own declaration, even for a binary installed
//! outside the source tree.
//!
//! A component file sits beside a library-OS crate's `Cargo.toml` or, for components inside
//! one crate, under its `components/<name>/` (the layout `cargo uniklink build` searches).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let libos = manifest_dir.join("../libos");
    let libos = libos
        .canonicalize()
        .unwrap_or_else(|e| panic!("the library OS is expected at {}: {e}", libos.display()));
    println!(
        "cargo::rerun-if-changed={}",
        libos.join("Cargo.toml").display()
    );
    let mut files = Vec::new();
    for krate in sorted_dirs(&libos) {
        if !krate.join("Cargo.toml").is_file() {
            continue;
        }
        // Not the crate directories: their sources (and libos/target) change all the time,
        // and each change would rebuild everything that depends on this crate.
        println!(
            "cargo::rerun-if-changed={}",
            krate.join("Cargo.toml").display()
        );
        // Only a directory that exists: cargo counts a missing path as always changed, and
        // every `cargo uniklink` command would rebuild the tool.
        if krate.join("components").is_dir() {
            println!(
                "cargo::rerun-if-changed={}",
                krate.join("components").display()
            );
        }
        files.push(krate.join("component.yaml"));
        files.extend(
            sorted_dirs(&krate.join("components"))
                .into_iter()
                .map(|dir| dir.join("component.yaml")),
        );
    }
    files.retain(|file| file.is_file());
    for file in &files {
        println!("cargo::rerun-if-changed={}", file.display());
    }

    let mut out = String::from("pub(crate) const LIBOS_COMPONENTS: &[(&str, &str)] = &[\n");
    for file in &files {
        let path = file.display().to_string();
        writeln!(out, "    ({path:?}, include_str!({path:?})),").expect("writing to a String");
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("libos_components.rs"), out)
        .unwrap_or_else(|e| panic!("cannot write libos_components.rs: {e}"));
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_dir() && !path.ends_with("target"))
        .collect();
    dirs.sort();
    dirs
}
