//! The fixture apps of `fixtures/apps/`, built for aarch64 by `cargo uniklink build --release
//! --arch aarch64` and booted by `cargo uniklink run` on QEMU virt with TCG: the same checks as
//! `tests/boot.rs` makes on x86_64. What each boot must give is the app's `expect.json`, or
//! `expect.aarch64.json` where the console differs (the fault report names ESR, FAR and ELR
//! instead of the x86_64 vector and CR2). The images are also checked with goblin (load
//! address above the device tree, entry, W^X, build id) and rebuilt to show the build is
//! reproducible.

#[path = "common/alloc_app.rs"]
mod alloc_app;
#[path = "common/apps.rs"]
mod apps;
#[path = "common/boot.rs"]
mod boot;
#[path = "common/image_check.rs"]
mod image_check;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use apps::{ROOT, app_dir, assert_success, build_release, run_built, uniklink};
use boot::Suite;
use goblin::elf::Elf;
use goblin::elf::header::EM_AARCH64;
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_LOAD};
use goblin::elf::section_header::SectionHeader;
use uniklink_config::Arch;

/// The manifests list both architectures, so `--arch aarch64` picks the second one.
const SUITE: Suite = Suite {
    arch: Arch::Aarch64,
    dir: "target/boot-tests-aarch64",
    prefix: "boot-a64",
    arches: "x86_64, aarch64",
    arch_args: &["--arch", "aarch64"],
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
fn a_null_dereference_reports_esr_far_elr_and_exits_102() {
    SUITE.boot_as_expected("fault");
}

#[test]
fn writing_to_code_is_a_permission_fault() {
    // W^X: code is mapped read-only, so the write faults at level 3 (ESR DFSC 0xf, WnR).
    SUITE.boot_as_expected("write_code");
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

/// hello never reads the clock, so the clock's set-up (`find_scale`, never inlined) is not in
/// it; an app that reads the clock has it.
#[test]
fn only_an_app_that_reads_the_clock_links_the_clock() {
    const CLOCK: &str = "find_scale";
    assert!(!boot::has_symbol_containing(
        &SUITE.built("hello").image,
        CLOCK
    ));
    assert!(boot::has_symbol_containing(
        &SUITE.built("clock").image,
        CLOCK
    ));
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

/// With a 3 MiB boot stack the image spans several 2 MiB blocks, each mapped through a page
/// table of its own: running off the stack still crosses them all to fault on the guard page.
#[test]
fn a_stack_overflow_across_several_2_mib_blocks_faults_on_the_guard_page() {
    let (report, console, _) = build_and_boot("stack_overflow", "3MiB");
    assert_eq!(
        report["guest_exit_code"].as_i64(),
        Some(102),
        "{report}\n{console}"
    );
    assert!(
        console.lines().any(
            |line| line.starts_with("uniklink:exception class=0x25 (data abort)")
                && line.contains(" stack-overflow")
        ),
        "{console}"
    );
}

/// uniklink writes an image's page tables for however many 2 MiB blocks it spans: with a
/// 20 MiB boot stack, 11 blocks, past the 8 the entry code's own tables hold. The same inputs
/// linked by GNU ld, which writes no tables, leave the entry code to map the image: it
/// cannot, so it boots with the MMU off only to say why, and exits with the runtime's boot
/// failure status; without semihosting it says so once and powers off through PSCI, which
/// it finds in the device tree.
#[test]
fn an_image_too_large_for_the_entry_codes_tables_says_why_and_exits_103() {
    let (report, stderr, image) = build_and_boot("hello", "20MiB");
    assert_eq!(
        report["guest_exit_code"].as_i64(),
        Some(0),
        "{report}\n{stderr}"
    );
    let bytes = std::fs::read(&image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let tables = section(&elf, ".unik.page_tables");
    assert_eq!(
        tables.sh_size,
        (11 + 2) * 4096 + 32,
        "a page table per block"
    );

    let linked = link_with_gnu_ld(&image, "hello-20MiB", 20 << 20);
    let out = uniklink()
        .args(["run", "--accel", "tcg", "--json", "--timeout", "60"])
        .arg(&linked)
        .output()
        .expect("cargo-uniklink run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run --json printed no JSON ({e}):\n{stderr}"));
    assert_eq!(
        report["guest_exit_code"].as_i64(),
        Some(103),
        "{report}\n{stderr}"
    );
    let error = stderr
        .lines()
        .find(|line| line.starts_with("uniklink:boot-error "))
        .unwrap_or_else(|| panic!("no boot error:\n{stderr}"));
    assert!(
        error.starts_with("uniklink:boot-error the image 0x")
            && error.ends_with(" spans more than 8 2 MiB blocks"),
        "{error}"
    );
    assert!(!stderr.contains("uniklink:ready"), "{stderr}");

    let out = Command::new("timeout")
        .args([
            "60",
            "qemu-system-aarch64",
            "-M",
            "virt",
            "-cpu",
            "cortex-a57",
        ])
        .args([
            "-accel",
            "tcg",
            "-m",
            "64M",
            "-nographic",
            "-no-reboot",
            "-kernel",
        ])
        .arg(&linked)
        .stdin(Stdio::null())
        .output()
        .expect("qemu-system-aarch64 runs");
    let console = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "PSCI SYSTEM_OFF:\n{console}");
    let errors: Vec<&str> = console
        .lines()
        .filter(|line| line.starts_with("uniklink:boot-error "))
        .collect();
    assert_eq!(errors, [error], "{console}");
}

/// The linker's tables map the image in pages only within the first GiB of RAM: an image
/// that would end past it (here by a 1 GiB boot stack) is refused when linked, naming why.
#[test]
fn an_image_past_the_first_gib_of_ram_is_refused_when_linked() {
    let name = format!("{}-hello-stack-1GiB", SUITE.prefix);
    let manifest = SUITE.dir().join(format!("{name}.yaml"));
    apps::write_manifest(
        &manifest,
        &name,
        "hello",
        "aarch64",
        "components:\n  params:\n    rt:\n      stack_size: 1GiB\n",
    );
    let out = SUITE.build(&manifest);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The message as words, without the report's wrapping.
    let words = stderr
        .split_whitespace()
        .filter(|word| *word != "│")
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("past 0x80000000: its page tables map it only in the first GiB of RAM"),
        "{stderr}"
    );
    let image = app_dir("hello").join(format!("target/uniklink/release/{name}-aarch64.elf"));
    assert!(!image.exists(), "no image is left");
}

/// The aarch64 GNU ld script of `segments_sharing_pages_get_the_stronger_access`: no page
/// alignment between segments, so the ELF header's read-only segment (with the build id) shares
/// its page with the code, the code with the read-only data, and that with the data (which
/// starts with a word of its own, as hello has no `.data`, then the boot timeline's stamps,
/// which the runtime writes as soon as the MMU is on; `.bss` starts on a page of its own, as
/// it holds the page tables). `BSS_PADDING` bytes of `.bss` follow the inputs'.
const PACKED_VIRT_SCRIPT: &str = "\
ENTRY(_virt_start)
PHDRS
{
    headers PT_LOAD FILEHDR PHDRS FLAGS(4);
    text PT_LOAD FLAGS(5);
    rodata PT_LOAD FLAGS(4);
    data PT_LOAD FLAGS(6);
}
SECTIONS
{
    . = 0x40200000 + SIZEOF_HEADERS;
    .note.gnu.build-id : { *(.note.gnu.build-id) } :headers
    .text : { *(.text .text.*) } :text
    .rodata : { *(.rodata .rodata.*) } :rodata
    .init_array : {
        __init_array_start = .;
        KEEP(*(SORT_BY_INIT_PRIORITY(.init_array.*) .init_array))
        __init_array_end = .;
    } :rodata
    .data : { LONG(0) *(.data .data.*) *(.bss.*PHASE_TICKS*) } :data
    .got : { *(.got .got.*) } :data
    .bss : { *(.bss .bss.*) *(COMMON) . += BSS_PADDING; } :data
    _end = .;
}
";

/// Where segments share a page, the entry code gives the page the stronger access: read-execute
/// over read-only, read-write over both. hello's inputs linked by GNU ld with every segment
/// packed against the one before boot only if it does: the entry point's page is also the ELF
/// header's, and the data's first page also the read-only data's.
#[test]
fn segments_sharing_pages_get_the_stronger_access() {
    let image = link_with_gnu_ld(&SUITE.built("hello").image, "hello-packed", 0);
    let bytes = std::fs::read(&image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let pages = |flags: u32| {
        elf.program_headers
            .iter()
            .filter(|ph| ph.p_type == PT_LOAD && ph.p_flags == flags)
            .map(|ph| (ph.p_vaddr / 4096, (ph.p_vaddr + ph.p_memsz - 1) / 4096))
            .collect::<Vec<_>>()
    };
    let (read, code, data) = (pages(PF_R), pages(PF_R | PF_X), pages(PF_R | PF_W));
    assert_eq!(
        (read.len(), code.len(), data.len()),
        (2, 1, 1),
        "{:#?}",
        elf.program_headers
    );
    assert_eq!(
        read[0].1, code[0].0,
        "the header's page is the code's first"
    );
    assert_eq!(
        code[0].1, read[1].0,
        "the code's last page is the read-only data's first"
    );
    assert_eq!(
        read[1].1, data[0].0,
        "the read-only data's last page is the data's first"
    );
    let stamps = elf
        .syms
        .iter()
        .find(|sym| {
            elf.strtab
                .get_at(sym.st_name)
                .is_some_and(|name| name.contains("PHASE_TICKS"))
        })
        .expect("the timeline's stamps");
    assert_eq!(
        stamps.st_value / 4096,
        data[0].0,
        "the stamps are on the shared page"
    );

    let out = uniklink()
        .args(["run", "--accel", "tcg", "--json", "--timeout", "60"])
        .arg(&image)
        .output()
        .expect("cargo-uniklink run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let run: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run --json printed no JSON ({e}):\n{stderr}"));
    assert_eq!(run["guest_exit_code"].as_i64(), Some(0), "{run}\n{stderr}");
    assert!(stderr.contains("Hello from uniklink!"), "{stderr}");
}

/// The inputs uniklink linked into `image` (from its build report; the generated glue aside,
/// so the runtime's default boot stack), linked by GNU ld with [`PACKED_VIRT_SCRIPT`] and
/// `bss_padding` into `<name>.elf`: an image without the linker's page tables.
fn link_with_gnu_ld(image: &Path, name: &str, bss_padding: u64) -> PathBuf {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.with_extension("json")).unwrap()).unwrap();
    let inputs: Vec<&str> = report["inputs"]
        .as_array()
        .expect("the build report lists its inputs")
        .iter()
        .map(|input| input.as_str().unwrap())
        .collect();
    let dir = SUITE.dir().join("gnu-ld");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join(format!("{name}.ld"));
    let padding = format!("{bss_padding:#x}");
    std::fs::write(&script, PACKED_VIRT_SCRIPT.replace("BSS_PADDING", &padding)).unwrap();
    let linked = dir.join(format!("{name}.elf"));
    let out = Command::new("aarch64-linux-gnu-ld")
        .args([
            "-static",
            "--gc-sections",
            "--build-id",
            "-z",
            "max-page-size=0x1000",
        ])
        .args(["-z", "noexecstack", "-T"])
        .arg(&script)
        .arg("-o")
        .arg(&linked)
        .args(&inputs)
        .output()
        .expect("aarch64-linux-gnu-ld runs");
    assert_success(&out, &format!("linking {name} with GNU ld"));
    linked
}

