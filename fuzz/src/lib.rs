//! What the fuzz targets share: an ELF-aware mutator for the `object` and `link` targets.
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
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
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
    if width >= 8 { value } else { value & ((1 << (8 * width)) - 1) }
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
        .filter(|&at| at.checked_add(SHDR_SIZE).is_some_and(|end| end <= data.len()))
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
