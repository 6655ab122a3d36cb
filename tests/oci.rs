//! `cargo uniklink pkg`, `push`, `pull` and `run REF` (issue #18): the hello image for both
//! architectures as an OCI image layout with its SBOM, read back by an independent client
//! (skopeo); a registry that wants bearer tokens from a token service; the baked-files layer;
//! `run REF --publish`.

#[path = "common/apps.rs"]
#[allow(dead_code, reason = "only the runner and its root are used here")]
mod apps;

use std::path::Path;
use std::process::Command;

use apps::{assert_success, uniklink};

/// `pkg --sbom` of manifests/hello.yaml into `out`, returning its JSON summary.
fn pkg(out: &Path, tag: &str) -> serde_json::Value {
    pkg_manifest(Path::new("manifests/hello.yaml"), out, tag)
}

/// `pkg --sbom` of `manifest` into `out`, returning its JSON summary.
fn pkg_manifest(manifest: &Path, out: &Path, tag: &str) -> serde_json::Value {
    let output = uniklink()
        .args(["pkg", "--release", "--sbom", "--json", "--tag", tag, "-m"])
        .arg(manifest)
        .arg("--output")
        .arg(out)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink pkg runs");
    assert_success(&output, "pkg");
    serde_json::from_slice(&output.stdout).expect("pkg --json prints JSON")
}

