//! The identity mapping of `unik_platform::virt_map`, with W^X, turned on at boot.
//!
//! uniklink writes its tables into a virt image, read-only, and gives their first level to
//! the weak `__uniklink_page_tables` (`linker/src/image/virt.rs`); the entry code then only
//! turns the MMU on (`map_image_asm!`). Under an emulator such as QEMU's TCG that is most of
//! boot's cost saved: it pays for every block of code the first time it runs (a few
//! microseconds each, and nearly one more for each instruction in it), and building the
//! tables is seven blocks and over a hundred instructions more than turning the MMU on (22
//! and 163 to `main`, against 15 and 54).
//!
//! Images from other linkers leave that symbol 0, and the entry code builds the same map in
//! `.bss` (`build_tables_asm!`), with the permissions from the image's own program headers
//! (`__ehdr_start`), page by page: uniklink and GNU ld start each segment on a page of its
//! own. SCTLR_EL1.WXN additionally makes every writable page non-executable. It does so in
//! a few straight runs of instructions, with the MMU off, as plain stores to RAM, which
//! reach memory. That is enough under QEMU, which models no caches, and is where such images
//! boot; on hardware the walks are cacheable (TCR_EL1) and could read a stale line, which
//! only invalidating the tables' lines after writing them would rule out. The linker's
//! tables have no such question: the loader writes them with the image.

use core::ops::Range;

use unik_platform::virt_map::{
    BLOCK, BLOCK_2M, DEVICE_RW, DEVICES, ENTRIES, EXECUTABLE_PAGE, LEVEL1_ENTRIES, NORMAL_RW,
    READ_ONLY_PAGE, WRITABLE_PAGE, blocks_of,
};
pub(super) use unik_platform::virt_map::{
    BLOCK_1G, MAIR, MAPPED_LIMIT, RAM_END, RAM_PAGE, RAM_START, TABLE, TCR,
};

/// How many 2 MiB blocks of RAM the image (`.bss` included) may touch.
pub(super) const IMAGE_BLOCKS: usize = 8;

/// The first entries of the runs the entry code writes.
pub(super) const RAM_FIRST: u64 = RAM_START | NORMAL_RW | BLOCK;
pub(super) const UPPER_FIRST: u64 = (2 * BLOCK_1G) | NORMAL_RW | BLOCK;
pub(super) const DEVICE_FIRST: u64 = DEVICES.start | DEVICE_RW | BLOCK;
/// Where the devices' entries start in `LOW`, in bytes, and how many there are.
pub(super) const DEVICE_OFFSET: u64 = DEVICES.start / BLOCK_2M * 8;
pub(super) const DEVICE_COUNT: u64 = (DEVICES.end - DEVICES.start) / BLOCK_2M;
/// The access of the image's pages, indexed by their segment's `p_flags & (PF_X | PF_W)`:
/// read-only, read-execute, read-write, read-write. The software bits 55-56 rank them (RAM
/// beside the image, [`RAM_PAGE`], lowest), so that on a page two segments share the entry
/// code keeps the stronger whatever the order of the program headers: W^X holds even for a
/// layout that does not keep segments apart. Hardware ignores those bits.
pub(super) static PAGE_ACCESS: [u64; 4] = [
    READ_ONLY_PAGE | RANK_READ_ONLY,
    EXECUTABLE_PAGE | RANK_EXECUTABLE,
    WRITABLE_PAGE | RANK_WRITABLE,
    WRITABLE_PAGE | RANK_WRITABLE,
];
const RANK_READ_ONLY: u64 = 1 << 55;
const RANK_EXECUTABLE: u64 = 2 << 55;
const RANK_WRITABLE: u64 = 3 << 55;

/// SCTLR_EL1: MMU, data cache, stack alignment check, instruction cache, WXN.
pub(super) const SCTLR_SET: u64 = 1 | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19);

// The level-1 table's four entries are written one by one below.
const _: () = assert!(LEVEL1_ENTRIES == 4 && DEVICES.end <= BLOCK_1G);

#[repr(C, align(4096))]
pub(super) struct Table([u64; ENTRIES as usize]);

impl Table {
    const EMPTY: Table = Table([0; ENTRIES as usize]);
}

/// The first level: four entries, which TTBR0_EL1 needs aligned to 64 bytes.
#[repr(C, align(64))]
pub(super) struct Level1([u64; LEVEL1_ENTRIES as usize]);

