//! The identity mapping, with W^X: 4 KiB granule, 39-bit addresses, tables in `.bss`.
//!
//! | range | mapping |
//! | --- | --- |
//! | 0 … 0x08000000 | unmapped: null dereferences fault, and the flash holds nothing of ours |
//! | 0x08000000 … 0x0a200000 | device memory (GIC, PL011 at 0x09000000, RTC, GPIO, virtio-mmio at 0x0a000000), 2 MiB blocks |
//! | 0x40000000 … 4 GiB | normal memory, read-write, never executable, 2 MiB and 1 GiB blocks |
//! | the image | 4 KiB pages with its segments' permissions: code read-only and executable, read-only data read-only, data and `.bss` read-write; the stack guard page unmapped |
//!
//! The permissions of the image come from its own program headers (`__ehdr_start`), so they
//! match what the linker laid out, page by page: uniklink and GNU ld start each segment on a
//! page of its own. SCTLR_EL1.WXN additionally makes every writable page non-executable.
//!
//! The tables are written with the MMU off, as plain stores to RAM; TCG models no caches, and
//! on hardware the non-cacheable stores reach memory, which is what the walker reads.

use core::arch::asm;
use core::ops::Range;

use unik_platform::elf::{Access, Segment, block_access};

const PAGE: u64 = 0x1000;
const BLOCK_2M: u64 = 0x20_0000;
const BLOCK_1G: u64 = 0x4000_0000;
const ENTRIES: usize = 512;

pub(super) const RAM_START: u64 = 0x4000_0000;
/// The end of what is mapped: RAM above it is not used.
pub(super) const MAPPED_LIMIT: u64 = 1 << 32;
const DEVICES: Range<u64> = 0x0800_0000..0x0a20_0000;
/// How many 2 MiB blocks of RAM the image (`.bss` included) may touch.
const IMAGE_BLOCKS: usize = 8;

const TABLE: u64 = 0b11;
const BLOCK: u64 = 0b01;
const PAGE_DESC: u64 = 0b11;
const ATTR_NORMAL: u64 = 0 << 2;
const ATTR_DEVICE: u64 = 1 << 2;
const READ_ONLY: u64 = 1 << 7;
const INNER_SHAREABLE: u64 = 0b11 << 8;
const ACCESSED: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

const NORMAL_RW: u64 = ATTR_NORMAL | INNER_SHAREABLE | ACCESSED | PXN | UXN;
const DEVICE_RW: u64 = ATTR_DEVICE | ACCESSED | PXN | UXN;

/// MAIR_EL1: attribute 0 normal write-back cacheable, attribute 1 Device-nGnRnE.
const MAIR: u64 = 0x00ff;
/// TCR_EL1: T0SZ=25 (39-bit), walks cacheable write-back and inner shareable, 4 KiB granule,
/// TTBR1 walks off (EPD1), 40-bit physical addresses.
const TCR: u64 = 25 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (1 << 23) | (0b010 << 32);
/// SCTLR_EL1: MMU, data cache, stack alignment check, instruction cache, WXN.
const SCTLR_SET: u64 = 1 | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19);

#[repr(C, align(4096))]
pub(super) struct Table([u64; ENTRIES]);

impl Table {
    const EMPTY: Table = Table([0; ENTRIES]);
}

static mut LEVEL1: Table = Table::EMPTY;
static mut LOW: Table = Table::EMPTY;
static mut RAM: Table = Table::EMPTY;
static mut IMAGE: [Table; IMAGE_BLOCKS] = [Table::EMPTY; IMAGE_BLOCKS];

/// Why the mapping cannot be built.
#[derive(Debug)]
pub(super) enum MapError {
    ImageOutsideRam(Range<u64>),
    ImageTooLarge(Range<u64>),
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::ImageOutsideRam(r) => write!(
                f,
                "the image {:#x}-{:#x} is not in the first GiB of RAM",
                r.start, r.end
            ),
            MapError::ImageTooLarge(r) => write!(
                f,
                "the image {:#x}-{:#x} spans more than {IMAGE_BLOCKS} 2 MiB blocks",
                r.start, r.end
            ),
        }
    }
}

