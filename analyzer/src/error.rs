//! Errors of the analysis phases. Each names the file, archive member, section and offset
//! involved so a user can find the bad input without a debugger.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while loading, resolving and graphing inputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: is {kind}; inputs must be regular files", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: thin archive member {}: {reason}", archive.display(), member.display())]
    ThinMember {
        archive: PathBuf,
        member: PathBuf,
        reason: String,
    },
    #[error("{}: not an ELF relocatable object or ar archive", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: malformed archive: {reason}", path.display())]
    Archive { path: PathBuf, reason: String },
    #[error("{object}: malformed ELF: {reason}")]
    Malformed { object: String, reason: String },
    #[error("{object}: unsupported input: {reason}")]
    Unsupported { object: String, reason: String },
    #[error(
        "{object}: machine {} does not match {} of {first}",
        machine_name(*found),
        machine_name(*expected)
    )]
    MixedMachines {
        object: String,
        found: u16,
        first: String,
        expected: u16,
    },
    #[error("{}", DuplicateList(.0))]
    Duplicates(Vec<Duplicate>),
    #[error("{}", UndefinedList(symbols, *more_symbols))]
    Undefined {
        symbols: Vec<Undefined>,
        /// Undefined symbols not listed.
        more_symbols: usize,
    },
    #[error("entry symbol `{0}` is not defined")]
    NoEntry(String),
    #[error("kept symbol `{0}` is not defined by any input")]
    KeepUndefined(String),
    #[error("no input objects")]
    NoInputs,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A symbol defined strongly by two objects.
#[derive(Debug, Clone)]
pub struct Duplicate {
    pub name: String,
    /// The first definition's object, with `[file:line]` when it has debug info.
    pub first: String,
    pub second: String,
}

/// A symbol nobody defines and the first places that reference it.
#[derive(Debug, Clone)]
pub struct Undefined {
    pub name: String,
    pub references: Vec<Reference>,
    /// References not listed.
    pub more_references: usize,
    /// How to define it, when the caller knows who should (the analyzer does not).
    pub help: Option<String>,
}

/// A place that references a symbol.
#[derive(Debug, Clone)]
pub struct Reference {
    pub object: String,
    pub section: String,
    pub offset: u64,
    /// `file:line` from the referencing object's debug info, when it has any.
    pub source: Option<String>,
}

struct DuplicateList<'a>(&'a [Duplicate]);

impl fmt::Display for DuplicateList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "duplicate symbol `{}`: defined in {} and {}",
                d.name, d.first, d.second
            )?;
        }
        Ok(())
    }
}

struct UndefinedList<'a>(&'a [Undefined], usize);

impl fmt::Display for UndefinedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "undefined symbol `{}`", u.name)?;
            for (j, r) in u.references.iter().enumerate() {
                let lead = if j == 0 { ", " } else { "\n  also " };
                write!(
                    f,
                    "{lead}referenced by {} (section {}+{:#x})",
                    r.object, r.section, r.offset
                )?;
                if let Some(source) = &r.source {
                    write!(f, " [{source}]")?;
                }
            }
            if u.more_references > 0 {
                write!(f, "\n  and {} more references", u.more_references)?;
            }
            if let Some(help) = &u.help {
                write!(f, "\n  help: {help}")?;
            }
        }
        if self.1 > 0 {
            write!(f, "\nand {} more undefined symbols", self.1)?;
        }
        Ok(())
    }
}

/// `EM_*` number with its name when it is a common one.
fn machine_name(machine: u16) -> String {
    let name = match machine {
        object::elf::EM_X86_64 => "x86_64",
        object::elf::EM_AARCH64 => "aarch64",
        object::elf::EM_386 => "i386",
        object::elf::EM_ARM => "arm",
        object::elf::EM_RISCV => "riscv",
        _ => return machine.to_string(),
    };
    format!("{machine} ({name})")
}

/// Formats a raw symbol or section name for messages, demangling Rust and C++-free names.
pub fn display_name(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    format!("{:#}", rustc_demangle::demangle(&s))
}
