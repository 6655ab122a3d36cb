//! The fetch example (`fixtures/apps/fetch`, `manifests/fetch.yaml`): an HTTP/1.1 client built
//! with `cargo uniklink build --release` and booted with `cargo uniklink run` under TCG against
//! an HTTP server and a DNS server this test runs on the host's 127.0.0.1.
//!
//! The guest reaches the host as 10.0.2.2 through QEMU's user network, which hands its TCP
//! connections and UDP datagrams to 127.0.0.1. The DNS server listens on an ephemeral port that
//! the guest is told with `uniklink.net.dns=10.0.2.2:<port>`: QEMU's own DNS address
//! (10.0.2.3:53, what its DHCP server offers) asks the host's resolver, its `guestfwd` carries
//! TCP only, and binding port 53 on the host needs privileges. Every socket call has a timeout,
//! every loop a bound, and every guest the runner's timeout; nothing is timed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use sha2::{Digest, Sha256};

// The app's HTTP and date code is plain `alloc` code, so the host tests it directly (see
// `client`).
extern crate alloc;
#[path = "../fixtures/apps/fetch/src/http.rs"]
mod http;
#[path = "../fixtures/apps/fetch/src/utc.rs"]
mod utc;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The name the test's DNS server knows; it answers 10.0.2.2, the host as the guest sees it.
const TEST_NAME: &str = "fetch.uniklink.test";
/// A name the test's DNS server answers with a CNAME record for `TEST_NAME`, then its address.
const TEST_ALIAS: &str = "alias.uniklink.test";
/// Guards on every host socket operation; the guest answers in milliseconds.
const IO_GUARD: Duration = Duration::from_secs(30);
/// How long a server thread sleeps between looks for a connection or its stop flag.
const POLL: Duration = Duration::from_millis(20);
/// The runner kills the guest after this long, however it is stuck.
const RUN_GUARD_SECS: &str = "300";
/// The body the HTTP server serves: a few hundred KiB, many TCP windows.
const BODY_LEN: usize = 300 * 1024;

fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").expect("the cargo-uniklink binary");
    cmd.current_dir(ROOT).arg("uniklink");
    cmd
}

fn build(manifest: &str) {
    let out = uniklink()
        .args(["build", "--release", "-m", manifest, "--", "--locked"])
        .output()
        .expect("cargo-uniklink build runs");
    assert!(
        out.status.success(),
        "building {manifest} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the image from the real manifest, once per test binary.
fn build_fetch() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build("manifests/fetch.yaml"));
}

/// Deterministic noise (xorshift), so that a byte lost, doubled or moved changes the hash.
fn body() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..BODY_LEN)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A port nobody listens on right now.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// A thread that runs `step` until its owner is dropped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn spawn(port: u16, mut step: impl FnMut() + Send + 'static) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                step();
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP/1.1 server: `/body` with a `Content-Length`, `/chunked` in chunks of many sizes with
/// an extension and a trailer, `/moved` a redirect to `/body`; 404 otherwise. It records each
/// request's head.
fn http_server(requests: Arc<Mutex<Vec<String>>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("an HTTP port");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = body();
    Server::spawn(port, move || match listener.accept() {
        Ok((stream, _)) => serve(stream, &body, &requests),
        Err(_) => thread::sleep(POLL),
    })
}

