//! A real Rust program nobody on this project wrote: ripgrep, from crates.io, built by cargo in
//! release for `x86_64-unknown-linux-musl` as a static, non-PIE executable. rustc's own link
//! line is captured (`fixtures/rust-program/capture-link.sh` stands in for the linker and keeps
//! copies of the inputs rustc deletes afterwards), so the same link can be repeated by any
//! linker: GNU ld, ld.lld and mold with rustc's flags, uniklink with its input files.
//!
//! `cargo install --locked` of one exact release builds it with the Cargo.lock published in the
//! package, so every dependency is pinned without a manifest of ours (ripgrep has no library
//! target, so it cannot be an ordinary dependency of one).

use std::collections::hash_map::DefaultHasher;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::toolchain::{self, Toolchain};

const PACKAGE: &str = "ripgrep";
const VERSION: &str = "15.2.0";
const BINARY: &str = "rg";
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Static and non-PIE like the C programs (`-fno-pie`); `-C linker-flavor=ld` makes rustc
/// write the linker's own command line rather than a compiler driver's.
const RUSTFLAGS: &[&str] = &[
    "-Clinker-flavor=ld",
    "-Crelocation-model=static",
    "-Ctarget-feature=+crt-static",
];

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/rust-program")
}

/// The committed directory of text the program searches when it is run.
pub fn corpus_dir() -> PathBuf {
    fixtures_dir().join("corpus")
}

/// One run of ripgrep whose output does not depend on thread scheduling or the file system's
/// order (`--sort path` searches on one thread, in path order): what `bench link` compares.
pub fn bench_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--sort", "path", "--line-number", "--ignore-case"]
        .map(OsString::from)
        .to_vec();
    args.push(r"\b(fn|struct|linker)\b".into());
    args.push(corpus_dir().into_os_string());
    args
}

/// rustc's link of the program, with every input file a cached copy.
#[derive(Debug, Clone)]
pub struct LinkLine {
    /// The linker's arguments without `-o OUT`; `-lNAME` already resolved to a copied archive.
    args: Vec<String>,
    /// The arguments that are input files, in link order.
    inputs: Vec<PathBuf>,
}

impl LinkLine {
    /// rustc's link, run by `linker` (GNU ld, ld.lld, mold) into `out`.
    pub fn command(&self, linker: &str, out: &Path) -> Command {
        let mut cmd = Command::new(linker);
        cmd.args(&self.args).arg("-o").arg(out);
        cmd
    }

    /// uniklink's `link` arguments for the same link: of rustc's flags, the one uniklink
    /// needs to know (`--eh-frame-hdr`: Rust's unwinder finds FDEs only through it), then the
    /// input files (objects, rlibs, archives) in rustc's order.
    pub fn uniklink_args(&self) -> Vec<&OsStr> {
        self.args
            .iter()
            .filter(|arg| *arg == "--eh-frame-hdr")
            .map(OsStr::new)
            .chain(self.inputs.iter().map(|input| input.as_os_str()))
            .collect()
    }
}

