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
//!
//! `--baseline linux` then does the same to a Linux guest (`linux_guest`: Debian's kernel,
//! busybox's httpd serving the page httpd served) on the same QEMU machine type, accelerator
//! and memory, with the same load generator, and prints both side by side. The guests run one
//! after the other, never together: an idle unikernel polls, so it would take a host core from
//! the other.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use xtask::toolchain;

use crate::linux_guest::{self, LinuxError};

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
    #[arg(long, default_value = "tcg", value_parser = ["tcg", "kvm", "auto"])]
    accel: String,
    /// Memory each guest is given, MiB.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(16..=4096))]
    memory: u32,
    /// Also measure a conventional guest the same way, after httpd: `linux` is Debian's
    /// kernel with busybox's httpd in a small initramfs.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// The uniklink binary to use; by default a release build of this workspace's.
    #[arg(long)]
    uniklink: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Baseline {
    Linux,
}

/// Why the benchmark could not produce numbers.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Tool(#[from] xtask::Error),
    #[error("the Linux guest: {0}")]
    Linux(#[from] LinuxError),
    #[error("cannot start {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{server} did not print `{listening}` within {BOOT_GUARD:?}; console:\n{console}")]
    NeverListened {
        server: &'static str,
        listening: &'static str,
        console: String,
    },
    #[error("{server}: `GET /` before the load failed: {source}")]
    NoPage {
        server: &'static str,
        source: std::io::Error,
    },
    #[error("{server}: no request completed in {elapsed:?}")]
    NoRequests {
        server: &'static str,
        elapsed: Duration,
    },
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
        // SIGINT makes the runner kill QEMU before it exits, and QEMU itself quit.
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

/// One server measured: its boots and the load its last boot served.
struct Measured {
    server: &'static str,
    /// What the guest is booted from: bytes, and what they are.
    image_bytes: u64,
    image_is: String,
    to_listening: Vec<Duration>,
    entry_to_main: Vec<Duration>,
    /// The body of `GET /`, fetched before the load.
    page: Vec<u8>,
    outcome: Outcome,
}

enum Outcome {
    Steady { load: Load, elapsed: Duration },
    Burst(Burst),
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
    let mut measured = vec![measure(
        options,
        "uniklink httpd",
        image_bytes,
        "the image".to_owned(),
        &mut || boot_httpd(&uniklink, &root, &work, options),
    )?];
    if let Some(Baseline::Linux) = options.baseline {
        let guest = linux_guest::prepare(&work.join("linux"), &measured[0].page)?;
        let len = |path: &Path| -> Result<u64, BenchError> {
            Ok(fs::metadata(path).map_err(xtask::Error::io(path))?.len())
        };
        let (kernel, initramfs) = (len(&guest.kernel)?, len(&guest.initramfs)?);
        eprintln!(
            "Linux guest: {} ({kernel} bytes), initramfs {initramfs} bytes",
            guest.package
        );
        let linux = measure(
            options,
            "Linux + busybox httpd",
            kernel + initramfs,
            format!("{} vmlinuz {kernel} + initramfs {initramfs}", guest.package),
            &mut || boot_linux(&guest, options),
        )?;
        if linux.page != measured[0].page {
            eprintln!("warning: the Linux guest's page differs from httpd's");
        }
        measured.push(linux);
    }
    print(options, &measured);
    Ok(())
}

/// Boots `boot` `--boots` times and loads the last guest.
fn measure(
    options: &Options,
    server: &'static str,
    image_bytes: u64,
    image_is: String,
    boot: &mut dyn FnMut() -> Result<Boot, BenchError>,
) -> Result<Measured, BenchError> {
    let mut to_listening = Vec::new();
    let mut entry_to_main = Vec::new();
    let mut last = None;
    for i in 0..options.boots {
        eprintln!("{server}: boot {}/{}", i + 1, options.boots);
        // Only the last guest is kept running, for the load.
        drop(last.take());
        let booted = boot()?;
        to_listening.push(booted.to_listening);
        entry_to_main.extend(booted.entry_to_main);
        last = Some(booted);
    }
    let last = last.expect("at least one boot");
    to_listening.sort();
    entry_to_main.sort();
    let io_guard = Duration::from_secs(options.timeout);
    let page =
        fetch_page(last.port, io_guard).map_err(|source| BenchError::NoPage { server, source })?;
    let outcome = if options.burst {
        Outcome::Burst(burst(
            last.port,
            options.connections,
            options.requests,
            io_guard,
        ))
    } else {
        let duration = Duration::from_secs(options.duration);
        eprintln!(
            "{server}: {} keep-alive connections for {}s on 127.0.0.1:{}",
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
        if load.latencies.is_empty() {
            return Err(BenchError::NoRequests { server, elapsed });
        }
        load.latencies.sort();
        Outcome::Steady { load, elapsed }
    };
    drop(last);
    Ok(Measured {
        server,
        image_bytes,
        image_is,
        to_listening,
        entry_to_main,
        page,
        outcome,
    })
}

/// The body of `GET /` on a connection of its own.
fn fetch_page(port: u16, io_guard: Duration) -> std::io::Result<Vec<u8>> {
    let mut reader = connect(port, io_guard)?;
    let mut page = Vec::new();
    request(&mut reader, &mut page)?;
    Ok(page)
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(xtask::Error::io("127.0.0.1:0"))?
        .port())
}

/// Boots httpd with `cargo uniklink run` on a free host port and waits for its listening line.
fn boot_httpd(
    uniklink: &Path,
    root: &Path,
    work: &Path,
    options: &Options,
) -> Result<Boot, BenchError> {
    let port = free_port()?;
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
    let runner = Command::new(uniklink)
        .current_dir(root)
        .args([
            "uniklink",
            "run",
            "--release",
            "--no-build",
            "--accel",
            &options.accel,
            "--memory",
            &options.memory.to_string(),
            "--timeout",
            "900",
            "-m",
        ])
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            command: format!("{} uniklink run", uniklink.display()),
            source,
        })?;
    wait_listening(runner, port, launched, "uniklink httpd", LISTENING)
}

