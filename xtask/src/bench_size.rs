//! `cargo xtask bench size`: for every example app built for the chosen architecture, the image uniklink weaves beside the same
//! objects linked conventionally: by uniklink without weaving (`build --no-weave`: every
//! `.init_array` entry a root, as any linker keeps them) and by GNU ld with `--gc-sections`
//! and the library OS's linker script. File sizes, stripped sizes and loadable sizes (the sum of the PT_LOAD
//! segments' `p_memsz`, what the guest's memory holds), and the woven / GNU ld ratio.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::Error as ToolError;
use xtask::toolchain;

use crate::bench_boot::{self, Arch, built_image, file_size, gnu_ld};

/// An app to measure: its image name, cargo package directory and manifest.
struct App {
    name: &'static str,
    dir: &'static str,
    /// `None`: a generated manifest with the minimal profile, for apps with no example
    /// manifest of their own.
    manifest: Option<&'static str>,
    /// The architectures its manifest lists.
    arches: &'static [Arch],
}

/// The example manifests whose app is a cargo package, and the weaving fixture whose app
/// links the socket API without using it (what weaving exists for).
const APPS: &[App] = &[
    App {
        name: "hello",
        dir: "fixtures/apps/hello",
        manifest: Some("manifests/hello.yaml"),
        arches: &[Arch::X86_64, Arch::Aarch64],
    },
    App {
        name: "httpd",
        dir: "fixtures/apps/httpd",
        manifest: Some("manifests/httpd.yaml"),
        arches: &[Arch::X86_64],
    },
    App {
        name: "kvstore",
        dir: "fixtures/apps/kvstore",
        manifest: Some("manifests/kvstore.yaml"),
        arches: &[Arch::X86_64],
    },
    App {
        name: "unused-net",
        dir: "fixtures/weave/unused_net",
        manifest: None,
        arches: &[Arch::X86_64, Arch::Aarch64],
    },
];

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The architecture to build for; apps whose manifest does not list it are left out.
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    arch: Arch,
    /// The uniklink binary to use; by default a release build of this workspace's.
    #[arg(long)]
    uniklink: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Boot(#[from] bench_boot::Error),
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// One linked image's sizes.
struct Sizes {
    file: u64,
    stripped: u64,
    loadable: u64,
}

/// One app's three images.
struct Row {
    app: &'static str,
    woven: Sizes,
    unwoven: Sizes,
    gnu_ld: Sizes,
}

pub fn run(options: &Options) -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let uniklink = bench_boot::release_uniklink(&root, options.uniklink.as_deref())?;
    let work = tempfile::tempdir().map_err(ToolError::io(std::env::temp_dir()))?;
    let work = work.path();
    let arch = options.arch;
    let mut rows = Vec::new();
    for app in APPS.iter().filter(|app| app.arches.contains(&arch)) {
        let manifest = match app.manifest {
            Some(manifest) => root.join(manifest),
            None => {
                let path = work.join(format!("{}.yaml", app.name));
                let package = Path::new(app.dir).file_name().unwrap_or_default();
                let text = format!(
                    "name: {}\napp:\n  package: {}\n  path: {}\narch: [{}]\n",
                    app.name,
                    package.display(),
                    root.join(app.dir).display(),
                    arch.name()
                );
                fs::write(&path, text).map_err(ToolError::io(&path))?;
                path
            }
        };
        // Unwoven first: both builds write the same path, and the woven one's report stays.
        eprintln!(
            "building {} with cargo uniklink build --arch {} --release --no-weave",
            app.name,
            arch.name()
        );
        build(&uniklink, &root, &manifest, arch, &["--no-weave"])?;
        let unwoven = work.join(format!("{}-unwoven.elf", app.name));
        let built = built_image(&root, app.dir, app.name, arch)?;
        fs::copy(&built.image, &unwoven).map_err(ToolError::io(&unwoven))?;
        eprintln!(
            "building {} with cargo uniklink build --arch {} --release",
            app.name,
            arch.name()
        );
        build(&uniklink, &root, &manifest, arch, &[])?;
        let built = built_image(&root, app.dir, app.name, arch)?;
        let gnu = gnu_ld(work, &built.inputs, app.name, arch)?;
        rows.push(Row {
            app: app.name,
            woven: sizes(&built.image, work, arch)?,
            unwoven: sizes(&unwoven, work, arch)?,
            gnu_ld: sizes(&gnu, work, arch)?,
        });
    }
    print_table(&rows, arch);
    Ok(())
}

/// `cargo uniklink build --release` of the manifest's `arch` image, with `extra` flags.
fn build(
    uniklink: &Path,
    root: &Path,
    manifest: &Path,
    arch: Arch,
    extra: &[&str],
) -> Result<(), ToolError> {
    toolchain::run(
        Command::new(uniklink)
            .current_dir(root)
            .arg("build")
            .arg("-m")
            .arg(manifest)
            .args(["--arch", arch.name(), "--release"])
            .args(extra)
            .args(["--", "--locked"]),
    )?;
    Ok(())
}

fn sizes(image: &Path, work: &Path, arch: Arch) -> Result<Sizes, Error> {
    let stripped = work.join("stripped.elf");
    toolchain::run(
        Command::new(arch.strip())
            .arg("-o")
            .arg(&stripped)
            .arg(image),
    )?;
    Ok(Sizes {
        file: file_size(image)?,
        stripped: file_size(&stripped)?,
        loadable: bench_boot::loadable_size(image)?,
    })
}

fn print_table(rows: &[Row], arch: Arch) {
    let ratio = |a: u64, b: u64| format!("{:.2}", a as f64 / b as f64);
    let left_out: Vec<&str> = APPS
        .iter()
        .filter(|app| !app.arches.contains(&arch))
        .map(|app| app.name)
        .collect();
    println!(
        "{} images, release builds. woven: `cargo uniklink build`; unwoven: `cargo",
        arch.name()
    );
    println!(
        "uniklink build --no-weave` (every .init_array entry kept); GNU ld: `ld --gc-sections`"
    );
    println!("of the same inputs with the library OS's linker script. Bytes; loadable = sum of");
    println!("PT_LOAD p_memsz.");
    if !left_out.is_empty() {
        println!(
            "Not built for {}, as their manifests do not list it: {}.",
            arch.name(),
            left_out.join(", ")
        );
    }
    println!();
    println!(
        "| app | woven stripped | unwoven stripped | GNU ld stripped | woven / unwoven | woven / GNU ld | woven loadable | unwoven loadable | GNU ld loadable | woven / GNU ld loadable | woven file | unwoven file | GNU ld file |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.app,
            row.woven.stripped,
            row.unwoven.stripped,
            row.gnu_ld.stripped,
            ratio(row.woven.stripped, row.unwoven.stripped),
            ratio(row.woven.stripped, row.gnu_ld.stripped),
            row.woven.loadable,
            row.unwoven.loadable,
            row.gnu_ld.loadable,
            ratio(row.woven.loadable, row.gnu_ld.loadable),
            row.woven.file,
            row.unwoven.file,
            row.gnu_ld.file,
        );
    }
}
