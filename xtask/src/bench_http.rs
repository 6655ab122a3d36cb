//! `cargo xtask bench http`: the httpd example (`manifests/httpd.yaml`) built with uniklink,
//! booted under QEMU a few times to time boot → listening, then loaded from the host over
//! loopback by a small keep-alive HTTP client for a fixed duration: requests per second and
//! latency percentiles. Everything is bounded: each boot by a guard, the load by its duration,
//! every socket call by a timeout.
//!
//! `--burst` loads as a client fleet does instead: all `--connections` (up to 2,000) are
//! opened at the same instant, one thread each released by a barrier, and each sends
//! `--requests` keep-alive requests and stops at its first failure. It reports how many
//! connections were served completely, never answered, reset or timed out; the first
//! request's latency counts from the start of its connect.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use xtask::toolchain;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Seconds of load.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Keep-alive connections, each driven by its own client thread (at most 100, or 2,000
    /// with `--burst`).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=2000))]
    connections: u16,
    /// Open all connections at once and send `--requests` on each, instead of loading for
    /// `--duration`.
    #[arg(long)]
    burst: bool,
    /// Requests per connection with `--burst`.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10000))]
    requests: u32,
    /// Seconds each socket call may wait before it counts as timed out.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
    /// Boots timed for boot → listening (the last one then serves the load).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=50))]
    boots: u16,
    /// QEMU accelerator: tcg, kvm or auto (as `cargo uniklink run --accel`). TCG by default so
    /// that numbers from different machines compare.
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// The uniklink binary to use; by default a release build of this workspace's.
    #[arg(long)]
    uniklink: Option<PathBuf>,
}

/// Why the benchmark could not produce numbers.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Tool(#[from] xtask::Error),
    #[error("cannot start {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("httpd did not print `{LISTENING}` within {BOOT_GUARD:?}; console:\n{console}")]
    NeverListened { console: String },
    #[error("no request completed in {0:?}")]
    NoRequests(Duration),
    #[error("{0}")]
    Usage(String),
}

const LISTENING: &str = "httpd: listening on :8080";
const READY: &str = "uniklink:ready entry_to_main_ns=";
const BOOT_GUARD: Duration = Duration::from_secs(120);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

struct Boot {
    runner: Child,
    port: u16,
    to_listening: Duration,
    entry_to_main: Option<Duration>,
}

impl Drop for Boot {
    fn drop(&mut self) {
        // SIGINT makes the runner kill QEMU before it exits.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.runner.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.runner.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.runner.kill();
        let _ = self.runner.wait();
    }
}

#[derive(Default)]
struct Load {
    latencies: Vec<Duration>,
    errors: u64,
}

