//! `cargo uniklink run` against the hand-written guests in `fixtures/boot/ARCH/`, which are
//! assembled and linked here at test time. Each guest's `.expect.json` lists the runs to make
//! and what they must give; the tests below cover what a table cannot (Ctrl-C, bad paths).
//! Every run uses TCG: KVM on these machines is not trustworthy (see `uniklink::run`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use serde::Deserialize;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/boot");

/// One run of one guest, as `NAME.expect.json` describes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    qemu_args: Vec<String>,
    exit_status: i32,
    stdout: String,
    #[serde(default)]
    stderr_contains: Vec<String>,
    json: Option<serde_json::Map<String, Value>>,
}

/// How the fixtures of one architecture are assembled and linked.
struct Toolchain {
    arch: &'static str,
    assembler: &'static str,
    as_flags: &'static [&'static str],
    linker: &'static str,
    ld_flags: &'static [&'static str],
    script: &'static str,
}

const X86_64: Toolchain = Toolchain {
    arch: "x86_64",
    assembler: "as",
    as_flags: &["--64"],
    linker: "ld",
    ld_flags: &["-m", "elf_x86_64"],
    script: "pvh.ld",
};

const AARCH64: Toolchain = Toolchain {
    arch: "aarch64",
    assembler: "aarch64-linux-gnu-as",
    as_flags: &[],
    linker: "aarch64-linux-gnu-ld",
    ld_flags: &[],
    script: "virt.ld",
};

impl Toolchain {
    fn dir(&self) -> PathBuf {
        Path::new(FIXTURES).join(self.arch)
    }

    /// Assembles and links `fixtures/boot/ARCH/NAME.S` into `out/ARCH-NAME.elf`.
    fn build(&self, name: &str, out: &Path) -> PathBuf {
        let dir = self.dir();
        let source = dir.join(format!("{name}.S"));
        let object = out.join(format!("{}-{name}.o", self.arch));
        let image = out.join(format!("{}-{name}.elf", self.arch));
        let status = Command::new(self.assembler)
            .args(self.as_flags)
            .arg("-I")
            .arg(&dir)
            .arg("-o")
            .arg(&object)
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.assembler));
        assert!(status.success(), "assembling {}", source.display());
        let status = Command::new(self.linker)
            .args(self.ld_flags)
            .arg("-T")
            .arg(dir.join(self.script))
            .arg("-o")
            .arg(&image)
            .arg(&object)
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.linker));
        assert!(status.success(), "linking {}", image.display());
        image
    }
}

fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").expect("the binary is built");
    // As cargo runs us: `cargo uniklink run ...` becomes `cargo-uniklink uniklink run ...`.
    cmd.args(["uniklink", "run", "--accel", "tcg"]);
    cmd
}

fn run_case(image: &Path, case: &Case, json: bool) -> Output {
    let mut cmd = uniklink();
    cmd.args(&case.args);
    if json {
        cmd.arg("--json");
    }
    cmd.arg(image);
    if !case.qemu_args.is_empty() {
        cmd.arg("--").args(&case.qemu_args);
    }
    cmd.stdin(Stdio::null())
        .output()
        .expect("cargo-uniklink runs")
}

/// Processes whose command line mentions `needle`, which is unique to one test's tempdir.
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is mounted")
        .flatten()
    {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
    }
    found
}

/// Error reports are wrapped to the terminal's width inside a box drawing, so messages are
/// compared with whitespace and the box's characters squashed out.
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×' | '╰' | '─' | '▶'))
        .collect()
}

fn contains(haystack: &str, needle: &str) -> bool {
    squash(haystack).contains(&squash(needle))
}

