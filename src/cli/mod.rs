//! Command-line parsing and dispatch. Each subcommand lives in its own module and returns a
//! `miette::Report` on failure; `main` prints it and exits with status 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod build;
mod cargo_args;
mod check;
mod config;
mod diff;
mod disk;
mod link;
mod new;
mod pkg;
mod registry;
mod report;
mod run;
mod schema;
mod symbolize;
mod why;

/// Link an application and library-OS components into a minimal bootable unikernel image.
#[derive(Debug, Parser)]
#[command(name = "cargo-uniklink", bin_name = "cargo uniklink", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Build(build::BuildArgs),
    Check(check::CheckArgs),
    Config(config::ConfigArgs),
    Diff(diff::DiffArgs),
    Disk(disk::DiskArgs),
    Init(new::InitArgs),
    Link(link::LinkArgs),
    New(new::NewArgs),
    Pkg(pkg::PkgArgs),
    Pull(registry::PullArgs),
    Push(registry::PushArgs),
    Report(report::ReportArgs),
    Run(run::RunArgs),
    Schema(schema::SchemaArgs),
    Symbolize(symbolize::SymbolizeArgs),
    Why(why::WhyArgs),
}

impl Cli {
    /// The verbosity and colour the command asked for; commands without those flags log
    /// warnings only.
    pub fn output(&self) -> cargo_args::OutputArgs {
        match &self.command {
            Command::Build(args) => args.output.clone(),
            Command::Run(args) => args.output.clone(),
            Command::Pkg(args) => args.output_args.clone(),
            _ => cargo_args::OutputArgs::default(),
        }
    }

    pub fn run(self) -> miette::Result<ExitCode> {
        match self.command {
            Command::Build(args) => build::run(args),
            Command::Check(args) => check::run(args),
            Command::Config(args) => config::run(args),
            Command::Diff(args) => diff::run(args),
            Command::Disk(args) => disk::run(args),
            Command::Init(args) => new::run_init(args),
            Command::Link(args) => link::run(args),
            Command::New(args) => new::run_new(args),
            Command::Report(args) => report::run(args),
            Command::Pkg(args) => pkg::run(args),
            Command::Pull(args) => registry::pull(args),
            Command::Push(args) => registry::push(args),
            Command::Run(args) => run::run(args),
            Command::Schema(args) => schema::run(args),
            Command::Symbolize(args) => symbolize::run(args),
            Command::Why(args) => why::run(args),
        }
    }
}
