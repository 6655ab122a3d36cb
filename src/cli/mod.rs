//! Command-line parsing and dispatch. Each subcommand lives in its own module and returns a
//! `miette::Report` on failure; `main` prints it and exits with status 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod link;
mod run;

/// Link an application and library-OS components into a minimal bootable unikernel image.
#[derive(Debug, Parser)]
#[command(name = "cargo-uniklink", bin_name = "cargo uniklink", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Link(link::LinkArgs),
    Run(run::RunArgs),
}

impl Cli {
    pub fn run(self) -> miette::Result<ExitCode> {
        match self.command {
            Command::Link(args) => link::run(args),
            Command::Run(args) => run::run(args),
        }
    }
}
