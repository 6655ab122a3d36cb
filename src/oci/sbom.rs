//! The software bill of materials `pkg --sbom` attaches to each image: a CycloneDX 1.5 JSON
//! document listing the packages the app's `cargo metadata` resolved for the image's target,
//! each marked by whether its code is in the image. The build report says which crate every
//! kept section came from (the `--by crate` grouping), so a package whose crate owns kept bytes
//! is `required` and records how many, and one whose code section GC dropped entirely (a
//! build-script or proc-macro crate, an unused dependency) is `excluded`. The sysroot crates
//! (`core`, `alloc`, `compiler_builtins`) and C archives that own kept bytes are listed too.
//!
//! CycloneDX rather than SPDX 2.3 because SPDX requires a creation timestamp
//! (`creationInfo.created`), which would make two runs differ, while every CycloneDX field that
//! could vary between runs is optional. The document is deterministic: no timestamp, its serial
//! number derived from the image manifest's digest, components sorted, no host paths.

use std::collections::BTreeMap;

use cargo_metadata::Metadata;
use serde_json::{Value, json};
use uniklink_analyzer::report::OwnerRow;

/// The SBOM blob's media type and the referrer manifest's `artifactType` (IANA-registered).
pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// Crates of the Rust toolchain's prebuilt sysroot, which `cargo metadata` does not list.
const SYSROOT_CRATES: &[&str] = &["core", "alloc", "compiler_builtins"];
/// How the size report names the owner of sections from a C archive: `C archive <file>`.
const C_ARCHIVE: &str = "C archive ";

/// A package of the app's dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// The name its library's sections carry in the size report (`-` as `_`).
    pub crate_name: String,
    /// `crates.io`, `git+<url>#<commit>`, another registry's URL, or `path` for a local
    /// package (its path is left out: it would differ between checkouts).
    pub source: String,
    /// The SPDX license expression of its `Cargo.toml`.
    pub license: Option<String>,
    /// The app's own package, the root of the graph.
    pub app: bool,
    /// The packages it depends on for its build and code (dev-dependencies left out), as
    /// `name@version`.
    pub depends_on: Vec<String>,
}

/// The packages of `metadata`'s resolved graph.
pub fn packages(metadata: &Metadata) -> Vec<Package> {
    let root = metadata.resolve.as_ref().and_then(|r| r.root.as_ref());
    let resolved: Vec<&cargo_metadata::PackageId> = match &metadata.resolve {
        Some(resolve) => resolve.nodes.iter().map(|n| &n.id).collect(),
        None => metadata.packages.iter().map(|p| &p.id).collect(),
    };
    let name_version = |id: &cargo_metadata::PackageId| {
        metadata
            .packages
            .iter()
            .find(|p| &p.id == id)
            .map(|p| format!("{}@{}", p.name, p.version))
    };
    let depends_on = |id: &cargo_metadata::PackageId| -> Vec<String> {
        let node = metadata
            .resolve
            .as_ref()
            .and_then(|r| r.nodes.iter().find(|n| &n.id == id));
        let mut deps: Vec<String> = node
            .into_iter()
            .flat_map(|n| &n.deps)
            .filter(|d| {
                d.dep_kinds
                    .iter()
                    .any(|k| k.kind != cargo_metadata::DependencyKind::Development)
            })
            .filter_map(|d| name_version(&d.pkg))
            .collect();
        deps.sort();
        deps.dedup();
        deps
    };
    metadata
        .packages
        .iter()
        .filter(|p| resolved.contains(&&p.id))
        .map(|p| {
            let library = p.targets.iter().find(|t| {
                t.kind.iter().any(|k| {
                    matches!(
                        k,
                        cargo_metadata::TargetKind::Lib
                            | cargo_metadata::TargetKind::RLib
                            | cargo_metadata::TargetKind::StaticLib
                            | cargo_metadata::TargetKind::ProcMacro
                    )
                })
            });
            let source = match &p.source {
                None => "path".to_owned(),
                Some(s) if s.is_crates_io() => "crates.io".to_owned(),
                Some(s) => s.repr.clone(),
            };
            Package {
                name: p.name.to_string(),
                version: p.version.to_string(),
                crate_name: library
                    .map_or_else(|| p.name.to_string(), |t| t.name.clone())
                    .replace('-', "_"),
                source,
                license: p.license.clone(),
                app: Some(&p.id) == root,
                depends_on: depends_on(&p.id),
            }
        })
        .collect()
}