pub fn run(options: &Options) -> Result<(), BenchError> {
    if !options.burst && options.connections > 100 {
        return Err(BenchError::Usage(
            "more than 100 connections only with --burst".to_owned(),
        ));
    }
    if options.burst {
        raise_fd_limit(usize::from(options.connections) + 64)?;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().map_err(xtask::Error::io(&root))?;
    let uniklink = match &options.uniklink {
        Some(path) => path.clone(),
        None => {
            eprintln!("building cargo-uniklink (release)");
            toolchain::run(Command::new(env!("CARGO")).current_dir(&root).args([
                "build",
                "--release",
                "--quiet",
                "--package",
                "cargo-uniklink",
                "--bin",
                "cargo-uniklink",
            ]))?;
            root.join("target/release/cargo-uniklink")
        }
    };
    eprintln!("building httpd (manifests/httpd.yaml, release)");
    toolchain::run(Command::new(&uniklink).current_dir(&root).args([
        "uniklink",
        "build",
        "--release",
        "-m",
        "manifests/httpd.yaml",
    ]))?;
    let image = root.join("fixtures/apps/httpd/target/uniklink/release/httpd-x86_64.elf");
    let image_bytes = fs::metadata(&image)
        .map_err(xtask::Error::io(&image))?
        .len();

    let work = root.join("target/xtask/bench-http");
    fs::create_dir_all(&work).map_err(xtask::Error::io(&work))?;
    let mut to_listening = Vec::new();
    let mut entry_to_main = Vec::new();
    let mut last = None;
    for i in 0..options.boots {
        eprintln!("boot {}/{}", i + 1, options.boots);
        // Only the last guest is kept running, for the load.
        drop(last.take());
        let booted = boot(&uniklink, &root, &work, &options.accel)?;
        to_listening.push(booted.to_listening);
        entry_to_main.extend(booted.entry_to_main);
        last = Some(booted);
    }
    let last = last.expect("at least one boot");

    let io_guard = Duration::from_secs(options.timeout);
    if options.burst {
        let burst = burst(last.port, options.connections, options.requests, io_guard);
        drop(last);
        to_listening.sort();
        print_burst(options, &burst, image_bytes, &to_listening);
        return Ok(());
    }
    let duration = Duration::from_secs(options.duration);
    eprintln!(
        "load: {} keep-alive connections for {}s on 127.0.0.1:{}",
        options.connections, options.duration, last.port
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..options.connections)
        .map(|_| {
            let port = last.port;
            thread::spawn(move || drive(port, started + duration, io_guard))
        })
        .collect();
    let mut load = Load::default();
    for worker in workers {
        let part = worker.join().unwrap_or_else(|_| Load {
            latencies: Vec::new(),
            errors: 1,
        });
        load.latencies.extend(part.latencies);
        load.errors += part.errors;
    }
    let elapsed = started.elapsed();
    drop(last);
    if load.latencies.is_empty() {
        return Err(BenchError::NoRequests(elapsed));
    }
    load.latencies.sort();
    to_listening.sort();
    entry_to_main.sort();

    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    println!(
        "httpd (manifests/httpd.yaml), {} keep-alive connections, {}s, accel {}\n",
        options.connections, options.duration, options.accel
    );
    println!("| metric | value |");
    println!("| --- | ---: |");
    println!("| image bytes | {image_bytes} |");
    println!(
        "| boot → listening, median of {} (ms, host wall-clock from launching the runner) | {} |",
        to_listening.len(),
        ms(percentile(&to_listening, 50))
    );
    if !entry_to_main.is_empty() {
        println!(
            "| guest entry → main, median (ms) | {} |",
            ms(percentile(&entry_to_main, 50))
        );
    }
    println!(
        "| requests/s | {:.0} |",
        load.latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!("| requests | {} |", load.latencies.len());
    println!("| errors | {} |", load.errors);
    println!(
        "| latency p50 (ms) | {} |",
        ms(percentile(&load.latencies, 50))
    );
    println!(
        "| latency p99 (ms) | {} |",
        ms(percentile(&load.latencies, 99))
    );
    println!(
        "| latency max (ms) | {} |",
        ms(*load.latencies.last().expect("not empty"))
    );
    Ok(())
}

/// Boots httpd on a free host port and waits for its listening line.
fn boot(uniklink: &Path, root: &Path, work: &Path, accel: &str) -> Result<Boot, BenchError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(xtask::Error::io("127.0.0.1:0"))?
        .port();
    let source = root.join("manifests/httpd.yaml");
    let text = fs::read_to_string(&source).map_err(xtask::Error::io(&source))?;
    let text = text
        .replace("\"8080:8080\"", &format!("\"{port}:8080\""))
        .replace(
            "path: ../fixtures/apps/httpd",
            &format!("path: {}", root.join("fixtures/apps/httpd").display()),
        );
    let manifest = work.join("httpd.yaml");
    fs::write(&manifest, text).map_err(xtask::Error::io(&manifest))?;

    let launched = Instant::now();
    let mut runner = Command::new(uniklink)
        .current_dir(root)
        .args([
            "uniklink",
            "run",
            "--release",
            "--no-build",
            "--accel",
            accel,
            "--timeout",
            "900",
            "-m",
        ])
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            command: format!("{} uniklink run", uniklink.display()),
            source,
        })?;
    let stdout = runner.stdout.take().expect("stdout is piped");
    let (lines_tx, lines_rx) = mpsc::channel::<(String, Instant)>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let mut boot = Boot {
        runner,
        port,
        to_listening: Duration::ZERO,
        entry_to_main: None,
    };
    let mut console = String::new();
    let deadline = launched + BOOT_GUARD;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((line, at)) = lines_rx.recv_timeout(left) else {
            return Err(BenchError::NeverListened { console });
        };
        if let Some(ns) = line.strip_prefix(READY) {
            boot.entry_to_main = ns.trim().parse().ok().map(Duration::from_nanos);
        }
        if line.starts_with(LISTENING) {
            boot.to_listening = at - launched;
            break;
        }
        console.push_str(&line);
        console.push('\n');
    }
    thread::spawn(move || while lines_rx.recv().is_ok() {});
    Ok(boot)
}

/// One keep-alive connection sending `GET /` back to back until `until`; a failed request
/// counts as an error and the connection is opened again.
fn drive(port: u16, until: Instant, io_guard: Duration) -> Load {
    let mut load = Load::default();
    let mut connection: Option<BufReader<TcpStream>> = None;
    while Instant::now() < until {
        let reader = match connection.as_mut() {
            Some(reader) => reader,
            None => match connect(port, io_guard) {
                Ok(reader) => connection.insert(reader),
                Err(_) => {
                    load.errors += 1;
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let sent = Instant::now();
        if request(reader).is_ok() {
            load.latencies.push(sent.elapsed());
        } else {
            load.errors += 1;
            connection = None;
        }
    }
    load
}

fn connect(port: u16, io_guard: Duration) -> std::io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), io_guard)?;
    stream.set_read_timeout(Some(io_guard))?;
    stream.set_write_timeout(Some(io_guard))?;
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}

/// One request and its whole response; anything but a 200 is an error.
fn request(reader: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    reader.get_mut().write_all(REQUEST)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200 ") {
        return Err(std::io::Error::other(format!("status line {line:?}")));
    }
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<u64>().ok();
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("no Content-Length"))?;
    let copied = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
    if copied == length {
        Ok(())
    } else {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

/// The `p`th percentile (nearest rank) of sorted `values`.
fn percentile(values: &[Duration], p: usize) -> Duration {
    let rank = (values.len() * p).div_ceil(100).clamp(1, values.len());
    values[rank - 1]
}

/// How one burst connection ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    /// Every request answered.
    Served,
    /// Reset or refused (by the guest, or by QEMU's forward when the guest reset it).
    Reset,
    /// A connect or read that waited `--timeout`.
    TimedOut,
    /// Closed by the server, or anything else unexpected.
    Other,
}

