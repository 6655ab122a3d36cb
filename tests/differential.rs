//! Differential linking on both targets: the same objects linked by GNU ld and by uniklink
//! must give programs that behave identically (stdout, stderr, exit status); see
//! `common/differential.rs`. Fixtures live in `fixtures/link/`, one directory each; the real
//! programs (SQLite, Lua, zlib) are the C sources crates.io packages vendor, with drivers from
//! `fixtures/real/`. One list below makes a test per fixture and program for x86_64 (native)
//! and for aarch64 (`aarch64-linux-musl-gcc`, `aarch64-linux-gnu-ld`, run under
//! `qemu-aarch64`); the aarch64 tests skip, saying why, only when a tool is missing outside
//! CI. The aarch64-only cases are in `differential_aarch64.rs`.

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

use std::path::Path;

use differential::{Reference, link_run_compare, make_archive, tools};
use linkers::listing;
use xtask::real::{self, Program};
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
