//! Images for QEMU's aarch64 `virt` machine: an ELF that QEMU's `-kernel` loader copies to its
//! link address in RAM and enters at `e_entry`, at EL1 with the MMU off.
//!
//! QEMU puts the device tree at the bottom of RAM (0x40000000) when the ELF leaves room
//! there, limited to the space below the image's lowest address; the machine's tree is well
//! under 1 MiB, so the image starts 2 MiB into RAM. The same 2 MiB offset is where arm64
//! boot loaders place Linux-style images, so one link address serves both.
//!
//! When the runtime asks for them (it refers to [`PAGE_TABLES_SYMBOL`]), the linker also
//! writes the image's translation tables: the identity map the runtime's entry code would
//! otherwise build with the MMU off (`libos/rt/src/arch/aarch64/mmu.rs`, whose encodings and
//! memory map these must match). An emulator such as QEMU's TCG pays for every block of
//! code it translates, so building them at boot costs about 100 µs there; loaded with the
//! image they cost nothing, and the entry code only turns the MMU on. The tables lie in the
//! read-only segment, so nothing the image does can rewrite its own map.

use std::ops::Range;

use object::{Architecture, elf};
use uniklink_analyzer::input::GeneratedObject;

use super::notes;
use super::{BuildId, ImageError, entry_is_code};
use crate::layout::{Layout, Rank};

/// Start of RAM on QEMU virt.
pub const RAM_START: u64 = 0x4000_0000;
/// What the image leaves free below itself for the device tree.
pub const DEVICE_TREE_ROOM: u64 = 0x20_0000;
/// Where the image is linked and loaded: physical = virtual.
pub const LOAD_ADDRESS: u64 = RAM_START + DEVICE_TREE_ROOM;
/// How reports name the generated object.
pub const NOTES_OBJECT_NAME: &str = "<uniklink:virt-notes>";

/// The runtime's weak reference that asks for the tables; the linker gives it the address
/// of the first-level table (TTBR0_EL1 with T0SZ = 32: four entries of 1 GiB).
pub const PAGE_TABLES_SYMBOL: &[u8] = b"__uniklink_page_tables";
/// The output section holding them.
pub const PAGE_TABLES_SECTION: &[u8] = b".unik.page_tables";
/// The boot stack's reserve: its first page is the stack's guard page, left unmapped.
const GUARD_RESERVE_SYMBOL: &[u8] = b"__uniklink_reserve_rt_stack_size";

const PAGE: u64 = 0x1000;
const BLOCK_2M: u64 = 0x20_0000;
const BLOCK_1G: u64 = 0x4000_0000;
const ENTRIES: u64 = 512;
/// The first-level table: 4 entries, at the end of the section.
const LEVEL1_SIZE: u64 = 32;
/// GIC, PL011, RTC, GPIO and the virtio-mmio slots, as device memory in 2 MiB blocks; below
/// them nothing is mapped, so that null dereferences fault.
const DEVICES: Range<u64> = 0x0800_0000..0x0a20_0000;
/// The tables map the first GiB of RAM (where the image must lie) through the second-level
/// table, then RAM up to 4 GiB in 1 GiB blocks.
const RAM_END: u64 = RAM_START + BLOCK_1G;

const TABLE: u64 = 0b11;
const BLOCK: u64 = 0b01;
const PAGE_DESC: u64 = 0b11;
/// MAIR_EL1 indices the runtime programs: 0 normal write-back, 1 Device-nGnRnE.
const ATTR_NORMAL: u64 = 0 << 2;
const ATTR_DEVICE: u64 = 1 << 2;
const READ_ONLY: u64 = 1 << 7;
const INNER_SHAREABLE: u64 = 0b11 << 8;
const ACCESSED: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const NORMAL_RW: u64 = ATTR_NORMAL | INNER_SHAREABLE | ACCESSED | PXN | UXN;
const DEVICE_RW: u64 = ATTR_DEVICE | ACCESSED | PXN | UXN;
const IMAGE_PAGE: u64 = ATTR_NORMAL | INNER_SHAREABLE | ACCESSED | UXN | PAGE_DESC;

/// A page's access, weakest first: where two segments share a page, the later one wins, so
/// code stays executable and data writable whatever the order of the program headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    /// RAM beside the image, which the heap may take.
    Ram,
    ReadOnly,
    Executable,
    Writable,
}

impl Access {
    fn of_segment(p_flags: u32) -> Access {
        if p_flags & elf::PF_W != 0 {
            Access::Writable
        } else if p_flags & elf::PF_X != 0 {
            Access::Executable
        } else {
            Access::ReadOnly
        }
    }

    fn descriptor(self) -> u64 {
        match self {
            Access::Ram | Access::Writable => IMAGE_PAGE | PXN,
            Access::ReadOnly => IMAGE_PAGE | READ_ONLY | PXN,
            Access::Executable => IMAGE_PAGE | READ_ONLY,
        }
    }
}

/// The image as the tables map it: its loaded segments, their `p_flags`, and the page that
/// stays unmapped.
#[derive(Debug, Clone)]
pub struct MappedImage {
    pub segments: Vec<(Range<u64>, u32)>,
    pub guard_page: Option<u64>,
}

