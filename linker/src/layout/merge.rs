//! The string-merging sub-phase: the `SHF_MERGE` inputs of an output section that share a
//! kind and alignment become one deduplicated chunk, and each input keeps a map from its
//! pieces to their place in it.

use object::elf;
use rustc_hash::FxHashMap;
use uniklink_analyzer::object::{Section, SectionId};

use super::Layout;
use crate::error::{Error, Result};

/// How a mergeable input splits into pieces that can be shared across inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum MergeKind {
    /// NUL-terminated strings of bytes.
    Strings,
    /// Fixed-size constants of this many bytes (`.rodata.cst16`).
    Constants(u64),
}

/// Mergeable inputs without relocations; anything else is copied as is.
pub(super) fn merge_kind(s: &Section<'_>) -> Option<MergeKind> {
    let mergeable = s.flags & u64::from(elf::SHF_MERGE) != 0
        && s.entsize > 0
        && !s.is_nobits()
        && s.relocs().len() == 0;
    if !mergeable {
        None
    } else if s.flags & u64::from(elf::SHF_STRINGS) != 0 {
        (s.entsize == 1).then_some(MergeKind::Strings)
    } else {
        s.size
            .is_multiple_of(s.entsize)
            .then_some(MergeKind::Constants(s.entsize))
    }
}

/// Splits a mergeable input into (input offset, bytes) pieces.
fn split_pieces(kind: MergeKind, bytes: &[u8]) -> Vec<(u64, &[u8])> {
    match kind {
        MergeKind::Strings => {
            let mut pieces = Vec::new();
            let mut pos = 0;
            while pos < bytes.len() {
                let end = bytes[pos..]
                    .iter()
                    .position(|&c| c == 0)
                    .map_or(bytes.len(), |n| pos + n + 1);
                pieces.push((pos as u64, &bytes[pos..end]));
                pos = end;
            }
            pieces
        }
        MergeKind::Constants(size) => bytes
            .chunks(size as usize)
            .enumerate()
            .map(|(i, c)| (i as u64 * size, c))
            .collect(),
    }
}

/// Deduplicated pieces of the `SHF_MERGE` inputs of one output section that share a kind and
/// alignment: strings (with common suffixes shared) or fixed-size constants.
pub struct MergedStrings {
    pub data: Vec<u8>,
    pub align: u64,
}

/// Where a piece of a merged input starts in the input and in the merged chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece {
    pub input: u64,
    pub output: u64,
}

impl Layout<'_> {
    /// Merges `inputs` into [`Layout::strings`]`[index]`, recording each input's pieces.
    pub(super) fn merge(
        &mut self,
        kind: MergeKind,
        inputs: &[SectionId],
        align: u64,
        index: usize,
    ) -> Result<MergedStrings> {
        let db = self.db;
        let bytes = inputs
            .iter()
            .map(|id| db.object(id.object).section(id.index).data);
        let (merged, pieces) = merge(kind, align, bytes).map_err(|TooMuchPadding { size, inputs: input_bytes }| {
            let first = inputs[0];
            let o = db.object(first.object);
            Error::Section {
                object: o.name.clone(),
                section: o.section_name(first.index),
                reason: format!(
                    "its mergeable pieces, each aligned to {align:#x}, would take {size:#x} bytes, more than {MAX_GROWTH} times the {input_bytes:#x} bytes of the {} input section(s) merged with it",
                    inputs.len()
                ),
            }
        })?;
        for (&id, pieces) in inputs.iter().zip(pieces) {
            self.pieces.insert(id, (index, pieces));
        }
        Ok(merged)
    }
}

/// The merged size a mergeable input's alignment would give its pieces, when it is out of
/// proportion to the inputs: pieces of a byte each aligned to a megabyte would make kilobytes
/// of input gigabytes of output (found by the `link` fuzz target).
#[derive(Debug, PartialEq, Eq)]
struct TooMuchPadding {
    size: u64,
    /// The bytes of the inputs merged.
    inputs: u64,
}

/// How many times its inputs' bytes a merged chunk may grow by its pieces' alignment. Every
/// piece takes at least a byte (a string's terminator), so the growth is at most the
/// alignment, and compilers align short pieces to 8 at most: aarch64 GCC 12 puts `"r"` in
/// `.rodata.str1.8` (two objects' `"r"` and `"w"` merge into ten bytes of four); x86_64 GCC
/// only longer strings; constants are aligned to their own size.
const MAX_GROWTH: u64 = 16;

