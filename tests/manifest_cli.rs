//! `check`, `config` and `schema` as a user (or CI) runs them: exit status, where output goes,
//! and that every invalid manifest in `config-schema/tests/invalid/` is reported with its
//! `file:line:col` and message on stderr.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn uniklink() -> Command {
    let mut command = Command::cargo_bin("cargo-uniklink").unwrap();
    command.current_dir(root());
    command
}

fn files_in(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(command: &mut Command) -> Outcome {
    let output = command.output().unwrap();
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A rejected manifest: status 1, nothing on stdout, no panic, and the diagnostic on stderr.
fn assert_rejected(outcome: &Outcome, fragments: &[&str], case: &str) {
    assert_eq!(outcome.code, Some(1), "{case}: stderr:\n{}", outcome.stderr);
    assert!(
        outcome.stdout.is_empty(),
        "{case}: stdout: {}",
        outcome.stdout
    );
    assert!(
        !outcome.stderr.contains("panicked"),
        "{case}: {}",
        outcome.stderr
    );
    for fragment in fragments {
        assert!(
            outcome.stderr.contains(fragment),
            "{case}: `{fragment}` not in stderr:\n{}",
            outcome.stderr
        );
    }
}

#[test]
fn example_manifests_pass_check() {
    let manifests = files_in("manifests", "yaml");
    assert!(manifests.len() >= 3);
    let outcome = run(uniklink().arg("uniklink").arg("check").args(&manifests));
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let mut with_flags = uniklink();
    with_flags.arg("check");
    for manifest in &manifests {
        with_flags.arg("-m").arg(manifest);
    }
    assert_eq!(run(&mut with_flags).code, Some(0));
}

#[test]
fn every_invalid_manifest_is_rejected_with_its_diagnostic() {
    let cases = files_in("config-schema/tests/invalid", "yaml");
    assert!(cases.len() >= 20, "only {} invalid manifests", cases.len());
    for case in cases {
        let expected = std::fs::read_to_string(case.with_extension("expected")).unwrap();
        let fragments: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = run(uniklink().args(["check", "-m"]).arg(&case));
        assert_rejected(&outcome, &fragments, &name);
    }
}

#[test]
fn one_invalid_file_fails_the_whole_check() {
    let outcome = run(uniklink().args([
        "check",
        "manifests/hello.yaml",
        "config-schema/tests/invalid/unknown-top-key.yaml",
    ]));
    assert_eq!(outcome.code, Some(1));
    assert!(outcome.stderr.contains("unknown-top-key.yaml:4:1"));
    assert!(outcome.stderr.contains("did you mean `platform`?"));
    assert!(
        outcome.stderr.contains("platfrom: qemu-microvm"),
        "shows the line"
    );
}

#[test]
fn hostile_files_are_rejected_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut huge = b"name: x\ncmdline: \"".to_vec();
    huge.resize(10 * 1024 * 1024, b'a');
    let garbage: Vec<u8> = (0u32..65_536)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let deep = format!("name: {}x{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("huge.yaml", huge, "larger than the 256 KiB limit"),
        ("garbage.yaml", garbage, "not UTF-8"),
        ("deep.yaml", deep.into_bytes(), "deep.yaml:1:7"),
    ];
    for (name, bytes, fragment) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let outcome = run(uniklink().arg("check").arg(&path));
        let location = format!("{name}:");
        assert_rejected(&outcome, &[&location, fragment], name);
    }
}

#[test]
fn missing_manifest_is_an_error_not_a_panic() {
    let outcome = run(uniklink().args(["check", "no/such/uniklink.yaml"]));
    assert_rejected(
        &outcome,
        &["no/such/uniklink.yaml", "cannot read"],
        "missing",
    );
    let empty_dir = tempfile::tempdir().unwrap();
    let outcome = run(uniklink().arg("check").current_dir(empty_dir.path()));
    assert_rejected(
        &outcome,
        &["uniklink.yaml: cannot read"],
        "default manifest",
    );
}

#[test]
fn config_marks_where_values_came_from() {
    let outcome = run(uniklink().args(["config", "-m", "manifests/httpd.yaml"]));
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let row = |key: &str| {
        outcome
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no `{key}` row in\n{}", outcome.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("net.max_sockets"),
        ["net.max_sockets", "128", "manifest"]
    );
    assert_eq!(
        row("net.rx_ring_size"),
        ["net.rx_ring_size", "256", "profile"]
    );
    assert_eq!(row("memory"), ["memory", "64MiB", "profile"]);
    assert_eq!(row("net"), ["net", "required", "manifest"]);

    let outcome = run(uniklink().args(["config", "--json", "-m", "manifests/kvstore.yaml"]));
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(json["profile"], "filesystem");
    assert_eq!(json["memory"]["origin"], "manifest");
    assert_eq!(json["memory"]["value"], 256 * 1024 * 1024);
    assert_eq!(json["targets"][0]["platform"], "qemu-microvm");
    assert_eq!(json["budgets"]["boot_time"], "150ms");
}

#[test]
fn config_of_an_invalid_manifest_fails() {
    let outcome = run(uniklink().args([
        "config",
        "-m",
        "config-schema/tests/invalid/aarch64-on-microvm.yaml",
    ]));
    assert_rejected(&outcome, &["aarch64-on-microvm.yaml:5:11"], "config");
}

#[test]
fn schema_prints_the_committed_schema() {
    let outcome = run(uniklink().arg("schema"));
    assert_eq!(outcome.code, Some(0));
    let committed =
        std::fs::read_to_string(root().join("config-schema/uniklink.schema.json")).unwrap();
    assert!(
        outcome.stdout == committed,
        "schema output differs from the committed file"
    );
}

#[test]
fn every_manifest_command_has_help() {
    for command in ["check", "config", "schema"] {
        let outcome = run(uniklink().args([command, "--help"]));
        assert_eq!(outcome.code, Some(0), "{command}");
        assert!(
            outcome.stdout.contains("Usage: cargo uniklink"),
            "{command}"
        );
    }
}
