//! The differential engine, for either target: the same objects linked by the target's GNU ld
//! and by uniklink (with GC, `--no-gc` and `--strip`) must give programs that behave
//! identically (stdout, stderr, exit status), and every image must pass the goblin checks of
//! `image_check`. aarch64 programs run under `qemu-aarch64`. A test crate using this module
//! also declares `common/fixture.rs`, `common/image_check.rs`, `common/linkers.rs` and
//! `common/run.rs` as `fixture`, `image_check`, `linkers` and `run`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::toolchain::{Target, describe};

use crate::fixture::{Expect, Fixture};
use crate::linkers::{Linked, Linkers, failure_problems, linked, linkers, linkers_for, listing};
use crate::{image_check, run};

/// The toolchain for `target`, or `None` after printing why the test is skipped. The host's
/// x86_64 toolchain is required everywhere; the aarch64 cross tools and emulator may be
/// missing outside CI, which installs them all (`.ci/setup`), so there a missing tool fails
/// the test.
pub fn tools(target: Target) -> Option<&'static Linkers> {
    let Some(emulator) = target.runner() else {
        return Some(linkers());
    };
    available(linkers_for(target).and_then(|linkers| {
        Command::new(emulator)
            .arg("--version")
            .output()
            .map(|_| linkers)
            .map_err(|error| format!("cannot run {emulator}: {error}"))
    }))
}

/// `None` after printing why the test is skipped when a tool is missing; a failure in CI.
pub fn available<T>(found: Result<T, String>) -> Option<T> {
    match found {
        Ok(found) => Some(found),
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("{error} (CI must have installed it with .ci/setup)")
        }
        Err(error) => {
            eprintln!("skipping: a tool is not installed (bash .ci/setup): {error}");
            None
        }
    }
}

/// The reference link: objects before the archives that serve them, the C libraries in a
/// group, `flags` before the inputs.
pub fn gnu_ld(
    tools: &Linkers,
    objects: &[PathBuf],
    archives: &[PathBuf],
    flags: &[String],
    out: &Path,
) -> Linked {
    let inputs: Vec<PathBuf> = objects.iter().chain(archives).cloned().collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    linked(
        tools
            .toolchain
            .gnu_ld(tools.toolchain.target.ld(), &inputs, out, &flags),
    )
}

/// The same program through uniklink, with the archives deliberately placed before the
/// objects that need them and no grouping: uniklink resolves in any order, like lld.
pub fn uniklink_program(
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

/// What the GNU-ld-linked program must do: fixed fragments keep a test from passing on two
/// equally broken programs.
pub struct Reference<'a> {
    pub stdin: &'a [u8],
    pub exit: i32,
    pub stdout_contains: &'a [String],
    pub stderr_contains: &'a [String],
    pub max_image_bytes: Option<u64>,
    /// Flags both linkers get.
    pub ldflags: &'a [String],
    /// Strings only unreachable code or data contains: GNU ld (without GC) keeps them,
    /// uniklink's collected image must not.
    pub gc_removes: &'a [String],
}

impl<'a> Reference<'a> {
    /// What a running fixture's `expect.toml` asks for.
    pub fn of(expect: &'a Expect) -> Self {
        Reference {
            stdin: expect.stdin.as_bytes(),
            exit: expect.exit.expect("checked when loading"),
            stdout_contains: &expect.stdout_contains,
            stderr_contains: &expect.stderr_contains,
            max_image_bytes: expect.max_image_bytes,
            ldflags: &expect.ldflags,
            gc_removes: &expect.gc_removes,
        }
    }
}

/// Links with both linkers, checks both images, runs both programs and compares them. Panics
/// if the reference itself is wrong; returns what is wrong with uniklink's links.
pub fn link_run_compare(
    tools: &Linkers,
    label: &str,
    work: &Path,
    archives: &[PathBuf],
    objects: &[PathBuf],
    reference: &Reference,
) -> Vec<String> {
    let gnu_exe = work.join("gnu-ld.out");
    let gnu = gnu_ld(tools, objects, archives, reference.ldflags, &gnu_exe);
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
            check_uniklink(tools, archives, objects, flags, &exe, reference, &expected)
                .err()
                .map(|problem| format!("uniklink {variant}: {problem}"))
        })
        .collect()
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
    let flags: Vec<&str> = flags
        .iter()
        .copied()
        .chain(reference.ldflags.iter().map(String::as_str))
        .collect();
    let linked = uniklink_program(tools, archives, objects, &flags, exe);
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

/// `lib<name>.a` made by the target's ar, which indexes the target's symbols.
pub fn make_archive(target: Target, archive: &Path, members: &[PathBuf]) {
    let mut cmd = Command::new(target.ar());
    cmd.arg("rcs").arg(archive).args(members);
    let status = cmd
        .status()
        .unwrap_or_else(|error| panic!("cannot run `{}` (binutils): {error}", describe(&cmd)));
    assert!(status.success(), "`{}` failed", describe(&cmd));
}

/// Compiles a fixture with its flags followed by `extra`; returns its archives and objects.
fn compile_fixture(
    tools: &Linkers,
    fixture: &Fixture,
    extra: &[&str],
    work: &Path,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let target = tools.toolchain.target;
    let mut objects = Vec::new();
    let mut members = Vec::new();
    for source in &fixture.sources {
        let object = work
            .join(source.file_stem().expect("file"))
            .with_extension("o");
        let mut flags = fixture.flags_for(source, target);
        flags.extend(extra.iter().map(|flag| flag.to_string()));
        tools
            .toolchain
            .compile(source, &object, &flags)
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
        make_archive(target, &archive, &members);
        archives.push(archive);
    }
    (archives, objects)
}

/// Runs fixture `name` of `fixtures/link/` for `target`, built with `extra` flags after its
/// own.
pub fn differential(target: Target, name: &str, extra: &[&str]) {
    let Some(tools) = tools(target) else { return };
    let failures = fixture_failures(tools, &Fixture::load(name), extra);
    assert!(
        failures.is_empty(),
        "{name} on {}:\n{}",
        target.name(),
        failures.join("\n\n")
    );
}

/// Everything wrong with uniklink's handling of the fixture built with `extra` flags.
pub fn fixture_failures(tools: &Linkers, fixture: &Fixture, extra: &[&str]) -> Vec<String> {
    let name = &fixture.name;
    let work = tempfile::tempdir().expect("temporary directory");
    let (archives, objects) = compile_fixture(tools, fixture, extra, work.path());
    let expect = &fixture.expect;

    if expect.link_error.is_empty() {
        return link_run_compare(
            tools,
            name,
            work.path(),
            &archives,
            &objects,
            &Reference::of(expect),
        );
    }
    let gnu = gnu_ld(
        tools,
        &objects,
        &archives,
        &expect.ldflags,
        &work.path().join("gnu-ld.out"),
    );
    assert!(
        !gnu.succeeded(),
        "{name}: GNU ld accepted a fixture that must fail"
    );
    let out = work.path().join("uniklink.out");
    let before = listing(work.path());
    let flags: Vec<&str> = expect.ldflags.iter().map(String::as_str).collect();
    let uni = uniklink_program(tools, &archives, &objects, &flags, &out);
    let mut problems = failure_problems(&uni, &out, &before);
    for fragment in &expect.link_error {
        if !uni.stderr.contains(fragment.as_str()) {
            problems.push(format!("stderr does not name {fragment:?}"));
        }
    }
    if !problems.is_empty() {
        problems.push(uni.to_string());
    }
    problems
}
