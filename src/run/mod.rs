//! Booting an image under QEMU: the guest's serial console streams to the caller, the boot is
//! timed on the host, and QEMU's exit status is mapped back to the guest's exit code.
//!
//! Times are taken from QEMU's launch: to the first console byte, to the end of the ready
//! marker line the library OS prints before the app's `main`, and to QEMU's exit. The marker
//! also carries the guest's own measurement from entry to `main`, and the timeline line after
//! it, when asked for, each boot phase's.

mod accel;
mod console;
mod image;
mod manifest;
mod process;
mod qemu;
pub mod timeline;

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub use accel::{Accel, ResolvedAccel, UnknownAccel};
pub use console::{ConsoleSink, READY_MARKER, StopPoint};
pub use image::{ImageError, ImageInfo, inspect};
pub use manifest::{ReportError, live_devices, options_from_config};
pub use qemu::DEFAULT_MEMORY;
pub use timeline::{Milestone, TIMELINE_WORD, Timeline};
pub use uniklink_config::{Arch, DeviceKind, Platform};

use process::{InterruptScope, Qemu};
use qemu::Invocation;

/// How to boot one image.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub image: PathBuf,
    pub arch: Arch,
    pub platform: Platform,
    /// Guest memory in bytes, rounded up to whole MiB; `DEFAULT_MEMORY` when `None`.
    pub memory: Option<u64>,
    /// The kernel command line (`-append`).
    pub cmdline: Option<String>,
    /// TCP forwards as (host port on 127.0.0.1, guest port); any forward attaches a network
    /// device.
    pub ports: Vec<(u16, u16)>,
    /// Disks, each attached as one block device, in this order.
    pub disks: Vec<Disk>,
    /// The kinds of device the image's live components drive ([`live_devices`]); those that
    /// need no host side of their own (an entropy source) are attached, one of each.
    pub devices: Vec<DeviceKind>,
    pub accel: Accel,
    /// Kill QEMU when the guest runs longer than this.
    pub timeout: Option<Duration>,
    /// Appended to QEMU's command line as given.
    pub extra_args: Vec<OsString>,
    pub console: ConsoleSink,
    /// Ask the guest for its boot timeline ([`TIMELINE_WORD`] on its command line).
    pub timeline: bool,
    /// Kill QEMU once the console shows this point; the boot then counts as a success. A
    /// milestone asks the guest for its timeline, which carries milestones.
    pub until: Option<StopPoint>,
    /// Start QEMU's gdbstub on 127.0.0.1 at this port, the guest stopped before its first
    /// instruction until a debugger continues it ([`gdb_command`]).
    pub gdb: Option<u16>,
}

/// A raw disk image the guest sees as a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The device's serial, by which the guest finds the disk (a manifest volume's name).
    pub name: String,
    pub image: PathBuf,
    /// Attach it read-only: the guest cannot write, and QEMU opens the file read-only.
    pub readonly: bool,
}

impl RunOptions {
    /// Boots `image` on the default platform for `arch` with every other option at its
    /// default: 128 MiB, no command line, no ports, no disks, no devices, `Accel::Auto`, no
    /// timeout, console to stdout.
    pub fn new(image: impl Into<PathBuf>, arch: Arch) -> RunOptions {
        RunOptions {
            image: image.into(),
            arch,
            platform: arch.default_platform(),
            memory: None,
            cmdline: None,
            ports: Vec::new(),
            disks: Vec::new(),
            devices: Vec::new(),
            accel: Accel::Auto,
            timeout: None,
            extra_args: Vec::new(),
            console: ConsoleSink::Stdout,
            timeline: false,
            until: None,
            gdb: None,
        }
    }
}