/// The section header named `name`.
pub fn section<'e>(elf: &'e Elf<'_>, name: &str) -> &'e SectionHeader {
    elf.section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(name))
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// Builds `app` with a boot stack of `stack_size` and boots it: `run --json`'s report, what
/// the run printed on stderr (the console among it) and the image.
fn build_and_boot(app: &str, stack_size: &str) -> (serde_json::Value, String, PathBuf) {
    let name = format!("{}-{app}-stack-{stack_size}", SUITE.prefix);
    let manifest = SUITE.dir().join(format!("{name}.yaml"));
    apps::write_manifest(
        &manifest,
        &name,
        app,
        SUITE.arches,
        &format!("components:\n  params:\n    rt:\n      stack_size: {stack_size}\n"),
    );
    assert_success(&SUITE.build(&manifest), &format!("building {name}"));
    let out = run_built(&manifest, "60")
        .args(SUITE.arch_args)
        .arg("--json")
        .output()
        .expect("cargo-uniklink run runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run --json printed no JSON ({e}):\n{stderr}"));
    let image = app_dir(app).join(format!("target/uniklink/release/{name}-aarch64.elf"));
    (report, stderr, image)
}

#[test]
fn a_rebuild_gives_the_same_bytes() {
    SUITE.assert_rebuild_gives_the_same_bytes();
}

