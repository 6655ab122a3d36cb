//! Differential linking on both targets: the same objects linked by GNU ld and by uniklink
//! must give programs that behave identically (stdout, stderr, exit status); see
//! `common/differential.rs`. Fixtures live in `fixtures/link/`, one directory each; the real
//! programs (SQLite, Lua, zlib) are the C sources crates.io packages vendor, with drivers from
//! `fixtures/real/`. One list below makes a test per fixture and program for x86_64 (native)
//! and for aarch64 (`aarch64-linux-musl-gcc`, `aarch64-linux-gnu-ld`, run under
//! `qemu-aarch64`); the aarch64 tests skip, saying why, only when a tool is missing outside
//! CI. The aarch64-only cases are in `differential_aarch64.rs`. `real_ripgrep` links a real
//! Rust program, x86_64 only (see its comment).

#[path = "common/differential.rs"]
mod differential;
#[path = "common/fixture.rs"]
mod fixture;
#[path = "common/image_check.rs"]
mod image_check;
#[path = "common/linkers.rs"]
mod linkers;
#[path = "common/run.rs"]
mod run;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use differential::{Reference, link_run_compare, make_archive, tools};
use linkers::listing;
use xtask::real::{self, Program};
use xtask::rust_program;
use xtask::toolchain::Target;

/// `fixtures!(fixtures: NAME, ...; real: PROGRAM, ...)` makes, in `mod x86_64` and
/// `mod aarch64`, a test per fixture directory and one per real program (calling the function
/// of that name with the target), and `FIXTURES`, the list the directory check compares with.
macro_rules! fixtures {
    (fixtures: $($fixture:ident),* $(,)?; real: $($program:ident),* $(,)?) => {
        const FIXTURES: &[&str] = &[$(stringify!($fixture)),*];
        fixtures!(@target x86_64, Target::X86_64; $($fixture),*; $($program),*);
        fixtures!(@target aarch64, Target::Aarch64; $($fixture),*; $($program),*);
    };
    (@target $module:ident, $target:expr; $($fixture:ident),*; $($program:ident),*) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $fixture() {
                    differential::differential($target, stringify!($fixture), &[]);
                }
            )*
            $(
                #[test]
                fn $program() {
                    super::$program($target);
                }
            )*
        }
    };
}

fixtures!(
    fixtures:
        alignment,
        archive_order,
        archive_weak,
        code_model_medium,
        ctors_dtors,
        data_relocs,
        debug_info,
        duplicate_symbol,
        eh_frame_hdr,
        func_ptrs,
        gc_sections,
        got_extern,
        hardening,
        hello,
        jump_table,
        large_bss,
        linker_symbols,
        merged_strings,
        start_stop,
        tls,
        tls_models,
        undefined_symbol,
        weak_common;
    real: real_sqlite, real_lua, real_zlib,
);

#[test]
fn every_fixture_directory_has_a_test() {
    let on_disk: Vec<String> = listing(&fixture::root())
        .into_iter()
        .filter(|name| fixture::root().join(name).is_dir())
        .collect();
    assert_eq!(
        on_disk, FIXTURES,
        "list each directory of fixtures/link in fixtures!(), which tests it on both targets"
    );
}

/// How a real program's library objects reach the linkers.
#[derive(Clone, Copy)]
enum Packaging {
    Objects,
    /// In `lib<name>.a`, which uniklink gets before the driver that needs it.
    Archive,
}

fn real_program(target: Target, program: Program, packaging: Packaging, stdout_contains: &[&str]) {
    let Some(tools) = tools(target) else { return };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-objects");
    let built =
        real::build(program, &tools.toolchain, &cache).unwrap_or_else(|error| panic!("{error}"));
    let work = tempfile::tempdir().expect("temporary directory");
    let (archives, objects) = match packaging {
        Packaging::Objects => (Vec::new(), built.objects()),
        Packaging::Archive => {
            let archive = work.path().join(format!("lib{}.a", program.name()));
            make_archive(target, &archive, &built.library);
            (vec![archive], vec![built.driver.clone()])
        }
    };
    let stdout_contains: Vec<String> = stdout_contains.iter().map(|s| s.to_string()).collect();
    let failures = link_run_compare(
        tools,
        program.name(),
        work.path(),
        &archives,
        &objects,
        &Reference {
            stdin: b"",
            exit: 0,
            stdout_contains: &stdout_contains,
            stderr_contains: &[],
            max_image_bytes: None,
            ldflags: &[],
            gc_removes: &[],
        },
    );
    assert!(
        failures.is_empty(),
        "{} on {}:\n{}",
        program.name(),
        target.name(),
        failures.join("\n\n")
    );
}

fn real_sqlite(target: Target) {
    real_program(
        target,
        Program::Sqlite,
        Packaging::Objects,
        &[
            "sqlite 3.",
            "count: n=14000",
            "broken: error: no such column: nosuchcolumn",
            "integrity: integrity_check=ok",
            "mprintf: it''s|NULL|1234567890123",
        ],
    );
}

fn real_lua(target: Target) {
    real_program(
        target,
        Program::Lua,
        Packaging::Archive,
        &[
            "closure\t3",
            "coroutine\t0,1,1,2,3,5,8,13,21,34",
            "metatable\t(4.5, 2.25)",
            "pcall\tfalse\ttable\t42",
            "Lua 5.4",
        ],
    );
}