/// An error report's words, without the line breaks and margins it is wrapped with.
fn words(report: &str) -> String {
    report
        .split_whitespace()
        .filter(|word| *word != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The blob `digest` of the layout at `layout`.
fn blob(layout: &Path, digest: &serde_json::Value) -> Vec<u8> {
    let hex = digest
        .as_str()
        .expect("a digest")
        .trim_start_matches("sha256:");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("the blob is in the layout")
}

fn json_blob(layout: &Path, digest: &serde_json::Value) -> serde_json::Value {
    serde_json::from_slice(&blob(layout, digest)).expect("a JSON blob")
}

/// The names and contents of a tar layer's entries.
fn tar_entries(layer: &[u8]) -> Vec<(String, Vec<u8>)> {
    tar::Archive::new(layer)
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// The CycloneDX component of `doc` named `name`.
fn component<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {doc:#}"))
}

/// What an SBOM of hello says: unik-rt's code is in the image, the build dependencies of
/// nothing are, the sysroot's `core` is.
fn assert_hello_sbom(doc: &serde_json::Value, manifest_digest: &serde_json::Value) {
    assert_eq!(doc["bomFormat"], "CycloneDX", "{doc:#}");
    assert_eq!(doc["specVersion"], "1.5");
    assert!(doc["metadata"].get("timestamp").is_none(), "no timestamp");
    let hex = manifest_digest
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(
        doc["serialNumber"]
            .as_str()
            .unwrap()
            .starts_with(&format!("urn:uuid:{}-", &hex[..8])),
        "the serial number comes from the image digest: {doc:#}"
    );
    let rt = component(doc, "unik-rt");
    assert_eq!(rt["scope"], "required", "{rt:#}");
    assert_eq!(rt["version"], "0.1.0");
    let kept: u64 = rt["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "uniklink:kept-bytes")
        .and_then(|p| p["value"].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(kept > 0, "{rt:#}");
    assert_eq!(component(doc, "hello")["type"], "application");
    let hello_deps = doc["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == "cargo:hello@0.1.0")
        .unwrap_or_else(|| panic!("hello's dependencies: {doc:#}"));
    assert_eq!(
        hello_deps["dependsOn"],
        serde_json::json!(["cargo:unik@0.1.0"])
    );
    assert_eq!(component(doc, "core")["scope"], "required");
    // scopeguard is in hello's dependency graph (through talc's lock_api), but hello never
    // allocates, so none of its code is in the image.
    let scopeguard = component(doc, "scopeguard");
    assert_eq!(scopeguard["scope"], "excluded", "{scopeguard:#}");
    assert!(
        scopeguard["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:cargo/scopeguard@")
    );
    let text = doc.to_string();
    assert!(!text.contains(apps::ROOT), "no host paths: {doc:#}");
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
    let layout = dir.path().join("a");
    let manifest = json_blob(&layout, &manifests[0]["manifest_digest"]);
    assert_eq!(
        manifest["annotations"]["com.urunc.unikernel.binary"], "/unikernel/hello-x86_64.elf",
        "{manifest:#}"
    );

    // The kernel's layer holds the kernel alone; its DWARF is in a layer of its own.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers[0]["digest"], manifests[0]["layer_digest"]);
    assert_eq!(layers[0]["annotations"]["dev.uniklink.content"], "kernel");
    assert_eq!(
        layers[0]["annotations"]["org.unikraft.kernel.image"],
        "/unikernel/hello-x86_64.elf"
    );
    let kernel_layer = tar_entries(&blob(&layout, &layers[0]["digest"]));
    let names: Vec<&str> = kernel_layer.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["unikernel/", "unikernel/hello-x86_64.elf"]);
    assert!(kernel_layer[1].1.starts_with(b"\x7fELF"));
    let debug = &manifests[0]["debug_layer_digest"];
    assert!(debug.is_string(), "the release build has DWARF: {first:#}");
    let debug_layer = layers
        .iter()
        .find(|l| l["digest"] == *debug)
        .expect("the debug layer is in the manifest");
    assert_eq!(debug_layer["annotations"]["dev.uniklink.content"], "debug");
    let names: Vec<String> = tar_entries(&blob(&layout, debug))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["unikernel/", "unikernel/hello-x86_64.elf.debug"]);
    assert!(
        manifests[0]["files_layer_digest"].is_null(),
        "hello bakes no files"
    );
    // urunc's settings as the `/urunc.json` it reads when annotations do not reach it.
    let urunc_layer = layers
        .iter()
        .find(|l| l["annotations"]["dev.uniklink.content"] == "urunc")
        .expect("a urunc.json layer");
    let urunc_files = tar_entries(&blob(&layout, &urunc_layer["digest"]));
    assert_eq!(urunc_files.len(), 1);
    assert_eq!(urunc_files[0].0, "urunc.json");
    let urunc: serde_json::Value = serde_json::from_slice(&urunc_files[0].1).unwrap();
    let decoded = |key: &str| {
        use base64::Engine as _;
        let value = urunc[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {urunc:#}"));
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        decoded("com.urunc.unikernel.binary"),
        "/unikernel/hello-x86_64.elf"
    );
    assert_eq!(decoded("com.urunc.unikernel.hypervisor"), "qemu");
    let config = json_blob(&layout, &manifest["config"]["digest"]);
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        layers.len(),
        "{config:#}"
    );

    // Each image's SBOM: the same in both runs, a referrer of its manifest listed in the
    // layout's index.json.
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    for (one, other) in manifests
        .iter()
        .zip(second["manifests"].as_array().unwrap())
    {
        assert_eq!(
            one["sbom_digest"], other["sbom_digest"],
            "two runs, one SBOM"
        );
        assert_eq!(one["sbom_manifest_digest"], other["sbom_manifest_digest"]);
        let listed = top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == one["sbom_manifest_digest"])
            .unwrap_or_else(|| panic!("index.json lists the SBOM: {top:#}"));
        assert_eq!(listed["artifactType"], "application/vnd.cyclonedx+json");
        let referrer = json_blob(&layout, &one["sbom_manifest_digest"]);
        assert_eq!(
            referrer["subject"]["digest"], one["manifest_digest"],
            "{referrer:#}"
        );
        assert_eq!(referrer["artifactType"], "application/vnd.cyclonedx+json");
        assert_eq!(
            referrer["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(referrer["layers"][0]["digest"], one["sbom_digest"]);
        assert_hello_sbom(
            &json_blob(&layout, &one["sbom_digest"]),
            &one["manifest_digest"],
        );
    }

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

/// `-o` replaces only what a layout may replace: a directory holding anything but an image
/// layout, or a file, is refused before anything builds or is written, and nothing is left
/// beside it; an image layout is replaced.
#[test]
fn pkg_replaces_a_layout_but_no_other_directory_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("src");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("main.rs"), "fn main() {}\n").unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me\n").unwrap();
    let here = dir.path().join("src/.");
    for (out, what) in [
        (
            &tree,
            "a directory that is neither empty nor an image layout",
        ),
        (&file, "not a directory"),
        (&here, "a path without a name of its own"),
    ] {
        let output = uniklink()
            .args(["pkg", "-m", "manifests/hello.yaml", "--output"])
            .arg(out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let words = words(&stderr);
        assert!(
            words.contains("not replaced") && words.contains(what),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(tree.join("main.rs")).unwrap(),
        b"fn main() {}\n"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me\n");

    let layout = dir.path().join("hello.oci");
    pkg(&layout, "v1");
    pkg(&layout, "v2");
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(
        index.contains("\"v2\"") && !index.contains("\"v1\""),
        "{index}"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["hello.oci", "notes.txt", "src"]);
}

/// A layout's blobs are read only when they are regular files named by their digest: a FIFO
/// there would block the read forever, a link to /dev/zero would fill memory.
#[test]
fn a_layout_with_a_fifo_or_link_among_its_blobs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("hello.oci");
    pkg(&layout, "latest");
    let blobs = layout.join("blobs/sha256");
    let odd = blobs.join("a".repeat(64));
    let status = Command::new("mkfifo").arg(&odd).status().unwrap();
    assert!(status.success());
    let refused = |what: &str| {
        let output = Command::new("timeout")
            .arg("60")
            .arg(env!("CARGO_BIN_EXE_cargo-uniklink"))
            .args(["uniklink", "run", "--accel", "tcg"])
            .arg(&layout)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.contains(what), "{stderr}");
    };
    refused("not a regular file");
    std::fs::remove_file(&odd).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &odd).unwrap();
    refused("not a regular file");
    std::fs::remove_file(&odd).unwrap();
    std::fs::write(blobs.join("README"), "hi\n").unwrap();
    refused("no SHA-256 digest");
}

/// A Docker config file that is there but broken is an error naming it, before any request:
/// going on without its credentials would only end in the registry's refusal.
#[test]
fn a_broken_docker_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{\"auths\": ").unwrap();
    let output = uniklink()
        .env("DOCKER_CONFIG", dir.path())
        .env_remove("UNIKLINK_REGISTRY_USERNAME")
        .env_remove("UNIKLINK_REGISTRY_PASSWORD")
        .args(["pull", "--insecure", "127.0.0.1:9/app:latest", "-o"])
        .arg(dir.path().join("app.oci"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("config.json"), "{stderr}");
    assert!(
        words(&stderr).contains("the Docker config file"),
        "{stderr}"
    );
    assert!(!dir.path().join("app.oci").exists());
}

/// A registry that lies, which the real one (it checks what it stores) cannot be made to:
/// on 127.0.0.1, it answers each `GET /v2/app/<path>` with the body `routes` gives `<path>`,
/// 404 for anything else, and records the paths asked for.
fn lying_registry(
    routes: std::collections::HashMap<String, Vec<u8>>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&asked);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                    break;
                }
            }
            let path = request.split(' ').nth(1).unwrap_or_default();
            record.lock().unwrap().push(path.to_owned());
            let reply = match path.strip_prefix("/v2/app/").and_then(|p| routes.get(p)) {
                Some(body) => {
                    let mut reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    reply.extend_from_slice(body);
                    reply
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    (port, asked)
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// A pull is held to what the manifests state and to fixed bounds: an index of more than 64
/// manifests is refused; a blob longer than its descriptor's size is refused as it arrives;
/// a blob named by several manifests is fetched once. Nothing is written for a refused pull.
#[test]
fn a_pull_from_a_lying_registry_is_bounded() {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let pull = |port: u16, out: &Path| {
        let output = uniklink()
            .env_remove("DOCKER_CONFIG")
            .env("HOME", dir.path())
            .args([
                "pull",
                "--insecure",
                &format!("127.0.0.1:{port}/app:latest"),
                "-o",
            ])
            .arg(out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), words(&stderr))
    };
    let index_of = |manifests: Vec<serde_json::Value>| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .unwrap()
    };
    let manifest_of = |config: &[u8], layers: &[(&[u8], usize)]| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(config), "size": config.len()},
            "layers": layers.iter().map(|(bytes, size)| serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(bytes), "size": size,
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let descriptor = |bytes: &[u8]| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(bytes), "size": bytes.len(),
        })
    };

    // 65 manifests in the index.
    let config = b"{}".to_vec();
    let manifest = manifest_of(&config, &[]);
    let index = index_of(vec![descriptor(&manifest); 65]);
    let out = dir.path().join("many.oci");
    let (port, _) = lying_registry(HashMap::from([("manifests/latest".to_owned(), index)]));
    let (code, stderr) = pull(port, &out);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("65 manifests, more than 64"), "{stderr}");
    assert!(!out.exists());

    // A layer of 100 bytes whose descriptor says 10.
    let layer = vec![7u8; 100];
    let manifest = manifest_of(&config, &[(&layer, 10)]);
    let index = index_of(vec![descriptor(&manifest)]);
    let mut routes = HashMap::from([
        ("manifests/latest".to_owned(), index.clone()),
        (format!("manifests/{}", sha256(&manifest)), manifest.clone()),
        (format!("blobs/{}", sha256(&config)), config.clone()),
        (format!("blobs/{}", sha256(&layer)), layer.clone()),
    ]);
    let out = dir.path().join("long.oci");
    let (code, stderr) = pull(lying_registry(routes.clone()).0, &out);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("reading a blob"), "{stderr}");
    assert!(!out.exists());

    // Told the truth, the same layer named twice and by two manifests is one blob.
    let manifest = manifest_of(&config, &[(&layer, 100), (&layer, 100)]);
    let other = manifest_of(b"{ }", &[(&layer, 100)]);
    routes.insert(
        "manifests/latest".to_owned(),
        index_of(vec![descriptor(&manifest), descriptor(&other)]),
    );
    routes.insert(format!("manifests/{}", sha256(&manifest)), manifest.clone());
    routes.insert(format!("manifests/{}", sha256(&other)), other.clone());
    routes.insert(format!("blobs/{}", sha256(b"{ }")), b"{ }".to_vec());
    let out = dir.path().join("shared.oci");
    let (port, asked) = lying_registry(routes);
    let (code, stderr) = pull(port, &out);
    assert_eq!(code, Some(0), "{stderr}");
    let blobs = std::fs::read_dir(out.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 6, "index, two manifests, two configs, one layer");
    let layer_path = format!("/v2/app/blobs/{}", sha256(&layer));
    let asked = asked.lock().unwrap();
    assert_eq!(
        asked.iter().filter(|p| **p == layer_path).count(),
        1,
        "{asked:#?}"
    );
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
        Registry::start_with("")
    }

    /// A registry whose configuration has `extra` appended (an `auth:` section).
    fn start_with(extra: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
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

/// `push REFERENCE --insecure --layout LAYOUT`, which must succeed.
fn push_insecure(reference: &str, layout: &Path) {
    let (status, _, stderr) = uniklink_status(&[
        "push",
        reference,
        "--insecure",
        "--layout",
        layout.to_str().unwrap(),
    ]);
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn push_pull_and_run_from_a_real_registry() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("hello.oci");
    let packaged = pkg(&layout, "latest");
    let index_digest = packaged["index_digest"].as_str().unwrap().to_owned();
    let reference = registry.reference("apps/hello:t1");
    push_insecure(&reference, &layout);

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

    // Distribution 2.x has no referrers API, so each SBOM is listed under its image's
    // referrers tag (`sha256-<hex>`), where skopeo finds it; skopeo copies the SBOM artifact
    // itself with its digests unchanged.
    let amd64 = &packaged["manifests"][0];
    let subject_hex = amd64["manifest_digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let listed: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!(
            "docker://{}:sha256-{subject_hex}",
            registry.reference("apps/hello")
        ),
    ]))
    .unwrap();
    assert_eq!(
        listed["manifests"][0]["digest"], amd64["sbom_manifest_digest"],
        "{listed:#}"
    );
    assert_eq!(
        listed["manifests"][0]["artifactType"],
        "application/vnd.cyclonedx+json"
    );
    let sbom_copy = dir.path().join("sbom-copy");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!(
            "docker://{}@{}",
            registry.reference("apps/hello"),
            amd64["sbom_manifest_digest"].as_str().unwrap()
        ),
        &layout_arg(&sbom_copy, "sbom"),
    ]);
    assert_hello_sbom(
        &json_blob(&sbom_copy, &amd64["sbom_digest"]),
        &amd64["manifest_digest"],
    );

    // A reference to one architecture's manifest is no image index: refused, nothing written.
    let by_manifest = registry.reference(&format!(
        "apps/hello@{}",
        amd64["manifest_digest"].as_str().unwrap()
    ));
    let one = dir.path().join("one.oci");
    let (status, _, stderr) = uniklink_status(&[
        "pull",
        &by_manifest,
        "--insecure",
        "-o",
        one.to_str().unwrap(),
    ]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(words(&stderr).contains("not an image index"), "{stderr}");
    assert!(!one.exists());

    // pull gives back the same index, and the SBOMs.
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
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    for manifest in packaged["manifests"].as_array().unwrap() {
        assert!(
            top["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["digest"] == manifest["sbom_manifest_digest"]),
            "{top:#}"
        );
        assert_hello_sbom(
            &json_blob(&pulled, &manifest["sbom_digest"]),
            &manifest["manifest_digest"],
        );
    }

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

    // hello serves no port, so there is none to publish.
    let (status, _, stderr) =
        uniklink_status(&["run", &reference, "--insecure", "--publish", "8080:80"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("the image exposes no port 80 (its config exposes: none)"),
        "{stderr}"
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

/// A token service for a registry with `auth: token:`, on 127.0.0.1: it signs RS256 JWTs with
/// a key and self-signed certificate the `openssl` CLI makes, the certificate in the `x5c`
/// header, which distribution checks against its `rootcertbundle`. `tester:secret` gets the
/// actions it asks for; anyone else gets `pull` only. It records the requests it answers.
struct TokenIssuer {
    port: u16,
    cert: std::path::PathBuf,
    /// Each request's path and query, and whether it carried the right Basic credentials.
    requests: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
    _dir: tempfile::TempDir,
}

const ISSUER: &str = "uniklink-test-issuer";
const SERVICE: &str = "uniklink-test-registry";

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenIssuer {
    fn start() -> TokenIssuer {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN={ISSUER}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs (Debian package openssl)");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(der.status.success());
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::default();
        let seen = std::sync::Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                Self::answer(stream, &key, &x5c, &seen);
            }
        });
        TokenIssuer {
            port,
            cert,
            requests,
            _dir: dir,
        }
    }

    /// The registry configuration's `auth:` section for this issuer.
    fn registry_auth(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.cert.display()
        )
    }

    fn answer(
        mut stream: std::net::TcpStream,
        key: &Path,
        x5c: &str,
        seen: &std::sync::Mutex<Vec<(String, bool)>>,
    ) {
        use std::io::{BufRead as _, Write as _};
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut authorized = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("authorization")
            {
                use base64::Engine as _;
                let expected = base64::engine::general_purpose::STANDARD.encode("tester:secret");
                authorized = value.trim() == format!("Basic {expected}");
            }
        }
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        seen.lock().unwrap().push((target.clone(), authorized));
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let access: Vec<serde_json::Value> = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("scope="))
            .map(|scope| {
                let scope = scope
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%2C", ",");
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (
                    parts.next().unwrap_or_default().to_owned(),
                    parts.next().unwrap_or_default().to_owned(),
                    parts.next().unwrap_or_default(),
                );
                let granted: Vec<&str> = actions
                    .split(',')
                    .filter(|a| authorized || *a == "pull")
                    .collect();
                serde_json::json!({ "type": kind, "name": name, "actions": granted })
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [x5c] });
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": if authorized { "tester" } else { "" },
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 60,
            "iat": now,
            "jti": format!("{now}-{}", seen.lock().unwrap().len()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        openssl
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let signature = openssl.wait_with_output().unwrap();
        assert!(signature.status.success(), "openssl dgst -sign");
        let token = format!("{signing_input}.{}", base64url(&signature.stdout));
        // The token spec's `token` for those who log in, OAuth 2's `access_token` for the
        // anonymous, so the client is seen reading both.
        let field = if authorized { "token" } else { "access_token" };
        let body = serde_json::json!({ field: token }).to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

#[test]
fn push_and_pull_with_bearer_tokens_from_a_token_service() {
    let issuer = TokenIssuer::start();
    let registry = Registry::start_with(&issuer.registry_auth());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("hello.oci");
    let packaged = pkg(&layout, "latest");
    let index_digest = packaged["index_digest"].as_str().unwrap();
    let reference = registry.reference("apps/hello:tok");
    // No Docker config of the machine's, and only the credentials each step gives.
    let docker_config = tempfile::tempdir().unwrap();
    let client = |args: &[&str], credentials: bool| {
        let mut cmd = uniklink();
        cmd.args(args)
            .env("DOCKER_CONFIG", docker_config.path())
            .env_remove("UNIKLINK_REGISTRY_USERNAME")
            .env_remove("UNIKLINK_REGISTRY_PASSWORD");
        if credentials {
            cmd.env("UNIKLINK_REGISTRY_USERNAME", "tester")
                .env("UNIKLINK_REGISTRY_PASSWORD", "secret");
        }
        let out = cmd.output().expect("cargo-uniklink runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let layout_arg = layout.to_str().unwrap();
    let push = ["push", &reference, "--insecure", "--layout", layout_arg];

    // Anonymous: the token service grants pull only, and the registry refuses the upload.
    let (status, stderr) = client(&push, false);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("UNIKLINK_REGISTRY_USERNAME"), "{stderr}");

    let (status, stderr) = client(&push, true);
    assert_eq!(status, Some(0), "{stderr}");
    let scope = "scope=repository%3Aapps%2Fhello%3Apull%2Cpush";
    assert!(
        issuer
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|(target, authorized)| *authorized
                && target.starts_with("/token?")
                && target.contains(&format!("service={SERVICE}"))
                && target.contains(scope)),
        "push asked for a pull,push token with credentials: {:?}",
        issuer.requests.lock().unwrap()
    );

    // An independent client logs in through the same token service and sees the image.
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "tester:secret",
        &format!("docker://{reference}"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], index_digest, "{inspect:#}");

    // Pulling needs no credentials: an anonymous pull token, read from `access_token`.
    issuer.requests.lock().unwrap().clear();
    let pulled = dir.path().join("pulled.oci");
    let (status, stderr) = client(
        &[
            "pull",
            &reference,
            "--insecure",
            "-o",
            pulled.to_str().unwrap(),
        ],
        false,
    );
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stderr.contains(index_digest), "{stderr}");
    let requests = issuer.requests.lock().unwrap().clone();
    assert!(
        requests.iter().all(|(target, authorized)| !authorized
            && target.contains("scope=repository%3Aapps%2Fhello%3Apull")
            && !target.contains("%2Cpush")),
        "{requests:?}"
    );
    assert!(!requests.is_empty(), "the pull asked for a token");
    // The SBOMs came along, through the referrers tag the authenticated push wrote.
    let amd64 = &packaged["manifests"][0];
    assert_hello_sbom(
        &json_blob(&pulled, &amd64["sbom_digest"]),
        &amd64["manifest_digest"],
    );

    // A token service nobody answers at: a clear error naming it, exit 1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let unreachable = Registry::start_with(&issuer.registry_auth().replace(
        &format!("127.0.0.1:{}/token", issuer.port),
        &format!("127.0.0.1:{closed}/token"),
    ));
    let (status, stderr) = client(
        &[
            "pull",
            &unreachable.reference("apps/hello:tok"),
            "--insecure",
            "-o",
            dir.path().join("never.oci").to_str().unwrap(),
        ],
        false,
    );
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("getting a token from")
            && stderr.contains(&format!("127.0.0.1:{closed}/token")),
        "{stderr}"
    );
    assert!(!dir.path().join("never.oci").exists());
}

