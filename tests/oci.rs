//! `cargo uniklink pkg`, `push`, `pull` and `run REF` (issue #18): the hello image for both
//! architectures as an OCI image layout, read back by an independent client (skopeo).

#[path = "common/apps.rs"]
#[allow(dead_code, reason = "only the runner and its root are used here")]
mod apps;

use std::path::Path;
use std::process::Command;

use apps::{assert_success, uniklink};

/// `pkg` of manifests/hello.yaml into `out`, returning its JSON summary.
fn pkg(out: &Path, tag: &str) -> serde_json::Value {
    let output = uniklink()
        .args([
            "pkg",
            "-m",
            "manifests/hello.yaml",
            "--release",
            "--json",
            "--tag",
            tag,
        ])
        .arg("--output")
        .arg(out)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink pkg runs");
    assert_success(&output, "pkg");
    serde_json::from_slice(&output.stdout).expect("pkg --json prints JSON")
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (Debian package skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn layout_arg(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

#[test]
fn pkg_writes_a_reproducible_layout_that_skopeo_reads() {
    let dir = tempfile::tempdir().unwrap();
    let first = pkg(&dir.path().join("a"), "v1");
    let second = pkg(&dir.path().join("b"), "v1");
    assert_eq!(
        first["index_digest"], second["index_digest"],
        "two runs, one digest"
    );
    let manifests = first["manifests"].as_array().unwrap();
    let arches: Vec<&str> = manifests
        .iter()
        .map(|m| m["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["x86_64", "aarch64"]);

    // skopeo picks the manifest for its host (amd64) from the index.
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &layout_arg(&dir.path().join("a"), "v1"),
    ]))
    .unwrap();
    assert_eq!(inspect["Architecture"], "amd64", "{inspect:#}");
    assert_eq!(
        inspect["Layers"][0], manifests[0]["layer_digest"],
        "{inspect:#}"
    );
    assert_eq!(inspect["Labels"]["dev.uniklink.platform"], "qemu-microvm");
    let raw: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        &layout_arg(&dir.path().join("a"), "v1"),
    ]))
    .unwrap();
    assert_eq!(
        raw["manifests"][0]["digest"], manifests[0]["manifest_digest"],
        "{raw:#}"
    );
    let manifest_hex = manifests[0]["manifest_digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("a/blobs/sha256").join(manifest_hex)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["annotations"]["com.urunc.unikernel.binary"], "/unikernel/hello-x86_64.elf",
        "{manifest:#}"
    );

    // A copy by an independent client keeps every digest (skopeo would gzip the
    // uncompressed layers for an `oci:` destination unless told to keep them).
    let copy = dir.path().join("copy");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &layout_arg(&dir.path().join("a"), "v1"),
        &layout_arg(&copy, "v1"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"], first["index_digest"],
        "{index:#}"
    );
    for manifest in manifests {
        for digest in [&manifest["manifest_digest"], &manifest["layer_digest"]] {
            let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
            assert!(
                copy.join("blobs/sha256").join(hex).is_file(),
                "{digest} copied"
            );
        }
    }
}

#[test]
fn a_bad_tag_is_refused_before_anything_builds() {
    let dir = tempfile::tempdir().unwrap();
    let out = uniklink()
        .args(["pkg", "-m", "manifests/hello.yaml", "--tag", "no/slashes"])
        .arg("--output")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`no/slashes` is not a tag"));
    assert!(!dir.path().join("x").exists());
}
