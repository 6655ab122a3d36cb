//! The httpd example (`fixtures/apps/httpd`, `manifests/httpd.yaml`) built with
//! `cargo uniklink build --release` and booted with `cargo uniklink run` under TCG, reached from
//! the host through a QEMU user-net forward on 127.0.0.1. Each test boots its own guest on a
//! free host port and stops it when done. Every client call has a timeout and every loop a
//! fixed count, so a wedged server fails a test instead of hanging it; nothing is timed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

// httpd's parser is plain `alloc` code, so the host can test it directly (see `parser`).
extern crate alloc;
#[path = "../fixtures/apps/httpd/src/http.rs"]
#[allow(dead_code, reason = "responses only the server's routing uses")]
mod http;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const LISTENING: &str = "httpd: listening on :8080";
/// How long a guest may take from launch to its listening line under TCG on a loaded machine.
const BOOT_GUARD: Duration = Duration::from_secs(120);
/// Guards on every client socket operation; a healthy server answers in milliseconds.
const IO_GUARD: Duration = Duration::from_secs(30);
/// The runner kills the guest after this long even if a test never stops it.
const RUN_GUARD_SECS: &str = "600";
/// How long an isolated guest runs before the runner kills it: past its boot, so that frames
/// it queued have reached the wire (a kill right at `listening` can cut them off).
const ISOLATED_RUN_SECS: &str = "30";

fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").expect("the cargo-uniklink binary");
    cmd.current_dir(ROOT).arg("uniklink");
    cmd
}

/// Builds the image from the real manifest, once per test binary.
fn build_httpd() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = uniklink()
            .args([
                "build",
                "--release",
                "-m",
                "manifests/httpd.yaml",
                "--",
                "--locked",
            ])
            .output()
            .expect("cargo-uniklink build runs");
        assert!(
            out.status.success(),
            "building httpd failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// `manifests/httpd.yaml` with the forward moved to `host_port`. The name stays `httpd`, so
/// `run -m` boots the image the real manifest built.
fn manifest_with_port(host_port: u16) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(ROOT).join("manifests/httpd.yaml"))
        .expect("manifests/httpd.yaml");
    assert!(text.contains("\"8080:8080\""), "httpd.yaml forwards 8080");
    let text = text
        .replace("\"8080:8080\"", &format!("\"{host_port}:8080\""))
        .replace(
            "path: ../fixtures/apps/httpd",
            &format!("path: {ROOT}/fixtures/apps/httpd"),
        );
    let dir = Path::new(ROOT).join("target/net-tests");
    std::fs::create_dir_all(&dir).expect("target/net-tests");
    let path = dir.join(format!("httpd-{host_port}.yaml"));
    std::fs::write(&path, text).expect("writing the test manifest");
    path
}

/// A booted httpd guest; dropping it stops QEMU.
struct Server {
    runner: Child,
    port: u16,
    /// Console lines after the listening line.
    console: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn boot() -> Server {
        Server::boot_on(None, &[])
    }

    fn boot_on(platform: Option<&str>, qemu_args: &[&str]) -> Server {
        build_httpd();
        let port = free_port();
        let manifest = manifest_with_port(port);
        let mut cmd = uniklink();
        cmd.args([
            "run",
            "--release",
            "--no-build",
            "--accel",
            "tcg",
            "--timeout",
            RUN_GUARD_SECS,
            "-m",
        ])
        .arg(&manifest);
        if let Some(platform) = platform {
            cmd.args(["--platform", platform]);
        }
        if !qemu_args.is_empty() {
            cmd.arg("--").args(qemu_args);
        }
        Server::start(cmd, port)
    }

    /// Boots the image with a user network of the caller's own: QEMU arguments that forward
    /// host port `port` to the guest's 8080, and maybe more.
    fn boot_with_network(port: u16, network: &[&str]) -> Server {
        build_httpd();
        let mut cmd = uniklink();
        cmd.args(["run", "--accel", "tcg", "--timeout", RUN_GUARD_SECS])
            .arg(
                Path::new(ROOT)
                    .join("fixtures/apps/httpd/target/uniklink/release/httpd-x86_64.elf"),
            )
            .arg("--")
            .args(network);
        Server::start(cmd, port)
    }

    fn start(mut cmd: Command, port: u16) -> Server {
        let mut runner = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cargo-uniklink run starts");
        let stdout = runner.stdout.take().expect("stdout is piped");
        let stderr = runner.stderr.take().expect("stderr is piped");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_thread = thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let mut server = Server {
            runner,
            port,
            console: Arc::default(),
        };
        let deadline = Instant::now() + BOOT_GUARD;
        let mut console = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.starts_with(LISTENING) => {
                    assert!(
                        console
                            .iter()
                            .any(|l: &String| l.starts_with("uniklink:ready ")),
                        "the listening line comes after the ready marker: {console:?}"
                    );
                    break;
                }
                Ok(line) => console.push(line),
                Err(_) => {
                    server.stop();
                    panic!(
                        "httpd never said `{LISTENING}`; console: {console:#?}\nrunner: {}",
                        stderr_thread.join().unwrap_or_default()
                    );
                }
            }
        }
        // Keep draining the console so the guest never blocks on a full pipe; what it says
        // is shown if the test fails.
        let later = Arc::clone(&server.console);
        thread::spawn(move || {
            while let Ok(line) = lines_rx.recv() {
                later.lock().unwrap().push(line);
            }
        });
        server
    }

    fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    fn stop(&mut self) {
        // SIGINT makes the runner kill QEMU (its own process group) before exiting.
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

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "httpd console after listening: {:#?}",
                self.console.lock().unwrap()
            );
        }
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// A keep-alive HTTP/1.1 client on one connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), IO_GUARD)
            .expect("connecting to httpd");
        stream.set_read_timeout(Some(IO_GUARD)).unwrap();
        stream.set_write_timeout(Some(IO_GUARD)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    fn get(&mut self, path: &str) -> Response {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream()
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("sending GET {path}: {e}"));
        self.read_response()
            .unwrap_or_else(|| panic!("GET {path}: connection closed or reset before a response"))
    }

    /// The next response, or `None` if the server closed or reset the connection first.
    fn read_response(&mut self) -> Option<Response> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(error) => panic!("reading a status line: {error}"),
        }
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("a header line");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').expect("a `name: value` header");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = response
            .header("content-length")
            .expect("Content-Length")
            .parse()
            .expect("a numeric Content-Length");
        response.body.resize(len, 0);
        self.reader
            .read_exact(&mut response.body)
            .expect("the whole body");
        Some(response)
    }
}