/// Boots the Linux guest with QEMU directly, as `cargo uniklink run` would boot httpd on
/// microvm: the same CPU model, accelerator, memory and user-network forward (its accept
/// queue deepened the same way), but with ACPI, which Debian's kernel finds the virtio-mmio
/// devices in (it is built without the command-line way the unikernel uses).
fn boot_linux(guest: &linux_guest::LinuxGuest, options: &Options) -> Result<Boot, BenchError> {
    let port = free_port()?;
    let kvm = match options.accel.as_str() {
        "kvm" => true,
        "auto" => fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok(),
        _ => false,
    };
    let (accel, cpu) = if kvm { ("kvm", "host") } else { ("tcg", "max") };
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-M", "microvm", "-accel", accel, "-cpu", cpu])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .args(["-monitor", "none", "-serial", "stdio"])
        .args(["-m", &format!("{}M", options.memory)])
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080"))
        .args(["-device", "virtio-net-device,netdev=n0", "-kernel"])
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&guest.initramfs)
        .arg("-append")
        .arg(linux_guest::command_line())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let launched = Instant::now();
    let runner = cmd.spawn().map_err(|source| BenchError::Spawn {
        command: "qemu-system-x86_64".to_owned(),
        source,
    })?;
    uniklink_hostfwd::deepen_backlogs(runner.id(), &[port]);
    wait_listening(
        runner,
        port,
        launched,
        "Linux + busybox httpd",
        linux_guest::LISTENING,
    )
}

