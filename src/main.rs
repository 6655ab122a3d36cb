//! `cargo-uniklink`: the command-line face of the `uniklink` library. Only this binary prints
//! errors; everything below it returns them.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Cargo runs an external subcommand as `cargo-uniklink uniklink ARGS...`; strip the
    // repeated name so `cargo uniklink check` and `cargo-uniklink check` parse alike.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "uniklink") {
        args.remove(1);
    }
    let cli = cli::Cli::parse_from(args);
    match cli.run() {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }
    }
}
