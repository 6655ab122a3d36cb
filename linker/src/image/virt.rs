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
//! otherwise build with the MMU off (`libos/rt/src/arch/aarch64/mmu.rs`; both take the
//! memory map and the encodings from `unik_platform::virt_map`). An emulator such as QEMU's TCG pays for every block of
//! code it translates, so building them at boot costs about 100 µs there; loaded with the
//! image they cost nothing, and the entry code only turns the MMU on. The tables lie in the
//! read-only segment, so nothing the image does can rewrite its own map.

use object::Architecture;
use unik_platform::virt_map::{self, Segment};
use uniklink_analyzer::input::GeneratedObject;

use super::notes;
use super::{BuildId, ImageError, entry_is_code};
use crate::layout::{Layout, Rank};

pub use virt_map::RAM_START;
/// What the image leaves free below itself for the device tree.
pub const DEVICE_TREE_ROOM: u64 = 0x20_0000;
/// Where the image is linked and loaded: physical = virtual.
pub const LOAD_ADDRESS: u64 = RAM_START + DEVICE_TREE_ROOM;
/// How reports name the generated object.
pub const NOTES_OBJECT_NAME: &str = "<uniklink:virt-notes>";

/// The runtime's weak reference that asks for the tables; the linker gives it the address
/// of the first-level table (TTBR0_EL1).
pub const PAGE_TABLES_SYMBOL: &[u8] = b"__uniklink_page_tables";
/// The output section holding them.
pub const PAGE_TABLES_SECTION: &[u8] = b".unik.page_tables";
/// The boot stack's reserve: its first page is the stack's guard page, left unmapped.
const GUARD_RESERVE_SYMBOL: &[u8] = b"__uniklink_reserve_rt_stack_size";

/// Writes into `out`, at `address`, the page tables of `layout`'s image: its segments, and
/// the guard page of the boot stack's reserve when the image has one.
pub fn write_page_tables(layout: &Layout<'_>, address: u64, out: &mut [u8]) {
    let segments: Vec<Segment> = layout
        .segments
        .iter()
        .map(|s| Segment {
            range: s.addr..s.addr + s.mem_size,
            flags: s.flags,
        })
        .collect();
    let guard_page = layout
        .db
        .lookup(GUARD_RESERVE_SYMBOL)
        .map(|g| layout.global_addr[g])
        .filter(|&addr| addr != 0);
    virt_map::write_tables(&segments, guard_page, address, out);
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
    if has_tables && layout.end() > virt_map::RAM_END {
        return Err(ImageError::BeyondMappedRam {
            end: layout.end(),
            limit: virt_map::RAM_END,
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