#[test]
fn the_image_is_a_sound_virt_kernel() {
    let bytes = boot::assert_sound_image(&SUITE.built("hello").image);
    let elf = Elf::parse(&bytes).unwrap();
    assert_eq!(elf.header.e_machine, EM_AARCH64);
    let loads = boot::loads(&elf);
    let base = loads[0].p_paddr;
    let load_address = uniklink_linker::image::virt::LOAD_ADDRESS;
    // A randomized layout (UNIKLINK_RANDOMIZE_LAYOUT, as CI runs the suite) moves the base up
    // by whole pages.
    if std::env::var_os("UNIKLINK_RANDOMIZE_LAYOUT").is_some() {
        assert!(
            base >= load_address && base.is_multiple_of(0x1000),
            "virt images load 2 MiB into RAM or whole pages above: {base:#x}"
        );
    } else {
        assert_eq!(
            base, load_address,
            "virt images load 2 MiB into RAM, above the device tree"
        );
    }
    for ph in &loads {
        assert_eq!(ph.p_paddr, ph.p_vaddr, "identity-mapped");
    }
    // Each segment's pages are its own, so the runtime can map them with its permissions.
    let mut pages: Vec<(u64, u64, u32)> = loads
        .iter()
        .map(|ph| {
            (
                ph.p_vaddr & !0xfff,
                (ph.p_vaddr + ph.p_memsz).next_multiple_of(0x1000),
                ph.p_flags,
            )
        })
        .collect();
    pages.sort();
    for pair in pages.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "segments share a page: {pages:x?}");
    }
    assert!(
        loads
            .iter()
            .all(|ph| ph.p_flags & PF_W == 0 || ph.p_flags & PF_X == 0),
        "W^X"
    );
    assert_eq!(
        elf.entry,
        boot::symbol(&elf, "_virt_start"),
        "the entry is the libos's"
    );
}

