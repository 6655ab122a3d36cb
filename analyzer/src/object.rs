//! Bounds-checked parsing of ELF64 little-endian relocatable objects.
//!
//! `object`'s low-level ELF API reads headers without trusting sizes, but it leaves semantic
//! checks (section indices in symbols, relocation symbol indices, offsets inside sections) to
//! the caller. Everything the later phases index with is checked here once, so they can index
//! without re-checking.

use std::borrow::Cow;
use std::io::Read;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, Sym};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::{IdVec, Idx};
use crate::input::{InputId, Inputs, Unit};

/// Index of an object among all parsed units (archive members included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u32);
crate::id::u32_idx!(ObjectId);

/// A section's index in its object's section header table. (The `object` crate's index
/// types are `usize`s; these stay 4 bytes, as many tables hold one per input section.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionIndex(pub u32);

/// A symbol's index in its object's symbol table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymbolIndex(pub u32);

crate::id::u32_idx!(SectionIndex, SymbolIndex);

impl std::fmt::Display for SectionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One input section: its object and its ELF section index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionId {
    pub object: ObjectId,
    pub index: SectionIndex,
}

/// One input section among all objects' sections: the index space of the link's per-section
/// tables, in which each object's sections are a range in object order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputSectionId(pub u32);
crate::id::u32_idx!(InputSectionId);

/// Where each object's range of [`InputSectionId`]s starts.
#[derive(Debug, Clone, Default)]
pub struct InputSections {
    first: IdVec<ObjectId, InputSectionId>,
    len: usize,
}

impl InputSections {
    /// The ranges of `objects`, whose ids run from 0 in order.
    pub fn new<'o, 'data: 'o>(objects: impl IntoIterator<Item = &'o ObjectFile<'data>>) -> Self {
        let mut this = InputSections::default();
        for o in objects {
            this.push(o);
        }
        this
    }

    /// Gives the object after the last a range.
    pub fn push(&mut self, object: &ObjectFile<'_>) {
        debug_assert_eq!(object.id.index(), self.first.len());
        self.first.push(InputSectionId::from_index(self.len));
        self.len += object.sections.len();
    }

    /// The id of `section`; `None` for an object outside the ranges or an index past its
    /// object's sections.
    pub fn get(&self, section: SectionId) -> Option<InputSectionId> {
        let first = self.first.get(section.object)?.index();
        let end = self
            .first
            .get(ObjectId(section.object.0 + 1))
            .map_or(self.len, |next| next.index());
        let at = first + section.index.index();
        (at < end).then(|| InputSectionId::from_index(at))
    }

    /// The first id of `object`'s range (its null section's).
    pub fn first(&self, object: ObjectId) -> InputSectionId {
        self.first[object]
    }

    /// The id of a section of an object in the ranges, as its `SectionId` came from parsing.
    pub fn id(&self, section: SectionId) -> InputSectionId {
        self.get(section)
            .expect("a section of an object with a range")
    }

    /// The number of sections in all ranges.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A table with `value` for every section.
    pub fn table<T: Clone>(&self, value: T) -> IdVec<InputSectionId, T> {
        IdVec::filled(value, self.len)
    }
}

/// A parsed relocatable object. Slices borrow the input mapping.
pub struct ObjectFile<'data> {
    pub id: ObjectId,
    pub input: InputId,
    /// `path` or `archive(member)`.
    pub name: String,
    pub from_archive: bool,
    pub machine: u16,
    pub data: &'data [u8],
    /// Indexed by ELF section index; entry 0 is the null section.
    pub sections: IdVec<SectionIndex, Section<'data>>,
    /// Indexed by ELF symbol index; entry 0 is the null symbol.
    pub symbols: IdVec<SymbolIndex, Symbol<'data>>,
    pub first_global: usize,
    pub groups: Vec<Group<'data>>,
}

pub struct Section<'data> {
    pub name: &'data [u8],
    pub sh_type: u32,
    pub flags: u64,
    pub align: u64,
    pub entsize: u64,
    /// For a compressed section, the size once decompressed, which relocation offsets refer
    /// to.
    pub size: u64,
    /// Empty for `SHT_NOBITS`; for a compressed section, the compressed stream after its
    /// header (see [`Section::contents`]).
    pub data: &'data [u8],
    pub compression: Option<Compression>,
    relocs: &'data [elf::Rela64<LE>],
    /// Index into [`ObjectFile::groups`].
    pub group: Option<u32>,
}

/// How an `SHF_COMPRESSED` section's bytes are compressed (`Elf64_Chdr::ch_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zlib,
    Zstd,
}

/// A relocation read generically: the architecture gives `r_type` its meaning later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloc {
    pub offset: u64,
    pub r_type: u32,
    pub symbol: SymbolIndex,
    pub addend: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolPlace {
    Undefined,
    Absolute,
    /// `st_value` is the required alignment.
    Common,
    Section(SectionIndex),
}

#[derive(Debug, Clone, Copy)]
pub struct Symbol<'data> {
    pub name: &'data [u8],
    pub value: u64,
    pub size: u64,
    pub st_type: u8,
    pub bind: u8,
    place: PackedPlace,
}

/// A [`SymbolPlace`] in four bytes, where the enum takes eight: a section index, or a value
/// no section index reaches for the others. Objects hold a symbol table of these for every
/// input (640,000 symbols are 5 MB less at the link's peak).
#[derive(Debug, Clone, Copy)]
struct PackedPlace(u32);

