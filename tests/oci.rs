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

/// A CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1, with its storage
/// in a temporary directory; dropping it stops it.
struct Registry {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry starts (Debian package docker-registry)");
        // Bounded: a registry that never listens fails the test, it does not hang it.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Registry { child, port, dir };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("docker-registry did not listen on 127.0.0.1:{port}");
    }

    fn reference(&self, name_tag: &str) -> String {
        format!("127.0.0.1:{}/{name_tag}", self.port)
    }

    /// The registry's stored copy of blob `digest`.
    fn blob_file(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uniklink_status(args: &[&str]) -> (Option<i32>, String, String) {
    let out = uniklink().args(args).output().expect("cargo-uniklink runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn push_pull_and_run_from_a_real_registry() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("hello.oci");
    let packaged = pkg(&layout, "latest");
    let index_digest = packaged["index_digest"].as_str().unwrap().to_owned();
    let reference = registry.reference("apps/hello:t1");
    let (status, _, stderr) = uniklink_status(&[
        "push",
        &reference,
        "--insecure",
        "--layout",
        layout.to_str().unwrap(),
    ]);
    assert_eq!(status, Some(0), "{stderr}");

    // An independent client sees the same image.
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], index_digest, "{inspect:#}");
    let copy = dir.path().join("copy");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &layout_arg(&copy, "t1"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], index_digest, "{index:#}");

    // pull gives back the same index.
    let pulled = dir.path().join("pulled.oci");
    let (status, _, stderr) = uniklink_status(&[
        "pull",
        &reference,
        "--insecure",
        "-o",
        pulled.to_str().unwrap(),
    ]);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stderr.contains(&index_digest), "{stderr}");

    // run boots straight from the reference, and from the pulled layout.
    for image in [reference.as_str(), pulled.to_str().unwrap()] {
        let (status, stdout, stderr) = uniklink_status(&[
            "run",
            image,
            "--insecure",
            "--accel",
            "tcg",
            "--timeout",
            "120",
        ]);
        assert_eq!(status, Some(0), "{image}: {stderr}");
        assert!(stdout.contains("Hello from uniklink!"), "{image}: {stdout}");
    }
    let (status, _, stderr) = uniklink_status(&[
        "run",
        pulled.to_str().unwrap(),
        "--arch",
        "aarch64",
        "--accel",
        "tcg",
        "--timeout",
        "120",
    ]);
    assert_eq!(
        status,
        Some(0),
        "the aarch64 image of the same layout: {stderr}"
    );

    // Bad references, a missing tag and an unreachable registry: clear errors, exit 1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    for (image, says) in [
        (registry.reference("apps/hello:nope"), "no manifest `nope`"),
        (
            format!("127.0.0.1:{closed}/apps/hello:t1"),
            "cannot reach the registry",
        ),
        ("hello:t1".to_owned(), "is not an image reference"),
        (
            registry.reference("Apps/hello"),
            "is not an image reference",
        ),
    ] {
        let (status, _, stderr) = uniklink_status(&["run", &image, "--insecure", "--accel", "tcg"]);
        assert_eq!(status, Some(1), "{image}: {stderr}");
        assert!(stderr.contains(says), "{image}: {stderr}");
    }

    // A tampered blob in the registry is refused before anything boots.
    let layer = packaged["manifests"][0]["layer_digest"].as_str().unwrap();
    let stored = registry.blob_file(layer);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    let (status, stdout, stderr) =
        uniklink_status(&["run", &reference, "--insecure", "--accel", "tcg"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    assert!(!stdout.contains("Hello"), "nothing booted: {stdout}");
}
