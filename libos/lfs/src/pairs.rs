//! The metadata pairs of a volume, walked before littlefs mounts it.
//!
//! littlefs follows the block pairs its metadata names (a directory's pair, and the tails that
//! thread every pair into one list) as the disk says. A pair whose two blocks are one block and
//! whose tail is itself sends littlefs round inside a single call with that block in its
//! cache: no device access, so no budget of accesses (see `Budget`) stops it; littlefs's
//! issue #624 reports `lfs_dir_find` looping like this on a damaged volume. littlefs never
//! writes a directory's pair or a tail of two equal blocks: it allocates a pair's two blocks
//! apart. So before mounting, each block reachable from the superblock's pair through the tags
//! of commits whose CRC holds (in either block of a pair, superseded commits included) is
//! read once, and a volume whose directory entries or tails name a pair of two equal blocks is
//! refused as damaged.
//!
//! The tags are read as littlefs reads them, not as it writes them: a tail is any tag of the
//! tail type class, its pair the eight bytes after the tag whatever the tag's size; a
//! directory's pair is the first eight bytes of any struct tag, zero-filled, since littlefs
//! opens whatever struct an entry named as a directory has. A struct tag other than a
//! directory's (a file's CTZ list, whose head and size may well be equal) is followed but
//! not refused. The walk reads each block at most once and keeps a bit per block: at most the
//! whole device for a hostile image, the metadata blocks (and what stale entries name) for a
//! valid one. What it cannot tell apart is a block freed since a superseded commit named it
//! and now holding, as file data, a forged commit naming such a pair: refused as well.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::{BLOCK_SIZE, BlockDevice, Error};

/// The class of struct tags, of which a directory's pair is `0x200`.
const CLASS_STRUCT: u32 = 0x200;
pub(crate) const TYPE_DIRSTRUCT: u32 = 0x200;
/// The class of tail tags: the next pair in the list of all pairs (soft, `0x600`) or of the
/// same directory (hard, `0x601`); littlefs takes any type of the class as one or the other.
pub(crate) const CLASS_TAIL: u32 = 0x600;
/// The tag closing a commit, whose data starts with the commit's CRC; the type's lowest bit
/// says how the next commit's first tag is stored.
pub(crate) const TYPE_CCRC: u32 = 0x500;
/// The block number of no block.
const NULL: u32 = u32::MAX;
/// The size of a deleted tag, which has no data.
const SIZE_DELETED: u32 = 0x3ff;

/// A pair a metadata block names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Named {
    pub pair: [u32; 2],
    /// Named as a directory's pair or a tail, which littlefs never writes with equal blocks.
    pub as_pair: bool,
}

/// Refuses a volume whose metadata names a directory's pair or a tail of two equal blocks,
/// reading `device`'s metadata from the superblock's pair (blocks 0 and 1) on.
pub(crate) fn check<D: BlockDevice>(device: &mut D, block_count: u32) -> Result<(), Error> {
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    let mut seen = vec![0u64; (block_count as usize).div_ceil(64)];
    // Blocks past the device are littlefs's to refuse when it gets there.
    let mut queue = |b: u32, pending: &mut Vec<u32>| {
        if b < block_count && seen[b as usize / 64] & (1 << (b % 64)) == 0 {
            seen[b as usize / 64] |= 1 << (b % 64);
            pending.push(b);
        }
    };
    let mut pending = Vec::new();
    queue(0, &mut pending);
    queue(1, &mut pending);
    while let Some(b) = pending.pop() {
        device
            .read(u64::from(b) * u64::from(BLOCK_SIZE), &mut block)
            .map_err(Error::Io)?;
        // A null pair (`LFS_BLOCK_NULL`, all ones) names nothing: an emptied tail.
        for named in named_pairs(&block)
            .into_iter()
            .filter(|n| !n.pair.contains(&NULL))
        {
            if named.as_pair && named.pair[0] == named.pair[1] {
                return Err(Error::Corrupt);
            }
            for b in named.pair {
                queue(b, &mut pending);
            }
        }
    }
    Ok(())
}