/// What `/api/status` reports.
fn status(client: &mut Client) -> serde_json::Value {
    let response = client.get("/api/status");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_slice(&response.body).expect("/api/status is JSON")
}

fn assert_serves_the_page(port: u16) {
    let response = Client::connect(port).get("/");
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response.text().contains("Hello from a uniklink unikernel"),
        "{response:?}"
    );
}

#[test]
fn serves_the_page_and_the_status_json_over_virtio_mmio() {
    let server = Server::boot();
    let mut client = server.connect();
    let page = client.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("connection"), Some("keep-alive"));
    assert!(page.text().starts_with("<!doctype html>"), "{page:?}");
    assert!(page.text().contains("Hello from a uniklink unikernel"));

    let json = status(&mut client);
    assert!(json["uptime_ms"].as_u64().is_some(), "{json}");
    assert_eq!(json["requests"], 2, "{json}");
    assert_eq!(json["connections"], 1, "{json}");

    let missing = client.get("/no/such/page");
    assert_eq!(missing.status, 404);
    let query = client.get("/api/status?verbose=1");
    assert_eq!(query.status, 200);

    // Connection: close is honoured: the response, then end of stream.
    client
        .stream()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let last = client.read_response().expect("a response before the close");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(client.read_response().is_none(), "the server closes");
}

#[test]
fn serves_over_virtio_pci_on_q35() {
    let server = Server::boot_on(Some("qemu-q35"), &[]);
    assert_serves_the_page(server.port);
    let json = status(&mut server.connect());
    assert_eq!(json["requests"], 2, "{json}");
}

#[test]
fn serves_over_modern_virtio_mmio() {
    // microvm's virtio-mmio devices are legacy (version 1) unless told otherwise.
    let server = Server::boot_on(None, &["-global", "virtio-mmio.force-legacy=false"]);
    assert_serves_the_page(server.port);
}

#[test]
fn a_thousand_sequential_requests() {
    const REQUESTS: u64 = 1000;
    /// A fresh connection every so many requests exercises accept and close as well.
    const PER_CONNECTION: u64 = 50;
    let server = Server::boot();
    let mut client = server.connect();
    for i in 0..REQUESTS {
        if i > 0 && i % PER_CONNECTION == 0 {
            client = server.connect();
        }
        let response = client.get(if i % 2 == 0 { "/" } else { "/api/status" });
        assert_eq!(response.status, 200, "request {i}: {response:?}");
    }
    let json = status(&mut server.connect());
    assert_eq!(json["requests"], REQUESTS + 1, "{json}");
    assert_eq!(json["connections"], REQUESTS / PER_CONNECTION + 1, "{json}");
}

#[test]
fn a_hundred_concurrent_keep_alive_connections() {
    const THREADS: usize = 10;
    const PER_THREAD: usize = 10;
    const ROUNDS: usize = 3;
    let server = Server::boot();
    let port = server.port;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut clients: Vec<Client> =
                    (0..PER_THREAD).map(|_| Client::connect(port)).collect();
                // Every connection stays open across the rounds, so all hundred are live at
                // once by the second round.
                for round in 0..ROUNDS {
                    for (c, client) in clients.iter_mut().enumerate() {
                        let response = client.get("/");
                        assert_eq!(
                            response.status, 200,
                            "thread {t} connection {c} round {round}: {response:?}"
                        );
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread failed");
    }
    let json = status(&mut server.connect());
    let total = (THREADS * PER_THREAD * ROUNDS) as u64;
    assert_eq!(json["requests"], total + 1, "{json}");
    assert_eq!(
        json["connections"],
        (THREADS * PER_THREAD) as u64 + 1,
        "{json}"
    );
}

/// Issue #19: a client fleet opening its connections all at once. Every connection is opened
/// in the same instant (one thread each, released together), sends its keep-alive requests,
/// and every request must be answered: none reset, none left unanswered within the guard.
/// Attempts beyond the sockets the guest has wait in its SYN queue instead of being reset.
#[test]
fn a_burst_of_two_hundred_connections_is_served_completely() {
    const CONNECTIONS: usize = 200;
    const REQUESTS: usize = 10;
    /// The whole of each connection's work must fit in this, under TCG on a loaded machine.
    const BURST_GUARD: Duration = Duration::from_secs(60);
    let server = Server::boot();
    let port = server.port;
    let barrier = Arc::new(std::sync::Barrier::new(CONNECTIONS + 1));
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let barrier = barrier.clone();
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    barrier.wait();
                    burst_connection(port, REQUESTS, Instant::now() + BURST_GUARD)
                })
                .expect("a client thread")
        })
        .collect();
    barrier.wait();
    let outcomes: Vec<Result<(), String>> = workers
        .into_iter()
        .map(|w| {
            w.join()
                .unwrap_or_else(|_| Err("the client thread panicked".to_owned()))
        })
        .collect();
    let failed: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, outcome)| {
            outcome
                .as_ref()
                .err()
                .map(|e| format!("connection {i}: {e}"))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {CONNECTIONS} connections not served completely:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_serves_the_page(port);
    let json = status(&mut server.connect());
    assert_eq!(
        json["requests"],
        (CONNECTIONS * REQUESTS) as u64 + 2,
        "{json}"
    );
}