/// Host-side times, all from QEMU's launch, plus the guest's own measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootTimes {
    /// Launch to the first byte on the serial console; `None` if the guest printed nothing.
    pub first_byte: Option<Duration>,
    /// Launch to the end of the ready marker line; `None` if the guest never printed it.
    pub ready: Option<Duration>,
    /// Guest entry to the app's `main`, as the guest measured it and printed in the marker
    /// (converted at the host's TSC rate when the guest gave counter ticks).
    pub entry_to_main: Option<Duration>,
    /// Launch to QEMU's exit (or its kill, on timeout or interruption) with the console
    /// read to its end.
    pub total: Duration,
}

/// `850 ns`, `41.2 µs`, `28.1 ms`, `4.50 s`: a boot time as the boot summary and the budget
/// messages print it.
pub fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOutcome {
    /// The code the guest exited with; `None` when QEMU was killed.
    pub guest_exit_code: Option<i32>,
    pub timed_out: bool,
    /// Ctrl-C arrived and QEMU was killed.
    pub interrupted: bool,
    /// The console showed [`RunOptions::until`] and QEMU was killed.
    pub stopped: bool,
    pub times: BootTimes,
    /// The accelerator QEMU ran with, after `Accel::Auto` was decided.
    pub accel: ResolvedAccel,
    /// The guest's boot phases, when [`RunOptions::timeline`] asked for them and the guest
    /// printed them.
    pub timeline: Option<Timeline>,
    /// The backtraces the guest printed (on a panic or an exception), to symbolize against
    /// the image ([`crate::symbolize`]).
    pub backtraces: Vec<Vec<crate::symbolize::Frame>>,
    /// What QEMU itself printed on stderr (warnings, mostly), for the caller to show.
    pub qemu_messages: String,
}

/// Why a boot could not run to an outcome.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{} is an {found} image but {expected} was asked for", image.display())]
    ArchMismatch {
        image: PathBuf,
        found: Arch,
        expected: Arch,
    },
    #[error("platform {platform} runs {runs} images, not {arch}")]
    PlatformArch {
        platform: Platform,
        runs: Arch,
        arch: Arch,
    },
    #[error(
        "platform {platform} is not a QEMU machine; `run` boots qemu-microvm, qemu-q35 and qemu-virt"
    )]
    NotQemu { platform: Platform },
    #[error(
        "{} has no PVH entry note (an ELF note named \"Xen\" of type 18), so QEMU cannot boot it on {platform}",
        image.display()
    )]
    NoPvhNote { image: PathBuf, platform: Platform },
    #[error("cannot start {binary}; is QEMU installed (Debian: apt-get install {package})?")]
    QemuMissing {
        binary: &'static str,
        package: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {binary}")]
    Spawn {
        binary: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{binary} failed ({status}): {}", messages.trim_end())]
    QemuFailed {
        binary: &'static str,
        status: String,
        messages: String,
        accel: ResolvedAccel,
    },
    #[error(
        "host port {port} is taken (another process listens on 127.0.0.1:{port}); change \
         `ports:` or stop it"
    )]
    PortTaken { port: u16 },
    #[error("lost track of the QEMU process")]
    Wait(#[source] io::Error),
    #[error("cannot read the guest's console")]
    Console(#[source] io::Error),
}

impl miette::Diagnostic for RunError {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self {
            RunError::QemuFailed {
                accel: ResolvedAccel::Kvm,
                ..
            } => Some(Box::new(
                "KVM inside a virtual machine is often nested or emulated and fails or crawls; \
                 try --accel tcg",
            )),
            RunError::NoPvhNote { .. } => Some(Box::new(
                "images uniklink links for qemu-microvm and qemu-q35 carry the note; was this one \
                 linked for another platform or by another linker?",
            )),
            _ => None,
        }
    }
}

/// How often the runner checks the timeout and Ctrl-C while QEMU runs.
const TICK: Duration = Duration::from_millis(20);
/// How much of QEMU's stderr is kept; past this it is read and dropped.
const MAX_QEMU_MESSAGES: usize = 64 * 1024;

