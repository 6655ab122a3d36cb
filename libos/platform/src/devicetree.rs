//! What the library OS needs from a flattened device tree (QEMU's aarch64 `virt` machine
//! describes itself with one): RAM, the memory it must not touch, the command line, the PSCI
//! conduit and the virtio-mmio windows. Parsing is the `fdt` crate's; this module turns its
//! nodes into the runtime's own types.

use fdt::Fdt;

use crate::memory::Span;
use crate::pvh::{MemoryRegion, RegionKind};

/// `0xd00dfeed`, big endian, at offset 0 of every flattened device tree.
pub const MAGIC: [u8; 4] = [0xd0, 0x0d, 0xfe, 0xed];
/// The header fields up to and including `totalsize`.
pub const HEADER_PREFIX: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceTreeError {
    /// The first bytes are not the device tree magic.
    BadMagic,
    /// The header's `totalsize` is larger than the bytes given, or the structure is cut.
    Truncated,
}

impl core::fmt::Display for DeviceTreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DeviceTreeError::BadMagic => "no device tree magic (0xd00dfeed)",
            DeviceTreeError::Truncated => "the device tree is cut short",
        })
    }
}

/// The tree's `totalsize` from its first [`HEADER_PREFIX`] bytes, so a caller holding only a
/// pointer knows how many bytes to hand to [`DeviceTree::parse`].
pub fn total_size(prefix: &[u8]) -> Result<usize, DeviceTreeError> {
    match prefix {
        [m0, m1, m2, m3, s0, s1, s2, s3, ..] => {
            if [*m0, *m1, *m2, *m3] != MAGIC {
                return Err(DeviceTreeError::BadMagic);
            }
            Ok(u32::from_be_bytes([*s0, *s1, *s2, *s3]) as usize)
        }
        _ => Err(DeviceTreeError::Truncated),
    }
}

/// How to call PSCI firmware, from `/psci`'s `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

/// A parsed device tree.
pub struct DeviceTree<'a> {
    fdt: Fdt<'a>,
}

