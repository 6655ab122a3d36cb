//! Differential linking: the same objects linked by GNU ld and by uniklink must give programs
//! that behave identically (stdout, stderr, exit status). Fixtures live in `fixtures/link/`,
//! one directory each; the real programs (SQLite, Lua, zlib) are the C sources crates.io
//! packages vendor, with drivers from `fixtures/real/`. Every executable is also checked with
//! goblin, independently of the code that wrote it.

#[path = "common/fixture.rs"]
mod fixture;
#[path = "common/image_check.rs"]
mod image_check;
#[path = "common/linkers.rs"]
mod linkers;
#[path = "common/run.rs"]
mod run;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use fixture::Fixture;
use linkers::{Linked, failure_problems, linked, linkers, listing};
use xtask::real::{self, Program};

/// The reference link: objects before the archives that serve them, the C libraries in a
/// group.
fn gnu_ld(objects: &[PathBuf], archives: &[PathBuf], out: &Path) -> Linked {
    let inputs: Vec<PathBuf> = objects.iter().chain(archives).cloned().collect();
    linked(linkers().toolchain.gnu_ld("ld", &inputs, out, &[]))
}

/// The same program through uniklink, with the archives deliberately placed before the
/// objects that need them and no grouping: uniklink resolves in any order, like lld.
fn uniklink_program(
    archives: &[PathBuf],
    objects: &[PathBuf],
    flags: &[&str],
    out: &Path,
) -> Linked {
    let toolchain = &linkers().toolchain;
    let mut args: Vec<&OsStr> = vec!["--entry".as_ref(), "_start".as_ref()];
    args.extend(flags.iter().map(OsStr::new));
    args.extend(toolchain.start_files().map(Path::as_os_str));
    args.extend(archives.iter().map(|p| p.as_os_str()));
    args.extend(objects.iter().map(|p| p.as_os_str()));
    args.extend(toolchain.libraries().map(Path::as_os_str));
    args.extend(toolchain.end_files().map(Path::as_os_str));
    linkers().uniklink(out, args)
}

/// What the GNU-ld-linked program must do: fixed fragments keep a test from passing on two
/// equally broken programs.
struct Reference<'a> {
    stdin: &'a [u8],
    exit: i32,
    stdout_contains: &'a [String],
    stderr_contains: &'a [String],
    max_image_bytes: Option<u64>,
    /// Strings only unreachable code or data contains: GNU ld (without GC) keeps them,
    /// uniklink's collected image must not.
    gc_removes: &'a [String],
}

/// Links with both linkers, checks both images, runs both programs and compares them. Panics
/// if the reference itself is wrong; returns what is wrong with uniklink's links.
fn link_run_compare(
    label: &str,
    work: &Path,
    archives: &[PathBuf],
    objects: &[PathBuf],
    reference: &Reference,
) -> Vec<String> {
    let gnu_exe = work.join("gnu-ld.out");

    let gnu = gnu_ld(objects, archives, &gnu_exe);
    assert!(gnu.succeeded(), "{label}: the reference link failed: {gnu}");
    let gnu_problems = image_check::problems(&gnu_exe);
    assert!(
        gnu_problems.is_empty(),
        "{label}: the image check rejects GNU ld's output, so the check itself is wrong: {gnu_problems:#?}"
    );
    let expected = run::run(&gnu_exe, reference.stdin);
    let expected_status = format!("exit {}", reference.exit);
    assert_eq!(
        expected.status, expected_status,
        "{label}: GNU ld build: {expected:#?}"
    );
    for fragment in reference.stdout_contains {
        assert!(
            expected.stdout.contains(fragment.as_str()),
            "{label}: GNU ld build's stdout lacks {fragment:?}:\n{}",
            expected.stdout
        );
    }
    for fragment in reference.stderr_contains {
        assert!(
            expected.stderr.contains(fragment.as_str()),
            "{label}: GNU ld build's stderr lacks {fragment:?}:\n{}",
            expected.stderr
        );
    }

    let image = std::fs::read(&gnu_exe).expect("GNU ld's image");
    for marker in reference.gc_removes {
        assert!(
            contains(&image, marker),
            "{label}: {marker:?} is not in GNU ld's image (linked without GC), so its absence \
             from uniklink's would prove nothing"
        );
    }

    // With uniklink's default section garbage collection, keeping everything, and without a
    // symbol table: each must behave exactly like the reference.
    let variants: [(&str, &[&str]); 3] = [
        ("with GC", &[]),
        ("with --no-gc", &["--no-gc"]),
        ("with --strip", &["--strip"]),
    ];
    variants
        .iter()
        .filter_map(|&(variant, flags)| {
            let exe = work.join(format!("uniklink{}.out", flags.concat()));
            check_uniklink(archives, objects, flags, &exe, reference, &expected)
                .err()
                .map(|problem| format!("uniklink {variant}: {problem}"))
        })
        .collect()
}

