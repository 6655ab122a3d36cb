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
    #[error(
        "section {section} ({size:#x} bytes) does not fit in the address space above base {base:#x}"
    )]
    AddressOverflow {
        base: u64,
        section: String,
        size: u64,
    },
    #[error(
        "the image would be {size:#x} bytes, more than the {max:#x} a guest loads below 4 GiB; \
         a section's alignment or size in the inputs is likely corrupt"
    )]
    ImageTooLarge { size: u64, max: u64 },
    #[error(".eh_frame_hdr: {0}")]
    EhFrameHdr(String),
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
#[error(
    "{object}: relocation {r_type} at {section}+{offset:#x} (address {place:#x}) against `{symbol}`{} (address {target:#x}): {source}",
    Addend(*addend)
)]
pub struct RelocFailure {
    pub object: String,
    pub section: String,
    pub offset: u64,
    /// Where the patched field is in the image (P).
    pub place: u64,
    pub r_type: String,
    pub symbol: String,
    /// The symbol's address as the relocation used it (S): a thunk's when one stands in.
    pub target: u64,
    pub addend: i64,
    #[source]
    pub source: RelocError,
}

/// ` + 4`, ` - 4`, or nothing for 0.
struct Addend(i64);

impl std::fmt::Display for Addend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => Ok(()),
            a if a < 0 => write!(f, " - {}", a.unsigned_abs()),
            a => write!(f, " + {a}"),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Range;

    fn failure(target: u64, addend: i64, place: u64, source: RelocError) -> String {
        RelocFailure {
            object: "main.o".into(),
            section: ".text".into(),
            offset: 0x10,
            place,
            r_type: "R_X86_64_PC32".into(),
            symbol: "far".into(),
            target,
            addend,
            source,
        }
        .to_string()
    }

    /// S + A - P of a call to an address 4 GiB below the call: negative, and shown as the
    /// signed number and the 64-bit word, not as a 128-bit two's complement.
    #[test]
    fn overflow_shows_a_signed_value_with_its_64_bit_word_target_and_addend() {
        let (target, addend, place) = (0x1000u64, -4i64, 0x1_0000_2000u64);
        let value = i128::from(target) + i128::from(addend) - i128::from(place);
        let source = RelocError::Overflow {
            value,
            bits: 32,
            range: Range::Signed,
        };
        assert_eq!(
            failure(target, addend, place, source),
            "main.o: relocation R_X86_64_PC32 at .text+0x10 (address 0x100002000) against `far` - 4 \
             (address 0x1000): value -4294971396 (0xfffffffeffffeffc) does not fit in signed 32 bits"
        );
    }

    #[test]
    fn overflow_of_unsigned_and_either_fields() {
        let unsigned = RelocError::Overflow {
            value: 0x1_0000_0000,
            bits: 32,
            range: Range::Unsigned,
        };
        assert_eq!(
            failure(0x1_0000_0000, 0, 0x1000, unsigned),
            "main.o: relocation R_X86_64_PC32 at .text+0x10 (address 0x1000) against `far` \
             (address 0x100000000): value 4294967296 (0x100000000) does not fit in unsigned 32 bits"
        );
        let either = RelocError::Overflow {
            value: -0x8001,
            bits: 16,
            range: Range::Either,
        };
        assert_eq!(
            either.to_string(),
            "value -32769 (0xffffffffffff7fff) does not fit in signed or unsigned 16 bits"
        );
        let huge = RelocError::Overflow {
            value: i128::from(u64::MAX) + 8,
            bits: 64,
            range: Range::Unsigned,
        };
        assert_eq!(
            huge.to_string(),
            "value 18446744073709551623 (beyond 64 bits) does not fit in unsigned 64 bits"
        );
        let addend = failure(0, 8, 0, RelocError::OutOfBounds);
        assert!(
            addend.contains("against `far` + 8 (address 0x0)"),
            "{addend}"
        );
    }
}
