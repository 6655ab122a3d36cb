//! Errors of layout, relocation and writing, each naming the input and place involved.

use std::path::PathBuf;

use crate::arch::RelocError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported machine {0} (e_machine)")]
    UnsupportedMachine(u16),
    #[error(transparent)]
    Reloc(Box<RelocFailure>),
    #[error(transparent)]
    DiscardedTarget(Box<DiscardedTarget>),
    #[error("{object}: section {section}: {reason}")]
    Section {
        object: String,
        section: String,
        reason: String,
    },
    #[error("range-extension thunk to `{symbol}`: {reason}")]
    Thunk { symbol: String, reason: String },
    #[error("{0} output sections do not fit in an ELF section header table")]
    TooManySections(usize),
    #[error("the image does not fit in the address space above base {base:#x}")]
    AddressOverflow { base: u64 },
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A relocation that could not be applied, with where it is and what it targets.
#[derive(Debug, thiserror::Error)]
#[error("{object}: relocation {r_type} at {section}+{offset:#x} against `{symbol}`: {source}")]
pub struct RelocFailure {
    pub object: String,
    pub section: String,
    pub offset: u64,
    pub r_type: String,
    pub symbol: String,
    #[source]
    pub source: RelocError,
}

/// A kept section refers to a section that was not kept (a losing COMDAT copy).
#[derive(Debug, thiserror::Error)]
#[error(
    "{object}: {section}+{offset:#x} refers to `{symbol}`, whose section {target} was discarded"
)]
pub struct DiscardedTarget {
    pub object: String,
    pub section: String,
    pub offset: u64,
    pub symbol: String,
    pub target: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
