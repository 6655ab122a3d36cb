//! `cargo xtask bench link`: the largest real C input (SQLite with its driver, musl's libc and
//! libgcc), a real Rust program (ripgrep, with rustc's own link line), or a synthetic object
//! with very many functions, linked by each linker with section garbage collection, timed over several interleaved runs so that a slow moment of the
//! machine hurts every linker alike.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xtask::Error;
use xtask::real::{self, Program};
use xtask::rust_program;
use xtask::toolchain::{self, Toolchain};

use crate::stats::median;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Input {
    /// SQLite's amalgamation with fixtures/real/sqlite_driver.c.
    Sqlite,
    /// One generated object with `--functions` functions, each in its own section with its
    /// own FDE in .eh_frame; half of them are reachable from main, as a binary tree of calls.
    /// Shows how a linker scales with sections, symbols and FDEs.
    Functions,
    /// ripgrep built by cargo for x86_64-unknown-linux-musl (static, non-PIE), linked with
    /// rustc's captured link line: its rlibs, the Rust standard library, musl and libunwind.
    Ripgrep,
}

/// What the linkers link: C objects with musl's start files and libraries, or rustc's line.
#[derive(Clone)]
enum Inputs {
    C(Vec<PathBuf>),
    Rust(rust_program::LinkLine),
}

#[derive(Debug, clap::Args)]
pub struct Options {
    #[arg(long, value_enum, default_value_t = Input::Sqlite)]
    input: Input,
    /// Function count for `--input functions`.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(2..))]
    functions: u32,
    /// Timed runs per linker, after one untimed warm-up run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,
    /// The uniklink binary to measure; by default a release build of this workspace's.
    #[arg(long)]
    uniklink: Option<PathBuf>,
}

struct Linker {
    name: &'static str,
    /// The command for one link into the given output.
    command: Box<dyn Fn(&Path) -> Command>,
    /// Arguments that keep the whole link in the process started, for the memory run: mold
    /// forks by default and returns once the output is ready, leaving its child to finish.
    one_process: &'static [&'static str],
}

enum Outcome {
    Missing(String),
    Failed(String),
    Linked {
        times: Vec<Duration>,
        size: u64,
        stdout: Vec<u8>,
        /// Peak resident memory of one more run, in bytes, when it could be measured.
        peak_rss: Option<u64>,
    },
}

