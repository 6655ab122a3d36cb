//! `cargo uniklink build`: build the manifest's app and link the bootable image.

use std::ffi::OsString;
use std::process::ExitCode;

use miette::IntoDiagnostic;
use serde::Serialize;
use uniklink::build::{self, BuildOptions, Built};
use uniklink_config::Arch;

use super::cargo_args::{CargoBuildArgs, ManifestArgs, MessageFormat, OutputArgs};

/// Build the app for the manifest's targets and link each into a bootable image.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    /// Which of the manifest's architectures to build; all of them by default.
    #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
    arch: Option<Arch>,
    /// Print one JSON object per image built on stdout (`"reason": "image-built"`).
    #[arg(long, value_name = "FMT", value_enum, default_value_t)]
    message_format: MessageFormat,
    /// Link conventionally, as GNU ld would: every component in the library OS's archive
    /// stays, its init run through `.init_array`. For comparing sizes; budgets do not apply.
    #[arg(long)]
    no_weave: bool,
    /// Leave the symbol table out of the image, as `strip` would (the size `build` prints as
    /// stripped).
    #[arg(long)]
    strip: bool,
    /// Randomize the layout with SEED (a number, or `random` for a fresh one, printed):
    /// input sections shuffled inside code, read-only data, data and bss, and the base
    /// moved up by whole pages. The same seed gives the same image; over the manifest's
    /// `randomize_layout`.
    #[arg(long, value_name = "SEED", value_parser = parse_seed, env = LAYOUT_SEED_ENV)]
    randomize_layout: Option<Seed>,
    #[command(flatten)]
    cargo: CargoBuildArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Arguments for the inner `cargo build` (`--locked`, `--features F`, ...), after `--`.
    #[arg(last = true, value_name = "CARGO-ARGS")]
    cargo_args: Vec<OsString>,
}

pub fn parse_arch(s: &str) -> Result<Arch, String> {
    Arch::ALL
        .into_iter()
        .find(|a| a.name() == s)
        .ok_or_else(|| format!("unknown architecture `{s}` (expected x86_64 or aarch64)"))
}

/// A layout seed as given on the command line.
#[derive(Debug, Clone, Copy)]
enum Seed {
    Given(u64),
    Random,
}

/// Sets `--randomize-layout` for every build, `run`'s included: a test suite runs whole under
/// one layout seed this way.
const LAYOUT_SEED_ENV: &str = "UNIKLINK_RANDOMIZE_LAYOUT";

/// The layout seed [`LAYOUT_SEED_ENV`] gives, for commands without `--randomize-layout`.
pub(super) fn env_layout_seed() -> miette::Result<Option<u64>> {
    let Some(value) = std::env::var_os(LAYOUT_SEED_ENV) else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    let seed = parse_seed(&value).map_err(|e| miette::miette!("{LAYOUT_SEED_ENV}: {e}"))?;
    resolve_seed(seed).map(Some)
}

/// A given seed, or a fresh one, printed so that the image can be built again.
fn resolve_seed(seed: Seed) -> miette::Result<u64> {
    match seed {
        Seed::Given(seed) => Ok(seed),
        Seed::Random => {
            let seed = random_seed()?;
            eprintln!(
                "uniklink: layout seed {seed} (`--randomize-layout {seed}` builds the same image)"
            );
            Ok(seed)
        }
    }
}

fn parse_seed(s: &str) -> Result<Seed, String> {
    if s == "random" {
        return Ok(Seed::Random);
    }
    s.parse()
        .map(Seed::Given)
        .map_err(|_| format!("`{s}` is not a seed: a number from 0 to 2^64-1, or `random`"))
}