fn check_uniklink(
    archives: &[PathBuf],
    objects: &[PathBuf],
    flags: &[&str],
    exe: &Path,
    reference: &Reference,
    expected: &run::Ran,
) -> Result<(), String> {
    let linked = uniklink_program(archives, objects, flags, exe);
    if !linked.succeeded() {
        return Err(format!("link failed: {linked}"));
    }
    let problems = image_check::problems(exe);
    if !problems.is_empty() {
        return Err(format!("bad image: {problems:#?}"));
    }
    let image = std::fs::read(exe).map_err(|error| format!("cannot read the image: {error}"))?;
    if let Some(limit) = reference.max_image_bytes
        && image.len() as u64 > limit
    {
        return Err(format!("the image is {} bytes, limit {limit}", image.len()));
    }
    if flags.contains(&"--strip") && has_symbol_table(&image) {
        return Err("--strip left a symbol table in the image".to_string());
    }
    if !flags.contains(&"--no-gc") {
        for marker in reference.gc_removes {
            if contains(&image, marker) {
                return Err(format!(
                    "unreachable {marker:?} survived garbage collection"
                ));
            }
        }
    }
    let got = run::run(exe, reference.stdin);
    if got != *expected {
        return Err(format!(
            "the program differs from the GNU-ld-linked one\n  uniklink: {got:?}\n  GNU ld:   {expected:?}"
        ));
    }
    Ok(())
}

fn has_symbol_table(image: &[u8]) -> bool {
    goblin::elf::Elf::parse(image).is_ok_and(|elf| {
        elf.section_headers
            .iter()
            .any(|sh| sh.sh_type == goblin::elf::section_header::SHT_SYMTAB)
    })
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn compile_fixture(fixture: &Fixture, work: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let toolchain = &linkers().toolchain;
    let mut objects = Vec::new();
    let mut members = Vec::new();
    for source in &fixture.sources {
        let object = work
            .join(source.file_stem().expect("file"))
            .with_extension("o");
        toolchain
            .compile(
                source,
                &object,
                &fixture.flags_for(source, toolchain.target),
            )
            .unwrap_or_else(|error| panic!("{}: {error}", fixture.name));
        if fixture.in_archive(source) {
            members.push(object);
        } else {
            objects.push(object);
        }
    }
    let mut archives = Vec::new();
    if !members.is_empty() {
        let archive = work.join(format!("lib{}.a", fixture.name));
        make_archive(&archive, &members);
        archives.push(archive);
    }
    (archives, objects)
}

fn make_archive(archive: &Path, members: &[PathBuf]) {
    let status = Command::new("ar")
        .arg("rcs")
        .arg(archive)
        .args(members)
        .status()
        .unwrap_or_else(|error| panic!("cannot run ar (binutils): {error}"));
    assert!(status.success(), "ar failed making {}", archive.display());
}

fn differential(name: &str) {
    let fixture = Fixture::load(name);
    let failures = fixture_failures(&fixture);
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n\n"));
}

/// Everything wrong with uniklink's handling of the fixture.
fn fixture_failures(fixture: &Fixture) -> Vec<String> {
    let name = &fixture.name;
    let work = tempfile::tempdir().expect("temporary directory");
    let (archives, objects) = compile_fixture(fixture, work.path());
    let expect = &fixture.expect;

    if !expect.link_error.is_empty() {
        let gnu = gnu_ld(&objects, &archives, &work.path().join("gnu-ld.out"));
        assert!(
            !gnu.succeeded(),
            "{name}: GNU ld accepted a fixture that must fail"
        );
        let out = work.path().join("uniklink.out");
        let before = listing(work.path());
        let uni = uniklink_program(&archives, &objects, &[], &out);
        let mut problems = failure_problems(&uni, &out, &before);
        for fragment in &expect.link_error {
            if !uni.stderr.contains(fragment.as_str()) {
                problems.push(format!("stderr does not name {fragment:?}"));
            }
        }
        if !problems.is_empty() {
            problems.push(uni.to_string());
        }
        return problems;
    }

    link_run_compare(
        name,
        work.path(),
        &archives,
        &objects,
        &Reference {
            stdin: expect.stdin.as_bytes(),
            exit: expect.exit.expect("checked when loading"),
            stdout_contains: &expect.stdout_contains,
            stderr_contains: &expect.stderr_contains,
            max_image_bytes: expect.max_image_bytes,
            gc_removes: &expect.gc_removes,
        },
    )
}

macro_rules! fixtures {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                differential(stringify!($name));
            }
        )*
        const FIXTURES: &[&str] = &[$(stringify!($name)),*];
    };
}

