//! Project chores that are not part of the tool: `cargo xtask bench ...`.

mod bench_link;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure uniklink against other tools.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Link the SQLite driver with GNU ld, ld.lld, mold and uniklink (all garbage-collecting
    /// sections) and print median wall-clock times and output sizes.
    Link(bench_link::Options),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Bench(Bench::Link(options)) => bench_link::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