/// How many 2 MiB blocks, each with a table of 4 KiB pages, an image at `range` touches.
pub fn blocks_of(range: Range<u64>) -> u64 {
    let first = range.start & !(BLOCK_2M - 1);
    range.end.saturating_sub(first).div_ceil(BLOCK_2M).max(1)
}

/// The size of the tables for an image of `blocks` 2 MiB blocks: a page table per block,
/// the second-level tables of RAM's first GiB and of the devices' GiB, the first level.
pub fn page_tables_size(blocks: u64) -> u64 {
    (blocks + 2) * PAGE + LEVEL1_SIZE
}

/// Where the first-level table lies in tables placed at `section`.
pub fn level1_address(section: Range<u64>) -> u64 {
    section.end - LEVEL1_SIZE
}

/// The image of `layout`, with the guard page of the boot stack's reserve.
pub fn mapped_image(layout: &Layout<'_>) -> MappedImage {
    let guard_page = layout
        .db
        .lookup(GUARD_RESERVE_SYMBOL)
        .map(|g| layout.global_addr[g])
        .filter(|&addr| addr != 0);
    MappedImage {
        segments: layout
            .segments
            .iter()
            .map(|s| (s.addr..s.addr + s.mem_size, s.flags))
            .collect(),
        guard_page,
    }
}

/// Writes into `out` (at `address`, [`page_tables_size`] bytes) the tables mapping `image`:
/// its pages with their segments' access, the rest of its blocks as RAM, the first GiB of
/// RAM in 2 MiB blocks, the devices, and RAM up to 4 GiB in 1 GiB blocks. Little-endian.
pub fn write_page_tables(image: &MappedImage, address: u64, out: &mut [u8]) {
    let blocks = (out.len() as u64 - LEVEL1_SIZE) / PAGE - 2;
    let first_block = image
        .segments
        .iter()
        .map(|(range, _)| range.start)
        .min()
        .unwrap_or(RAM_START)
        & !(BLOCK_2M - 1);
    let image_blocks = first_block..first_block + blocks * BLOCK_2M;
    let mut pages = vec![Access::Ram; (blocks * ENTRIES) as usize];
    for (range, flags) in &image.segments {
        let access = Access::of_segment(*flags);
        let first_page =
            (range.start.clamp(image_blocks.start, image_blocks.end) - first_block) / PAGE;
        let end_page =
            (range.end.clamp(image_blocks.start, image_blocks.end) - first_block).div_ceil(PAGE);
        for slot in pages
            .iter_mut()
            .take(end_page as usize)
            .skip(first_page as usize)
        {
            *slot = (*slot).max(access);
        }
    }
    let guard = image
        .guard_page
        .filter(|page| image_blocks.contains(page))
        .map(|page| (page - first_block) / PAGE);
    let level3 = pages.iter().zip(0..).map(|(access, i)| {
        if Some(i) == guard {
            0
        } else {
            (first_block + i * PAGE) | access.descriptor()
        }
    });
    let ram = (0..ENTRIES).map(|i| {
        let block = RAM_START + i * BLOCK_2M;
        if image_blocks.contains(&block) {
            (address + (block - first_block) / BLOCK_2M * PAGE) | TABLE
        } else {
            block | NORMAL_RW | BLOCK
        }
    });
    let devices = (0..ENTRIES).map(|i| {
        let block = i * BLOCK_2M;
        if DEVICES.contains(&block) {
            block | DEVICE_RW | BLOCK
        } else {
            0
        }
    });
    let level1 = [
        (address + (blocks + 1) * PAGE) | TABLE,
        (address + blocks * PAGE) | TABLE,
        (2 * BLOCK_1G) | NORMAL_RW | BLOCK,
        (3 * BLOCK_1G) | NORMAL_RW | BLOCK,
    ];
    let entries = level3.chain(ram).chain(devices).chain(level1);
    for (slot, entry) in out.chunks_exact_mut(8).zip(entries) {
        slot.copy_from_slice(&entry.to_le_bytes());
    }
}

/// An ELF relocatable object holding `.note.gnu.build-id` (= `build_id`), allocated so it
/// loads with the headers.
pub fn notes_object(build_id: &BuildId) -> Result<GeneratedObject, ImageError> {
    notes::finish(
        notes::object(Architecture::Aarch64),
        build_id,
        "virt notes",
        NOTES_OBJECT_NAME,
    )
}

