//! Support shared by `cargo xtask bench` and the root package's differential tests: finding the
//! musl C toolchain the way the compiler driver does, building the real C programs that
//! crates.io packages vendor, and building a real Rust program with its link line captured.
//! Both need exactly the same inputs, so they share one cache.

pub mod real;
pub mod rust_program;
pub mod toolchain;

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong preparing C inputs; each variant names the command or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot run `{tool}` ({source}); install the C toolchain with `bash .ci/setup` \
         (Debian packages musl-tools, musl-dev, gcc, binutils; for aarch64 gcc-aarch64-linux-gnu, \
         binutils-aarch64-linux-gnu, musl-dev:arm64, qemu-user)"
    )]
    MissingTool {
        tool: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    CommandFailed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("cannot find {what}: `{command}` gave {printed:?}")]
    NotFound {
        what: String,
        command: String,
        printed: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`cargo metadata --manifest-path {manifest}`: {source}")]
    Metadata {
        manifest: PathBuf,
        source: cargo_metadata::Error,
    },
    #[error("package `{package}` is not a dependency of {manifest}")]
    MissingPackage { package: String, manifest: PathBuf },
    #[error("no C sources matched in {dir}")]
    NoSources { dir: PathBuf },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
