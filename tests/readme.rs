//! The README's quick start, run as written in a fresh clone of the committed tree: every
//! command of its first `sh` block except the one that runs the whole test suite (that would
//! run this test again), which is `bash .ci/demo` today. It must build hello and boot it.

use std::path::Path;
use std::process::Command;

/// The commands of the first ```sh block under `## Quick start`, comments stripped.
fn quick_start_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split_once("## Quick start")
        .expect("README has a `## Quick start` section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the quick start has a sh block")
        .1
        .split_once("```")
        .expect("the sh block ends")
        .0;
    block
        .lines()
        .map(|line| line.split_once(" #").map_or(line, |(cmd, _)| cmd).trim())
        .filter(|cmd| !cmd.is_empty() && !cmd.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The command that runs every test, this one included.
fn runs_the_tests(command: &str) -> bool {
    command.contains(".ci/test")
}

#[test]
fn the_quick_start_block_is_read_as_commands() {
    let readme = "# x\n## Quick start\n\ntext\n\n```sh\nbash a   # does a\n# a comment\n\nbash .ci/test  # all\n```\n\n```sh\nnot this\n```\n";
    assert_eq!(quick_start_commands(readme), ["bash a", "bash .ci/test"]);
}

#[test]
fn the_readme_quick_start_builds_and_boots_hello_in_a_fresh_clone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = quick_start_commands(&readme);
    assert_eq!(
        commands.iter().filter(|c| runs_the_tests(c)).count(),
        1,
        "the quick start names the test command once: {commands:?}"
    );
    let to_run: Vec<&String> = commands.iter().filter(|c| !runs_the_tests(c)).collect();
    assert!(!to_run.is_empty(), "nothing to run in {commands:?}");

    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("uniklink");
    let status = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(root)
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success(), "git clone");

    let mut stdout = String::new();
    for command in to_run {
        let out = Command::new("bash")
            .args(["-c", command])
            .current_dir(&clone)
            // The clone's own build of uniklink lives beside this checkout's, so that it is
            // compiled once rather than at every run; cargo test holds the lock on target/
            // itself, so it cannot be that directory.
            .env("CARGO_TARGET_DIR", root.join("target/readme-clone"))
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`{command}` failed ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.push_str(&text);
    }
    assert!(stdout.contains("Hello from uniklink!"), "{stdout}");
    assert!(
        clone
            .join("fixtures/apps/hello/target/uniklink/release/hello-x86_64.elf")
            .is_file()
    );

    // The alias (`cargo uniklink`, from .cargo/config.toml) compiles nothing once the tool is
    // built: a build script that watched a missing path once rebuilt it at every command.
    let binary = root.join("target/readme-clone/debug/cargo-uniklink");
    let alias = || {
        let out = Command::new("cargo")
            .args(["uniklink", "--version"])
            .current_dir(&clone)
            .env("CARGO_TARGET_DIR", root.join("target/readme-clone"))
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::metadata(&binary).unwrap().modified().unwrap()
    };
    let first = alias();
    assert_eq!(
        alias(),
        first,
        "the second `cargo uniklink` rebuilt the tool"
    );
}