struct BurstConnection {
    /// Request latencies; the first counts from the start of the connect.
    latencies: Vec<Duration>,
    ending: Ending,
}

struct Burst {
    connections: Vec<BurstConnection>,
    elapsed: Duration,
}

/// Opens `connections` connections at once, one thread each released together by a barrier,
/// and sends `requests` keep-alive requests on each.
fn burst(port: u16, connections: u16, requests: u32, io_guard: Duration) -> Burst {
    eprintln!(
        "burst: {connections} connections at once, {requests} keep-alive requests each, \
         on 127.0.0.1:{port}"
    );
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(usize::from(connections) + 1));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let barrier = barrier.clone();
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    barrier.wait();
                    burst_connection(port, requests, io_guard)
                })
                .expect("a client thread")
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let connections = workers
        .into_iter()
        .map(|worker| {
            worker.join().unwrap_or(BurstConnection {
                latencies: Vec::new(),
                ending: Ending::Other,
            })
        })
        .collect();
    Burst {
        connections,
        elapsed: started.elapsed(),
    }
}

fn burst_connection(port: u16, requests: u32, io_guard: Duration) -> BurstConnection {
    let mut connection = BurstConnection {
        latencies: Vec::new(),
        ending: Ending::Served,
    };
    let mut since = Instant::now();
    let mut reader = match connect(port, io_guard) {
        Ok(reader) => reader,
        Err(error) => {
            connection.ending = ending(&error);
            return connection;
        }
    };
    for _ in 0..requests {
        match request(&mut reader) {
            Ok(()) => connection.latencies.push(since.elapsed()),
            Err(error) => {
                connection.ending = ending(&error);
                break;
            }
        }
        since = Instant::now();
    }
    connection
}

fn ending(error: &std::io::Error) -> Ending {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => Ending::Reset,
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Ending::TimedOut,
        _ => Ending::Other,
    }
}

fn print_burst(options: &Options, burst: &Burst, image_bytes: u64, to_listening: &[Duration]) {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    let mut latencies: Vec<Duration> = burst
        .connections
        .iter()
        .flat_map(|c| c.latencies.iter().copied())
        .collect();
    latencies.sort();
    let count = |ending: Ending| {
        burst
            .connections
            .iter()
            .filter(|c| c.ending == ending)
            .count()
    };
    let unanswered = burst
        .connections
        .iter()
        .filter(|c| c.latencies.is_empty())
        .count();
    let expected = u64::from(options.connections) * u64::from(options.requests);
    println!(
        "httpd (manifests/httpd.yaml), burst of {} connections × {} keep-alive requests, \
         timeout {}s, accel {}\n",
        options.connections, options.requests, options.timeout, options.accel
    );
    println!("| metric | value |");
    println!("| --- | ---: |");
    println!("| image bytes | {image_bytes} |");
    if !to_listening.is_empty() {
        println!(
            "| boot → listening, median of {} (ms) | {} |",
            to_listening.len(),
            ms(percentile(to_listening, 50))
        );
    }
    println!(
        "| requests answered / sent for | {} / {expected} |",
        latencies.len()
    );
    println!(
        "| requests/s (answered over the burst's wall time {:.1}s) | {:.0} |",
        burst.elapsed.as_secs_f64(),
        latencies.len() as f64 / burst.elapsed.as_secs_f64()
    );
    println!(
        "| connections served completely | {} |",
        count(Ending::Served)
    );
    println!("| connections never answered | {unanswered} |");
    println!(
        "| connections reset or refused | {} |",
        count(Ending::Reset)
    );
    println!("| connections timed out | {} |", count(Ending::TimedOut));
    println!("| connections ended otherwise | {} |", count(Ending::Other));
    if !latencies.is_empty() {
        println!("| latency p50 (ms) | {} |", ms(percentile(&latencies, 50)));
        println!("| latency p99 (ms) | {} |", ms(percentile(&latencies, 99)));
        println!(
            "| latency max (ms) | {} |",
            ms(*latencies.last().expect("not empty"))
        );
    }
}

/// Raises the soft limit on open files to at least `wanted` (up to the hard limit).
fn raise_fd_limit(wanted: usize) -> Result<(), BenchError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(BenchError::Usage(format!(
            "getrlimit: {}",
            std::io::Error::last_os_error()
        )));
    }
    let wanted = wanted as libc::rlim_t;
    if limit.rlim_cur >= wanted {
        return Ok(());
    }
    if limit.rlim_max < wanted {
        return Err(BenchError::Usage(format!(
            "{wanted} open files needed, the hard limit is {}",
            limit.rlim_max
        )));
    }
    limit.rlim_cur = wanted;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(BenchError::Usage(format!(
            "setrlimit: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
