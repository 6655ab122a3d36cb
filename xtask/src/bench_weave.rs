//! `cargo xtask bench weave`: what weaving costs at link time. Builds each example app with
//! `cargo uniklink build --release` and with `--no-weave` (the same objects linked
//! conventionally), alternating, and prints the median time of the inner cargo and of the
//! link step (linking, writing the image, its debug file and its report) that each build
//! states in its `--message-format json` line. After the first round cargo only checks that
//! the app is fresh, so the link step is what differs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use xtask::Error as ToolError;
use xtask::toolchain;

use crate::bench_boot::{self, Arch};
use crate::stats::median;

/// The example apps built from cargo packages, by manifest.
const MANIFESTS: &[&str] = &[
    "manifests/hello.yaml",
    "manifests/httpd.yaml",
    "manifests/kvstore.yaml",
];

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Timed builds per app and mode, after one untimed round.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// The uniklink binary to use; by default a release build of this workspace's.
    #[arg(long)]
    uniklink: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(
        "`cargo uniklink build -m {manifest}` printed no image-built line with timings: {output}"
    )]
    NoTimings { manifest: String, output: String },
}

/// One build's split, as its JSON line states it.
#[derive(Debug, Clone, Copy)]
struct Split {
    cargo: Duration,
    link: Duration,
}

struct Row {
    manifest: &'static str,
    woven: Vec<Split>,
    unwoven: Vec<Split>,
}

pub fn run(options: &Options) -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let uniklink = bench_boot::release_uniklink(&root, options.uniklink.as_deref())?;
    let mut rows = Vec::new();
    for &manifest in MANIFESTS {
        eprintln!(
            "building {manifest}, woven and --no-weave, {} times each",
            options.runs
        );
        let mut row = Row {
            manifest,
            woven: Vec::new(),
            unwoven: Vec::new(),
        };
        for round in 0..=options.runs {
            let woven = build(&uniklink, &root, manifest, &[])?;
            let unwoven = build(&uniklink, &root, manifest, &["--no-weave"])?;
            if round > 0 {
                row.woven.push(woven);
                row.unwoven.push(unwoven);
            }
        }
        rows.push(row);
    }
    // The woven image last: the manifest's image path holds what `build` would leave.
    for &manifest in MANIFESTS {
        build(&uniklink, &root, manifest, &[])?;
    }
    print_table(&rows, options.runs);
    Ok(())
}

fn build(
    uniklink: &Path,
    root: &Path,
    manifest: &'static str,
    extra: &[&str],
) -> Result<Split, Error> {
    let output = toolchain::run(
        Command::new(uniklink)
            .current_dir(root)
            .args(["build", "-m", manifest, "--arch", Arch::X86_64.name()])
            .args(["--release", "--message-format", "json"])
            .args(extra)
            .args(["--", "--locked"]),
    )?;
    let seconds = |line: &serde_json::Value, key: &str| {
        line.get(key)
            .and_then(serde_json::Value::as_f64)
            .map(Duration::from_secs_f64)
    };
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|line| {
            Some(Split {
                cargo: seconds(&line, "cargo_seconds")?,
                link: seconds(&line, "link_seconds")?,
            })
        })
        .ok_or_else(|| Error::NoTimings {
            manifest: manifest.to_owned(),
            output,
        })
}

fn print_table(rows: &[Row], runs: usize) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!(
        "x86_64 release builds, medians of {runs} alternating runs after one untimed round. \
         link: linking (weaving included), writing image, debug file and report; cargo: the \
         inner cargo, which finds the app fresh."
    );
    println!();
    println!(
        "| app | woven link ms | --no-weave link ms | woven / --no-weave | woven cargo ms | --no-weave cargo ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let link = |splits: &[Split]| median(&splits.iter().map(|s| s.link).collect::<Vec<_>>());
        let cargo = |splits: &[Split]| median(&splits.iter().map(|s| s.cargo).collect::<Vec<_>>());
        let (woven, unwoven) = (link(&row.woven), link(&row.unwoven));
        println!(
            "| {} | {} | {} | {:.2} | {} | {} |",
            row.manifest,
            ms(woven),
            ms(unwoven),
            woven.as_secs_f64() / unwoven.as_secs_f64(),
            ms(cargo(&row.woven)),
            ms(cargo(&row.unwoven)),
        );
    }
}