/// One burst connection: `requests` keep-alive GETs, each answered 200, all before `deadline`.
fn burst_connection(port: u16, requests: usize, deadline: Instant) -> Result<(), String> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "out of time".to_owned())
    };
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), left()?)
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    for i in 0..requests {
        let guard = Some(left()?);
        reader
            .get_ref()
            .set_read_timeout(guard)
            .map_err(|e| e.to_string())?;
        reader
            .get_ref()
            .set_write_timeout(guard)
            .map_err(|e| e.to_string())?;
        reader
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .map_err(|e| format!("request {i}: sending: {e}"))?;
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("request {i}: status line: {e}"))?;
        if !line.starts_with("HTTP/1.1 200 ") {
            return Err(format!("request {i}: status line {line:?}"));
        }
        let mut length = None;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return Err(format!("request {i}: closed in the head")),
                Ok(_) => {}
                Err(e) => return Err(format!("request {i}: head: {e}")),
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.ok_or_else(|| format!("request {i}: no Content-Length"))?];
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("request {i}: body: {e}"))?;
    }
    Ok(())
}

#[test]
fn answers_udp_datagrams_with_the_status() {
    let port = free_port();
    let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("an ephemeral UDP port")
        .port();
    let netdev = format!(
        "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080,hostfwd=udp:127.0.0.1:{udp_port}-:8080"
    );
    let server = Server::boot_with_network(
        port,
        &["-netdev", &netdev, "-device", "virtio-net-device,netdev=n0"],
    );
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut answer = [0u8; 512];
    // Datagrams may be lost; a few tries, each bounded.
    let len = (0..10)
        .find_map(|_| {
            socket.send_to(b"status?", ("127.0.0.1", udp_port)).ok()?;
            socket.recv(&mut answer).ok()
        })
        .expect("an answer to one of ten datagrams");
    let json: serde_json::Value =
        serde_json::from_slice(&answer[..len]).expect("the answer is the status JSON");
    assert!(json["requests"].as_u64().is_some_and(|n| n >= 1), "{json}");
    assert_serves_the_page(server.port);
}

/// Closes `stream` with SO_LINGER 0, which makes the kernel send RST instead of FIN.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a correctly sized `linger`.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(stream);
}

#[test]
fn keeps_serving_after_clients_reset_mid_request() {
    let server = Server::boot();
    for i in 0..5 {
        let mut client = server.connect();
        client
            .stream()
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
            .unwrap();
        // Once with a request answered first, so the reset hits a kept-alive connection.
        if i == 0 {
            let mut other = server.connect();
            assert_eq!(other.get("/").status, 200);
            reset(other.reader.into_inner());
        }
        reset(client.reader.into_inner());
        assert_serves_the_page(server.port);
    }
}

#[test]
fn garbage_gets_an_error_or_a_close() {
    let server = Server::boot();
    let inputs: [&[u8]; 4] = [
        b"\x00\xff\xfe garbage \x01\x02\r\n\r\n",
        b"hello there\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    ];
    for input in inputs {
        let mut client = server.connect();
        client.stream().write_all(input).unwrap();
        if let Some(response) = client.read_response() {
            assert_eq!(response.status, 400, "{input:?}: {response:?}");
            assert_eq!(response.header("connection"), Some("close"));
        }
        assert!(client.read_response().is_none(), "{input:?}: closed after");
        assert_serves_the_page(server.port);
    }
}

#[test]
fn a_one_megabyte_header_gets_an_error_or_a_close() {
    let server = Server::boot();
    let mut client = server.connect();
    let mut stream = client.stream().try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
        request.resize(request.len() + (1 << 20), b'a');
        request.extend_from_slice(b"\r\n\r\n");
        // The server stops reading long before the end: the write fails or stalls until the
        // guard, and either is fine.
        let _ = stream.write_all(&request);
        let _ = stream.shutdown(Shutdown::Write);
    });
    if let Some(response) = client.read_response() {
        assert_eq!(response.status, 431, "{response:?}");
    }
    let _ = client.stream().shutdown(Shutdown::Both);
    writer.join().unwrap();
    assert_serves_the_page(server.port);
}

#[test]
fn a_client_that_never_reads_does_not_hold_up_others() {
    let server = Server::boot();
    let mut greedy = server.connect();
    // Far more responses than the socket buffers hold, none of them read.
    let pipelined = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(2000);
    let mut writer = greedy.stream().try_clone().unwrap();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(pipelined.as_bytes());
    });
    for _ in 0..10 {
        assert_serves_the_page(server.port);
    }
    let _ = greedy.stream().shutdown(Shutdown::Both);
    sender.join().unwrap();
    assert_serves_the_page(server.port);
}

#[test]
fn a_request_that_never_finishes_is_timed_out() {
    let server = Server::boot();
    let mut slow = server.connect();
    slow.stream()
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    // The stuck request holds nothing up.
    assert_serves_the_page(server.port);
    if let Some(response) = slow.read_response() {
        assert_eq!(response.status, 408, "{response:?}");
        assert!(slow.read_response().is_none(), "closed after the 408");
    }
    assert_serves_the_page(server.port);
}

