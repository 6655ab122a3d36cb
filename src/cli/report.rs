//! `cargo uniklink report`: where the image's bytes go, from the build report alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, miette};
use serde::Serialize;
use uniklink::report::render::{self, Format};
use uniklink::report::{By, SavedReport};
use uniklink_config::Arch;

use super::build::parse_arch;

/// Show shallow and retained sizes of an image by owner, crate, section or symbol.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A build report (`<target-dir>/uniklink/<name>-<arch>.json`).
    #[arg(value_name = "REPORT.json", conflicts_with = "manifest")]
    report: Option<PathBuf>,
    #[command(flatten)]
    source: Source,
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// Rows per owner (`component`: the app, each component, core, alloc, C archives...),
    /// per Rust crate or C archive (`crate`: smoltcp, talc, core...), per kept input section,
    /// or per symbol.
    #[arg(long, value_enum, default_value = "component")]
    by: ByArg,
    /// Show the N largest rows and sum the rest into one (default: every owner or crate, or
    /// the 30 largest sections or symbols).
    #[arg(long, value_name = "N")]
    top: Option<usize>,
}

/// Which build report to read when none is named.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// The manifest, app and target directory whose report `cargo uniklink build` wrote.
    #[command(flatten)]
    manifest: super::cargo_args::ManifestArgs,
    /// With -m: which of the manifest's architectures (default: the first listed).
    #[arg(long, value_parser = parse_arch)]
    arch: Option<Arch>,
}

impl Source {
    /// `report` if given, else the report of the manifest (the nearest `uniklink.yaml` by default).
    pub fn locate(&self, report: Option<&Path>) -> miette::Result<PathBuf> {
        if let Some(report) = report {
            return Ok(report.to_path_buf());
        }
        let manifest = self.manifest.load()?;
        let target =
            uniklink::build::select_target(&manifest, self.arch).map_err(|e| miette!("{e}"))?;
        let paths = self.manifest.image_paths(&manifest, target.arch, None)?;
        if !paths.report.is_file() {
            return Err(miette!(
                help = format!(
                    "build it first: cargo uniklink build -m {}",
                    manifest.path.display()
                ),
                "no build report for {} at {}",
                target.arch,
                paths.report.display()
            ));
        }
        Ok(paths.report)
    }

    pub fn load(&self, report: Option<&Path>) -> miette::Result<SavedReport> {
        let path = self.locate(report)?;
        SavedReport::load(&path).map_err(|e| miette!("{e}"))
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ByArg {
    Component,
    Crate,
    Section,
    Symbol,
}

/// `--format json`: the rows as shown, the remainder and the components.
#[derive(Serialize)]
struct JsonReport<'a> {
    image: &'a Path,
    image_size: u64,
    stripped_size: Option<u64>,
    by: &'static str,
    #[serde(flatten)]
    table: uniklink::report::Table,
    remainder: &'a [uniklink_analyzer::report::RemainderRow],
    components: &'a [uniklink_analyzer::report::ComponentRow],
    tls_bss: u64,
}

pub fn run(args: ReportArgs) -> miette::Result<ExitCode> {
    let saved = args.source.load(args.report.as_deref())?;
    let (by, by_name) = match args.by {
        ByArg::Component => (By::Component, "component"),
        ByArg::Crate => (By::Crate, "crate"),
        ByArg::Section => (By::Section, "section"),
        ByArg::Symbol => (By::Symbol, "symbol"),
    };
    let sizes = &saved.sizes;
    if by == By::Crate && !sizes.has_crates() {
        return Err(miette!(
            help = "rebuild the image: build reports record crates since `report --by crate`",
            "{} was written before build reports recorded crates",
            saved.image_name()
        ));
    }
    let top = match by {
        By::Component | By::Crate => args.top,
        By::Section | By::Symbol => Some(args.top.unwrap_or(30)),
    };
    let table = sizes.table(by, top);
    let stripped = saved
        .stripped_size
        .map(|size| format!(", {} stripped", render::bytes(size)))
        .unwrap_or_default();
    let title = format!(
        "{}: {} file{stripped}, {} loaded",
        saved.image_name(),
        render::bytes(saved.image_size),
        render::bytes(sizes.loadable_size)
    );
    match args.format {
        FormatArg::Json => {
            let json = JsonReport {
                image: &saved.image,
                image_size: saved.image_size,
                stripped_size: saved.stripped_size,
                by: by_name,
                table,
                remainder: &sizes.remainder,
                components: &sizes.components,
                tls_bss: sizes.tls_bss,
            };
            println!("{}", serde_json::to_string_pretty(&json).into_diagnostic()?);
        }
        FormatArg::Table => print!(
            "{}",
            render::report(sizes, &table, by, &title, Format::Table)
        ),
        FormatArg::Markdown => print!(
            "{}",
            render::report(sizes, &table, by, &title, Format::Markdown)
        ),
    }
    Ok(ExitCode::SUCCESS)
}
