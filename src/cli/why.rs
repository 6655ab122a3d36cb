//! `cargo uniklink why`: the chain of references that keeps a symbol in the image, read from
//! the build report (each kept section records the reference that reached it first, on a
//! shortest path from a root), so nothing is linked again.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::miette;
use uniklink::report::{Query, render};

use super::report::Source;

/// Show why a symbol, a section or a crate is in the image: the references leading to it from
/// a root.
#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// What `report` shows: a symbol as in the symbol table or demangled (`hello::main`), the
    /// last parts of its path (`main`, `float_to_decimal_common_exact`, with or without
    /// `::<f64>`), a section as OBJECT:(SECTION), or a crate (`talc`) or owner
    /// (`component net`) for everything of it.
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
    let query = Query::new(&args.symbol);
    let found = sizes.find(&query);
    match found.rows()[..] {
        [] => {
            let dropped: Vec<String> = saved
                .dropped_sections
                .iter()
                .filter(|s| query.names_section(&s.section))
                .map(|s| format!("{}:({})", s.object, s.section))
                .collect();
            Err(if dropped.is_empty() {
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
            })
        }
        [row] => {
            print!("{}", render::why(sizes, &args.symbol, &sizes.why(row)));
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            print!("{}", render::found(sizes, &args.symbol, &found));
            Ok(ExitCode::SUCCESS)
        }
    }
}