impl PackedPlace {
    const UNDEFINED: u32 = u32::MAX;
    const ABSOLUTE: u32 = u32::MAX - 1;
    const COMMON: u32 = u32::MAX - 2;

    /// `None` for a section index too large to pack (no object has four billion sections).
    fn pack(place: SymbolPlace) -> Option<PackedPlace> {
        Some(PackedPlace(match place {
            SymbolPlace::Undefined => Self::UNDEFINED,
            SymbolPlace::Absolute => Self::ABSOLUTE,
            SymbolPlace::Common => Self::COMMON,
            SymbolPlace::Section(SectionIndex(i)) if i < Self::COMMON => i,
            SymbolPlace::Section(_) => return None,
        }))
    }

    fn unpack(self) -> SymbolPlace {
        match self.0 {
            Self::UNDEFINED => SymbolPlace::Undefined,
            Self::ABSOLUTE => SymbolPlace::Absolute,
            Self::COMMON => SymbolPlace::Common,
            i => SymbolPlace::Section(SectionIndex(i)),
        }
    }
}

impl Symbol<'_> {
    /// A placeholder, overwritten before any reader sees it.
    const NULL: Symbol<'static> = Symbol {
        name: &[],
        value: 0,
        size: 0,
        st_type: 0,
        bind: 0,
        place: PackedPlace(PackedPlace::UNDEFINED),
    };

    pub fn place(&self) -> SymbolPlace {
        self.place.unpack()
    }

    pub fn is_weak(&self) -> bool {
        self.bind == elf::STB_WEAK
    }

    pub fn is_section(&self) -> bool {
        self.st_type == elf::STT_SECTION
    }
}

pub struct Group<'data> {
    pub signature: &'data [u8],
    pub comdat: bool,
    pub sections: Vec<SectionIndex>,
}

impl<'data> Section<'data> {
    pub fn relocs(&self) -> impl ExactSizeIterator<Item = Reloc> + '_ {
        self.relocs.iter().map(|r| Reloc {
            offset: r.r_offset(LE),
            r_type: r.r_type(LE, false),
            symbol: SymbolIndex(r.r_sym(LE, false)),
            addend: r.r_addend(LE),
        })
    }

    pub fn is_alloc(&self) -> bool {
        self.flags & u64::from(elf::SHF_ALLOC) != 0
    }

    pub fn is_nobits(&self) -> bool {
        self.sh_type == elf::SHT_NOBITS
    }

    /// The section's bytes, decompressed if it is compressed. Errors say what is wrong with
    /// the compressed stream.
    pub fn contents(&self) -> std::result::Result<Cow<'data, [u8]>, String> {
        let Some(compression) = self.compression else {
            return Ok(Cow::Borrowed(self.data));
        };
        let size = usize::try_from(self.size)
            .map_err(|_| format!("decompressed size {:#x} does not fit in memory", self.size))?;
        let bytes = match compression {
            Compression::Zlib => {
                miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(self.data, size)
                    .map_err(|e| format!("zlib stream: {e}"))?
            }
            Compression::Zstd => {
                let mut decoder = ruzstd::decoding::StreamingDecoder::new(self.data)
                    .map_err(|e| format!("zstd stream: {e}"))?;
                // The stream, not its header, makes the buffer grow past what a stream of
                // this length plausibly holds.
                let mut bytes = Vec::with_capacity(size.min(self.data.len().saturating_mul(64)));
                // One byte past the promised size is enough to tell that it lied.
                (&mut decoder)
                    .take(self.size.saturating_add(1))
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("zstd stream: {e}"))?;
                bytes
            }
        };
        if bytes.len() != size {
            return Err(format!(
                "decompresses to {:#x} bytes, but its header says {:#x}",
                bytes.len(),
                self.size
            ));
        }
        Ok(Cow::Owned(bytes))
    }

    /// Sections no output ever contains: excluded, LLVM bitcode, or not loaded at run time.
    pub fn is_dropped_kind(&self) -> bool {
        self.flags & u64::from(elf::SHF_EXCLUDE) != 0
            || self.name == b".llvmbc"
            || self.name == b".llvmcmd"
            || !self.is_alloc()
            || self.sh_type == elf::SHT_GROUP
    }
}

impl<'data> ObjectFile<'data> {
    /// The global symbols: those past the locals, which ELF puts first.
    pub fn global_symbols(&self) -> &[Symbol<'data>] {
        self.symbols
            .as_slice()
            .get(self.first_global..)
            .unwrap_or_default()
    }

    pub fn section_name(&self, index: SectionIndex) -> String {
        match self.sections.get(index) {
            Some(s) => String::from_utf8_lossy(s.name).into_owned(),
            None => format!("#{index}"),
        }
    }

