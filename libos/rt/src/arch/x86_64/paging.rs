//! Identity page tables for the first 4 GiB.
//!
//! The 32-bit entry code maps everything with 2 MiB pages (the RAM of small guests and
//! the device windows, e.g. microvm's virtio-mmio at 0xfeb00000, all lie below 4 GiB).
//! Rust then splits the 2 MiB pages that hold pages which must fault: page 0, so null
//! dereferences trap, and the stack's guard page.

use core::arch::asm;
use core::fmt;

pub(super) const PAGE_SIZE: u64 = 4096;
const LARGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;
/// End of the identity mapping.
pub(super) const MAPPED_LIMIT: u64 = 4 * 1024 * 1024 * 1024;
pub(super) const DIRECTORY_COUNT: usize = 4;
const ENTRIES: usize = 512;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const LARGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

#[repr(C, align(4096))]
pub(super) struct PageTable([u64; ENTRIES]);

impl PageTable {
    const EMPTY: PageTable = PageTable([0; ENTRIES]);
}

// Filled by the 32-bit entry code, which relies on the loader zero-filling .bss.
pub(super) static mut PML4: PageTable = PageTable::EMPTY;
pub(super) static mut PDPT: PageTable = PageTable::EMPTY;
pub(super) static mut DIRECTORIES: [PageTable; DIRECTORY_COUNT] =
    [const { PageTable::EMPTY }; DIRECTORY_COUNT];

/// Enough for page 0 and a stack guard page in another 2 MiB page.
const SPLIT_TABLE_COUNT: usize = 2;
static mut SPLIT_TABLES: [PageTable; SPLIT_TABLE_COUNT] =
    [const { PageTable::EMPTY }; SPLIT_TABLE_COUNT];
static mut SPLIT_USED: usize = 0;

#[derive(Debug)]
pub(super) enum PagingError {
    OutsideMapping(u64),
    NoSplitTable(u64),
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagingError::OutsideMapping(addr) => {
                write!(f, "cannot unmap {addr:#x}: outside the identity mapping")
            }
            PagingError::NoSplitTable(addr) => {
                write!(
                    f,
                    "cannot unmap {addr:#x}: no page table left to split its 2 MiB page"
                )
            }
        }
    }
}

/// Makes the 4 KiB page holding `addr` fault on access. Takes effect after [`flush`].
pub(super) fn unmap_page(addr: u64) -> Result<(), PagingError> {
    if addr >= MAPPED_LIMIT {
        return Err(PagingError::OutsideMapping(addr));
    }
    let large_index = (addr / LARGE_PAGE_SIZE) as usize;
    // SAFETY: boot runs single-threaded; the tables are identity-mapped statics, and
    // until `flush` the CPU keeps translating through its TLB, which this does not touch.
    unsafe {
        let directory = &raw mut DIRECTORIES[large_index / ENTRIES];
        let entry = &mut (*directory).0[large_index % ENTRIES];
        if *entry & LARGE != 0 {
            if SPLIT_USED == SPLIT_TABLE_COUNT {
                return Err(PagingError::NoSplitTable(addr));
            }
            let table = &raw mut SPLIT_TABLES[SPLIT_USED];
            SPLIT_USED += 1;
            let base = *entry & ADDRESS;
            for (i, small) in (*table).0.iter_mut().enumerate() {
                *small = (base + i as u64 * PAGE_SIZE) | PRESENT | WRITABLE;
            }
            *entry = table as u64 | PRESENT | WRITABLE;
        }
        let table = (*entry & ADDRESS) as *mut PageTable;
        (*table).0[((addr / PAGE_SIZE) as usize) % ENTRIES] = 0;
    }
    Ok(())
}

/// Drops every cached translation so changes from [`unmap_page`] apply.
pub(super) fn flush() {
    // SAFETY: reloading CR3 with its own value changes no mapping, it only empties the TLB.
    unsafe {
        asm!(
            "mov {tmp}, cr3",
            "mov cr3, {tmp}",
            tmp = out(reg) _,
            options(nostack, preserves_flags),
        );
    }
}