pub(super) static mut LEVEL1: Level1 = Level1([0; LEVEL1_ENTRIES as usize]);
pub(super) static mut LOW: Table = Table::EMPTY;
pub(super) static mut RAM: Table = Table::EMPTY;
pub(super) static mut IMAGE: [Table; IMAGE_BLOCKS] = [Table::EMPTY; IMAGE_BLOCKS];

/// The entry code's mapping: assembly that `_virt_start` (`boot.rs`) runs with the MMU off
/// and no stack in use, giving it the operands named in braces. With the linker's tables it
/// only programs the MMU's registers and turns it on; without them it branches to
/// `build_tables_asm!` (out of the straight path), which comes back to `.Lunik_map_on` with
/// the tables' first level in x12. Uses x2, x9-x16 and x21-x24.
///
/// Every write to a system register, every ISB and every branch ends QEMU's block of
/// translated code, so the straight path is those writes and little else.
macro_rules! map_image_asm {
    () => {
        r#"
    .weak __uniklink_page_tables
    ldr x12, =__uniklink_page_tables
    cbz x12, .Lunik_map_build
    mov x10, #{mair}
    msr mair_el1, x10
    ldr x14, ={tcr}
    msr tcr_el1, x14
    /* No stale translations once the MMU is on (the DSB before it waits for this) */
    tlbi vmalle1
.Lunik_map_on:
    /* MMU on: the tables' stores and the TLB invalidation complete before the walker uses
       them */
    dsb ish
    msr ttbr0_el1, x12
    isb
    mrs x10, sctlr_el1
    ldr x11, ={sctlr}
    orr x10, x10, x11
    msr sctlr_el1, x10
    isb
"#
    };
}
pub(super) use map_image_asm;