fn real_zlib(target: Target) {
    real_program(
        target,
        Program::Zlib,
        Packaging::Archive,
        &[
            "oneshot level=9",
            "stream level=9 bits=31",
            "inflate=1 same=1",
            "corrupt uncompress=-3",
        ],
    );
}

/// ripgrep, built by cargo for x86_64-unknown-linux-musl (`xtask::rust_program`), linked with
/// rustc's captured line by GNU ld and with the same input files and `--eh-frame-hdr` by
/// uniklink (with GC, `--no-gc` and `--strip`), every program run with the same arguments and compared. Only
/// x86_64: the Rust musl target for aarch64 is not installed. The first run builds ripgrep
/// (minutes) into `CARGO_TARGET_TMPDIR`; later runs only link.
#[test]
fn real_ripgrep() {
    let Some(tools) = tools(Target::X86_64) else {
        return;
    };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-program");
    let line =
        rust_program::build(&tools.toolchain, &cache).unwrap_or_else(|error| panic!("{error}"));
    let corpus = rust_program::corpus_dir();
    let binary = corpus.join("notes/binary.dat").display().to_string();
    let corpus = corpus.to_str().expect("the corpus path is UTF-8");
    // Each run: arguments, stdin, and fragments GNU ld's program must print (stdout, then
    // stderr), so that two equally broken programs cannot pass.
    let runs: [(Vec<&str>, &str, &str); 9] = [
        (vec!["--version"], "", "ripgrep 15.2.0"),
        (
            vec![
                "--sort",
                "path",
                "--line-number",
                "--ignore-case",
                r"\b(fn|struct|linker)\b",
                corpus,
            ],
            "",
            "linker.rs:1:/// A toy linker",
        ),
        (
            vec!["--sort", "path", "--count", "--no-ignore", "fn", corpus],
            "",
            "hidden-by-ignore.log:1",
        ),
        (
            vec!["--sort", "path", "--files", "--hidden", corpus],
            "",
            ".ignore",
        ),
        (
            vec!["--sort", "path", "--only-matching", "(?i)gr..e", corpus],
            "",
            "größe",
        ),
        // Binary detection: an explicitly named file is searched, and the match reported.
        (vec!["data", &binary], "", "binary file matches"),
        (
            vec!["--only-matching", "[a-z]+_[a-z]+"],
            "static_link and dynamic_link\n",
            "static_link",
        ),
        (
            vec!["needle", "/nonexistent/uniklink-corpus"],
            "",
            "No such file or directory",
        ),
        (vec!["(unclosed"], "", "regex parse error"),
    ];

    let work = tempfile::tempdir().expect("temporary directory");
    let gnu_exe = work.path().join("gnu-ld.out");
    let gnu = linkers::linked(line.command(tools.toolchain.target.ld(), &gnu_exe));
    assert!(gnu.succeeded(), "ripgrep: the reference link failed: {gnu}");
    let gnu_problems = image_check::problems(&gnu_exe);
    assert!(
        gnu_problems.is_empty(),
        "ripgrep: the image check rejects GNU ld's output: {gnu_problems:#?}"
    );
    let run_all = |exe: &Path| -> Vec<run::Ran> {
        runs.iter()
            .map(|(args, stdin, _)| {
                let mut cmd = Command::new(exe);
                cmd.args(args);
                run::run_command(cmd, stdin.as_bytes())
            })
            .collect()
    };
    let expected = run_all(&gnu_exe);
    for ((args, _, fragment), ran) in runs.iter().zip(&expected) {
        assert!(
            ran.stdout.contains(fragment) || ran.stderr.contains(fragment),
            "ripgrep {args:?} linked by GNU ld does not print {fragment:?}: {ran:#?}"
        );
    }

    let variants: [(&str, &[&str]); 3] = [
        ("with GC", &[]),
        ("with --no-gc", &["--no-gc"]),
        ("with --strip", &["--strip"]),
    ];
    let failures: Vec<String> = variants
        .iter()
        .filter_map(|&(variant, flags)| {
            let exe = work.path().join(format!("uniklink{}.out", flags.concat()));
            let args = ["--entry", "_start"]
                .iter()
                .chain(flags)
                .map(OsStr::new)
                .chain(line.uniklink_args());
            let linked = tools.uniklink(&exe, args);
            if !linked.succeeded() {
                return Some(format!("uniklink {variant}: link failed: {linked}"));
            }
            let problems = image_check::problems(&exe);
            if !problems.is_empty() {
                return Some(format!("uniklink {variant}: bad image: {problems:#?}"));
            }
            let differs: Vec<String> = runs
                .iter()
                .zip(run_all(&exe).iter().zip(&expected))
                .filter(|(_, (got, want))| got != want)
                .map(|((args, _, _), (got, want))| {
                    format!("  rg {args:?}\n    uniklink: {got:?}\n    GNU ld:   {want:?}")
                })
                .collect();
            (!differs.is_empty()).then(|| {
                format!(
                    "uniklink {variant}: runs differ from GNU ld's:\n{}",
                    differs.join("\n")
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "ripgrep on x86_64:\n{}",
        failures.join("\n\n")
    );
}