/// Issue #19: one connection streaming pipelined requests as fast as it reads the answers
/// holds up nobody else. Each fresh connection's GET meanwhile is answered within
/// `FAIR_GUARD`, far beyond a healthy server's milliseconds and far below what a starved
/// connection waits (the streamer's whole run).
#[test]
fn a_streaming_connection_does_not_starve_others() {
    const OTHERS: usize = 20;
    const FAIR_GUARD: Duration = Duration::from_secs(5);
    /// Requests the streamer writes per call: several TCP segments, many responses.
    const BATCH: usize = 64;
    let server = Server::boot();
    let mut streamer = server.connect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = streamer.stream().try_clone().unwrap();
    let writing = {
        let stop = stop.clone();
        thread::spawn(move || {
            let batch = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(BATCH);
            while !stop.load(Ordering::Relaxed) {
                if writer.write_all(batch.as_bytes()).is_err() {
                    break;
                }
            }
        })
    };
    let reader = streamer.stream().try_clone().unwrap();
    let (first_tx, first_rx) = mpsc::channel();
    let reading = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut client = Client {
                reader: BufReader::new(reader),
            };
            let mut answered = 0usize;
            // The writer stops only after `stop`, so answers keep coming until this sees it.
            while !stop.load(Ordering::Relaxed) {
                let response = client.read_response().expect("the streamer is answered");
                assert_eq!(response.status, 200, "streamed response {answered}");
                answered += 1;
                if answered == BATCH {
                    let _ = first_tx.send(());
                }
            }
            answered
        })
    };
    first_rx
        .recv_timeout(IO_GUARD)
        .expect("the streamer's first batch is answered");
    for i in 0..OTHERS {
        let mut client = server.connect();
        client.stream().set_read_timeout(Some(FAIR_GUARD)).unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        client.stream().write_all(request).unwrap();
        let response = client
            .read_response()
            .unwrap_or_else(|| panic!("connection {i}: closed unanswered while another streamed"));
        assert_eq!(response.status, 200, "connection {i}: {response:?}");
    }
    stop.store(true, Ordering::Relaxed);
    writing.join().unwrap();
    let streamed = reading.join().expect("the streamer answered throughout");
    let _ = streamer.stream().shutdown(Shutdown::Both);
    assert!(
        streamed > OTHERS * BATCH / 4,
        "the streamer was busy all along: {streamed} responses"
    );
}

/// An app that binds, then sleeps without a socket call (`unik::thread::sleep`), still
/// answers the network: the runtime polls the stack while it sleeps. QEMU's user network
/// resolves the guest's address (ARP) and completes the handshake and the data's ACK during
/// the sleep; the app then finds connection and bytes without waiting
/// (`fixtures/apps/idle`), which it cannot if nothing moved the stack meanwhile.
#[test]
fn a_sleeping_app_still_completes_handshakes() {
    let port = free_port();
    let dir = Path::new(ROOT).join("target/net-tests");
    std::fs::create_dir_all(&dir).expect("target/net-tests");
    let manifest = dir.join(format!("idle-{port}.yaml"));
    std::fs::write(
        &manifest,
        format!(
            "name: idle\n\
             app:\n  package: idle\n  path: {ROOT}/fixtures/apps/idle\n\
             arch: x86_64\nplatform: qemu-microvm\nprofile: network\n\
             components:\n  require: [net]\n  params:\n    net:\n      \
             address: 10.0.2.15/24\n      gateway: 10.0.2.2\n\
             ports:\n  - \"{port}:8080\"\n"
        ),
    )
    .expect("writing the test manifest");
    let out = uniklink()
        .args(["build", "--release", "-m"])
        .arg(&manifest)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink build runs");
    assert!(
        out.status.success(),
        "building the idle app failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut runner = uniklink()
        .args(["run", "--release", "--no-build", "--accel", "tcg"])
        .args(["--timeout", RUN_GUARD_SECS, "-m"])
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo-uniklink run starts");
    let mut console = BufReader::new(runner.stdout.take().expect("stdout is piped"));
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        if console.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = runner.kill();
            panic!("the guest ended before sleeping: {seen:#?}");
        }
        if line.starts_with("idle: listening on :8080, asleep") {
            break;
        }
        seen.push(line);
    }
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), IO_GUARD)
        .expect("connecting to the forward");
    stream.set_read_timeout(Some(IO_GUARD)).unwrap();
    stream.write_all(b"hello\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let mut rest = String::new();
    let _ = console.read_to_string(&mut rest);
    let status = runner.wait().expect("the runner exits");
    assert_eq!(
        reply, "awake, 6 bytes arrived\n",
        "console after sleeping: {rest}"
    );
    assert!(status.success(), "{status}; console after sleeping: {rest}");
}

/// The guest's frames on a network with nothing else on it (a QEMU hub port), written by
/// QEMU to a pcap file, and the runner's JSON report of a boot stopped at `listening`.
struct Isolated {
    frames: Vec<Vec<u8>>,
    report: serde_json::Value,
}

/// Boots `image` on a network with no DHCP server and no peer for [`ISOLATED_RUN_SECS`], well
/// past its first listening socket.
fn boot_isolated(image: &Path) -> Isolated {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pcap = dir.path().join("frames.pcap");
    let out = uniklink()
        .args([
            "run",
            "--accel",
            "tcg",
            "--json",
            "--timeout",
            ISOLATED_RUN_SECS,
        ])
        // The guest states its milestones only when asked, as `--until` asks.
        .args(["--append", "uniklink.timeline"])
        .arg(image)
        .args(["--", "-netdev", "hubport,id=n0,hubid=0"])
        .args(["-device", "virtio-net-device,netdev=n0", "-object"])
        .arg(format!(
            "filter-dump,id=f0,netdev=n0,file={}",
            pcap.display()
        ))
        .output()
        .expect("cargo-uniklink run runs");
    let console = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the JSON report ({e}); console: {console}"));
    assert_eq!(
        report["timed_out"], true,
        "the guest runs until the timeout: {report:#}\n{console}"
    );
    let frames = pcap_frames(&std::fs::read(&pcap).expect("QEMU wrote the pcap file"));
    Isolated { frames, report }
}