pub fn run(options: &Options) -> Result<(), Error> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|source| Error::Metadata {
            manifest: Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"),
            source,
        })?;
    let target_dir = metadata.target_directory.as_std_path().to_path_buf();
    let work = target_dir.join("xtask/bench-link");
    fs::create_dir_all(&work).map_err(Error::io(&work))?;

    let toolchain = Toolchain::discover()?;
    let (inputs, title, run_args) = match options.input {
        Input::Sqlite => {
            eprintln!(
                "building the SQLite driver (cached under {})",
                target_dir.join("xtask/real").display()
            );
            let built = real::build(Program::Sqlite, &toolchain, &target_dir.join("xtask/real"))?;
            (
                Inputs::C(built.objects()),
                "SQLite driver + musl libc".to_string(),
                Vec::new(),
            )
        }
        Input::Functions => {
            eprintln!("generating and assembling {} functions", options.functions);
            let object = functions_object(options.functions, &work)?;
            (
                Inputs::C(vec![object]),
                format!("{} functions with FDEs + musl libc", options.functions),
                Vec::new(),
            )
        }
        Input::Ripgrep => {
            let cache = target_dir.join("xtask/rust-program");
            eprintln!(
                "building ripgrep for {} (cached under {}; the first build takes minutes)",
                rust_program::TARGET,
                cache.display()
            );
            (
                Inputs::Rust(rust_program::build(&toolchain, &cache)?),
                format!("ripgrep ({}), rustc's link line", rust_program::TARGET),
                rust_program::bench_args(),
            )
        }
    };

    let uniklink = match &options.uniklink {
        Some(path) => path.clone(),
        None => {
            eprintln!("building cargo-uniklink (release)");
            toolchain::run(
                Command::new(env!("CARGO"))
                    .current_dir(&metadata.workspace_root)
                    .args([
                        "build",
                        "--release",
                        "--quiet",
                        "--package",
                        "cargo-uniklink",
                        "--bin",
                        "cargo-uniklink",
                    ]),
            )?;
            target_dir.join("release/cargo-uniklink")
        }
    };

    let gc_linker = |name: &'static str, program: &'static str, one_process| {
        let toolchain = toolchain.clone();
        let inputs = inputs.clone();
        Linker {
            name,
            command: Box::new(move |out| match &inputs {
                Inputs::C(objects) => toolchain.gnu_ld(program, objects, out, &["--gc-sections"]),
                // rustc's line already asks for --gc-sections.
                Inputs::Rust(line) => line.command(program, out),
            }),
            one_process,
        }
    };
    let linkers = [
        gc_linker("GNU ld", "ld", &[]),
        gc_linker("ld.lld", "ld.lld", &[]),
        gc_linker("mold", "mold", &["--no-fork"]),
        {
            let toolchain = toolchain.clone();
            let inputs = inputs.clone();
            Linker {
                name: "uniklink",
                command: Box::new(move |out| {
                    let mut cmd = Command::new(&uniklink);
                    cmd.args(["link", "--entry", "_start", "-o"]).arg(out);
                    match &inputs {
                        Inputs::C(objects) => cmd
                            .args(toolchain.start_files())
                            .args(objects)
                            .args(toolchain.libraries())
                            .args(toolchain.end_files()),
                        Inputs::Rust(line) => cmd.args(line.uniklink_args()),
                    };
                    cmd
                }),
                one_process: &[],
            }
        },
    ];

    let outputs: Vec<PathBuf> = linkers
        .iter()
        .map(|linker| work.join(linker.name.replace([' ', '.'], "_")))
        .collect();
    let mut outcomes: Vec<Outcome> = linkers
        .iter()
        .zip(&outputs)
        .map(|(linker, out)| warm_up(linker, out, &run_args))
        .collect();

    eprintln!("timing {} runs per linker", options.runs);
    for _ in 0..options.runs {
        for ((linker, out), outcome) in linkers.iter().zip(&outputs).zip(&mut outcomes) {
            if let Outcome::Linked { times, .. } = outcome {
                let started = Instant::now();
                let status = (linker.command)(out).output();
                let elapsed = started.elapsed();
                match status {
                    Ok(output) if output.status.success() => times.push(elapsed),
                    Ok(output) => {
                        *outcome = Outcome::Failed(first_line(&output.stderr));
                    }
                    Err(error) => *outcome = Outcome::Failed(error.to_string()),
                }
            }
        }
    }

    eprintln!("measuring each linker's peak memory in one more run");
    for ((linker, out), outcome) in linkers.iter().zip(&outputs).zip(&mut outcomes) {
        if let Outcome::Linked { peak_rss, .. } = outcome {
            let mut cmd = (linker.command)(out);
            cmd.args(linker.one_process);
            *peak_rss = peak_rss_of(&mut cmd);
        }
    }

    print_table(&title, &linkers, &outcomes, options.runs);
    Ok(())
}

/// Runs `cmd` to its end and returns its peak resident memory in bytes (the kernel's
/// `ru_maxrss` of the process, not of children it leaves behind), or `None` when it could not
/// run or failed.
fn peak_rss_of(cmd: &mut Command) -> Option<u64> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = libc::pid_t::try_from(child.id()).ok()?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (`child` is dropped without a wait),
    // and both out-pointers are valid for writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let succeeded = reaped == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // ru_maxrss is in KiB on Linux.
    succeeded.then(|| u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024)
}

/// Links once untimed, then runs the executable: a linker whose output does not behave like
/// GNU ld's is reported, not ranked as if it had done the same job.
fn warm_up(linker: &Linker, out: &Path, run_args: &[OsString]) -> Outcome {
    let mut cmd = (linker.command)(out);
    let output = match cmd.output() {
        Ok(output) => output,
        Err(error) => return Outcome::Missing(format!("{}: {error}", toolchain::describe(&cmd))),
    };
    if !output.status.success() {
        return Outcome::Failed(first_line(&output.stderr));
    }
    let size = fs::metadata(out).map_or(0, |m| m.len());
    let stdout = match Command::new(out).args(run_args).output() {
        Ok(ran) if ran.status.success() => ran.stdout,
        Ok(ran) => return Outcome::Failed(format!("its executable exited with {}", ran.status)),
        Err(error) => return Outcome::Failed(format!("its executable did not start: {error}")),
    };
    Outcome::Linked {
        times: Vec::new(),
        size,
        stdout,
        peak_rss: None,
    }
}

