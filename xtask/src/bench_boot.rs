//! `cargo xtask bench boot`: the hello unikernel as uniklink links it, beside the same
//! objects linked by GNU ld with a minimal linker script, and an empty guest that only prints
//! the ready marker and exits (the floor QEMU itself sets). Image sizes (stripped, as
//! written, loaded) and boot times with TCG (QEMU microvm for x86_64, QEMU virt for aarch64),
//! median of interleaved runs, with the median of each boot phase the library OS reports in
//! its timeline (`cargo uniklink run --timeline`). Beside them, the httpd server of
//! `manifests/httpd.yaml` (static address) boots to its first listening socket
//! (`run --until listening`) on a network of its own, for boot → listening.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::read::elf::{ElfFile64, ProgramHeader as _};

use xtask::Error as ToolError;
use xtask::toolchain;

use crate::stats::median;

/// Unikraft's hello world image on QEMU (x86_64, KVM platform), for scale.
const UNIKRAFT_HELLO_BYTES: u64 = 197_280;

/// The architecture whose images are built, linked and booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Aarch64,
}

impl Arch {
    /// As `cargo uniklink build --arch` and the build report's file name spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    fn machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "QEMU microvm",
            Arch::Aarch64 => "QEMU virt",
        }
    }

    /// The host's binutils are x86_64 ones; aarch64 objects need the cross binutils.
    fn binutil(self, tool: &'static str) -> String {
        match self {
            Arch::X86_64 => tool.to_owned(),
            Arch::Aarch64 => format!("aarch64-linux-gnu-{tool}"),
        }
    }

    pub(crate) fn strip(self) -> String {
        self.binutil("strip")
    }

    fn assembler(self) -> Command {
        let mut command = Command::new(self.binutil("as"));
        if self == Arch::X86_64 {
            command.arg("--64");
        }
        command
    }

    fn gnu_ld(self) -> Command {
        let mut command = Command::new(self.binutil("ld"));
        if self == Arch::X86_64 {
            command.args(["-m", "elf_x86_64"]);
        }
        command
    }
}

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The architecture to build and boot hello for.
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    arch: Arch,
    /// Timed boots per image, after one untimed boot that checks it works.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,
    /// The uniklink binary to use; by default a release build of this workspace's.
    #[arg(long)]
    uniklink: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("cannot read {path}: {message}")]
    Report { path: PathBuf, message: String },
    #[error("{image}: the boot did not end with the ready marker and exit 0: {json}")]
    BadBoot { image: String, json: String },
    #[error("{path}: not an ELF64 image: {source}")]
    Elf {
        path: PathBuf,
        source: object::read::Error,
    },
}

/// The x86_64 GNU ld script for the library OS: everything at 1 MiB, the Xen note kept
/// and first, code, read-only data and data on their own pages so no segment is W+X. Every
/// `.init_array` entry is kept, as ld's own scripts do, between the bounds the runtime's
/// conventional `uniklink_start` walks.
const LINKER_SCRIPT: &str = "\
ENTRY(_pvh_start)
SECTIONS
{
    . = 0x100000;
    .note.Xen : { KEEP(*(.note.Xen)) }
    .text : { *(.text .text.*) }
    . = ALIGN(4096);
    .rodata : { *(.rodata .rodata.*) }
    .init_array : {
        __init_array_start = .;
        KEEP(*(SORT_BY_INIT_PRIORITY(.init_array.*) .init_array))
        __init_array_end = .;
    }
    . = ALIGN(4096);
    .data : { *(.data .data.*) }
    .bss : { *(.bss .bss.*) *(COMMON) }
    _end = .;
}
";

/// The aarch64 GNU ld script: the image at the library OS's link address on QEMU virt, 2 MiB
/// into RAM (below it QEMU puts the device tree), with the ELF and program headers loaded at
/// its start because the runtime finds its segments through `__ehdr_start`; the same page
/// separation and `.init_array` bounds as the x86_64 script.
const VIRT_LINKER_SCRIPT: &str = "\
ENTRY(_virt_start)
SECTIONS
{
    . = 0x40200000 + SIZEOF_HEADERS;
    .text : { *(.text .text.*) }
    . = ALIGN(4096);
    .rodata : { *(.rodata .rodata.*) }
    .init_array : {
        __init_array_start = .;
        KEEP(*(SORT_BY_INIT_PRIORITY(.init_array.*) .init_array))
        __init_array_end = .;
    }
    . = ALIGN(4096);
    .data : { *(.data .data.*) }
    .got : { *(.got .got.*) }
    .bss : { *(.bss .bss.*) *(COMMON) }
    _end = .;
}
";

