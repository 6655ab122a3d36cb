//! Debug info beside the image: the live objects' `.debug_*` sections, concatenated per name
//! and relocated against the layout, for a file of their own (`<image>.debug`, written by
//! [`crate::write::write_debug_file`]), so the image stays as small as without them.
//!
//! A relocation against a kept section gets its output address; one against another debug
//! section (`.debug_str`, `.debug_abbrev`, ...) the offset of that input section inside the
//! output section of its name; one against a section garbage collection dropped gets a
//! tombstone, as lld writes: 1 in `.debug_ranges` and `.debug_loc` (where 0 would end a list
//! early), 0 elsewhere. Only the absolute relocations DWARF uses are applied; debug sections
//! hold no others.

use std::collections::HashMap;

use object::elf;
use uniklink_analyzer::object::{SectionId, SymbolIndex, SymbolPlace};
use uniklink_analyzer::resolve::{Definition, SymbolRef};

use crate::error::{Error, Result};
use crate::layout::Layout;

/// The output debug sections, in the order their names first appear.
#[derive(Debug, Default)]
pub struct DebugSections {
    pub sections: Vec<DebugSection>,
}

#[derive(Debug)]
pub struct DebugSection {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// Where an input debug section landed: its output section and offset there.
type Placement = HashMap<SectionId, (usize, u64)>;

fn is_debug(name: &[u8], sh_type: u32, alloc: bool) -> bool {
    name.starts_with(b".debug_") && sh_type == elf::SHT_PROGBITS && !alloc
}

/// The width of the field an absolute relocation of `machine` writes, for the relocation
/// kinds DWARF uses.
fn field_size(machine: u16, r_type: u32) -> Option<usize> {
    match (machine, r_type) {
        (elf::EM_X86_64, elf::R_X86_64_64) => Some(8),
        (elf::EM_X86_64, elf::R_X86_64_32 | elf::R_X86_64_32S) => Some(4),
        (elf::EM_AARCH64, elf::R_AARCH64_ABS64) => Some(8),
        (elf::EM_AARCH64, elf::R_AARCH64_ABS32) => Some(4),
        _ => None,
    }
}

/// The debug sections of the objects the layout placed code from, relocated; empty when the
/// inputs carry no DWARF.
pub fn collect(layout: &Layout<'_>) -> Result<DebugSections> {
    let db = layout.db;
    let mut out = DebugSections::default();
    let mut by_name: HashMap<&[u8], usize> = HashMap::new();
    let mut placement = Placement::new();
    let mut placed: Vec<SectionId> = Vec::new();
    for object in db.objects().filter(|o| db.is_live(o.id)) {
        for (index, section) in object.sections.iter_ids() {
            if !is_debug(section.name, section.sh_type, section.is_alloc()) {
                continue;
            }
            let id = SectionId {
                object: object.id,
                index,
            };
            let data = section.contents().map_err(|reason| Error::Section {
                object: object.name.clone(),
                section: String::from_utf8_lossy(section.name).into_owned(),
                reason,
            })?;
            let slot = *by_name.entry(section.name).or_insert_with(|| {
                out.sections.push(DebugSection {
                    name: section.name.to_vec(),
                    data: Vec::new(),
                });
                out.sections.len() - 1
            });
            let output = &mut out.sections[slot].data;
            let offset = output.len() as u64;
            output.extend_from_slice(&data);
            placement.insert(id, (slot, offset));
            placed.push(id);
        }
    }
    for id in &placed {
        let object = db.object(id.object);
        let section = object.section(id.index);
        let (slot, base) = placement[id];
        let tombstone: u64 = match section.name {
            b".debug_ranges" | b".debug_loc" => 1,
            _ => 0,
        };
        for reloc in section.relocs() {
            let Some(width) = field_size(object.machine, reloc.r_type) else {
                continue;
            };
            let value = match defining_section(layout, *id, reloc.symbol) {
                Some((target, symbol_value)) if placement.contains_key(&target) => {
                    let (_, offset) = placement[&target];
                    offset
                        .wrapping_add(symbol_value)
                        .wrapping_add(reloc.addend as u64)
                }
                Some((target, _)) if layout.section_address(target).is_none() => tombstone,
                _ => {
                    let target =
                        layout.target(id.object, reloc.symbol, reloc.addend, (*id, reloc.offset));
                    match target {
                        Ok(target) => target.addr.wrapping_add(target.addend as u64),
                        Err(_) => tombstone,
                    }
                }
            };
            let data = &mut out.sections[slot].data;
            // Within this input's bytes, not only the output's: the next input follows.
            let field = reloc
                .offset
                .checked_add(width as u64)
                .filter(|&end| end <= section.size)
                .and_then(|_| usize::try_from(base + reloc.offset).ok())
                .and_then(|start| data.get_mut(start..start.checked_add(width)?))
                .ok_or_else(|| Error::Section {
                    object: object.name.clone(),
                    section: String::from_utf8_lossy(section.name).into_owned(),
                    reason: format!(
                        "relocation at {:#x} runs past the section's end",
                        reloc.offset
                    ),
                })?;
            field.copy_from_slice(&value.to_le_bytes()[..width]);
        }
    }
    Ok(out)
}

/// The input section symbol `index` of `from`'s object is defined in, with its value, after
/// resolution; `None` for an absolute, common or undefined symbol.
fn defining_section(
    layout: &Layout<'_>,
    from: SectionId,
    index: SymbolIndex,
) -> Option<(SectionId, u64)> {
    let db = layout.db;
    let (object, index) = match db.symbol_ref(from.object, index) {
        SymbolRef::Local { object, index } => (object, index),
        SymbolRef::Global(global) => match db.global(global).def {
            Definition::Defined { object, index } => (object, index),
            _ => return None,
        },
    };
    let symbol = db.object(object).symbols.get(index)?;
    match symbol.place() {
        SymbolPlace::Section(section) => Some((
            SectionId {
                object,
                index: section,
            },
            symbol.value,
        )),
        _ => None,
    }
}