/// The pairs a metadata block's valid commits name: the walk ends where littlefs's
/// `lfs_dir_fetchmatch` ends it, at a tag that is not valid, runs past the block, or closes a
/// commit whose CRC does not match.
pub(crate) fn named_pairs(block: &[u8]) -> Vec<Named> {
    let mut named = Vec::new();
    let mut commit = Vec::new();
    for tag in tags(block) {
        let at = tag.data.start;
        if tag.kind & 0x780 == TYPE_CCRC {
            // littlefs reads the CRC after the tag whatever the tag's size says.
            match block.get(at..at + 4) {
                Some(stored) if u32::from_le_bytes(word(stored)) == tag.crc => {}
                _ => break,
            }
            named.append(&mut commit);
        } else if tag.kind & 0x700 == CLASS_TAIL {
            // The eight bytes after the tag, whatever its size.
            let Some(pair) = block.get(at..at + 8) else {
                break;
            };
            commit.push(Named {
                pair: pair_of(pair),
                as_pair: true,
            });
        } else if tag.kind & 0x700 == CLASS_STRUCT {
            // At most eight bytes of the tag's data, zero-filled.
            let data = &block[tag.data.clone()];
            let mut pair = [0u8; 8];
            let len = data.len().min(8);
            pair[..len].copy_from_slice(&data[..len]);
            commit.push(Named {
                pair: pair_of(&pair),
                as_pair: tag.kind == TYPE_DIRSTRUCT,
            });
        }
    }
    named
}

/// One tag of a metadata block.
pub(crate) struct Tag {
    /// Its type, 11 bits.
    pub kind: u32,
    /// Where its data is, as its size says.
    pub data: Range<usize>,
    /// The CRC of the commit so far, this tag and its data left out for a CRC tag (the value
    /// that tag stores) and taken in for the others.
    pub crc: u32,
}

/// A metadata block's tags as littlefs stores them: a revision count, then tags, each stored
/// XORed with the one before (the first with all ones), a CRC tag closing each commit. Ends
/// at a tag that is not valid or runs past the block; CRCs are computed, not checked.
pub(crate) fn tags(block: &[u8]) -> impl Iterator<Item = Tag> + '_ {
    let mut crc = crc32(0xffff_ffff, block.get(..4).unwrap_or_default());
    let mut before = 0xffff_ffff;
    let mut at = 4;
    core::iter::from_fn(move || {
        let raw = block.get(at..at + 4)?;
        let tag = u32::from_be_bytes(word(raw)) ^ before;
        let size = tag & 0x3ff;
        let end = at
            + 4
            + if size == SIZE_DELETED {
                0
            } else {
                size as usize
            };
        if tag & 0x8000_0000 != 0 || end > block.len() {
            return None;
        }
        crc = crc32(crc, raw);
        let kind = (tag >> 20) & 0x7ff;
        let data = at + 4..end;
        let commit_crc = if kind & 0x780 == TYPE_CCRC {
            let closed = crc;
            before = tag ^ ((kind & 1) << 31);
            crc = 0xffff_ffff;
            closed
        } else {
            crc = crc32(crc, &block[data.clone()]);
            before = tag;
            crc
        };
        at = end;
        Some(Tag {
            kind,
            data,
            crc: commit_crc,
        })
    })
}

fn word(bytes: &[u8]) -> [u8; 4] {
    [bytes[0], bytes[1], bytes[2], bytes[3]]
}

fn pair_of(bytes: &[u8]) -> [u32; 2] {
    [
        u32::from_le_bytes(word(&bytes[..4])),
        u32::from_le_bytes(word(&bytes[4..8])),
    ]
}

/// littlefs's CRC-32 (reflected polynomial 0xedb88320, no final inversion), continued from
/// `crc`.
pub(crate) fn crc32(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    crc
}
