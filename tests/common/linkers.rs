//! The C toolchain and the linker under test. uniklink is this package's binary, or whatever
//! `UNIKLINK_TEST_LINKER` names: a program taking uniklink's command line
//! (`link --entry SYM -o OUT INPUTS...`), which is how the harness itself can be checked
//! against a known-good linker (see `tests/common/ld-as-uniklink.sh`). A test crate using this
//! module also declares `common/run.rs` as its `run` module.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use xtask::toolchain::{Target, Toolchain, describe};

pub struct Linkers {
    pub toolchain: Toolchain,
    uniklink: PathBuf,
}

#[derive(Debug)]
pub struct Linked {
    pub command: String,
    /// `None` when the linker was killed by a signal or stopped by the hang guard.
    pub code: Option<i32>,
    pub stderr: String,
}

impl Linked {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {:?}; stderr:\n{}",
            self.command, self.code, self.stderr
        )
    }
}

pub fn linkers() -> &'static Linkers {
    linkers_for(Target::X86_64).unwrap_or_else(|error| panic!("{error}"))
}

/// The toolchain for `target`, discovered once per test process; the error says what is
/// missing.
pub fn linkers_for(target: Target) -> Result<&'static Linkers, String> {
    static X86_64: OnceLock<Result<Linkers, String>> = OnceLock::new();
    static AARCH64: OnceLock<Result<Linkers, String>> = OnceLock::new();
    let cell = match target {
        Target::X86_64 => &X86_64,
        Target::Aarch64 => &AARCH64,
    };
    cell.get_or_init(|| {
        Ok(Linkers {
            toolchain: Toolchain::discover_for(target).map_err(|error| error.to_string())?,
            uniklink: std::env::var_os("UNIKLINK_TEST_LINKER")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cargo-uniklink"))),
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

impl Linkers {
    /// `uniklink link -o OUT ARGS...`.
    pub fn uniklink<I, S>(&self, out: &Path, args: I) -> Linked
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.uniklink);
        cmd.arg("link").arg("-o").arg(out).args(args);
        linked(cmd)
    }
}

pub fn linked(cmd: Command) -> Linked {
    let command = describe(&cmd);
    let ran = crate::run::run_command(cmd, b"");
    Linked {
        command,
        code: ran
            .status
            .strip_prefix("exit ")
            .and_then(|code| code.parse().ok()),
        stderr: ran.stderr,
    }
}

/// The names in a directory, to show that a failed link left nothing behind, not even a
/// temporary file.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// What a failed uniklink link must look like: exit status 1, a message, no panic, and no
/// file left in the output directory.
pub fn failure_problems(linked: &Linked, out: &Path, before: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if linked.code != Some(1) {
        problems.push(format!("exit status {:?}, expected 1", linked.code));
    }
    if linked.stderr.contains("panicked") {
        problems.push("stderr reports a panic".to_string());
    }
    if linked.stderr.trim().is_empty() {
        problems.push("stderr is empty".to_string());
    }
    if out.exists() {
        problems.push(format!("output {} exists", out.display()));
    }
    let after = listing(out.parent().expect("output has a directory"));
    if after != before {
        problems.push(format!(
            "output directory changed from {before:?} to {after:?}"
        ));
    }
    problems
}