/// Boots `opts.image` in QEMU and waits until the guest exits, the timeout passes or Ctrl-C
/// arrives. QEMU is never left running when this returns.
pub fn boot(opts: &RunOptions) -> Result<BootOutcome, RunError> {
    let spec = qemu::spec(opts.platform).ok_or(RunError::NotQemu {
        platform: opts.platform,
    })?;
    if spec.arch != opts.arch {
        return Err(RunError::PlatformArch {
            platform: opts.platform,
            runs: spec.arch,
            arch: opts.arch,
        });
    }
    let info = inspect(&opts.image)?;
    if info.arch != opts.arch {
        return Err(RunError::ArchMismatch {
            image: opts.image.clone(),
            found: info.arch,
            expected: opts.arch,
        });
    }
    if spec.needs_pvh_note && info.pvh_entry.is_none() {
        return Err(RunError::NoPvhNote {
            image: opts.image.clone(),
            platform: opts.platform,
        });
    }
    let accel = opts.accel.resolve();
    // TCG's CPU states no TSC rate and runs the guest's TSC at the host's: say it, so the
    // guest converts its clock without calibrating it.
    let tsc_hz = (accel == ResolvedAccel::Tcg && opts.arch == Arch::X86_64)
        .then(host_tsc_hz)
        .flatten();
    let cmdline = command_line(opts, tsc_hz);
    let args = qemu::command_line(
        spec,
        &Invocation {
            image: &opts.image,
            accel,
            memory: opts.memory.unwrap_or(DEFAULT_MEMORY),
            cmdline: cmdline.as_deref(),
            ports: &opts.ports,
            disks: &opts.disks,
            devices: &opts.devices,
            extra_args: &opts.extra_args,
        },
    );
    let mut command = Command::new(spec.qemu);
    command
        .args(args)
        .args(opts.gdb.map(qemu::gdb_args).into_iter().flatten())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let scope = InterruptScope::enter();
    let launch = Instant::now();
    let host_ticks = HostTicks::now();
    let mut qemu = Qemu::spawn(command).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            RunError::QemuMissing {
                binary: spec.qemu,
                package: spec.debian_package,
                source,
            }
        } else {
            RunError::Spawn {
                binary: spec.qemu,
                source,
            }
        }
    })?;
    let host_ports: Vec<u16> = opts.ports.iter().map(|&(host, _)| host).collect();
    uniklink_hostfwd::deepen_backlogs(qemu.child().id(), &host_ports);
    let stdout = qemu
        .child()
        .stdout
        .take()
        .ok_or_else(|| RunError::Console(io::Error::other("QEMU's stdout was not captured")))?;
    let stderr = qemu
        .child()
        .stderr
        .take()
        .ok_or_else(|| RunError::Console(io::Error::other("QEMU's stderr was not captured")))?;
    let sink = opts.console;
    let until = opts.until.clone();
    // The console thread sends once it has seen `until`, and hangs up at the console's end.
    let (console_tx, console_rx) = mpsc::channel::<()>();
    let console_thread = thread::spawn(move || {
        console::stream(stdout, sink, until.as_ref(), || {
            let _ = console_tx.send(());
        })
    });
    let stderr_thread = thread::spawn(move || read_capped(stderr, MAX_QEMU_MESSAGES));

    // A timeout past what the clock can count (`--timeout 1e19`) never comes.
    let deadline = opts.timeout.and_then(|t| launch.checked_add(t));
    let mut console_open = true;
    let end = loop {
        // Waiting on the console wakes us the moment QEMU closes it on exit; once it has,
        // the exit itself follows at once.
        if console_open {
            match console_rx.recv_timeout(TICK) {
                Ok(()) => {
                    qemu.kill().map_err(RunError::Wait)?;
                    break End::Stopped(Instant::now());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => console_open = false,
            }
        } else {
            thread::sleep(Duration::from_millis(1));
        }
        if let Some(status) = qemu.try_wait().map_err(RunError::Wait)? {
            break End::Exited(status, Instant::now());
        }
        if scope.interrupted() {
            qemu.kill().map_err(RunError::Wait)?;
            break End::Interrupted(Instant::now());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            qemu.kill().map_err(RunError::Wait)?;
            break End::TimedOut(Instant::now());
        }
    };
    drop(scope);

    let console_report = join(console_thread).map_err(RunError::Console)?;
    let messages = String::from_utf8_lossy(&join(stderr_thread)).into_owned();
    // The guest counts ticks of its TSC only where it cannot tell their rate (QEMU's TCG),
    // which then runs at the host's.
    let tick_rate = (opts.arch == Arch::X86_64)
        .then(|| host_ticks.rate_since())
        .flatten();
    let timeline = console_report
        .timeline
        .as_ref()
        .and_then(|line| line.convert(tick_rate, &console_report.milestones, launch));

    let times = |ended: Instant| BootTimes {
        first_byte: console_report.first_byte.map(|t| t - launch),
        ready: console_report.ready.map(|m| m.at - launch),
        entry_to_main: console_report
            .ready
            .and_then(|m| m.entry_to_main)
            .and_then(|time| time.to_duration(tick_rate)),
        total: console_report
            .closed
            .map_or(ended, |closed| closed.max(ended))
            - launch,
    };
    let outcome = |guest_exit_code, (timed_out, interrupted, stopped), ended| BootOutcome {
        guest_exit_code,
        timed_out,
        interrupted,
        stopped,
        times: times(ended),
        accel,
        timeline: timeline.clone(),
        backtraces: console_report.backtraces.clone(),
        qemu_messages: messages.clone(),
    };
    match end {
        End::TimedOut(at) => Ok(outcome(None, (true, false, false), at)),
        End::Interrupted(at) => Ok(outcome(None, (false, true, false), at)),
        End::Stopped(at) => Ok(outcome(None, (false, false, true), at)),
        End::Exited(status, at) => {
            let failed = || match taken_host_port(&messages) {
                Some(port) => RunError::PortTaken { port },
                None => RunError::QemuFailed {
                    binary: spec.qemu,
                    status: status.to_string(),
                    messages: messages.clone(),
                    accel,
                },
            };
            let code = status.code().ok_or_else(failed)?;
            // Status 1 is both "guest wrote 0 to isa-debug-exit" and QEMU's own failure
            // status; QEMU failing says why on stderr, a guest exiting does not.
            if code == 1 && has_error_line(&messages) {
                return Err(failed());
            }
            let guest = spec.exit.guest_code(code).ok_or_else(failed)?;
            Ok(outcome(Some(guest), (false, false, false), at))
        }
    }
}

