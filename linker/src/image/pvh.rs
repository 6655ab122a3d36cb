//! PVH images: the Xen entry note that QEMU's `-kernel` loader and Firecracker look for, the
//! build id, and the loader's constraints on the layout.
//!
//! The notes come from an object generated here and linked like any input: the entry note's
//! descriptor is an `R_X86_64_32` relocation against the entry symbol, so the relocation phase
//! fills in the address and section GC keeps the notes as it keeps every note. The same
//! object serves GNU ld in the boot benchmark, so both linkers get identical notes.

use object::write::{Relocation, Symbol, SymbolSection};
use object::{Architecture, RelocationFlags, SymbolFlags, SymbolKind, SymbolScope, elf};
use uniklink_analyzer::input::GeneratedObject;

use super::notes;
use super::{BuildId, ImageError, entry_is_code};
use crate::layout::Layout;

/// Where PVH loaders put the image: physical = virtual, above the legacy 1 MiB area.
pub const LOAD_ADDRESS: u64 = 0x10_0000;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: a 32-bit physical address entered in protected mode.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
pub const XEN_NOTE_SECTION: &str = ".note.Xen";
/// How reports name the generated object.
pub const NOTES_OBJECT_NAME: &str = "<uniklink:pvh-notes>";
const FOUR_GIB: u64 = 1 << 32;

/// An ELF relocatable object holding `.note.Xen` (entry = `entry`) and
/// `.note.gnu.build-id` (= `build_id`), both allocated so they load with the headers.
pub fn notes_object(entry: &str, build_id: &BuildId) -> Result<GeneratedObject, ImageError> {
    let mut obj = notes::object(Architecture::X86_64);
    let xen = notes::note_section(&mut obj, XEN_NOTE_SECTION);
    let desc_at = obj.append_section_data(
        xen,
        &notes::note(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 4]),
        4,
    ) + notes::note_desc_offset(b"Xen");
    let symbol = obj.add_symbol(Symbol {
        name: entry.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Unknown,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Undefined,
        flags: SymbolFlags::None,
    });
    obj.add_relocation(
        xen,
        Relocation {
            offset: desc_at,
            symbol,
            addend: 0,
            flags: RelocationFlags::Elf {
                r_type: elf::R_X86_64_32,
            },
        },
    )
    .map_err(|source| ImageError::Generate {
        what: "PVH notes",
        source,
    })?;
    notes::finish(obj, build_id, "PVH notes", NOTES_OBJECT_NAME)
}

/// The loader enters at a 32-bit physical address with paging off, so the entry must be
/// code and the whole image, `.bss` included, must sit below 4 GiB.
pub(super) fn check(layout: &Layout<'_>, entry: &str) -> Result<(), ImageError> {
    entry_is_code(layout, entry)?;
    let end = layout.end();
    if end > FOUR_GIB {
        return Err(ImageError::AboveFourGiB { end });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
    use object::{Endianness, Object as _, ObjectSection, ObjectSymbol};

    use super::*;
    use crate::image::notes::BUILD_ID_SECTION;

    #[test]
    fn the_notes_object_is_allocated_notes_with_the_entry_relocation() {
        let id = BuildId([0xab; 20]);
        let obj = notes_object("_pvh_start", &id).unwrap();
        let file = ElfFile64::<Endianness>::parse(&obj.bytes[..]).unwrap();
        let endian = file.endian();
        let xen = file.section_by_name(XEN_NOTE_SECTION).unwrap();
        let header = xen.elf_section_header();
        assert_eq!(header.sh_type(endian), elf::SHT_NOTE);
        assert_eq!(header.sh_flags(endian), u64::from(elf::SHF_ALLOC));
        let relocs: Vec<_> = xen.relocations().collect();
        assert_eq!(relocs.len(), 1);
        let (offset, reloc) = &relocs[0];
        assert_eq!(*offset, 16);
        assert_eq!(
            reloc.flags(),
            RelocationFlags::Elf {
                r_type: elf::R_X86_64_32
            }
        );
        let object::RelocationTarget::Symbol(sym) = reloc.target() else {
            panic!("the entry relocation targets a symbol");
        };
        let sym = file.symbol_by_index(sym).unwrap();
        assert_eq!(sym.name(), Ok("_pvh_start"));
        assert!(sym.is_undefined() && sym.is_global());

        let build_id = file.section_by_name(BUILD_ID_SECTION).unwrap();
        let data = build_id.data().unwrap();
        assert_eq!(&data[12..16], b"GNU\0");
        assert_eq!(&data[16..], &id.0);
        assert_eq!(file.elf_header().e_type(endian), elf::ET_REL);
    }

    #[test]
    fn build_ids_hash_the_parts_and_where_they_split() {
        let a = BuildId::of([&b"ab"[..], b"c"]);
        assert_eq!(a, BuildId::of([&b"ab"[..], b"c"]));
        assert_ne!(a, BuildId::of([&b"a"[..], b"bc"]));
        assert_ne!(a, BuildId::of([&b"ab"[..], b"d"]));
        assert_eq!(a.to_hex().len(), 40);
    }
}