/// QEMU jumps to `e_entry` with the MMU off, so the entry must be code; every loaded byte
/// must lie in RAM above the device tree's room, or QEMU would refuse the tree or the image;
/// an image with page tables must end in the first GiB of RAM, which they map in pages.
pub(super) fn check(layout: &Layout<'_>, entry: &str) -> Result<(), ImageError> {
    entry_is_code(layout, entry)?;
    let start = layout
        .segments
        .iter()
        .map(|s| s.addr)
        .min()
        .unwrap_or(layout.base);
    if start < LOAD_ADDRESS {
        return Err(ImageError::OverlapsDeviceTree { start });
    }
    let has_tables = layout.sections.iter().any(|s| s.rank == Rank::PageTables);
    if has_tables && layout.end() > RAM_END {
        return Err(ImageError::BeyondMappedRam {
            end: layout.end(),
            limit: RAM_END,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
    use object::{Endianness, Object as _, ObjectSection, elf};

    use super::*;
    use crate::image::notes::BUILD_ID_SECTION;

    /// Pages two segments share take the stronger access, whatever the segments' order; the
    /// guard page is unmapped; the rest of the block is RAM; the second level points the
    /// image's block at its table; the devices and the first level are where the MMU looks.
    #[test]
    fn page_tables_map_each_page_with_its_strongest_segment() {
        let base = LOAD_ADDRESS;
        let image = MappedImage {
            segments: vec![
                (base + 0x100..base + 0x1800, elf::PF_R | elf::PF_X),
                (base..base + 0x100, elf::PF_R),
                (base + 0x1800..base + 0x2000, elf::PF_R),
                (base + 0x2000..base + 0x5000, elf::PF_R | elf::PF_W),
            ],
            guard_page: Some(base + 0x3000),
        };
        assert_eq!(blocks_of(base..base + 0x5000), 1);
        let at = 0x4030_0000;
        let mut out = vec![0; page_tables_size(1) as usize];
        write_page_tables(&image, at, &mut out);
        let entry = |i: usize| u64::from_le_bytes(out[i * 8..i * 8 + 8].try_into().unwrap());
        let code = IMAGE_PAGE | READ_ONLY;
        let data = IMAGE_PAGE | PXN;
        // The image starts its block, so its pages are the table's first entries.
        assert_eq!(base % BLOCK_2M, 0);
        assert_eq!(entry(0), base | code, "header page shared with code");
        assert_eq!(
            entry(1),
            (base + PAGE) | code,
            "code page shared with rodata"
        );
        assert_eq!(entry(2), (base + 2 * PAGE) | data);
        assert_eq!(entry(3), 0, "the guard page");
        assert_eq!(entry(4), (base + 4 * PAGE) | data);
        assert_eq!(entry(5), (base + 5 * PAGE) | data, "RAM beside the image");
        assert_eq!(entry(511), (base + 511 * PAGE) | data);
        let ram = ENTRIES as usize;
        assert_eq!(entry(ram), RAM_START | NORMAL_RW | BLOCK);
        assert_eq!(
            entry(ram + 1),
            at | TABLE,
            "the image's block goes through its table"
        );
        assert_eq!(
            entry(ram + 2),
            (RAM_START + 2 * BLOCK_2M) | NORMAL_RW | BLOCK
        );
        let low = 2 * ENTRIES as usize;
        assert_eq!(entry(low + 63), 0, "below the devices");
        assert_eq!(entry(low + 64), DEVICES.start | DEVICE_RW | BLOCK);
        assert_eq!(
            entry(low + 80),
            (DEVICES.end - BLOCK_2M) | DEVICE_RW | BLOCK
        );
        assert_eq!(entry(low + 81), 0, "above the devices");
        let level1 = 3 * ENTRIES as usize;
        assert_eq!(
            level1_address(at..at + out.len() as u64),
            at + level1 as u64 * 8
        );
        assert_eq!(entry(level1), (at + 2 * PAGE) | TABLE);
        assert_eq!(entry(level1 + 1), (at + PAGE) | TABLE);
        assert_eq!(entry(level1 + 2), (2 * BLOCK_1G) | NORMAL_RW | BLOCK);
        assert_eq!(entry(level1 + 3), (3 * BLOCK_1G) | NORMAL_RW | BLOCK);
    }

    #[test]
    fn blocks_count_what_the_image_touches() {
        assert_eq!(blocks_of(LOAD_ADDRESS..LOAD_ADDRESS + 1), 1);
        assert_eq!(blocks_of(LOAD_ADDRESS..LOAD_ADDRESS + BLOCK_2M), 1);
        assert_eq!(blocks_of(LOAD_ADDRESS..LOAD_ADDRESS + BLOCK_2M + 1), 2);
        assert_eq!(
            blocks_of(LOAD_ADDRESS + 0x1000..LOAD_ADDRESS + 21 * BLOCK_2M / 2),
            11
        );
    }

    #[test]
    fn the_notes_object_is_an_aarch64_allocated_build_id() {
        let id = BuildId([0x5a; 20]);
        let obj = notes_object(&id).unwrap();
        let file = ElfFile64::<Endianness>::parse(&obj.bytes[..]).unwrap();
        let endian = file.endian();
        assert_eq!(file.elf_header().e_machine(endian), elf::EM_AARCH64);
        let section = file.section_by_name(BUILD_ID_SECTION).unwrap();
        let header = section.elf_section_header();
        assert_eq!(header.sh_type(endian), elf::SHT_NOTE);
        assert_eq!(header.sh_flags(endian), u64::from(elf::SHF_ALLOC));
        let data = section.data().unwrap();
        assert_eq!(&data[12..16], b"GNU\0");
        assert_eq!(&data[16..], &id.0);
    }
}