/// The image an SBOM describes.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The manifest's `name`.
    pub name: &'a str,
    /// The OCI architecture (`amd64`, `arm64`).
    pub arch: &'a str,
    /// The image manifest's digest, `sha256:<hex>`.
    pub manifest_digest: &'a str,
    pub build_id: Option<&'a str>,
}

/// A UUID (version 8, RFC 9562's custom layout) made of the first bytes of a digest, so the
/// same image always gets the same serial number.
fn serial_number(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let mut nibbles: Vec<char> = hex.chars().chain(std::iter::repeat('0')).take(32).collect();
    nibbles[12] = '8';
    // The variant: the two high bits of the 17th nibble are 10.
    let variant = nibbles[16].to_digit(16).unwrap_or(0) & 0x3 | 0x8;
    nibbles[16] = char::from_digit(variant, 16).unwrap_or('8');
    let s: String = nibbles.into_iter().collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    )
}

fn property(name: &str, value: impl ToString) -> Value {
    json!({ "name": name, "value": value.to_string() })
}

/// The CycloneDX document for `subject`: `packages` from `cargo metadata`, `crates` the size
/// report's bytes per crate, `rustc` the toolchain's release (the sysroot crates' version).
pub fn document(
    subject: Subject<'_>,
    packages: &[Package],
    crates: &[OwnerRow],
    rustc: Option<&str>,
) -> Value {
    let kept: BTreeMap<&str, u64> = crates
        .iter()
        .map(|row| (row.owner.as_str(), row.size))
        .collect();
    // Keyed by bom-ref, so the list comes out sorted and a package listed twice once.
    let mut components: BTreeMap<String, Value> = BTreeMap::new();
    let mut dependencies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in packages {
        let bytes = kept.get(package.crate_name.as_str()).copied();
        let bom_ref = format!("cargo:{}@{}", package.name, package.version);
        let mut component = json!({
            "type": if package.app { "application" } else { "library" },
            "bom-ref": bom_ref,
            "name": package.name,
            "version": package.version,
            "scope": if bytes.is_some() { "required" } else { "excluded" },
            "properties": [
                property("uniklink:source", &package.source),
                property("uniklink:kept-bytes", bytes.unwrap_or(0)),
            ],
        });
        if package.source == "crates.io" {
            component["purl"] = json!(format!("pkg:cargo/{}@{}", package.name, package.version));
        }
        if let Some(license) = &package.license {
            component["licenses"] = json!([{ "expression": license }]);
        }
        dependencies.insert(
            bom_ref.clone(),
            package
                .depends_on
                .iter()
                .map(|dep| format!("cargo:{dep}"))
                .collect(),
        );
        components.insert(bom_ref, component);
    }
    for (owner, bytes) in &kept {
        let (bom_ref, name, source, version) = if SYSROOT_CRATES.contains(owner) {
            (
                format!("rust-sysroot:{owner}"),
                *owner,
                "rust toolchain",
                rustc,
            )
        } else if let Some(archive) = owner.strip_prefix(C_ARCHIVE) {
            (format!("c-archive:{archive}"), archive, "C archive", None)
        } else {
            continue;
        };
        let mut component = json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": name,
            "scope": "required",
            "properties": [
                property("uniklink:source", source),
                property("uniklink:kept-bytes", bytes),
            ],
        });
        if let Some(version) = version {
            component["version"] = json!(version);
        }
        components.insert(bom_ref, component);
    }
    let hex = subject
        .manifest_digest
        .strip_prefix("sha256:")
        .unwrap_or(subject.manifest_digest);
    let mut properties = vec![property(
        "uniklink:manifest-digest",
        subject.manifest_digest,
    )];
    if let Some(id) = subject.build_id {
        properties.push(property("uniklink:build-id", id));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial_number(subject.manifest_digest),
        "version": 1,
        "metadata": {
            "tools": { "components": [{
                "type": "application",
                "name": "uniklink",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": subject.name,
                "purl": format!("pkg:oci/{}@sha256%3A{hex}?arch={}", subject.name, subject.arch),
            },
            "properties": properties,
        },
        "components": components.into_values().collect::<Vec<_>>(),
        "dependencies": dependencies
            .into_iter()
            .map(|(bom_ref, depends_on)| json!({ "ref": bom_ref, "dependsOn": depends_on }))
            .collect::<Vec<_>>(),
    })
}

