//! The inner `cargo build` that turns the app crate into a static library for a
//! `*-unknown-none` target. It is isolated from the caller's environment and cargo config
//! so that an outer `RUSTFLAGS`, `build.target` or wrapper cannot change the image.

use std::ffi::OsString;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, Metadata, MetadataCommand};

use super::BuildError;

/// Which cargo profile the app is built with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CargoProfile {
    #[default]
    Dev,
    Release,
    /// `--profile NAME`.
    Named(String),
}

impl CargoProfile {
    /// From `--release` and `--profile NAME`, as cargo reads them.
    pub fn from_flags(release: bool, profile: Option<&str>) -> CargoProfile {
        match (release, profile) {
            (true, _) | (false, Some("release")) => CargoProfile::Release,
            (false, Some("dev")) | (false, None) => CargoProfile::Dev,
            (false, Some(name)) => CargoProfile::Named(name.to_owned()),
        }
    }

    fn args(&self) -> Vec<&str> {
        match self {
            CargoProfile::Dev => Vec::new(),
            CargoProfile::Release => vec!["--release"],
            CargoProfile::Named(name) => vec!["--profile", name],
        }
    }

    /// The name `--profile` takes: `dev`, `release` or the custom one.
    pub fn name(&self) -> &str {
        match self {
            CargoProfile::Dev => "dev",
            CargoProfile::Release => "release",
            CargoProfile::Named(name) => name,
        }
    }

    /// The directory cargo writes the profile's artifacts to, which images follow: `debug`
    /// for dev, as cargo names it.
    pub fn dir_name(&self) -> &str {
        match self {
            CargoProfile::Dev => "debug",
            CargoProfile::Release => "release",
            CargoProfile::Named(name) => name,
        }
    }

    /// The flags that select it, for messages: nothing, `--release` or `--profile NAME`.
    pub fn flags(&self) -> String {
        self.args().join(" ")
    }
}

/// One inner build: the app package, its target and where cargo puts its output.
#[derive(Debug, Clone)]
pub struct CargoRequest<'a> {
    pub manifest_path: &'a Path,
    pub package: &'a str,
    pub target_triple: &'a str,
    pub profile: &'a CargoProfile,
    pub target_dir: &'a Path,
    /// Flags forwarded as given (`--features`, `--locked`, `--offline`, ...).
    pub passthrough: &'a [OsString],
}

/// Environment variables through which an outer build would leak into ours.
const LEAKY_ENV: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_ENCODED_RUSTFLAGS",
];

/// How C code in the app's dependencies (a `cc` build script, such as littlefs's in the `fs`
/// component) compiles for each bare-metal target: freestanding, not position-independent,
/// and on x86_64 without SSE or a red zone, as the Rust targets themselves; the `cc` crate
/// reads `CC_<target>` and `CFLAGS_<target>`, `bindgen` its `BINDGEN_EXTRA_CLANG_ARGS_<target>`.
/// A variable the user set wins. `libos/.cargo/config.toml` repeats these for building the
/// library OS's own workspace directly.
const C_TOOLCHAIN: &[(&str, &str, &str)] = &[
    (
        "x86_64-unknown-none",
        "gcc",
        "-ffreestanding -fno-pic -fno-stack-protector -mno-sse -mno-mmx -mno-sse2 -mno-red-zone -mcmodel=kernel",
    ),
    (
        "aarch64-unknown-none",
        "aarch64-linux-musl-gcc",
        "-ffreestanding -fno-pic -fno-stack-protector -mstrict-align",
    ),
];

fn c_toolchain(cmd: &mut Command, target_triple: &str) {
    let Some((_, cc, cflags)) = C_TOOLCHAIN.iter().find(|(t, _, _)| *t == target_triple) else {
        return;
    };
    let suffix = target_triple.replace('-', "_");
    for (var, value) in [
        (format!("CC_{suffix}"), *cc),
        (format!("CFLAGS_{suffix}"), *cflags),
        (
            format!("BINDGEN_EXTRA_CLANG_ARGS_{suffix}"),
            "-ffreestanding",
        ),
    ] {
        if std::env::var_os(&var).is_none() {
            cmd.env(var, value);
        }
    }
}

