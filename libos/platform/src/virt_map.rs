//! The identity map of an aarch64 image on QEMU's `virt` machine: its memory map, the
//! translation-table descriptors (4 KiB granule, TCR_EL1.T0SZ = 32, so four 1 GiB entries at
//! the first level) and the tables for an image's segments.
//!
//! uniklink's linker writes these tables into the image it links ([`write_tables`]); for an
//! image from another linker the runtime's entry code builds the same map at boot
//! (`unik-rt`, `arch/aarch64/mmu.rs`), from these constants. One definition for both keeps
//! them from disagreeing.
//!
//! | range | mapping |
//! | --- | --- |
//! | 0 … 0x08000000 | unmapped: null dereferences fault, and the flash holds nothing of ours |
//! | 0x08000000 … 0x0a200000 | device memory (GIC, PL011 at 0x09000000, RTC, GPIO, virtio-mmio at 0x0a000000), 2 MiB blocks |
//! | 0x40000000 … 4 GiB | normal memory, read-write, never executable, 2 MiB and 1 GiB blocks |
//! | the image | 4 KiB pages with its segments' access: code read-only and executable, read-only data read-only, data and `.bss` read-write; the stack guard page unmapped |

use core::ops::Range;

pub const PAGE: u64 = 0x1000;
pub const BLOCK_2M: u64 = 0x20_0000;
pub const BLOCK_1G: u64 = 0x4000_0000;
/// Entries of a 4 KiB table.
pub const ENTRIES: u64 = 512;
/// Entries of the first level: T0SZ = 32 gives 4 GiB of addresses.
pub const LEVEL1_ENTRIES: u64 = 4;
pub const RAM_START: u64 = 0x4000_0000;
/// The end of the first GiB of RAM, which the second-level table maps and the image must lie
/// in: its pages go through tables of their own.
pub const RAM_END: u64 = RAM_START + BLOCK_1G;
/// The end of what is mapped: RAM above it is not used.
pub const MAPPED_LIMIT: u64 = LEVEL1_ENTRIES * BLOCK_1G;
/// GIC, PL011, RTC, GPIO and the virtio-mmio slots.
pub const DEVICES: Range<u64> = 0x0800_0000..0x0a20_0000;

pub const TABLE: u64 = 0b11;
pub const BLOCK: u64 = 0b01;
const PAGE_DESC: u64 = 0b11;
/// MAIR_EL1 attribute indices ([`MAIR`]): 0 normal write-back, 1 Device-nGnRnE.
const ATTR_NORMAL: u64 = 0 << 2;
const ATTR_DEVICE: u64 = 1 << 2;
const READ_ONLY: u64 = 1 << 7;
const INNER_SHAREABLE: u64 = 0b11 << 8;
/// Set in every entry: the walker would fault on the first use of one without it.
const ACCESSED: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// A block of RAM: read-write, never executable.
pub const NORMAL_RW: u64 = ATTR_NORMAL | INNER_SHAREABLE | ACCESSED | PXN | UXN;
/// A block of devices.
pub const DEVICE_RW: u64 = ATTR_DEVICE | ACCESSED | PXN | UXN;
const IMAGE_PAGE: u64 = ATTR_NORMAL | INNER_SHAREABLE | ACCESSED | UXN | PAGE_DESC;
pub const READ_ONLY_PAGE: u64 = IMAGE_PAGE | READ_ONLY | PXN;
pub const EXECUTABLE_PAGE: u64 = IMAGE_PAGE | READ_ONLY;
pub const WRITABLE_PAGE: u64 = IMAGE_PAGE | PXN;
/// A page of the image's blocks that no segment takes: RAM the heap may use.
pub const RAM_PAGE: u64 = IMAGE_PAGE | PXN;

/// MAIR_EL1: attribute 0 normal write-back cacheable, attribute 1 Device-nGnRnE.
pub const MAIR: u64 = 0x00ff;
/// TCR_EL1: T0SZ=32, walks cacheable write-back and inner shareable, 4 KiB granule, TTBR1
/// walks off (EPD1), 40-bit physical addresses.
pub const TCR: u64 = 32 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (1 << 23) | (0b010 << 32);

/// ELF `p_flags` bits.
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// A page's access, weakest first: where two segments share a page the stronger wins, so
/// code stays executable and data writable whatever the order of the program headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// RAM beside the image, which the heap may take.
    Ram,
    ReadOnly,
    Executable,
    Writable,
}

