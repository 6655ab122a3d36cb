//! The inner `cargo build` that turns the app crate into a static library for a
//! `*-unknown-none` target. It is isolated from the caller's environment and cargo config
//! so that an outer `RUSTFLAGS`, `build.target` or wrapper cannot change the image.

use std::ffi::OsString;
use std::io::BufReader;
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
        .args(req.profile.args())
        .args(req.passthrough);
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
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
    c_toolchain(&mut cmd, req.target_triple);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());

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
    if !status.success() {
        return Err(BuildError::CargoFailed {
            command: command_line,
            status,
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
