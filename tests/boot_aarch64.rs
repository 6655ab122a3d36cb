//! The fixture apps of `fixtures/apps/`, built for aarch64 by `cargo uniklink build --release
//! --arch aarch64` and booted by `cargo uniklink run` on QEMU virt with TCG: the same checks as
//! `tests/boot.rs` makes on x86_64. What each boot must give is the app's `expect.json`, or
//! `expect.aarch64.json` where the console differs (the fault report names ESR, FAR and ELR
//! instead of the x86_64 vector and CR2). The images are also checked with goblin (load
//! address above the device tree, entry, W^X, build id) and rebuilt to show the build is
//! reproducible.

#[path = "common/image_check.rs"]
mod image_check;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use assert_cmd::cargo::CommandCargoExt;
use goblin::elf::Elf;
use goblin::elf::header::EM_AARCH64;
use goblin::elf::program_header::{PF_W, PF_X, PT_LOAD};
use serde::Deserialize;
use uniklink_config::Arch;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    guest_exit_code: Option<i32>,
    timed_out: bool,
    console_line_prefixes: Vec<String>,
}

/// A guard against a guest that never stops, not a measurement; the hanging app runs into it.
fn timeout_for(expect: &Expect) -> &'static str {
    if expect.timed_out { "5" } else { "120" }
}

fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").expect("the cargo-uniklink binary");
    cmd.current_dir(ROOT);
    cmd
}

fn app_dir(app: &str) -> PathBuf {
    Path::new(ROOT).join("fixtures/apps").join(app)
}