fn serve(mut stream: TcpStream, body: &[u8], requests: &Mutex<Vec<String>>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(IO_GUARD)).unwrap();
    stream.set_write_timeout(Some(IO_GUARD)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    requests.lock().unwrap().push(head);
    let mut response = Vec::new();
    match path.as_str() {
        "/body" => {
            response.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            response.extend_from_slice(body);
        }
        "/chunked" => {
            response.extend_from_slice(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            );
            let sizes = [1, 7, 100, 4096, 65536, 3000, 0x1ff];
            let mut rest = body;
            for (i, size) in sizes.iter().cycle().enumerate() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, after) = rest.split_at(rest.len().min(*size));
                let line = match i % 3 {
                    0 => format!("{:x}\r\n", chunk.len()),
                    1 => format!("{:X};note=\"x\"\r\n", chunk.len()),
                    _ => format!("{:04x} \r\n", chunk.len()),
                };
                response.extend_from_slice(line.as_bytes());
                response.extend_from_slice(chunk);
                response.extend_from_slice(b"\r\n");
                rest = after;
            }
            response.extend_from_slice(b"0\r\nX-Trailer: done\r\n\r\n");
        }
        "/moved" => response.extend_from_slice(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /body\r\nContent-Length: 5\r\n\
              Connection: close\r\n\r\nmoved",
        ),
        _ => response.extend_from_slice(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    }
    let _ = stream.write_all(&response);
}

/// A DNS server that answers an A query for `TEST_NAME` with 10.0.2.2, one for `TEST_ALIAS`
/// with a CNAME record and the same address, and says NXDOMAIN for every other name. It records the names it is asked.
fn dns_server(asked: Arc<Mutex<Vec<String>>>) -> Server {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a DNS port");
    socket.set_read_timeout(Some(POLL)).unwrap();
    let port = socket.local_addr().unwrap().port();
    Server::spawn(port, move || {
        let mut query = [0u8; 512];
        let Ok((len, from)) = socket.recv_from(&mut query) else {
            return;
        };
        if let Some((name, reply)) = dns_reply(&query[..len]) {
            asked.lock().unwrap().push(name);
            let _ = socket.send_to(&reply, from);
        }
    })
}

