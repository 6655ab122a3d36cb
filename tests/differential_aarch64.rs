//! Differential linking on aarch64: the fixtures of `fixtures/link/` and the real programs,
//! compiled with `aarch64-linux-gnu-gcc` against musl for arm64 (`aarch64-linux-musl-gcc`
//! from Debian's `musl-dev:arm64`), are linked by `aarch64-linux-gnu-ld` and by uniklink and
//! run under `qemu-aarch64`; both programs must behave identically, and every image must pass
//! the goblin checks. A program whose call spans more than a branch's ±128 MiB shows the
//! range-extension thunks at work.
//!
//! The tests skip, saying why, only when a tool is missing outside CI; CI installs them all
//! (`.ci/setup`), so there a missing tool fails the test.

#[path = "common/fixture.rs"]
mod fixture;
#[path = "common/image_check.rs"]
mod image_check;
#[expect(
    dead_code,
    reason = "linkers() is the x86_64 entry point the x86_64 differential tests use"
)]
#[path = "common/linkers.rs"]
mod linkers;
#[path = "common/run.rs"]
mod run;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use fixture::Fixture;
use linkers::{Linked, Linkers, failure_problems, linked, linkers_for, listing};
use xtask::real::{self, Program};
use xtask::toolchain::{Target, describe};

const TARGET: Target = Target::Aarch64;

/// The aarch64 toolchain and emulator, or `None` after printing why the test is skipped.
fn tools() -> Option<&'static Linkers> {
    let emulator = TARGET
        .runner()
        .expect("aarch64 programs run under an emulator here");
    let found = linkers_for(TARGET).and_then(|linkers| {
        Command::new(emulator)
            .arg("--version")
            .output()
            .map(|_| linkers)
            .map_err(|error| format!("cannot run {emulator}: {error}"))
    });
    match found {
        Ok(linkers) => Some(linkers),
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("{error} (CI must have installed it with .ci/setup)")
        }
        Err(error) => {
            eprintln!("skipping: the aarch64 toolchain is not installed (bash .ci/setup): {error}");
            None
        }
    }
}

/// The reference link: objects before the archives that serve them, the C libraries in a
/// group.
fn gnu_ld(tools: &Linkers, objects: &[PathBuf], archives: &[PathBuf], out: &Path) -> Linked {
    let inputs: Vec<PathBuf> = objects.iter().chain(archives).cloned().collect();
    linked(tools.toolchain.gnu_ld(TARGET.ld(), &inputs, out, &[]))
}

/// The same program through uniklink, archives first and no grouping.
fn uniklink_program(
    tools: &Linkers,
    archives: &[PathBuf],
    objects: &[PathBuf],
    flags: &[&str],
    out: &Path,
) -> Linked {
    let toolchain = &tools.toolchain;
    let mut args: Vec<&OsStr> = vec!["--entry".as_ref(), "_start".as_ref()];
    args.extend(flags.iter().map(OsStr::new));
    args.extend(toolchain.start_files().map(Path::as_os_str));
    args.extend(archives.iter().map(|p| p.as_os_str()));
    args.extend(objects.iter().map(|p| p.as_os_str()));
    args.extend(toolchain.libraries().map(Path::as_os_str));
    args.extend(toolchain.end_files().map(Path::as_os_str));
    tools.uniklink(out, args)
}

/// What the GNU-ld-linked program must do.
struct Reference<'a> {
    stdin: &'a [u8],
    exit: i32,
    stdout_contains: &'a [String],
    stderr_contains: &'a [String],
    max_image_bytes: Option<u64>,
    /// Strings only unreachable code or data contains; GC must remove them.
    gc_removes: &'a [String],
}

