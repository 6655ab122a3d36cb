//! The example manifests are more than valid: every one whose app is a cargo package builds,
//! and the key-value store answers its line protocol over the network.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use uniklink_config::{App, Manifest};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// From QEMU's launch to the listening line, under TCG on a busy machine.
const BOOT_GUARD: Duration = Duration::from_secs(120);

fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").expect("the cargo-uniklink binary");
    cmd.current_dir(ROOT).arg("uniklink");
    cmd
}

fn build(manifest: &Path) {
    let out = uniklink()
        .args(["build", "--release", "-m"])
        .arg(manifest)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink build runs");
    assert!(
        out.status.success(),
        "{}: {}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_manifest_with_a_cargo_app_builds() {
    let mut built = Vec::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("manifests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let manifest = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let App::Cargo { path: app, .. } = &manifest.app else {
            continue;
        };
        build(&path);
        for target in &manifest.targets {
            let image = app.join(format!(
                "target/uniklink/release/{}-{}.elf",
                manifest.name,
                target.arch.name()
            ));
            assert!(image.is_file(), "{} missing", image.display());
        }
        built.push(manifest.name);
    }
    built.sort();
    assert_eq!(built, ["fetch", "hello", "httpd", "kvstore"]);

    // kvstore's `keep` holds a function nothing calls.
    let report =
        Path::new(ROOT).join("fixtures/apps/kvstore/target/uniklink/release/kvstore-x86_64.json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["keep"], serde_json::json!(["kv_stats"]));
    let kept = report["kept_sections"].to_string();
    assert!(kept.contains("kv_stats"), "kv_stats is not kept");
}

/// `manifests/kvstore.yaml` forwarding `host_port`, under its own name so it builds its own
/// image.
fn kvstore_on_qemu(host_port: u16) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(ROOT).join("manifests/kvstore.yaml")).unwrap();
    for expected in ["name: kvstore\n", "ports: [6379]\n"] {
        assert!(text.contains(expected), "kvstore.yaml has `{expected}`");
    }
    let text = text
        .replace("name: kvstore\n", "name: kvstore-qemu\n")
        .replace(
            "ports: [6379]\n",
            &format!("ports: [\"{host_port}:6379\"]\n"),
        )
        .replace(
            "path: ../fixtures/apps/kvstore",
            &format!("path: {ROOT}/fixtures/apps/kvstore"),
        )
        .replace(
            "image: ../target/volumes/",
            &format!("image: {ROOT}/target/volumes/"),
        );
    let dir = Path::new(ROOT).join("target/example-manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kvstore-qemu.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Stops the guest however the test ends.
struct Guest(Child);

impl Drop for Guest {
    fn drop(&mut self) {
        // SIGINT makes the runner kill QEMU (its own process group) before exiting.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

#[test]
fn kvstore_answers_set_get_del_and_ping() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port();
    let manifest = kvstore_on_qemu(port);
    build(&manifest);
    let mut guest = Guest(
        uniklink()
            .args([
                "run",
                "--release",
                "--no-build",
                "--accel",
                "tcg",
                "--timeout",
                "600",
                "-m",
            ])
            .arg(&manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo-uniklink run starts"),
    );
    let stdout = guest.0.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    loop {
        match lines_rx.recv_timeout(BOOT_GUARD) {
            Ok(line) if line == "kvstore: listening on :6379" => break,
            Ok(line) => console.push(line),
            Err(_) => panic!("kvstore never listened; console: {console:#?}"),
        }
    }

    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the forward accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"PING\nSET greeting hello there\nGET greeting\nDEL greeting\nGET greeting\nDEL greeting\nset x 1\nFLUSH\n")
        .unwrap();
    let expected = "PONG\nOK\nhello there\n1\n(nil)\n0\nOK\n\
                    ERR expected SET key value, GET key, DEL key or PING\n";
    let mut answers = Vec::new();
    let mut chunk = [0u8; 512];
    while answers.len() < expected.len() {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answers.extend_from_slice(&chunk[..n]),
            Err(error) => panic!("reading answers: {error}; so far {answers:?}"),
        }
    }
    assert_eq!(String::from_utf8_lossy(&answers), expected);
}