/// The name asked for and the reply, if `query` is a standard query with one question.
fn dns_reply(query: &[u8]) -> Option<(String, Vec<u8>)> {
    let is_query = query.get(2)? & 0xf8 == 0; // QR clear, opcode QUERY
    if !is_query || query.get(4..6)? != [0, 1] {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = query.get(at..at + 2)?;
    let question_end = at + 4;
    let name = labels.join(".");
    let mut reply = query.get(..question_end)?.to_vec();
    // QR set, RD copied; RA set; no records yet.
    reply[2] = 0x80 | (query[2] & 0x01);
    reply[3] = 0x80;
    reply[6..12].fill(0);
    // A record: its name as a pointer into the message, type, class IN, TTL 60, data length.
    let record = |reply: &mut Vec<u8>, name_at: usize, kind: u8, data: &[u8]| {
        reply.extend_from_slice(&[0xc0 | (name_at >> 8) as u8, name_at as u8, 0, kind, 0, 1]);
        reply.extend_from_slice(&[0, 0, 0, 60, 0, data.len() as u8]);
        reply.extend_from_slice(data);
    };
    const A: u8 = 1;
    const CNAME: u8 = 5;
    match name.as_str() {
        TEST_NAME if qtype == [0, A] => {
            reply[7] = 1;
            record(&mut reply, 12, A, &[10, 0, 2, 2]);
        }
        TEST_ALIAS if qtype == [0, A] => {
            reply[7] = 2;
            let target: Vec<u8> = TEST_NAME
                .split('.')
                .flat_map(|label| std::iter::once(label.len() as u8).chain(label.bytes()))
                .chain([0])
                .collect();
            // The CNAME record's data starts 12 bytes into it: after its name pointer, type,
            // class, TTL and data length.
            let target_at = reply.len() + 12;
            record(&mut reply, 12, CNAME, &target);
            record(&mut reply, target_at, A, &[10, 0, 2, 2]);
        }
        TEST_NAME | TEST_ALIAS => {}
        _ => reply[3] |= 3, // NXDOMAIN
    }
    Some((name, reply))
}

/// What a guest printed after the ready marker, and its exit code.
struct Run {
    code: Option<i32>,
    lines: Vec<String>,
}

impl Run {
    fn has(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }
}

/// Boots the fetch image with `url` as its argument, `cmdline` as the rest of its command
/// line (the name server) and `timeout_ms` in its environment, on the user network `run` gives
/// a live net component.
fn fetch(url: &str, cmdline: &str, timeout_ms: Option<u32>) -> Run {
    build_fetch();
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
        "manifests/fetch.yaml",
        "--append",
        cmdline,
        "--arg",
        url,
    ]);
    if let Some(ms) = timeout_ms {
        cmd.args(["-e", &format!("FETCH_TIMEOUT_MS={ms}")]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("cargo-uniklink run runs");
    let console = String::from_utf8_lossy(&out.stdout);
    Run {
        code: out.status.code(),
        lines: console
            .lines()
            .skip_while(|l| !l.starts_with("uniklink:ready"))
            .skip(1)
            .map(str::to_owned)
            .collect(),
    }
}

#[test]
fn fetches_named_hosts_by_length_chunked_and_alias_and_prints_a_redirect() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let web = http_server(Arc::clone(&requests));
    let dns = dns_server(Arc::clone(&asked));
    let whole = format!("200 {BODY_LEN} bytes sha256 {}", sha256_hex(&body()));
    let moved = format!("301 5 bytes sha256 {}", sha256_hex(b"moved"));
    let cases = [
        (TEST_NAME, "/body", &whole),
        (TEST_NAME, "/chunked", &whole),
        (TEST_NAME, "/moved", &moved),
        (TEST_ALIAS, "/body", &whole),
    ];
    for (host, path, expected) in cases {
        let run = fetch(
            &format!("http://{host}:{}{path}", web.port),
            &format!("uniklink.net.dns=10.0.2.2:{}", dns.port),
            None,
        );
        let context = format!("{host}{path}: {:#?}", run.lines);
        assert_eq!(run.code, Some(0), "{context}");
        assert!(run.has(&format!("fetch: {host} is 10.0.2.2")), "{context}");
        assert!(run.has(&format!("fetch: {expected}")), "{context}");
        let time = |l: &String| l.starts_with("fetch: at 20") && l.ends_with('Z');
        assert!(run.lines.iter().any(time), "{context}");
    }
    // One query and one request per boot: the redirect was not followed.
    let hosts: Vec<&str> = cases.iter().map(|(host, ..)| *host).collect();
    assert_eq!(*asked.lock().unwrap(), hosts);
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), cases.len(), "{requests:#?}");
    for (request, (host, path, _)) in requests.iter().zip(cases) {
        let line = format!("GET {path} HTTP/1.1\r\n");
        assert!(request.starts_with(&line), "{request}");
        let host = format!("\r\nHost: {host}:{}\r\n", web.port);
        assert!(request.contains(&host), "{request}");
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }
}

#[test]
fn a_closed_port_refuses_the_connection() {
    let port = closed_port();
    let run = fetch(&format!("http://10.0.2.2:{port}/"), "", None);
    assert_eq!(run.code, Some(1), "{:#?}", run.lines);
    let refused =
        format!("fetch: error: connect 10.0.2.2:{port}: ConnectionRefused (connection refused)");
    assert!(run.has(&refused), "{:#?}", run.lines);
}

#[test]
fn a_host_that_never_answers_times_out() {
    // QEMU's user network answers ARP only for its own addresses in 10.0.2.0/24, so a SYN to
    // another one never leaves the guest.
    let run = fetch("http://10.0.2.99/", "", Some(2000));
    assert_eq!(run.code, Some(1), "{:#?}", run.lines);
    assert!(
        run.has("fetch: error: connect 10.0.2.99:80: TimedOut (timed out)"),
        "{:#?}",
        run.lines
    );
}

