//! What a build report and its image say about weaving: which components are live and why,
//! and which symbols of a component's crates the image kept.

use std::path::Path;

use crate::apps::{assert_success, build_release};

/// `cargo uniklink build --release ARGS -m MANIFEST`, then the JSON build reports it names,
/// one per image, in the order built.
pub fn built_reports(manifest: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = build_release(manifest, args);
    assert_success(&out, &format!("building {}", manifest.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reports: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("uniklink: report "))
        .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        .collect();
    assert!(!reports.is_empty(), "no report path in:\n{stderr}");
    reports
}

/// Whether `name` is live in the report's weave and why; `None` when the app's dependency
/// graph does not have the component at all.
pub fn component(report: &serde_json::Value, name: &str) -> Option<(bool, String)> {
    let c = report["weave"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)?;
    Some((
        c["live"].as_bool().unwrap(),
        c["reason"].as_str().unwrap().to_owned(),
    ))
}

/// The report's image's symbols that start with one of `prefixes` or belong to one of
/// `crates` (by their demangled path).
pub fn symbols(report: &serde_json::Value, prefixes: &[&str], crates: &[&str]) -> Vec<String> {
    let image = std::fs::read(report["image"].as_str().unwrap()).unwrap();
    let elf = goblin::elf::Elf::parse(&image).unwrap();
    elf.syms
        .iter()
        .filter_map(|s| elf.strtab.get_at(s.st_name))
        .filter(|name| {
            prefixes.iter().any(|p| name.starts_with(p))
                || uniklink_analyzer::component::symbol_crate(name.as_bytes())
                    .is_some_and(|c| crates.contains(&c.as_str()))
        })
        .map(str::to_owned)
        .collect()
}