/// Runs `cmd` without the leaky variables, from the app's package directory: cargo reads
/// `.cargo/config.toml` files from its working directory upwards, and those of wherever the
/// user happens to be must not apply to the app. `manifest_path` must be absolute.
fn isolate(cmd: &mut Command, manifest_path: &Path) {
    for var in LEAKY_ENV {
        cmd.env_remove(var);
    }
    if let Some(dir) = manifest_path.parent() {
        cmd.current_dir(dir);
    }
}

fn absolute(path: &Path) -> Result<PathBuf, BuildError> {
    std::path::absolute(path).map_err(|source| BuildError::Io {
        path: path.to_owned(),
        source,
    })
}

/// `cargo metadata` for the app's manifest, dependencies resolved for `target_triple`.
pub fn metadata(manifest_path: &Path, target_triple: &str) -> Result<Metadata, BuildError> {
    metadata_with(manifest_path, target_triple, &[])
}

/// The flags of a `cargo build` command line that `cargo metadata` must obey too: it resolves
/// the dependencies first and would otherwise write `Cargo.lock` or go online regardless.
pub fn lock_flags(build_args: &[OsString]) -> Vec<String> {
    build_args
        .iter()
        .filter_map(|a| a.to_str())
        .filter(|a| matches!(*a, "--locked" | "--offline" | "--frozen"))
        .map(str::to_owned)
        .collect()
}

/// `metadata` with extra flags, such as [`lock_flags`].
pub fn metadata_with(
    manifest_path: &Path,
    target_triple: &str,
    flags: &[String],
) -> Result<Metadata, BuildError> {
    let absolute = absolute(manifest_path)?;
    let mut command = MetadataCommand::new();
    let mut options = vec!["--filter-platform".to_owned(), target_triple.to_owned()];
    options.extend_from_slice(flags);
    command.manifest_path(&absolute).other_options(options);
    let mut cmd = command.cargo_command();
    isolate(&mut cmd, &absolute);
    let output = cmd.output().map_err(|source| BuildError::CargoSpawn {
        command: command_line(&cmd),
        source,
    })?;
    if !output.status.success() {
        return Err(BuildError::Metadata {
            manifest: manifest_path.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout
        .lines()
        .find(|line| line.starts_with('{'))
        .unwrap_or_default();
    MetadataCommand::parse(json).map_err(|source| BuildError::MetadataJson {
        manifest: manifest_path.to_owned(),
        source,
    })
}

/// Maps every package's directory to `<name>-<version>`, so panic locations and other
/// embedded source paths name the crate, not where it sits on the building machine.
/// More specific directories come last because rustc lets the last matching prefix win.
fn remap_flags(metadata: &Metadata) -> Vec<String> {
    let mut dirs: Vec<(String, String)> = metadata
        .packages
        .iter()
        .filter_map(|p| {
            let dir = p.manifest_path.parent()?;
            Some((dir.to_string(), format!("{}-{}", p.name, p.version)))
        })
        .collect();
    dirs.sort_by_key(|(dir, _)| dir.len());
    dirs.into_iter()
        .map(|(dir, name)| format!("--remap-path-prefix={dir}={name}"))
        .collect()
}

/// The program and its arguments, without the environment, for error messages.
fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds the app and returns the static libraries cargo reported for it.
pub fn build_staticlib(
    req: &CargoRequest<'_>,
    metadata: &Metadata,
) -> Result<Vec<PathBuf>, BuildError> {
    let manifest_path = absolute(req.manifest_path)?;
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    isolate(&mut cmd, &manifest_path);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest_path)
        .arg("--package")
        .arg(req.package)
        .arg("--lib")
        .arg("--target")
        .arg(req.target_triple)
        .arg("--target-dir")
        .arg(req.target_dir)
        .arg("--message-format=json-render-diagnostics")
        .args(req.profile.args());
    let passthrough = look_as_on_terminal(&mut cmd, req.passthrough);
    cmd.args(passthrough);
    // CARGO_ENCODED_RUSTFLAGS takes precedence over every config-file rustflags setting, so
    // the user's flags cannot change the image. The `*-unknown-none` targets already put
    // each function and data object in its own section, which section GC relies on.
    let mut rustflags = remap_flags(metadata);
    // getrandom has no backend of its own for bare-metal targets and fails to compile without
    // one; the rng component is its custom backend, so rand and uuid work as they are.
    rustflags.extend([
        "--cfg".to_owned(),
        r#"getrandom_backend="custom""#.to_owned(),
    ]);
    // Every function keeps a frame record, which the runtime's panic and exception reports
    // walk for their backtraces (a push and a move per call; the bare-metal targets omit them).
    rustflags.push("-Cforce-frame-pointers=yes".to_owned());
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
    c_toolchain(&mut cmd, req.target_triple);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());

    let command_line = command_line(&cmd);
    tracing::info!("running {command_line}");
    let mut child = cmd.spawn().map_err(|source| BuildError::CargoSpawn {
        command: command_line.clone(),
        source,
    })?;
    let stdout = child.stdout.take().ok_or_else(|| BuildError::CargoSpawn {
        command: command_line.clone(),
        source: std::io::Error::other("cargo's stdout was not captured"),
    })?;
    let stderr = child.stderr.take().ok_or_else(|| BuildError::CargoSpawn {
        command: command_line.clone(),
        source: std::io::Error::other("cargo's stderr was not captured"),
    })?;
    let stderr_thread = std::thread::spawn(move || tee(stderr, std::io::stderr()));

    let mut staticlibs = Vec::new();
    let mut parse_error = None;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        match message {
            Ok(Message::CompilerArtifact(artifact))
                if artifact.target.name.replace('-', "_") == req.package.replace('-', "_")
                    && artifact
                        .target
                        .crate_types
                        .contains(&cargo_metadata::CrateType::StaticLib) =>
            {
                staticlibs.extend(
                    artifact
                        .filenames
                        .into_iter()
                        .filter(|f| f.extension() == Some("a"))
                        .map(PathBuf::from),
                );
            }
            Ok(_) => {}
            // Keep reading so cargo is never blocked on a full pipe; report after it exits.
            Err(source) => {
                parse_error.get_or_insert(source);
            }
        }
    }
    let status = child.wait().map_err(|source| BuildError::CargoSpawn {
        command: command_line.clone(),
        source,
    })?;
    let needs_std = stderr_thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if !status.success() {
        return Err(BuildError::CargoFailed {
            command: command_line,
            status,
            help: std_help(&package_names(&needs_std, metadata), req.target_triple),
        });
    }
    if let Some(source) = parse_error {
        return Err(BuildError::CargoOutput { source });
    }
    if staticlibs.is_empty() {
        return Err(BuildError::NoStaticlib {
            manifest: req.manifest_path.to_owned(),
            package: req.package.to_owned(),
        });
    }
    Ok(staticlibs)
}

