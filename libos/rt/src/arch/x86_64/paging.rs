//! Identity page tables for the first 4 GiB.
//!
//! The first GiB's tables are data in the image: the first 2 MiB in 4 KiB pages with page 0
//! left out (null dereferences fault), the rest of the first GiB in 2 MiB pages. The 32-bit
//! entry code only links them (a table of plain `u64` entries holds no address),
//! unmaps the stack's guard page where that lies in the first 2 MiB, and maps the other three
//! GiB (the RAM of larger guests, device windows such as microvm's virtio-mmio at 0xfeb00000)
//! with 1 GiB pages, or on a CPU without them with three directories of 2 MiB pages that it
//! fills in the RAM just past the image. Filling the two tables at boot instead took a loop
//! of 128 steps and two more blocks of code for an emulator to translate, the largest part of
//! boot under QEMU's TCG after the mode switches, against the 8 KiB they add to the file.

use core::arch::asm;
use core::fmt;

pub(super) const PAGE_SIZE: u64 = 4096;
const LARGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;
/// End of the identity mapping.
pub(super) const MAPPED_LIMIT: u64 = 4 * 1024 * 1024 * 1024;
pub(super) const ENTRIES: usize = 512;
/// The GiBs above the first, which take a directory each where 1 GiB pages are missing.
pub(super) const UPPER_GIBS: usize = 3;
/// Page tables boot may put in the RAM just past the image: the upper directories and a
/// table to split the guard page's 2 MiB page. The heap leaves them alone.
pub(super) const TABLES_PAST_IMAGE: u64 = (UPPER_GIBS as u64 + 1) * PAGE_SIZE;
/// Where the split table goes among them.
const SPLIT_TABLE_OFFSET: u64 = UPPER_GIBS as u64 * PAGE_SIZE;
/// The end of `FIRST_PAGES`' range.
pub(super) const FIRST_PAGES_END: u64 = LARGE_PAGE_SIZE;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const LARGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

#[repr(C, align(4096))]
pub(super) struct PageTable([u64; ENTRIES]);

impl PageTable {
    const EMPTY: PageTable = PageTable([0; ENTRIES]);

    /// Entries 1 and up mapping pages of `page_size` bytes to the same addresses; entry 0
    /// empty.
    const fn identity_past_first(page_size: u64, flags: u64) -> PageTable {
        let mut entries = [0; ENTRIES];
        let mut i = 1;
        while i < ENTRIES {
            entries[i] = (i as u64 * page_size) | flags;
            i += 1;
        }
        PageTable(entries)
    }
}

// Linked by the 32-bit entry code, which relies on the loader zero-filling .bss.
pub(super) static mut PML4: PageTable = PageTable::EMPTY;
pub(super) static mut PDPT: PageTable = PageTable::EMPTY;
/// The first GiB: entry 0 is `FIRST_PAGES` (written at boot), the others 2 MiB pages.
pub(super) static mut LOW_DIRECTORY: PageTable =
    PageTable::identity_past_first(LARGE_PAGE_SIZE, LARGE | PRESENT | WRITABLE);
/// The first 2 MiB in 4 KiB pages, page 0 unmapped.
pub(super) static mut FIRST_PAGES: PageTable =
    PageTable::identity_past_first(PAGE_SIZE, PRESENT | WRITABLE);

unsafe extern "C" {
    /// End of the image including .bss, provided by the linker.
    static _end: u8;
}

/// The first page past the image, where [`TABLES_PAST_IMAGE`] start.
pub(super) fn past_image() -> u64 {
    ((&raw const _end) as u64).next_multiple_of(PAGE_SIZE)
}

#[derive(Debug)]
pub(super) enum PagingError {
    OutsideMapping(u64),
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagingError::OutsideMapping(addr) => {
                write!(f, "cannot unmap {addr:#x}: outside the first GiB")
            }
        }
    }
}

/// Maps page 0 for reading what a loader put there. A page that was not present is never in
/// the TLB, so nothing needs flushing.
pub(super) fn map_first_page() {
    // SAFETY: the runtime is single-threaded; the entry is the identity mapping of page 0.
    unsafe { FIRST_PAGES.0[0] = PRESENT | WRITABLE };
}

/// Unmaps page 0 again after [`map_first_page`].
pub(super) fn unmap_first_page() {
    // SAFETY: as for `map_first_page`; the flush drops the translation the reads cached.
    unsafe {
        FIRST_PAGES.0[0] = 0;
        asm!("invlpg [{}]", in(reg) 0u64, options(nostack, preserves_flags));
    }
}

/// Makes the stack's guard page at `addr`, in the first GiB but past the first 2 MiB (a
/// large image), fault on access: its 2 MiB page is split into a table past the image.
pub(super) fn unmap_guard_page(addr: u64) -> Result<(), PagingError> {
    let large_index = (addr / LARGE_PAGE_SIZE) as usize;
    if large_index >= ENTRIES {
        return Err(PagingError::OutsideMapping(addr));
    }
    let table = (past_image() + SPLIT_TABLE_OFFSET) as *mut PageTable;
    // SAFETY: boot runs single-threaded; the split table is RAM past the image that the heap
    // never takes, identity-mapped, and the flush drops the 2 MiB page's cached translation.
    unsafe {
        let entry = &raw mut LOW_DIRECTORY.0[large_index];
        let base = *entry & ADDRESS;
        for (i, small) in (*table).0.iter_mut().enumerate() {
            *small = (base + i as u64 * PAGE_SIZE) | PRESENT | WRITABLE;
        }
        (*table).0[((addr / PAGE_SIZE) as usize) % ENTRIES] = 0;
        *entry = table as u64 | PRESENT | WRITABLE;
        asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags));
    }
    Ok(())
}