#[test]
fn baked_files_travel_in_a_layer_of_their_own_and_stay_linked() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>baked</h1>").unwrap();
    let manifest = dir.path().join("oci-baked.yaml");
    apps::write_manifest(
        &manifest,
        "oci-baked",
        "baked",
        "x86_64",
        &format!(
            "files:\n  - {{ from: {}, to: /srv/site }}\n",
            site.display()
        ),
    );
    let layout = dir.path().join("baked.oci");
    let packaged = pkg_manifest(&manifest, &layout, "latest");
    let image = &packaged["manifests"][0];
    let files = &image["files_layer_digest"];
    assert!(files.is_string(), "{packaged:#}");
    let manifest_json = json_blob(&layout, &image["manifest_digest"]);
    let layers = manifest_json["layers"].as_array().unwrap();
    assert_eq!(layers[0]["annotations"]["dev.uniklink.content"], "kernel");
    let files_layer = layers
        .iter()
        .find(|l| l["digest"] == *files)
        .expect("the files layer is in the manifest");
    assert_eq!(files_layer["annotations"]["dev.uniklink.content"], "files");
    assert_eq!(
        files_layer["annotations"]["dev.uniklink.files.format"],
        "cpio-newc"
    );
    let entries = tar_entries(&blob(&layout, files));
    assert_eq!(entries[1].0, "unikernel/oci-baked-x86_64.files.cpio");
    let cpio = &entries[1].1;
    assert!(cpio.starts_with(b"070701"), "cpio newc");
    for needle in [&b"srv/site/index.html"[..], b"<h1>baked</h1>"] {
        assert!(
            cpio.windows(needle.len()).any(|w| w == needle),
            "{}",
            String::from_utf8_lossy(needle)
        );
    }
    // The archive is in the kernel too: the image booted from the layout reads the files.
    let (status, stdout, stderr) = uniklink_status(&[
        "run",
        layout.to_str().unwrap(),
        "--accel",
        "tcg",
        "--timeout",
        "120",
    ]);
    assert_eq!(status, Some(0), "{stderr}\n{stdout}");
    assert!(
        stdout.contains("baked: file /srv/site/index.html 14 "),
        "{stdout}"
    );
}