/// The tables built at boot, for images whose linker did not write them: it reads the
/// image's program headers at `__ehdr_start`, fills the tables for the image's 2 MiB blocks
/// and the rest of the map, and goes on at `.Lunik_map_on` with the first level in x12; or,
/// when the image does not lie in the first GiB of RAM or touches more than `IMAGE_BLOCKS`
/// blocks, writes nothing and branches to the caller's `.Lunik_map_unmapped` with the MMU off.
///
/// The loops are few, those of many steps start where a block starts anyway (the ISB, the
/// TLB invalidation, MAIR_EL1 and TCR_EL1 sit right before one), and the segments' pages are
/// written in one pass over the program headers, with an inner loop only for the pages.
macro_rules! build_tables_asm {
    () => {
        r#"
.Lunik_map_build:
    /* x21: the image's first 2 MiB block, x22: how many blocks it touches, x9: their end */
    adrp x21, __ehdr_start
    and x21, x21, #~0x1fffff
    adrp x9, _end
    add x9, x9, :lo12:_end
    add x9, x9, #0x200, lsl #12
    sub x9, x9, #1
    and x9, x9, #~0x1fffff
    sub x22, x9, x21
    lsr x22, x22, #21
    /* first block >= RAM, blocks' end <= RAM + 1 GiB, count <= IMAGE_BLOCKS; else no MMU */
    mov x10, #{ram_start}
    mov x11, #{ram_end}
    cmp x21, x10
    ccmp x9, x11, #2, hs
    ccmp x22, #{image_blocks}, #2, ls
    b.hi .Lunik_map_unmapped

    /* Every page of those blocks read-write (RAM beside the image), two entries a step */
    adrp x23, {image}
    add x23, x23, :lo12:{image}
    ldr x10, ={ram_page}
    orr x10, x10, x21
    add x11, x10, #0x1, lsl #12
    mov x12, x23
    add x13, x23, x22, lsl #12
    /* The entry code's CPACR_EL1 and VBAR_EL1 in effect before anything can fault: reading
       the program headers with the MMU off is a Device access, which faults if unaligned */
    isb
.Lunik_map_rw:
    stp x10, x11, [x12], #16
    add x10, x10, #0x2, lsl #12
    add x11, x11, #0x2, lsl #12
    cmp x12, x13
    b.lo .Lunik_map_rw

    /* Each loaded segment's pages with its access, one pass: x15 the next program header,
       w16 how many are left (a table of none is read as one entry at its offset) */
    adrp x14, __ehdr_start
    ldr x15, [x14, #32]
    add x15, x14, x15
    ldrh w16, [x14, #56]
    cmp w16, #0
    csinc w16, w16, wzr, ne
    adrp x24, {page_access}
    add x24, x24, :lo12:{page_access}
    mov x10, #{mair}
    msr mair_el1, x10
.Lunik_map_phdr:
    ldp w10, w11, [x15]
    ldr x12, [x15, #16]
    ldr x14, [x15, #40]
    add x15, x15, #56
    /* p_vaddr..p_vaddr + p_memsz in whole pages, clamped to the blocks, empty unless PT_LOAD */
    add x14, x12, x14
    and x12, x12, #~0xfff
    cmp x12, x21
    csel x12, x12, x21, hs
    cmp x14, x9
    csel x14, x14, x9, ls
    cmp w10, #1
    csel x14, x14, x12, eq
    and w11, w11, #3
    ldr x2, [x24, x11, lsl #3]
    sub x10, x12, x21
    add x10, x23, x10, lsr #9
    orr x11, x12, x2
    cmp x12, x14
    b.hs .Lunik_map_next
    /* Each page keeps the higher-ranked of its entry and this segment's */
.Lunik_map_page:
    ldr x13, [x10]
    cmp x11, x13
    csel x13, x11, x13, hi
    str x13, [x10], #8
    add x11, x11, #0x1, lsl #12
    add x12, x12, #0x1, lsl #12
    cmp x12, x14
    b.lo .Lunik_map_page
.Lunik_map_next:
    subs w16, w16, #1
    b.ne .Lunik_map_phdr

    /* The stack's guard page, page-aligned inside the image, unmapped */
    adrp x10, {guard}
    sub x10, x10, x21
    lsr x10, x10, #12
    str xzr, [x23, x10, lsl #3]

    /* The first GiB of RAM in 2 MiB blocks, two a step; the image's blocks through its tables */
    adrp x12, {ram}
    add x12, x12, :lo12:{ram}
    ldr x10, ={ram_first}
    add x11, x10, #0x200, lsl #12
    add x13, x12, #0x1, lsl #12
    ldr x14, ={tcr}
    msr tcr_el1, x14
.Lunik_map_ram:
    stp x10, x11, [x12], #16
    add x10, x10, #0x400, lsl #12
    add x11, x11, #0x400, lsl #12
    cmp x12, x13
    b.lo .Lunik_map_ram
    sub x12, x12, #0x1, lsl #12
    mov x10, #{ram_start}
    sub x10, x21, x10
    add x12, x12, x10, lsr #18
    orr x10, x23, #{table}
    mov x11, x22
.Lunik_map_image_blocks:
    str x10, [x12], #8
    add x10, x10, #0x1, lsl #12
    subs x11, x11, #1
    b.ne .Lunik_map_image_blocks

    /* The devices in 2 MiB blocks */
    adrp x12, {low}
    add x12, x12, :lo12:{low}
    add x12, x12, #{device_offset}
    ldr x10, ={device_first}
    mov x11, #{device_count}
    /* No stale translations once the MMU is on (the DSB before it waits for this) */
    tlbi vmalle1
.Lunik_map_devices:
    str x10, [x12], #8
    add x10, x10, #0x200, lsl #12
    subs x11, x11, #1
    b.ne .Lunik_map_devices

    /* Level 1: the low GiB's and RAM's tables, then 1 GiB blocks up to 4 GiB */
    adrp x12, {level1}
    add x12, x12, :lo12:{level1}
    adrp x10, {low}
    add x10, x10, :lo12:{low}
    orr x10, x10, #{table}
    adrp x11, {ram}
    add x11, x11, :lo12:{ram}
    orr x11, x11, #{table}
    stp x10, x11, [x12]
    ldr x10, ={upper_first}
    mov x11, #{block_1g}
    add x11, x10, x11
    stp x10, x11, [x12, #16]

    b .Lunik_map_on
"#
    };
}
pub(super) use build_tables_asm;

/// Why the entry code left the MMU off: the image's place in memory, `image`.
pub(super) fn check_image(image: Range<u64>) -> Result<(), MapError> {
    if image.start & !(BLOCK_2M - 1) < RAM_START || image.end > RAM_END {
        return Err(MapError::ImageOutsideRam(image));
    }
    if blocks_of(image.clone()) > IMAGE_BLOCKS as u64 {
        return Err(MapError::ImageTooLarge(image));
    }
    Ok(())
}

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

/// Whether `addr` lies where the mapping has RAM (for loader-provided pointers).
pub(super) fn is_ram(range: Range<u64>) -> bool {
    RAM_START <= range.start && range.start <= range.end && range.end <= MAPPED_LIMIT
}