/// The guest's command line: [`TIMELINE_WORD`] when the timeline or a milestone is asked for,
/// the TSC rate when the runner knows it and the CPU does not state it, then the caller's.
fn command_line(opts: &RunOptions, tsc_hz: Option<u64>) -> Option<String> {
    let milestone = matches!(opts.until, Some(StopPoint::Milestone(_)));
    let words: Vec<String> = (opts.timeline || milestone)
        .then(|| TIMELINE_WORD.to_owned())
        .into_iter()
        .chain(tsc_hz.map(|hz| format!("{TSC_HZ_WORD}{hz}")))
        .chain(opts.cmdline.clone())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The debugger command that attaches to a guest booted with [`RunOptions::gdb`] at `port`:
/// `gdb` for x86_64 images (Debian's gdb debugs x86_64 and i386), `gdb-multiarch` for
/// aarch64, with the image's symbols, connected, a breakpoint on the app's `main` (the
/// `__unik_main` that `unik::entry!` defines) and continuing to it. The symbols come from
/// `<image>.debug` where `build` wrote one.
pub fn gdb_command(image: &std::path::Path, arch: Arch, port: u16) -> String {
    let gdb = match arch {
        Arch::X86_64 => "gdb",
        Arch::Aarch64 => "gdb-multiarch",
    };
    // The DWARF beside the image, when there is some, is the better symbol file: it has the
    // same symbols and the source lines.
    let debug = crate::build::debug_file_path(image);
    let image = if debug.is_file() {
        debug
    } else {
        image.to_path_buf()
    };
    let image = image.display().to_string();
    let quoted = if image.contains(['\'', ' ', '"', '\\', '$', '`']) {
        format!("'{}'", image.replace('\'', r"'\''"))
    } else {
        image
    };
    format!(
        "{gdb} -q {quoted} -ex 'target remote 127.0.0.1:{port}' -ex 'break __unik_main' -ex continue"
    )
}

/// The command-line word that states the guest's TSC rate in Hz.
const TSC_HZ_WORD: &str = "uniklink.tsc_hz=";
/// How long the host's TSC is timed against its monotonic clock: the error of the two reads
/// at each end (a few µs at worst) stays under 0.1% of it.
const TSC_MEASUREMENT: Duration = Duration::from_millis(5);

/// The host's TSC rate, where the host's kernel says the TSC is invariant (`constant_tsc` and
/// `nonstop_tsc`: it ticks at one rate whatever the CPU's frequency or sleep state), measured
/// against the monotonic clock before QEMU starts.
fn host_tsc_hz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = cpuinfo.lines().find(|line| line.starts_with("flags"))?;
    let invariant = ["constant_tsc", "nonstop_tsc"]
        .iter()
        .all(|flag| flags.split_ascii_whitespace().any(|f| f == *flag));
    if !invariant {
        return None;
    }
    let start = HostTicks::now();
    thread::sleep(TSC_MEASUREMENT);
    start.rate_since().map(|hz| hz.round() as u64)
}