    pub fn section(&self, index: SectionIndex) -> &Section<'data> {
        &self.sections[index]
    }

    /// The symbols of every section, found in one pass over the symbol table, so that asking
    /// for each of many sections costs symbols + sections rather than their product.
    pub fn symbols_by_section(&self) -> SectionSymbols {
        let mut starts = vec![0u32; self.sections.len() + 1];
        for s in &self.symbols {
            if let SymbolPlace::Section(index) = s.place() {
                starts[index.index() + 1] += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut symbols = vec![SymbolIndex(0); starts[self.sections.len()] as usize];
        for (i, s) in self.symbols.iter_ids() {
            if let SymbolPlace::Section(index) = s.place() {
                let at = &mut next[index.index()];
                symbols[*at as usize] = i;
                *at += 1;
            }
        }
        SectionSymbols { starts, symbols }
    }
}

/// Symbol indices grouped by the section defining them, from
/// [`ObjectFile::symbols_by_section`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSymbols {
    /// `symbols[starts[i]..starts[i + 1]]` are section `i`'s.
    starts: Vec<u32>,
    symbols: Vec<SymbolIndex>,
}

impl SectionSymbols {
    /// Indices of the symbols defined in section `index`, in symbol-table order.
    pub fn of(&self, index: SectionIndex) -> &[SymbolIndex] {
        let i = index.index();
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&start), Some(&end)) => &self.symbols[start as usize..end as usize],
            _ => &[],
        }
    }
}

/// Bytes shown as text (invalid UTF-8 replaced) when formatted.
struct Lossy<'a>(&'a [u8]);

impl std::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        String::from_utf8_lossy(self.0).fmt(f)
    }
}

/// The largest section alignment accepted: 1 GiB, the largest page size of x86_64 and
/// aarch64. Nothing needs more, and each alignment step can pad the image by as much.
const MAX_SECTION_ALIGN: u64 = 1 << 30;
/// The most a compressed section may decompress to: 4 GiB, as for any one input file.
const MAX_DECOMPRESSED_SIZE: u64 = 1 << 32;
/// Symbols read per task: a large object's table is read by several threads.
const SYMBOLS_PER_TASK: usize = 16 * 1024;
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;

/// Parses every unit in parallel but a [reserved](Inputs::reserve_generated) one not
/// filled in yet, which comes last. The result is indexed by [`ObjectId`].
pub fn parse_all<'data>(inputs: &'data Inputs) -> Result<Vec<ObjectFile<'data>>> {
    let ready = inputs
        .units
        .iter()
        .take_while(|unit| !inputs.is_pending(unit))
        .count();
    let objects = inputs.units[..ready]
        .par_iter()
        .enumerate()
        .map(|(i, unit)| parse_unit(inputs, ObjectId(i as u32), unit))
        .collect::<Result<Vec<_>>>()?;
    if let Some(first) = objects.first() {
        for o in &objects[1..] {
            if o.machine != first.machine {
                return Err(Error::MixedMachines {
                    object: o.name.clone(),
                    found: o.machine,
                    first: first.name.clone(),
                    expected: first.machine,
                });
            }
        }
    }
    Ok(objects)
}

/// Parses unit `id` of `inputs`.
pub fn parse_unit<'data>(
    inputs: &'data Inputs,
    id: ObjectId,
    unit: &Unit,
) -> Result<ObjectFile<'data>> {
    parse(
        id,
        unit.input,
        inputs.unit_name(unit),
        unit.member.is_some(),
        inputs.unit_data(unit),
    )
}

