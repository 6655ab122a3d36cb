//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` (nightly) for a bounded time
//! each, from a scratch copy of the committed corpus, and fails on the first crash.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The toolchain cargo-fuzz needs (sanitizers and `-Z` flags): nightly, used for nothing else.
const TOOLCHAIN: &str = "+nightly";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The target to run (a file of `fuzz/fuzz_targets/`, without `.rs`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    target: Option<String>,
    /// Run every target in turn.
    #[arg(long)]
    all: bool,
    /// Seconds each target runs.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Extra libFuzzer options, after `--` (`-max_len=65536`).
    #[arg(last = true)]
    libfuzzer: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "cargo-fuzz is not installed for the nightly toolchain: `cargo +nightly install cargo-fuzz --locked`"
    )]
    NoCargoFuzz,
    #[error("no fuzz target `{0}`; the targets are: {1}")]
    UnknownTarget(String, String),
    #[error("building the fuzz targets failed")]
    Build,
    #[error("{0}")]
    Failed(String),
}

/// What one run reported.
struct Outcome {
    target: String,
    runs: Option<u64>,
    coverage: Option<u64>,
    features: Option<u64>,
    seconds: u64,
    /// The crash (or leak, timeout, out-of-memory) input libFuzzer wrote.
    failure: Option<String>,
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .join("fuzz")
}

/// The targets, sorted: the files of `fuzz/fuzz_targets/`.
pub fn targets() -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(fuzz_dir().join("fuzz_targets"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem()
        {
            names.push(stem.to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `cargo +nightly fuzz ...` in the repository root, without what the outer `cargo run` set
/// for the stable toolchain.
fn cargo_fuzz() -> Command {
    let mut command = Command::new("cargo");
    command
        .arg(TOOLCHAIN)
        .arg("fuzz")
        .current_dir(fuzz_dir().parent().expect("the repository"));
    for variable in ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTDOC", "CARGO", "RUSTFLAGS"] {
        command.env_remove(variable);
    }
    // cargo-fuzz instruments only the Rust code. The C the targets run (littlefs, behind the
    // `volume` target) gets the same coverage counters and AddressSanitizer from clang:
    // without them libFuzzer could not tell which of littlefs's paths an image reaches, and a
    // read past a buffer in littlefs would go unnoticed.
    command
        .env("CC", "clang")
        .env("CFLAGS", "-fsanitize=address -fsanitize=fuzzer-no-link");
    command
}

pub fn run(options: &Options) -> Result<(), Error> {
    let start = Instant::now();
    let all = targets()?;
    let chosen = match &options.target {
        Some(target) if !all.contains(target) => {
            return Err(Error::UnknownTarget(target.clone(), all.join(", ")));
        }
        Some(target) => vec![target.clone()],
        None => all,
    };
    let installed = cargo_fuzz()
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return Err(Error::NoCargoFuzz);
    }

    let build = Instant::now();
    let mut command = cargo_fuzz();
    command.arg("build");
    if let [one] = &chosen[..] {
        command.arg(one);
    }
    if !command.status()?.success() {
        return Err(Error::Build);
    }
    eprintln!(
        "fuzz: built {} target(s) in {} s",
        chosen.len(),
        build.elapsed().as_secs()
    );

    let mut outcomes = Vec::new();
    for target in &chosen {
        let outcome = run_one(target, options)?;
        let failed = outcome.failure.is_some();
        outcomes.push(outcome);
        if failed {
            break;
        }
    }
    let mut table = String::from(
        "| target | seconds | executions | coverage (cov) | features (ft) | result |\n|---|--:|--:|--:|--:|---|\n",
    );
    let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    for o in &outcomes {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            o.target,
            o.seconds,
            show(o.runs),
            show(o.coverage),
            show(o.features),
            o.failure
                .as_deref()
                .map_or_else(|| "ok".to_owned(), |f| format!("FAILED: {f}"))
        );
    }
    print!("{table}");
    eprintln!(
        "fuzz: {} target(s) took {} s in all",
        outcomes.len(),
        start.elapsed().as_secs()
    );
    match outcomes
        .iter()
        .find_map(|o| Some((&o.target, o.failure.as_ref()?)))
    {
        Some((target, artifact)) => Err(Error::Failed(format!(
            "fuzz target `{target}` failed on {artifact}; reproduce with \
             `cargo +nightly fuzz run {target} {artifact}`"
        ))),
        None => Ok(()),
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    if from.is_dir() {
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name()))?;
            }
        }
    }
    Ok(())
}

