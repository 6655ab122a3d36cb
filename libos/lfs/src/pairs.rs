//! The metadata pairs of a volume, walked before littlefs mounts it.
//!
//! littlefs follows the block pairs its metadata names (a directory's pair, and the tails that
//! thread every pair into one list) as the disk says. A pair whose two blocks are one block and
//! whose tail is itself sends littlefs round inside a single call with that block in its
//! cache: no device access, so no budget of accesses (see `Budget`) stops it; littlefs's
//! issue #624 reports `lfs_dir_find` looping like this on a damaged volume. littlefs never
//! writes such a pair: it allocates a pair's two blocks apart. So before mounting, each pair
//! reachable from the superblock's through the tags of commits whose CRC holds (in either
//! block, superseded commits included) is read once, and a volume naming a pair of two equal
//! blocks is refused as damaged. The walk reads each block at most once: at most the whole
//! device for a hostile image, the metadata blocks for a valid one.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::{BLOCK_SIZE, BlockDevice, Error};

/// A directory's pair, named by its entry in the parent.
pub(crate) const TYPE_DIRSTRUCT: u32 = 0x200;
/// The next pair in the list of all pairs (soft) or of the same directory (hard, `0x601`).
pub(crate) const TYPE_TAIL: u32 = 0x600;
/// The tag closing a commit, whose data starts with the commit's CRC; the type's lowest bit
/// says how the next commit's first tag is stored.
pub(crate) const TYPE_CCRC: u32 = 0x500;
/// The block number of no block.
const NULL: u32 = u32::MAX;
/// The size of a deleted tag, which has no data.
const SIZE_DELETED: u32 = 0x3ff;

/// Refuses a volume whose metadata names a pair of two equal blocks, reading `device`'s
/// metadata pairs from the superblock's (blocks 0 and 1) on.
pub(crate) fn check<D: BlockDevice>(device: &mut D, block_count: u32) -> Result<(), Error> {
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    let mut read = BTreeSet::new();
    let mut queued = BTreeSet::from([[0, 1]]);
    let mut pending = vec![[0, 1]];
    while let Some(pair) = pending.pop() {
        if pair[0] == pair[1] {
            return Err(Error::Corrupt);
        }
        // A block past the device is littlefs's to refuse when it gets there.
        for b in pair.into_iter().filter(|&b| b < block_count) {
            if !read.insert(b) {
                continue;
            }
            device
                .read(u64::from(b) * u64::from(BLOCK_SIZE), &mut block)
                .map_err(Error::Io)?;
            // A null pair (`LFS_BLOCK_NULL`, all ones) names nothing: an emptied tail.
            for named in named_pairs(&block)
                .into_iter()
                .filter(|p| !p.contains(&NULL))
            {
                let key = [named[0].min(named[1]), named[0].max(named[1])];
                if queued.insert(key) {
                    pending.push(named);
                }
            }
        }
    }
    Ok(())
}

/// The pairs a metadata block's valid commits name: the walk ends where littlefs's
/// `lfs_dir_fetchmatch` ends it, at a tag that is not valid, runs past the block, or closes a
/// commit whose CRC does not match.
pub(crate) fn named_pairs(block: &[u8]) -> Vec<[u32; 2]> {
    let mut named = Vec::new();
    let mut commit = Vec::new();
    for tag in tags(block) {
        let data = &block[tag.data.clone()];
        if tag.kind & 0x780 == TYPE_CCRC {
            match data.get(..4) {
                Some(stored) if u32::from_le_bytes(word(stored)) == tag.crc => {}
                _ => break,
            }
            named.append(&mut commit);
        } else if (tag.kind == TYPE_DIRSTRUCT || tag.kind & !1 == TYPE_TAIL) && data.len() == 8 {
            commit.push([
                u32::from_le_bytes(word(&data[..4])),
                u32::from_le_bytes(word(&data[4..])),
            ]);
        }
    }
    named
}

/// One tag of a metadata block.
pub(crate) struct Tag {
    /// Its type, 11 bits.
    pub kind: u32,
    /// Where its data is.
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
