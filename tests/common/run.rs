//! Running a linked program (or a linker) and capturing everything observable about it. A
//! program for another architecture runs under its QEMU user-mode emulator.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A program that misbehaves after a bad link, or a linker fed a damaged input, may spin
/// forever; this bounds the wait. It is a guard, not a measurement: nothing is asserted about
/// how long a run takes.
const HANG_GUARD: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// "exit N", "signal N" or "killed: still running after ..."; compared as a whole.
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// The command that runs `program`: directly, or under `qemu-aarch64` for an aarch64 ELF on
/// another host (no binfmt_misc registration is assumed).
fn command(program: &Path) -> Command {
    const EM_AARCH64: u16 = 183;
    let mut header = [0u8; 20];
    let machine = std::fs::File::open(program)
        .and_then(|mut file| file.read_exact(&mut header))
        .ok()
        .filter(|()| header.starts_with(b"\x7fELF"))
        .map(|()| u16::from_le_bytes([header[18], header[19]]));
    if machine == Some(EM_AARCH64) && !cfg!(target_arch = "aarch64") {
        let mut cmd = Command::new("qemu-aarch64");
        cmd.arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Starts `cmd`, waiting out "text file busy": a program a test has just linked in this
/// process was mapped writable there, and a child another test thread forked meanwhile holds
/// that mapping until it execs its own program, a moment later (Linux refuses to execute a
/// file open for writing anywhere).
fn spawn(cmd: &mut Command) -> std::process::Child {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(error) if error.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            result => break result.unwrap_or_else(|error| panic!("cannot start {cmd:?}: {error}")),
        }
    }
}

pub fn run(program: &Path, stdin: &[u8]) -> Ran {
    run_command(command(program), stdin)
}

pub fn run_command(mut cmd: Command, stdin: &[u8]) -> Ran {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut cmd);
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // A program that exits without reading its input closes the pipe; that is not an error.
    let writer = std::thread::spawn(move || drop(input.write_all(&stdin)));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        drop(stdout.read_to_end(&mut bytes));
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        drop(stderr.read_to_end(&mut bytes));
        bytes
    });

    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("waiting for a child process") {
            Some(status) => break describe(status),
            None if started.elapsed() > HANG_GUARD => {
                drop(child.kill());
                drop(child.wait());
                break format!("killed: still running after {HANG_GUARD:?}");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    writer.join().expect("stdin writer");
    Ran {
        status,
        stdout: String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => format!("{status}"),
    }
}
