//! `cargo xtask bench boot`: the hello unikernel as uniklink links it, beside the same
//! objects linked by GNU ld with a minimal linker script, and an empty guest that only prints
//! the ready marker and exits (the floor QEMU itself sets). Image sizes, stripped and not,
//! and boot times on QEMU microvm with TCG, median of interleaved runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::Error as ToolError;
use xtask::toolchain;

/// Unikraft's hello world image on QEMU (x86_64, KVM platform), for scale.
const UNIKRAFT_HELLO_BYTES: u64 = 197_280;

#[derive(Debug, clap::Args)]
pub struct Options {
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
}

/// The workspace's GNU ld script for the library OS: everything at 1 MiB, the Xen note kept
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
    /// The empty guest prints a fixed number where the library OS measures.
    guest_time: bool,
    ready_ns: Vec<u64>,
    entry_to_main_ns: Vec<u64>,
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

    eprintln!("building hello with cargo uniklink build --release");
    toolchain::run(
        Command::new(&uniklink)
            .current_dir(&root)
            .args(["build", "-m", "manifests/hello.yaml", "--release"])
            .args(["--", "--locked"]),
    )?;
    let hello = built_image(&root, "fixtures/apps/hello", "hello")?;

    let work = tempfile::tempdir().map_err(ToolError::io(std::env::temp_dir()))?;
    let work = work.path();
    let gnu = gnu_ld(work, &hello.inputs, "hello")?;
    let floor = empty_guest(work, &root.join("fixtures/boot/x86_64"))?;

    let mut images = Vec::new();
    for (name, path, guest_time) in [
        ("uniklink", hello.image, true),
        ("GNU ld", gnu, true),
        ("empty guest", floor, false),
    ] {
        let stripped = work.join(format!("{}.stripped", name.replace(' ', "_")));
        toolchain::run(Command::new("strip").arg("-o").arg(&stripped).arg(&path))?;
        images.push(Image {
            name,
            bytes: file_size(&path)?,
            stripped: file_size(&stripped)?,
            path,
            guest_time,
            ready_ns: Vec::new(),
            entry_to_main_ns: Vec::new(),
        });
    }

    for image in &images {
        boot(&uniklink, image)?;
    }
    eprintln!(
        "booting each image {} times (QEMU microvm, TCG)",
        options.runs
    );
    // Round-robin, so that a slow moment of the shared machine hurts every image alike.
    for _ in 0..options.runs {
        for image in &mut images {
            let (ready, entry_to_main) = boot(&uniklink, image)?;
            image.ready_ns.push(ready);
            image.entry_to_main_ns.push(entry_to_main);
        }
    }
    print_table(&images, options.runs);
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

/// What `cargo uniklink build` made of an app's x86_64 image, from its build report.
pub(crate) struct BuiltImage {
    pub image: PathBuf,
    /// The objects and archives it linked (the generated glue and notes aside).
    pub inputs: Vec<PathBuf>,
}

/// The x86_64 image `build` made of the manifest `name` and the inputs it linked, from its
/// report beside the image in the cargo target directory of the app in `app_dir`.
pub(crate) fn built_image(root: &Path, app_dir: &str, name: &str) -> Result<BuiltImage, Error> {
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
        .join(format!("uniklink/{name}-x86_64.json"));
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

/// The same inputs linked by GNU ld with the script above and a Xen note assembled here, as
/// `<work>/<name>-ld.elf`.
pub(crate) fn gnu_ld(work: &Path, inputs: &[PathBuf], name: &str) -> Result<PathBuf, ToolError> {
    let note_s = work.join("xen-note.S");
    let note_o = work.join("xen-note.o");
    let script = work.join("pvh.ld");
    fs::write(&note_s, XEN_NOTE).map_err(ToolError::io(&note_s))?;
    fs::write(&script, LINKER_SCRIPT).map_err(ToolError::io(&script))?;
    toolchain::run(
        Command::new("as")
            .arg("--64")
            .arg("-o")
            .arg(&note_o)
            .arg(&note_s),
    )?;
    let out = work.join(format!("{name}-ld.elf"));
    toolchain::run(
        Command::new("ld")
            .args(["-m", "elf_x86_64", "-static", "--gc-sections"])
            .args(["-z", "max-page-size=0x1000", "-z", "noexecstack", "-T"])
            .arg(&script)
            .arg("-o")
            .arg(&out)
            .arg(&note_o)
            .args(inputs),
    )?;
    Ok(out)
}

/// `fixtures/boot/x86_64/marker_exit0.S`: prints the ready marker and exits at once.
fn empty_guest(work: &Path, fixtures: &Path) -> Result<PathBuf, ToolError> {
    let object = work.join("empty.o");
    let out = work.join("empty.elf");
    toolchain::run(
        Command::new("as")
            .arg("--64")
            .arg("-I")
            .arg(fixtures)
            .arg("-o")
            .arg(&object)
            .arg(fixtures.join("marker_exit0.S")),
    )?;
    toolchain::run(
        Command::new("ld")
            .args(["-m", "elf_x86_64", "-T"])
            .arg(fixtures.join("pvh.ld"))
            .arg("-o")
            .arg(&out)
            .arg(&object),
    )?;
    Ok(out)
}

/// One boot; returns (launch → ready marker, guest entry → main) in nanoseconds.
fn boot(uniklink: &Path, image: &Image) -> Result<(u64, u64), Error> {
    let mut cmd = Command::new(uniklink);
    cmd.args(["run", "--accel", "tcg", "--json", "--timeout", "60"])
        .arg(&image.path);
    let output = cmd.output().map_err(|source| ToolError::MissingTool {
        tool: uniklink.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let ready = json["ready_ns"].as_u64();
    let entry_to_main = json["entry_to_main_ns"].as_u64();
    match (ready, entry_to_main, json["guest_exit_code"].as_i64()) {
        (Some(ready), Some(entry_to_main), Some(0)) => Ok((ready, entry_to_main)),
        _ => Err(Error::BadBoot {
            image: image.name.to_owned(),
            json: format!("{text}{}", String::from_utf8_lossy(&output.stderr)),
        }),
    }
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2
    } else {
        sorted[mid]
    }
}

fn print_table(images: &[Image], runs: u16) {
    let reference = &images[0];
    let ms = |ns: u64| format!("{:.1}", ns as f64 / 1e6);
    let ratio = |a: u64, b: u64| format!("{:.2}", a as f64 / b as f64);
    println!("hello on QEMU microvm (TCG), median of {runs} boots");
    println!();
    println!(
        "| image | bytes | stripped | stripped / uniklink | launch→ready ms | min–max ms | ready / uniklink | guest entry→main ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for image in images {
        let ready = median(&image.ready_ns);
        let guest = if image.guest_time {
            ms(median(&image.entry_to_main_ns))
        } else {
            "n/a".to_owned()
        };
        println!(
            "| {} | {} | {} | {} | {} | {}–{} | {} | {guest} |",
            image.name,
            image.bytes,
            image.stripped,
            ratio(image.stripped, reference.stripped),
            ms(ready),
            ms(*image.ready_ns.iter().min().unwrap_or(&0)),
            ms(*image.ready_ns.iter().max().unwrap_or(&0)),
            ratio(ready, median(&reference.ready_ns)),
        );
    }
    println!();
    println!(
        "Unikraft hello: {UNIKRAFT_HELLO_BYTES} B (uniklink stripped is {} of it); its guest boots in 54–82 µs on QEMU.",
        ratio(reference.stripped, UNIKRAFT_HELLO_BYTES)
    );
}