/// The frames of a pcap file (microsecond format, this host's byte order).
fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(
        bytes.get(..4),
        Some(&0xa1b2_c3d4u32.to_ne_bytes()[..]),
        "pcap magic"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(header) = bytes.get(at..at + 16) {
        let len = u32::from_ne_bytes(header[8..12].try_into().unwrap()) as usize;
        let frame = bytes
            .get(at + 16..at + 16 + len)
            .expect("a whole frame in the pcap file");
        frames.push(frame.to_vec());
        at += 16 + len;
    }
    frames
}

/// Whether `frame` is an IPv4 UDP datagram to port 67: a DHCP client's request.
fn is_dhcp_request(frame: &[u8]) -> bool {
    let ipv4 = frame.get(12..14) == Some(&[0x08, 0x00]);
    let Some(ip) = frame.get(14..).filter(|_| ipv4) else {
        return false;
    };
    let header = usize::from(ip.first().map_or(0, |b| b & 0x0f)) * 4;
    ip.get(9) == Some(&17) && ip.get(header + 2..header + 4) == Some(&67u16.to_be_bytes())
}

/// The boot is timed to the first listening socket, which the report carries beside the
/// ready marker, ordered after it.
fn assert_listening_after_ready(report: &serde_json::Value) {
    let listening = report["milestones_ns"]["listening"]
        .as_u64()
        .unwrap_or_else(|| panic!("a listening milestone: {report:#}"));
    let ready = report["ready_ns"].as_u64().expect("a ready time");
    assert!(listening >= ready, "{report:#}");
}

/// With the manifest's static address (httpd.yaml), the stack never asks DHCP: the server
/// answers on QEMU's user network, whose DHCP server is never asked.
#[test]
fn a_static_address_skips_dhcp() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pcap = dir.path().join("frames.pcap");
    let port = free_port();
    let server = Server::boot_with_network(
        port,
        &[
            "-netdev",
            &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080"),
            "-device",
            "virtio-net-device,netdev=n0",
            "-object",
            &format!("filter-dump,id=f0,netdev=n0,file={}", pcap.display()),
        ],
    );
    assert_serves_the_page(server.port);
    drop(server);
    let frames = pcap_frames(&std::fs::read(&pcap).expect("QEMU wrote the pcap file"));
    assert!(!frames.is_empty(), "the page went through the dump");
    assert!(
        !frames.iter().any(|f| is_dhcp_request(f)),
        "no DHCP request with a static address"
    );
}

/// Without a static address the DHCP client starts with the stack but `main` does not wait
/// for a lease: with no DHCP server and a `dhcp_wait` of an hour, the server still reaches its
/// first listening socket, and the request it sent is on the wire.
#[test]
fn dhcp_does_not_hold_up_main() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("manifests/httpd.yaml"))
        .expect("manifests/httpd.yaml");
    for line in ["      address: 10.0.2.15/24\n", "      gateway: 10.0.2.2\n"] {
        assert!(text.contains(line), "httpd.yaml has `{}`", line.trim());
    }
    let text = text
        .replace("name: httpd\n", "name: httpd-dhcp\n")
        .replace("      address: 10.0.2.15/24\n", "      dhcp_wait: 3600s\n")
        .replace("      gateway: 10.0.2.2\n", "")
        .replace(
            "path: ../fixtures/apps/httpd",
            &format!("path: {ROOT}/fixtures/apps/httpd"),
        );
    let dir = Path::new(ROOT).join("target/net-tests");
    std::fs::create_dir_all(&dir).expect("target/net-tests");
    let manifest = dir.join("httpd-dhcp.yaml");
    std::fs::write(&manifest, text).expect("writing the test manifest");
    let out = uniklink()
        .args(["build", "--release", "-m"])
        .arg(&manifest)
        .args(["--", "--locked"])
        .output()
        .expect("cargo-uniklink build runs");
    assert!(
        out.status.success(),
        "building httpd-dhcp failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image =
        Path::new(ROOT).join("fixtures/apps/httpd/target/uniklink/release/httpd-dhcp-x86_64.elf");
    let boot = boot_isolated(&image);
    assert_listening_after_ready(&boot.report);
    assert!(
        boot.frames.iter().any(|f| is_dhcp_request(f)),
        "the DHCP client asked for a lease ({} frames)",
        boot.frames.len()
    );
}

