//! The pieces of a static musl executable: musl's start files and libc, gcc's `crtbeginT.o`,
//! `crtend.o` and libgcc. They are located by asking the compiler drivers, never by guessing
//! distribution paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Optimised, non-PIE code: the shape of object a static linker sees most.
pub const BASE_CFLAGS: &[&str] = &["-O2", "-fno-pie"];

/// The architecture programs are built for. aarch64 uses Debian's cross compiler and
/// binutils with musl for arm64 (`musl-dev:arm64`), and runs under `qemu-aarch64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    X86_64,
    Aarch64,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64",
            Target::Aarch64 => "aarch64",
        }
    }

    /// The musl compiler driver.
    pub fn musl_cc(self) -> &'static str {
        match self {
            Target::X86_64 => "musl-gcc",
            Target::Aarch64 => "aarch64-linux-musl-gcc",
        }
    }

    /// The gcc whose start files and libgcc go with musl's.
    pub fn gcc(self) -> &'static str {
        match self {
            Target::X86_64 => "gcc",
            Target::Aarch64 => "aarch64-linux-gnu-gcc",
        }
    }

    /// GNU ld for the target.
    pub fn ld(self) -> &'static str {
        match self {
            Target::X86_64 => "ld",
            Target::Aarch64 => "aarch64-linux-gnu-ld",
        }
    }

    /// GNU ar for the target, which can index the target's symbols.
    pub fn ar(self) -> &'static str {
        match self {
            Target::X86_64 => "ar",
            Target::Aarch64 => "aarch64-linux-gnu-ar",
        }
    }

    /// The emulator a program runs under on this (x86_64) host, if any.
    pub fn runner(self) -> Option<&'static str> {
        match self {
            Target::X86_64 => None,
            Target::Aarch64 => Some("qemu-aarch64"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Toolchain {
    pub target: Target,
    pub cc: PathBuf,
    pub crt1: PathBuf,
    pub crti: PathBuf,
    pub crtn: PathBuf,
    pub libc: PathBuf,
    pub crtbegin: PathBuf,
    pub crtend: PathBuf,
    pub libgcc: PathBuf,
    pub libgcc_eh: PathBuf,
}

impl Toolchain {
    pub fn discover() -> Result<Self, Error> {
        Self::discover_for(Target::X86_64)
    }

    pub fn discover_for(target: Target) -> Result<Self, Error> {
        let cc = PathBuf::from(target.musl_cc());
        let gcc_file = |query: &str| gcc_file(target.gcc(), query);
        let musl_dir = musl_lib_dir(&cc)?;
        let in_musl = |name: &str| -> Result<PathBuf, Error> {
            let path = musl_dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::NotFound {
                    what: format!("musl's {name}"),
                    command: format!("ls {}", musl_dir.display()),
                    printed: String::new(),
                })
            }
        };
        Ok(Toolchain {
            crt1: in_musl("crt1.o")?,
            crti: in_musl("crti.o")?,
            crtn: in_musl("crtn.o")?,
            libc: in_musl("libc.a")?,
            crtbegin: gcc_file("-print-file-name=crtbeginT.o")?,
            crtend: gcc_file("-print-file-name=crtend.o")?,
            libgcc: gcc_file("-print-libgcc-file-name")?,
            libgcc_eh: gcc_file("-print-file-name=libgcc_eh.a")?,
            target,
            cc,
        })
    }

    /// Start files, in the order every static link puts them before the program's objects.
    pub fn start_files(&self) -> [&Path; 3] {
        [&self.crt1, &self.crti, &self.crtbegin]
    }

    pub fn libraries(&self) -> [&Path; 3] {
        [&self.libgcc, &self.libgcc_eh, &self.libc]
    }

    pub fn end_files(&self) -> [&Path; 2] {
        [&self.crtend, &self.crtn]
    }

    /// Compiles one C file to an object with [`BASE_CFLAGS`] followed by `extra`.
    pub fn compile(&self, source: &Path, object: &Path, extra: &[String]) -> Result<(), Error> {
        let mut cmd = Command::new(&self.cc);
        cmd.args(BASE_CFLAGS)
            .args(extra)
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(object);
        run(&mut cmd).map(drop)
    }

    /// The GNU ld command line for a static executable. The libraries go in a group because
    /// libc and libgcc refer to each other.
    pub fn gnu_ld(&self, ld: &str, objects: &[PathBuf], output: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(ld);
        cmd.arg("-static")
            .args(extra)
            .arg("-o")
            .arg(output)
            .args(self.start_files())
            .args(objects)
            .arg("--start-group")
            .args(self.libraries())
            .arg("--end-group")
            .args(self.end_files());
        cmd
    }
}

/// musl-gcc works through a specs file, so `-print-file-name` answers with the host libc's
/// files; the link line it would run (`-###`) names the real start files.
fn musl_lib_dir(cc: &Path) -> Result<PathBuf, Error> {
    let mut cmd = Command::new(cc);
    cmd.args(["-static", "-###", "-x", "c", "/dev/null", "-o", "/dev/null"]);
    let printed = run(&mut cmd)?;
    printed
        .split_whitespace()
        .map(|token| token.trim_matches(|c| c == '"' || c == '\''))
        .filter(|token| token.ends_with("/crti.o"))
        .map(Path::new)
        .filter_map(Path::parent)
        .find(|dir| dir.join("libc.a").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::NotFound {
            what: "musl's library directory".into(),
            command: describe(&cmd),
            printed,
        })
}

fn gcc_file(gcc: &str, query: &str) -> Result<PathBuf, Error> {
    let mut cmd = Command::new(gcc);
    cmd.arg(query);
    let printed = run(&mut cmd)?;
    let path = PathBuf::from(printed.trim());
    // gcc echoes the bare name back when it has no such file.
    if path.is_absolute() && path.is_file() {
        Ok(path)
    } else {
        Err(Error::NotFound {
            what: query.into(),
            command: describe(&cmd),
            printed,
        })
    }
}

/// Runs a command to completion and returns everything it printed (stdout then stderr; gcc
/// prints `-###` output on stderr).
pub fn run(cmd: &mut Command) -> Result<String, Error> {
    let output = cmd.output().map_err(|source| Error::MissingTool {
        tool: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command: describe(cmd),
            status: output.status,
            stderr: stderr.into_owned(),
        });
    }
    Ok(format!("{stdout}{stderr}"))
}

pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