/// Checks one run against its case; returns what did not match.
fn check(case: &Case, image: &Path, out: &Output, json: bool) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(case.exit_status) {
        problems.push(format!(
            "exit status {:?}, expected {}",
            out.status.code(),
            case.exit_status
        ));
    }
    for want in &case.stderr_contains {
        if !contains(&stderr, want) {
            problems.push(format!("stderr lacks {want:?}"));
        }
    }
    let left = processes_mentioning(image);
    if !left.is_empty() {
        problems.push(format!("processes left running: {left:?}"));
    }
    if !json {
        if stdout != case.stdout {
            problems.push(format!("stdout {stdout:?}, expected {:?}", case.stdout));
        }
        return problems;
    }
    // In JSON mode the console moves to stderr, ahead of the summary.
    if !stderr.starts_with(&case.stdout) {
        problems.push(format!(
            "stderr does not start with the console {:?}",
            case.stdout
        ));
    }
    let report: Value = match serde_json::from_str(&stdout) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("stdout is not one JSON object ({e}): {stdout:?}"));
            return problems;
        }
    };
    for (key, want) in case.json.iter().flatten() {
        if report.get(key) != Some(want) {
            problems.push(format!(
                "json {key} = {:?}, expected {want}",
                report.get(key)
            ));
        }
    }
    if report["image"] != Value::String(image.display().to_string()) {
        problems.push(format!("json image = {}", report["image"]));
    }
    problems.extend(check_times(&report));
    problems
}

/// Times must be consistent with each other, never fast or slow.
fn check_times(report: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let total = report["total_ns"].as_u64();
    if total.is_none_or(|t| t == 0) {
        problems.push(format!("total_ns = {}", report["total_ns"]));
    }
    let first = report["first_byte_ns"].as_u64();
    let ready = report["ready_ns"].as_u64();
    if first == Some(0) {
        problems.push("first_byte_ns is 0".to_owned());
    }
    if let Some(ready) = ready
        && first.is_none_or(|f| ready < f)
    {
        problems.push(format!("ready_ns {ready} before first_byte_ns {first:?}"));
    }
    if let (Some(first), Some(total)) = (first, total)
        && first > total
    {
        problems.push(format!("first_byte_ns {first} after total_ns {total}"));
    }
    problems
}

/// Runs every case of every `*.expect.json` of one architecture; returns how many runs it
/// made and what went wrong.
fn run_expectations(toolchain: &Toolchain) -> (usize, Vec<String>) {
    let out = tempfile::tempdir().unwrap();
    let mut expectations: Vec<PathBuf> = std::fs::read_dir(toolchain.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expect.json"))
        .collect();
    expectations.sort();
    let mut failures = Vec::new();
    let mut runs = 0;
    for path in expectations {
        let file = path.file_name().unwrap().to_string_lossy();
        let guest = file.trim_end_matches(".expect.json");
        let cases: Vec<Case> = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let image = toolchain.build(guest, out.path());
        for case in &cases {
            for json in [false, true] {
                if json && case.json.is_none() {
                    continue;
                }
                runs += 1;
                let output = run_case(&image, case, json);
                for problem in check(case, &image, &output, json) {
                    failures.push(format!(
                        "{}/{guest}: {}{}: {problem}\n--- stderr:\n{}",
                        toolchain.arch,
                        case.name,
                        if json { " (--json)" } else { "" },
                        String::from_utf8_lossy(&output.stderr)
                    ));
                }
            }
        }
    }
    (runs, failures)
}

#[test]
fn x86_64_fixtures_boot_as_expected() {
    let (runs, failures) = run_expectations(&X86_64);
    assert!(runs >= 10, "only {runs} runs");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn aarch64_fixtures_boot_as_expected() {
    let (runs, failures) = run_expectations(&AARCH64);
    assert!(runs >= 4, "only {runs} runs");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Boots the x86_64 `hang` guest built in `dir`, with the runner's stderr to `stderr`, and
/// returns once the guest is up, so that what the test does next lands while QEMU runs.
fn boot_hang(dir: &Path, stderr: Stdio) -> (Child, PathBuf) {
    let image = X86_64.build("hang", dir);
    let mut child = uniklink()
        .arg(&image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut console = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    console.read_line(&mut line).unwrap();
    assert_eq!(line, "hanging\n");
    (child, image)
}

#[test]
fn ctrl_c_kills_qemu_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (child, image) = boot_hang(dir.path(), Stdio::piped());
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends SIGINT to our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("uniklink: interrupted, QEMU killed"),
        "{stderr}"
    );
    assert!(stderr.contains("; interrupted (tcg)"), "{stderr}");
    assert_eq!(processes_mentioning(&image), Vec::<String>::new());
}

#[test]
fn qemu_dies_with_a_runner_killed_outright() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, image) = boot_hang(dir.path(), Stdio::null());
    child.kill().unwrap();
    child.wait().unwrap();
    // The kernel sends QEMU its parent-death signal as the runner exits; QEMU then needs a
    // moment to be scheduled and die, so look a few times rather than once.
    let mut left = processes_mentioning(&image);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = processes_mentioning(&image);
    }
    assert_eq!(left, Vec::<String>::new());
}