/// Parses one object. `name` is used in every error message.
pub fn parse<'data>(
    id: ObjectId,
    input: InputId,
    name: String,
    from_archive: bool,
    data: &'data [u8],
) -> Result<ObjectFile<'data>> {
    let malformed = |reason: String| Error::Malformed {
        object: name.clone(),
        reason,
    };
    let unsupported = |reason: String| Error::Unsupported {
        object: name.clone(),
        reason,
    };
    if data.len() < std::mem::size_of::<elf::FileHeader64<object::Endianness>>() {
        return Err(malformed(format!(
            "truncated ELF header ({} bytes)",
            data.len()
        )));
    }
    if data.get(EI_CLASS) != Some(&elf::ELFCLASS64) {
        return Err(unsupported("only ELF64 objects are supported".into()));
    }
    if data.get(EI_DATA) != Some(&elf::ELFDATA2LSB) {
        return Err(unsupported(
            "only little-endian objects are supported".into(),
        ));
    }
    let header =
        elf::FileHeader64::<LE>::parse(data).map_err(|e| malformed(format!("ELF header: {e}")))?;
    if header.e_type(LE) != elf::ET_REL {
        return Err(unsupported(format!(
            "ELF type {} is not a relocatable object (ET_REL)",
            header.e_type(LE)
        )));
    }
    let table = header.sections(LE, data).map_err(|e| {
        malformed(format!(
            "section headers at offset {:#x}: {e}",
            header.e_shoff(LE)
        ))
    })?;
    let count = table.len();

    let mut sections = Vec::with_capacity(count);
    for (index, sh) in table.enumerate() {
        let section_name = table.section_name(LE, sh).map_err(|e| {
            malformed(format!(
                "section #{} name index {:#x}: {e}",
                index.0,
                sh.sh_name(LE)
            ))
        })?;
        let sh_type = sh.sh_type(LE);
        let size = sh.sh_size(LE);
        let section_data = if sh_type == elf::SHT_NOBITS || index.0 == 0 {
            &[][..]
        } else {
            sh.data(LE, data).map_err(|_| {
                malformed(format!(
                    "section {} (#{}) at offset {:#x} size {:#x} runs past the end of the file ({:#x} bytes)",
                    String::from_utf8_lossy(section_name),
                    index.0,
                    sh.sh_offset(LE),
                    size,
                    data.len()
                ))
            })?
        };
        let entsize = match sh_type {
            elf::SHT_SYMTAB => Some(size_of::<elf::Sym64<LE>>() as u64),
            elf::SHT_RELA => Some(size_of::<elf::Rela64<LE>>() as u64),
            elf::SHT_GROUP => Some(4),
            _ => None,
        };
        if let Some(expected) = entsize
            && sh.sh_entsize(LE) != expected
        {
            return Err(malformed(format!(
                "section {} (#{}) has entry size {:#x}, expected {expected:#x}",
                String::from_utf8_lossy(section_name),
                index.0,
                sh.sh_entsize(LE)
            )));
        }
        let mut align = sh.sh_addralign(LE).max(1);
        let mut size = size;
        let mut section_data = section_data;
        let mut compression = None;
        if sh.sh_flags(LE) & u64::from(elf::SHF_COMPRESSED) != 0 && index.0 != 0 {
            let name = String::from_utf8_lossy(section_name);
            if sh_type == elf::SHT_NOBITS || sh.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0 {
                return Err(malformed(format!(
                    "section {name} (#{}) is compressed (SHF_COMPRESSED), which only a non-allocated section with contents may be",
                    index.0
                )));
            }
            // Read field by field: an archive member's sections need not be 8-byte aligned.
            let header_size = size_of::<elf::CompressionHeader64<LE>>();
            let Some((header, stream)) = section_data.split_at_checked(header_size) else {
                return Err(malformed(format!(
                    "compressed section {name} (#{}) is {:#x} bytes, too small for its {header_size:#x}-byte compression header",
                    index.0,
                    section_data.len()
                )));
            };
            let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
            let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
            compression = Some(match u32_at(0) {
                elf::ELFCOMPRESS_ZLIB => Compression::Zlib,
                elf::ELFCOMPRESS_ZSTD => Compression::Zstd,
                other => {
                    return Err(malformed(format!(
                        "compressed section {name} (#{}) has unknown compression type {other:#x} in its header",
                        index.0
                    )));
                }
            });
            align = u64_at(16).max(1);
            if !align.is_power_of_two() {
                return Err(malformed(format!(
                    "compressed section {name} (#{}) has decompressed alignment {align:#x}, not a power of two",
                    index.0
                )));
            }
            size = u64_at(8);
            if size > MAX_DECOMPRESSED_SIZE {
                return Err(malformed(format!(
                    "compressed section {name} (#{}) claims {size:#x} bytes decompressed, more than {MAX_DECOMPRESSED_SIZE:#x}",
                    index.0
                )));
            }
            section_data = stream;
        }
        if !align.is_power_of_two() {
            return Err(malformed(format!(
                "section {} alignment {align:#x} is not a power of two",
                String::from_utf8_lossy(section_name)
            )));
        }
        if align > MAX_SECTION_ALIGN {
            return Err(malformed(format!(
                "section {} (#{}) has alignment {align:#x} (sh_addralign), more than {MAX_SECTION_ALIGN:#x}, the largest page size; padding to it would make the image gigabytes long",
                String::from_utf8_lossy(section_name),
                index.0
            )));
        }
        sections.push(Section {
            name: section_name,
            sh_type,
            flags: sh.sh_flags(LE),
            align,
            entsize: sh.sh_entsize(LE),
            size,
            data: section_data,
            compression,
            relocs: &[],
            group: None,
        });
    }

    let symtab = table
        .symbols(LE, data, elf::SHT_SYMTAB)
        .map_err(|e| malformed(format!("symbol table: {e}")))?;
    let strings = symtab.strings();
    // One symbol, read and checked on its own, so that large tables are read in parallel.
    let symbol = |index: usize, sym: &elf::Sym64<LE>| -> Result<Symbol<'data>> {
        let sym_name = sym.name(LE, strings).map_err(|e| {
            malformed(format!(
                "symbol #{index} name index {:#x}: {e}",
                sym.st_name(LE)
            ))
        })?;
        let shndx = sym.st_shndx(LE);
        let place = match shndx {
            elf::SHN_UNDEF => SymbolPlace::Undefined,
            elf::SHN_ABS => SymbolPlace::Absolute,
            elf::SHN_COMMON => {
                // A common symbol's value is its alignment, which pads .bss as a section's
                // would.
                if sym.st_value(LE) > MAX_SECTION_ALIGN {
                    return Err(malformed(format!(
                        "common symbol `{}` (#{index}) has alignment {:#x} (st_value), more than {MAX_SECTION_ALIGN:#x}, the largest page size",
                        String::from_utf8_lossy(sym_name),
                        sym.st_value(LE)
                    )));
                }
                SymbolPlace::Common
            }
            _ => {
                let section = if shndx == elf::SHN_XINDEX {
                    symtab
                        .shndx(LE, object::SymbolIndex(index))
                        .ok_or_else(|| {
                            malformed(format!("symbol #{index} has no extended section index"))
                        })? as usize
                } else if shndx >= elf::SHN_LORESERVE {
                    return Err(unsupported(format!(
                        "symbol `{}` uses reserved section index {shndx:#x}",
                        String::from_utf8_lossy(sym_name)
                    )));
                } else {
                    usize::from(shndx)
                };
                if section >= count {
                    return Err(malformed(format!(
                        "symbol `{}` (#{index}) refers to section #{section}, but there are {count} sections",
                        String::from_utf8_lossy(sym_name),
                    )));
                }
                SymbolPlace::Section(SectionIndex(section as u32))
            }
        };
        if sym.st_type() == elf::STT_GNU_IFUNC {
            return Err(unsupported(format!(
                "symbol `{}` is an ifunc, which static executables here do not support",
                String::from_utf8_lossy(sym_name)
            )));
        }
        let place = PackedPlace::pack(place)
            .ok_or_else(|| malformed(format!("symbol #{index} has section index {place:?}")))?;
        Ok(Symbol {
            name: sym_name,
            value: sym.st_value(LE),
            size: sym.st_size(LE),
            st_type: sym.st_type(),
            bind: sym.st_bind(),
            place,
        })
    };
    let raw = symtab.symbols();
    let mut symbols = vec![Symbol::NULL; raw.len()];
    symbols
        .par_chunks_mut(SYMBOLS_PER_TASK)
        .zip(raw.par_chunks(SYMBOLS_PER_TASK))
        .enumerate()
        .map(|(chunk, (out, raw))| {
            let first = chunk * SYMBOLS_PER_TASK;
            for (i, (slot, sym)) in out.iter_mut().zip(raw).enumerate() {
                *slot = symbol(first + i, sym)?;
            }
            Ok(())
        })
        // In table order, so that of several bad symbols the first is reported.
        .collect::<Vec<Result<()>>>()
        .into_iter()
        .collect::<Result<()>>()?;
    let first_global = raw
        .iter()
        .skip(1)
        .position(|sym| sym.st_bind() != elf::STB_LOCAL)
        .map_or(raw.len(), |at| at + 1);
    // Resolution takes everything from the first global on as global: a local among them
    // would answer other objects' references (lld refuses such tables too).
    if let Some(at) = raw[first_global..]
        .iter()
        .position(|sym| sym.st_bind() == elf::STB_LOCAL)
    {
        let index = first_global + at;
        return Err(malformed(format!(
            "symbol `{}` (#{index}) is local but follows global symbol #{first_global}: a symbol table lists its locals first",
            String::from_utf8_lossy(symbols[index].name)
        )));
    }

    let mut groups = Vec::new();
    // The sections a relocation section applies to: a second one for a section would replace
    // the first's relocations.
    let mut relocated = std::collections::HashSet::new();
    for (index, sh) in table.enumerate() {
        let sh_type = sh.sh_type(LE);
        // Formatted only into an error: most objects' section names are never printed.
        let section_name = Lossy(sections[index.0].name);
        match sh_type {
            elf::SHT_RELA => {
                let (relas, link) = sh
                    .rela(LE, data)
                    .map_err(|e| malformed(format!("relocation section {section_name}: {e}")))?
                    .unwrap_or((&[], object::SectionIndex(0)));
                if link != symtab.section() && !relas.is_empty() {
                    return Err(malformed(format!(
                        "relocation section {section_name} links to section #{}, not the symbol table",
                        link.0
                    )));
                }
                let target = sh.sh_info(LE) as usize;
                if target == 0 || target >= count {
                    return Err(malformed(format!(
                        "relocation section {section_name} applies to section #{target}, but there are {count} sections"
                    )));
                }
                if !relocated.insert(target) {
                    return Err(malformed(format!(
                        "relocation section {section_name} applies to section #{target}, which an earlier relocation section already does"
                    )));
                }
                let target_section = &sections[target];
                for (i, r) in relas.iter().enumerate() {
                    let sym = r.r_sym(LE, false) as usize;
                    if sym >= symbols.len() {
                        return Err(malformed(format!(
                            "relocation #{i} in {section_name} at offset {:#x} uses symbol #{sym}, but there are {} symbols",
                            r.r_offset(LE),
                            symbols.len()
                        )));
                    }
                    if r.r_offset(LE) >= target_section.size {
                        return Err(malformed(format!(
                            "relocation #{i} in {section_name} at offset {:#x} is outside {} ({:#x} bytes)",
                            r.r_offset(LE),
                            String::from_utf8_lossy(target_section.name),
                            target_section.size
                        )));
                    }
                }
                sections[target].relocs = relas;
            }
            elf::SHT_REL => {
                return Err(unsupported(format!(
                    "relocation section {section_name} is SHT_REL; only SHT_RELA is supported"
                )));
            }
            elf::SHT_CREL => {
                return Err(unsupported(format!(
                    "relocation section {section_name} is SHT_CREL; only SHT_RELA is supported"
                )));
            }
            elf::SHT_GROUP => {
                let (flags, members) = sh
                    .group(LE, data)
                    .map_err(|e| malformed(format!("group section {section_name}: {e}")))?
                    .unwrap_or((0, &[]));
                let sig = sh.sh_info(LE) as usize;
                let signature = symbols.get(sig).ok_or_else(|| {
                    malformed(format!(
                        "group section {section_name} signature symbol #{sig} is out of range"
                    ))
                })?;
                let group_index = groups.len() as u32;
                let mut member_indices = Vec::with_capacity(members.len());
                for m in members {
                    let m = m.get(LE) as usize;
                    if m == 0 || m >= count {
                        return Err(malformed(format!(
                            "group section {section_name} lists section #{m}, but there are {count} sections"
                        )));
                    }
                    sections[m].group = Some(group_index);
                    member_indices.push(SectionIndex(m as u32));
                }
                // A group signature named by a section symbol takes the section's name.
                let signature = if signature.is_section() {
                    match signature.place() {
                        SymbolPlace::Section(s) => sections[s.index()].name,
                        _ => signature.name,
                    }
                } else {
                    signature.name
                };
                groups.push(Group {
                    signature,
                    comdat: flags & elf::GRP_COMDAT != 0,
                    sections: member_indices,
                });
            }
            _ => {}
        }
    }

    Ok(ObjectFile {
        id,
        input,
        name,
        from_archive,
        machine: header.e_machine(LE),
        data,
        sections: sections.into(),
        symbols: symbols.into(),
        first_global,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use object::SectionKind;

    use super::*;
    use crate::test_objects::TestObject;

    fn valid() -> Vec<u8> {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 16]);
        o.define("_start", text, 0, false);
        let ext = o.undefined("ext", false);
        o.refer(text, 8, ext);
        o.bytes()
    }

    #[test]
    fn each_object_has_a_range_of_input_section_ids_in_order() {
        use crate::test_objects::text_sections;
        let inputs = [
            ("a.o", false, text_sections(2)),
            ("b.o", true, text_sections(5)),
            ("glue.o", false, text_sections(1)),
        ];
        let objects = crate::test_objects::parse_all(&inputs);
        let at = |object: u32, index: u32| SectionId {
            object: ObjectId(object),
            index: SectionIndex(index),
        };
        // The glue is attached after the others, as the weave attaches it.
        let mut ids = InputSections::new(&objects[..2]);
        assert_eq!(ids.get(at(2, 0)), None);
        ids.push(&objects[2]);

        let mut expected = 0;
        for o in &objects {
            for index in o.sections.ids() {
                let id = ids.id(SectionId {
                    object: o.id,
                    index,
                });
                assert_eq!(id, InputSectionId(expected));
                expected += 1;
            }
            let past = SectionIndex(o.sections.len() as u32);
            assert_eq!(
                ids.get(SectionId {
                    object: o.id,
                    index: past
                }),
                None
            );
        }
        assert_eq!(ids.len(), expected as usize);
        assert_eq!(ids.table(0u8).len(), ids.len());
        assert_eq!(ids.get(at(3, 0)), None);
    }

    fn parse_err(data: &[u8]) -> String {
        match parse(ObjectId(0), InputId(0), "bad.o".into(), false, data) {
            Ok(_) => panic!("corrupt object accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn u64_at(data: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
    }

    /// File offset of the header of the section named `name`.
    fn section_header(data: &[u8], name: &[u8]) -> usize {
        let o = parse(ObjectId(0), InputId(0), "valid.o".into(), false, data).unwrap();
        let index = o.sections.iter().position(|s| s.name == name).unwrap();
        u64_at(data, 0x28) as usize + index * 64
    }

    #[test]
    fn valid_object_parses() {
        let data = valid();
        let o = parse(ObjectId(0), InputId(0), "valid.o".into(), false, &data).unwrap();
        let text = o.sections.iter().find(|s| s.name == b".text").unwrap();
        assert_eq!(text.relocs().len(), 1);
    }

    /// A symbol table longer than a task's share is read in parallel; of several bad symbols
    /// the first in the table is still the one reported, and the symbols come out in order.
    #[test]
    fn large_symbol_tables_read_in_order_and_report_the_first_bad_symbol() {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 16]);
        let count = 2 * SYMBOLS_PER_TASK + 100;
        for i in 0..count {
            o.define(&format!("f{i}"), text, 0, false);
        }
        let data = o.bytes();
        let parsed = parse(ObjectId(0), InputId(0), "big.o".into(), false, &data).unwrap();
        let names: Vec<&[u8]> = parsed.global_symbols().iter().map(|s| s.name).collect();
        let expected: Vec<String> = (0..count).map(|i| format!("f{i}")).collect();
        assert_eq!(
            names,
            expected.iter().map(String::as_bytes).collect::<Vec<_>>()
        );

        let h = section_header(&data, b".symtab");
        let symtab = u64_at(&data, h + 0x18) as usize;
        let mut bad = data.clone();
        for index in [SYMBOLS_PER_TASK + 7, 2 * SYMBOLS_PER_TASK + 3, 5] {
            let at = symtab + index * 24;
            bad[at..at + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        }
        let err = parse_err(&bad);
        assert!(err.contains("symbol #5 name index 0x7fff0000"), "{err}");
    }

    #[test]
    fn truncated_header() {
        let err = parse_err(&valid()[..20]);
        assert_eq!(err, "bad.o: malformed ELF: truncated ELF header (20 bytes)");
    }

    #[test]
    fn section_offset_past_eof() {
        let mut data = valid();
        let h = section_header(&data, b".text");
        data[h + 0x18..h + 0x20].copy_from_slice(&0x10_0000u64.to_le_bytes());
        let err = parse_err(&data);
        assert!(err.contains("section .text"), "{err}");
        assert!(err.contains("offset 0x100000"), "{err}");
    }

    #[test]
    fn bad_section_name_index() {
        let mut data = valid();
        let h = section_header(&data, b".text");
        data[h..h + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        let err = parse_err(&data);
        assert!(err.contains("name index 0x7fff0000"), "{err}");
    }

    #[test]
    fn relocation_symbol_out_of_range() {
        let mut data = valid();
        let h = section_header(&data, b".rela.text");
        let rela = u64_at(&data, h + 0x18) as usize;
        let info = (0xffffu64 << 32) | u64::from(elf::R_X86_64_64);
        data[rela + 8..rela + 16].copy_from_slice(&info.to_le_bytes());
        let err = parse_err(&data);
        assert!(
            err.contains("in .rela.text at offset 0x8 uses symbol #65535"),
            "{err}"
        );
    }

    #[test]
    fn a_local_symbol_after_a_global_is_an_error() {
        let mut data = valid();
        let h = section_header(&data, b".symtab");
        let symtab = u64_at(&data, h + 0x18) as usize;
        let count = u64_at(&data, h + 0x20) as usize / 24;
        // The last symbol is global (`ext` or `_start`): make it local.
        let info = symtab + (count - 1) * 24 + 4;
        data[info] &= 0x0f;
        let err = parse_err(&data);
        assert!(
            err.contains("is local but follows global symbol #"),
            "{err}"
        );
    }

    #[test]
    fn a_common_symbol_aligned_past_the_largest_page_is_an_error() {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 16]);
        o.define("_start", text, 0, false);
        o.common("huge", 8, 1 << 62);
        let err = parse_err(&o.bytes());
        assert!(
            err.contains("common symbol `huge` (#") && err.contains("alignment 0x4000000000000000"),
            "{err}"
        );
    }

    /// Two relocation sections for one section: the second would replace the first's
    /// relocations, so the object is refused (as lld refuses it).
    #[test]
    fn a_second_relocation_section_for_one_section_is_an_error() {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 16]);
        o.define("_start", text, 0, false);
        let data_section = o.section(".data", SectionKind::Data, &[0; 16]);
        let ext = o.undefined("ext", false);
        o.refer(text, 8, ext);
        o.refer(data_section, 8, ext);
        let mut data = o.bytes();
        let text_rela = section_header(&data, b".rela.text");
        let data_rela = section_header(&data, b".rela.data");
        let target = data[text_rela + 0x2c..text_rela + 0x30].to_vec();
        data[data_rela + 0x2c..data_rela + 0x30].copy_from_slice(&target);
        let err = parse_err(&data);
        assert!(
            err.contains("relocation section .rela.data applies to section #")
                && err.contains("which an earlier relocation section already does"),
            "{err}"
        );
    }

    #[test]
    fn relocation_offset_outside_section() {
        let mut data = valid();
        let h = section_header(&data, b".rela.text");
        let rela = u64_at(&data, h + 0x18) as usize;
        data[rela..rela + 8].copy_from_slice(&0x40u64.to_le_bytes());
        let err = parse_err(&data);
        assert!(err.contains("offset 0x40 is outside .text"), "{err}");
    }

    /// Every section's symbols, and only those, whatever order the symbol table lists them
    /// in; a report over thousands of sections relies on this rather than a scan per section.
    #[test]
    fn symbols_by_section_groups_every_symbol_once() {
        const SECTIONS: usize = 2000;
        let mut o = TestObject::new();
        let sections: Vec<_> = (0..SECTIONS)
            .map(|i| o.section(&format!(".text.f{i}"), SectionKind::Text, &[0; 8]))
            .collect();
        // Interleaved, so a section's symbols are not adjacent in the table.
        for round in 0..3 {
            for (i, &section) in sections.iter().enumerate().filter(|(i, _)| i % 3 >= round) {
                o.define(&format!("f{i}_{round}"), section, round as u64, false);
            }
        }
        o.undefined("ext", false);
        let data = o.bytes();
        let parsed = parse(ObjectId(0), InputId(0), "many.o".into(), false, &data).unwrap();
        let index = parsed.symbols_by_section();

        let mut seen = 0;
        for (section_index, section) in parsed.sections.iter_ids() {
            let found: Vec<&[u8]> = index
                .of(section_index)
                .iter()
                .map(|&i| parsed.symbols[i].name)
                .filter(|name| !name.is_empty())
                .collect();
            seen += index.of(section_index).len();
            let Some(i) = section.name.strip_prefix(b".text.f") else {
                assert!(
                    found.is_empty(),
                    "{:?}",
                    String::from_utf8_lossy(section.name)
                );
                continue;
            };
            let i: usize = std::str::from_utf8(i).unwrap().parse().unwrap();
            let expected: Vec<Vec<u8>> = (0..3)
                .filter(|round| i % 3 >= *round)
                .map(|round| format!("f{i}_{round}").into_bytes())
                .collect();
            assert_eq!(
                found,
                expected,
                "section {}",
                String::from_utf8_lossy(section.name)
            );
        }
        let in_sections = parsed
            .symbols
            .iter()
            .filter(|s| matches!(s.place(), SymbolPlace::Section(_)))
            .count();
        assert_eq!(seen, in_sections);
        assert!(
            index
                .of(SectionIndex::from_index(parsed.sections.len()))
                .is_empty()
        );
    }

    /// DWARF-like contents long and repetitive enough that zlib shrinks them.
    fn debug_bytes() -> Vec<u8> {
        (0..0x200u32).flat_map(|i| (i % 7).to_le_bytes()).collect()
    }

    fn chdr(ch_type: u32, size: u64, align: u64) -> Vec<u8> {
        let mut header = ch_type.to_le_bytes().to_vec();
        header.extend(0u32.to_le_bytes());
        header.extend(size.to_le_bytes());
        header.extend(align.to_le_bytes());
        header
    }

    /// An object whose `.debug_info` has the bytes `header` then `stream`, and a relocation
    /// near the end of [`debug_bytes`] (past the compressed bytes).
    fn compressed_debug(header: &[u8], stream: &[u8], flags: u64) -> Vec<u8> {
        let mut o = TestObject::new();
        let text = o.section(".text", SectionKind::Text, &[0; 16]);
        o.define("_start", text, 0, false);
        let data = [header, stream].concat();
        let debug = o.elf_section(".debug_info", elf::SHT_PROGBITS, flags, &data);
        let start = o.section_symbol(text);
        o.refer(debug, debug_bytes().len() as u64 - 8, start);
        o.bytes()
    }

    fn compressed(flags: u64) -> u64 {
        flags | u64::from(elf::SHF_COMPRESSED)
    }

    #[test]
    fn zlib_compressed_section_has_its_decompressed_size_and_contents() {
        let contents = debug_bytes();
        let stream = miniz_oxide::deflate::compress_to_vec_zlib(&contents, 6);
        assert!(stream.len() + 8 < contents.len());
        let data = compressed_debug(
            &chdr(elf::ELFCOMPRESS_ZLIB, contents.len() as u64, 4),
            &stream,
            compressed(0),
        );
        let o = parse(ObjectId(0), InputId(0), "gz.o".into(), false, &data).unwrap();
        let debug = o
            .sections
            .iter()
            .find(|s| s.name == b".debug_info")
            .unwrap();
        assert_eq!(debug.compression, Some(Compression::Zlib));
        assert_eq!(debug.size, contents.len() as u64);
        assert_eq!(debug.align, 4);
        assert_eq!(debug.relocs().len(), 1);
        assert_eq!(debug.contents().unwrap(), &contents[..]);
    }

    #[test]
    fn zstd_compressed_section_has_its_decompressed_contents() {
        let contents = debug_bytes();
        let stream = ruzstd::encoding::compress_to_vec(
            &contents[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let data = compressed_debug(
            &chdr(elf::ELFCOMPRESS_ZSTD, contents.len() as u64, 1),
            &stream,
            compressed(0),
        );
        let o = parse(ObjectId(0), InputId(0), "zst.o".into(), false, &data).unwrap();
        let debug = o
            .sections
            .iter()
            .find(|s| s.name == b".debug_info")
            .unwrap();
        assert_eq!(debug.compression, Some(Compression::Zstd));
        assert_eq!(debug.size, contents.len() as u64);
        assert_eq!(debug.contents().unwrap(), &contents[..]);
    }

    #[test]
    fn compressed_section_that_decompresses_to_another_size_is_an_error() {
        let contents = debug_bytes();
        let zlib = miniz_oxide::deflate::compress_to_vec_zlib(&contents, 6);
        let zstd = ruzstd::encoding::compress_to_vec(
            &contents[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let cases = [
            (elf::ELFCOMPRESS_ZLIB, &zlib),
            (elf::ELFCOMPRESS_ZSTD, &zstd),
        ];
        for ((kind, stream), claimed) in cases.iter().flat_map(|c| {
            [
                (c, contents.len() as u64 - 1),
                (c, contents.len() as u64 + 1),
            ]
        }) {
            let data = compressed_debug(&chdr(*kind, claimed, 1), stream, compressed(0));
            let o = parse(ObjectId(0), InputId(0), "gz.o".into(), false, &data).unwrap();
            let debug = o
                .sections
                .iter()
                .find(|s| s.name == b".debug_info")
                .unwrap();
            assert!(debug.contents().is_err(), "claimed {claimed:#x}");
        }
    }

    #[test]
    fn malformed_compression_headers() {
        let contents = debug_bytes();
        let stream = miniz_oxide::deflate::compress_to_vec_zlib(&contents, 6);
        let size = contents.len() as u64;
        let cases = [
            (
                "unknown type",
                chdr(7, size, 1),
                &stream[..],
                compressed(0),
                "unknown compression type 0x7",
            ),
            (
                "truncated header",
                Vec::new(),
                &[0u8; 12][..],
                compressed(0),
                "0xc bytes, too small for its 0x18-byte compression header",
            ),
            (
                "bad alignment",
                chdr(elf::ELFCOMPRESS_ZLIB, size, 3),
                &stream,
                compressed(0),
                "decompressed alignment 0x3",
            ),
            (
                "larger than any input",
                chdr(elf::ELFCOMPRESS_ZSTD, u64::MAX, 1),
                &stream,
                compressed(0),
                "claims 0xffffffffffffffff bytes decompressed, more than 0x100000000",
            ),
            (
                "allocated",
                chdr(elf::ELFCOMPRESS_ZLIB, size, 1),
                &stream,
                compressed(u64::from(elf::SHF_ALLOC)),
                "is compressed (SHF_COMPRESSED)",
            ),
        ];
        for (what, header, stream, flags, expected) in cases {
            let err = parse_err(&compressed_debug(&header, stream, flags));
            assert!(err.contains("section .debug_info"), "{what}: {err}");
            assert!(err.contains(expected), "{what}: {err}");
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let data = valid();
        // The section header table comes last, so every cut damages it.
        for len in 0..data.len() {
            let cut = parse(ObjectId(0), InputId(0), "cut.o".into(), false, &data[..len]);
            assert!(cut.is_err(), "cut at {len} accepted");
        }
    }
}