#[test]
fn an_unknown_name_is_not_found() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let dns = dns_server(Arc::clone(&asked));
    let run = fetch(
        "http://nosuch.uniklink.test/",
        &format!("uniklink.net.dns=10.0.2.2:{}", dns.port),
        None,
    );
    assert_eq!(run.code, Some(1), "{:#?}", run.lines);
    assert!(
        run.has("fetch: error: resolve nosuch.uniklink.test: NameNotFound (name not found)"),
        "{:#?}",
        run.lines
    );
    assert_eq!(*asked.lock().unwrap(), ["nosuch.uniklink.test"]);
}

#[test]
fn a_silent_name_server_times_out() {
    // Bound, so the host does not answer with an ICMP error, and never read.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    let port = silent.local_addr().unwrap().port();
    let run = fetch(
        &format!("http://{TEST_NAME}/"),
        &format!("uniklink.net.dns=10.0.2.2:{port}"),
        Some(2500),
    );
    assert_eq!(run.code, Some(1), "{:#?}", run.lines);
    assert!(
        run.has(&format!(
            "fetch: error: resolve {TEST_NAME}: TimedOut (timed out)"
        )),
        "{:#?}",
        run.lines
    );
}

/// Symbols of the image whose Rust path starts with one of `paths`. Rust's legacy mangling
/// spells a path as `_ZN` and each segment's length and name.
fn symbols_under(image: &Path, paths: &[&[&str]]) -> Vec<String> {
    let bytes = std::fs::read(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let elf = goblin::elf::Elf::parse(&bytes).expect("an ELF image");
    let prefixes: Vec<String> = paths
        .iter()
        .map(|path| {
            let segments: String = path.iter().map(|s| format!("{}{s}", s.len())).collect();
            format!("_ZN{segments}")
        })
        .collect();
    elf.syms
        .iter()
        .filter(|sym| sym.st_shndx != 0)
        .filter_map(|sym| elf.strtab.get_at(sym.st_name))
        .filter(|name| prefixes.iter().any(|p| name.starts_with(p.as_str())))
        .map(str::to_owned)
        .collect()
}

/// The resolver and outgoing connections are in an image only if the app calls them: httpd
/// links the socket API and serves, but never resolves or connects.
#[test]
fn an_app_that_never_resolves_or_connects_keeps_no_dns_code() {
    build_fetch();
    build("manifests/httpd.yaml");
    let dns: &[&[&str]] = &[&["unik_net", "dns"], &["smoltcp", "wire", "dns"]];
    let connect: &[&[&str]] = &[
        &["unik_net", "tcp", "TcpStream", "connect"],
        &["unik_net", "stack", "Stack", "connect"],
        &["unik_net", "stack", "Stack", "routable"],
    ];
    let fetch =
        Path::new(ROOT).join("fixtures/apps/fetch/target/uniklink/release/fetch-x86_64.elf");
    let httpd =
        Path::new(ROOT).join("fixtures/apps/httpd/target/uniklink/release/httpd-x86_64.elf");
    assert!(
        !symbols_under(&fetch, dns).is_empty(),
        "fetch resolves names, so the check can see DNS code"
    );
    assert_eq!(symbols_under(&httpd, dns), Vec::<String>::new());
    assert_eq!(symbols_under(&httpd, connect), Vec::<String>::new());
}

/// The app's HTTP and date code, compiled for the host: cases one boot does not reach.
mod client {
    use super::http::{Body, Framing, Head, Malformed, Url, head_len, parse_head};
    use super::utc::Utc;

    #[test]
    fn utc_dates() {
        for (seconds, shown) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_798_761_600, "2027-01-01T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
        ] {
            assert_eq!(Utc(seconds).to_string(), shown, "{seconds}");
        }
    }

    #[test]
    fn urls() {
        let url = Url::parse("http://example.com:8080/a/b?c=d#frag").unwrap();
        assert_eq!(
            (url.host, url.port, url.path),
            ("example.com", 8080, "/a/b?c=d")
        );
        let url = Url::parse("http://10.0.2.2").unwrap();
        assert_eq!((url.host, url.port, url.path), ("10.0.2.2", 80, "/"));
        assert_eq!(
            url.request(),
            "GET / HTTP/1.1\r\nHost: 10.0.2.2\r\nUser-Agent: uniklink-fetch\r\n\
             Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
        );
        for bad in [
            "https://example.com/",
            "example.com",
            "http://",
            "http://:80/",
            "http://host:0/",
            "http://host:99999/",
            "http://user@host/",
            "http://host?query",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    fn head(text: &str) -> Result<Head, Malformed> {
        let bytes = text.as_bytes();
        assert_eq!(head_len(bytes), Ok(Some(bytes.len())), "{text:?}");
        parse_head(bytes)
    }

    #[test]
    fn heads() {
        let framing = |text: &str| head(text).map(|h| (h.status, h.framing));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Ok((200, Framing::Length(12)))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\nContent-Length: 3\r\n\r\n"),
            Ok((200, Framing::Chunked))
        );
        assert_eq!(
            framing("HTTP/1.0 404 Not Found\r\n\r\n"),
            Ok((404, Framing::UntilClose))
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
            Ok((204, Framing::Length(0)))
        );
        assert_eq!(
            framing("HTTP/1.1 100 Continue\r\n\r\n"),
            Ok((100, Framing::Length(0)))
        );
        for bad in [
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        assert_eq!(head_len(b"HTTP/1.1 200 OK\r\nA: b\r\n"), Ok(None));
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.resize(20_000, b'a');
        assert!(head_len(&huge).is_err());
        huge.extend_from_slice(b"\r\n\r\n");
        assert!(head_len(&huge).is_err());
    }

    /// The body `input` decodes to, fed in pieces of `piece` bytes, and whether a close
    /// after it is fine.
    fn decode(framing: Framing, input: &[u8], piece: usize) -> Result<Vec<u8>, Malformed> {
        let mut body = Body::new(framing);
        let mut out = Vec::new();
        for part in input.chunks(piece) {
            body.push(part, &mut |bytes: &[u8]| out.extend_from_slice(bytes))?;
        }
        if !body.is_done() {
            body.finish()?;
        }
        Ok(out)
    }

    #[test]
    fn bodies_in_any_pieces() {
        let chunked = b"3\r\nabc\r\n1A;ext=\"x\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0 \r\n\
                        Trailer: 1\r\n\r\nignored";
        for piece in [1, 2, 3, 5, 64, 4096] {
            assert_eq!(
                decode(Framing::Chunked, chunked, piece).unwrap(),
                b"abcabcdefghijklmnopqrstuvwxyz",
                "{piece}"
            );
            assert_eq!(
                decode(Framing::Length(4), b"abcdef", piece).unwrap(),
                b"abcd"
            );
            assert_eq!(
                decode(Framing::UntilClose, b"all of it", piece).unwrap(),
                b"all of it"
            );
        }
        assert_eq!(decode(Framing::Length(0), b"", 1).unwrap(), b"");
    }

    #[test]
    fn bad_bodies_are_errors() {
        let cases: [(Framing, &[u8]); 6] = [
            (Framing::Length(10), b"short"),
            (Framing::Chunked, b"3\r\nabc\r\n"),
            (Framing::Chunked, b"zz\r\nabc\r\n0\r\n\r\n"),
            (Framing::Chunked, b"\r\nabc\r\n"),
            (Framing::Chunked, b"2\r\nabc\r\n0\r\n\r\n"),
            (Framing::Chunked, b"3\nabc\r\n0\r\n\r\n"),
        ];
        for (framing, input) in cases {
            for piece in [1, 64] {
                assert!(
                    decode(framing, input, piece).is_err(),
                    "{framing:?} {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        let long_line = [b'1'; 2000];
        assert!(decode(Framing::Chunked, &long_line, 100).is_err());
    }
}
