//! The fixture apps in `fixtures/apps/`, built by `cargo uniklink build --release` and booted
//! by `cargo uniklink run` on QEMU microvm with TCG. What each boot must give is the app's
//! `expect.json`; the images are also checked with goblin (PVH note, W^X, no overlap) and
//! rebuilt to show the build is reproducible. Each app is built once per test run and shared
//! by the tests that need it.

#[path = "common/alloc_app.rs"]
mod alloc_app;
#[path = "common/apps.rs"]
mod apps;
#[path = "common/boot.rs"]
mod boot;
#[path = "common/image_check.rs"]
mod image_check;

use std::path::{Path, PathBuf};
use std::process::Command;

use apps::app_dir;
use boot::Suite;
use goblin::elf::Elf;
use goblin::elf::program_header::{PF_X, PT_NOTE};
use uniklink::pipeline::LinkOptions;
use uniklink_config::Arch;
use uniklink_linker::image::ImageKind;

const SUITE: Suite = Suite {
    arch: Arch::X86_64,
    dir: "target/boot-tests",
    prefix: "boot",
    arches: "x86_64",
    arch_args: &[],
};

#[test]
fn hello_prints_its_line_and_exits_0() {
    SUITE.boot_as_expected("hello");
}

#[test]
fn a_panic_prints_message_and_location_and_exits_101() {
    SUITE.boot_as_expected("panic");
}

#[test]
fn a_null_dereference_reports_the_address_and_exits_102() {
    SUITE.boot_as_expected("fault");
}

/// The boot stack's lowest page is unmapped, so running off the stack faults there and the
/// report says so, instead of the stack overwriting what lies below it.
#[test]
fn a_stack_overflow_faults_on_the_guard_page_and_exits_102() {
    SUITE.boot_as_expected("stack_overflow");
}

#[test]
fn a_hanging_app_is_stopped_at_the_timeout() {
    SUITE.boot_as_expected("hang");
}

/// hello never reads the clock, so nothing in it measures the TSC against the PIT (the
/// function keeps its own symbol, `#[inline(never)]`); an app that reads the clock has it.
#[test]
fn only_an_app_that_reads_the_clock_links_the_pit_calibration() {
    const PIT: &str = "measure_tsc_hz";
    assert!(!boot::has_symbol_containing(
        &SUITE.built("hello").image,
        PIT
    ));
    assert!(boot::has_symbol_containing(
        &SUITE.built("clock").image,
        PIT
    ));
}

/// Under TCG, whose CPU states no TSC rate, `run` states the host's on the command line and
/// the clock takes it from there; a garbled word leaves the rate unstated, for the PIT
/// calibration to find when the app reads the clock.
#[test]
fn under_tcg_the_clock_takes_the_runners_tsc_rate() {
    let clock_line = |append: &str| {
        let image = SUITE.built("clock").image;
        let out = apps::uniklink()
            .args([
                "run",
                "--accel",
                "tcg",
                "--timeout",
                "120",
                "--append",
                append,
            ])
            .arg(&image)
            .output()
            .expect("cargo-uniklink run runs");
        let console = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{console}");
        assert!(console.contains("unix_time "), "{console}");
        console
            .lines()
            .find(|line| line.starts_with("uniklink:verbose tsc "))
            .unwrap_or_else(|| panic!("a verbose clock line: {console}"))
            .to_owned()
    };
    let stated = clock_line("uniklink.verbose");
    let hz: u64 = stated["uniklink:verbose tsc ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a rate in {stated}"));
    assert!((1_000_000..=100_000_000_000).contains(&hz), "{stated}");
    assert!(stated.ends_with(" Hz from uniklink.tsc_hz"), "{stated}");
    let unstated = clock_line("uniklink.verbose uniklink.tsc_hz=0");
    assert!(unstated.contains("not stated"), "{unstated}");
}

/// `symbolize` names the frames of a backtrace in a saved console log, and of addresses
/// given on its command line.
#[test]
fn symbolize_names_a_saved_backtrace() {
    let image = SUITE.built("panic").image;
    let run = apps::uniklink()
        .args(["run", "--accel", "tcg", "--timeout", "120"])
        .arg(&image)
        .output()
        .expect("cargo-uniklink run runs");
    let log = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(log.contains("uniklink:backtrace "), "{log}");
    let mut symbolize = apps::uniklink()
        .arg("symbolize")
        .arg(&image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cargo-uniklink symbolize starts");
    use std::io::Write as _;
    symbolize
        .stdin
        .take()
        .unwrap()
        .write_all(log.as_bytes())
        .unwrap();
    let out = symbolize.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("#0 0x"), "{text}");
    assert!(text.contains(" in panic::check_invariant+0x"), "{text}");

    let bad = apps::uniklink()
        .arg("symbolize")
        .arg(&image)
        .arg("0x1x")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`0x1x` is not an address"));
}

