//! `cargo uniklink symbolize`: a guest's backtrace addresses as function names, for a saved
//! console log or addresses copied out of one.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use miette::{IntoDiagnostic, miette};
use uniklink::symbolize::{Frame, Symbolizer, parse_backtrace};

/// Name the functions of a guest backtrace (`uniklink:backtrace` lines) from the image's
/// symbols.
#[derive(Debug, clap::Args)]
pub struct SymbolizeArgs {
    /// The image the guest ran.
    image: PathBuf,
    /// Addresses as the backtrace prints them (`0x1015b4`, or `pc=0x105476` for the
    /// interrupted instruction). Without any, every `uniklink:backtrace` line of the console
    /// log on stdin is symbolized.
    #[arg(value_name = "ADDR", value_parser = parse_frame)]
    addresses: Vec<Frame>,
}

fn parse_frame(s: &str) -> Result<Frame, String> {
    parse_backtrace(&format!("uniklink:backtrace {s}"))
        .filter(|frames| frames.len() == 1)
        .map(|frames| frames[0])
        .ok_or_else(|| format!("`{s}` is not an address such as 0x1015b4 or pc=0x105476"))
}

pub fn run(args: SymbolizeArgs) -> miette::Result<ExitCode> {
    let symbolizer = Symbolizer::open(&args.image).map_err(|e| miette!("{e}"))?;
    if !args.addresses.is_empty() {
        for line in symbolizer.render(&args.addresses) {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut found = false;
    for line in std::io::stdin().lock().lines() {
        let line = line.into_diagnostic()?;
        if let Some(frames) = parse_backtrace(&line) {
            if found {
                println!();
            }
            found = true;
            for line in symbolizer.render(&frames) {
                println!("{line}");
            }
        }
    }
    if !found {
        return Err(miette!(
            "no `uniklink:backtrace` line on stdin; give the console log, or addresses after \
             the image"
        ));
    }
    Ok(ExitCode::SUCCESS)
}