fn error_run(image: impl Into<OsString>) -> (i32, String, String) {
    let out = uniklink().arg(image.into()).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A closed stdout (`run --json ... | true`) neither kills the runner before it has stopped
/// QEMU nor makes it panic: the boot ends as the guest says. So does a closed stderr.
#[test]
fn a_closed_stdout_does_not_cut_the_boot_short() {
    let dir = tempfile::tempdir().unwrap();
    let image = X86_64.build("hello_exit3", dir.path());
    let mut child = uniklink()
        .args(["--json", "--timeout", "120"])
        .arg(&image)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo-uniklink run starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("the runner ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the guest's exit code:\n{stderr}"
    );
    assert!(processes_mentioning(&image).is_empty(), "QEMU is gone");

    let mut child = uniklink()
        .args(["--timeout", "120"])
        .arg(&image)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo-uniklink run starts");
    drop(child.stderr.take());
    let status = child.wait().expect("the runner ends");
    assert_eq!(status.code(), Some(3), "the guest's exit code, no panic");
    assert!(processes_mentioning(&image).is_empty(), "QEMU is gone");
}

/// A timeout past what the clock can count is no deadline, not a panic: the boot ends as
/// the guest says.
#[test]
fn a_timeout_past_the_clocks_range_is_no_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let image = X86_64.build("hello_exit3", dir.path());
    let out = uniklink()
        .args(["--timeout", "1e19"])
        .arg(&image)
        .output()
        .expect("cargo-uniklink run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the guest's exit code:\n{stderr}"
    );
}

#[test]
fn missing_image_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.elf");
    let (status, stdout, stderr) = error_run(&path);
    assert_eq!(status, 1, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        contains(&stderr, &format!("cannot read image {}", path.display())),
        "{stderr}"
    );
    assert!(contains(&stderr, "No such file or directory"), "{stderr}");
}

#[test]
fn non_elf_image_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernel.bin");
    std::fs::write(&path, b"MZ\x90\x00 not an ELF").unwrap();
    let (status, stdout, stderr) = error_run(&path);
    assert_eq!(status, 1, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        contains(
            &stderr,
            &format!(
                "{} is not an ELF file (it starts with bytes 4d 5a 90 00)",
                path.display()
            )
        ),
        "{stderr}"
    );
}

#[test]
fn unknown_platform_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let image = X86_64.build("hello_exit3", dir.path());
    let out = uniklink()
        .args(["--platform", "qemu-xyz"])
        .arg(&image)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(contains(&stderr, "unknown platform `qemu-xyz`"), "{stderr}");
}

/// A manifest for prebuilt objects in `dir`, as `cargo uniklink build -m` would read it.
fn write_manifest(dir: &Path, extra: &str) -> PathBuf {
    write_manifest_named(dir, "greeter", "[x86_64, aarch64]", extra)
}

fn write_manifest_named(dir: &Path, name: &str, arch: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("app.o"), b"").unwrap();
    let manifest = dir.join("uniklink.yaml");
    std::fs::write(
        &manifest,
        format!("name: {name}\napp:\n  objects: [app.o]\narch: {arch}\n{extra}"),
    )
    .unwrap();
    manifest
}

/// `run ARGS -m MANIFEST`, which must exit with `status`; returns its stdout and stderr.
fn run_manifest(args: &[&str], manifest: &Path, status: i32) -> (Vec<u8>, String) {
    // The images are placed by hand: boot them as they are.
    let out = uniklink()
        .args(args)
        .arg("--no-build")
        .arg("-m")
        .arg(manifest)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "{stderr}");
    (out.stdout, stderr)
}