#[test]
fn randomized_layouts_differ_boot_and_rebuild_alike() {
    SUITE.assert_randomized_layouts_differ_and_boot();
}

/// A debug build keeps its DWARF beside the image (see the suite's method).
#[test]
fn a_debug_build_keeps_its_dwarf_beside_the_image() {
    SUITE.assert_debug_file_beside_the_image();
}

/// gdb attaches through `run --gdb`, stops at the app's `main` and lets it finish.
#[test]
fn gdb_attaches_through_run_gdb_and_stops_at_main() {
    SUITE.assert_gdb_stops_at_main("hello");
}

#[test]
fn the_timeline_lists_the_boot_phases_in_woven_order() {
    SUITE.assert_timeline_in_woven_order("random");
}

#[test]
fn a_1_mib_allocation_fits_in_the_template_memory() {
    alloc_app::assert_one_mib_fits(&SUITE);
}

#[test]
fn allocating_more_than_the_guest_has_reports_the_memory() {
    alloc_app::assert_too_much_is_reported(&SUITE);
}

#[test]
fn a_rebuild_gives_the_same_bytes() {
    SUITE.assert_rebuild_gives_the_same_bytes();
}

#[test]
fn the_image_is_a_sound_pvh_kernel() {
    let bytes = boot::assert_sound_image(&SUITE.built("hello").image);
    let elf = Elf::parse(&bytes).unwrap();
    let loads = boot::loads(&elf);
    // A randomized layout (UNIKLINK_RANDOMIZE_LAYOUT, as CI runs the suite) moves the base up
    // by whole pages.
    let base = loads[0].p_paddr;
    if std::env::var_os("UNIKLINK_RANDOMIZE_LAYOUT").is_some() {
        assert!(
            base >= 0x10_0000 && base.is_multiple_of(0x1000),
            "PVH images load at 1 MiB or whole pages above: {base:#x}"
        );
    } else {
        assert_eq!(base, 0x10_0000, "PVH images load at 1 MiB");
    }
    assert!(
        elf.program_headers.iter().any(|ph| ph.p_type == PT_NOTE),
        "a PT_NOTE segment"
    );
    let xen = boot::notes(&elf, &bytes)
        .into_iter()
        .find(|n| n.name == "Xen" && n.n_type == 18)
        .expect("a XEN_ELFNOTE_PHYS32_ENTRY note");
    let entry = u64::from(u32::from_le_bytes(xen.desc.try_into().expect("4 bytes")));
    assert!(
        loads.iter().any(|ph| ph.p_flags & PF_X != 0
            && ph.p_vaddr <= entry
            && entry < ph.p_vaddr + ph.p_memsz),
        "the PVH entry {entry:#x} is in an executable segment"
    );
    assert_eq!(
        entry,
        boot::symbol(&elf, "_pvh_start"),
        "the note names the libos entry"
    );
}

/// An image built for Firecracker carries the address of Firecracker's boot-timer device
/// (0xC0000000 on x86_64), where the runtime writes its byte when `main` starts. QEMU has
/// nothing there, so the same image boots on microvm too.
#[test]
fn an_image_for_firecracker_knows_its_boot_timer() {
    let manifest = SUITE.dir().join("firecracker-hello.yaml");
    apps::write_manifest(
        &manifest,
        "boot-firecracker-hello",
        "hello",
        "x86_64",
        "platform: firecracker\n",
    );
    apps::assert_success(&SUITE.build(&manifest), "building hello for firecracker");
    let image = app_dir("hello").join("target/uniklink/release/boot-firecracker-hello-x86_64.elf");
    let bytes = std::fs::read(&image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let at = boot::symbol(&elf, "__uniklink_boot_timer");
    let section = elf
        .section_headers
        .iter()
        .find(|sh| sh.sh_addr <= at && at < sh.sh_addr + sh.sh_size)
        .expect("a section holds the boot timer address");
    let offset = (section.sh_offset + at - section.sh_addr) as usize;
    let address = u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
    assert_eq!(address, 0xc000_0000);

    let ran = apps::run_built(&manifest, "120")
        .args(["--platform", "qemu-microvm"])
        .output()
        .expect("cargo-uniklink run runs");
    assert_eq!(
        ran.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(String::from_utf8_lossy(&ran.stdout).contains("Hello from uniklink!"));
}

#[test]
fn a_manifest_for_a_missing_package_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("uniklink.yaml");
    std::fs::write(
        &manifest,
        format!(
            "name: nope\napp:\n  package: not-there\n  path: {}\n",
            app_dir("hello").display()
        ),
    )
    .unwrap();
    let out = SUITE.build(&manifest);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no package `not-there`"),
        "the error names the package:\n{stderr}"
    );
}