impl<'a> DeviceTree<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DeviceTreeError> {
        match Fdt::new(bytes) {
            Ok(fdt) => Ok(DeviceTree { fdt }),
            Err(fdt::FdtError::BadMagic) => Err(DeviceTreeError::BadMagic),
            Err(_) => Err(DeviceTreeError::Truncated),
        }
    }

    /// Bytes from the start of the tree to its end (`totalsize`).
    pub fn size(&self) -> usize {
        self.fdt.total_size()
    }

    /// The `reg` ranges of every `memory` node, as RAM regions.
    pub fn memory(&self) -> impl Iterator<Item = MemoryRegion> + '_ {
        self.fdt
            .all_nodes()
            .filter(|node| {
                node.property("device_type")
                    .and_then(|p| p.as_str())
                    .is_some_and(|t| t == "memory")
            })
            .flat_map(|node| node.reg().into_iter().flatten())
            .filter_map(|reg| {
                Some(MemoryRegion {
                    base: reg.starting_address as u64,
                    size: reg.size? as u64,
                    kind: RegionKind::Ram,
                })
            })
    }

    /// Memory the tree's reservation block and `/reserved-memory` children set aside.
    pub fn reserved(&self) -> impl Iterator<Item = Span> + '_ {
        let block = self.fdt.memory_reservations().map(|r| {
            let start = r.address() as u64;
            Span::new(start, start.saturating_add(r.size() as u64))
        });
        let nodes = self
            .fdt
            .find_node("/reserved-memory")
            .into_iter()
            .flat_map(|node| node.children())
            .flat_map(|child| child.reg().into_iter().flatten())
            .map(|reg| {
                let start = reg.starting_address as u64;
                Span::new(start, start.saturating_add(reg.size.unwrap_or(0) as u64))
            });
        block.chain(nodes)
    }

    /// `/chosen`'s `bootargs` (QEMU `-append`), without the terminating NUL; empty if absent.
    pub fn bootargs(&self) -> &'a [u8] {
        let Some(value) = self
            .fdt
            .find_node("/chosen")
            .and_then(|chosen| chosen.property("bootargs"))
            .map(|p| p.value)
        else {
            return &[];
        };
        let len = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        &value[..len]
    }

    /// The PSCI conduit `/psci` names, if the tree has PSCI.
    pub fn psci(&self) -> Option<PsciConduit> {
        match self.fdt.find_node("/psci")?.property("method")?.as_str()? {
            "hvc" => Some(PsciConduit::Hvc),
            "smc" => Some(PsciConduit::Smc),
            _ => None,
        }
    }

    /// The first `reg` window of every node compatible with `compatible`, in tree order.
    pub fn windows(&self, compatible: &'a str) -> impl Iterator<Item = Span> + '_ {
        self.fdt
            .all_nodes()
            .filter(move |node| {
                node.compatible()
                    .is_some_and(|c| c.all().any(|name| name == compatible))
            })
            .filter_map(|node| {
                let reg = node.reg()?.next()?;
                let start = reg.starting_address as u64;
                Some(Span::new(start, start.saturating_add(reg.size? as u64)))
            })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// QEMU 7.2's tree for `-M virt -cpu cortex-a57 -m 256M -device virtio-net-device
    /// -append "uniklink.verbose uniklink.net.ip=10.0.2.15/24"` (`-M virt,dumpdtb=`), with the
    /// free space QEMU leaves after the strings cut off and `totalsize` shrunk to match.
    const VIRT: &[u8] = include_bytes!("../tests/data/virt.dtb");

    #[test]
    fn total_size_reads_the_header() {
        assert_eq!(total_size(VIRT), Ok(VIRT.len()));
        assert_eq!(total_size(&VIRT[..7]), Err(DeviceTreeError::Truncated));
        assert_eq!(total_size(&[0; 8]), Err(DeviceTreeError::BadMagic));
    }

    #[test]
    fn qemu_virt_memory_and_bootargs() {
        let tree = DeviceTree::parse(VIRT).unwrap();
        assert_eq!(tree.size(), VIRT.len());
        let memory: Vec<_> = tree.memory().collect();
        assert_eq!(
            memory,
            [MemoryRegion {
                base: 0x4000_0000,
                size: 256 << 20,
                kind: RegionKind::Ram
            }]
        );
        assert_eq!(
            tree.bootargs(),
            b"uniklink.verbose uniklink.net.ip=10.0.2.15/24"
        );
        assert_eq!(tree.reserved().count(), 0);
        assert_eq!(tree.psci(), Some(PsciConduit::Hvc));
    }

    #[test]
    fn qemu_virt_devices() {
        let tree = DeviceTree::parse(VIRT).unwrap();
        assert_eq!(
            tree.windows("arm,pl011").collect::<Vec<_>>(),
            [Span::new(0x0900_0000, 0x0900_1000)]
        );
        let virtio: Vec<_> = tree.windows("virtio,mmio").collect();
        // QEMU virt always has 32 transports, 0x200 bytes each, from 0x0a000000.
        assert_eq!(virtio.len(), 32);
        assert!(virtio.contains(&Span::new(0x0a00_0000, 0x0a00_0200)));
        assert!(virtio.contains(&Span::new(0x0a00_3e00, 0x0a00_4000)));
    }

    #[test]
    fn damaged_trees_are_errors() {
        assert_eq!(
            DeviceTree::parse(&VIRT[..VIRT.len() - 1]).err(),
            Some(DeviceTreeError::Truncated)
        );
        let mut bad = VIRT.to_vec();
        bad[0] = 0;
        assert_eq!(
            DeviceTree::parse(&bad).err(),
            Some(DeviceTreeError::BadMagic)
        );
    }
}