#[test]
fn manifest_mode_boots_the_built_image_with_the_manifest_settings() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), "memory: 32MiB\ncmdline: quiet\n");
    // Outside any cargo package the target directory is `target` beside the manifest.
    let images = dir.path().join("target/uniklink/debug");
    std::fs::create_dir_all(&images).unwrap();
    let built = X86_64.build("hello_exit3", dir.path());
    std::fs::rename(&built, images.join("greeter-x86_64.elf")).unwrap();
    let arm = AARCH64.build("hello_exit3", dir.path());
    std::fs::rename(&arm, images.join("greeter-aarch64.elf")).unwrap();

    let (stdout, _) = run_manifest(&["--json"], &manifest, 3);
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["arch"], "x86_64");
    assert_eq!(report["platform"], "qemu-microvm");
    assert_eq!(
        report["image"],
        images.join("greeter-x86_64.elf").display().to_string()
    );

    let (stdout, _) = run_manifest(&["--json", "--arch", "aarch64"], &manifest, 3);
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["platform"], "qemu-virt");
}

#[test]
fn manifest_mode_without_a_built_image_says_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), "");
    let (_, stderr) = run_manifest(&["--arch", "aarch64"], &manifest, 1);
    let expected = dir.path().join("target/uniklink/debug/greeter-aarch64.elf");
    assert!(
        contains(
            &stderr,
            &format!("no image for aarch64 at {}", expected.display())
        ),
        "{stderr}"
    );
    assert!(
        contains(&stderr, "cargo uniklink build -m") && contains(&stderr, "--arch aarch64"),
        "{stderr}"
    );
}

#[test]
fn manifest_mode_without_a_volume_image_says_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let volume = "volumes:\n  - { name: data, image: data.img, size: 1MiB, mount: /data }\n";
    let manifest = write_manifest_named(dir.path(), "store", "x86_64", volume);
    let images = dir.path().join("target/uniklink/debug");
    std::fs::create_dir_all(&images).unwrap();
    // Never booted: the missing disk stops `run` first.
    std::fs::write(images.join("store-x86_64.elf"), b"").unwrap();
    let (_, stderr) = run_manifest(&[], &manifest, 1);
    let expected = format!(
        "volume `data` of {} has no disk image at {}",
        manifest.display(),
        dir.path().join("data.img").display()
    );
    assert!(contains(&stderr, &expected), "{stderr}");
    assert!(
        contains(&stderr, "cargo uniklink build -m") && contains(&stderr, "which creates it"),
        "{stderr}"
    );
}

#[test]
fn manifest_mode_refuses_an_arch_the_manifest_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest_named(dir.path(), "solo", "x86_64", "");
    let (_, stderr) = run_manifest(&["--arch", "aarch64"], &manifest, 1);
    assert!(contains(&stderr, "has no aarch64 target"), "{stderr}");
}

#[test]
fn manifest_mode_reports_an_invalid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("uniklink.yaml");
    std::fs::write(&manifest, "name: broken\narch: sparc\n").unwrap();
    let (_, stderr) = run_manifest(&[], &manifest, 1);
    assert!(contains(&stderr, "sparc"), "{stderr}");
}

#[test]
fn manifest_mode_names_a_host_port_another_process_listens_on() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let ports = format!("ports: [\"{port}:80\"]\n");
    let manifest = write_manifest_named(dir.path(), "server", "x86_64", &ports);
    let images = dir.path().join("target/uniklink/debug");
    std::fs::create_dir_all(&images).unwrap();
    let built = X86_64.build("hello_exit3", dir.path());
    std::fs::rename(&built, images.join("server-x86_64.elf")).unwrap();
    // What `run` reads the image's devices from: a conventional link's report has no weave.
    std::fs::write(images.join("server-x86_64.json"), "{\"weave\": null}\n").unwrap();
    let (_, stderr) = run_manifest(&[], &manifest, 1);
    let expected = format!(
        "host port {port} is taken (another process listens on 127.0.0.1:{port}); change \
         `ports:` or stop it"
    );
    assert!(contains(&stderr, &expected), "{stderr}");
    drop(taken);
}
