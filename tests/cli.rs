//! `cargo uniklink` as cargo users drive it: a scaffolded app built from inside its own
//! directories with cargo's flags after the subcommand, booted, reported on; the errors a user
//! meets first; and the build.rs API through the cc-app example.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").unwrap();
    // The user's log filter must not change what the tests read.
    cmd.env_remove("UNIKLINK_LOG");
    cmd
}

/// A new app from `cargo uniklink new`, in its own temporary directory.
struct App {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl App {
    fn new(name: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        uniklink()
            .current_dir(dir.path())
            .args(["new", name])
            .assert()
            .success()
            .stderr(predicate::str::contains(format!("created app `{name}`")));
        let root = dir.path().join(name);
        App { _dir: dir, root }
    }

    fn image(&self, name: &str) -> PathBuf {
        self.root
            .join("target/uniklink/debug")
            .join(format!("{name}-x86_64.elf"))
    }
}

/// The one JSON object with `reason` on stdout.
fn message(stdout: &[u8], reason: &str) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let found: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|v| v["reason"] == reason)
        .collect();
    assert_eq!(found.len(), 1, "one `{reason}` message in:\n{text}");
    found.into_iter().next().unwrap()
}

fn report_inputs(report: &Path) -> Vec<String> {
    let json: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    json["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn cargo_calls_it_with_its_own_name_first() {
    for args in [&["--help"][..], &["uniklink", "--help"]] {
        let out = uniklink().args(args).assert().success();
        let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        for command in [
            "build", "check", "config", "diff", "disk", "init", "link", "new", "report", "run",
            "schema", "why",
        ] {
            assert!(
                help.contains(&format!("  {command} ")),
                "{command} in:\n{help}"
            );
        }
    }
}

#[test]
fn cargo_finds_it_on_the_path_as_a_subcommand() {
    let bin = assert_cmd::cargo::cargo_bin("cargo-uniklink");
    let path = std::env::join_paths(
        std::iter::once(bin.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    // Outside this checkout, whose .cargo/config.toml has an alias of the same name.
    let dir = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .current_dir(dir.path())
        .env("PATH", path)
        .args(["uniklink", "build", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: cargo uniklink build"))
        .stdout(predicate::str::contains("--manifest-path <PATH>"));
}

#[test]
fn build_and_run_take_cargo_flags_after_the_subcommand() {
    let build = uniklink().args(["build", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&build.get_output().stdout).into_owned();
    for flag in [
        "--manifest <FILE>",
        "--manifest-path <PATH>",
        "--package <SPEC>",
        "--release",
        "--profile <PROFILE-NAME>",
        "--target-dir <DIRECTORY>",
        "--features <FEATURES>",
        "--all-features",
        "--no-default-features",
        "--locked",
        "--offline",
        "--frozen",
        "--color <WHEN>",
        "--verbose",
        "--quiet",
        "--message-format <FMT>",
    ] {
        assert!(help.contains(flag), "{flag} in build --help:\n{help}");
    }
    let run = uniklink().args(["run", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    for flag in [
        "--manifest <FILE>",
        "--manifest-path <PATH>",
        "--package <SPEC>",
        "--target-dir <DIRECTORY>",
        "--message-format <FMT>",
        "--verbose",
        "--quiet",
    ] {
        assert!(help.contains(flag), "{flag} in run --help:\n{help}");
    }
}

#[test]
fn a_bad_flag_is_a_usage_error_with_status_1() {
    uniklink()
        .args(["build", "--frobnicate"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "unexpected argument '--frobnicate'",
        ));
    uniklink()
        .args(["build", "--release", "--profile", "small"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot be used with"));
    uniklink()
        .args(["run", "image.elf", "--target-dir", "t"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn without_a_manifest_nearby_build_run_and_report_say_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["build", "run", "report"] {
        uniklink()
            .current_dir(dir.path())
            .arg(command)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "could not find `uniklink.yaml` in",
            ))
            .stderr(predicate::str::contains("cargo uniklink init"));
    }
    uniklink()
        .current_dir(dir.path())
        .args(["build", "-m", "nowhere.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nowhere.yaml"));
}

#[test]
fn a_new_app_builds_and_boots_from_any_of_its_directories() {
    let app = App::new("demo");
    for file in ["Cargo.toml", "uniklink.yaml", "src/lib.rs", ".gitignore"] {
        assert!(app.root.join(file).is_file(), "{file}");
    }
    let manifest = std::fs::read_to_string(app.root.join("uniklink.yaml")).unwrap();
    let schema_line = manifest.lines().next().unwrap();
    let schema = schema_line
        .strip_prefix("# yaml-language-server: $schema=")
        .unwrap();
    assert!(Path::new(schema).is_file(), "{schema_line}");
    uniklink()
        .args(["check", "-q"])
        .arg(app.root.join("uniklink.yaml"))
        .assert()
        .success();

    // From a subdirectory, as cargo finds Cargo.toml.
    let built = uniklink()
        .current_dir(app.root.join("src"))
        .args(["build", "--message-format", "json"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&built.get_output().stderr).into_owned();
    assert!(
        !stderr.contains("uniklink: linking"),
        "no spinner off a terminal:\n{stderr}"
    );
    let msg = message(&built.get_output().stdout, "image-built");
    let image = app.image("demo");
    assert_eq!(msg["image"], image.to_str().unwrap());
    assert_eq!(msg["arch"], "x86_64");
    assert_eq!(msg["platform"], "qemu-microvm");
    assert_eq!(
        msg["image_size"].as_u64().unwrap(),
        std::fs::metadata(&image).unwrap().len()
    );
    assert!(
        msg["stripped_size"].as_u64().unwrap() < msg["image_size"].as_u64().unwrap(),
        "{msg}"
    );
    assert!(
        msg["sections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == ".text")
    );
    // The static library came from cargo's artifact messages, in uniklink's own target dir.
    let inputs = report_inputs(Path::new(msg["report"].as_str().unwrap()));
    assert!(
        inputs
            .iter()
            .any(|i| i.ends_with("/uniklink/cargo/x86_64-unknown-none/debug/libdemo.a")),
        "{inputs:?}"
    );

    // On a terminal (script(1) gives it one) the long steps show a spinner.
    let on_terminal = StdCommand::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} build",
            assert_cmd::cargo::cargo_bin("cargo-uniklink").display()
        ))
        .arg("/dev/null")
        .current_dir(&app.root)
        .env_remove("UNIKLINK_LOG")
        .output()
        .unwrap();
    assert!(on_terminal.status.success());
    let screen = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(screen.contains("uniklink: linking ("), "{screen}");

    let ran = uniklink()
        .current_dir(app.root.join("src"))
        .args(["run", "--message-format", "json", "--timeout", "120"])
        .assert()
        .success()
        .stderr(predicate::str::contains("Hello from demo!"));
    let booted = message(&ran.get_output().stdout, "booted");
    assert_eq!(booted["image"], image.to_str().unwrap());
    assert_eq!(booted["guest_exit_code"], 0);
    assert!(booted["ready_ns"].as_u64().is_some(), "{booted}");

    // The report commands find the same manifest.
    uniklink()
        .current_dir(&app.root)
        .args(["report", "--format", "markdown"])
        .assert()
        .success()
        .stdout(predicate::str::contains("|"))
        .stdout(predicate::str::contains(" B stripped, "));
    let report = image.with_extension("json");
    uniklink()
        .current_dir(&app.root)
        .args(["why", "__unik_main"])
        .assert()
        .success();
    uniklink()
        .arg("diff")
        .arg(&report)
        .arg(&report)
        .assert()
        .success();
    uniklink()
        .current_dir(&app.root)
        .args(["config", "-m", "uniklink.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("minimal"));
}

#[test]
fn cargo_flags_reach_the_inner_build() {
    let app = App::new("flags");
    let elsewhere = tempfile::tempdir().unwrap();
    let target_dir = elsewhere.path().join("t");
    // --manifest-path leads to the manifest beside it; --release and --target-dir as in cargo;
    // -v shows the inner command line.
    let built = uniklink()
        .current_dir(elsewhere.path())
        .arg("build")
        .arg("--manifest-path")
        .arg(app.root.join("Cargo.toml"))
        .args(["-p", "flags", "--release", "-v", "--color", "never"])
        .arg("--target-dir")
        .arg(&target_dir)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&built.get_output().stderr).into_owned();
    assert!(
        stderr.contains("running ") && stderr.contains("--release") && stderr.contains("--verbose"),
        "{stderr}"
    );
    let image = target_dir.join("uniklink/release/flags-x86_64.elf");
    assert!(image.is_file());
    assert!(!app.image("flags").exists());
    let inputs = report_inputs(&image.with_extension("json"));
    assert!(
        inputs.iter().any(|i| i.contains("/release/libflags.a")),
        "{inputs:?}"
    );

    // run -q finds it through the same --target-dir and keeps its summary to itself.
    uniklink()
        .current_dir(&app.root)
        .args(["run", "-q", "--release", "--timeout", "120", "--target-dir"])
        .arg(&target_dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("Hello from flags!"))
        .stderr(predicate::str::contains("uniklink: boot:").not());

    // report finds it through --target-dir too.
    uniklink()
        .current_dir(&app.root)
        .args(["report", "--format", "markdown", "--target-dir"])
        .arg(&target_dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("flags-x86_64.elf"));

    // --strip writes what the unstripped build reported as its stripped size, and it boots.
    let read =
        |path: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let unstripped = read(image.with_extension("json"));
    let stripped = uniklink()
        .current_dir(&app.root)
        .args(["build", "--release", "--strip", "--message-format", "json"])
        .arg("--target-dir")
        .arg(&target_dir)
        .assert()
        .success();
    let msg = message(&stripped.get_output().stdout, "image-built");
    assert_eq!(msg["image_size"], unstripped["stripped_size"], "{msg}");
    assert_eq!(msg["stripped_size"], msg["image_size"]);
    assert_eq!(
        std::fs::metadata(&image).unwrap().len(),
        msg["image_size"].as_u64().unwrap()
    );
    uniklink()
        .current_dir(&app.root)
        .args([
            "run",
            "--no-build",
            "--release",
            "--timeout",
            "120",
            "--target-dir",
        ])
        .arg(&target_dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("Hello from flags!"));

    // --no-weave links conventionally: the report has no weave decisions, the woven one has.
    let conventional = elsewhere.path().join("conventional");
    uniklink()
        .current_dir(&app.root)
        .args(["build", "--no-weave", "-q", "--target-dir"])
        .arg(&conventional)
        .assert()
        .success();
    let plain = read(conventional.join("uniklink/debug/flags-x86_64.json"));
    assert!(plain["weave"].is_null(), "{}", plain["weave"]);
    let woven = read(image.with_extension("json"));
    assert!(
        woven["weave"]["components"].is_array(),
        "{}",
        woven["weave"]
    );

    // Flags cargo rejects prove they were passed on: cargo's own errors, status 1.
    uniklink()
        .current_dir(&app.root)
        .args(["build", "--features", "no-such-feature"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no-such-feature"));
    uniklink()
        .current_dir(&app.root)
        .args(["build", "-p", "no-such-package"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no package `no-such-package`"));
    // A fresh app has no Cargo.lock: --locked forbids writing one, --frozen too.
    for flag in ["--locked", "--frozen"] {
        std::fs::remove_file(app.root.join("Cargo.lock")).ok();
        uniklink()
            .current_dir(&app.root)
            .args(["build", flag])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("cannot create the lock file"))
            .stderr(predicate::str::contains(flag));
        assert!(!app.root.join("Cargo.lock").exists());
    }
}

#[test]
fn an_app_that_does_not_compile_shows_cargo_errors_and_writes_no_image() {
    let app = App::new("broken");
    std::fs::write(
        app.root.join("src/lib.rs"),
        "#![no_std]\nunik::entry!(main);\nfn main() { let x: u32 = \"text\"; }\n",
    )
    .unwrap();
    uniklink()
        .current_dir(&app.root)
        .arg("build")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("error[E0308]: mismatched types"))
        .stderr(predicate::str::contains("cargo build"));
    assert!(!app.image("broken").exists());
    assert!(!app.image("broken").with_extension("json").exists());
}

#[test]
fn a_dependency_that_needs_std_is_named_with_what_to_turn_off() {
    let app = App::new("needy");
    let dep = app.root.join("needs-std");
    std::fs::create_dir_all(dep.join("src")).unwrap();
    std::fs::write(
        dep.join("Cargo.toml"),
        "[package]\nname = \"needs-std\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .unwrap();
    std::fs::write(
        dep.join("src/lib.rs"),
        "pub fn args() -> usize {\n    std::env::args().count()\n}\n",
    )
    .unwrap();
    let cargo_toml = app.root.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&cargo_toml).unwrap().replace(
        "[dependencies]\n",
        "[dependencies]\nneeds-std = { path = \"needs-std\" }\n",
    );
    std::fs::write(&cargo_toml, manifest).unwrap();
    std::fs::write(
        app.root.join("src/lib.rs"),
        "#![no_std]\nunik::entry!(main);\nfn main() {\n    unik::println!(\"{}\", needs_std::args());\n}\n",
    )
    .unwrap();
    let out = uniklink()
        .current_dir(&app.root)
        .arg("build")
        .assert()
        .code(1);
    // The error box wraps long lines; compare with the wrapping taken out.
    let stderr: String = String::from_utf8_lossy(&out.get_output().stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // Cargo's own output still shows, and the help follows it.
    assert!(
        stderr.contains("error[E0463]: can't find crate for `std`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "help: `needs-std` needs `std`, which x86_64-unknown-none does not have: apps are \
             `no_std` + `alloc`; turn the dependency's `std` feature off (`default-features = \
             false` in Cargo.toml"
        ),
        "{stderr}"
    );
}

#[test]
fn new_and_init_never_overwrite() {
    let app = App::new("twice");
    let parent = app.root.parent().unwrap();
    uniklink()
        .current_dir(parent)
        .args(["new", "twice"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    // In an app init has nothing to do; over code someone wrote it says what it would change
    // and writes nothing.
    uniklink()
        .current_dir(&app.root)
        .arg("init")
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing to change"));
    let lib = app.root.join("src/lib.rs");
    std::fs::write(&lib, "#![no_std]\npub fn mine() {}\n").unwrap();
    uniklink()
        .current_dir(&app.root)
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("would change what is in"))
        .stderr(predicate::str::contains(
            "src/lib.rs: replaces what it has with a `unik::entry!(main)` hello world",
        ))
        .stderr(predicate::str::contains("cargo uniklink init --force"));
    assert_eq!(
        std::fs::read_to_string(&lib).unwrap(),
        "#![no_std]\npub fn mine() {}\n"
    );

    let empty = parent.join("empty");
    std::fs::create_dir(&empty).unwrap();
    uniklink()
        .current_dir(&empty)
        .args(["init", "--name", "inited"])
        .assert()
        .success();
    let cargo_toml = std::fs::read_to_string(empty.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("name = \"inited\""), "{cargo_toml}");
    assert!(
        cargo_toml.contains(&format!(
            "path = \"{}/libos/unik\"",
            env!("CARGO_MANIFEST_DIR")
        )),
        "{cargo_toml}"
    );
    uniklink()
        .current_dir(parent)
        .args(["new", "9lives"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("invalid package name `9lives`"));
    assert!(!parent.join("9lives").exists());
}

/// The crate `cargo new --lib` makes becomes an app that boots; what init adds it lists.
#[test]
fn init_makes_a_cargo_new_lib_crate_an_app() {
    let dir = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let made = StdCommand::new(cargo)
        .current_dir(dir.path())
        .args(["new", "--lib", "--vcs", "none", "--quiet", "lib-app"])
        .status()
        .unwrap();
    assert!(made.success());
    let root = dir.path().join("lib-app");
    uniklink()
        .current_dir(&root)
        .arg("init")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "Cargo.toml: adds [lib] crate-type = [\"staticlib\"]",
        ))
        .stderr(predicate::str::contains(
            "src/lib.rs: replaces cargo's template with a `unik::entry!(main)` hello world",
        ))
        .stderr(predicate::str::contains(
            "uniklink.yaml: writes the manifest",
        ));
    uniklink()
        .current_dir(&root)
        .args(["run", "--timeout", "120"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Hello from lib-app!"));
}

/// fixtures/apps/cc-app: build.rs compiles C with `cc` and links it with the Rust guest and the
/// library OS through `uniklink::Image`; the guest prints the C code's CRC-32 and exits 0 only
/// if its own Rust CRC-32 agrees.
#[test]
fn the_build_rs_example_links_c_into_an_image_that_boots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/apps/cc-app");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = StdCommand::new(cargo)
        .current_dir(&dir)
        .args(["run", "--quiet"])
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc-app: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (image, size) = stdout.trim().split_once(' ').unwrap();
    assert_eq!(
        size.parse::<u64>().unwrap(),
        std::fs::metadata(image).unwrap().len(),
        "the embedded image is the one on disk"
    );
    // zlib.crc32(b"uniklink")
    uniklink()
        .args(["run", image, "--timeout", "120"])
        .assert()
        .success()
        .stdout(predicate::str::contains("crc32(\"uniklink\") = 0x8cea2906"));
}

/// `run` builds what changed before it boots, as `cargo run` does, so a changed app never
/// boots its old image; `--no-build` boots what is there. Debug and release images live apart.
#[test]
fn run_rebuilds_a_changed_app_and_profiles_keep_their_own_images() {
    let app = App::new("stale");
    let boot = |args: &[&str]| {
        let out = uniklink()
            .current_dir(&app.root)
            .args(["run", "--timeout", "120"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(boot(&[]).contains("Hello from stale!"));

    let lib = app.root.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("Hello from stale!", "Changed!")).unwrap();
    assert!(boot(&[]).contains("Changed!"), "run booted the old image");

    std::fs::write(&lib, source.replace("Hello from stale!", "Not built")).unwrap();
    assert!(boot(&["--no-build"]).contains("Changed!"));

    assert!(boot(&["--release"]).contains("Not built"));
    let debug = app.image("stale");
    let release = app.root.join("target/uniklink/release/stale-x86_64.elf");
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();
    assert!(
        size(&release) < size(&debug),
        "release {} B, debug {} B",
        size(&release),
        size(&debug)
    );
}

/// Output into a pipe nobody reads any more (`cargo uniklink schema | head -c 0`) ends the
/// command quietly, by SIGPIPE as `cat` ends, instead of a panic on EPIPE.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("cargo-uniklink"))
        .arg("schema")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo-uniklink starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("it ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "", "nothing on stderr");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