/// A run of `run REF --publish HOST:8080` for httpd; dropping it stops QEMU.
struct Published(std::process::Child);

impl Drop for Published {
    fn drop(&mut self) {
        // SIGINT makes the runner kill QEMU, its own process group, before it exits.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

#[test]
fn run_ref_publishes_the_ports_asked_for_among_those_the_image_exposes() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("httpd.oci");
    pkg_manifest(Path::new("manifests/httpd.yaml"), &layout, "latest");
    let reference = registry.reference("apps/httpd:v1");
    push_insecure(&reference, &layout);

    let (status, _, stderr) =
        uniklink_status(&["run", &reference, "--insecure", "--publish", "9999:81"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr
            .contains("--publish 9999:81: the image exposes no port 81 (its config exposes: 8080)"),
        "{stderr}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut child = uniklink()
        .args(["run", &reference, "--insecure", "--accel", "tcg"])
        .args(["--timeout", "300", "--publish", &format!("{port}:8080")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cargo-uniklink run starts");
    let stdout = child.stdout.take().unwrap();
    let guest = Published(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    // The runner's timeout bounds this: QEMU killed, stdout closes.
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.starts_with("httpd: listening on :8080"));
    assert!(listening, "httpd never listened");
    // Keep draining the console so the guest never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the forward");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(guest);
}

#[test]
fn publish_needs_an_oci_image_and_real_ports() {
    let (status, _, stderr) =
        uniklink_status(&["run", "/no/such/image.elf", "--publish", "8080:80"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("--publish applies to an OCI image"),
        "{stderr}"
    );
    let (status, _, stderr) = uniklink_status(&["run", "127.0.0.1:1/hello", "--publish", "8080:0"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("guest port `0` is not a TCP port"),
        "{stderr}"
    );
}