/// Fills the tables for the image `image` (its loaded segments, lowest first) with the page
/// `unmapped` left out, then turns the MMU on.
///
/// # Safety
/// Runs once, before anything else uses the tables, with the MMU off.
pub(super) unsafe fn enable(
    segments: &[Segment],
    image: Range<u64>,
    unmapped: u64,
) -> Result<(), MapError> {
    let first_block = image.start & !(BLOCK_2M - 1);
    let blocks = image
        .end
        .next_multiple_of(BLOCK_2M)
        .saturating_sub(first_block)
        / BLOCK_2M;
    if image.start < RAM_START || image.end > RAM_START + BLOCK_1G {
        return Err(MapError::ImageOutsideRam(image));
    }
    if blocks as usize > IMAGE_BLOCKS {
        return Err(MapError::ImageTooLarge(image));
    }
    // SAFETY: boot is single-threaded and nothing else holds references to the tables.
    unsafe {
        let level1 = (&raw mut LEVEL1).cast::<u64>();
        let low = (&raw mut LOW).cast::<u64>();
        let ram = (&raw mut RAM).cast::<u64>();

        *level1 = low as u64 | TABLE;
        fill(
            low.add((DEVICES.start / BLOCK_2M) as usize),
            DEVICES.start | DEVICE_RW | BLOCK,
            BLOCK_2M,
            ((DEVICES.end - DEVICES.start) / BLOCK_2M) as usize,
        );
        *level1.add(1) = ram as u64 | TABLE;
        fill(ram, RAM_START | NORMAL_RW | BLOCK, BLOCK_2M, ENTRIES);
        fill(
            level1.add(2),
            (2 * BLOCK_1G) | NORMAL_RW | BLOCK,
            BLOCK_1G,
            (MAPPED_LIMIT / BLOCK_1G - 2) as usize,
        );

        let mut n = 0;
        while n < blocks as usize {
            let table = (&raw mut IMAGE[n]).cast::<u64>();
            let block = first_block + n as u64 * BLOCK_2M;
            block_access(segments, block, PAGE, ENTRIES, |first, count, access| {
                let page = block + first as u64 * PAGE;
                fill(
                    table.add(first),
                    page | page_attributes(access) | PAGE_DESC,
                    PAGE,
                    count,
                );
            });
            if (block..block + BLOCK_2M).contains(&unmapped) {
                *table.add(((unmapped - block) / PAGE) as usize) = 0;
            }
            *ram.add(((block - RAM_START) / BLOCK_2M) as usize) = table as u64 | TABLE;
            n += 1;
        }

        asm!(
            "dsb ish",
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "mrs {sctlr}, sctlr_el1",
            "orr {sctlr}, {sctlr}, {set}",
            "msr sctlr_el1, {sctlr}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) TCR,
            ttbr0 = in(reg) level1 as u64,
            set = in(reg) SCTLR_SET,
            sctlr = out(reg) _,
            options(nostack),
        );
    }
    Ok(())
}

/// The descriptor attributes of a page with `access`.
fn page_attributes(access: Access) -> u64 {
    let base = ATTR_NORMAL | INNER_SHAREABLE | ACCESSED | UXN;
    match access {
        Access::ReadExecute => base | READ_ONLY,
        Access::ReadOnly => base | READ_ONLY | PXN,
        Access::ReadWrite => base | PXN,
    }
}

/// Writes `count` entries from `entry` on: `first`, then each `step` more.
///
/// # Safety
/// The `count` entries must lie in one table that nothing else refers to.
unsafe fn fill(entry: *mut u64, first: u64, step: u64, count: usize) {
    let mut i = 0;
    while i < count {
        // SAFETY: the caller's guarantee.
        unsafe { *entry.add(i) = first + i as u64 * step };
        i += 1;
    }
}

/// Whether `addr` lies where the mapping has RAM (for loader-provided pointers).
pub(super) fn is_ram(range: Range<u64>) -> bool {
    RAM_START <= range.start && range.start <= range.end && range.end <= MAPPED_LIMIT
}
