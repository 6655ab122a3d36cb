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

/// The header of version 17, the first to record the structure block's size.
const HEADER_V17: usize = 40;
/// A memory reservation entry: big-endian 64-bit address and size.
const RESERVATION_ENTRY: usize = 16;

/// Shrinks the tree to its blocks: sets the header's `totalsize` to the end of the last one
/// (memory reservations, structure, strings) and returns that size. Loaders leave free space
/// after the blocks for editing the tree (QEMU pads its tree to 1 MiB), which the library OS
/// never does; trimmed, that space can go to the heap, and the header no longer claims it, so
/// a later parse reads only what stays reserved. A tree older than version 17 does not record
/// its structure block's size and is left as it is.
pub fn trim_free_space(tree: &mut [u8]) -> Result<usize, DeviceTreeError> {
    let total = total_size(tree)?;
    if tree.len() < total.max(HEADER_V17) {
        return Err(DeviceTreeError::Truncated);
    }
    let field = |offset: usize| {
        let mut raw = [0; 4];
        raw.copy_from_slice(&tree[offset..offset + 4]);
        u32::from_be_bytes(raw) as usize
    };
    if field(20) < 17 {
        return Ok(total);
    }
    let block_end = |offset: usize, size: usize| {
        offset
            .checked_add(size)
            .filter(|&end| end <= total)
            .ok_or(DeviceTreeError::Truncated)
    };
    let structure = block_end(field(8), field(36))?;
    let strings = block_end(field(12), field(32))?;
    let reservations = reservation_block_end(&tree[..total], field(16))?;
    let used = HEADER_V17.max(structure).max(strings).max(reservations);
    tree[4..8].copy_from_slice(&(used as u32).to_be_bytes());
    Ok(used)
}

/// The end of the memory reservation block at `offset`: just after its all-zero entry.
fn reservation_block_end(tree: &[u8], offset: usize) -> Result<usize, DeviceTreeError> {
    let mut entry = offset;
    loop {
        let end = entry
            .checked_add(RESERVATION_ENTRY)
            .filter(|&end| end <= tree.len())
            .ok_or(DeviceTreeError::Truncated)?;
        if tree[entry..end].iter().all(|&b| b == 0) {
            return Ok(end);
        }
        entry = end;
    }
}

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// `/chosen`'s `bootargs` (QEMU `-append`) without the terminating NUL, empty if absent, read
/// by walking the structure block's tokens without parsing the tree: boot needs only this
/// one property, and [`DeviceTree::parse`] is far more code to run first.
pub fn chosen_bootargs(tree: &[u8]) -> Result<&[u8], DeviceTreeError> {
    let total = total_size(tree)?;
    let tree = tree.get(..total).ok_or(DeviceTreeError::Truncated)?;
    let word = |offset: usize| -> Result<usize, DeviceTreeError> {
        let raw = tree
            .get(offset..offset.checked_add(4).ok_or(DeviceTreeError::Truncated)?)
            .ok_or(DeviceTreeError::Truncated)?;
        Ok(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    };
    let strings = word(12)?;
    let name_at = |offset: usize| -> Result<&[u8], DeviceTreeError> {
        let rest = tree.get(offset..).ok_or(DeviceTreeError::Truncated)?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DeviceTreeError::Truncated)?;
        Ok(&rest[..len])
    };
    let mut at = word(8)?;
    let mut depth = 0usize;
    let mut chosen = false;
    loop {
        let token = word(at)? as u32;
        at += 4;
        match token {
            BEGIN_NODE => {
                let name = name_at(at)?;
                at = (at + name.len() + 1).next_multiple_of(4);
                depth += 1;
                chosen |= depth == 2 && name == b"chosen";
            }
            END_NODE => {
                if chosen && depth == 2 {
                    return Ok(&[]);
                }
                depth = depth.checked_sub(1).ok_or(DeviceTreeError::Truncated)?;
            }
            PROP => {
                let len = word(at)?;
                let name = word(at + 4)?;
                let value = at + 8;
                at = value
                    .checked_add(len)
                    .ok_or(DeviceTreeError::Truncated)?
                    .next_multiple_of(4);
                if chosen && depth == 2 && name_at(strings.saturating_add(name))? == b"bootargs" {
                    let value = tree
                        .get(value..value + len)
                        .ok_or(DeviceTreeError::Truncated)?;
                    let len = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                    return Ok(&value[..len]);
                }
            }
            NOP => {}
            END => return Ok(&[]),
            _ => return Err(DeviceTreeError::Truncated),
        }
    }
}

