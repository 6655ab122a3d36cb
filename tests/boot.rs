//! The fixture apps in `fixtures/apps/`, built by `cargo uniklink build --release` and booted
//! by `cargo uniklink run` on QEMU microvm with TCG. What each boot must give is the app's
//! `expect.json`; the images are also checked with goblin (PVH note, W^X, no overlap) and
//! rebuilt to show the build is reproducible. Each app is built once per test run and shared
//! by the tests that need it.

#[path = "common/image_check.rs"]
mod image_check;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use assert_cmd::cargo::CommandCargoExt;
use goblin::elf::Elf;
use goblin::elf::program_header::{PF_X, PT_LOAD, PT_NOTE};
use serde::Deserialize;
use uniklink::pipeline::LinkOptions;
use uniklink_linker::image::ImageKind;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `fixtures/apps/NAME/expect.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    guest_exit_code: Option<i32>,
    timed_out: bool,
    console_line_prefixes: Vec<String>,
}

/// A guard against a guest that never stops, not a measurement. The hanging app is expected
/// to run into it, so it is as short as lets a loaded machine print the ready marker first.
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

/// A manifest for a fixture app, written to a directory of its own. Its name is the tests'
/// own, so that a `cargo uniklink build -m manifests/hello.yaml` running meanwhile (the demo,
/// a benchmark) writes another image than the one these tests compare.
fn manifest_for(app: &str) -> PathBuf {
    let dir = Path::new(ROOT).join("target/boot-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{app}.yaml"));
    let text = format!(
        "name: boot-{app}\napp:\n  package: {app}\n  path: {}\narch: [x86_64]\nmemory: 64MiB\n",
        app_dir(app).display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn build(manifest: &Path) -> std::process::Output {
    uniklink()
        .args(["build", "--release", "-m"])
        .arg(manifest)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink build runs")
}

/// An app built by `cargo uniklink build`.
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
            "building {app} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let loaded = uniklink_config::Manifest::load(&manifest).unwrap();
        let paths = uniklink::build::image_paths(&loaded, uniklink_config::Arch::X86_64).unwrap();
        assert_eq!(
            paths.image,
            app_dir(app).join(format!("target/uniklink/boot-{app}-x86_64.elf")),
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

fn image(app: &str) -> PathBuf {
    built(app).image
}

fn boot_as_expected(app: &str) {
    let expect: Expect = serde_json::from_slice(
        &std::fs::read(app_dir(app).join("expect.json")).expect("expect.json"),
    )
    .expect("expect.json parses");
    // `run -m` finds the image where `build -m` put it and boots it as the manifest says.
    let manifest = built(app).manifest;
    let out = uniklink()
        .args([
            "run",
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
        None => {
            assert_eq!(out.status.code(), Some(124), "{app}: a timeout exits 124");
            assert!(
                stderr.contains("uniklink: timeout after"),
                "{app}: the timeout is reported:\n{stderr}"
            );
        }
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
fn a_null_dereference_reports_the_address_and_exits_102() {
    boot_as_expected("fault");
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
    assert!(first == second, "two builds of hello differ");
}

#[test]
fn the_image_is_a_sound_pvh_kernel() {
    let image = image("hello");
    let problems = image_check::problems(&image);
    assert!(problems.is_empty(), "{problems:#?}");

    let bytes = std::fs::read(&image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .collect();
    assert_eq!(loads[0].p_paddr, 0x10_0000, "PVH images load at 1 MiB");
    assert!(
        elf.program_headers.iter().any(|ph| ph.p_type == PT_NOTE),
        "a PT_NOTE segment"
    );
    let notes: Vec<_> = elf
        .iter_note_headers(&bytes)
        .expect("notes")
        .collect::<Result<_, _>>()
        .expect("notes parse");
    let xen = notes
        .iter()
        .find(|n| n.name == "Xen" && n.n_type == 18)
        .expect("a XEN_ELFNOTE_PHYS32_ENTRY note");
    let entry = u64::from(u32::from_le_bytes(xen.desc.try_into().expect("4 bytes")));
    assert!(
        loads.iter().any(|ph| ph.p_flags & PF_X != 0
            && ph.p_vaddr <= entry
            && entry < ph.p_vaddr + ph.p_memsz),
        "the PVH entry {entry:#x} is in an executable segment"
    );
    let pvh_start = elf
        .syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some("_pvh_start"))
        .expect("_pvh_start in the symbol table");
    assert_eq!(entry, pvh_start.st_value, "the note names the libos entry");
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
fn a_manifest_for_a_missing_package_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("uniklink.yaml");
    std::fs::write(
        &manifest,
        format!(
            "name: nope\napp:\n  package: not-there\n  path: {}\n",
            app_dir("hello").display()
        ),
    )
    .unwrap();
    let out = build(&manifest);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no package `not-there`"),
        "the error names the package:\n{stderr}"
    );
}

/// The inputs `build` linked for `app`, from its report.
fn report_inputs(app: &str) -> Vec<PathBuf> {
    let image = image(app);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.with_extension("json")).unwrap()).unwrap();
    report["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|v| PathBuf::from(v.as_str().expect("a path")))
        .collect()
}

fn pvh_link(inputs: Vec<PathBuf>, output: PathBuf, salt: &[u8]) -> uniklink::pipeline::LinkOutput {
    let opts = LinkOptions {
        entry: "_pvh_start".to_owned(),
        image: ImageKind::Pvh,
        build_id_salt: salt.to_vec(),
        ..LinkOptions::new(inputs, output)
    };
    uniklink::pipeline::link(&opts).expect("the PVH link succeeds")
}

#[test]
fn the_build_id_follows_the_inputs_and_the_manifest() {
    let inputs = report_inputs("hello");
    let dir = tempfile::tempdir().unwrap();
    let a = pvh_link(inputs.clone(), dir.path().join("a.elf"), b"manifest one");
    let b = pvh_link(inputs.clone(), dir.path().join("b.elf"), b"manifest one");
    let c = pvh_link(inputs, dir.path().join("c.elf"), b"manifest two");
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert!(read("a.elf") == read("b.elf"), "same inputs, same bytes");
    assert_eq!(a.build_id, b.build_id);
    assert!(a.build_id.is_some());
    assert_ne!(
        a.build_id, c.build_id,
        "the manifest is part of the build id"
    );
}

#[test]
fn a_pvh_entry_outside_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("data_entry.S");
    std::fs::write(
        &source,
        ".data\n.globl _pvh_start\n_pvh_start:\n.long 0\n.section .note.GNU-stack,\"\",@progbits\n",
    )
    .unwrap();
    let object = dir.path().join("data_entry.o");
    let assembled = Command::new("as")
        .arg("--64")
        .arg("-o")
        .arg(&object)
        .arg(&source)
        .status()
        .expect("GNU as (binutils) runs");
    assert!(assembled.success());
    let output = dir.path().join("out.elf");
    let opts = LinkOptions {
        entry: "_pvh_start".to_owned(),
        image: ImageKind::Pvh,
        ..LinkOptions::new(vec![object], output.clone())
    };
    let error = uniklink::pipeline::link(&opts).expect_err("data is no entry point");
    assert!(
        error.to_string().contains("not in an executable segment"),
        "{error}"
    );
    assert!(!output.exists(), "a refused link writes nothing");
}

#[test]
fn a_prebuilt_object_gets_the_pvh_note_and_boots() {
    let dir = tempfile::tempdir().unwrap();
    // No Xen note of its own: the one QEMU enters through is uniklink's.
    let source = dir.path().join("exit3.S");
    std::fs::write(
        &source,
        "\t.text\n\t.code32\n\t.globl _start\n_start:\n\tmov $0xf4, %dx\n\tmov $3, %eax\n\
         \toutl %eax, %dx\n1:\thlt\n\tjmp 1b\n\t.section .note.GNU-stack,\"\",@progbits\n",
    )
    .unwrap();
    let assembled = Command::new("as")
        .arg("--64")
        .arg("-o")
        .arg(dir.path().join("exit3.o"))
        .arg(&source)
        .status()
        .expect("GNU as (binutils) runs");
    assert!(assembled.success());
    let manifest = dir.path().join("uniklink.yaml");
    std::fs::write(
        &manifest,
        "name: exit3\napp:\n  objects: [exit3.o]\narch: [x86_64]\n",
    )
    .unwrap();
    let out = build(&manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = dir.path().join("target/uniklink/exit3-x86_64.elf");
    assert!(image_check::problems(&image).is_empty());
    let ran = uniklink()
        .args(["run", "--accel", "tcg", "--timeout", "120", "-m"])
        .arg(&manifest)
        .output()
        .expect("cargo-uniklink run runs");
    assert_eq!(
        ran.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
}
