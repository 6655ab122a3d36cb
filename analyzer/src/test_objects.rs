//! Builds small ELF relocatable objects for tests with `object`'s writer, so each test states
//! its input declaratively instead of shipping binary fixtures.

use object::write::{Comdat, Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, ComdatKind, Endianness, RelocationFlags, SectionFlags, SectionKind,
    SymbolFlags, SymbolKind, SymbolScope, elf,
};

use crate::input::InputId;
use crate::object::{ObjectFile, ObjectId, parse};

pub struct TestObject {
    obj: Object<'static>,
}

impl TestObject {
    pub fn new() -> Self {
        Self {
            obj: Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little),
        }
    }

    pub fn section(&mut self, name: &str, kind: SectionKind, data: &[u8]) -> SectionId {
        let id = self
            .obj
            .add_section(Vec::new(), name.as_bytes().to_vec(), kind);
        if kind == SectionKind::UninitializedData {
            self.obj.append_section_bss(id, data.len() as u64, 1);
        } else {
            self.obj.append_section_data(id, data, 1);
        }
        id
    }

    /// A section with explicit ELF type and flags (notes, init arrays, retained sections).
    pub fn elf_section(
        &mut self,
        name: &str,
        sh_type: u32,
        sh_flags: u64,
        data: &[u8],
    ) -> SectionId {
        let id = self.section(name, SectionKind::Elf(sh_type), data);
        self.obj.section_mut(id).flags = SectionFlags::Elf { sh_flags };
        id
    }

    pub fn define(&mut self, name: &str, section: SectionId, value: u64, weak: bool) -> SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        })
    }

    pub fn common(&mut self, name: &str, size: u64, align: u64) -> SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: align,
            size,
            kind: SymbolKind::Data,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Common,
            flags: SymbolFlags::None,
        })
    }

    pub fn undefined(&mut self, name: &str, weak: bool) -> SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Unknown,
            scope: SymbolScope::Linkage,
            weak,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    }

    pub fn section_symbol(&mut self, section: SectionId) -> SymbolId {
        self.obj.section_symbol(section)
    }

    pub fn reloc(
        &mut self,
        section: SectionId,
        offset: u64,
        symbol: SymbolId,
        r_type: u32,
        addend: i64,
    ) {
        self.obj
            .add_relocation(
                section,
                Relocation {
                    offset,
                    symbol,
                    addend,
                    flags: RelocationFlags::Elf { r_type },
                },
            )
            .expect("valid test relocation");
    }

    /// A 64-bit absolute reference from `section`+`offset` to `symbol`.
    pub fn refer(&mut self, section: SectionId, offset: u64, symbol: SymbolId) {
        self.reloc(section, offset, symbol, elf::R_X86_64_64, 0);
    }

    pub fn comdat(&mut self, signature: SymbolId, sections: Vec<SectionId>) {
        self.obj.add_comdat(Comdat {
            kind: ComdatKind::Any,
            symbol: signature,
            sections,
        });
    }

    pub fn bytes(self) -> Vec<u8> {
        self.obj.write().expect("test object serialises")
    }
}

/// An object of `count` code sections of four bytes, `.text.0` on.
pub fn text_sections(count: usize) -> Vec<u8> {
    let mut o = TestObject::new();
    for i in 0..count {
        o.section(&format!(".text.{i}"), SectionKind::Text, &[0; 4]);
    }
    o.bytes()
}

/// Parses test objects: `(name, from_archive, bytes)`, ids in order.
pub fn parse_all<'d>(inputs: &'d [(&str, bool, Vec<u8>)]) -> Vec<ObjectFile<'d>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, (name, from_archive, bytes))| {
            parse(
                ObjectId(i as u32),
                InputId(i as u32),
                (*name).to_owned(),
                *from_archive,
                bytes,
            )
            .expect("test object parses")
        })
        .collect()
}