/// The release of the `rustc` that builds in `dir` (where a `rust-toolchain.toml` may pick
/// it), as `rustc -vV` reports it; `None` if it cannot be run.
pub fn rustc_release(dir: &std::path::Path) -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = std::process::Command::new(rustc)
        .arg("-vV")
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("release: "))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, crate_name: &str, source: &str, app: bool) -> Package {
        Package {
            name: name.to_owned(),
            version: "1.2.3".to_owned(),
            crate_name: crate_name.to_owned(),
            source: source.to_owned(),
            license: Some("MIT".to_owned()),
            app,
            depends_on: if app {
                vec!["unik-rt@1.2.3".to_owned()]
            } else {
                Vec::new()
            },
        }
    }

    fn row(owner: &str, size: u64) -> OwnerRow {
        OwnerRow {
            owner: owner.to_owned(),
            size,
            retained: size,
        }
    }

    fn subject(digest: &str) -> Subject<'_> {
        Subject {
            name: "hello",
            arch: "amd64",
            manifest_digest: digest,
            build_id: Some("abcd"),
        }
    }

    #[test]
    fn kept_crates_are_required_and_dropped_ones_excluded() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let doc = document(
            subject(&digest),
            &[
                package("hello", "hello", "path", true),
                package("unik-rt", "unik_rt", "path", false),
                package("smoltcp", "smoltcp", "crates.io", false),
            ],
            &[
                row("hello", 10),
                row("unik_rt", 200),
                row("core", 300),
                row("C archive liblfs.a", 40),
                row("linker-generated", 8),
            ],
            Some("1.95.0"),
        );
        let components = doc["components"].as_array().unwrap();
        let by_ref = |r: &str| {
            components
                .iter()
                .find(|c| c["bom-ref"] == r)
                .unwrap_or_else(|| panic!("no {r} in {doc:#}"))
        };
        assert_eq!(by_ref("cargo:hello@1.2.3")["type"], "application");
        assert_eq!(by_ref("cargo:unik-rt@1.2.3")["scope"], "required");
        assert_eq!(
            by_ref("cargo:unik-rt@1.2.3")["properties"][1]["value"],
            "200"
        );
        assert_eq!(by_ref("cargo:smoltcp@1.2.3")["scope"], "excluded");
        assert_eq!(
            by_ref("cargo:smoltcp@1.2.3")["purl"],
            "pkg:cargo/smoltcp@1.2.3"
        );
        assert!(by_ref("cargo:unik-rt@1.2.3").get("purl").is_none());
        assert_eq!(by_ref("rust-sysroot:core")["version"], "1.95.0");
        assert_eq!(by_ref("c-archive:liblfs.a")["scope"], "required");
        assert_eq!(components.len(), 5, "linker-generated is no component");
        let refs: Vec<&str> = components
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        let mut sorted = refs.clone();
        sorted.sort_unstable();
        assert_eq!(refs, sorted);
        let app = doc["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == "cargo:hello@1.2.3")
            .unwrap();
        assert_eq!(app["dependsOn"], json!(["cargo:unik-rt@1.2.3"]));
    }

    #[test]
    fn the_serial_number_is_a_uuid_derived_from_the_digest() {
        let a = serial_number(&format!("sha256:{}", "f".repeat(64)));
        assert_eq!(a, "urn:uuid:ffffffff-ffff-8fff-bfff-ffffffffffff");
        let b = serial_number(&format!("sha256:{}", "0".repeat(64)));
        assert_eq!(b, "urn:uuid:00000000-0000-8000-8000-000000000000");
        let digest = format!("sha256:{}", "12".repeat(32));
        assert_eq!(
            document(subject(&digest), &[], &[], None),
            document(subject(&digest), &[], &[], None)
        );
    }
}
