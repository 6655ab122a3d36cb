//! `cargo-uniklink`: the command-line face of the `uniklink` library. Only this binary prints
//! errors; everything below it returns them.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod progress;

fn main() -> ExitCode {
    restore_sigpipe();
    // Cargo runs an external subcommand as `cargo-uniklink uniklink ARGS...`; strip the
    // repeated name so `cargo uniklink check` and `cargo-uniklink check` parse alike.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "uniklink") {
        args.remove(1);
    }
    // Exit status 1 for a bad command line, as cargo's own commands do; 0 for --help.
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let output = cli.output();
    progress::install(output.verbose, output.quiet, output.color);
    match cli.run() {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }
    }
}

/// Dies of SIGPIPE, quietly, when what reads the output goes away (`report | head`), as `cat`
/// and `grep` do; Rust's runtime ignores the signal, which turns every later `println!` into a
/// panic. `run` ignores it again: it must outlive a closed stdout to stop QEMU.
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
