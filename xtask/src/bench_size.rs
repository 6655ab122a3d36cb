//! `cargo xtask bench size`: for every example app, the image uniklink weaves beside the same
//! objects linked conventionally: by uniklink without weaving (`build --no-weave`: every
//! `.init_array` entry a root, as any linker keeps them) and by GNU ld with `--gc-sections`
//! and the library OS's linker script. File sizes, stripped sizes and loadable sizes (the sum of the PT_LOAD
//! segments' `p_memsz`, what the guest's memory holds), and the woven / GNU ld ratio.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::read::elf::{ElfFile64, ProgramHeader as _};
use xtask::Error as ToolError;
use xtask::toolchain;

use crate::bench_boot::{self, built_image, file_size, gnu_ld};

/// An app to measure: its image name, cargo package directory and manifest.
struct App {
    name: &'static str,
    dir: &'static str,
    /// `None`: a generated manifest with the minimal profile, for apps with no example
    /// manifest of their own.
    manifest: Option<&'static str>,
}

/// The example manifests whose app is a cargo package, and the weaving fixture whose app
/// links the socket API without using it (what weaving exists for).
const APPS: &[App] = &[
    App {
        name: "hello",
        dir: "fixtures/apps/hello",
        manifest: Some("manifests/hello.yaml"),
    },
    App {
        name: "httpd",
        dir: "fixtures/apps/httpd",
        manifest: Some("manifests/httpd.yaml"),
    },
    App {
        name: "kvstore",
        dir: "fixtures/apps/kvstore",
        manifest: Some("manifests/kvstore.yaml"),
    },
    App {
        name: "unused-net",
        dir: "fixtures/weave/unused_net",
        manifest: None,
    },
];

#[derive(Debug, clap::Args)]
pub struct Options {
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
    #[error("{path}: not an ELF64 image: {source}")]
    Elf {
        path: PathBuf,
        source: object::read::Error,
    },
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
    let mut rows = Vec::new();
    for app in APPS {
        let manifest = match app.manifest {
            Some(manifest) => root.join(manifest),
            None => {
                let path = work.join(format!("{}.yaml", app.name));
                let package = Path::new(app.dir).file_name().unwrap_or_default();
                let text = format!(
                    "name: {}\napp:\n  package: {}\n  path: {}\narch: [x86_64]\n",
                    app.name,
                    package.display(),
                    root.join(app.dir).display()
                );
                fs::write(&path, text).map_err(ToolError::io(&path))?;
                path
            }
        };
        // Unwoven first: both builds write the same path, and the woven one's report stays.
        eprintln!(
            "building {} with cargo uniklink build --release --no-weave",
            app.name
        );
        build(&uniklink, &root, &manifest, &["--no-weave"])?;
        let unwoven = work.join(format!("{}-unwoven.elf", app.name));
        let built = built_image(&root, app.dir, app.name)?;
        fs::copy(&built.image, &unwoven).map_err(ToolError::io(&unwoven))?;
        eprintln!("building {} with cargo uniklink build --release", app.name);
        build(&uniklink, &root, &manifest, &[])?;
        let built = built_image(&root, app.dir, app.name)?;
        let gnu = gnu_ld(work, &built.inputs, app.name)?;
        rows.push(Row {
            app: app.name,
            woven: sizes(&built.image, work)?,
            unwoven: sizes(&unwoven, work)?,
            gnu_ld: sizes(&gnu, work)?,
        });
    }
    print_table(&rows);
    Ok(())
}

/// `cargo uniklink build --release` of the manifest's x86_64 image, with `extra` flags.
fn build(uniklink: &Path, root: &Path, manifest: &Path, extra: &[&str]) -> Result<(), ToolError> {
    toolchain::run(
        Command::new(uniklink)
            .current_dir(root)
            .arg("build")
            .arg("-m")
            .arg(manifest)
            .args(["--arch", "x86_64", "--release"])
            .args(extra)
            .args(["--", "--locked"]),
    )?;
    Ok(())
}

fn sizes(image: &Path, work: &Path) -> Result<Sizes, Error> {
    let stripped = work.join("stripped.elf");
    toolchain::run(Command::new("strip").arg("-o").arg(&stripped).arg(image))?;
    Ok(Sizes {
        file: file_size(image)?,
        stripped: file_size(&stripped)?,
        loadable: loadable_size(image)?,
    })
}

/// The sum of the PT_LOAD segments' `p_memsz`.
fn loadable_size(image: &Path) -> Result<u64, Error> {
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

fn print_table(rows: &[Row]) {
    let ratio = |a: u64, b: u64| format!("{:.2}", a as f64 / b as f64);
    println!("x86_64 images, release builds. woven: `cargo uniklink build`; unwoven: `cargo");
    println!(
        "uniklink build --no-weave` (every .init_array entry kept); GNU ld: `ld --gc-sections`"
    );
    println!("of the same inputs with the library OS's linker script. Bytes; loadable = sum of");
    println!("PT_LOAD p_memsz.");
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
