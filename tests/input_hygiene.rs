//! Input hygiene (issue #20): every error names the file, special files never block, an input
//! is never overwritten, `check` rejects what `build` would, every error is reported, and the
//! same rules hold on every path. Each item is one table: the files a case makes in a fresh
//! directory, the command run there, and the exit status and words expected on stderr. No case
//! may change the directory: no output file, no input rewritten.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use xtask::toolchain::{Target, Toolchain};

/// A file a case makes before running, in its own directory.
#[derive(Clone, Copy)]
enum Make {
    /// `fixtures/malformed/valid.c` compiled; it defines `valid_entry`.
    Object(&'static str),
    /// A thin archive listing these members, relative to the archive.
    ThinArchive(&'static str, &'static [&'static str]),
    Fifo(&'static str),
    Dir(&'static str),
    /// A symbolic link at `.1` to `.0`.
    Symlink(&'static str, &'static str),
    /// A hard link at `.1` to `.0`.
    HardLink(&'static str, &'static str),
    Bytes(&'static str, &'static [u8]),
    /// A file whose text is too long or too repetitive to write out.
    Text(&'static str, fn() -> String),
}

struct Case {
    name: &'static str,
    make: &'static [Make],
    /// After `cargo uniklink`, run in the case's directory.
    args: &'static [&'static str],
    status: i32,
    /// Fragments stderr must contain, compared without whitespace and box drawing.
    stderr: &'static [&'static str],
}

/// Longest stderr a case may print: the messages quote offending values in excerpts.
const MAX_STDERR: usize = 8 * 1024;
/// A command still running after this long is taken to be blocked (on a FIFO).
const TIMEOUT: Duration = Duration::from_secs(60);

fn make(dir: &Path, file: Make) {
    match file {
        Make::Object(name) => {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/malformed/valid.c");
            Toolchain::discover_for(Target::X86_64)
                .unwrap_or_else(|error| panic!("{error}"))
                .compile(&source, &dir.join(name), &[])
                .unwrap_or_else(|error| panic!("{error}"));
        }
        Make::ThinArchive(name, members) => {
            let mut bytes = b"!<thin>\n".to_vec();
            for member in members {
                let header = format!(
                    "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    format!("{member}/"),
                    0,
                    0,
                    0,
                    644,
                    0
                );
                bytes.extend_from_slice(header.as_bytes());
            }
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        Make::Fifo(name) => {
            let status = Command::new("mkfifo").arg(dir.join(name)).status().unwrap();
            assert!(status.success(), "mkfifo {name}");
        }
        Make::Dir(name) => std::fs::create_dir(dir.join(name)).unwrap(),
        Make::Symlink(target, link) => std::os::unix::fs::symlink(target, dir.join(link)).unwrap(),
        Make::HardLink(target, link) => {
            std::fs::hard_link(dir.join(target), dir.join(link)).unwrap()
        }
        Make::Bytes(name, bytes) => std::fs::write(dir.join(name), bytes).unwrap(),
        Make::Text(name, text) => std::fs::write(dir.join(name), text()).unwrap(),
    }
}

/// Names, types and the bytes of regular files: what no failing command may change.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let state = if kind.is_file() {
                format!("{:?}", std::fs::read(entry.path()).unwrap())
            } else {
                format!("{kind:?}")
            };
            (entry.file_name().to_string_lossy().into_owned(), state)
        })
        .collect();
    entries.sort();
    entries
}

fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×' | '╰' | '─' | '▶'))
        .collect()
}

/// Runs one case; returns what did not match.
fn run_case(case: &Case) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for &file in case.make {
        make(dir.path(), file);
    }
    let before = snapshot(dir.path());
    let mut child = Command::cargo_bin("cargo-uniklink")
        .unwrap()
        .arg("uniklink")
        .args(case.args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            return vec![format!("still running after {TIMEOUT:?}: blocked")];
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(case.status) {
        problems.push(format!(
            "exit status {:?}, expected {}",
            out.status.code(),
            case.status
        ));
    }
    for fragment in case.stderr {
        if !squash(&stderr).contains(&squash(fragment)) {
            problems.push(format!("stderr does not say {fragment:?}"));
        }
    }
    if stderr.len() > MAX_STDERR {
        problems.push(format!("stderr is {} bytes long", stderr.len()));
    }
    if snapshot(dir.path()) != before {
        problems.push("the directory changed: an output was written or an input rewritten".into());
    }
    if !problems.is_empty() {
        let shown: String = stderr.chars().take(2000).collect();
        problems.push(format!("stderr: {}", shown.trim()));
    }
    problems
}