fixtures!(
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
    weak_common,
);

/// A known uniklink bug, kept as a strict expected failure: with `-gz`, gcc writes
/// SHF_COMPRESSED debug sections, and uniklink checks their relocations against the compressed
/// size ("relocation #10 in .rela.debug_info at offset 0x8c is outside .debug_info (0x8a
/// bytes)") instead of the `Elf64_Chdr`'s `ch_size`, so the link fails where GNU ld's
/// succeeds. Once uniklink links it, this test fails: then add `-gz=zlib` to the fixture's
/// cflags and delete the test.
#[test]
fn known_bug_compressed_debug_sections() {
    let mut fixture = Fixture::load("debug_info");
    fixture.expect.cflags.push("-gz=zlib".to_string());
    let failures = fixture_failures(&fixture);
    assert!(
        !failures.is_empty(),
        "uniklink now links compressed debug sections; make -gz=zlib part of debug_info"
    );
    assert!(
        failures.iter().all(|failure| failure.contains(".debug_")),
        "uniklink fails on compressed debug sections differently now:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn every_fixture_directory_has_a_test() {
    let on_disk: Vec<String> = listing(&fixture::root())
        .into_iter()
        .filter(|name| fixture::root().join(name).is_dir())
        .collect();
    assert_eq!(
        on_disk, FIXTURES,
        "list each directory of fixtures/link in fixtures!()"
    );
}

/// How a real program's library objects reach the linkers.
#[derive(Clone, Copy)]
enum Packaging {
    Objects,
    /// In `lib<name>.a`, which uniklink gets before the driver that needs it.
    Archive,
}

fn real_program(program: Program, packaging: Packaging, stdout_contains: &[&str]) {
    let toolchain = &linkers().toolchain;
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-objects");
    let built = real::build(program, toolchain, &cache).unwrap_or_else(|error| panic!("{error}"));
    let work = tempfile::tempdir().expect("temporary directory");
    let (archives, objects) = match packaging {
        Packaging::Objects => (Vec::new(), built.objects()),
        Packaging::Archive => {
            let archive = work.path().join(format!("lib{}.a", program.name()));
            make_archive(&archive, &built.library);
            (vec![archive], vec![built.driver.clone()])
        }
    };
    let stdout_contains: Vec<String> = stdout_contains.iter().map(|s| s.to_string()).collect();
    let failures = link_run_compare(
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
        "{}:\n{}",
        program.name(),
        failures.join("\n\n")
    );
}

#[test]
fn real_sqlite() {
    real_program(
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

#[test]
fn real_lua() {
    real_program(
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

#[test]
fn real_zlib() {
    real_program(
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