/// Deduplicates pieces across inputs, giving the merged bytes and each input's pieces in
/// order. Every piece stays aligned as its section was, since code may rely on the alignment
/// the compiler asked for; byte-aligned strings also share storage with strings they are a
/// suffix of, as GNU ld does.
fn merge<'d>(
    kind: MergeKind,
    align: u64,
    inputs: impl Iterator<Item = &'d [u8]>,
) -> Result<(MergedStrings, Vec<Vec<Piece>>), TooMuchPadding> {
    let mut unique: Vec<&'d [u8]> = Vec::new();
    let mut seen: FxHashMap<&'d [u8], usize> = FxHashMap::default();
    let mut input_bytes = 0u64;
    let per_input: Vec<Vec<(u64, usize)>> = inputs
        .map(|bytes| {
            input_bytes += bytes.len() as u64;
            split_pieces(kind, bytes)
                .into_iter()
                .map(|(offset, piece)| {
                    let u = *seen.entry(piece).or_insert_with(|| {
                        unique.push(piece);
                        unique.len() - 1
                    });
                    (offset, u)
                })
                .collect()
        })
        .collect();

    // With strings sorted by their reversed bytes, a string that is a suffix of another
    // sorts right before it or before another string with that suffix.
    let mut host: Vec<usize> = (0..unique.len()).collect();
    let tail_merge = kind == MergeKind::Strings && align == 1;
    if tail_merge {
        let mut order: Vec<usize> = (0..unique.len()).collect();
        order.sort_by(|&a, &b| unique[a].iter().rev().cmp(unique[b].iter().rev()));
        for w in (0..order.len().saturating_sub(1)).rev() {
            let (short, long) = (order[w], order[w + 1]);
            if unique[long].ends_with(unique[short]) {
                host[short] = host[long];
            }
        }
    }
    // Placed first, allocated once the size is known to be in proportion.
    let mut output = vec![0u64; unique.len()];
    let mut size = 0u64;
    for (u, piece) in unique.iter().enumerate() {
        if host[u] == u {
            let at = size.saturating_add(align - 1) & !(align - 1);
            output[u] = at;
            size = at.saturating_add(piece.len() as u64);
        }
    }
    if size > input_bytes.saturating_mul(MAX_GROWTH) {
        return Err(TooMuchPadding {
            size,
            inputs: input_bytes,
        });
    }
    let mut data = vec![0u8; size as usize];
    for (u, piece) in unique.iter().enumerate() {
        if host[u] == u {
            let at = output[u] as usize;
            data[at..at + piece.len()].copy_from_slice(piece);
        }
    }
    for u in 0..unique.len() {
        let h = host[u];
        if h != u {
            output[u] = output[h] + (unique[h].len() - unique[u].len()) as u64;
        }
    }
    let pieces = per_input
        .into_iter()
        .map(|pieces| {
            pieces
                .into_iter()
                .map(|(input, u)| Piece {
                    input,
                    output: output[u],
                })
                .collect()
        })
        .collect();
    Ok((MergedStrings { data, align }, pieces))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(pieces: &[Piece]) -> Vec<(u64, u64)> {
        pieces.iter().map(|p| (p.input, p.output)).collect()
    }

    #[test]
    fn strings_split_at_their_terminators() {
        let pieces = split_pieces(MergeKind::Strings, b"ab\0\0cd");
        assert_eq!(pieces, [(0, &b"ab\0"[..]), (3, b"\0"), (4, b"cd")]);
        let constants = split_pieces(MergeKind::Constants(4), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(constants, [(0, &[1, 2, 3, 4][..]), (4, &[5, 6, 7, 8])]);
    }

    #[test]
    fn duplicates_and_suffixes_share_storage() {
        let inputs: [&[u8]; 2] = [b"hello\0lo\0", b"lo\0world\0hello\0"];
        let (merged, pieces) = merge(MergeKind::Strings, 1, inputs.into_iter()).unwrap();
        assert_eq!(merged.data, b"hello\0world\0");
        // "lo" is the tail of "hello"; the second "hello" is the first.
        assert_eq!(outputs(&pieces[0]), [(0, 0), (6, 3)]);
        assert_eq!(outputs(&pieces[1]), [(0, 3), (3, 6), (9, 0)]);
    }

    #[test]
    fn aligned_pieces_stay_aligned_and_whole() {
        let inputs: [&[u8]; 1] = [b"abc\0bc\0abc\0"];
        let (merged, pieces) = merge(MergeKind::Strings, 4, inputs.into_iter()).unwrap();
        // No suffix sharing at alignment 4: "bc" gets its own aligned slot.
        assert_eq!(merged.data, b"abc\0bc\0");
        assert_eq!(outputs(&pieces[0]), [(0, 0), (4, 4), (7, 0)]);
        let constants: [&[u8]; 2] = [&[1, 0, 2, 0], &[2, 0, 3, 0]];
        let (merged, pieces) = merge(MergeKind::Constants(2), 2, constants.into_iter()).unwrap();
        assert_eq!(merged.data, [1, 0, 2, 0, 3, 0]);
        assert_eq!(outputs(&pieces[1]), [(0, 2), (2, 4)]);
    }

    #[test]
    fn alignment_out_of_proportion_to_the_pieces_is_refused_before_allocating() {
        // 2,000 distinct one-byte strings (as an attacker's object holds) at 1 MiB each
        // would be 2 GB of output.
        let input: Vec<u8> = (0..2000u32)
            .flat_map(|i| {
                [
                    b'a' + (i % 26) as u8,
                    b'A' + (i / 26 % 26) as u8,
                    b'0' + (i / 676) as u8,
                    0,
                ]
            })
            .collect();
        let result = merge(MergeKind::Strings, 1 << 20, [&input[..]].into_iter());
        assert!(matches!(result, Err(TooMuchPadding { size, .. }) if size > 1 << 30));
        // The same strings each aligned to 4 are what the input holds: merged as before.
        let (merged, _) = merge(MergeKind::Strings, 4, [&input[..]].into_iter()).unwrap();
        assert_eq!(merged.data, input);
        // Short strings of separate objects, each aligned to 8 (aarch64 GCC): ten bytes of four.
        let objects: [&[u8]; 2] = [b"r\0", b"w\0"];
        let (merged, _) = merge(MergeKind::Strings, 8, objects.into_iter()).unwrap();
        assert_eq!(merged.data, b"r\0\0\0\0\0\0\0w\0");
    }
}
