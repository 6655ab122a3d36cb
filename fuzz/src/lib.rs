//! What the fuzz targets share: an ELF-aware mutator for the `object` and `link` targets, and
//! a littlefs-aware one for `volume` (at the end).
//!
//! Plain byte mutation rarely gets a relocatable object past its header and section table:
//! most flipped bytes land in code or strings, and the fields that decide sizes, counts and
//! offsets are a few bytes among thousands. Half of the mutations here pick such a field (ELF
//! header, a section header, a symbol, a relocation) and write a boundary value into it:
//! 0, 1, huge powers of two, all ones, or an offset just past the end of the file.

/// A small deterministic generator, seeded by libFuzzer's seed, so a mutation can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u32) -> Rng {
        Rng(u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
const RELA_SIZE: usize = 24;
const SHT_SYMTAB: u32 = 2;
const SHT_RELA: u32 = 4;

fn read(data: &[u8], at: usize, width: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(width)?)?;
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(*b) << (8 * i);
    }
    Some(value)
}

fn write(data: &mut [u8], at: usize, width: usize, value: u64) {
    if let Some(bytes) = at.checked_add(width).and_then(|end| data.get_mut(at..end)) {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (value >> (8 * i)) as u8;
        }
    }
}

/// A value at the edge of what a field of `width` bytes at `at`, holding `old`, in a file of
/// `len` bytes can take.
fn boundary(rng: &mut Rng, width: usize, old: u64, len: usize) -> u64 {
    let len = len as u64;
    let value = match rng.below(16) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => 1 << rng.below(64),
        4 => (1 << rng.below(64)) - 1,
        5 => len,
        6 => len + 1,
        7 => len.wrapping_sub(1),
        8 => len + 0x1000,
        9 => old.wrapping_add(1),
        10 => old.wrapping_sub(1),
        11 => old.wrapping_mul(2),
        12 => old ^ (1 << rng.below(8 * width)),
        13 => 0x8000_0000,
        14 => u64::from(u32::MAX),
        _ => rng.next(),
    };
    if width >= 8 {
        value
    } else {
        value & ((1 << (8 * width)) - 1)
    }
}

/// A field of the object's structure: its offset and width in bytes.
fn pick_field(data: &[u8], rng: &mut Rng) -> Option<(usize, usize)> {
    if data.len() < EHDR_SIZE || &data[..4] != b"\x7fELF" {
        return None;
    }
    // e_type, e_machine, e_shoff, e_flags, e_shentsize, e_shnum, e_shstrndx, e_ident bytes.
    const EHDR_FIELDS: &[(usize, usize)] = &[
        (0x10, 2),
        (0x12, 2),
        (0x28, 8),
        (0x30, 4),
        (0x3a, 2),
        (0x3c, 2),
        (0x3e, 2),
        (4, 1),
        (5, 1),
    ];
    // sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info,
    // sh_addralign, sh_entsize.
    const SHDR_FIELDS: &[(usize, usize)] = &[
        (0, 4),
        (4, 4),
        (8, 8),
        (0x10, 8),
        (0x18, 8),
        (0x20, 8),
        (0x28, 4),
        (0x2c, 4),
        (0x30, 8),
        (0x38, 8),
    ];
    // st_name, st_info, st_other, st_shndx, st_value, st_size.
    const SYM_FIELDS: &[(usize, usize)] = &[(0, 4), (4, 1), (5, 1), (6, 2), (8, 8), (16, 8)];
    // r_offset, r_info (type), r_info (symbol index), r_addend.
    const RELA_FIELDS: &[(usize, usize)] = &[(0, 8), (8, 4), (12, 4), (16, 8)];

    let shoff = read(data, 0x28, 8)? as usize;
    let shnum = read(data, 0x3c, 2)? as usize;
    let sections: Vec<usize> = (0..shnum)
        .map(|i| shoff.wrapping_add(i * SHDR_SIZE))
        .filter(|&at| {
            at.checked_add(SHDR_SIZE)
                .is_some_and(|end| end <= data.len())
        })
        .collect();
    let of_type = |kind: u32| -> Vec<usize> {
        sections
            .iter()
            .copied()
            .filter(|&at| read(data, at + 4, 4) == Some(u64::from(kind)))
            .collect()
    };
    // An entry of a table section: (offset of the entry, fields).
    let entry = |rng: &mut Rng, tables: Vec<usize>, size: usize| -> Option<usize> {
        let table = *tables.get(rng.below(tables.len()))?;
        let offset = read(data, table + 0x18, 8)? as usize;
        let count = (read(data, table + 0x20, 8)? as usize) / size;
        (count > 0).then(|| offset.wrapping_add(rng.below(count) * size))
    };
    let (base, fields) = match rng.below(8) {
        0 => (0, EHDR_FIELDS),
        1..=3 if !sections.is_empty() => (sections[rng.below(sections.len())], SHDR_FIELDS),
        4 | 5 => (entry(rng, of_type(SHT_SYMTAB), SYM_SIZE)?, SYM_FIELDS),
        _ => (entry(rng, of_type(SHT_RELA), RELA_SIZE)?, RELA_FIELDS),
    };
    let (at, width) = fields[rng.below(fields.len())];
    let at = base.checked_add(at)?;
    (at.checked_add(width)? <= data.len()).then_some((at, width))
}

