//! Source locations for error messages, read from the referencing object's DWARF.
//!
//! Only used while reporting an error, so it favours simplicity over speed. In a relocatable
//! object, line-program addresses are relocations against the function's section; each
//! section gets a distinct synthetic base so addresses of different sections never collide.

use std::borrow::Cow;

use gimli::{EndianSlice, LittleEndian, Reader as _, RelocateReader};
use rustc_hash::FxHashMap;

use crate::object::{ObjectFile, SectionIndex, SymbolPlace};

const SECTION_SHIFT: u32 = 40;

fn synthetic_base(section: SectionIndex) -> u64 {
    (u64::from(section.0) + 1) << SECTION_SHIFT
}

#[derive(Clone, Copy, Debug)]
struct Relocs<'m>(&'m FxHashMap<usize, (SectionIndex, u64)>);

impl gimli::read::Relocate<usize> for Relocs<'_> {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(match self.0.get(&offset) {
            Some(&(section, off)) => synthetic_base(section).wrapping_add(off),
            None => value,
        })
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        Ok(match self.0.get(&offset) {
            Some(&(_, off)) => usize::try_from(off).unwrap_or(value),
            None => value,
        })
    }
}

type Reader<'d, 'm> = RelocateReader<EndianSlice<'d, LittleEndian>, Relocs<'m>>;

/// `file:line` of the code at `offset` in section `section`, if the object has line info.
pub fn source_line(o: &ObjectFile<'_>, section: SectionIndex, offset: u64) -> Option<String> {
    o.sections.iter().find(|s| s.name == b".debug_line")?;
    let maps: Vec<FxHashMap<usize, (SectionIndex, u64)>> = o
        .sections
        .iter()
        .map(|s| {
            if !s.name.starts_with(b".debug_") {
                return FxHashMap::default();
            }
            s.relocs()
                .filter_map(|r| {
                    let sym = &o.symbols[r.symbol];
                    let SymbolPlace::Section(target) = sym.place() else {
                        return None;
                    };
                    let value = sym.value.wrapping_add(r.addend as u64);
                    Some((usize::try_from(r.offset).ok()?, (target, value)))
                })
                .collect()
        })
        .collect();
    // A section that does not decompress reads as empty: the message loses its line, no more.
    let contents: Vec<Cow<'_, [u8]>> = o
        .sections
        .iter()
        .map(|s| match s.name.starts_with(b".debug_") {
            true => s.contents().unwrap_or_default(),
            false => Cow::Borrowed(&[][..]),
        })
        .collect();
    let load = |id: gimli::SectionId| -> gimli::Result<Reader<'_, '_>> {
        let found = o
            .sections
            .iter()
            .position(|s| s.name == id.name().as_bytes());
        Ok(match found {
            Some(i) => RelocateReader::new(
                EndianSlice::new(&contents[i], LittleEndian),
                Relocs(&maps[i]),
            ),
            None => RelocateReader::new(EndianSlice::new(&[], LittleEndian), Relocs(&maps[0])),
        })
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    let target = synthetic_base(section).wrapping_add(offset);
    let mut best: Option<(u64, String)> = None;
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Some(program) = unit.line_program.clone() else {
            continue;
        };
        let mut rows = program.rows();
        while let Ok(Some((header, row))) = rows.next_row() {
            let address = row.address();
            if row.end_sequence()
                || address > target
                || address >> SECTION_SHIFT != target >> SECTION_SHIFT
                || best.as_ref().is_some_and(|(a, _)| *a > address)
            {
                continue;
            }
            let Some(line) = row.line() else { continue };
            let file = row
                .file(header)
                .and_then(|f| dwarf.attr_string(&unit, f.path_name()).ok())
                .map(|s| {
                    s.to_string_lossy()
                        .map(|c| c.into_owned())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let file = file.rsplit('/').next().unwrap_or(&file).to_owned();
            best = Some((address, format!("{file}:{line}")));
        }
    }
    best.map(|(_, location)| location)
}
