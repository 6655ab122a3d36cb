//! Differential linking cases only aarch64 has (every fixture of `fixtures/link/` and the
//! real programs run on aarch64 from `differential.rs`): the tiny code model, clang's large
//! code model, a program whose calls span more than a branch's ±128 MiB, which shows the
//! range-extension thunks at work (`fixtures/far_calls`), and a conditional branch out of
//! reach, which must fail the link naming its relocation (`fixtures/far_branch`). Built with
//! `aarch64-linux-gnu-gcc` against musl for arm64, linked by `aarch64-linux-gnu-ld` and by
//! uniklink, run under `qemu-aarch64`.
//!
//! The tests skip, saying why, only when a tool is missing outside CI; CI installs them all
//! (`.ci/setup`), so there a missing tool fails the test.

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

use std::path::{Path, PathBuf};
use std::process::Command;

use differential::{
    Reference, available, differential, gnu_ld, link_run_compare, tools, uniklink_program,
};
use fixture::Fixture;
use linkers::{failure_problems, listing};
use xtask::toolchain::{Target, describe};

const TARGET: Target = Target::Aarch64;

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

/// Panics with everything wrong with uniklink's links of a program.
fn assert_no_failures(label: &str, failures: Vec<String>) {
    assert!(failures.is_empty(), "{label}:\n{}", failures.join("\n\n"));
}

/// The tiny code model addresses everything within ±1 MiB: ADR and literal loads, and the
/// GOT and initial-exec TLS through literal loads (R_AARCH64_GOT_LD_PREL19,
/// R_AARCH64_TLSIE_LD_GOTTPREL_PREL19) that keep their GOT slots.
#[test]
fn tiny_code_model_tls() {
    differential(TARGET, "tls", &["-mcmodel=tiny"]);
}

#[test]
fn tiny_code_model_got() {
    differential(TARGET, "got_extern", &["-mcmodel=tiny"]);
}

/// clang's large code model builds each address from four MOVW relocations
/// (R_AARCH64_MOVW_UABS_G0_NC to G3), where gcc's uses literal pools: the code_model_medium
/// fixture, preprocessed against musl by gcc and compiled by clang.
#[test]
fn large_code_model_from_clang() {
    let Some(tools) = tools(TARGET) else { return };
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
    let label = "code_model_medium with clang -mcmodel=large";
    let failures = link_run_compare(
        tools,
        label,
        work.path(),
        &[],
        &objects,
        &Reference::of(&fixture.expect),
    );
    assert_no_failures(label, failures);
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
    let Some(tools) = tools(TARGET) else { return };
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
    let failures = link_run_compare(
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
            ldflags: &[],
            gc_removes: &[],
        },
    );
    assert_no_failures("far_calls", failures);

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
    let Some(tools) = tools(TARGET) else { return };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/far_branch/branch.s");
    let work = tempfile::tempdir().expect("temporary directory");
    let object = work.path().join("branch.o");
    tools
        .toolchain
        .compile(&source, &object, &[])
        .unwrap_or_else(|error| panic!("branch.s: {error}"));
    let objects = [object];
    let gnu = gnu_ld(tools, &objects, &[], &[], &work.path().join("gnu-ld.out"));
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
