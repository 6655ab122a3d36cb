//! `cargo uniklink check`: validate manifests. Every diagnostic goes to stderr; the exit status
//! says whether all files were valid.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::{Diagnostic, GraphicalReportHandler};
use uniklink_config::Manifest;

/// Validate manifests, and that the app they name exists (a cargo package, or prebuilt objects),
/// as `build` needs it: report every problem with file:line:col; exit 1 if any file is invalid.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest to check (repeatable). Without any file, ./uniklink.yaml is checked.
    #[arg(short = 'm', long = "manifest", value_name = "FILE")]
    manifests: Vec<PathBuf>,
    /// More manifests to check.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print nothing for valid manifests.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: CheckArgs) -> miette::Result<ExitCode> {
    let mut files: Vec<PathBuf> = args.manifests.into_iter().chain(args.files).collect();
    if files.is_empty() {
        files.push(PathBuf::from("uniklink.yaml"));
    }
    let mut invalid = 0usize;
    for file in &files {
        match Manifest::load_and_check_app(file) {
            Ok(_) if args.quiet => {}
            Ok(_) => eprintln!("{}: ok", file.display()),
            Err(error) => {
                invalid += 1;
                eprint!("{}", render(&error));
            }
        }
    }
    if invalid == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{invalid} of {} manifests invalid", files.len());
        Ok(ExitCode::from(1))
    }
}

/// Renders without wrapping: a wrapped message could split `file:line:col` or a suggestion
/// across lines, and CI logs are grepped for both.
fn render(error: &dyn Diagnostic) -> String {
    let mut out = String::new();
    let handler = GraphicalReportHandler::new().with_wrap_lines(false);
    if handler.render_report(&mut out, error).is_err() {
        out = format!("{error}\n");
    }
    out
}
