//! `cargo uniklink why`: the chain of references that keeps a symbol in the image, read from
//! the build report (each kept section records the reference that reached it first, on a
//! shortest path from a root), so nothing is linked again.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::miette;
use uniklink::report::render;

use super::report::Source;

/// Show why a symbol is in the image: the references leading to it from a root.
#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// The symbol: as in the symbol table, demangled (`hello::main`), or the last parts of a
    /// demangled path (`main`).
    symbol: String,
    /// Read this build report instead of the manifest's.
    #[arg(long, value_name = "REPORT.json", conflicts_with = "manifest")]
    report: Option<PathBuf>,
    #[command(flatten)]
    source: Source,
}

pub fn run(args: WhyArgs) -> miette::Result<ExitCode> {
    let saved = args.source.load(args.report.as_deref())?;
    let sizes = &saved.sizes;
    let rows = sizes.find_symbol(&args.symbol);
    if rows.is_empty() {
        let dropped: Vec<String> = saved
            .dropped_sections
            .iter()
            .filter(|s| {
                s.section
                    .rsplit_once('.')
                    .is_some_and(|(_, name)| name == args.symbol)
            })
            .map(|s| format!("{}:({})", s.object, s.section))
            .collect();
        return Err(if dropped.is_empty() {
            miette!(
                "`{}` is not in {}: no kept section defines it",
                args.symbol,
                saved.image_name()
            )
        } else {
            miette!(
                "`{}` is not in {}: nothing kept references {}, so it was garbage-collected",
                args.symbol,
                saved.image_name(),
                dropped.join(", ")
            )
        });
    }
    for (i, row) in rows.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", render::why(sizes, &args.symbol, &sizes.why(row)));
    }
    Ok(ExitCode::SUCCESS)
}