/// The number after `key` in a libFuzzer status line (`cov: 1234`).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The instrumented binary of `target`: `cargo fuzz build` puts it under the host's triple.
fn binary(target: &str) -> Result<PathBuf, Error> {
    let output = Command::new("rustc").args([TOOLCHAIN, "-vV"]).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let host = text
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .ok_or_else(|| Error::Failed("`rustc -vV` names no host".to_owned()))?;
    Ok(fuzz_dir()
        .join("target")
        .join(host)
        .join("release")
        .join(target))
}

fn run_one(target: &str, options: &Options) -> Result<Outcome, Error> {
    let dir = fuzz_dir();
    // The run adds what it finds to its corpus: a scratch copy, so the committed one stays
    // the curated seeds.
    let scratch = dir.join("target/xtask-corpus").join(target);
    copy_dir(&dir.join("corpus").join(target), &scratch)?;
    let logs = dir.join("target/xtask-logs");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let mut log = std::fs::File::create(&log_path)?;
    eprintln!(
        "fuzz: {target} for {} s (log: {})",
        options.time,
        log_path.display()
    );

    let artifacts = dir.join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let start = Instant::now();
    // The binary `cargo fuzz build` made, run directly: `cargo fuzz run` would first check
    // (and in a checkout others edit, redo) the build, inside the target's time.
    let mut child = Command::new(binary(target)?)
        .env("ASAN_OPTIONS", "detect_odr_violation=0")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-max_total_time={}", options.time))
        // A single input that takes this long is a hang; one that needs this much memory is
        // an amplification.
        .arg("-timeout=30")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .args(&options.libfuzzer)
        .arg(&scratch)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // libFuzzer writes its status and findings to stderr; stdout holds what the target prints.
    let stdout = child.stdout.take().expect("piped");
    let stdout_thread = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut outcome = Outcome {
        target: target.to_owned(),
        runs: None,
        coverage: None,
        features: None,
        seconds: 0,
        failure: None,
    };
    let mut tail: Vec<String> = Vec::new();
    let stderr = child.stderr.take().expect("piped");
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        writeln!(log, "{line}")?;
        if let Some(n) = number_after(&line, "cov: ") {
            outcome.coverage = Some(n);
        }
        if let Some(n) = number_after(&line, "ft: ") {
            outcome.features = Some(n);
        }
        if let Some(n) = number_after(&line, "stat::number_of_executed_units: ") {
            outcome.runs = Some(n);
        } else if line.starts_with('#')
            && let Some(n) = number_after(&line, "#")
        {
            outcome.runs = Some(n);
        }
        if let Some(at) = line.find("Test unit written to ") {
            outcome.failure = Some(line[at + "Test unit written to ".len()..].trim().to_owned());
        }
        tail.push(line);
        if tail.len() > 80 {
            tail.remove(0);
        }
    }
    let status = child.wait()?;
    let stdout = stdout_thread.join().unwrap_or_default();
    log.write_all(stdout.as_bytes())?;
    outcome.seconds = start.elapsed().as_secs();
    if !status.success() && outcome.failure.is_none() {
        outcome.failure = Some(format!("exit status {status}, no crash input written"));
    }
    if outcome.failure.is_some() {
        eprintln!("fuzz: {target} failed; the end of its log:");
        for line in &tail {
            eprintln!("  {line}");
        }
    }
    eprintln!(
        "fuzz: {target}: {} executions, cov {}, {} s",
        outcome
            .runs
            .map_or_else(|| "?".to_owned(), |n| n.to_string()),
        outcome
            .coverage
            .map_or_else(|| "?".to_owned(), |n| n.to_string()),
        outcome.seconds
    );
    Ok(outcome)
}
