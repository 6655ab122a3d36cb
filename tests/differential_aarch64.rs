//! Differential linking on aarch64: the fixtures of `fixtures/link/` and the real programs,
//! compiled with `aarch64-linux-gnu-gcc` against musl for arm64 (`aarch64-linux-musl-gcc`
//! from Debian's `musl-dev:arm64`), are linked by `aarch64-linux-gnu-ld` and by uniklink and
//! run under `qemu-aarch64`; both programs must behave identically, and every image must pass
//! the goblin checks. A program whose calls span more than a branch's ±128 MiB shows the
//! range-extension thunks at work (`fixtures/far_calls`), and a conditional branch out of
//! reach must fail the link naming its relocation (`fixtures/far_branch`).
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
    available(found)
}

/// `None` after printing why the test is skipped when a tool is missing; a failure in CI,
/// which installs every tool.
fn available<T>(found: Result<T, String>) -> Option<T> {
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

fn run_tool(cmd: &mut Command) {
    let output = cmd
        .output()
        .unwrap_or_else(|error| panic!("cannot run `{}`: {error}", describe(cmd)));
    assert!(
        output.status.success(),
        "`{}` failed:\n{}",
        describe(cmd),
        String::from_utf8_lossy(&output.stderr)
    );
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

/// Compiles a fixture with its flags followed by `extra`.
fn compile_fixture(
    tools: &Linkers,
    fixture: &Fixture,
    extra: &[&str],
    work: &Path,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut objects = Vec::new();
    let mut members = Vec::new();
    for source in &fixture.sources {
        let object = work
            .join(source.file_stem().expect("file"))
            .with_extension("o");
        let mut flags = fixture.flags_for(source, TARGET);
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
        make_archive(&archive, &members);
        archives.push(archive);
    }
    (archives, objects)
}

fn differential(name: &str) {
    differential_with(name, &[]);
}

/// Runs fixture `name` built with `extra` flags after its own.
fn differential_with(name: &str, extra: &[&str]) {
    let Some(tools) = tools() else { return };
    let fixture = Fixture::load(name);
    let work = tempfile::tempdir().expect("temporary directory");
    let (archives, objects) = compile_fixture(tools, &fixture, extra, work.path());
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

/// The tiny code model addresses everything within ±1 MiB: ADR and literal loads, and the
/// GOT and initial-exec TLS through literal loads (R_AARCH64_GOT_LD_PREL19,
/// R_AARCH64_TLSIE_LD_GOTTPREL_PREL19) that keep their GOT slots.
#[test]
fn tiny_code_model_tls() {
    differential_with("tls", &["-mcmodel=tiny"]);
}

#[test]
fn tiny_code_model_got() {
    differential_with("got_extern", &["-mcmodel=tiny"]);
}

/// clang's large code model builds each address from four MOVW relocations
/// (R_AARCH64_MOVW_UABS_G0_NC to G3), where gcc's uses literal pools: the code_model_medium
/// fixture, preprocessed against musl by gcc and compiled by clang.
#[test]
fn large_code_model_from_clang() {
    let Some(tools) = tools() else { return };
    let clang = Command::new("clang")
        .arg("--version")
        .output()
        .map_err(|error| format!("cannot run clang: {error}"));
    if available(clang).is_none() {
        return;
    }
    let fixture = Fixture::load("code_model_medium");
    let work = tempfile::tempdir().expect("temporary directory");
    let objects: Vec<PathBuf> = fixture
        .sources
        .iter()
        .map(|source| {
            let stem = work.path().join(source.file_stem().expect("file"));
            let preprocessed = stem.with_extension("i");
            let object = stem.with_extension("o");
            run_tool(
                Command::new(&tools.toolchain.cc)
                    .arg("-E")
                    .arg(source)
                    .arg("-o")
                    .arg(&preprocessed),
            );
            run_tool(
                Command::new("clang")
                    .args(["--target=aarch64-linux-musl", "-O2", "-fno-pie"])
                    .args(["-mcmodel=large", "-c"])
                    .arg(&preprocessed)
                    .arg("-o")
                    .arg(&object),
            );
            object
        })
        .collect();
    let mut movw: Vec<u32> = objects
        .iter()
        .flat_map(|object| {
            let bytes = std::fs::read(object).expect("clang's object");
            let elf = goblin::elf::Elf::parse(&bytes).expect("goblin parses clang's object");
            elf.shdr_relocs
                .iter()
                .flat_map(|(_, relocs)| relocs.iter().map(|r| r.r_type))
                .filter(|t| (263..=269).contains(t))
                .collect::<Vec<u32>>()
        })
        .collect();
    movw.sort_unstable();
    movw.dedup();
    // MOVW_UABS_G0_NC, G1_NC, G2_NC and G3.
    assert_eq!(
        movw,
        [264, 266, 268, 269],
        "clang no longer emits the MOVW sequences"
    );
    let expect = &fixture.expect;
    link_run_compare(
        tools,
        "code_model_medium with clang -mcmodel=large",
        work.path(),
        &[],
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

/// How a real program's library objects reach the linkers.
#[derive(Clone, Copy)]
enum Packaging {
    Objects,
    /// In `lib<name>.a`, which uniklink gets before the driver that needs it.
    Archive,
}

fn real_program(program: Program, packaging: Packaging, stdout_contains: &[&str]) {
    let Some(tools) = tools() else { return };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-objects");
    let built =
        real::build(program, &tools.toolchain, &cache).unwrap_or_else(|error| panic!("{error}"));
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
    link_run_compare(
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

/// Reads the 32-bit word at virtual address `addr` of a linked image.
fn word_at(elf: &goblin::elf::Elf, image: &[u8], addr: u64) -> Option<u32> {
    let segment = elf.program_headers.iter().find(|ph| {
        ph.p_type == goblin::elf::program_header::PT_LOAD
            && ph.p_vaddr <= addr
            && addr + 4 <= ph.p_vaddr + ph.p_filesz
    })?;
    let offset = (segment.p_offset + (addr - segment.p_vaddr)) as usize;
    Some(u32::from_le_bytes(
        image.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

/// Where the B/BL at `addr` (encoded as `insn`) goes.
fn branch_target(addr: u64, insn: u32) -> u64 {
    let imm26 = i64::from(((insn & 0x03ff_ffff) << 6) as i32 >> 6);
    addr.wrapping_add((imm26 * 4) as u64)
}

/// The destination of `adrp x16, D; add x16, x16, :lo12:D; br x16` at `addr`, if that is
/// what is there.
fn thunk_destination(elf: &goblin::elf::Elf, image: &[u8], addr: u64) -> Option<u64> {
    let adrp = word_at(elf, image, addr)?;
    let add = word_at(elf, image, addr + 4)?;
    let br = word_at(elf, image, addr + 8)?;
    let is_thunk =
        adrp & 0x9f00_001f == 0x9000_0010 && add & 0xffc0_03ff == 0x9100_0210 && br == 0xd61f_0200;
    if !is_thunk {
        return None;
    }
    let immlo = u64::from((adrp >> 29) & 3);
    let immhi = u64::from((adrp >> 5) & 0x7ffff);
    let pages = (((immhi << 2 | immlo) << 43) as i64) >> 43;
    let page = (addr & !0xfff).wrapping_add((pages << 12) as u64);
    Some(page + u64::from((add >> 10) & 0xfff))
}

#[test]
fn far_calls_go_through_thunks() {
    let Some(tools) = tools() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/far_calls");
    let work = tempfile::tempdir().expect("temporary directory");
    let objects: Vec<PathBuf> = ["caller.c", "pad.s", "callee.c"]
        .iter()
        .map(|name| {
            let object = work.path().join(name).with_extension("o");
            tools
                .toolchain
                .compile(&dir.join(name), &object, &[])
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            object
        })
        .collect();
    link_run_compare(
        tools,
        "far_calls",
        work.path(),
        &[],
        &objects,
        &Reference {
            stdin: b"",
            exit: 0,
            stdout_contains: &["far_function=42 far_tail=12 pad=0".to_string()],
            stderr_contains: &[],
            max_image_bytes: None,
            gc_removes: &[],
        },
    );

    let image = std::fs::read(work.path().join("uniklink.out")).expect("uniklink's image");
    let elf = goblin::elf::Elf::parse(&image).expect("goblin parses the image");
    let symbol = |name: &str| {
        elf.syms
            .iter()
            .find(|sym| elf.strtab.get_at(sym.st_name) == Some(name))
            .unwrap_or_else(|| panic!("no symbol {name}"))
    };
    let main = symbol("main");
    let far = symbol("far_function").st_value;
    assert!(
        far - main.st_value > 1 << 27,
        "main and far_function must be farther apart than a BL reaches"
    );
    let thunked: Vec<u64> = (main.st_value..main.st_value + main.st_size)
        .step_by(4)
        .filter_map(|addr| {
            let insn = word_at(&elf, &image, addr)?;
            (insn & 0xfc00_0000 == 0x9400_0000).then(|| branch_target(addr, insn))
        })
        .filter_map(|thunk| thunk_destination(&elf, &image, thunk))
        .collect();
    assert!(
        thunked.contains(&far),
        "no BL of main reaches far_function ({far:#x}) through a thunk; thunks go to {thunked:x?}"
    );
}

#[test]
fn branch_overflow_names_the_relocation() {
    let Some(tools) = tools() else { return };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/far_branch/branch.s");
    let work = tempfile::tempdir().expect("temporary directory");
    let object = work.path().join("branch.o");
    tools
        .toolchain
        .compile(&source, &object, &[])
        .unwrap_or_else(|error| panic!("branch.s: {error}"));
    let objects = [object];
    let gnu = gnu_ld(tools, &objects, &[], &work.path().join("gnu-ld.out"));
    assert!(
        !gnu.succeeded() && gnu.stderr.contains("R_AARCH64_CONDBR19"),
        "GNU ld must refuse the branch too: {gnu}"
    );
    let out = work.path().join("uniklink.out");
    let before = listing(work.path());
    let uni = uniklink_program(tools, &[], &objects, &[], &out);
    let mut problems = failure_problems(&uni, &out, &before);
    for fragment in ["branch.o", "R_AARCH64_CONDBR19", "far_target", "21 bits"] {
        if !uni.stderr.contains(fragment) {
            problems.push(format!("stderr does not name {fragment:?}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n{uni}");
}