/// The aarch64 empty guest, on the boot fixtures' `virt.inc` helpers: the ready marker on the
/// PL011, then a semihosting exit with status 0.
const VIRT_EMPTY_GUEST: &str = "\
    .include \"virt.inc\"
    .text
    .globl _start
_start:
    puts ready
    semihosting_exit 0

    .section .rodata
ready: .asciz \"uniklink:ready entry_to_main_ns=0\\n\"
";

/// `XEN_ELFNOTE_PHYS32_ENTRY` (type 18, name "Xen") pointing at the library OS entry.
const XEN_NOTE: &str = "\
    .section .note.Xen, \"a\", @note
    .p2align 2
    .long 4
    .long 4
    .long 18
    .asciz \"Xen\"
    .long _pvh_start
";

struct Image {
    name: &'static str,
    path: PathBuf,
    bytes: u64,
    stripped: u64,
    loadable: u64,
    /// The empty guest prints a fixed number where the library OS measures.
    guest_time: bool,
    ready_ns: Vec<u64>,
    entry_to_main_ns: Vec<u64>,
    /// Each timeline phase's duration (from the end of the one before) per boot, phases in
    /// the order the guest reports them; none for the empty guest.
    phases: Vec<(String, Vec<u64>)>,
}

/// httpd's boots to its first listening socket.
struct Server {
    path: PathBuf,
    /// QEMU's launch to the host reading the `listening` milestone.
    listening_ns: Vec<u64>,
    /// Guest entry to the milestone, as the guest measured it.
    entry_to_listening_ns: Vec<u64>,
}

/// One boot's times.
struct Boot {
    ready_ns: u64,
    entry_to_main_ns: u64,
    /// (phase, nanoseconds it took), in order.
    phases: Vec<(String, u64)>,
}

pub fn run(options: &Options) -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|source| ToolError::Metadata {
            manifest: root.join("Cargo.toml"),
            source,
        })?;
    let root = metadata.workspace_root.as_std_path().to_path_buf();

    let uniklink = release_uniklink(&root, options.uniklink.as_deref())?;

    let arch = options.arch;
    eprintln!(
        "building hello with cargo uniklink build --arch {} --release",
        arch.name()
    );
    toolchain::run(
        Command::new(&uniklink)
            .current_dir(&root)
            .args(["build", "-m", "manifests/hello.yaml", "--release"])
            .args(["--arch", arch.name()])
            .args(["--", "--locked"]),
    )?;
    let hello = built_image(&root, "fixtures/apps/hello", "hello", arch)?;
    // manifests/httpd.yaml builds for QEMU microvm only.
    let mut server = match arch {
        Arch::X86_64 => {
            eprintln!("building httpd with cargo uniklink build --release");
            toolchain::run(
                Command::new(&uniklink)
                    .current_dir(&root)
                    .args(["build", "-m", "manifests/httpd.yaml", "--release"])
                    .args(["--", "--locked"]),
            )?;
            Some(Server {
                path: built_image(&root, "fixtures/apps/httpd", "httpd", arch)?.image,
                listening_ns: Vec::new(),
                entry_to_listening_ns: Vec::new(),
            })
        }
        Arch::Aarch64 => None,
    };

    let work = tempfile::tempdir().map_err(ToolError::io(std::env::temp_dir()))?;
    let work = work.path();
    let gnu = gnu_ld(work, &hello.inputs, "hello", arch)?;
    let floor = empty_guest(work, &root.join("fixtures/boot").join(arch.name()), arch)?;

    let mut images = Vec::new();
    for (name, path, guest_time) in [
        ("uniklink", hello.image, true),
        ("GNU ld", gnu, true),
        ("empty guest", floor, false),
    ] {
        let stripped = work.join(format!("{}.stripped", name.replace(' ', "_")));
        toolchain::run(
            Command::new(arch.strip())
                .arg("-o")
                .arg(&stripped)
                .arg(&path),
        )?;
        images.push(Image {
            name,
            bytes: file_size(&path)?,
            stripped: file_size(&stripped)?,
            loadable: loadable_size(&path)?,
            path,
            guest_time,
            ready_ns: Vec::new(),
            entry_to_main_ns: Vec::new(),
            phases: Vec::new(),
        });
    }

    let chart = work.join("timeline.svg");
    for image in &images {
        boot(&uniklink, image, &chart)?;
    }
    if let Some(server) = &server {
        boot_to_listening(&uniklink, &server.path)?;
    }
    eprintln!(
        "booting each image {} times ({}, TCG)",
        options.runs,
        arch.machine()
    );
    // Round-robin, so that a slow moment of the shared machine hurts every image alike.
    for _ in 0..options.runs {
        for image in &mut images {
            let boot = boot(&uniklink, image, &chart)?;
            image.ready_ns.push(boot.ready_ns);
            image.entry_to_main_ns.push(boot.entry_to_main_ns);
            for (name, took) in boot.phases {
                match image.phases.iter_mut().find(|(known, _)| *known == name) {
                    Some((_, times)) => times.push(took),
                    None => image.phases.push((name, vec![took])),
                }
            }
        }
        if let Some(server) = &mut server {
            let (host, guest) = boot_to_listening(&uniklink, &server.path)?;
            server.listening_ns.push(host);
            server.entry_to_listening_ns.push(guest);
        }
    }
    print_table(&images, options.runs, arch);
    if let Some(server) = &server {
        print_server(server, &images[0], options.runs);
    }
    Ok(())
}