/// A manifest listing both architectures, so `--arch aarch64` picks the second one; its name
/// is this test binary's own, apart from `tests/boot.rs`'s images.
fn manifest_for(app: &str) -> PathBuf {
    let dir = Path::new(ROOT).join("target/boot-tests-aarch64");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{app}.yaml"));
    let text = format!(
        "name: boot-a64-{app}\napp:\n  package: {app}\n  path: {}\narch: [x86_64, aarch64]\nmemory: 64MiB\n",
        app_dir(app).display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn build(manifest: &Path) -> std::process::Output {
    uniklink()
        .args(["build", "--release", "--arch", "aarch64", "-m"])
        .arg(manifest)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink build runs")
}

#[derive(Debug, Clone)]
struct Built {
    manifest: PathBuf,
    image: PathBuf,
}

/// Builds `app` once for the whole test binary.
fn built(app: &str) -> Built {
    static BUILT: OnceLock<Mutex<HashMap<String, &'static OnceLock<Built>>>> = OnceLock::new();
    let cell = *BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(app.to_owned())
        .or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
    cell.get_or_init(|| {
        let manifest = manifest_for(app);
        let out = build(&manifest);
        assert!(
            out.status.success(),
            "building {app} for aarch64 failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let loaded = uniklink_config::Manifest::load(&manifest).unwrap();
        let paths = uniklink::build::image_paths(&loaded, Arch::Aarch64).unwrap();
        assert_eq!(
            paths.image,
            app_dir(app).join(format!("target/uniklink/boot-a64-{app}-aarch64.elf")),
            "images go to <target-dir>/uniklink/<name>-<arch>.elf"
        );
        assert!(paths.report.is_file(), "build writes its report");
        Built {
            manifest,
            image: paths.image,
        }
    })
    .clone()
}

fn expectation(app: &str) -> Expect {
    let dir = app_dir(app);
    let specific = dir.join("expect.aarch64.json");
    let path = if specific.is_file() {
        specific
    } else {
        dir.join("expect.json")
    };
    serde_json::from_slice(&std::fs::read(&path).expect("expect.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn boot_as_expected(app: &str) {
    let expect = expectation(app);
    let manifest = built(app).manifest;
    let out = uniklink()
        .args([
            "run",
            "--arch",
            "aarch64",
            "--accel",
            "tcg",
            "--json",
            "--timeout",
            timeout_for(&expect),
            "-m",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo-uniklink run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{app}: run --json printed no JSON ({e}):\n{stderr}"));
    assert_eq!(report["arch"].as_str(), Some("aarch64"), "{report}");

    // With --json the console goes to stderr, beside the runner's own `uniklink: ` lines.
    let console: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.starts_with("uniklink: ") && !line.starts_with("qemu-system"))
        .collect();
    assert_eq!(
        console.len(),
        expect.console_line_prefixes.len(),
        "{app}: console lines {console:#?}\nstderr:\n{stderr}"
    );
    for (line, prefix) in console.iter().zip(&expect.console_line_prefixes) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{app}: `{line}` should start with `{prefix}`\nstderr:\n{stderr}"
        );
    }
    assert_eq!(
        report["guest_exit_code"].as_i64(),
        expect.guest_exit_code.map(i64::from),
        "{app}: {report}\n{stderr}"
    );
    assert_eq!(
        report["timed_out"].as_bool(),
        Some(expect.timed_out),
        "{app}: {report}"
    );
    match expect.guest_exit_code {
        Some(code) => assert_eq!(out.status.code(), Some(code), "{app}: exit status"),
        None => assert_eq!(out.status.code(), Some(124), "{app}: a timeout exits 124"),
    }
}

#[test]
fn hello_prints_its_line_and_exits_0() {
    boot_as_expected("hello");
}

#[test]
fn a_panic_prints_message_and_location_and_exits_101() {
    boot_as_expected("panic");
}

#[test]
fn a_null_dereference_reports_esr_far_elr_and_exits_102() {
    boot_as_expected("fault");
}

#[test]
fn writing_to_code_is_a_permission_fault() {
    // W^X: code is mapped read-only, so the write faults at level 3 (ESR DFSC 0xf, WnR).
    boot_as_expected("write_code");
}

#[test]
fn a_hanging_app_is_stopped_at_the_timeout() {
    boot_as_expected("hang");
}

#[test]
fn a_rebuild_gives_the_same_bytes() {
    let Built { manifest, image } = built("hello");
    let first = std::fs::read(&image).unwrap();
    let out = build(&manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = std::fs::read(&image).unwrap();
    assert!(first == second, "two aarch64 builds of hello differ");
}

#[test]
fn the_image_is_a_sound_virt_kernel() {
    let image = built("hello").image;
    let problems = image_check::problems(&image);
    assert!(problems.is_empty(), "{problems:#?}");

    let bytes = std::fs::read(&image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    assert_eq!(elf.header.e_machine, EM_AARCH64);
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .collect();
    assert_eq!(
        loads[0].p_paddr,
        uniklink_linker::image::virt::LOAD_ADDRESS,
        "virt images load 2 MiB into RAM, above the device tree"
    );
    for ph in &loads {
        assert_eq!(ph.p_paddr, ph.p_vaddr, "identity-mapped");
    }
    // Each segment's pages are its own, so the runtime can map them with its permissions.
    let mut pages: Vec<(u64, u64, u32)> = loads
        .iter()
        .map(|ph| {
            (
                ph.p_vaddr & !0xfff,
                (ph.p_vaddr + ph.p_memsz).next_multiple_of(0x1000),
                ph.p_flags,
            )
        })
        .collect();
    pages.sort();
    for pair in pages.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "segments share a page: {pages:x?}");
    }
    assert!(
        loads
            .iter()
            .all(|ph| ph.p_flags & PF_W == 0 || ph.p_flags & PF_X == 0),
        "W^X"
    );
    let virt_start = elf
        .syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some("_virt_start"))
        .expect("_virt_start in the symbol table");
    assert_eq!(elf.entry, virt_start.st_value, "the entry is the libos's");
    let notes: Vec<_> = elf
        .iter_note_headers(&bytes)
        .expect("notes")
        .collect::<Result<_, _>>()
        .expect("notes parse");
    let build_id = notes
        .iter()
        .find(|n| n.name == "GNU" && n.n_type == 3)
        .expect("an NT_GNU_BUILD_ID note");
    assert_eq!(build_id.desc.len(), 20);
    assert!(
        !bytes.windows(ROOT.len()).any(|w| w == ROOT.as_bytes()),
        "the image names no host path"
    );
}

#[test]
fn verbose_boot_shows_the_device_tree_memory_and_the_generic_timer() {
    let manifest = built("hello").manifest;
    let out = uniklink()
        .args([
            "run",
            "--arch",
            "aarch64",
            "--accel",
            "tcg",
            "--timeout",
            "120",
            "--append",
            "uniklink.verbose",
            "-m",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo-uniklink run runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("uniklink:verbose memmap 0x000040000000-0x000044000000 Ram"),
        "RAM from the device tree:\n{stdout}"
    );
    // QEMU's tree fills the first MiB of RAM, and the heap starts after it.
    assert!(
        stdout.contains("uniklink:verbose heap 0x000040100000-0x000040200000"),
        "the heap skips the device tree and the image:\n{stdout}"
    );
    assert!(
        stdout.contains("from cntfrq_el0"),
        "the generic timer's frequency:\n{stdout}"
    );
}

/// A host port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// Stops the runner (and with it QEMU) however the test ends.
struct Guest(std::process::Child);

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn httpd_serves_over_virtio_mmio_found_in_the_device_tree() {
    serve_the_page(&[]);
}

#[test]
fn httpd_serves_over_modern_virtio_mmio() {
    // QEMU virt's virtio-mmio transports are legacy (version 1) unless told otherwise.
    serve_the_page(&["-global", "virtio-mmio.force-legacy=false"]);
}

/// Builds httpd for aarch64 virt, boots it with `qemu_args` after the runner's own, and
/// fetches its page through the manifest's host forward.
fn serve_the_page(qemu_args: &[&str]) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::Stdio;
    use std::time::Duration;

    let port = free_port();
    let httpd = std::fs::read_to_string(Path::new(ROOT).join("manifests/httpd.yaml")).unwrap();
    let text = httpd
        .replace("arch: x86_64", "arch: aarch64")
        .replace("platform: qemu-microvm", "platform: qemu-virt")
        .replace("\"8080:8080\"", &format!("\"{port}:8080\""))
        .replace("name: httpd", "name: boot-a64-httpd")
        .replace(
            "path: ../fixtures/apps/httpd",
            &format!("path: {ROOT}/fixtures/apps/httpd"),
        );
    assert!(
        text.contains("arch: aarch64") && text.contains("qemu-virt"),
        "{text}"
    );
    let dir = Path::new(ROOT).join("target/boot-tests-aarch64");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join(format!("httpd-{port}.yaml"));
    std::fs::write(&manifest, text).unwrap();
    let out = uniklink()
        .args(["build", "--release", "-m"])
        .arg(&manifest)
        .args(["--", "--locked"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut guest = Guest(
        uniklink()
            .args(["run", "--accel", "tcg", "--timeout", "300", "-m"])
            .arg(&manifest)
            .arg("--")
            .args(qemu_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The console until the server listens; a guest that dies first ends the stream.
    let mut console = Vec::new();
    for line in BufReader::new(guest.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let listening = line.starts_with("httpd: listening on :8080");
        console.push(line);
        if listening {
            break;
        }
    }
    assert!(
        console.iter().any(|l| l.starts_with("httpd: listening")),
        "the guest never listened: {console:#?}"
    );

    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("Hello from a uniklink unikernel"),
        "{response}"
    );
}

#[test]
fn one_build_makes_an_image_for_every_listed_architecture() {
    let manifest = manifest_for("hello");
    let out = uniklink()
        .args(["build", "--release", "--message-format", "json", "-m"])
        .arg(&manifest)
        .args(["--", "--locked"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let arches: Vec<_> = built.iter().map(|b| b["arch"].as_str().unwrap()).collect();
    assert_eq!(arches, ["x86_64", "aarch64"], "in the manifest's order");
    for (image, arch) in built.iter().zip(["x86_64", "aarch64"]) {
        assert_eq!(image["reason"], "image-built");
        let path = PathBuf::from(image["image"].as_str().unwrap());
        assert_eq!(
            path,
            app_dir("hello").join(format!("target/uniklink/boot-a64-hello-{arch}.elf"))
        );
        assert!(path.is_file() && path.with_extension("json").is_file());
    }
}