/// Builds ripgrep with its link line captured, or returns the capture a previous run left in
/// `cache_root` for the same ripgrep release, rustc, C compiler and flags. The cargo target
/// directory stays in `cache_root` too, so a changed key rebuilds only what changed.
pub fn build(toolchain: &Toolchain, cache_root: &Path) -> Result<LinkLine, Error> {
    let script = fixtures_dir().join("capture-link.sh");

    let key = cache_key(&script, toolchain)?;
    let dir = cache_root.join(format!("{PACKAGE}-{key:016x}"));
    let line_file = dir.join("link-line");
    if line_file.is_file() {
        return read_line(&line_file);
    }

    fs::create_dir_all(cache_root).map_err(Error::io(cache_root))?;
    // Capture into a private directory and rename it into place, so an interrupted or
    // concurrent build never leaves a half-filled cache entry behind.
    let scratch = cache_root.join(format!(".{PACKAGE}-{key:016x}.{}", std::process::id()));
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(Error::io(&scratch))?;
    }
    let target_dir = cache_root.join(format!("{PACKAGE}-target"));
    // A build cargo considers fresh would not link, and so capture nothing: removing the
    // executable's outputs makes cargo compile and link the binary crate again.
    let deps = target_dir.join(TARGET).join("release/deps");
    if deps.is_dir() {
        for entry in fs::read_dir(&deps).map_err(Error::io(&deps))? {
            let path = entry.map_err(Error::io(&deps))?.path();
            let name = path.file_name().and_then(|name| name.to_str());
            if name.is_some_and(|name| name.starts_with(&format!("{BINARY}-"))) {
                fs::remove_file(&path).map_err(Error::io(&path))?;
            }
        }
    }

    let linker_variable = format!(
        "CARGO_TARGET_{}_LINKER",
        TARGET.to_uppercase().replace('-', "_")
    );
    toolchain::run(
        Command::new(env!("CARGO"))
            .current_dir(cache_root)
            .args([
                "install",
                "--locked",
                "--quiet",
                "--no-track",
                "--target",
                TARGET,
            ])
            .args([
                "--version",
                &format!("={VERSION}"),
                "--bin",
                BINARY,
                PACKAGE,
            ])
            .arg("--root")
            .arg(scratch.join("install"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env(linker_variable, &script)
            .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\x1f"))
            // jemalloc, ripgrep's allocator on musl, is C built by the `cc` crate.
            .env(format!("CC_{}", TARGET.replace('-', "_")), &toolchain.cc)
            .env("CARGO_INCREMENTAL", "0")
            .env("UNIKLINK_CAPTURE_DIR", &scratch),
    )?;

    let captured = scratch.join("link-args");
    let args = fs::read_to_string(&captured).map_err(Error::io(&captured))?;
    let args = resolve_libraries(args.lines().map(str::to_string).collect(), &scratch)?;
    // The line names the scratch directory; store it relative to the entry instead.
    let prefix = format!("{}/", scratch.display());
    let stored: Vec<String> = args
        .iter()
        .map(|arg| match arg.strip_prefix(&prefix) {
            Some(relative) => format!("@entry/{relative}"),
            None => arg.clone(),
        })
        .collect();
    // The GNU-ld-linked executable cargo installed is not needed: every link makes its own.
    let installed = scratch.join("install");
    fs::remove_dir_all(&installed).map_err(Error::io(&installed))?;
    let stored_file = scratch.join("link-line");
    fs::write(&stored_file, stored.join("\n") + "\n").map_err(Error::io(&stored_file))?;
    match fs::rename(&scratch, &dir) {
        Ok(()) => {}
        // Another process finished the same entry first; its capture is equivalent.
        Err(_) if line_file.is_file() => {
            fs::remove_dir_all(&scratch).map_err(Error::io(&scratch))?;
        }
        Err(source) => return Err(Error::Io { path: dir, source }),
    }
    read_line(&line_file)
}

/// Replaces each `-lNAME` of the captured line by a copy of the static archive the linker
/// would take for it (`libNAME.a` in the first `-L` directory that has one: the link is
/// `-static`), and drops the `-L` options, which name rustc's temporary directories and the
/// toolchain's. What is left names only files in `dir` and flags.
fn resolve_libraries(args: Vec<String>, dir: &Path) -> Result<Vec<String>, Error> {
    let mut search = Vec::new();
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-L" => search.extend(args.next().map(PathBuf::from)),
            "-o" => {
                // rustc's output in cargo's directory; every link names its own.
                args.next();
            }
            _ => match arg.strip_prefix("-L") {
                Some(path) => search.push(PathBuf::from(path)),
                None => rest.push(arg),
            },
        }
    }
    rest.into_iter()
        .map(|arg| {
            let Some(name) = arg.strip_prefix("-l") else {
                return Ok(arg);
            };
            let file = match name.strip_prefix(':') {
                Some(file) => file.to_string(),
                None => format!("lib{name}.a"),
            };
            let found = search
                .iter()
                .map(|dir| dir.join(&file))
                .find(|path| path.is_file())
                .ok_or_else(|| Error::NotFound {
                    what: format!("{file} for rustc's {arg}"),
                    command: format!("the -L directories of {}", dir.display()),
                    printed: format!("{search:?}"),
                })?;
            let copy = dir.join("inputs").join(format!("{name}-{file}"));
            fs::copy(&found, &copy).map_err(Error::io(&found))?;
            Ok(copy.display().to_string())
        })
        .collect()
}

fn read_line(file: &Path) -> Result<LinkLine, Error> {
    let entry = file.parent().expect("the line is a file in its entry");
    let text = fs::read_to_string(file).map_err(Error::io(file))?;
    let args: Vec<String> = text
        .lines()
        .map(|arg| match arg.strip_prefix("@entry/") {
            Some(relative) => entry.join(relative).display().to_string(),
            None => arg.to_string(),
        })
        .collect();
    let inputs_dir = entry.join("inputs");
    let inputs = args
        .iter()
        .map(PathBuf::from)
        .filter(|path| path.starts_with(&inputs_dir))
        .collect();
    Ok(LinkLine { args, inputs })
}

/// Hashes everything that decides the captured inputs: the ripgrep release (its Cargo.lock
/// pins the rest), the capture script, rustc, the C compiler and the flags.
fn cache_key(script: &Path, toolchain: &Toolchain) -> Result<u64, Error> {
    let mut hasher = DefaultHasher::new();
    PACKAGE.hash(&mut hasher);
    VERSION.hash(&mut hasher);
    RUSTFLAGS.hash(&mut hasher);
    toolchain.cc.hash(&mut hasher);
    fs::read(script)
        .map_err(Error::io(script))?
        .hash(&mut hasher);
    let mut rustc = Command::new("rustc");
    rustc.arg("-vV");
    toolchain::run(&mut rustc)?.hash(&mut hasher);
    Ok(hasher.finish())
}
