//! `cargo uniklink build`: build the manifest's app and link the bootable image.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use uniklink::build::{self, BuildOptions, CargoProfile};
use uniklink_config::{Arch, Manifest};

/// Build the app for the manifest's target and link it into a bootable image.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The manifest.
    #[arg(
        short = 'm',
        long = "manifest",
        value_name = "FILE",
        default_value = "uniklink.yaml"
    )]
    manifest: PathBuf,
    /// Build the app with cargo's release profile.
    #[arg(long, short = 'r')]
    release: bool,
    /// Which of the manifest's architectures to build; the first one listed by default.
    #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
    arch: Option<Arch>,
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

pub fn run(args: BuildArgs) -> miette::Result<ExitCode> {
    let manifest = Manifest::load(&args.manifest).map_err(miette::Report::new)?;
    let opts = BuildOptions {
        arch: args.arch,
        profile: if args.release {
            CargoProfile::Release
        } else {
            CargoProfile::Dev
        },
        cargo_args: args.cargo_args,
    };
    let built = build::build(&manifest, &opts).map_err(|e| miette::miette!("{}", chain(&e)))?;
    let report = &built.report;
    eprintln!(
        "uniklink: built {} ({} bytes, {} of {} input sections kept) for {} on {}",
        built.paths.image.display(),
        report.image_size,
        report.kept_sections.len(),
        report.kept_sections.len() + report.dropped_sections.len(),
        report.arch,
        report.platform,
    );
    eprintln!("uniklink: report {}", built.paths.report.display());
    // The image and report stay, so `cargo uniklink report` can show what to cut.
    uniklink::budget::check_image_size(&manifest.budgets, &built.paths.image, report.image_size)
        .map_err(|e| {
            miette::miette!(
                help = "see where the bytes go: cargo uniklink report",
                "{e}"
            )
        })?;
    Ok(ExitCode::SUCCESS)
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
