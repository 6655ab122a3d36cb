//! The app's arguments and environment: the manifest's `args` and `env`, `run --arg` and
//! `-e`, carried on the kernel command line and read by `unik::env`, round-trip exactly on
//! x86_64 and aarch64 (spaces, quotes, `=`, UTF-8, empty values); bad ones are errors before
//! anything boots.

#[path = "common/apps.rs"]
mod apps;
#[path = "common/woven.rs"]
#[allow(dead_code, reason = "env is checked by its component, not by symbols")]
mod woven;

use std::path::{Path, PathBuf};
use std::process::Output;

use apps::{ROOT, assert_success, build_release, run_built, write_manifest};

const ARGS: [&str; 6] = [
    "plain",
    "with  two spaces",
    "quote \" and ' and \\",
    "grüße 🦀 中",
    "a=b%41",
    "",
];

fn manifest(name: &str) -> PathBuf {
    let path = Path::new(ROOT).join(format!("target/env-tests/{name}.yaml"));
    let args: Vec<String> = ARGS.iter().map(|a| format!("{a:?}")).collect();
    write_manifest(
        &path,
        name,
        "envdump",
        "x86_64, aarch64",
        &format!(
            "cmdline: uniklink.verbose=0\nargs: [{}]\nenv:\n  GREETING: \"hello, world\"\n  EMPTY: \"\"\n  UTF: \"ünï=1\"\n",
            args.join(", ")
        ),
    );
    path
}

fn run(manifest: &Path, extra: &[&str]) -> Output {
    run_built(manifest, "120").args(extra).output().unwrap()
}

fn expected(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut lines = vec![format!("args {}", args.len())];
    lines.extend(
        args.iter()
            .enumerate()
            .map(|(i, a)| format!("arg {i} {a:?}")),
    );
    lines.extend(env.iter().map(|(n, v)| format!("env {n} {v:?}")));
    lines.push("MISSING: environment variable not found".to_owned());
    lines.join("\n")
}

fn app_lines(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with("uniklink:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn arguments_and_environment_round_trip_on_both_architectures() {
    let manifest = manifest("envdump");
    for arch in ["x86_64", "aarch64"] {
        assert_success(&build_release(&manifest, &["--arch", arch]), "build");
        let out = run(&manifest, &["--arch", arch]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            app_lines(&out.stdout),
            expected(
                &ARGS,
                &[
                    ("GREETING", "hello, world"),
                    ("EMPTY", ""),
                    ("UTF", "ünï=1")
                ]
            ),
            "{arch}"
        );
    }

    // run adds arguments after the manifest's and overrides variables.
    let out = run(
        &manifest,
        &[
            "--arg",
            "extra one",
            "-e",
            "GREETING=über",
            "-e",
            "NEW=",
            "--append",
            "x=1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = ARGS.to_vec();
    args.push("extra one");
    assert_eq!(
        app_lines(&out.stdout),
        expected(
            &args,
            &[
                ("EMPTY", ""),
                ("UTF", "ünï=1"),
                ("GREETING", "über"),
                ("NEW", "")
            ]
        )
    );
}

#[test]
fn bad_arguments_and_variables_are_errors_naming_them() {
    let manifest = manifest("envdump-bad");
    for (extra, words) in [
        (&["-e", "NOEQUALS"][..], "`NOEQUALS` is not NAME=VALUE"),
        (
            &["-e", "1BAD=x"],
            "`1BAD` is not an environment variable name",
        ),
        (&["--append", "a\nb"], "must be one line of text"),
    ] {
        let out = run(&manifest, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(words), "{extra:?}: {stderr}");
    }
    let long = "x".repeat(3000);
    let out = run(&manifest, &["--arg", &long]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("more than the 2048"), "{stderr}");
}

/// The `env` component is in an image only when the app reads its arguments or environment.
#[test]
fn only_an_app_that_reads_them_keeps_the_env_component() {
    let state = |app: &str, extra: &str| {
        let path = Path::new(ROOT).join(format!("target/env-tests/weave-{app}.yaml"));
        write_manifest(&path, &format!("env-weave-{app}"), app, "x86_64", extra);
        let report = woven::built_reports(&path, &[]).remove(0);
        woven::component(&report, "env")
            .unwrap_or_else(|| panic!("{app}: no env component in the report"))
    };
    assert_eq!(
        state("envdump", "args: [x]\n"),
        (true, "reached".to_owned())
    );
    assert_eq!(state("hello", ""), (false, "not required".to_owned()));
}
