//! `cargo uniklink run` against the hand-written PVH guests in `fixtures/boot/`, which are
//! assembled and linked here at test time. Each guest's `.expect.json` lists the runs to make
//! and what they must give; the tests below cover what a table cannot (Ctrl-C, bad paths).
//! Every run uses TCG: KVM on these machines is not trustworthy (see `uniklink::run`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// Assembles and links `fixtures/boot/NAME.S` into `dir/NAME.elf`.
fn build_guest(name: &str, dir: &Path) -> PathBuf {
    let source = Path::new(FIXTURES).join(format!("{name}.S"));
    let object = dir.join(format!("{name}.o"));
    let image = dir.join(format!("{name}.elf"));
    let status = Command::new("as")
        .args(["--64", "-I", FIXTURES, "-o"])
        .arg(&object)
        .arg(&source)
        .status()
        .expect("GNU as is installed");
    assert!(status.success(), "assembling {}", source.display());
    let status = Command::new("ld")
        .args(["-m", "elf_x86_64", "-T"])
        .arg(Path::new(FIXTURES).join("pvh.ld"))
        .arg("-o")
        .arg(&image)
        .arg(&object)
        .status()
        .expect("GNU ld is installed");
    assert!(status.success(), "linking {}", image.display());
    image
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

#[test]
fn fixtures_boot_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let mut expectations: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expect.json"))
        .collect();
    expectations.sort();
    assert!(!expectations.is_empty(), "no expectations in {FIXTURES}");
    let mut failures = Vec::new();
    let mut runs = 0;
    for path in expectations {
        let file = path.file_name().unwrap().to_string_lossy();
        let guest = file.trim_end_matches(".expect.json");
        let cases: Vec<Case> = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let image = build_guest(guest, dir.path());
        for case in &cases {
            for json in [false, true] {
                if json && case.json.is_none() {
                    continue;
                }
                runs += 1;
                let out = run_case(&image, case, json);
                for problem in check(case, &image, &out, json) {
                    failures.push(format!(
                        "{guest}: {}{}: {problem}\n--- stderr:\n{}",
                        case.name,
                        if json { " (--json)" } else { "" },
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
    }
    assert!(runs >= 10, "only {runs} runs");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ctrl_c_kills_qemu_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_guest("hang", dir.path());
    let mut child = uniklink()
        .arg(&image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the guest is up, so the signal lands while QEMU runs.
    let mut console = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    console.read_line(&mut line).unwrap();
    assert_eq!(line, "hanging\n");
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

fn error_run(image: impl Into<OsString>) -> (i32, String, String) {
    let out = uniklink().arg(image.into()).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let image = build_guest("hello_exit3", dir.path());
    let out = uniklink()
        .args(["--platform", "firecracker"])
        .arg(&image)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        contains(&stderr, "unknown platform `firecracker`"),
        "{stderr}"
    );
}