/// A `dev` build (no `--release`), as `cargo uniklink run -m manifests/httpd.yaml` makes
/// one, reaches its first listening socket: unoptimized code needs a deeper boot stack than
/// the profile's, which the build reserves.
#[test]
fn a_debug_build_boots_to_listening() {
    let manifest = manifest_with_port(free_port());
    let out = uniklink()
        .args(["run", "--accel", "tcg", "--timeout", RUN_GUARD_SECS])
        .args(["--until", "listening", "--json", "--locked", "-m"])
        .arg(&manifest)
        .output()
        .expect("cargo-uniklink run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["milestones_ns"]["listening"].is_u64(), "{report:#}");
}

/// The net component's `component.yaml` declares exactly the parameters its code reads, each
/// with the type the code reads, and the manifest's overrides resolve against it.
#[test]
fn the_component_file_matches_the_parameters_the_code_reads() {
    let dir = Path::new(ROOT).join("libos/net");
    let spec = uniklink_config::load_component(&dir.join("component.yaml"))
        .unwrap_or_else(|e| panic!("libos/net/component.yaml: {e:?}"));
    assert_eq!(spec.name, "net");
    assert_eq!(spec.init.as_deref(), Some("unik_net_init"));
    let source = std::fs::read_to_string(dir.join("src/params.rs")).expect("params.rs");
    // The fields of `component_params!`: `name: type = default,`.
    let mut read: Vec<(&str, &str)> = source
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(": ")?;
            let (ty, _default) = rest.split_once(" = ")?;
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
                .then_some((name, ty))
        })
        .collect();
    read.sort_unstable();
    let declared: Vec<(&str, &str)> = spec
        .params
        .values()
        .map(|param| (param.name.as_str(), param.ty.name()))
        .collect();
    assert_eq!(declared, read, "component.yaml vs src/params.rs");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
    assert!(
        lib.contains(
            "link_section = \".init_array\")]\nstatic REGISTER: extern \"C\" fn() = unik_net_init;"
        ),
        "the init is registered in .init_array"
    );

    let registry =
        uniklink_config::ComponentRegistry::from_component_files(&[dir.join("component.yaml")])
            .expect("a registry from the net component");
    let manifest = Path::new(ROOT).join("manifests/httpd.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let resolved = uniklink_config::Manifest::from_text(&manifest, &text, &registry)
        .unwrap_or_else(|e| panic!("httpd.yaml against net's component.yaml: {e:?}"))
        .resolve();
    let net = resolved
        .components
        .iter()
        .find(|c| c.name == "net")
        .expect("net is resolved");
    let value = |name: &str| net.params[name].value.as_u64();
    assert_eq!(value("tcp_window"), 128 * 1024);
    assert_eq!(value("socket_rx_buffer"), 128 * 1024);
    assert_eq!(value("max_sockets"), 128);
    assert_eq!(value("rx_ring_size"), 256, "the network profile's default");
}

/// The woven image: `net` is live because the app reaches it, its init runs from the glue,
/// and the manifest's parameter overrides are the bytes the component reads.
#[test]
fn the_woven_image_carries_the_manifests_net_parameters() {
    build_httpd();
    let dir = Path::new(ROOT).join("fixtures/apps/httpd/target/uniklink/release");
    let bytes = std::fs::read(dir.join("httpd-x86_64.elf")).expect("the image");
    let elf = goblin::elf::Elf::parse(&bytes).expect("an ELF image");
    let param = |name: &str| -> u32 {
        let symbol = format!("__uniklink_param_net_{name}");
        let sym = elf
            .syms
            .iter()
            .find(|s| elf.strtab.get_at(s.st_name) == Some(symbol.as_str()))
            .unwrap_or_else(|| panic!("{symbol} in the image"));
        assert_eq!(
            sym.st_bind(),
            goblin::elf::sym::STB_GLOBAL,
            "{symbol} comes from the glue, not the weak default"
        );
        let header = elf
            .program_headers
            .iter()
            .find(|ph| {
                ph.p_type == goblin::elf::program_header::PT_LOAD
                    && (ph.p_vaddr..ph.p_vaddr + ph.p_filesz).contains(&sym.st_value)
            })
            .expect("the parameter is in a loaded segment");
        let at = (header.p_offset + sym.st_value - header.p_vaddr) as usize;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    };
    assert_eq!(param("max_sockets"), 128);
    assert_eq!(param("socket_rx_buffer"), 128 * 1024);
    assert_eq!(param("tcp_window"), 128 * 1024);
    assert_eq!(param("socket_tx_buffer"), 64 * 1024, "network profile");
    assert_eq!(param("rx_ring_size"), 256, "network profile");
    assert_eq!(param("gateway"), 0x0a00_0202, "10.0.2.2");
    // 10.0.2.15/24: the address's bits above the prefix length.
    assert_eq!(param("address"), 0x0002_0f18, "the low half of the u64");

    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("httpd-x86_64.json")).expect("the build report"),
    )
    .expect("the report is JSON");
    let net = report["weave"]["components"]
        .as_array()
        .expect("weave.components")
        .iter()
        .find(|c| c["name"] == "net")
        .expect("net in the weave report");
    assert_eq!(net["live"], true, "{net}");
    assert_eq!(net["init"], "unik_net_init", "{net}");
    // What bounds the connections served at once and waiting, as the report shows them.
    assert_eq!(net["params"]["max_sockets"], 128, "{net}");
    assert_eq!(
        net["params"]["syn_backlog"], 1024,
        "the network profile's: {net}"
    );
    assert!(
        report["weave"]["init_order"]
            .as_array()
            .is_some_and(|order| order.iter().any(|i| i == "unik_net_init")),
        "{report:#}"
    );
}

/// httpd's request parser, compiled for the host: cases the QEMU tests do not reach cheaply.
mod parser {
    use super::http;
    use super::http::{Parsed, parse};

    /// What parsing `input` gives, in one line: `incomplete`, `invalid <status>` or
    /// `complete <method> <path> keep-alive|close <bytes used>`.
    fn outcome(input: &[u8]) -> String {
        match parse(input) {
            Parsed::Incomplete => "incomplete".to_owned(),
            Parsed::Invalid(response) => {
                let head = response.head(false);
                format!("invalid {}", &head["HTTP/1.1 ".len()..][..3])
            }
            Parsed::Complete(request, used) => format!(
                "complete {} {} {} {used}",
                request.method,
                request.path,
                if request.keep_alive {
                    "keep-alive"
                } else {
                    "close"
                }
            ),
        }
    }