/// `uniklink` if given; otherwise a release build of this workspace's `cargo-uniklink`.
pub(crate) fn release_uniklink(root: &Path, uniklink: Option<&Path>) -> Result<PathBuf, ToolError> {
    if let Some(path) = uniklink {
        return Ok(path.to_path_buf());
    }
    eprintln!("building cargo-uniklink (release)");
    toolchain::run(Command::new(env!("CARGO")).current_dir(root).args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "cargo-uniklink",
        "--bin",
        "cargo-uniklink",
    ]))?;
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|source| ToolError::Metadata {
            manifest: root.join("Cargo.toml"),
            source,
        })?;
    Ok(metadata
        .target_directory
        .as_std_path()
        .join("release/cargo-uniklink"))
}

pub(crate) fn file_size(path: &Path) -> Result<u64, ToolError> {
    Ok(fs::metadata(path).map_err(ToolError::io(path))?.len())
}

/// The sum of the PT_LOAD segments' `p_memsz`: what the guest's memory holds of the image.
pub(crate) fn loadable_size(image: &Path) -> Result<u64, Error> {
    let data = fs::read(image).map_err(ToolError::io(image))?;
    let elf_error = |source| Error::Elf {
        path: image.to_path_buf(),
        source,
    };
    let elf = ElfFile64::<object::Endianness>::parse(&*data).map_err(elf_error)?;
    let endian = elf.endian();
    Ok(elf
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
        .map(|ph| ph.p_memsz(endian))
        .sum())
}

/// What `cargo uniklink build` made of an app's image, from its build report.
pub(crate) struct BuiltImage {
    pub image: PathBuf,
    /// The objects and archives it linked (the generated glue and notes aside).
    pub inputs: Vec<PathBuf>,
}

/// The `arch` image `build` made of the manifest `name` and the inputs it linked, from its
/// report beside the image in the cargo target directory of the app in `app_dir`.
pub(crate) fn built_image(
    root: &Path,
    app_dir: &str,
    name: &str,
    arch: Arch,
) -> Result<BuiltImage, Error> {
    let app = root.join(app_dir).join("Cargo.toml");
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(&app)
        .no_deps()
        .exec()
        .map_err(|source| ToolError::Metadata {
            manifest: app.clone(),
            source,
        })?;
    let report_path = metadata
        .target_directory
        .as_std_path()
        .join(format!("uniklink/release/{name}-{}.json", arch.name()));
    let text = fs::read(&report_path).map_err(ToolError::io(&report_path))?;
    let bad = |message: &str| Error::Report {
        path: report_path.clone(),
        message: message.to_owned(),
    };
    let report: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(&e.to_string()))?;
    let image = report["image"]
        .as_str()
        .ok_or_else(|| bad("no `image`"))?
        .into();
    let inputs = report["inputs"]
        .as_array()
        .ok_or_else(|| bad("no `inputs`"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(PathBuf::from)
                .ok_or_else(|| bad("bad `inputs`"))
        })
        .collect::<Result<_, _>>()?;
    Ok(BuiltImage { image, inputs })
}