/// One ELF-aware mutation of `data[..size]` in place; returns the new size (at most
/// `max_size`). Falls back to libFuzzer's own mutation for non-ELF inputs and half the time.
pub fn mutate_elf(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let mut rng = Rng::new(seed);
    let choice = rng.below(16);
    if choice < 8 {
        return libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    }
    let bytes = &mut data[..size];
    if choice == 8 && size > 1 {
        // Truncation, at a structure boundary or anywhere.
        return rng.below(size).max(1);
    }
    // A few fields at once, as a real corruption often touches several.
    let edits = 1 + rng.below(3);
    let mut changed = false;
    for _ in 0..edits {
        if let Some((at, width)) = pick_field(bytes, &mut rng) {
            let old = read(bytes, at, width).unwrap_or(0);
            let value = boundary(&mut rng, width, old, size);
            write(bytes, at, width, value);
            changed = true;
        }
    }
    if changed {
        size
    } else {
        libfuzzer_sys::fuzzer_mutate(data, size, max_size)
    }
}

// The `volume` target's mutator: littlefs-aware.
//
// littlefs checks every metadata commit with a CRC, so a flipped byte in a directory almost
// always just drops the commit, and the mount falls back to an older one: plain mutation
// tests the checksum, rarely what the checked fields mean. Here most mutations end by making
// every commit's CRC match again, and some change a metadata tag itself (its type or id, or a
// word of its data: block pointers, sizes, tails) before that.

const LFS_BLOCK: usize = 4096;
/// A tag whose type has this top part (and its 0x5ff variant) is a commit's CRC.
const LFS_TYPE_CCRC: u32 = 0x500;
/// Types a metadata tag may take, CRCs aside (a CRC tag changes how the next tag is stored):
/// a file, a directory, the superblock, where an entry's data is (a directory's pair, inline,
/// a block list), a user attribute, a creation or deletion, a tail (soft, or hard for a split
/// directory), the global move state.
const LFS_TYPES: [u32; 12] = [
    0x001, 0x002, 0x0ff, 0x200, 0x201, 0x202, 0x300, 0x400, 0x401, 0x600, 0x601, 0x7ff,
];

/// littlefs's `lfs_crc`: CRC-32 (reflected, polynomial 0x04c11db7) without the final
/// inversion, seeded by the caller.
fn lfs_crc(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    crc
}

/// A tag of a metadata block, decoded: where it is, the tag it is stored XORed with (the one
/// before it), its value.
struct LfsTag {
    at: usize,
    before: u32,
    tag: u32,
}

fn lfs_dsize(tag: u32) -> usize {
    // A size of 0x3ff marks a deleted tag, which has no data.
    let size = tag & 0x3ff;
    4 + if size == 0x3ff { 0 } else { size as usize }
}

fn is_crc(tag: u32) -> bool {
    (tag & 0x7800_0000) >> 20 == LFS_TYPE_CCRC
}