/// Writes and assembles the `--input functions` object. Function `i` of the first half calls
/// `2i + 1` and `2i + 2` while they are in that half, so main's call to f0 reaches exactly the
/// first half, by a tree only log2(n) deep; the second half is garbage.
fn functions_object(count: u32, work: &Path) -> Result<PathBuf, Error> {
    let reachable = count / 2;
    let mut asm = String::new();
    for i in 0..count {
        let (left, right) = (2 * i + 1, 2 * i + 2);
        let body = if i < reachable && right < reachable {
            format!("  call f{left}\n  jmp f{right}\n")
        } else {
            format!("  lea {}(%rdi), %eax\n  ret\n", i % 7)
        };
        write!(
            asm,
            ".section .text.f{i},\"ax\",@progbits\n.globl f{i}\n.type f{i},@function\nf{i}:\n\
             .cfi_startproc\n{body}.cfi_endproc\n.size f{i}, .-f{i}\n"
        )
        .expect("writing to a String");
    }
    asm.push_str(
        ".section .text.main,\"ax\",@progbits\n.globl main\n.type main,@function\nmain:\n\
         .cfi_startproc\n  sub $8, %rsp\n  .cfi_def_cfa_offset 16\n  xor %edi, %edi\n\
         call f0\n  lea message(%rip), %rdi\n  call puts\n  xor %eax, %eax\n  add $8, %rsp\n\
         .cfi_def_cfa_offset 8\n  ret\n.cfi_endproc\n\
         .section .rodata.message,\"a\",@progbits\nmessage:\n  .asciz \"all reachable functions ran\"\n\
         .section .note.GNU-stack,\"\",@progbits\n",
    );
    let source = work.join(format!("functions-{count}.s"));
    let object = source.with_extension("o");
    fs::write(&source, asm).map_err(Error::io(&source))?;
    toolchain::run(Command::new("as").arg(&source).arg("-o").arg(&object))?;
    Ok(object)
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

fn print_table(title: &str, linkers: &[Linker], outcomes: &[Outcome], runs: u16) {
    let reference_stdout = match &outcomes[0] {
        Outcome::Linked { stdout, .. } => Some(stdout),
        _ => None,
    };
    let uniklink = outcomes
        .iter()
        .zip(linkers)
        .find(|(_, linker)| linker.name == "uniklink")
        .map(|(outcome, _)| outcome);
    let uniklink_median = uniklink.and_then(|outcome| match outcome {
        Outcome::Linked { times, .. } if !times.is_empty() => Some(median(times)),
        _ => None,
    });
    let uniklink_rss = uniklink.and_then(|outcome| match outcome {
        Outcome::Linked { peak_rss, .. } => *peak_rss,
        _ => None,
    });

    println!("{title}, --gc-sections, median of {runs} runs");
    println!();
    println!(
        "| linker | median ms | min ms | max ms | time / uniklink | peak RSS MB | RSS / uniklink | output bytes | output as GNU ld's |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (linker, outcome) in linkers.iter().zip(outcomes) {
        match outcome {
            Outcome::Missing(why) => {
                println!("| {} | not run: {why} | | | | | | | |", linker.name)
            }
            Outcome::Failed(why) => println!("| {} | failed: {why} | | | | | | | |", linker.name),
            Outcome::Linked {
                times,
                size,
                stdout,
                peak_rss,
            } => {
                let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
                let med = median(times);
                let ratio = uniklink_median.map_or("n/a".to_string(), |u| {
                    format!("{:.2}", med.as_secs_f64() / u.as_secs_f64())
                });
                let same = match reference_stdout {
                    Some(reference) if reference == stdout => "same",
                    Some(_) => "DIFFERS",
                    None => "n/a",
                };
                let rss = peak_rss.map_or("n/a".to_string(), |b| format!("{:.1}", b as f64 / 1e6));
                let rss_ratio = match (peak_rss, uniklink_rss) {
                    (Some(b), Some(u)) if u > 0 => format!("{:.2}", *b as f64 / u as f64),
                    _ => "n/a".to_string(),
                };
                println!(
                    "| {} | {} | {} | {} | {ratio} | {rss} | {rss_ratio} | {size} | {same} |",
                    linker.name,
                    ms(med),
                    ms(*times.iter().min().expect("every run timed")),
                    ms(*times.iter().max().expect("every run timed")),
                );
            }
        }
    }
}