/// How to call PSCI firmware, from `/psci`'s `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

/// Deepest node nesting [`DeviceTree::parse`] accepts: the `fdt` crate walks nodes
/// recursively and keeps at most 64 parents; QEMU's trees are 4 deep.
const MAX_DEPTH: usize = 32;

/// Checks everything the `fdt` crate takes for granted as it walks a tree, where it indexes,
/// unwraps and asserts (a node whose properties are followed by anything but child nodes and
/// `FDT_END_NODE` fails an `assert_eq!`): version 17 or later (the structure block's size is
/// recorded); the structure, strings and reservation blocks inside `totalsize`; one root node
/// and then `FDT_END`; in every node its properties before its children, then
/// `FDT_END_NODE`, at most [`MAX_DEPTH`] deep; NUL-terminated UTF-8 node and property names,
/// property names inside the strings block, values inside the structure block,
/// `#address-cells` and `#size-cells` of at least 4 bytes; no `FDT_NOP` (which the crate skips
/// in some places and not in others; QEMU writes none). `None` for a tree that fails any.
fn check_structure(tree: &[u8]) -> Option<()> {
    fn word(bytes: &[u8], at: usize) -> Option<usize> {
        let raw = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    }
    /// The NUL-terminated UTF-8 string at the start of `bytes`, without its NUL.
    fn name(bytes: &[u8]) -> Option<&str> {
        let len = bytes.iter().position(|&b| b == 0)?;
        core::str::from_utf8(&bytes[..len]).ok()
    }
    let tree = tree.get(..word(tree, 4)?)?;
    if word(tree, 20)? < 17 {
        return None;
    }
    let block = |offset: usize, size: usize| tree.get(offset..offset.checked_add(size)?);
    let structure = block(word(tree, 8)?, word(tree, 36)?)?;
    let strings = block(word(tree, 12)?, word(tree, 32)?)?;
    reservation_block_end(tree, word(tree, 16)?).ok()?;

    let mut at = 0;
    let mut depth = 0;
    // Bit `d`: the open node at depth `d` has had a child, so no more properties.
    let mut has_children = 0u64;
    let mut root_done = false;
    loop {
        let token = word(structure, at)? as u32;
        at += 4;
        match token {
            BEGIN_NODE if !root_done && depth < MAX_DEPTH => {
                if depth > 0 {
                    has_children |= 1 << depth;
                }
                depth += 1;
                has_children &= !(1 << depth);
                let len = name(structure.get(at..)?)?.len();
                at = (at + len + 1).next_multiple_of(4);
            }
            PROP if depth > 0 && has_children & (1 << depth) == 0 => {
                let len = word(structure, at)?;
                let property = name(strings.get(word(structure, at + 4)?..)?)?;
                let value = at + 8;
                let end = value.checked_add(len)?;
                structure.get(value..end)?;
                if matches!(property, "#address-cells" | "#size-cells") && len < 4 {
                    return None;
                }
                at = end.next_multiple_of(4);
            }
            END_NODE if depth > 0 => {
                depth -= 1;
                root_done = depth == 0;
            }
            END if root_done => return Some(()),
            _ => return None,
        }
    }
}

/// A parsed device tree.
pub struct DeviceTree<'a> {
    fdt: Fdt<'a>,
}