impl Access {
    /// The access of a segment with these ELF `p_flags`.
    pub fn of_segment(p_flags: u32) -> Access {
        if p_flags & PF_W != 0 {
            Access::Writable
        } else if p_flags & PF_X != 0 {
            Access::Executable
        } else {
            Access::ReadOnly
        }
    }

    pub fn descriptor(self) -> u64 {
        match self {
            Access::Ram => RAM_PAGE,
            Access::ReadOnly => READ_ONLY_PAGE,
            Access::Executable => EXECUTABLE_PAGE,
            Access::Writable => WRITABLE_PAGE,
        }
    }
}

/// A loaded segment: its addresses in memory and its ELF `p_flags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub range: Range<u64>,
    pub flags: u32,
}

/// How many 2 MiB blocks, each with a table of 4 KiB pages, an image at `range` touches.
pub fn blocks_of(range: Range<u64>) -> u64 {
    let first = range.start & !(BLOCK_2M - 1);
    range.end.saturating_sub(first).div_ceil(BLOCK_2M).max(1)
}

/// The bytes of the tables for an image of `blocks` blocks, laid out as [`write_tables`]
/// writes them: a page table per block, the second levels of RAM's first GiB and of the
/// devices' GiB, then the first level.
pub fn tables_size(blocks: u64) -> u64 {
    level1_offset(blocks) + LEVEL1_ENTRIES * 8
}

/// Where the first level lies in the tables, in bytes.
pub fn level1_offset(blocks: u64) -> u64 {
    (blocks + 2) * PAGE
}