/// The page tables uniklink writes into the image, walked as the MMU walks them from
/// `__uniklink_page_tables` (TTBR0_EL1, T0SZ = 32, 4 KiB granule): null and the flash
/// unmapped, the UART device memory, the image's pages with their segments' access, the stack's
/// guard page unmapped, RAM around the image and up to 4 GiB read-write and never executable,
/// and the tables themselves read-only in a read-only segment.
#[test]
fn the_linker_maps_the_image_as_the_entry_code_would() {
    let bytes = std::fs::read(&SUITE.built("hello").image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let tables = section(&elf, ".unik.page_tables");
    let root = boot::symbol(&elf, "__uniklink_page_tables");
    assert_eq!(
        root,
        tables.sh_addr + tables.sh_size - 32,
        "the first level comes last"
    );
    let holder = boot::loads(&elf)
        .into_iter()
        .find(|ph| ph.p_vaddr <= root && root < ph.p_vaddr + ph.p_filesz)
        .expect("the tables are loaded");
    assert_eq!(holder.p_flags, PF_R, "the tables are read-only");

    const VALID: u64 = 0b1;
    const READ_ONLY: u64 = 1 << 7;
    const PXN: u64 = 1 << 53;
    const UXN: u64 = 1 << 54;
    const ACCESSED: u64 = 1 << 10;
    // MAIR_EL1's attribute 1 (Device-nGnRnE) or attribute 0 (normal write-back, inner
    // shareable), accessed: a missing access flag would fault on first use.
    let device = |d: u64| (d >> 2) & 0b111 == 1 && d & ACCESSED != 0;
    let normal = |d: u64| (d >> 2) & 0b111 == 0 && (d >> 8) & 0b11 == 0b11 && d & ACCESSED != 0;
    let read = |address: u64| -> u64 {
        let ph = boot::loads(&elf)
            .into_iter()
            .find(|ph| ph.p_vaddr <= address && address + 8 <= ph.p_vaddr + ph.p_filesz)
            .unwrap_or_else(|| panic!("a table entry at {address:#x} outside the file"));
        let at = (ph.p_offset + address - ph.p_vaddr) as usize;
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    };
    // The descriptor that maps `va` and its level, or None where a level has no entry.
    let walk = |va: u64| -> Option<(u32, u64)> {
        let mut table = root;
        for (level, shift) in [(1, 30), (2, 21), (3, 12)] {
            let index = if level == 1 {
                va >> 30
            } else {
                (va >> shift) & 511
            };
            assert!(index < if level == 1 { 4 } else { 512 });
            let descriptor = read(table + index * 8);
            if descriptor & VALID == 0 {
                return None;
            }
            if level == 3 || descriptor & 0b10 == 0 {
                assert!(level < 3 || descriptor & 0b11 == 0b11, "a page at {va:#x}");
                return Some((level, descriptor));
            }
            table = descriptor & 0x0000_ffff_ffff_f000;
        }
        unreachable!()
    };
    let maps = |va: u64, d: u64, level: u32| {
        let size = [0, 1 << 30, 1 << 21, 1 << 12][level as usize];
        assert_eq!(
            d & 0x0000_ffff_ffff_f000 & !(size - 1),
            va & !(size - 1),
            "identity at {va:#x}"
        );
    };

    assert_eq!(walk(0), None, "null is unmapped");
    assert_eq!(walk(0x0400_0000), None, "the flash is unmapped");
    let (level, uart) = walk(0x0900_0000).expect("the UART is mapped");
    assert!(
        level == 2 && device(uart) && uart & PXN != 0 && uart & UXN != 0,
        "{uart:#x}"
    );
    maps(0x0900_0000, uart, level);

    let entry = elf.entry;
    let (level, code) = walk(entry).expect("the entry is mapped");
    assert!(level == 3 && normal(code), "{code:#x}");
    assert!(
        code & READ_ONLY != 0 && code & PXN == 0,
        "code is read-only and executable"
    );
    maps(entry, code, level);
    let (_, header) = walk(boot::loads(&elf)[0].p_vaddr).expect("the ELF header is mapped");
    assert!(
        normal(header) && header & READ_ONLY != 0 && header & PXN != 0,
        "{header:#x}"
    );
    let rodata = section(&elf, ".rodata").sh_addr;
    let (_, constant) = walk(rodata).expect("the read-only data is mapped");
    assert!(
        constant & READ_ONLY != 0 && constant & PXN != 0,
        "{constant:#x}"
    );
    let (_, table) = walk(root).expect("the tables are mapped");
    assert!(table & READ_ONLY != 0 && table & PXN != 0, "{table:#x}");
    // Its last byte: a randomized layout may start .bss with the stack's guard page.
    let bss = section(&elf, ".bss");
    let (_, data) = walk(bss.sh_addr + bss.sh_size - 1).expect(".bss is mapped");
    assert!(
        normal(data) && data & READ_ONLY == 0 && data & PXN != 0,
        "{data:#x}"
    );
    let guard = boot::symbol(&elf, "__uniklink_reserve_rt_stack_size");
    assert_eq!(walk(guard), None, "the stack's guard page is unmapped");
    let (_, above_guard) = walk(guard + 0x1000).expect("the stack is mapped");
    assert!(above_guard & READ_ONLY == 0, "{above_guard:#x}");

    let image_end = boot::symbol(&elf, "_end").next_multiple_of(0x1000);
    for ram in [
        0x4000_0000,
        image_end,
        0x4100_0000,
        0x8000_0000,
        0xffff_f000,
    ] {
        let (level, d) = walk(ram).unwrap_or_else(|| panic!("RAM at {ram:#x} is mapped"));
        assert!(
            normal(d) && d & READ_ONLY == 0 && d & PXN != 0 && d & UXN != 0,
            "RAM at {ram:#x}: {d:#x}"
        );
        maps(ram, d, level);
    }
    assert_eq!(walk(0x0a20_0000), None, "past the devices");
}

#[test]
fn verbose_boot_shows_the_device_tree_memory_and_the_generic_timer() {
    let built = SUITE.built("hello");
    let manifest = built.manifest;
    let image_start = {
        let bytes = std::fs::read(&built.image).expect("the image");
        boot::loads(&Elf::parse(&bytes).expect("an ELF image"))[0].p_paddr
    };
    let out = uniklink()
        .args([
            "run",
            "--release",
            "--no-build",
            "--arch",
            "aarch64",
            "--accel",
            "tcg",
            "--timeout",
            "120",
            "--append",
            "uniklink.verbose",
            "-m",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo-uniklink run runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("uniklink:verbose memmap 0x000040000000-0x000044000000 Ram"),
        "RAM from the device tree:\n{stdout}"
    );
    // QEMU pads its tree to 1 MiB; the heap starts on the first page after the tree's blocks
    // (a few KiB) and runs up to the image.
    let start = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("uniklink:verbose heap 0x"))
        .find_map(|span| span.strip_suffix(&format!("-0x{image_start:012x}")))
        .and_then(|start| u64::from_str_radix(start, 16).ok())
        .unwrap_or_else(|| panic!("a heap span up to the image:\n{stdout}"));
    assert!(
        (0x4000_1000..0x4010_0000).contains(&start),
        "the heap skips the device tree's blocks, not its free space:\n{stdout}"
    );
    assert!(
        stdout.contains("from cntfrq_el0"),
        "the generic timer's frequency:\n{stdout}"
    );
}

/// A host port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// Stops the runner (and with it QEMU) however the test ends.
struct Guest(std::process::Child);

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn httpd_serves_over_virtio_mmio_found_in_the_device_tree() {
    serve_the_page(&[]);
}

#[test]
fn httpd_serves_over_modern_virtio_mmio() {
    // QEMU virt's virtio-mmio transports are legacy (version 1) unless told otherwise.
    serve_the_page(&["-global", "virtio-mmio.force-legacy=false"]);
}

/// Builds httpd for aarch64 virt, boots it with `qemu_args` after the runner's own, and
/// fetches its page through the manifest's host forward.
fn serve_the_page(qemu_args: &[&str]) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::Stdio;
    use std::time::Duration;

    let port = free_port();
    let httpd = std::fs::read_to_string(Path::new(ROOT).join("manifests/httpd.yaml")).unwrap();
    let text = httpd
        .replace("arch: x86_64", "arch: aarch64")
        .replace("platform: qemu-microvm", "platform: qemu-virt")
        .replace("\"8080:8080\"", &format!("\"{port}:8080\""))
        .replace("name: httpd", "name: boot-a64-httpd")
        .replace(
            "path: ../fixtures/apps/httpd",
            &format!("path: {ROOT}/fixtures/apps/httpd"),
        );
    assert!(
        text.contains("arch: aarch64") && text.contains("qemu-virt"),
        "{text}"
    );
    let manifest = SUITE.dir().join(format!("httpd-{port}.yaml"));
    std::fs::write(&manifest, text).unwrap();
    assert_success(&build_release(&manifest, &[]), "building httpd");

    let mut guest = Guest(
        run_built(&manifest, "300")
            .arg("--")
            .args(qemu_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The console until the server listens; a guest that dies first ends the stream.
    let mut console = Vec::new();
    for line in BufReader::new(guest.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let listening = line.starts_with("httpd: listening on :8080");
        console.push(line);
        if listening {
            break;
        }
    }
    assert!(
        console.iter().any(|l| l.starts_with("httpd: listening")),
        "the guest never listened: {console:#?}"
    );

    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("Hello from a uniklink unikernel"),
        "{response}"
    );
}

#[test]
fn one_build_makes_an_image_for_every_listed_architecture() {
    let manifest = SUITE.manifest_for("hello");
    let out = build_release(&manifest, &["--message-format", "json"]);
    assert_success(&out, "building hello for both architectures");
    let built: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let arches: Vec<_> = built.iter().map(|b| b["arch"].as_str().unwrap()).collect();
    assert_eq!(arches, ["x86_64", "aarch64"], "in the manifest's order");
    for (image, arch) in built.iter().zip(["x86_64", "aarch64"]) {
        assert_eq!(image["reason"], "image-built");
        let path = PathBuf::from(image["image"].as_str().unwrap());
        assert_eq!(
            path,
            app_dir("hello").join(format!("target/uniklink/release/boot-a64-hello-{arch}.elf"))
        );
        assert!(path.is_file() && path.with_extension("json").is_file());
    }
}