/// Cargo's stderr reaches the terminal through [`tee`], so cargo no longer sees one; when
/// ours is a terminal, cargo is told to colour and draw its progress bar as it would there.
/// A colour or progress setting the user made stays. Returns `passthrough`, recoloured.
fn look_as_on_terminal(cmd: &mut Command, passthrough: &[OsString]) -> Vec<OsString> {
    let mut args = passthrough.to_vec();
    if !std::io::stderr().is_terminal() {
        return args;
    }
    if std::env::var_os("NO_COLOR").is_none() {
        for i in 0..args.len() {
            if args[i] == "--color=auto" {
                args[i] = "--color=always".into();
            } else if args[i] == "--color" && args.get(i + 1).is_some_and(|a| a == "auto") {
                args[i + 1] = "always".into();
            }
        }
        let chosen = args
            .iter()
            .any(|a| a.to_string_lossy().starts_with("--color"));
        if !chosen && std::env::var_os("CARGO_TERM_COLOR").is_none() {
            args.push("--color=always".into());
        }
    }
    if std::env::var_os("CARGO_TERM_PROGRESS_WHEN").is_none()
        && let Some(width) = terminal_width()
    {
        // Off a terminal cargo draws the bar only when told to and how wide.
        cmd.env("CARGO_TERM_PROGRESS_WHEN", "always")
            .env("CARGO_TERM_PROGRESS_WIDTH", width.to_string());
    }
    args
}

/// The width of the terminal on our stderr, when it is one.
fn terminal_width() -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a `winsize` through the pointer, which points at one
    // that lives across the call.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col)
}

/// Copies cargo's stderr to `to` as it comes, so cargo's output shows as it would on its
/// own, and returns the crates rustc said need `std`.
fn tee(mut from: impl Read, mut to: impl Write) -> Vec<String> {
    // Longer lines are cut for the search only; they are copied whole.
    const MAX_LINE: usize = 4096;
    let mut needs_std = Vec::new();
    let mut line = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // A closed stderr of ours must not stop the read, or cargo would block on the pipe.
        let _ = to.write_all(&buf[..n]);
        for &byte in &buf[..n] {
            if byte == b'\n' {
                needs_std.extend(crate_needing_std(&line));
                line.clear();
            } else if line.len() < MAX_LINE {
                line.push(byte);
            }
        }
    }
    needs_std.extend(crate_needing_std(&line));
    needs_std
}