/// The same inputs linked by GNU ld with the `arch` script above (and for x86_64 a Xen note
/// assembled here), as `<work>/<name>-ld.elf`.
pub(crate) fn gnu_ld(
    work: &Path,
    inputs: &[PathBuf],
    name: &str,
    arch: Arch,
) -> Result<PathBuf, ToolError> {
    let script = work.join(format!("{}.ld", arch.name()));
    let note = match arch {
        Arch::X86_64 => {
            fs::write(&script, LINKER_SCRIPT).map_err(ToolError::io(&script))?;
            let note_s = work.join("xen-note.S");
            let note_o = work.join("xen-note.o");
            fs::write(&note_s, XEN_NOTE).map_err(ToolError::io(&note_s))?;
            toolchain::run(arch.assembler().arg("-o").arg(&note_o).arg(&note_s))?;
            Some(note_o)
        }
        Arch::Aarch64 => {
            fs::write(&script, VIRT_LINKER_SCRIPT).map_err(ToolError::io(&script))?;
            None
        }
    };
    let out = work.join(format!("{name}-ld.elf"));
    toolchain::run(
        arch.gnu_ld()
            .args(["-static", "--gc-sections"])
            .args(["-z", "max-page-size=0x1000", "-z", "noexecstack", "-T"])
            .arg(&script)
            .arg("-o")
            .arg(&out)
            .args(note)
            .args(inputs),
    )?;
    Ok(out)
}

/// A guest that prints the ready marker and exits at once: x86_64's is
/// `fixtures/boot/x86_64/marker_exit0.S`, aarch64's the source above, each linked with its
/// boot fixtures' script.
fn empty_guest(work: &Path, fixtures: &Path, arch: Arch) -> Result<PathBuf, ToolError> {
    let (source, script) = match arch {
        Arch::X86_64 => (fixtures.join("marker_exit0.S"), fixtures.join("pvh.ld")),
        Arch::Aarch64 => {
            let source = work.join("empty.S");
            fs::write(&source, VIRT_EMPTY_GUEST).map_err(ToolError::io(&source))?;
            (source, fixtures.join("virt.ld"))
        }
    };
    let object = work.join("empty.o");
    let out = work.join("empty.elf");
    toolchain::run(
        arch.assembler()
            .arg("-I")
            .arg(fixtures)
            .arg("-o")
            .arg(&object)
            .arg(&source),
    )?;
    // aarch64 ld pads segments to 64 KiB pages by default, which would bloat the floor's file.
    toolchain::run(
        arch.gnu_ld()
            .args(["-z", "max-page-size=0x1000", "-T"])
            .arg(&script)
            .arg("-o")
            .arg(&out)
            .arg(&object),
    )?;
    Ok(out)
}