impl<'a> DeviceTree<'a> {
    /// Parses a tree whose blocks and structure are well formed (see [`check_structure`]);
    /// any other is an error, never a panic of the `fdt` crate's walkers later.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DeviceTreeError> {
        let fdt = match Fdt::new(bytes) {
            Ok(fdt) => fdt,
            Err(fdt::FdtError::BadMagic) => return Err(DeviceTreeError::BadMagic),
            Err(_) => return Err(DeviceTreeError::Truncated),
        };
        check_structure(bytes).ok_or(DeviceTreeError::Truncated)?;
        Ok(DeviceTree { fdt })
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
    fn bootargs_without_parsing_the_tree() {
        assert_eq!(
            chosen_bootargs(VIRT),
            Ok(&b"uniklink.verbose uniklink.net.ip=10.0.2.15/24"[..])
        );
        assert_eq!(chosen_bootargs(&padded_virt()), chosen_bootargs(VIRT));
        assert_eq!(
            chosen_bootargs(&VIRT[..VIRT.len() / 2]),
            Err(DeviceTreeError::Truncated)
        );
        let mut renamed = VIRT.to_vec();
        let at = renamed
            .windows(7)
            .position(|w| w == b"chosen\0")
            .expect("a /chosen node");
        renamed[at] = b'C';
        assert_eq!(chosen_bootargs(&renamed), Ok(&b""[..]), "no /chosen");
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

    /// `VIRT` with the free space QEMU leaves after the strings put back: 1 MiB in all.
    fn padded_virt() -> Vec<u8> {
        let mut tree = VIRT.to_vec();
        tree.resize(1 << 20, 0);
        tree[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
        tree
    }

    #[test]
    fn trimming_drops_the_free_space_after_the_last_block() {
        let mut tree = padded_virt();
        assert_eq!(total_size(&tree), Ok(1 << 20));
        let used = trim_free_space(&mut tree).unwrap();
        assert_eq!(used, VIRT.len(), "the strings block ends the tree");
        assert_eq!(total_size(&tree), Ok(used));
        let trimmed = DeviceTree::parse(&tree[..used]).unwrap();
        assert_eq!(trimmed.size(), used);
        let original = DeviceTree::parse(VIRT).unwrap();
        assert!(trimmed.memory().eq(original.memory()));
        assert_eq!(trimmed.bootargs(), original.bootargs());
        assert_eq!(trimmed.windows("virtio,mmio").count(), 32);
        assert_eq!(trim_free_space(&mut tree[..used]), Ok(used), "idempotent");
    }

    #[test]
    fn trimming_keeps_whichever_block_ends_last() {
        let mut tree = padded_virt();
        let strings_end = VIRT.len();
        // Move the reservation block after the strings, with one entry and its terminator.
        let reservations = strings_end.next_multiple_of(8);
        tree[16..20].copy_from_slice(&(reservations as u32).to_be_bytes());
        tree[reservations..reservations + 8].copy_from_slice(&0x4800_0000u64.to_be_bytes());
        tree[reservations + 8..reservations + 16].copy_from_slice(&0x1000u64.to_be_bytes());
        let used = trim_free_space(&mut tree).unwrap();
        assert_eq!(used, reservations + 2 * RESERVATION_ENTRY);
        let trimmed = DeviceTree::parse(&tree[..used]).unwrap();
        assert_eq!(
            trimmed.reserved().collect::<Vec<_>>(),
            [Span::new(0x4800_0000, 0x4800_1000)]
        );
    }

    #[test]
    fn trimming_leaves_old_trees_and_refuses_blocks_past_the_end() {
        let mut old = padded_virt();
        old[20..24].copy_from_slice(&16u32.to_be_bytes());
        assert_eq!(trim_free_space(&mut old), Ok(1 << 20));
        assert_eq!(total_size(&old), Ok(1 << 20), "untouched");

        let mut overrun = padded_virt();
        overrun[32..36].copy_from_slice(&(1u32 << 20).to_be_bytes());
        assert_eq!(
            trim_free_space(&mut overrun),
            Err(DeviceTreeError::Truncated),
            "a strings block running past totalsize"
        );

        let mut unterminated = padded_virt();
        let reservations = VIRT.len().next_multiple_of(8);
        unterminated[16..20].copy_from_slice(&(reservations as u32).to_be_bytes());
        unterminated[reservations..].fill(0xff);
        assert_eq!(
            trim_free_space(&mut unterminated),
            Err(DeviceTreeError::Truncated),
            "a reservation block without its terminator"
        );
        assert_eq!(
            trim_free_space(&mut padded_virt()[..1000]),
            Err(DeviceTreeError::Truncated)
        );
    }

    /// The first crash `cargo xtask fuzz platform_devicetree` found: QEMU's tree with its
    /// structure block damaged so that a node's properties are followed by a `FDT_PROP`-less
    /// token the `fdt` crate asserts is `FDT_END_NODE` (it panicked "bad node" in
    /// `reserved`).
    const FUZZ_BAD_NODE: &[u8] = include_bytes!("../tests/data/fuzz-bad-node.dtb");

    /// Offset of the structure block and of the first token after the root's name.
    fn root_body(tree: &[u8]) -> usize {
        let at = u32::from_be_bytes(tree[8..12].try_into().unwrap()) as usize;
        at + 8
    }

    fn set_word(tree: &mut [u8], at: usize, value: u32) {
        tree[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    #[test]
    fn malformed_structures_are_errors_not_panics() {
        assert!(check_structure(VIRT).is_some());
        let mut cases: Vec<(&str, Vec<u8>)> = std::vec![("fuzz: bad node", FUZZ_BAD_NODE.to_vec())];
        let body = root_body(VIRT);
        let token =
            |tree: &[u8], at: usize| u32::from_be_bytes(tree[at..at + 4].try_into().unwrap());
        assert_eq!(token(VIRT, body), PROP);
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, body, NOP);
        cases.push(("a NOP among properties", tree));
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, body + 8, u32::MAX);
        cases.push(("a property name past the strings block", tree));
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, body + 4, u32::MAX);
        cases.push(("a property value past the structure block", tree));
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, 36, u32::MAX);
        cases.push(("a structure block past totalsize", tree));
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, 32, u32::MAX);
        cases.push(("a strings block past totalsize", tree));
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, 16, u32::MAX);
        cases.push(("a reservation block past totalsize", tree));
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, 20, 16);
        cases.push(("version 16", tree));
        let mut tree = VIRT.to_vec();
        tree[body - 4] = 0xff;
        cases.push(("a root name that is not UTF-8 nor terminated", tree));
        // The last END_NODE before FDT_END: the root is never closed.
        let structure_end = u32::from_be_bytes(VIRT[8..12].try_into().unwrap()) as usize
            + u32::from_be_bytes(VIRT[36..40].try_into().unwrap()) as usize;
        assert_eq!(token(VIRT, structure_end - 4), END);
        assert_eq!(token(VIRT, structure_end - 8), END_NODE);
        let mut tree = VIRT.to_vec();
        set_word(&mut tree, structure_end - 8, END);
        cases.push(("an unclosed root", tree));
        for (what, tree) in &cases {
            assert_eq!(
                DeviceTree::parse(tree).err(),
                Some(DeviceTreeError::Truncated),
                "{what}"
            );
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_an_error() {
        // A tree of nested empty nodes, built by hand: header, empty reservation block,
        // structure, no strings.
        let tree = |depth: usize| {
            let mut structure = Vec::new();
            for _ in 0..depth {
                structure.extend_from_slice(&BEGIN_NODE.to_be_bytes());
                structure.extend_from_slice(&[b'n', 0, 0, 0]);
            }
            for _ in 0..depth {
                structure.extend_from_slice(&END_NODE.to_be_bytes());
            }
            structure.extend_from_slice(&END.to_be_bytes());
            let reservations = HEADER_V17;
            let structure_at = reservations + RESERVATION_ENTRY;
            let strings_at = structure_at + structure.len();
            let mut out = Vec::new();
            for field in [
                0xd00d_feed,
                strings_at as u32,
                structure_at as u32,
                strings_at as u32,
                reservations as u32,
                17,
                16,
                0,
                0,
                structure.len() as u32,
            ] {
                out.extend_from_slice(&u32::to_be_bytes(field));
            }
            out.extend_from_slice(&[0; RESERVATION_ENTRY]);
            out.extend_from_slice(&structure);
            out
        };
        let ok = tree(MAX_DEPTH);
        let parsed = DeviceTree::parse(&ok).unwrap();
        assert_eq!(parsed.memory().count(), 0);
        assert_eq!(
            DeviceTree::parse(&tree(MAX_DEPTH + 1)).err(),
            Some(DeviceTreeError::Truncated)
        );
        assert_eq!(
            DeviceTree::parse(&tree(100)).err(),
            Some(DeviceTreeError::Truncated)
        );
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
