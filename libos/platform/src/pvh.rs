//! The Xen PVH boot protocol's `hvm_start_info`, its memory map and its module list.
//!
//! The loader leaves the physical address of `hvm_start_info` in %ebx. All fields are
//! little-endian; the memory map exists from version 1 on.

use core::fmt;

use crate::le::{u32_at, u64_at};

pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Size of a version 0 `hvm_start_info` (no memory map fields).
pub const START_INFO_V0_SIZE: usize = 40;
/// Size of a version 1 `hvm_start_info`; callers read this many bytes whatever the version.
pub const START_INFO_V1_SIZE: usize = 56;
pub const MEMMAP_ENTRY_SIZE: usize = 24;
pub const MODLIST_ENTRY_SIZE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvhError {
    Truncated { needed: usize, got: usize },
    BadMagic(u32),
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PvhError::Truncated { needed, got } => {
                write!(
                    f,
                    "hvm_start_info truncated: need {needed} bytes, got {got}"
                )
            }
            PvhError::BadMagic(magic) => write!(
                f,
                "hvm_start_info magic is {magic:#x}, expected {START_INFO_MAGIC:#x}"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartInfo {
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    /// Zero when the loader passed no memory map (version 0).
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
}

impl StartInfo {
    pub fn parse(bytes: &[u8]) -> Result<Self, PvhError> {
        let header = bytes.get(..START_INFO_V0_SIZE).ok_or(PvhError::Truncated {
            needed: START_INFO_V0_SIZE,
            got: bytes.len(),
        })?;
        let magic = u32_at(header, 0);
        if magic != START_INFO_MAGIC {
            return Err(PvhError::BadMagic(magic));
        }
        let version = u32_at(header, 4);
        let (memmap_paddr, memmap_entries) = if version >= 1 {
            let v1 = bytes.get(..START_INFO_V1_SIZE).ok_or(PvhError::Truncated {
                needed: START_INFO_V1_SIZE,
                got: bytes.len(),
            })?;
            (u64_at(v1, 40), u32_at(v1, 48))
        } else {
            (0, 0)
        };
        Ok(StartInfo {
            version,
            flags: u32_at(header, 8),
            nr_modules: u32_at(header, 12),
            modlist_paddr: u64_at(header, 16),
            cmdline_paddr: u64_at(header, 24),
            rsdp_paddr: u64_at(header, 32),
            memmap_paddr,
            memmap_entries,
        })
    }

    /// Byte length of the memory map table the start info points at.
    pub fn memmap_len(&self) -> usize {
        self.memmap_entries as usize * MEMMAP_ENTRY_SIZE
    }

    /// Byte length of the module list the start info points at.
    pub fn modlist_len(&self) -> usize {
        self.nr_modules as usize * MODLIST_ENTRY_SIZE
    }
}

/// E820-style region types used by the PVH memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Ram,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Other(u32),
}

impl From<u32> for RegionKind {
    fn from(value: u32) -> Self {
        match value {
            1 => RegionKind::Ram,
            2 => RegionKind::Reserved,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Unusable,
            other => RegionKind::Other(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    pub base: u64,
    pub size: u64,
    pub kind: RegionKind,
}

impl MemoryRegion {
    /// Exclusive end, saturated so a region reaching the top of the address space stays valid.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// The regions of a memory map table; zero-size entries carry no memory and are skipped,
/// a trailing partial entry is ignored.
pub fn memory_regions(table: &[u8]) -> impl Iterator<Item = MemoryRegion> + '_ {
    table
        .chunks_exact(MEMMAP_ENTRY_SIZE)
        .map(|entry| MemoryRegion {
            base: u64_at(entry, 0),
            size: u64_at(entry, 8),
            kind: RegionKind::from(u32_at(entry, 16)),
        })
        .filter(|region| region.size != 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    pub paddr: u64,
    pub size: u64,
    pub cmdline_paddr: u64,
}

/// The entries of a module list table (`hvm_modlist_entry`).
pub fn modules(table: &[u8]) -> impl Iterator<Item = Module> + '_ {
    table.chunks_exact(MODLIST_ENTRY_SIZE).map(|entry| Module {
        paddr: u64_at(entry, 0),
        size: u64_at(entry, 8),
        cmdline_paddr: u64_at(entry, 16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec::Vec;

    fn start_info(version: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&START_INFO_MAGIC.to_le_bytes());
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&0x5u32.to_le_bytes());
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&0x9000u64.to_le_bytes());
        bytes.extend_from_slice(&0xa000u64.to_le_bytes());
        bytes.extend_from_slice(&0xe0000u64.to_le_bytes());
        bytes.extend_from_slice(&0x7000u64.to_le_bytes());
        bytes.extend_from_slice(&6u32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes
    }

    fn memmap_entry(base: u64, size: u64, kind: u32) -> [u8; MEMMAP_ENTRY_SIZE] {
        let mut entry = [0; MEMMAP_ENTRY_SIZE];
        entry[..8].copy_from_slice(&base.to_le_bytes());
        entry[8..16].copy_from_slice(&size.to_le_bytes());
        entry[16..20].copy_from_slice(&kind.to_le_bytes());
        entry[20..].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        entry
    }

    #[test]
    fn parses_version_1_fields_at_their_offsets() {
        let info = StartInfo::parse(&start_info(1)).unwrap();
        assert_eq!(
            info,
            StartInfo {
                version: 1,
                flags: 5,
                nr_modules: 2,
                modlist_paddr: 0x9000,
                cmdline_paddr: 0xa000,
                rsdp_paddr: 0xe0000,
                memmap_paddr: 0x7000,
                memmap_entries: 6,
            }
        );
        assert_eq!(info.memmap_len(), 6 * 24);
        assert_eq!(info.modlist_len(), 2 * 32);
    }

    #[test]
    fn version_0_has_no_memory_map_even_if_bytes_follow() {
        let info = StartInfo::parse(&start_info(0)).unwrap();
        assert_eq!(info.memmap_paddr, 0);
        assert_eq!(info.memmap_entries, 0);
        let header_only = &start_info(0)[..START_INFO_V0_SIZE];
        assert_eq!(StartInfo::parse(header_only).unwrap().rsdp_paddr, 0xe0000);
    }

    #[test]
    fn rejects_bad_magic_and_short_buffers() {
        let mut bytes = start_info(1);
        bytes[0] = 0;
        assert_eq!(
            StartInfo::parse(&bytes),
            Err(PvhError::BadMagic(0x336e_c500))
        );
        assert_eq!(
            StartInfo::parse(&start_info(1)[..20]),
            Err(PvhError::Truncated {
                needed: 40,
                got: 20
            })
        );
        assert_eq!(
            StartInfo::parse(&start_info(1)[..48]),
            Err(PvhError::Truncated {
                needed: 56,
                got: 48
            })
        );
    }

    #[test]
    fn memory_map_skips_zero_size_entries_and_partial_tail() {
        let mut table = Vec::new();
        table.extend_from_slice(&memmap_entry(0, 0x9fc00, 1));
        table.extend_from_slice(&memmap_entry(0x9fc00, 0, 2));
        table.extend_from_slice(&memmap_entry(0x10_0000, 0x7f0_0000, 1));
        table.extend_from_slice(&memmap_entry(0xfeff_c000, 0x4000, 2));
        table.extend_from_slice(&memmap_entry(0xb000_0000, 0x1000, 0x10));
        table.extend_from_slice(&[0xff; 10]);
        let regions: Vec<_> = memory_regions(&table).collect();
        assert_eq!(
            regions,
            [
                MemoryRegion {
                    base: 0,
                    size: 0x9fc00,
                    kind: RegionKind::Ram
                },
                MemoryRegion {
                    base: 0x10_0000,
                    size: 0x7f0_0000,
                    kind: RegionKind::Ram
                },
                MemoryRegion {
                    base: 0xfeff_c000,
                    size: 0x4000,
                    kind: RegionKind::Reserved
                },
                MemoryRegion {
                    base: 0xb000_0000,
                    size: 0x1000,
                    kind: RegionKind::Other(0x10)
                },
            ]
        );
        assert_eq!(regions[1].end(), 0x800_0000);
    }

    #[test]
    fn region_end_saturates() {
        let region = MemoryRegion {
            base: u64::MAX - 1,
            size: 16,
            kind: RegionKind::Ram,
        };
        assert_eq!(region.end(), u64::MAX);
    }

    #[test]
    fn module_list_entries() {
        let mut table = Vec::new();
        for (paddr, size, cmdline) in [(0x20_0000u64, 0x1234u64, 0u64), (0x30_0000, 0x10, 0xa100)] {
            table.extend_from_slice(&paddr.to_le_bytes());
            table.extend_from_slice(&size.to_le_bytes());
            table.extend_from_slice(&cmdline.to_le_bytes());
            table.extend_from_slice(&0u64.to_le_bytes());
        }
        let mods: Vec<_> = modules(&table).collect();
        assert_eq!(
            mods,
            [
                Module {
                    paddr: 0x20_0000,
                    size: 0x1234,
                    cmdline_paddr: 0
                },
                Module {
                    paddr: 0x30_0000,
                    size: 0x10,
                    cmdline_paddr: 0xa100
                },
            ]
        );
    }
}