/// Writes into `out`, [`tables_size`] bytes that will lie at `address`, the tables mapping
/// an image of `segments`: its pages with their segments' access, the stronger where two
/// share a page; `guard_page` unmapped; the rest of its blocks as RAM; the first GiB of RAM
/// in 2 MiB blocks; the devices; RAM up to 4 GiB in 1 GiB blocks. Little-endian.
pub fn write_tables(segments: &[Segment], guard_page: Option<u64>, address: u64, out: &mut [u8]) {
    let blocks = (out.len() as u64).saturating_sub(LEVEL1_ENTRIES * 8) / PAGE - 2;
    let first_block = segments
        .iter()
        .map(|s| s.range.start)
        .min()
        .unwrap_or(RAM_START)
        & !(BLOCK_2M - 1);
    let image_blocks = first_block..first_block + blocks * BLOCK_2M;
    let page_entry = |i: u64| {
        let page = first_block + i * PAGE;
        if guard_page == Some(page) {
            return 0;
        }
        let access = segments
            .iter()
            .filter(|s| s.range.start & !(PAGE - 1) <= page && page < s.range.end)
            .map(|s| Access::of_segment(s.flags))
            .max()
            .unwrap_or(Access::Ram);
        page | access.descriptor()
    };
    let ram_entry = |i: u64| {
        let block = RAM_START + i * BLOCK_2M;
        if image_blocks.contains(&block) {
            (address + (block - first_block) / BLOCK_2M * PAGE) | TABLE
        } else {
            block | NORMAL_RW | BLOCK
        }
    };
    let device_entry = |i: u64| {
        let block = i * BLOCK_2M;
        if DEVICES.contains(&block) {
            block | DEVICE_RW | BLOCK
        } else {
            0
        }
    };
    let level1 = [
        (address + (blocks + 1) * PAGE) | TABLE,
        (address + blocks * PAGE) | TABLE,
        (2 * BLOCK_1G) | NORMAL_RW | BLOCK,
        (3 * BLOCK_1G) | NORMAL_RW | BLOCK,
    ];
    let entries = (0..blocks * ENTRIES)
        .map(page_entry)
        .chain((0..ENTRIES).map(ram_entry))
        .chain((0..ENTRIES).map(device_entry))
        .chain(level1);
    for (slot, entry) in out.chunks_exact_mut(8).zip(entries) {
        slot.copy_from_slice(&entry.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = RAM_START + BLOCK_2M;

    /// Pages two segments share take the stronger access, whatever the segments' order; the
    /// guard page is unmapped; the rest of the block is RAM; the second level points the
    /// image's block at its table; the devices and the first level are where the MMU looks.
    #[test]
    fn tables_map_each_page_with_its_strongest_segment() {
        let segment = |range: Range<u64>, flags| Segment { range, flags };
        let segments = [
            segment(BASE + 0x100..BASE + 0x1800, 4 | PF_X),
            segment(BASE..BASE + 0x100, 4),
            segment(BASE + 0x1800..BASE + 0x2000, 4),
            segment(BASE + 0x2000..BASE + 0x5000, 4 | PF_W),
        ];
        assert_eq!(blocks_of(BASE..BASE + 0x5000), 1);
        let at = 0x4030_0000;
        let mut out = [0; 3 * 4096 + 32];
        assert_eq!(out.len() as u64, tables_size(1));
        write_tables(&segments, Some(BASE + 0x3000), at, &mut out);
        let entry = |i: u64| {
            let i = i as usize * 8;
            u64::from_le_bytes(out[i..i + 8].try_into().unwrap())
        };
        assert_eq!(
            entry(0),
            BASE | EXECUTABLE_PAGE,
            "header page shared with code"
        );
        assert_eq!(
            entry(1),
            (BASE + PAGE) | EXECUTABLE_PAGE,
            "code page shared with rodata"
        );
        assert_eq!(entry(2), (BASE + 2 * PAGE) | WRITABLE_PAGE);
        assert_eq!(entry(3), 0, "the guard page");
        assert_eq!(entry(4), (BASE + 4 * PAGE) | WRITABLE_PAGE);
        assert_eq!(
            entry(5),
            (BASE + 5 * PAGE) | RAM_PAGE,
            "RAM beside the image"
        );
        assert_eq!(entry(511), (BASE + 511 * PAGE) | RAM_PAGE);
        assert_eq!(entry(ENTRIES), RAM_START | NORMAL_RW | BLOCK);
        assert_eq!(
            entry(ENTRIES + 1),
            at | TABLE,
            "the image's block goes through its table"
        );
        assert_eq!(
            entry(ENTRIES + 2),
            (RAM_START + 2 * BLOCK_2M) | NORMAL_RW | BLOCK
        );
        let low = 2 * ENTRIES;
        assert_eq!(entry(low + 63), 0, "below the devices");
        assert_eq!(entry(low + 64), DEVICES.start | DEVICE_RW | BLOCK);
        assert_eq!(
            entry(low + 80),
            (DEVICES.end - BLOCK_2M) | DEVICE_RW | BLOCK
        );
        assert_eq!(entry(low + 81), 0, "above the devices");
        let level1 = level1_offset(1) / 8;
        assert_eq!(level1, 3 * ENTRIES);
        assert_eq!(entry(level1), (at + 2 * PAGE) | TABLE);
        assert_eq!(entry(level1 + 1), (at + PAGE) | TABLE);
        assert_eq!(entry(level1 + 2), (2 * BLOCK_1G) | NORMAL_RW | BLOCK);
        assert_eq!(entry(level1 + 3), (3 * BLOCK_1G) | NORMAL_RW | BLOCK);
    }

    #[test]
    fn blocks_count_what_the_image_touches() {
        assert_eq!(blocks_of(BASE..BASE + 1), 1);
        assert_eq!(blocks_of(BASE..BASE + BLOCK_2M), 1);
        assert_eq!(blocks_of(BASE..BASE + BLOCK_2M + 1), 2);
        assert_eq!(blocks_of(BASE + PAGE..BASE + 21 * BLOCK_2M / 2), 11);
    }

    /// The descriptors the runtime and the linker share, bit by bit: normal memory is MAIR
    /// attribute 0, inner shareable and accessed; devices attribute 1; nothing writable is
    /// executable.
    #[test]
    fn descriptors_say_what_the_map_promises() {
        let attribute = |d: u64| (d >> 2) & 0b111;
        for d in [
            NORMAL_RW,
            READ_ONLY_PAGE,
            EXECUTABLE_PAGE,
            WRITABLE_PAGE,
            RAM_PAGE,
        ] {
            assert_eq!(
                (attribute(d), (d >> 8) & 0b11, d & ACCESSED),
                (0, 0b11, ACCESSED)
            );
        }
        assert_eq!((attribute(DEVICE_RW), DEVICE_RW & ACCESSED), (1, ACCESSED));
        assert_eq!(MAIR & 0xff, 0xff, "attribute 0: normal write-back");
        assert_eq!((MAIR >> 8) & 0xff, 0x00, "attribute 1: Device-nGnRnE");
        for d in [NORMAL_RW, DEVICE_RW, WRITABLE_PAGE, READ_ONLY_PAGE] {
            assert_ne!(d & PXN, 0, "{d:#x} is not executable");
        }
        assert_eq!(EXECUTABLE_PAGE & (PXN | READ_ONLY), READ_ONLY);
        assert_eq!(
            TCR & 0x3f,
            64 - 32,
            "T0SZ: 4 GiB, the first level's four entries"
        );
    }
}