/// Walks a metadata block's tags as littlefs's `lfs_dir_fetchmatch` does (revision count,
/// then tags, each XORed with the one before, a CRC tag closing each commit) without checking
/// the CRCs; with `fix`, writes each commit's CRC as littlefs computes it.
fn lfs_tags(block: &mut [u8], fix: bool) -> Vec<LfsTag> {
    let mut tags = Vec::new();
    let Some(rev) = block.get(..4) else {
        return tags;
    };
    let mut crc = lfs_crc(0xffff_ffff, rev);
    let mut before = 0xffff_ffff;
    let mut at = 4;
    while let Some(raw) = block.get(at..at + 4) {
        let tag = u32::from_be_bytes(raw.try_into().expect("four bytes")) ^ before;
        let end = at + lfs_dsize(tag);
        if tag & 0x8000_0000 != 0 || end > block.len() {
            break;
        }
        crc = lfs_crc(crc, &block[at..at + 4]);
        tags.push(LfsTag { at, before, tag });
        before = tag;
        if is_crc(tag) {
            if fix && end >= at + 8 {
                block[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
            }
            // A CRC tag's lowest type bit says how the next commit's first tag is stored.
            before ^= ((tag >> 20) & 1) << 31;
            crc = 0xffff_ffff;
        } else {
            crc = lfs_crc(crc, &block[at + 4..end]);
        }
        at = end;
    }
    tags
}

/// Block `b` of `image`, or what the input holds of it.
fn lfs_block(image: &mut [u8], b: usize) -> &mut [u8] {
    let end = ((b + 1) * LFS_BLOCK).min(image.len());
    &mut image[b * LFS_BLOCK..end]
}

/// Changes one metadata tag of `image`: its type or id, or one word of its data. Returns
/// whether there was a tag to change.
fn edit_lfs_tag(image: &mut [u8], rng: &mut Rng) -> bool {
    let blocks = image.len().div_ceil(LFS_BLOCK);
    // Metadata blocks: those whose walk finds a commit.
    let metadata: Vec<usize> = (0..blocks)
        .filter(|&b| {
            lfs_tags(lfs_block(image, b), false)
                .iter()
                .any(|t| is_crc(t.tag))
        })
        .collect();
    if metadata.is_empty() {
        return false;
    }
    let b = metadata[rng.below(metadata.len())];
    let block = lfs_block(image, b);
    let all = lfs_tags(block, false);
    let tags: Vec<&LfsTag> = all.iter().filter(|t| !is_crc(t.tag)).collect();
    if tags.is_empty() {
        return false;
    }
    let chosen = tags[rng.below(tags.len())];
    let data_words = (lfs_dsize(chosen.tag) - 4) / 4;
    if data_words > 0 && rng.below(2) == 0 {
        let at = chosen.at + 4 + 4 * rng.below(data_words);
        let old = u32::from_le_bytes(block[at..at + 4].try_into().expect("four bytes"));
        let image_blocks = blocks.max(16) as u32;
        let value = match rng.below(9) {
            0 => 0,
            1 => 1,
            2 => image_blocks - 1,
            3 => image_blocks,
            4 => b as u32,
            5 => u32::MAX,
            6 => 0x7fff_ffff,
            7 => old.wrapping_add(1),
            _ => old.wrapping_sub(1),
        };
        block[at..at + 4].copy_from_slice(&value.to_le_bytes());
        return true;
    }
    let old = chosen.tag;
    let new = if rng.below(2) == 0 {
        // Another type, same id and size.
        (old & 0x800f_ffff) | (LFS_TYPES[rng.below(LFS_TYPES.len())] << 20)
    } else {
        let id = (old >> 10) & 0x3ff;
        let id = match rng.below(4) {
            0 => 0,
            1 => 0x3ff,
            2 => (id + 1) & 0x3ff,
            _ => id.wrapping_sub(1) & 0x3ff,
        };
        (old & 0xfff0_03ff) | (id << 10)
    };
    block[chosen.at..chosen.at + 4].copy_from_slice(&(new ^ chosen.before).to_be_bytes());
    // The next tag is stored XORed with this one: keep it decoding as it did.
    if let Some(next) = all.iter().find(|t| t.at > chosen.at) {
        block[next.at..next.at + 4].copy_from_slice(&(next.tag ^ new).to_be_bytes());
    }
    true
}

/// Makes every commit's CRC in every block of `image` match its contents.
fn fix_lfs_crcs(image: &mut [u8]) {
    for block in image.chunks_mut(LFS_BLOCK) {
        lfs_tags(block, true);
    }
}

/// One littlefs-aware mutation of the disk image `data[..size]` in place; returns the new
/// size (at most `max_size`). An eighth of the mutations are libFuzzer's own with the CRCs
/// left as they come out (damaged commits); half are libFuzzer's own followed by the CRC
/// fix-up; the rest change a metadata tag, then fix the CRCs.
pub fn mutate_littlefs(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let mut rng = Rng::new(seed);
    let choice = rng.below(8);
    let size = if choice >= 5 && edit_lfs_tag(&mut data[..size], &mut rng) {
        size
    } else {
        libfuzzer_sys::fuzzer_mutate(data, size, max_size)
    };
    if choice != 0 {
        fix_lfs_crcs(&mut data[..size]);
    }
    size
}
