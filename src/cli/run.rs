//! `cargo uniklink run`: boot an image in QEMU, stream its console, report boot times and exit
//! with the guest's exit code.
//!
//! The console goes to stdout, the boot summary to stderr. With `--json` the console goes to
//! stderr instead so that stdout carries nothing but the one JSON object.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use miette::{IntoDiagnostic, miette};
use serde::Serialize;
use uniklink::run::{
    self, Accel, Arch, BootOutcome, ConsoleSink, Platform, RunOptions, StopPoint, human_duration,
};
use uniklink::symbolize::{Frame, Symbolizer};
use uniklink::{build, oci};
use uniklink_config::{ByteSize, Manifest, PortForward};

use super::cargo_args::{CargoBuildArgs, ManifestArgs, MessageFormat, OutputArgs};

/// A line on stderr that nobody may be reading any more: the runner has to go on and stop
/// QEMU whether or not its messages arrive, so a failed write is dropped, not a panic.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// [`note!`] without the line end.
macro_rules! note_raw {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// Exit status when the timeout killed QEMU, as timeout(1) uses.
const EXIT_TIMEOUT: u8 = 124;
/// Exit status when Ctrl-C killed QEMU, as a shell reports death by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// Boot an image in QEMU, stream its serial console and exit with the guest's exit code.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The image to boot: an ELF file (its architecture picks the QEMU binary), an OCI
    /// image layout that `pkg` or `pull` wrote, or a registry reference
    /// (`host[:port]/name[:tag]`), whose image for this host's architecture (or `--arch`) is
    /// pulled, checked against its digests and booted with the platform, memory, command
    /// line, arguments and environment its config records. Without it, what
    /// `cargo uniklink build` built from the manifest boots, with the manifest's platform,
    /// memory, command line, port forwards and volumes, and the devices its live components
    /// drive that need nothing from the manifest (an entropy source).
    #[arg(conflicts_with_all = ["manifest", "manifest_path", "package", "target_dir"])]
    image: Option<PathBuf>,
    /// With a registry reference: talk plain HTTP (a registry on loopback).
    #[arg(long, requires = "image")]
    insecure: bool,
    /// With an OCI image (a layout or a reference): forward 127.0.0.1:HOST to the guest's
    /// TCP port GUEST, which must be one the image's config exposes; repeat for more. None
    /// by default, as with `docker run --publish` (whose `-p` is cargo's `--package` here).
    #[arg(long = "publish", value_name = "HOST:GUEST", requires = "image",
          value_parser = parse_publish)]
    publish: Vec<PortForward>,
    /// With an OCI image layout: the tag of the image to boot.
    #[arg(long, requires = "image", default_value = uniklink::oci::DEFAULT_TAG)]
    tag: String,
    #[command(flatten)]
    manifest: ManifestArgs,
    /// Boot the image as it is instead of building it first. Without IMAGE, `run` builds
    /// the manifest's app like `cargo uniklink build` (cargo decides what is out of date), as
    /// `cargo run` does, so it never boots a stale image.
    #[arg(long, conflicts_with = "image")]
    no_build: bool,
    #[command(flatten)]
    cargo: CargoBuildArgs,
    /// Which of the manifest's architectures to boot (default: the first listed), or of an
    /// OCI image's (default: this host's).
    #[arg(long, value_name = "ARCH", value_parser = super::build::parse_arch)]
    arch: Option<Arch>,
    /// Machine to boot on: qemu-microvm or qemu-q35 (x86_64), qemu-virt (aarch64).
    /// Default: the manifest's, else qemu-microvm for x86_64 and qemu-virt for aarch64.
    #[arg(long, value_parser = parse_platform)]
    platform: Option<Platform>,
    /// Guest memory: MiB as a bare number, or a size such as 512K, 64MiB, 1G.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    memory: Option<u64>,
    /// Kernel command line passed to the guest, instead of the manifest's `cmdline` (the app's
    /// arguments and environment are passed either way).
    #[arg(long, value_name = "CMDLINE")]
    append: Option<String>,
    /// An argument for the app, after the manifest's `args`; repeat for more.
    #[arg(long = "arg", value_name = "VALUE")]
    args: Vec<String>,
    /// An environment variable for the app, over the manifest's `env`; repeat for more.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Accelerator: auto uses KVM only on bare metal (a usable /dev/kvm and no `hypervisor`
    /// CPU flag), TCG otherwise; kvm and tcg force one.
    #[arg(long, default_value = "auto")]
    accel: Accel,
    /// Kill QEMU after this many seconds and exit with status 124.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Stop the guest (kill QEMU) once it reaches POINT, and exit 0: `ready` (the ready
    /// marker, right before the app's `main`) or a milestone the library OS marks after it
    /// (`listening`: the first socket a server listens on). A guest that exits before
    /// reaching it fails the run.
    #[arg(long, value_name = "POINT", value_parser = parse_stop_point)]
    until: Option<StopPoint>,
    /// Start QEMU's gdbstub on 127.0.0.1 at PORT (by default a free port), the guest stopped
    /// before its first instruction, and print the gdb command that attaches to it.
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true)]
    gdb: Option<Option<u16>>,
    /// Print one JSON object with the outcome and times on stdout; the console goes to stderr.
    #[arg(long)]
    json: bool,
    /// Ask the guest for its boot timeline: print when each phase ended (entry, paging, the
    /// runtime's set-up, each component init, main) beside the host's launch → first byte →
    /// ready times, and write an SVG chart of it to FILE, by default beside the image
    /// (`<image>.timeline.svg`).
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true)]
    timeline: Option<Option<PathBuf>>,
    /// Output format; `json` is the same as `--json`.
    #[arg(long, value_name = "FMT", value_enum, default_value_t)]
    message_format: MessageFormat,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Extra arguments for QEMU, after `--`.
    #[arg(last = true, value_name = "QEMU-ARGS")]
    qemu_args: Vec<OsString>,
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::ALL
        .into_iter()
        .find(|platform| platform.name() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
            format!(
                "unknown platform `{s}` (expected one of: {})",
                names.join(", ")
            )
        })
}