    #[test]
    fn requests_parse_as_expected() {
        let big_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", "complete GET / keep-alive 18"),
            (
                b"GET /api/status?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                "complete GET /api/status keep-alive 41",
            ),
            (b"GET / HTTP/1.0\r\n\r\n", "complete GET / close 18"),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                "complete GET / keep-alive 42",
            ),
            (
                b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n",
                "complete GET / close 37",
            ),
            (
                b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                "complete HEAD / keep-alive 19",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                "complete POST / keep-alive 41",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab",
                "incomplete",
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", "incomplete"),
            (b"GE", "incomplete"),
            (b"", "incomplete"),
            (b"get / HTTP/1.1\r\n", "invalid 400"),
            (b"\x00\x01", "invalid 400"),
            (b"GET / HTTP/2.0\r\n\r\n", "invalid 400"),
            (b"GET nopath HTTP/1.1\r\n\r\n", "invalid 400"),
            (b"GET / HTTP/1.1 extra\r\n\r\n", "invalid 400"),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", "invalid 400"),
            (
                b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                "invalid 400",
            ),
            (b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", "invalid 400"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n",
                "invalid 413",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "invalid 501",
            ),
            (big_head.as_bytes(), "invalid 431"),
            (&big_head.as_bytes()[..17_000], "invalid 431"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                outcome(input),
                *expected,
                "{:?}",
                String::from_utf8_lossy(&input[..input.len().min(60)])
            );
        }
    }

    /// RFC 9112's framing rules (§2.2, §3, §5, §6.1, §6.3, §7.1) and RFC 9110 §8.6, case by
    /// case; the RFC's own example messages where it gives one. Every `invalid` answer closes
    /// the connection (httpd queues it with `Connection: close`).
    #[test]
    fn framing_follows_rfc_9112() {
        let cases: &[(&str, &[u8], &str)] = &[
            // §3.2 examples of request lines (origin-form).
            (
                "origin-form with a query",
                b"GET /where?q=now HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
                "complete GET /where keep-alive 52",
            ),
            (
                "§3.2.1 example",
                b"GET /pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
                "complete GET /pub/WWW/TheProject.html keep-alive 64",
            ),
            // §3: exactly one SP between the three parts.
            ("two spaces after the method", b"GET  / HTTP/1.1\r\n\r\n", "invalid 400"),
            ("two spaces before the version", b"GET /  HTTP/1.1\r\n\r\n", "invalid 400"),
            ("a tab as separator", b"GET\t/ HTTP/1.1\r\n\r\n", "invalid 400"),
            ("leading space", b" GET / HTTP/1.1\r\n\r\n", "invalid 400"),
            ("trailing space", b"GET / HTTP/1.1 \r\n\r\n", "invalid 400"),
            ("space inside the target", b"GET /a b HTTP/1.1\r\n\r\n", "invalid 400"),
            ("lowercase version", b"GET / http/1.1\r\n\r\n", "invalid 400"),
            // §2.2: an empty line before the request line is ignored.
            (
                "a CRLF before the request line",
                b"\r\nGET / HTTP/1.1\r\n\r\n",
                "complete GET / keep-alive 20",
            ),
            // §2.2: bare CR is invalid; a bare LF is not taken as a line end.
            ("bare CR in a field", b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "invalid 400"),
            ("bare LF ending lines", b"GET / HTTP/1.1\nHost: a\n\n", "invalid 400"),
            ("bare LF in a field", b"GET / HTTP/1.1\r\nX: a\nb\r\n\r\n", "invalid 400"),
            // §5.1: no whitespace between field name and colon (the third case).
            (
                "space before the colon of Transfer-Encoding",
                b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n",
                "invalid 400",
            ),
            ("tab before the colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", "invalid 400"),
            ("empty field name", b"GET / HTTP/1.1\r\n: a\r\n\r\n", "invalid 400"),
            (
                "field value with OWS around it",
                b"GET / HTTP/1.1\r\nHost: \t a \t\r\n\r\n",
                "complete GET / keep-alive 31",
            ),
            ("NUL in a field value", b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", "invalid 400"),
            // §5.2: obs-fold, and §2.2 whitespace before the first field.
            (
                "obs-fold",
                b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
                "invalid 400",
            ),
            (
                "obs-fold with a tab",
                b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
                "invalid 400",
            ),
            (
                "whitespace before the first field",
                b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
                "invalid 400",
            ),
            // §3.2: at most one Host.
            (
                "two Host fields",
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                "invalid 400",
            ),
            // §6.3 item 5, RFC 9110 §8.6: Content-Length is 1*DIGIT, one value.
            (
                "two different Content-Length fields (the issue's first case)",
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
                "invalid 400",
            ),
            (
                "RFC 9110 §8.6: `42, 42` is taken as 42",
                b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nab",
                "complete POST / keep-alive 43",
            ),
            (
                "the same value in two fields is taken once",
                b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
                "complete POST / keep-alive 59",
            ),
            (
                "a list of different values",
                b"POST / HTTP/1.1\r\nContent-Length: 2, 3\r\n\r\nabc",
                "invalid 400",
            ),
            (
                "Content-Length: +5 (the issue's second case)",
                b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nabcde",
                "invalid 400",
            ),
            ("negative", b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "invalid 400"),
            ("hexadecimal", b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", "invalid 400"),
            ("empty", b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", "invalid 400"),
            ("empty list element", b"POST / HTTP/1.1\r\nContent-Length: 1,\r\n\r\na", "invalid 400"),
            ("digits with a space", b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", "invalid 400"),
            (
                "overflow",
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
                "invalid 400",
            ),
            (
                "leading zeros are still 1*DIGIT",
                b"POST / HTTP/1.1\r\nContent-Length: 003\r\n\r\nabc",
                "complete POST / keep-alive 43",
            ),
            (
                "a body then a pipelined request",
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\naGET / HTTP/1.1\r\n\r\n",
                "complete POST / keep-alive 39",
            ),
            // §6.3 item 4 otherwise: a final chunked coding frames the request, but httpd
            // takes no chunked bodies: 501, and the connection is closed.
            (
                "§7.1 chunked body",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                  4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
                "invalid 501",
            ),
            (
                "coding names are case-insensitive",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
                "invalid 501",
            ),
            // §6.3 item 4: the final coding of a request must be chunked, else 400.
            (
                "gzip alone",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                "invalid 400",
            ),
            (
                "chunked, gzip",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                "invalid 400",
            ),
            (
                "chunked twice (§7.1: never applied more than once)",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                "invalid 400",
            ),
            (
                "an empty Transfer-Encoding",
                b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
                "invalid 400",
            ),
            // §6.1 example: `gzip, chunked`; httpd decodes no gzip, so 501.
            (
                "§6.1 example: gzip, chunked",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                "invalid 501",
            ),
            (
                "gzip and chunked in two fields",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                "invalid 501",
            ),
            // §6.3 item 3: TE with CL is refused (a server may), whichever comes first.
            (
                "CL then TE",
                b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "invalid 400",
            ),
            (
                "TE then CL",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
                "invalid 400",
            ),
            // §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing.
            (
                "TE in HTTP/1.0",
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "invalid 400",
            ),
            // RFC 9110 §7.6.1: Connection is a list, `close` wins.
            (
                "Connection as a list",
                b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
                "complete GET / close 49",
            ),
        ];
        assert!(cases.len() >= 30);
        let mut wrong = Vec::new();
        for (name, input, expected) in cases {
            let got = outcome(input);
            if got != *expected {
                wrong.push(format!("{name}: expected `{expected}`, got `{got}`"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn head_responses_keep_the_length_and_drop_the_body() {
        let response = http::Response::html("<p>hi</p>").for_method("HEAD");
        assert!(response.head(true).contains("Content-Length: 9\r\n"));
        assert!(response.head(true).contains("Connection: keep-alive\r\n"));
        assert!(response.body().is_empty());
        let get = http::Response::html("<p>hi</p>").for_method("GET");
        assert_eq!(get.body(), b"<p>hi</p>");
        assert!(get.head(false).ends_with("Connection: close\r\n\r\n"));
    }
}

/// The conventional path: the same archive linked by GNU ld (every `.init_array` entry kept,
/// the runtime's weak `uniklink_start` walking them, the parameters' weak defaults) serves too.
#[test]
fn a_gnu_ld_link_of_the_same_archive_serves_with_the_default_parameters() {
    build_httpd();
    let archive = Path::new(ROOT)
        .join("fixtures/apps/httpd/target/uniklink/cargo/x86_64-unknown-none/release/libhttpd.a");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("pvh.ld");
    std::fs::write(
        &script,
        "ENTRY(_pvh_start)\nSECTIONS\n{\n  . = 0x100000;\n  .note.Xen : { KEEP(*(.note.Xen)) }\n\
         .text : { *(.text .text.*) }\n  . = ALIGN(4096);\n  .rodata : { *(.rodata .rodata.*) }\n\
         .init_array : { __init_array_start = .; KEEP(*(.init_array .init_array.*)) \
         __init_array_end = .; }\n  . = ALIGN(4096);\n  .data : { *(.data .data.*) }\n\
         .bss : { *(.bss .bss.*) *(COMMON) }\n  _end = .;\n}\n",
    )
    .unwrap();
    let note = dir.path().join("note.S");
    std::fs::write(
        &note,
        ".section .note.Xen, \"a\", @note\n.p2align 2\n.long 4\n.long 4\n.long 18\n\
         .asciz \"Xen\"\n.long _pvh_start\n",
    )
    .unwrap();
    let note_object = dir.path().join("note.o");
    let status = Command::new("as")
        .args(["--64", "-o"])
        .arg(&note_object)
        .arg(&note)
        .status()
        .expect("GNU as runs");
    assert!(status.success(), "assembling the PVH note");
    let image = dir.path().join("httpd-ld.elf");
    let out = Command::new("ld")
        .args([
            "-m",
            "elf_x86_64",
            "-static",
            "--gc-sections",
            "-z",
            "max-page-size=0x1000",
        ])
        .arg("-T")
        .arg(&script)
        .arg("-o")
        .arg(&image)
        .arg(&note_object)
        .arg(&archive)
        .output()
        .expect("GNU ld runs");
    assert!(
        out.status.success(),
        "GNU ld: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bytes = std::fs::read(&image).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let max_sockets = elf
        .syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some("__uniklink_param_net_max_sockets"))
        .expect("the parameter symbol");
    assert_eq!(
        max_sockets.st_bind(),
        goblin::elf::sym::STB_WEAK,
        "the component's own default"
    );

    let port = free_port();
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080");
    let mut cmd = uniklink();
    cmd.args(["run", "--accel", "tcg", "--timeout", RUN_GUARD_SECS])
        .args([
            "--append",
            "uniklink.net.ip=10.0.2.15/24 uniklink.net.gateway=10.0.2.2",
        ])
        .arg(&image)
        .args([
            "--",
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-device,netdev=n0",
        ]);
    let server = Server::start(cmd, port);
    assert_serves_the_page(server.port);
}