fn assert_table(cases: &[Case]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let problems = run_case(case);
            (!problems.is_empty()).then(|| format!("{}: {}", case.name, problems.join("; ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases mishandled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_names_the_file() {
    assert_table(&[
        Case {
            name: "thin archive member that does not exist",
            make: &[Make::ThinArchive("libthin.a", &["s2.o"])],
            args: &["link", "--entry", "valid_entry", "-o", "out", "libthin.a"],
            status: 1,
            stderr: &["libthin.a", "s2.o", "No such file or directory"],
        },
        Case {
            name: "thin archive member that is /dev/null",
            make: &[
                Make::ThinArchive("libthin.a", &["null.o"]),
                Make::Symlink("/dev/null", "null.o"),
            ],
            args: &["link", "--entry", "valid_entry", "-o", "out", "libthin.a"],
            status: 1,
            stderr: &["libthin.a", "null.o", "not a regular file"],
        },
        Case {
            name: "thin archive member that is /dev/zero",
            make: &[
                Make::ThinArchive("libthin.a", &["zero.o"]),
                Make::Symlink("/dev/zero", "zero.o"),
            ],
            args: &["link", "--entry", "valid_entry", "-o", "out", "libthin.a"],
            status: 1,
            stderr: &["libthin.a", "zero.o", "not a regular file"],
        },
        Case {
            name: "thin archive member that is not ELF",
            make: &[
                Make::ThinArchive("libthin.a", &["notes.o"]),
                Make::Bytes("notes.o", b"plain text"),
            ],
            args: &["link", "--entry", "valid_entry", "-o", "out", "libthin.a"],
            status: 1,
            stderr: &["libthin.a", "notes.o", "not an ELF object"],
        },
        Case {
            name: "image above the top of the address space",
            make: &[Make::Object("valid.o")],
            args: &[
                "link",
                "--entry",
                "valid_entry",
                "--base",
                "0xfffffffffffff000",
                "-o",
                "out",
                "valid.o",
            ],
            status: 1,
            stderr: &[
                "section .text (0x",
                "bytes) does not fit",
                "0xfffffffffffff000",
            ],
        },
    ]);
}

/// Option values that cannot give a correct image are errors before anything is written.
#[test]
fn link_options_are_validated() {
    const LINK: [&str; 3] = ["link", "--entry", "valid_entry"];
    assert_table(&[
        Case {
            name: "base off the page",
            make: &[Make::Object("valid.o")],
            args: &[
                LINK[0], LINK[1], LINK[2], "--base", "0x401001", "-o", "out", "valid.o",
            ],
            status: 1,
            stderr: &[
                "--base",
                "0x401001",
                "not a multiple of the 4096-byte page",
                "0x401000",
            ],
        },
        Case {
            name: "base that is no number",
            make: &[Make::Object("valid.o")],
            args: &[
                LINK[0], LINK[1], LINK[2], "--base", "0x40g000", "-o", "out", "valid.o",
            ],
            status: 1,
            stderr: &["--base", "invalid address `0x40g000`"],
        },
        Case {
            name: "output that is a directory",
            make: &[Make::Object("valid.o"), Make::Dir("out")],
            args: &[LINK[0], LINK[1], LINK[2], "-o", "out", "valid.o"],
            status: 1,
            stderr: &["out", "Is a directory"],
        },
        Case {
            name: "report that is a directory",
            make: &[Make::Object("valid.o"), Make::Dir("report")],
            args: &[
                LINK[0], LINK[1], LINK[2], "--report", "report", "-o", "out", "valid.o",
            ],
            status: 1,
            stderr: &["report", "Is a directory"],
        },
        Case {
            name: "empty entry name",
            make: &[Make::Object("valid.o")],
            args: &["link", "--entry", "", "-o", "out", "valid.o"],
            status: 1,
            stderr: &["entry symbol `` is not defined"],
        },
        Case {
            name: "input that is a directory",
            make: &[Make::Dir("lib")],
            args: &[LINK[0], LINK[1], LINK[2], "-o", "out", "lib"],
            status: 1,
            stderr: &["lib", "is a directory"],
        },
    ]);
}

#[test]
fn special_files_are_refused_without_blocking() {
    assert_table(&[
        Case {
            name: "FIFO as an object",
            make: &[Make::Fifo("fifo.o")],
            args: &["link", "--entry", "valid_entry", "-o", "out", "fifo.o"],
            status: 1,
            stderr: &["fifo.o: is a FIFO; inputs must be regular files"],
        },
        Case {
            name: "directory as an object",
            make: &[Make::Dir("dir.o")],
            args: &["link", "--entry", "valid_entry", "-o", "out", "dir.o"],
            status: 1,
            stderr: &["dir.o: is a directory"],
        },
        Case {
            name: "character device as an object",
            make: &[],
            args: &["link", "--entry", "valid_entry", "-o", "out", "/dev/zero"],
            status: 1,
            stderr: &["/dev/zero: is a character device"],
        },
        Case {
            name: "FIFO as an image to run",
            make: &[Make::Fifo("kernel.elf")],
            args: &["run", "--accel", "tcg", "kernel.elf"],
            status: 1,
            stderr: &["image kernel.elf is not a regular file"],
        },
        Case {
            name: "FIFO as a manifest to check",
            make: &[Make::Fifo("uniklink.yaml")],
            args: &["check", "uniklink.yaml"],
            status: 1,
            stderr: &["uniklink.yaml", "it is a FIFO, not a regular file"],
        },
        Case {
            name: "FIFO as a manifest to build",
            make: &[Make::Fifo("uniklink.yaml")],
            args: &["build", "-m", "uniklink.yaml"],
            status: 1,
            stderr: &["uniklink.yaml", "it is a FIFO, not a regular file"],
        },
    ]);
}

#[test]
fn an_input_is_never_overwritten() {
    assert_table(&[
        Case {
            name: "output named as the input",
            make: &[Make::Object("in.o")],
            args: &["link", "--entry", "valid_entry", "-o", "in.o", "in.o"],
            status: 1,
            stderr: &["output in.o is the input in.o"],
        },
        Case {
            name: "output through a symbolic link to the input",
            make: &[Make::Object("in.o"), Make::Symlink("in.o", "link.o")],
            args: &["link", "--entry", "valid_entry", "-o", "link.o", "in.o"],
            status: 1,
            stderr: &["output link.o is the input in.o"],
        },
        Case {
            name: "output as a hard link to the input",
            make: &[Make::Object("in.o"), Make::HardLink("in.o", "hard.o")],
            args: &["link", "--entry", "valid_entry", "-o", "hard.o", "in.o"],
            status: 1,
            stderr: &["output hard.o is the input in.o"],
        },
        Case {
            name: "output as the second of two inputs",
            make: &[Make::Object("in.o"), Make::Object("other.o")],
            args: &[
                "link",
                "--entry",
                "valid_entry",
                "-o",
                "./other.o",
                "in.o",
                "other.o",
            ],
            status: 1,
            stderr: &["output ./other.o is the input other.o"],
        },
    ]);
}

fn manifest(name: &str, app: &str) -> String {
    format!("name: {name}\napp:\n  package: hello\n{app}")
}

/// The fixture app every valid `app` below points at.
fn hello_path() -> String {
    format!(
        "  path: {}/fixtures/apps/hello\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn check_rejects_what_build_would() {
    assert_table(&[
        Case {
            name: "name of 300 characters",
            make: &[Make::Text("m.yaml", || {
                manifest(&"n".repeat(300), &hello_path())
            })],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:1:7", "is 300 bytes long; at most 240"],
        },
        Case {
            name: "name of 200,000 characters",
            make: &[Make::Text("m.yaml", || {
                manifest(&"n".repeat(200_000), &hello_path())
            })],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:1:7", "is 200000 bytes long"],
        },
        Case {
            name: "name with a slash",
            make: &[Make::Text("m.yaml", || manifest("a/b", &hello_path()))],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:1:7", "`a/b` is not a usable image name"],
        },
        Case {
            name: "unknown key of 1,000 characters",
            make: &[Make::Text("m.yaml", || {
                format!("{}{}: 1\n", manifest("ok", &hello_path()), "k".repeat(1000))
            })],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:5:1", "unknown key `kkkk", "k…`"],
        },
        Case {
            name: "unknown component of 200,000 characters",
            make: &[Make::Text("m.yaml", || {
                let component = "c".repeat(200_000);
                let components = format!("components:\n  require: [{component}]\n");
                manifest("ok", &format!("{}{components}", hello_path()))
            })],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:6:13", "unknown component `cccc", "c…`"],
        },
        Case {
            name: "kept symbol of 200,000 characters",
            make: &[Make::Text("m.yaml", || {
                let keep = format!("keep: [\"a {}\"]\n", "s".repeat(200_000));
                manifest("ok", &format!("{}{keep}", hello_path()))
            })],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:5:8", "is not a symbol name"],
        },
        Case {
            name: "app path that does not exist",
            make: &[Make::Text("m.yaml", || manifest("ok", "  path: nowhere\n"))],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:4:9", "nowhere", "No such file or directory"],
        },
        Case {
            name: "app path that is a file",
            make: &[
                Make::Bytes("Cargo.toml", b"[package]\n"),
                Make::Text("m.yaml", || manifest("ok", "  path: Cargo.toml\n")),
            ],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:4:9", "is a file, not a package directory"],
        },
        Case {
            name: "app path outside any cargo package",
            make: &[
                Make::Dir("src"),
                Make::Text("m.yaml", || manifest("ok", "  path: src\n")),
            ],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:4:9", "is not a cargo package: it has no Cargo.toml"],
        },
        Case {
            name: "prebuilt object that does not exist",
            make: &[Make::Text("m.yaml", || {
                "name: ok\napp:\n  objects: [gone.o]\n".to_owned()
            })],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &["m.yaml:3:13", "gone.o", "No such file or directory"],
        },
    ]);
}

/// `count` port forwards `8080:99990`, `8080:99991`, ..., none of them valid.
fn bad_ports(count: usize) -> String {
    let ports: String = (0..count)
        .map(|i| format!("  - \"8080:{}\"\n", 99_990 + i))
        .collect();
    manifest("ok", &format!("{}ports:\n{ports}", hello_path()))
}

#[test]
fn every_error_is_reported() {
    assert_table(&[
        Case {
            name: "seven bad ports",
            make: &[Make::Text("m.yaml", || bad_ports(7))],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &[
                "m.yaml:6:5: guest port `99990`",
                "m.yaml:7:5: guest port `99991`",
                "m.yaml:8:5: guest port `99992`",
                "m.yaml:9:5: guest port `99993`",
                "m.yaml:10:5: guest port `99994`",
                "m.yaml:11:5: guest port `99995`",
                "m.yaml:12:5: guest port `99996`",
            ],
        },
        Case {
            name: "more bad ports than are reported",
            make: &[Make::Text("m.yaml", || bad_ports(30))],
            args: &["check", "m.yaml"],
            status: 1,
            stderr: &[
                "m.yaml:6:5: guest port `99990` is not a TCP port (1-65535) (and 29 more)",
                "m.yaml:25:5: guest port `100009`",
                "m.yaml:26:5: and 10 more errors from here on",
            ],
        },
    ]);
}

#[test]
fn the_same_rules_hold_on_every_path() {
    assert_table(&[
        Case {
            name: "image holding only the ELF magic",
            make: &[Make::Bytes("kernel.elf", b"\x7fELF")],
            args: &["run", "--accel", "tcg", "kernel.elf"],
            status: 1,
            stderr: &["kernel.elf: truncated ELF header"],
        },
        Case {
            name: "object holding only the ELF magic",
            make: &[Make::Bytes("valid.o", b"\x7fELF")],
            args: &["link", "--entry", "valid_entry", "-o", "out", "valid.o"],
            status: 1,
            stderr: &["valid.o: malformed ELF: truncated ELF header (4 bytes)"],
        },
        Case {
            name: "run --append with a newline",
            make: &[Make::Object("valid.o")],
            args: &["run", "--accel", "tcg", "--append", "a\nb", "valid.o"],
            status: 1,
            stderr: &["--append: the command line must be one line of text"],
        },
    ]);
}