/// The crate in rustc's note "`std` is required by `CRATE` because it does not declare
/// `#![no_std]`", coloured or not.
fn crate_needing_std(line: &[u8]) -> Option<String> {
    const NOTE: &str = "`std` is required by `";
    let text = strip_ansi(&String::from_utf8_lossy(line));
    let rest = &text[text.find(NOTE)? + NOTE.len()..];
    let name = &rest[..rest.find('`')?];
    (!name.is_empty()).then(|| name.to_owned())
}

/// `text` without its ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The packages whose library crates are `crates`, as rustc names them; a crate cargo does
/// not know keeps its own name.
fn package_names(crates: &[String], metadata: &Metadata) -> Vec<String> {
    crates
        .iter()
        .map(|krate| {
            metadata
                .packages
                .iter()
                .find(|p| {
                    p.targets
                        .iter()
                        .any(|t| t.is_lib() && t.name.replace('-', "_") == *krate)
                })
                .map_or_else(|| krate.clone(), |p| p.name.to_string())
        })
        .collect()
}

/// What to do about the dependencies `packages` that need `std`.
fn std_help(packages: &[String], target_triple: &str) -> Option<String> {
    let mut names: Vec<String> = packages.iter().map(|name| format!("`{name}`")).collect();
    names.sort();
    names.dedup();
    let (list, verb) = match names.as_slice() {
        [] => return None,
        [one] => (one.clone(), "needs"),
        [rest @ .., last] => (format!("{} and {last}", rest.join(", ")), "need"),
    };
    Some(format!(
        "{list} {verb} `std`, which {target_triple} does not have: apps are `no_std` + \
         `alloc`; turn the dependency's `std` feature off (`default-features = false` in \
         Cargo.toml, with the features you need) or use a crate that works without `std`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "   Compiling needs-std v0.1.0\n\
        error[E0463]: can't find crate for `std`\n  |\n  \
        = note: `std` is required by `needs_std` because it does not declare `#![no_std]`\n\n\
        error: could not compile `needs-std` (lib) due to 3 previous errors\n";

    #[test]
    fn stderr_is_copied_whole_and_crates_needing_std_are_noted() {
        let coloured = "\u{1b}[1m\u{1b}[94m= \u{1b}[0m\u{1b}[1mnote\u{1b}[0m: `std` is required \
            by `other` because it does not declare `#![no_std]`";
        let input = format!("{PLAIN}{coloured}");
        /// Gives one byte a read, so every note is split across reads.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut copied = Vec::new();
        let found = tee(Trickle(input.as_bytes()), &mut copied);
        assert_eq!(copied, input.as_bytes());
        assert_eq!(found, ["needs_std", "other"]);
        assert!(tee("error[E0308]: mismatched types\n".as_bytes(), Vec::new()).is_empty());
    }

    #[test]
    fn the_std_help_names_the_packages_and_what_to_turn_off() {
        assert_eq!(std_help(&[], "x86_64-unknown-none"), None);
        let one = std_help(&["needs-std".to_owned()], "x86_64-unknown-none").unwrap();
        assert!(
            one.starts_with(
                "`needs-std` needs `std`, which x86_64-unknown-none does not have: apps are \
                 `no_std` + `alloc`; turn the dependency's `std` feature off \
                 (`default-features = false`"
            ),
            "{one}"
        );
        let names = ["b", "a", "c", "a"].map(str::to_owned);
        let several = std_help(&names, "aarch64-unknown-none").unwrap();
        assert!(
            several.starts_with("`a`, `b` and `c` need `std`"),
            "{several}"
        );
    }

    #[test]
    fn a_cargo_failure_shows_the_help_under_it() {
        use std::os::unix::process::ExitStatusExt;
        let error = BuildError::CargoFailed {
            command: "cargo build".to_owned(),
            status: std::process::ExitStatus::from_raw(101 << 8),
            help: std_help(&["needs-std".to_owned()], "x86_64-unknown-none"),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("`cargo build` failed (exit status: 101)\n  help: `needs-std` needs"),
            "{text}"
        );
    }
}