/// One boot, with the guest's timeline asked for (its chart written to `chart`).
fn boot(uniklink: &Path, image: &Image, chart: &Path) -> Result<Boot, Error> {
    let mut cmd = Command::new(uniklink);
    cmd.args(["run", "--accel", "tcg", "--json", "--timeout", "60"])
        .arg(format!("--timeline={}", chart.display()))
        .arg(&image.path);
    let output = cmd.output().map_err(|source| ToolError::MissingTool {
        tool: uniklink.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let ready = json["ready_ns"].as_u64();
    let entry_to_main = json["entry_to_main_ns"].as_u64();
    let mut phases = Vec::new();
    let mut previous = 0;
    for phase in json["timeline"]["phases"].as_array().into_iter().flatten() {
        let (Some(name), Some(at)) = (phase["name"].as_str(), phase["at_ns"].as_u64()) else {
            continue;
        };
        phases.push((name.to_owned(), at.saturating_sub(previous)));
        previous = at;
    }
    match (ready, entry_to_main, json["guest_exit_code"].as_i64()) {
        (Some(ready_ns), Some(entry_to_main_ns), Some(0)) => Ok(Boot {
            ready_ns,
            entry_to_main_ns,
            phases,
        }),
        _ => Err(Error::BadBoot {
            image: image.name.to_owned(),
            json: format!("{text}{}", String::from_utf8_lossy(&output.stderr)),
        }),
    }
}

/// One boot of the server to its first listening socket, on a network with no other host
/// (a QEMU hub port): QEMU's launch to the milestone on the host, and guest entry to it.
fn boot_to_listening(uniklink: &Path, image: &Path) -> Result<(u64, u64), Error> {
    let output = Command::new(uniklink)
        .args(["run", "--accel", "tcg", "--json", "--timeout", "60"])
        .args(["--until", "listening", "--timeline=/dev/null"])
        .arg(image)
        .args(["--", "-netdev", "hubport,id=n0,hubid=0"])
        .args(["-device", "virtio-net-device,netdev=n0"])
        .output()
        .map_err(|source| ToolError::MissingTool {
            tool: uniklink.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let guest = json["timeline"]["milestones"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == "listening")
        .and_then(|m| m["at_ns"].as_u64());
    match (json["milestones_ns"]["listening"].as_u64(), guest) {
        (Some(host), Some(guest)) if output.status.success() => Ok((host, guest)),
        _ => Err(Error::BadBoot {
            image: image.display().to_string(),
            json: format!("{text}{}", String::from_utf8_lossy(&output.stderr)),
        }),
    }
}

/// httpd's boot → listening beside hello's launch → ready (the goal: within 10 ms).
fn print_server(server: &Server, hello: &Image, runs: u16) {
    let listening = median(&server.listening_ns);
    println!();
    println!(
        "httpd (manifests/httpd.yaml, static address) to its first listening socket, median of {runs} boots"
    );
    println!();
    println!(
        "| image | launch→listening ms | min–max ms | guest entry→listening µs | beyond hello's launch→ready ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| httpd | {:.1} | {:.1}–{:.1} | {:.1} | {} |",
        listening as f64 / 1e6,
        *server.listening_ns.iter().min().unwrap_or(&0) as f64 / 1e6,
        *server.listening_ns.iter().max().unwrap_or(&0) as f64 / 1e6,
        median(&server.entry_to_listening_ns) as f64 / 1e3,
        signed_ms(listening, median(&hello.ready_ns)),
    );
}

fn print_table(images: &[Image], runs: u16, arch: Arch) {
    let reference = &images[0];
    let ms = |ns: u64| format!("{:.1}", ns as f64 / 1e6);
    let us = |ns: u64| format!("{:.1}", ns as f64 / 1e3);
    let ratio = |a: u64, b: u64| format!("{:.2}", a as f64 / b as f64);
    println!(
        "hello for {} on {} (TCG), median of {runs} boots",
        arch.name(),
        arch.machine()
    );
    println!();
    println!(
        "| image | bytes | stripped | stripped / uniklink | loaded | launch→ready ms | min–max ms | ready / uniklink | guest entry→main µs |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for image in images {
        let ready = median(&image.ready_ns);
        let guest = if image.guest_time {
            us(median(&image.entry_to_main_ns))
        } else {
            "n/a".to_owned()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {}–{} | {} | {guest} |",
            image.name,
            image.bytes,
            image.stripped,
            ratio(image.stripped, reference.stripped),
            image.loadable,
            ms(ready),
            ms(*image.ready_ns.iter().min().unwrap_or(&0)),
            ms(*image.ready_ns.iter().max().unwrap_or(&0)),
            ratio(ready, median(&reference.ready_ns)),
        );
    }
    let floor = images.iter().find(|image| !image.guest_time);
    if let Some(floor) = floor {
        println!();
        println!(
            "launch→ready beyond the empty guest's: uniklink {} ms",
            signed_ms(median(&reference.ready_ns), median(&floor.ready_ns))
        );
    }
    print_phases(images, runs);
    // Unikraft's figure is an x86_64 image; beside an aarch64 one it would compare two ISAs.
    if arch != Arch::X86_64 {
        return;
    }
    println!();
    println!(
        "Unikraft hello: {UNIKRAFT_HELLO_BYTES} B (uniklink stripped is {} of it); its guest boots in 54–82 µs on QEMU.",
        ratio(reference.stripped, UNIKRAFT_HELLO_BYTES)
    );
}

/// `+1.3` or `-0.4`: milliseconds from `b` to `a`.
fn signed_ms(a: u64, b: u64) -> String {
    format!("{:+.1}", (a as f64 - b as f64) / 1e6)
}

/// The median time of each boot phase, for the images that report a timeline, phases in the
/// order they are first reported (the conventionally linked image numbers its inits where
/// the woven one names their components).
fn print_phases(images: &[Image], runs: u16) {
    let timed: Vec<&Image> = images.iter().filter(|i| !i.phases.is_empty()).collect();
    if timed.is_empty() {
        return;
    }
    let mut phases: Vec<&str> = Vec::new();
    for image in &timed {
        for (name, _) in &image.phases {
            if name != "entry" && !phases.contains(&name.as_str()) {
                phases.push(name);
            }
        }
    }
    println!();
    println!(
        "boot phases (`run --timeline`), median µs of {runs} boots, each from the end of the one before"
    );
    println!();
    let names: Vec<&str> = timed.iter().map(|image| image.name).collect();
    println!("| phase | {} |", names.join(" | "));
    println!("| --- |{}", " ---: |".repeat(names.len()));
    for phase in phases {
        let cells: Vec<String> = timed
            .iter()
            .map(|image| {
                image
                    .phases
                    .iter()
                    .find(|(name, _)| name == phase)
                    .map_or("–".to_owned(), |(_, times)| {
                        format!("{:.1}", median(times) as f64 / 1e3)
                    })
            })
            .collect();
        println!("| {phase} | {} |", cells.join(" | "));
    }
}