/// A fresh seed from the kernel's random source.
fn random_seed() -> miette::Result<u64> {
    use std::io::Read as _;
    let mut bytes = [0; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| miette::miette!("cannot read /dev/urandom for a layout seed: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

pub fn run(args: BuildArgs) -> miette::Result<ExitCode> {
    let manifest = args.manifest.load()?;
    let randomize_layout = args.randomize_layout.map(resolve_seed).transpose()?;
    let mut cargo_args = args.cargo.to_cargo(&args.output);
    cargo_args.extend(args.cargo_args);
    // Without --arch every architecture the manifest lists is built, in its order.
    let arches: Vec<Arch> = match args.arch {
        Some(arch) => vec![arch],
        None => manifest.targets.iter().map(|t| t.arch).collect(),
    };
    for arch in arches {
        let opts = BuildOptions {
            arch: Some(arch),
            profile: args.cargo.cargo_profile(),
            cargo_args: cargo_args.clone(),
            target_dir: args.manifest.target_dir.clone(),
            objects: Vec::new(),
            conventional: args.no_weave,
            strip: args.strip,
            randomize_layout,
        };
        let built = build::build(&manifest, &opts).map_err(|e| miette::miette!("{}", chain(&e)))?;
        let report = &built.report;
        match args.message_format {
            MessageFormat::Json => println!(
                "{}",
                serde_json::to_string(&ImageBuilt::new(&built).into_diagnostic()?)
                    .into_diagnostic()?
            ),
            MessageFormat::Human if !args.output.quiet => {
                let stripped = if args.strip {
                    "stripped".to_owned()
                } else {
                    format!("{} stripped", report.stripped_size)
                };
                let timings = built.timings;
                eprintln!(
                    "uniklink: built {} ({} bytes, {stripped}, {} of {} input sections kept) for {} on {} in {:.2} s (cargo {:.2} s, link {:.3} s)",
                    built.paths.image.display(),
                    report.image_size,
                    report.kept_sections.len(),
                    report.kept_sections.len() + report.dropped_sections.len(),
                    report.arch,
                    report.platform,
                    (timings.cargo + timings.link).as_secs_f64(),
                    timings.cargo.as_secs_f64(),
                    timings.link.as_secs_f64(),
                );
                eprintln!("uniklink: report {}", built.paths.report.display());
            }
            MessageFormat::Human => {}
        }
        if args.no_weave {
            continue;
        }
        if let Err(note) = uniklink::budget::gate(&manifest.budgets, opts.profile.name()) {
            if !args.output.quiet {
                eprintln!("uniklink: {note}");
            }
            continue;
        }
        // The image and report stay, so `cargo uniklink report` can show what to cut.
        uniklink::budget::check_image_size(
            &manifest.budgets,
            &built.paths.image,
            report.image_size,
        )
        .map_err(|e| {
            miette::miette!(
                help = "see where the bytes go: cargo uniklink report",
                "{e}"
            )
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--message-format json`: what was built, where, and how big.
#[derive(Debug, Serialize)]
struct ImageBuilt<'a> {
    reason: &'static str,
    name: &'a str,
    arch: &'a str,
    platform: &'a str,
    image: &'a std::path::Path,
    report: &'a std::path::Path,
    build_id: Option<&'a str>,
    /// The image file's size.
    image_size: u64,
    /// What `strip` would leave of it (`image_size` after `build --strip`).
    stripped_size: u64,
    /// The loaded memory: the sum of the PT_LOAD segments' sizes.
    loadable_size: u64,
    /// The output sections: name, address, size.
    sections: serde_json::Value,
    kept_sections: usize,
    dropped_sections: usize,
    /// Seconds in the inner cargo (dependencies resolved, app built).
    cargo_seconds: f64,
    /// Seconds linking, weaving included, and writing image, debug file and report.
    link_seconds: f64,
}

impl<'a> ImageBuilt<'a> {
    fn new(built: &'a Built) -> serde_json::Result<Self> {
        let report = &built.report;
        Ok(ImageBuilt {
            reason: "image-built",
            name: &report.name,
            arch: &report.arch,
            platform: &report.platform,
            image: &built.paths.image,
            report: &built.paths.report,
            build_id: report.build_id.as_deref(),
            image_size: report.image_size,
            stripped_size: report.stripped_size,
            loadable_size: report.sizes.loadable_size,
            sections: serde_json::to_value(&report.output_sections)?,
            kept_sections: report.kept_sections.len(),
            dropped_sections: report.dropped_sections.len(),
            cargo_seconds: built.timings.cargo.as_secs_f64(),
            link_seconds: built.timings.link.as_secs_f64(),
        })
    }
}

/// The error and its causes on one line each, the way `link` errors read.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        source = cause.source();
    }
    out
}
