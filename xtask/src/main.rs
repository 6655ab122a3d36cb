//! Project chores that are not part of the tool: `cargo xtask bench ...`, `cargo xtask fuzz ...`.

mod bench_boot;
mod bench_fs;
mod bench_http;
mod bench_link;
mod bench_size;
mod bench_weave;
mod fuzz;
mod linux_guest;
mod stats;

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
    /// Run a cargo-fuzz target (`fuzz/`, nightly) for `--time` seconds, or `--all` of them in
    /// turn, from a scratch copy of the committed corpus; fails on any crash.
    Fuzz(fuzz::Options),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Link the SQLite driver (or `--input` ripgrep, or generated functions) with GNU ld,
    /// ld.lld, mold and uniklink (all garbage-collecting sections) and print median wall-clock
    /// times and output sizes.
    Link(bench_link::Options),
    /// Build and boot hello (uniklink and GNU ld images, and an empty guest as the floor) on
    /// QEMU microvm with TCG: image sizes and median boot times.
    Boot(bench_boot::Options),
    /// Boot the httpd example, time boot → listening, and load it from the host over
    /// loopback: requests/s, p50/p99 latency, image size.
    Http(bench_http::Options),
    /// The storage stack in the guest, per profile: sequential and random reads, writes,
    /// synced appends and mount time against the raw disk; kvstore and hello image sizes.
    Fs(bench_fs::Options),
    /// For every example app, the woven image beside the same objects linked conventionally
    /// (uniklink without weaving, GNU ld): file, stripped and loadable sizes.
    Size(bench_size::Options),
    /// Build each example app woven and with `--no-weave`, alternating, and print the
    /// median time of the link step (and of the inner cargo) of each: what weaving costs.
    Weave(bench_weave::Options),
}

fn main() -> ExitCode {
    let result: Result<(), Box<dyn std::error::Error>> = match Cli::parse().command {
        Command::Bench(Bench::Link(options)) => bench_link::run(&options).map_err(Into::into),
        Command::Bench(Bench::Boot(options)) => bench_boot::run(&options).map_err(Into::into),
        Command::Bench(Bench::Http(options)) => bench_http::run(&options).map_err(Into::into),
        Command::Bench(Bench::Fs(options)) => bench_fs::run(&options).map_err(Into::into),
        Command::Bench(Bench::Size(options)) => bench_size::run(&options).map_err(Into::into),
        Command::Bench(Bench::Weave(options)) => bench_weave::run(&options).map_err(Into::into),
        Command::Fuzz(options) => fuzz::run(&options).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
