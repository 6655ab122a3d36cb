//! `cargo xtask bench fs`: the storage stack measured in the guest (`benches/fs`) on QEMU with
//! TCG, once per profile side by side: sequential write and read of one large file, 4 KiB
//! random reads, synced small appends and mount time, with the raw device's own sequential
//! read rate (virtio-blk without the file system) as the ceiling. Then the image sizes of
//! kvstore (which keeps the storage stack) and hello (which has none), woven and not.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use xtask::Error as ToolError;
use xtask::toolchain;

use crate::bench_boot::{Arch, Error, built_image, file_size, release_uniklink};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// MiB written and read sequentially.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    size: u64,
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    arch: Arch,
    /// A prebuilt `cargo-uniklink` instead of a release build of this workspace's.
    #[arg(long)]
    uniklink: Option<std::path::PathBuf>,
}

const PROFILES: [&str; 2] = ["filesystem", "minimal"];
/// What the guest prints, in table order, with units.
const MEASURES: [(&str, &str); 6] = [
    ("raw-read", "MiB/s"),
    ("seq-write", "MiB/s"),
    ("seq-read", "MiB/s"),
    ("random-4k-read", "reads/s"),
    ("synced-append", "appends/s"),
    ("mount", "us"),
];

pub fn run(options: &Options) -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .map_err(ToolError::io(env!("CARGO_MANIFEST_DIR")))?;
    let uniklink = release_uniklink(&root, options.uniklink.as_deref())?;
    let work = tempfile::tempdir().map_err(ToolError::io(std::env::temp_dir()))?;
    let arch = options.arch.name();

    let mut results: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    for profile in PROFILES {
        let image = work.path().join(format!("{profile}.img"));
        let manifest = work.path().join(format!("fsbench-{profile}.yaml"));
        // Room for the file, littlefs's copies on write and the appends.
        let disk_mib = options.size * 2 + 16;
        let text = format!(
            "name: fsbench-{profile}\napp:\n  package: fsbench\n  path: {}\narch: [{arch}]\n\
             profile: {profile}\nmemory: 128MiB\ncmdline: fsbench.size={}\nvolumes:\n  \
             - {{ name: data, image: {}, size: {disk_mib}MiB, mount: /data }}\n",
            root.join("benches/fs").display(),
            options.size,
            image.display()
        );
        fs::write(&manifest, text).map_err(ToolError::io(&manifest))?;
        eprintln!("fs bench: building and booting with the {profile} profile ({arch}, TCG)");
        toolchain::run(
            Command::new(&uniklink)
                .args(["build", "--release", "-m"])
                .arg(&manifest)
                .args(["--", "--locked"]),
        )?;
        let console = toolchain::run(
            Command::new(&uniklink)
                .args([
                    "run",
                    "--release",
                    "--no-build",
                    "--accel",
                    "tcg",
                    "--timeout",
                    "900",
                    "-m",
                ])
                .arg(&manifest),
        )?;
        let measured = results.entry(profile).or_default();
        for line in console.lines() {
            let Some(rest) = line.strip_prefix("fsbench: ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(Ok(value))) = (words.next(), words.next().map(str::parse)) {
                measured.insert(name.to_owned(), value);
            }
        }
        if measured.len() != MEASURES.len() {
            return Err(Error::BadBoot {
                image: format!("fsbench-{profile}"),
                json: console,
            });
        }
    }

    println!(
        "\n{} MiB file, {arch}, QEMU TCG; raw-read is virtio-blk without the file system\n",
        options.size
    );
    println!("| measure | filesystem profile | minimal profile | unit |");
    println!("| --- | ---: | ---: | --- |");
    for (name, unit) in MEASURES {
        let value = |profile: &str| results[profile][name];
        println!(
            "| {name} | {} | {} | {unit} |",
            value("filesystem"),
            value("minimal")
        );
    }
    for profile in PROFILES {
        let r = &results[profile];
        let raw = r["raw-read"].max(0.1);
        println!(
            "{profile}: seq-read / raw-read {:.2}, seq-write / raw-read {:.2}",
            r["seq-read"] / raw,
            r["seq-write"] / raw
        );
    }

    println!("\n| image | woven | --no-weave |");
    println!("| --- | ---: | ---: |");
    for (name, dir, manifest) in [
        ("hello", "fixtures/apps/hello", "manifests/hello.yaml"),
        ("kvstore", "fixtures/apps/kvstore", "manifests/kvstore.yaml"),
    ] {
        let mut sizes = Vec::new();
        for flags in [&[][..], &["--no-weave"][..]] {
            toolchain::run(
                Command::new(&uniklink)
                    .current_dir(&root)
                    .args(["build", "--release", "--arch", "x86_64", "-m", manifest])
                    .args(flags)
                    .args(["--", "--locked"]),
            )?;
            sizes.push(file_size(
                &built_image(&root, dir, name, Arch::X86_64)?.image,
            )?);
        }
        println!("| {name} | {} B | {} B |", sizes[0], sizes[1]);
    }
    Ok(())
}