/// The inputs `build` linked for `app`, from its report.
fn report_inputs(app: &str) -> Vec<PathBuf> {
    let image = SUITE.built(app).image;
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.with_extension("json")).unwrap()).unwrap();
    report["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|v| PathBuf::from(v.as_str().expect("a path")))
        .collect()
}

fn pvh_link(inputs: Vec<PathBuf>, output: PathBuf, salt: &[u8]) -> uniklink::pipeline::LinkOutput {
    let opts = LinkOptions {
        entry: "_pvh_start".to_owned(),
        image: ImageKind::Pvh,
        build_id_salt: salt.to_vec(),
        ..LinkOptions::new(inputs, output)
    };
    uniklink::pipeline::link(&opts).expect("the PVH link succeeds")
}

#[test]
fn the_build_id_follows_the_inputs_and_the_manifest() {
    let inputs = report_inputs("hello");
    let dir = tempfile::tempdir().unwrap();
    let a = pvh_link(inputs.clone(), dir.path().join("a.elf"), b"manifest one");
    let b = pvh_link(inputs.clone(), dir.path().join("b.elf"), b"manifest one");
    let c = pvh_link(inputs, dir.path().join("c.elf"), b"manifest two");
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert!(read("a.elf") == read("b.elf"), "same inputs, same bytes");
    assert_eq!(a.build_id, b.build_id);
    assert!(a.build_id.is_some());
    assert_ne!(
        a.build_id, c.build_id,
        "the manifest is part of the build id"
    );
}

/// Assembles `source` with GNU as into `dir/<name>.o`.
fn assemble(dir: &Path, name: &str, source: &str) -> PathBuf {
    let source_path = dir.join(format!("{name}.S"));
    std::fs::write(&source_path, source).unwrap();
    let object = dir.join(format!("{name}.o"));
    let assembled = Command::new("as")
        .arg("--64")
        .arg("-o")
        .arg(&object)
        .arg(&source_path)
        .status()
        .expect("GNU as (binutils) runs");
    assert!(assembled.success());
    object
}

#[test]
fn a_pvh_entry_outside_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let object = assemble(
        dir.path(),
        "data_entry",
        ".data\n.globl _pvh_start\n_pvh_start:\n.long 0\n.section .note.GNU-stack,\"\",@progbits\n",
    );
    let output = dir.path().join("out.elf");
    let opts = LinkOptions {
        entry: "_pvh_start".to_owned(),
        image: ImageKind::Pvh,
        ..LinkOptions::new(vec![object], output.clone())
    };
    let error = uniklink::pipeline::link(&opts).expect_err("data is no entry point");
    assert!(
        error.to_string().contains("not in an executable segment"),
        "{error}"
    );
    assert!(!output.exists(), "a refused link writes nothing");
}

#[test]
fn a_prebuilt_object_gets_the_pvh_note_and_boots() {
    let dir = tempfile::tempdir().unwrap();
    // No Xen note of its own: the one QEMU enters through is uniklink's.
    assemble(
        dir.path(),
        "exit3",
        "\t.text\n\t.code32\n\t.globl _start\n_start:\n\tmov $0xf4, %dx\n\tmov $3, %eax\n\
         \toutl %eax, %dx\n1:\thlt\n\tjmp 1b\n\t.section .note.GNU-stack,\"\",@progbits\n",
    );
    let manifest = dir.path().join("uniklink.yaml");
    std::fs::write(
        &manifest,
        "name: exit3\napp:\n  objects: [exit3.o]\narch: [x86_64]\n",
    )
    .unwrap();
    apps::assert_success(&SUITE.build(&manifest), "building exit3");
    let image = dir.path().join("target/uniklink/release/exit3-x86_64.elf");
    assert!(image_check::problems(&image).is_empty());
    let ran = apps::run_built(&manifest, "120")
        .output()
        .expect("cargo-uniklink run runs");
    assert_eq!(
        ran.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
}