/// Links with both linkers, checks both images, runs both programs and compares them.
fn link_run_compare(
    tools: &Linkers,
    label: &str,
    work: &Path,
    archives: &[PathBuf],
    objects: &[PathBuf],
    reference: &Reference,
) {
    let gnu_exe = work.join("gnu-ld.out");
    let gnu = gnu_ld(tools, objects, archives, &gnu_exe);
    assert!(gnu.succeeded(), "{label}: the reference link failed: {gnu}");
    let gnu_problems = image_check::problems(&gnu_exe);
    assert!(
        gnu_problems.is_empty(),
        "{label}: the image check rejects GNU ld's output, so the check itself is wrong: {gnu_problems:#?}"
    );
    let expected = run::run(&gnu_exe, reference.stdin);
    assert_eq!(
        expected.status,
        format!("exit {}", reference.exit),
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

    let variants: [(&str, &[&str]); 3] = [
        ("with GC", &[]),
        ("with --no-gc", &["--no-gc"]),
        ("with --strip", &["--strip"]),
    ];
    let failures: Vec<String> = variants
        .iter()
        .filter_map(|&(variant, flags)| {
            let exe = work.join(format!("uniklink{}.out", flags.concat()));
            check_uniklink(tools, archives, objects, flags, &exe, reference, &expected)
                .err()
                .map(|problem| format!("uniklink {variant}: {problem}"))
        })
        .collect();
    assert!(failures.is_empty(), "{label}:\n{}", failures.join("\n\n"));
}

fn check_uniklink(
    tools: &Linkers,
    archives: &[PathBuf],
    objects: &[PathBuf],
    flags: &[&str],
    exe: &Path,
    reference: &Reference,
    expected: &run::Ran,
) -> Result<(), String> {
    let linked = uniklink_program(tools, archives, objects, flags, exe);
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
    if flags.is_empty() {
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

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn make_archive(archive: &Path, members: &[PathBuf]) {
    let mut cmd = Command::new(TARGET.ar());
    cmd.arg("rcs").arg(archive).args(members);
    let status = cmd
        .status()
        .unwrap_or_else(|error| panic!("cannot run `{}`: {error}", describe(&cmd)));
    assert!(status.success(), "`{}` failed", describe(&cmd));
}

fn compile_fixture(
    tools: &Linkers,
    fixture: &Fixture,
    work: &Path,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut objects = Vec::new();
    let mut members = Vec::new();
    for source in &fixture.sources {
        let object = work
            .join(source.file_stem().expect("file"))
            .with_extension("o");
        tools
            .toolchain
            .compile(source, &object, &fixture.flags_for(source, TARGET))
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

fn differential(name: &str) {
    let Some(tools) = tools() else { return };
    let fixture = Fixture::load(name);
    let work = tempfile::tempdir().expect("temporary directory");
    let (archives, objects) = compile_fixture(tools, &fixture, work.path());
    let expect = &fixture.expect;

    if !expect.link_error.is_empty() {
        let gnu = gnu_ld(tools, &objects, &archives, &work.path().join("gnu-ld.out"));
        assert!(
            !gnu.succeeded(),
            "{name}: GNU ld accepted a fixture that must fail"
        );
        let out = work.path().join("uniklink.out");
        let before = listing(work.path());
        let uni = uniklink_program(tools, &archives, &objects, &[], &out);
        let mut problems = failure_problems(&uni, &out, &before);
        for fragment in &expect.link_error {
            if !uni.stderr.contains(fragment.as_str()) {
                problems.push(format!("stderr does not name {fragment:?}"));
            }
        }
        assert!(problems.is_empty(), "{name}: {problems:#?}\n{uni}");
        return;
    }

    link_run_compare(
        tools,
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
    );
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
    duplicate_symbol,
    func_ptrs,
    gc_sections,
    got_extern,
    hello,
    jump_table,
    large_bss,
    merged_strings,
    start_stop,
    tls,
    tls_models,
    undefined_symbol,
    weak_common,
);

#[test]
fn every_fixture_directory_has_an_aarch64_test() {
    let on_disk: Vec<String> = listing(&fixture::root())
        .into_iter()
        .filter(|name| fixture::root().join(name).is_dir())
        .collect();
    assert_eq!(
        on_disk, FIXTURES,
        "list each directory of fixtures/link in fixtures!() of differential_aarch64.rs"
    );
}

#[test]
fn real_sqlite() {
    let Some(tools) = tools() else { return };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-objects");
    let built = real::build(Program::Sqlite, &tools.toolchain, &cache)
        .unwrap_or_else(|error| panic!("{error}"));
    let work = tempfile::tempdir().expect("temporary directory");
    let stdout_contains: Vec<String> = [
        "sqlite 3.",
        "count: n=14000",
        "broken: error: no such column: nosuchcolumn",
        "integrity: integrity_check=ok",
        "mprintf: it''s|NULL|1234567890123",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    link_run_compare(
        tools,
        "sqlite",
        work.path(),
        &[],
        &built.objects(),
        &Reference {
            stdin: b"",
            exit: 0,
            stdout_contains: &stdout_contains,
            stderr_contains: &[],
            max_image_bytes: None,
            gc_removes: &[],
        },
    );
}