/// Waits for the console line starting with `listening`, timing it from `launched`, and
/// keeps draining the console afterwards.
fn wait_listening(
    mut runner: Child,
    port: u16,
    launched: Instant,
    server: &'static str,
    listening: &'static str,
) -> Result<Boot, BenchError> {
    let stdout = runner.stdout.take().expect("stdout is piped");
    let stderr = runner.stderr.take().expect("stderr is piped");
    // Drained all along so that a chatty runner never blocks; shown if the boot fails.
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let (lines_tx, lines_rx) = mpsc::channel::<(String, Instant)>();
    thread::spawn(move || {
        // Bytes, not `lines()`: a console may carry bytes that are not UTF-8 (firmware and
        // early kernel output), which must not end the reading.
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        while stdout.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            if lines_tx.send((text, Instant::now())).is_err() {
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
            // The console ended (the guest or QEMU quit) or the guard passed: stop it, so
            // that its error output ends too.
            drop(boot);
            console.push_str(&errors.join().unwrap_or_default());
            return Err(BenchError::NeverListened {
                server,
                listening,
                console,
            });
        };
        if let Some(ns) = line.strip_prefix(READY) {
            boot.entry_to_main = ns.trim().parse().ok().map(Duration::from_nanos);
        }
        if line.starts_with(listening) {
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
/// counts as an error and the connection is opened again. A server that closes after its
/// response (busybox's httpd does, `Connection: close`) is reconnected to, as a client would,
/// and the next request's latency counts from the start of that connect.
fn drive(port: u16, until: Instant, io_guard: Duration) -> Load {
    let mut load = Load::default();
    let mut connection: Option<BufReader<TcpStream>> = None;
    let mut body = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
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
        match request(reader, &mut body) {
            Ok(kept) => {
                load.latencies.push(sent.elapsed());
                if !kept {
                    connection = None;
                }
            }
            Err(_) => {
                load.errors += 1;
                connection = None;
            }
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

/// One request and its whole response, the body into `body`; anything but a 200 is an error.
/// Whether the server keeps the connection open (no `Connection: close`).
fn request(reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> std::io::Result<bool> {
    reader.get_mut().write_all(REQUEST)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200 ") {
        return Err(std::io::Error::other(format!("status line {line:?}")));
    }
    let mut length = None;
    let mut kept = true;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                kept = !value.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("no Content-Length"))?;
    body.clear();
    let copied = reader.by_ref().take(length).read_to_end(body)?;
    if copied as u64 == length {
        Ok(kept)
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
    let mut body = Vec::new();
    let mut reader = None;
    for _ in 0..requests {
        let since = Instant::now();
        // Reconnects after a server that closes once it has answered, as a client would.
        let open = match reader.take() {
            Some(open) => Ok(open),
            None => connect(port, io_guard),
        };
        let answered = open.and_then(|mut open| {
            let kept = request(&mut open, &mut body)?;
            Ok(kept.then_some(open))
        });
        match answered {
            Ok(kept) => {
                connection.latencies.push(since.elapsed());
                reader = kept;
            }
            Err(error) => {
                connection.ending = ending(&error);
                break;
            }
        }
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

/// One table, a column per server, and with a baseline the ratio of httpd's value to it.
fn print(options: &Options, measured: &[Measured]) {
    let load = if options.burst {
        format!(
            "burst of {} connections × {} keep-alive requests",
            options.connections, options.requests
        )
    } else {
        format!(
            "{} keep-alive connections, {}s",
            options.connections, options.duration
        )
    };
    println!(
        "manifests/httpd.yaml{}, {load}, timeout {}s, accel {}, {} MiB each\n",
        if measured.len() > 1 {
            " against a Linux guest"
        } else {
            ""
        },
        options.timeout,
        options.accel,
        options.memory
    );
    let mut header = String::from("| metric |");
    let mut rule = String::from("| --- |");
    for m in measured {
        header.push_str(&format!(" {} |", m.server));
        rule.push_str(" ---: |");
    }
    if measured.len() == 2 {
        header.push_str(" httpd / Linux |");
        rule.push_str(" ---: |");
    }
    println!("{header}\n{rule}");
    let row = |name: &str, values: Vec<Option<f64>>, decimals: usize| {
        let mut line = format!("| {name} |");
        for value in &values {
            match value {
                Some(v) => line.push_str(&format!(" {v:.decimals$} |")),
                None => line.push_str(" – |"),
            }
        }
        if let [Some(a), Some(b)] = values[..] {
            if b == 0.0 {
                line.push_str(" – |");
            } else {
                line.push_str(&format!(" {:.3} |", a / b));
            }
        } else if values.len() == 2 {
            line.push_str(" – |");
        }
        println!("{line}");
    };
    let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
    let each = |f: &dyn Fn(&Measured) -> Option<f64>| measured.iter().map(f).collect::<Vec<_>>();
    row("image bytes", each(&|m| Some(m.image_bytes as f64)), 0);
    row(
        "memory given (MiB)",
        each(&|_| Some(f64::from(options.memory))),
        0,
    );
    row(
        &format!(
            "boot → listening, median of {} (ms, host, from launching QEMU or its runner)",
            options.boots
        ),
        each(&|m| ms(percentile(&m.to_listening, 50))),
        1,
    );
    row(
        "guest entry → main, median (ms)",
        each(&|m| {
            (!m.entry_to_main.is_empty())
                .then(|| percentile(&m.entry_to_main, 50).as_secs_f64() * 1e3)
        }),
        2,
    );
    let latencies = |m: &Measured| -> Vec<Duration> {
        match &m.outcome {
            Outcome::Steady { load, .. } => load.latencies.clone(),
            Outcome::Burst(burst) => {
                let mut all: Vec<Duration> = burst
                    .connections
                    .iter()
                    .flat_map(|c| c.latencies.iter().copied())
                    .collect();
                all.sort();
                all
            }
        }
    };
    let answered = |m: &Measured| latencies(m).len() as f64;
    let wall = |m: &Measured| match &m.outcome {
        Outcome::Steady { elapsed, .. } => elapsed.as_secs_f64(),
        Outcome::Burst(burst) => burst.elapsed.as_secs_f64(),
    };
    row("requests/s", each(&|m| Some(answered(m) / wall(m))), 0);
    row("requests answered", each(&|m| Some(answered(m))), 0);
    if options.burst {
        let expected = f64::from(options.connections) * f64::from(options.requests);
        row(
            "requests not answered",
            each(&|m| Some(expected - answered(m))),
            0,
        );
        let count = |m: &Measured, ending: Ending| match &m.outcome {
            Outcome::Burst(burst) => Some(
                burst
                    .connections
                    .iter()
                    .filter(|c| c.ending == ending)
                    .count() as f64,
            ),
            Outcome::Steady { .. } => None,
        };
        row("burst wall time (s)", each(&|m| Some(wall(m))), 2);
        row(
            "connections served completely",
            each(&|m| count(m, Ending::Served)),
            0,
        );
        row(
            "connections never answered",
            each(&|m| match &m.outcome {
                Outcome::Burst(burst) => Some(
                    burst
                        .connections
                        .iter()
                        .filter(|c| c.latencies.is_empty())
                        .count() as f64,
                ),
                Outcome::Steady { .. } => None,
            }),
            0,
        );
        row(
            "connections reset or refused",
            each(&|m| count(m, Ending::Reset)),
            0,
        );
        row(
            "connections timed out",
            each(&|m| count(m, Ending::TimedOut)),
            0,
        );
        row(
            "connections ended otherwise",
            each(&|m| count(m, Ending::Other)),
            0,
        );
    } else {
        row(
            "errors",
            each(&|m| match &m.outcome {
                Outcome::Steady { load, .. } => Some(load.errors as f64),
                Outcome::Burst(_) => None,
            }),
            0,
        );
    }
    let quantile = |m: &Measured, p: usize| {
        let all = latencies(m);
        (!all.is_empty()).then(|| percentile(&all, p).as_secs_f64() * 1e3)
    };
    row("latency p50 (ms)", each(&|m| quantile(m, 50)), 2);
    row("latency p99 (ms)", each(&|m| quantile(m, 99)), 2);
    row("latency max (ms)", each(&|m| quantile(m, 100)), 2);
    println!();
    for m in measured {
        println!("{}: {}", m.server, m.image_is);
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
