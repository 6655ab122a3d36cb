//! `cargo uniklink diff`: how the sizes changed between two build reports.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::{IntoDiagnostic, miette};
use uniklink::report::render::{self, Format};
use uniklink::report::{Diff, SavedReport};

use super::report::FormatArg;

/// Compare two build reports: total, owners and sections that grew, shrank, came or went.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[arg(value_name = "OLD.json")]
    old: PathBuf,
    #[arg(value_name = "NEW.json")]
    new: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// Show the N largest section changes and sum the rest.
    #[arg(long, value_name = "N", default_value = "20")]
    top: usize,
}

pub fn run(args: DiffArgs) -> miette::Result<ExitCode> {
    let old = SavedReport::load(&args.old).map_err(|e| miette!("{e}"))?;
    let new = SavedReport::load(&args.new).map_err(|e| miette!("{e}"))?;
    let diff = Diff::new(&old.sizes, &new.sizes);
    let (old_name, new_name) = (
        args.old.display().to_string(),
        args.new.display().to_string(),
    );
    match args.format {
        FormatArg::Json => println!("{}", serde_json::to_string_pretty(&diff).into_diagnostic()?),
        FormatArg::Table => print!(
            "{}",
            render::diff(&diff, &old_name, &new_name, Some(args.top), Format::Table)
        ),
        FormatArg::Markdown => print!(
            "{}",
            render::diff(
                &diff,
                &old_name,
                &new_name,
                Some(args.top),
                Format::Markdown
            )
        ),
    }
    Ok(ExitCode::SUCCESS)
}
