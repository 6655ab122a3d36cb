//! The notes object an image kind generates: a relocatable object of allocated note sections,
//! linked like any input so that the notes load with the headers and section GC keeps them
//! as it keeps every note. Every kind's object ends with the build id.

use object::write::{Object, SectionId};
use object::{Architecture, BinaryFormat, Endianness, SectionFlags, SectionKind, elf};
use uniklink_analyzer::input::GeneratedObject;

use super::{BuildId, ImageError};

pub const BUILD_ID_SECTION: &str = ".note.gnu.build-id";

pub(super) fn object(architecture: Architecture) -> Object<'static> {
    Object::new(BinaryFormat::Elf, architecture, Endianness::Little)
}

/// Adds the build id after the kind's own notes and gives the object's bytes, named `name`
/// in reports; `what` names the object in errors.
pub(super) fn finish(
    mut obj: Object<'_>,
    build_id: &BuildId,
    what: &'static str,
    name: &str,
) -> Result<GeneratedObject, ImageError> {
    let id = note_section(&mut obj, BUILD_ID_SECTION);
    obj.append_section_data(id, &note(b"GNU", elf::NT_GNU_BUILD_ID, &build_id.0), 4);
    let bytes = obj
        .write()
        .map_err(|source| ImageError::Generate { what, source })?;
    Ok(GeneratedObject {
        name: name.to_owned(),
        bytes,
    })
}

pub(super) fn note_section(obj: &mut Object<'_>, name: &str) -> SectionId {
    let id = obj.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Note);
    obj.section_mut(id).flags = SectionFlags::Elf {
        sh_flags: u64::from(elf::SHF_ALLOC),
    };
    id
}

/// One ELF note: header, NUL-terminated name and descriptor, each padded to 4 bytes.
pub(super) fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
    let namesz = name.len() + 1;
    let mut out = Vec::new();
    out.extend_from_slice(&(namesz as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&n_type.to_le_bytes());
    out.extend_from_slice(name);
    out.resize(12 + namesz.next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

/// Where the descriptor of a note named `name` starts within the note.
pub(super) fn note_desc_offset(name: &[u8]) -> u64 {
    12 + (name.len() as u64 + 1).next_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_padded_as_the_elf_spec_says() {
        let n = note(b"Xen", 18, &[1, 2, 3, 4]);
        assert_eq!(
            n,
            [
                4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0, b'X', b'e', b'n', 0, 1, 2, 3, 4
            ]
        );
        let n = note(b"GNU", 3, &[7; 20]);
        assert_eq!(n.len(), 12 + 4 + 20);
        assert_eq!(note_desc_offset(b"GNU"), 16);
    }
}
