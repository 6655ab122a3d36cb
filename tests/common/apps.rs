//! The fixture apps of `fixtures/apps/`, built by `cargo uniklink build --release` from
//! manifests the tests write, each under a name of its own test binary's, so that a build
//! running meanwhile (another test binary, the demo, a benchmark) writes other images than the
//! ones a test compares.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `cargo-uniklink` binary, run from the workspace root.
pub fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").expect("the cargo-uniklink binary");
    cmd.current_dir(ROOT);
    cmd
}

pub fn app_dir(app: &str) -> PathBuf {
    Path::new(ROOT).join("fixtures/apps").join(app)
}

/// Writes `path`: a manifest named `name` for the fixture app `app` on `arches` (the
/// manifest's `arch:` list) with 64 MiB of memory, and `extra` after that.
pub fn write_manifest(path: &Path, name: &str, app: &str, arches: &str, extra: &str) {
    std::fs::create_dir_all(path.parent().expect("a manifest directory")).unwrap();
    let text = format!(
        "name: {name}\napp:\n  package: {app}\n  path: {}\narch: [{arches}]\nmemory: 64MiB\n{extra}",
        app_dir(app).display()
    );
    std::fs::write(path, text).unwrap();
}

/// `cargo uniklink build --release ARGS -m MANIFEST -- --locked`.
pub fn build_release(manifest: &Path, args: &[&str]) -> Output {
    uniklink()
        .args(["build", "--release"])
        .args(args)
        .arg("-m")
        .arg(manifest)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink build runs")
}

/// `cargo uniklink run` of the image `build --release` made of `manifest`, as it is, under TCG;
/// QEMU is killed after `timeout_secs`, a guard, not a measurement. More arguments go after.
pub fn run_built(manifest: &Path, timeout_secs: &str) -> Command {
    let mut cmd = uniklink();
    cmd.args([
        "run",
        "--release",
        "--no-build",
        "--accel",
        "tcg",
        "--timeout",
        timeout_secs,
        "-m",
    ])
    .arg(manifest);
    cmd
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