/// The host's TSC and clock read together, to measure the TSC's rate over a boot.
struct HostTicks {
    at: Instant,
    ticks: Option<u64>,
}

impl HostTicks {
    fn now() -> HostTicks {
        HostTicks {
            at: Instant::now(),
            ticks: host_tsc(),
        }
    }

    /// TSC ticks per second since `now`; `None` on a host without a TSC.
    fn rate_since(&self) -> Option<f64> {
        let ticks = host_tsc()?.checked_sub(self.ticks?)?;
        let seconds = self.at.elapsed().as_secs_f64();
        (seconds > 0.0).then(|| ticks as f64 / seconds)
    }
}

#[cfg(target_arch = "x86_64")]
fn host_tsc() -> Option<u64> {
    // SAFETY: rdtsc exists on every x86_64 CPU and has no side effects.
    Some(unsafe { std::arch::x86_64::_rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
fn host_tsc() -> Option<u64> {
    None
}

enum End {
    Exited(std::process::ExitStatus, Instant),
    TimedOut(Instant),
    Interrupted(Instant),
    /// The console showed the stop point.
    Stopped(Instant),
}

fn join<T>(handle: thread::JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Reads `reader` to its end, keeping the first `cap` bytes. Read errors end the read: what
/// QEMU says on stderr is advice, and the exit status still decides the outcome.
fn read_capped(mut reader: impl Read, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    kept
}

/// The host port of a forward QEMU could not set up because another process listens on it.
/// QEMU says only that the rule failed; binding the port here tells whether it is taken or
/// refused for another reason (a port below 1024 without privileges).
fn taken_host_port(messages: &str) -> Option<u16> {
    const RULE: &str = "Could not set up host forwarding rule 'tcp:127.0.0.1:";
    messages
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find(RULE)? + RULE.len()..];
            rest.split_once('-')?.0.parse().ok()
        })
        .find(|&port| {
            matches!(
                std::net::TcpListener::bind(("127.0.0.1", port)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse
            )
        })
}

/// Whether QEMU's stderr holds a line that is not a warning.
fn has_error_line(messages: &str) -> bool {
    messages
        .lines()
        .any(|line| !line.trim().is_empty() && !line.contains("warning:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_word_goes_first_on_the_command_line() {
        let mut opts = RunOptions::new("/nonexistent.elf", Arch::X86_64);
        assert_eq!(command_line(&opts, None), None);
        opts.timeline = true;
        assert_eq!(
            command_line(&opts, None).as_deref(),
            Some("uniklink.timeline")
        );
        opts.cmdline = Some("uniklink.verbose uniklink.arg=a".to_owned());
        assert_eq!(
            command_line(&opts, Some(2_600_000_000)).as_deref(),
            Some("uniklink.timeline uniklink.tsc_hz=2600000000 uniklink.verbose uniklink.arg=a")
        );
        opts.timeline = false;
        opts.until = Some(StopPoint::Milestone("listening".to_owned()));
        assert_eq!(
            command_line(&opts, None).as_deref(),
            Some("uniklink.timeline uniklink.verbose uniklink.arg=a"),
            "a milestone needs the timeline"
        );
    }

    #[test]
    fn the_host_tsc_has_a_rate_where_there_is_one() {
        let start = HostTicks::now();
        assert_eq!(
            start.rate_since().is_some_and(|rate| rate > 0.0),
            cfg!(target_arch = "x86_64")
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(human_duration(Duration::from_nanos(41_250)), "41.2 µs");
        assert_eq!(human_duration(Duration::from_micros(28_140)), "28.1 ms");
        assert_eq!(human_duration(Duration::from_millis(4_500)), "4.50 s");
    }

    #[test]
    fn a_forward_to_a_port_in_use_names_the_port() {
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let failed = |port: u16| {
            format!(
                "qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80: Could \
                 not set up host forwarding rule 'tcp:127.0.0.1:{port}-:80'\n"
            )
        };
        assert_eq!(taken_host_port(&failed(port)), Some(port));
        let error = RunError::PortTaken { port }.to_string();
        assert_eq!(
            error,
            format!(
                "host port {port} is taken (another process listens on 127.0.0.1:{port}); \
                 change `ports:` or stop it"
            )
        );
        drop(taken);
        // Free again: whatever failed, it was not that the port is taken.
        assert_eq!(taken_host_port(&failed(port)), None);
        assert_eq!(taken_host_port("qemu: invalid kernel header\n"), None);
    }

    #[test]
    fn warnings_alone_are_not_failure() {
        assert!(!has_error_line(""));
        assert!(!has_error_line(
            "qemu-system-x86_64: warning: host doesn't support requested feature\n"
        ));
        assert!(has_error_line("qemu: invalid kernel header\n"));
        assert!(has_error_line(
            "qemu-system-x86_64: warning: x\nqemu-system-x86_64: -accel kvm: failed\n"
        ));
    }

    #[test]
    fn read_capped_keeps_the_head_and_drains_the_rest() {
        let data = vec![b'x'; 10_000];
        assert_eq!(read_capped(&data[..], 100).len(), 100);
        assert_eq!(read_capped(&data[..], 20_000).len(), 10_000);
    }

    #[test]
    fn platform_must_match_arch() {
        let mut opts = RunOptions::new("/nonexistent.elf", Arch::X86_64);
        opts.platform = Platform::QemuVirt;
        assert!(matches!(
            boot(&opts),
            Err(RunError::PlatformArch {
                platform: Platform::QemuVirt,
                runs: Arch::Aarch64,
                arch: Arch::X86_64
            })
        ));
    }

    #[test]
    fn qemu_failing_under_kvm_suggests_tcg() {
        use miette::Diagnostic;
        let failed = |accel| RunError::QemuFailed {
            binary: "qemu-system-x86_64",
            status: "signal: 6 (SIGABRT)".into(),
            messages: "failed to set MSR 0x10a\n".into(),
            accel,
        };
        let help = failed(ResolvedAccel::Kvm).help().unwrap().to_string();
        assert!(help.contains("--accel tcg"), "{help}");
        assert!(failed(ResolvedAccel::Tcg).help().is_none());
    }

    #[test]
    fn firecracker_is_not_booted_by_qemu() {
        let mut opts = RunOptions::new("/nonexistent.elf", Arch::X86_64);
        opts.platform = Platform::Firecracker;
        assert!(matches!(
            boot(&opts),
            Err(RunError::NotQemu {
                platform: Platform::Firecracker
            })
        ));
    }
}