/// A TCP port on 127.0.0.1 free right now, for QEMU's gdbstub.
fn free_port() -> miette::Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| miette!("cannot find a free port on 127.0.0.1 for the gdbstub: {e}"))
}

/// `ready`, or a milestone's name: one word of letters, digits, `_` and `-`, as the library OS
/// prints it.
fn parse_stop_point(s: &str) -> Result<StopPoint, String> {
    if s == "ready" {
        return Ok(StopPoint::Ready);
    }
    let word = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !word {
        return Err(format!(
            "`{s}` is not a stop point: `ready` or a milestone such as `listening`"
        ));
    }
    Ok(StopPoint::Milestone(s.to_owned()))
}

/// A bare number is MiB, as QEMU's `-m` reads it; anything else is a manifest size.
fn parse_memory(s: &str) -> Result<u64, String> {
    let bytes = match s.parse::<u64>() {
        Ok(mib) => mib.checked_mul(1024 * 1024),
        Err(_) => Some(s.parse::<ByteSize>().map_err(|e| e.to_string())?.bytes()),
    };
    match bytes {
        Some(0) => Err("the guest needs some memory".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{s}` MiB does not fit in 64 bits")),
    }
}

fn parse_publish(s: &str) -> Result<PortForward, String> {
    PortForward::parse(s)
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if !uniklink_config::is_env_name(name.as_bytes()) {
        return Err(format!(
            "`{name}` is not an environment variable name (a letter or `_`, then letters, \
             digits and `_`)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// The kernel command line: `--append` or the manifest's `cmdline`, then the app's arguments
/// (the manifest's, then `--arg`s) and environment (the manifest's, `-e` overriding).
fn command_line(args: &RunArgs, manifest: Option<&Manifest>) -> miette::Result<Option<String>> {
    let config = manifest.map(Manifest::resolve);
    let base = match (&args.append, &config) {
        (Some(append), _) => append.clone(),
        (None, Some(config)) => config.cmdline.clone(),
        (None, None) => String::new(),
    };
    if base.chars().any(char::is_control) {
        return Err(miette!(
            "--append: the command line must be one line of text (it has a control character)"
        ));
    }
    let mut app_args = config.as_ref().map(|c| c.args.clone()).unwrap_or_default();
    app_args.extend(args.args.iter().cloned());
    let mut env = config.map(|c| c.env).unwrap_or_default();
    for (name, value) in &args.env {
        env.retain(|(n, _)| n != name);
        env.push((name.clone(), value.clone()));
    }
    let line = uniklink_config::command_line(&base, &app_args, &env);
    if line.len() > uniklink_config::MAX_COMMAND_LINE {
        return Err(miette!(
            help = "pass less, or bake large data into the image with the manifest's `files`",
            "the kernel command line would be {} bytes (cmdline, arguments and environment), more \
             than the {} every platform accepts",
            line.len(),
            uniklink_config::MAX_COMMAND_LINE
        ));
    }
    Ok(Some(line).filter(|l| !l.is_empty()))
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs <= 0.0 {
        return Err("the timeout must be more than 0 seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// For an IMAGE that is an OCI image layout or a registry reference: the options of its image
/// for this host's architecture (or `--arch`), its kernel unpacked into `scratch`, and the
/// command line its config records. `None` for an ELF file.
fn oci_options(args: &RunArgs, scratch: &Path) -> miette::Result<Option<(RunOptions, String)>> {
    let Some(image) = &args.image else {
        return Ok(None);
    };
    // Anything on disk but a layout (an ELF file, or a FIFO or directory that the image
    // checks refuse) is an image path; only what is not on disk can be a reference.
    let layout = image.join("oci-layout").is_file();
    if image.exists() && !layout {
        return Ok(None);
    }
    let host = if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else {
        Arch::X86_64
    };
    let arch = args.arch.unwrap_or(host);
    let (layout, tag) = if layout {
        (image.clone(), args.tag.clone())
    } else {
        let text = image.to_str().unwrap_or_default();
        let reference: oci::registry::Reference = match text.parse() {
            Ok(reference) => reference,
            // A path (absolute, relative, or a bare file name): the image checks say what is
            // wrong with it.
            Err(_) if text.starts_with(['/', '.']) || !text.contains(['/', ':']) => {
                return Ok(None);
            }
            Err(e) => {
                return Err(miette!(
                    "{e} (nor is `{}` a file or an OCI image layout)",
                    image.display()
                ));
            }
        };
        let layout = scratch.join("layout");
        oci::registry::pull(&reference, &layout, oci::DEFAULT_TAG, args.insecure)
            .map_err(|e| miette!("{}", super::build::chain(&e)))?;
        (layout, oci::DEFAULT_TAG.to_owned())
    };
    let runnable =
        oci::runnable(&layout, &tag, arch).map_err(|e| miette!("{}", super::build::chain(&e)))?;
    let kernel = scratch.join("kernel.elf");
    std::fs::write(&kernel, &runnable.kernel)
        .map_err(|e| miette!("cannot unpack the kernel to {}: {e}", kernel.display()))?;
    let mut opts = RunOptions::new(kernel, runnable.arch);
    if let Some(platform) = runnable
        .platform
        .as_deref()
        .and_then(|name| Platform::ALL.into_iter().find(|p| p.name() == name))
    {
        opts.platform = platform;
    }
    opts.memory = runnable.memory;
    for forward in &args.publish {
        if !runnable.ports.contains(&forward.guest) {
            let exposed: Vec<String> = runnable.ports.iter().map(u16::to_string).collect();
            return Err(miette!(
                "--publish {forward}: the image exposes no port {} (its config exposes: {})",
                forward.guest,
                if exposed.is_empty() {
                    "none".to_owned()
                } else {
                    exposed.join(", ")
                }
            ));
        }
    }
    opts.ports = args.publish.iter().map(|p| (p.host, p.guest)).collect();
    let cmdline = uniklink_config::command_line(&runnable.cmdline, &runnable.args, &runnable.env);
    Ok(Some((opts, cmdline)))
}

/// Options from the manifest and what it built, or from the image alone.
fn base_options(args: &RunArgs, manifest: Option<&Manifest>) -> miette::Result<RunOptions> {
    let Some(manifest) = manifest else {
        let image = args
            .image
            .clone()
            .ok_or_else(|| miette!("give an IMAGE or -m FILE"))?;
        let info = run::inspect(&image).into_diagnostic()?;
        return Ok(RunOptions::new(image, info.arch));
    };
    let target = build::select_target(manifest, args.arch).into_diagnostic()?;
    let profile = args.cargo.cargo_profile();
    let paths = if args.no_build {
        args.manifest
            .image_paths(manifest, target.arch, Some(&profile))?
    } else {
        let opts = build::BuildOptions {
            arch: Some(target.arch),
            profile: profile.clone(),
            cargo_args: args.cargo.to_cargo(&args.output),
            target_dir: args.manifest.target_dir.clone(),
            objects: Vec::new(),
            conventional: false,
            strip: false,
            randomize_layout: super::build::env_layout_seed()?,
        };
        let built =
            build::build(manifest, &opts).map_err(|e| miette!("{}", super::build::chain(&e)))?;
        if !args.output.quiet {
            note!("uniklink: built {}", built.paths.image.display());
        }
        built.paths
    };
    let image = paths.image;
    if !image.is_file() {
        return Err(miette!(
            help = format!(
                "build it first: cargo uniklink build -m {} --arch {} {}",
                manifest.path.display(),
                target.arch,
                profile.flags()
            )
            .trim_end()
            .to_owned(),
            "no image for {} at {}",
            target.arch,
            image.display()
        ));
    }
    let mut opts = run::options_from_config(&manifest.resolve(), target, image);
    opts.devices = run::live_devices(&paths.report).map_err(|e| {
        miette!(
            help = "rebuild the image: its build report says which devices it drives",
            "{}",
            super::build::chain(&e)
        )
    })?;
    if let Some(disk) = opts.disks.iter().find(|disk| !disk.image.is_file()) {
        return Err(miette!(
            help = format!(
                "run `cargo uniklink build -m {}` first, which creates it",
                manifest.path.display()
            ),
            "volume `{}` of {} has no disk image at {}",
            disk.name,
            manifest.path.display(),
            disk.image.display()
        ));
    }
    Ok(opts)
}

pub fn run(args: RunArgs) -> miette::Result<ExitCode> {
    // A closed stdout must not kill the runner before it has stopped QEMU: writes fail
    // instead, and the console sink stops writing (see `run::console`).
    // SAFETY: setting a signal's disposition before this command starts any thread.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let manifest = match args.image {
        Some(_) => None,
        None => Some(args.manifest.load()?),
    };
    let json = args.json || args.message_format == MessageFormat::Json;
    // Bad arguments are errors before anything builds or boots.
    let mut cmdline = command_line(&args, manifest.as_ref())?;
    // An OCI image's kernel is unpacked here, which lives until QEMU is done with it.
    let scratch = tempfile::tempdir().into_diagnostic()?;
    let mut opts = match oci_options(&args, scratch.path())? {
        Some((opts, oci_cmdline)) => {
            if args.append.is_none() {
                cmdline = Some(oci_cmdline).filter(|line| !line.is_empty());
            }
            opts
        }
        None if !args.publish.is_empty() => {
            return Err(miette!(
                "--publish applies to an OCI image (a layout or a registry reference); an ELF \
                 image has no config saying which ports it serves"
            ));
        }
        None => base_options(&args, manifest.as_ref())?,
    };
    opts.cmdline = cmdline;
    if let Some(platform) = args.platform {
        opts.platform = platform;
    }
    if let Some(memory) = args.memory {
        opts.memory = Some(memory);
    }
    opts.accel = args.accel;
    opts.timeout = args.timeout;
    opts.extra_args = args.qemu_args;
    opts.timeline = args.timeline.is_some();
    opts.until = args.until.clone();
    if let Some(port) = args.gdb {
        let port = match port {
            Some(port) => port,
            None => free_port()?,
        };
        opts.gdb = Some(port);
        note!(
            "uniklink: QEMU waits for a debugger on 127.0.0.1:{port}, the guest stopped before \
             its first instruction; attach with:\n  {}",
            run::gdb_command(&opts.image, opts.arch, port)
        );
        if opts.arch == Arch::X86_64 {
            note!(
                "uniklink: the guest enters in 32-bit mode (PVH) and is in long mode before \
                 any Rust code runs, so breakpoints there work as they are; to step the entry \
                 code, `set architecture i386` first"
            );
        }
    }
    opts.console = if json {
        ConsoleSink::Stderr
    } else {
        ConsoleSink::Stdout
    };
    let outcome = run::boot(&opts)?;

    if !outcome.qemu_messages.is_empty() {
        note_raw!("{}", outcome.qemu_messages);
    }
    if let Some(timeout) = args.timeout.filter(|_| outcome.timed_out) {
        note!(
            "uniklink: timeout after {}s, QEMU killed",
            timeout.as_secs_f64()
        );
    }
    if outcome.interrupted {
        note!("uniklink: interrupted, QEMU killed");
    }
    if let Some(point) = &opts.until
        && outcome.guest_exit_code.is_some()
    {
        note!(
            "uniklink: the guest exited before reaching `{}`",
            point.name()
        );
    }
    if !args.output.quiet {
        note!("uniklink: boot: {}", summary(&outcome));
    }
    let backtraces = symbolized(&opts.image, &outcome.backtraces);
    for backtrace in &backtraces {
        note!("uniklink: backtrace, innermost first:");
        for frame in backtrace {
            for line in frame.text.lines() {
                note!("uniklink:   {line}");
            }
        }
    }
    let chart = match (&args.timeline, &outcome.timeline) {
        (Some(path), Some(timeline)) => {
            let path = path
                .clone()
                .unwrap_or_else(|| opts.image.with_extension("timeline.svg"));
            write_chart(&path, timeline, &outcome, &opts)?;
            if !args.output.quiet {
                note_raw!("{}", run::timeline::table(timeline, &outcome.times));
                note!("uniklink: timeline chart {}", path.display());
            }
            Some(path)
        }
        (Some(_), None) => {
            note!("uniklink: no boot timeline: the guest printed none after the ready marker");
            None
        }
        (None, _) => None,
    };
    let status = exit_status(&outcome, opts.until.is_some());
    if json {
        let mut report = JsonReport::new(&opts, &outcome, status, chart.as_deref());
        report.backtraces = &backtraces;
        let line = serde_json::to_string(&report).into_diagnostic()?;
        // Nobody left to read it (a closed pipe) is no failure of the boot.
        if let Err(e) = writeln!(std::io::stdout(), "{line}")
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(miette!("cannot write the JSON report: {e}"));
        }
    }
    // Budgets come with a manifest; an image named on the command line boots unchecked, and
    // so does one of a profile the budgets do not gate. A guest that failed keeps its own
    // exit status.
    if let Some(manifest) = &manifest
        && uniklink::budget::gate(&manifest.budgets, args.cargo.cargo_profile().name()).is_ok()
        && let Err(e) =
            uniklink::budget::check_boot_time(&manifest.budgets, &opts.image, outcome.times.ready)
    {
        if status == 0 {
            return Err(miette!("{e}"));
        }
        note!("uniklink: {e}");
    }
    Ok(ExitCode::from(status))
}

/// One symbolized frame of a guest backtrace.
#[derive(Debug, Serialize)]
struct SymbolizedFrame {
    address: u64,
    /// `None` where no function of the image holds the address.
    function: Option<String>,
    offset: Option<u64>,
    /// With the image's DWARF (`<image>.debug`): the source frames at the address, innermost
    /// inlined call first, each `function` and `location` (`file:line:column`).
    source: Vec<SourceFrame>,
    /// As printed: `#0 0x101a2c in hello::fail+0x1c`, then a line per source frame.
    #[serde(skip)]
    text: String,
}

#[derive(Debug, Serialize)]
struct SourceFrame {
    function: Option<String>,
    location: Option<String>,
}

/// The guest's backtraces against the image's symbols; unsymbolized (addresses only) when
/// the image cannot be read, which is said once.
fn symbolized(image: &Path, backtraces: &[Vec<Frame>]) -> Vec<Vec<SymbolizedFrame>> {
    if backtraces.is_empty() {
        return Vec::new();
    }
    let symbolizer = Symbolizer::open(image)
        .inspect_err(|e| note!("uniklink: cannot symbolize the backtrace: {e}"))
        .ok();
    backtraces
        .iter()
        .map(|frames| {
            let lines = match &symbolizer {
                Some(symbolizer) => symbolizer.render(frames),
                None => Symbolizer::empty().render(frames),
            };
            frames
                .iter()
                .zip(lines)
                .map(|(&frame, text)| {
                    let place = symbolizer.as_ref().and_then(|s| s.place(frame));
                    SymbolizedFrame {
                        address: frame.address(),
                        offset: place.as_ref().map(|p| p.offset),
                        source: place
                            .iter()
                            .flat_map(|p| &p.lines)
                            .map(|line| SourceFrame {
                                function: line.function.clone(),
                                location: line.location.clone(),
                            })
                            .collect(),
                        function: place.map(|p| p.function),
                        text,
                    }
                })
                .collect()
        })
        .collect()
}

/// The timeline's SVG chart, titled with the image's name.
fn write_chart(
    path: &Path,
    timeline: &run::Timeline,
    outcome: &BootOutcome,
    opts: &RunOptions,
) -> miette::Result<()> {
    let name = opts.image.file_name().map_or_else(
        || opts.image.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let title = format!(
        "{name}: boot timeline ({}, {})",
        opts.platform.name(),
        outcome.accel.name()
    );
    std::fs::write(path, run::timeline::svg(timeline, &outcome.times, &title))
        .map_err(|e| miette!("cannot write the timeline chart {}: {e}", path.display()))
}

/// The guest's exit code, 124 for a timeout, 130 for Ctrl-C, 0 for a stop at `--until`'s
/// point; with `until`, a guest that exited before the point fails even with code 0.
fn exit_status(outcome: &BootOutcome, until: bool) -> u8 {
    match outcome.guest_exit_code {
        Some(0) if until => 1,
        Some(code) => code.clamp(0, 255) as u8,
        None if outcome.stopped => 0,
        None if outcome.timed_out => EXIT_TIMEOUT,
        None => EXIT_INTERRUPTED,
    }
}

/// `first byte 28.1 ms, ready 30.4 ms, guest entry→main 41 µs; exit 0`
fn summary(outcome: &BootOutcome) -> String {
    let t = &outcome.times;
    let mut parts = vec![match t.first_byte {
        Some(d) => format!("first byte {}", human_duration(d)),
        None => "no console output".to_owned(),
    }];
    if let Some(d) = t.ready {
        parts.push(format!("ready {}", human_duration(d)));
    } else if t.first_byte.is_some() {
        parts.push("no ready marker".to_owned());
    }
    if let Some(d) = t.entry_to_main {
        parts.push(format!("guest entry→main {}", human_duration(d)));
    }
    parts.push(format!("total {}", human_duration(t.total)));
    if let Some(timeline) = &outcome.timeline {
        for milestone in &timeline.milestones {
            parts.push(format!(
                "{} {}",
                milestone.name,
                human_duration(milestone.host_at)
            ));
        }
    }
    let end = match outcome.guest_exit_code {
        Some(code) => format!("exit {code}"),
        None if outcome.stopped => "stopped".to_owned(),
        None if outcome.timed_out => "timed out".to_owned(),
        None => "interrupted".to_owned(),
    };
    format!("{}; {end} ({})", parts.join(", "), outcome.accel.name())
}

/// The `--json` report: one object, times in nanoseconds, `null` for what did not happen.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    reason: &'static str,
    image: &'a std::path::Path,
    arch: &'static str,
    platform: &'static str,
    accel: &'static str,
    first_byte_ns: Option<u128>,
    ready_ns: Option<u128>,
    entry_to_main_ns: Option<u128>,
    total_ns: u128,
    guest_exit_code: Option<i32>,
    timed_out: bool,
    interrupted: bool,
    /// Killed on reaching `--until`'s point.
    stopped: bool,
    exit_status: u8,
    /// The guest's milestones, host times from launch: `{"listening": 32000000}`.
    milestones_ns: std::collections::BTreeMap<&'a str, u128>,
    /// The guest's backtraces, innermost frame first, symbolized against the image.
    backtraces: &'a [Vec<SymbolizedFrame>],
    /// With `--timeline`: the guest's phases, `null` if it printed none.
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<Option<JsonTimeline<'a>>>,
}

#[derive(Debug, Serialize)]
struct JsonTimeline<'a> {
    phases: &'a [run::timeline::Phase],
    milestones: &'a [run::Milestone],
    chart: Option<&'a Path>,
}

impl<'a> JsonReport<'a> {
    fn new(
        opts: &'a RunOptions,
        outcome: &'a BootOutcome,
        exit_status: u8,
        chart: Option<&'a Path>,
    ) -> Self {
        let t = &outcome.times;
        JsonReport {
            reason: "booted",
            image: &opts.image,
            arch: opts.arch.name(),
            platform: opts.platform.name(),
            accel: outcome.accel.name(),
            first_byte_ns: t.first_byte.map(|d| d.as_nanos()),
            ready_ns: t.ready.map(|d| d.as_nanos()),
            entry_to_main_ns: t.entry_to_main.map(|d| d.as_nanos()),
            total_ns: t.total.as_nanos(),
            guest_exit_code: outcome.guest_exit_code,
            timed_out: outcome.timed_out,
            interrupted: outcome.interrupted,
            stopped: outcome.stopped,
            exit_status,
            backtraces: &[],
            milestones_ns: outcome
                .timeline
                .iter()
                .flat_map(|timeline| &timeline.milestones)
                .map(|m| (m.name.as_str(), m.host_at.as_nanos()))
                .collect(),
            timeline: opts.timeline.then(|| {
                outcome.timeline.as_ref().map(|timeline| JsonTimeline {
                    phases: &timeline.phases,
                    milestones: &timeline.milestones,
                    chart,
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_mib_or_a_size() {
        assert_eq!(parse_memory("64"), Ok(64 << 20));
        assert_eq!(parse_memory("512K"), Ok(512 << 10));
        assert_eq!(parse_memory("1GiB"), Ok(1 << 30));
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("64MB").is_err());
    }

    #[test]
    fn platforms_parse_as_the_manifest_spells_them() {
        assert_eq!(parse_platform("qemu-q35"), Ok(Platform::QemuQ35));
        assert!(
            parse_platform("qemu")
                .unwrap_err()
                .contains("qemu-microvm, qemu-q35, firecracker, qemu-virt")
        );
    }

    #[test]
    fn stop_points_are_ready_or_one_word() {
        assert_eq!(parse_stop_point("ready"), Ok(StopPoint::Ready));
        assert_eq!(
            parse_stop_point("listening"),
            Ok(StopPoint::Milestone("listening".to_owned()))
        );
        for bad in ["", "two words", "a=b", "listening\n"] {
            assert!(parse_stop_point(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeouts_parse_as_seconds() {
        assert_eq!(parse_timeout("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
