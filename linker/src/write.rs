//! Writes the static ELF executable: headers, the relocated image, and (unless stripped)
//! `.symtab`/`.strtab`. The file is planned first ([`FilePlan`]), reserved at its size as a
//! mapped temporary file beside the output ([`OutputFile`]) that relocation fills in place,
//! and renamed into place once complete, so a failed link never leaves a partial file.

use std::io::Write as _;
use std::num::NonZeroU16;
use std::ops::Range;
use std::path::{Path, PathBuf};

use object::elf;
use object::endian::{LittleEndian as LE, U16, U32, U64};
use object::pod::bytes_of;
use rayon::prelude::*;
use uniklink_analyzer::id::IdVec;
use uniklink_analyzer::object::{InputSectionId, ObjectId, SectionId, SymbolPlace};
use uniklink_analyzer::resolve::Definition;

use crate::error::{Error, Result};
use crate::layout::{ChunkKind, EHDR_SIZE, Layout, PHDR_SIZE, Rank};

pub struct WriteOptions {
    /// Leave out `.symtab` and `.strtab`.
    pub strip: bool,
}

/// The sizes of a written image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The file's size.
    pub size: u64,
    /// Its size without `.symtab` and `.strtab`, as `strip` leaves it (the image has no debug
    /// sections); `size` when it was written stripped.
    pub stripped_size: u64,
}

/// The executable's file, planned before the loaded image exists: its size, so that the file
/// can be reserved at it and relocation can fill the loaded part in place, and what follows
/// the loaded part.
pub struct FilePlan {
    tail: FileTail,
    size: u64,
    stripped_size: u64,
}

impl FilePlan {
    pub fn new(layout: &Layout<'_>, opts: &WriteOptions) -> Result<FilePlan> {
        // The same tail without the symbols: a stripped copy's size without writing one.
        let stripped_size = FileTail::new(layout, layout.file_size, None)?.end;
        let symbols = (!opts.strip).then(|| SymbolSizes::of(layout));
        let tail = FileTail::new(layout, layout.file_size, symbols)?;
        Ok(FilePlan {
            size: tail.end,
            tail,
            stripped_size,
        })
    }

    /// The whole file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes the headers, the symbol table and the tail around the relocated image and puts
    /// the file in place.
    pub fn write(self, layout: &Layout<'_>, mut output: OutputFile) -> Result<Written> {
        let bytes = output.bytes_mut();
        if let Some(placed) = &self.tail.symbols {
            let symtab = placed.symtab_offset as usize;
            let strtab = placed.strtab_offset as usize;
            let (symtab_bytes, rest) = bytes[symtab..].split_at_mut(strtab - symtab);
            write_symbols(
                layout,
                &placed.sizes,
                symtab_bytes,
                &mut rest[..placed.sizes.strtab],
            );
        }
        let at = self.tail.bytes_offset as usize;
        bytes[at..].copy_from_slice(&self.tail.bytes);
        let ehdr = file_header(
            layout,
            (EHDR_SIZE, layout.phnum as u16),
            self.tail.shoff,
            (self.tail.shnum, self.tail.shstrndx),
        );
        let mut headers = bytes_of(&ehdr).to_vec();
        for ph in program_headers(layout) {
            headers.extend_from_slice(bytes_of(&ph));
        }
        debug_assert_eq!(headers.len() as u64, layout.headers_size);
        bytes[..headers.len()].copy_from_slice(&headers);
        output.commit()?;
        Ok(Written {
            size: self.size,
            stripped_size: self.stripped_size,
        })
    }
}

/// An output file reserved at its final size and mapped, so that the phases write into it in
/// place; until [`OutputFile::commit`], it is a temporary file beside the destination, removed
/// if the link fails, so a failed link never leaves a partial file.
pub struct OutputFile {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    map: memmap2::MmapMut,
}

impl OutputFile {
    pub fn reserve(path: &Path, size: u64) -> Result<OutputFile> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = temp_file_beside(path).map_err(io)?;
        // A file grown by set_len reads as zeros: gaps between sections need no writing.
        tmp.as_file().set_len(size).map_err(io)?;
        // SAFETY: the file is this process's own temporary file, which nothing else maps or
        // truncates while the map lives.
        let map = unsafe { memmap2::MmapMut::map_mut(tmp.as_file()) }.map_err(io)?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            tmp,
            map,
        })
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Unmaps the file, makes it executable and readable by all, and renames it into place.
    fn commit(self) -> Result<()> {
        let OutputFile { path, tmp, map } = self;
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        drop(map);
        persist(tmp, &path, true).map_err(io)
    }
}

/// What follows the loaded image in the file: the symbol table when there is one, the
/// section names and the section headers. The symbol table is only planned here (its sizes
/// and place), and written straight into the output once the image is relocated: built here,
/// it would be held through relocation, at the link's peak of memory.
struct FileTail {
    symbols: Option<PlacedSymbols>,
    /// The section names and headers, and where in the file they start.
    bytes: Vec<u8>,
    bytes_offset: u64,
    /// The end of the file.
    end: u64,
    shoff: u64,
    shnum: u16,
    shstrndx: u16,
}

struct PlacedSymbols {
    sizes: SymbolSizes,
    symtab_offset: u64,
    strtab_offset: u64,
}

impl FileTail {
    /// The tail of a file whose first `loaded_size` bytes are the loaded image.
    fn new(
        layout: &Layout<'_>,
        loaded_size: u64,
        symbols: Option<SymbolSizes>,
    ) -> Result<FileTail> {
        let mut shstrtab = vec![0u8];
        let mut name_of = |name: &[u8]| {
            let at = shstrtab.len() as u32;
            shstrtab.extend_from_slice(name);
            shstrtab.push(0);
            at
        };
        let section_names: Vec<u32> = layout.sections.iter().map(|s| name_of(&s.name)).collect();
        let symtab_names = symbols
            .as_ref()
            .map(|_| (name_of(b".symtab"), name_of(b".strtab")));
        let shstrtab_name = name_of(b".shstrtab");

        // Only the symbol table is aligned: without one the names follow the loaded bytes
        // directly, as `strip` leaves them.
        let placed = symbols.map(|sizes| {
            let symtab_offset = loaded_size.next_multiple_of(8);
            PlacedSymbols {
                symtab_offset,
                strtab_offset: symtab_offset + sizes.symtab as u64,
                sizes,
            }
        });
        let symbol_headers = placed.as_ref().zip(symtab_names).map(|(placed, names)| {
            // After the null header, the sections and this one.
            let strtab_index = layout.sections.len() as u32 + 2;
            placed.sizes.headers(
                names,
                (placed.symtab_offset, placed.strtab_offset),
                strtab_index,
            )
        });
        let shstrtab_offset = placed
            .as_ref()
            .map_or(loaded_size, |p| p.strtab_offset + p.sizes.strtab as u64);
        let mut bytes = shstrtab.clone();
        let shoff = (shstrtab_offset + bytes.len() as u64).next_multiple_of(8);
        bytes.resize((shoff - shstrtab_offset) as usize, 0);

        let shnum = 1 + layout.sections.len() + if placed.is_some() { 3 } else { 1 };
        // Section indices from SHN_LORESERVE up are reserved; symbols could not name them.
        if shnum >= usize::from(elf::SHN_LORESERVE) {
            return Err(Error::TooManySections(shnum));
        }
        let mut shdrs: Vec<elf::SectionHeader64<LE>> = Vec::with_capacity(shnum);
        shdrs.push(section_header(0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        for (s, &name) in layout.sections.iter().zip(&section_names) {
            shdrs.push(section_header(
                name, s.sh_type, s.flags, s.addr, s.offset, s.size, 0, 0, s.align, 0,
            ));
        }
        shdrs.extend(symbol_headers.into_iter().flatten());
        let shstrndx = shdrs.len() as u16;
        shdrs.push(section_header(
            shstrtab_name,
            elf::SHT_STRTAB,
            0,
            0,
            shstrtab_offset,
            shstrtab.len() as u64,
            0,
            0,
            1,
            0,
        ));
        for h in &shdrs {
            bytes.extend_from_slice(bytes_of(h));
        }
        Ok(FileTail {
            symbols: placed,
            end: shstrtab_offset + bytes.len() as u64,
            bytes,
            bytes_offset: shstrtab_offset,
            shoff,
            shnum: shdrs.len() as u16,
            shstrndx,
        })
    }
}

/// Writes `<image>.debug` as `objcopy --only-keep-debug` would leave it: the image's
/// sections at their addresses but without their bytes (`SHT_NOBITS`, same indices, so the
/// symbol table's section numbers hold), the relocated debug sections, and the symbol table;
/// no program headers. gdb takes it as the symbol file and addr2line reads it; the image
/// itself is not changed by it. Returns the file's size.
/// The bytes of a note output section: its input notes at their places (notes have no
/// relocations to apply).
fn note_contents(layout: &Layout<'_>, s: &crate::layout::OutputSection) -> Option<Vec<u8>> {
    if s.sh_type != elf::SHT_NOTE {
        return None;
    }
    let mut note = vec![0u8; usize::try_from(s.size).ok()?];
    for chunk in &s.chunks {
        if let ChunkKind::Input(id) = chunk.kind {
            let data = layout.db.object(id.object).section(id.index).data;
            let at = usize::try_from(chunk.offset).ok()?;
            note.get_mut(at..at + data.len())?.copy_from_slice(data);
        }
    }
    Some(note)
}

pub fn write_debug_file(
    layout: &Layout<'_>,
    debug: &crate::debug::DebugSections,
    path: &Path,
) -> Result<u64> {
    let symbols = SymbolSizes::of(layout);
    let (mut symtab, mut strtab) = (vec![0u8; symbols.symtab], vec![0u8; symbols.strtab]);
    write_symbols(layout, &symbols, &mut symtab, &mut strtab);
    let mut shstrtab = vec![0u8];
    let mut name_of = |name: &[u8]| {
        let at = shstrtab.len() as u32;
        shstrtab.extend_from_slice(name);
        shstrtab.push(0);
        at
    };
    let mut bytes = vec![0u8; EHDR_SIZE as usize];
    let mut shdrs = vec![section_header(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)];
    for s in &layout.sections {
        // Notes keep their contents, as `objcopy --only-keep-debug` keeps them: the build id
        // note is what ties the debug file to its image for gdb and debuginfod.
        let (sh_type, offset) = match note_contents(layout, s) {
            Some(note) => {
                bytes.resize(bytes.len().next_multiple_of(s.align.max(1) as usize), 0);
                let offset = bytes.len() as u64;
                bytes.extend_from_slice(&note);
                (elf::SHT_NOTE, offset)
            }
            None => (elf::SHT_NOBITS, 0),
        };
        shdrs.push(section_header(
            name_of(&s.name),
            sh_type,
            s.flags,
            s.addr,
            offset,
            s.size,
            0,
            0,
            s.align,
            0,
        ));
    }
    for section in &debug.sections {
        let offset = bytes.len() as u64;
        bytes.extend_from_slice(&section.data);
        shdrs.push(section_header(
            name_of(&section.name),
            elf::SHT_PROGBITS,
            0,
            0,
            offset,
            section.data.len() as u64,
            0,
            0,
            1,
            0,
        ));
    }
    let symtab_name = name_of(b".symtab");
    let strtab_name = name_of(b".strtab");
    let shstrtab_name = name_of(b".shstrtab");
    bytes.resize(bytes.len().next_multiple_of(8), 0);
    let symtab_offset = bytes.len() as u64;
    bytes.extend_from_slice(&symtab);
    let strtab_offset = bytes.len() as u64;
    bytes.extend_from_slice(&strtab);
    let strtab_index = shdrs.len() as u32 + 1;
    shdrs.extend(symbols.headers(
        (symtab_name, strtab_name),
        (symtab_offset, strtab_offset),
        strtab_index,
    ));
    let shstrtab_offset = bytes.len() as u64;
    bytes.extend_from_slice(&shstrtab);
    let shstrndx = shdrs.len();
    shdrs.push(section_header(
        shstrtab_name,
        elf::SHT_STRTAB,
        0,
        0,
        shstrtab_offset,
        shstrtab.len() as u64,
        0,
        0,
        1,
        0,
    ));
    if shdrs.len() >= usize::from(elf::SHN_LORESERVE) {
        return Err(Error::TooManySections(shdrs.len()));
    }
    bytes.resize(bytes.len().next_multiple_of(8), 0);
    let shoff = bytes.len() as u64;
    for h in &shdrs {
        bytes.extend_from_slice(bytes_of(h));
    }
    let ehdr = file_header(layout, (0, 0), shoff, (shdrs.len() as u16, shstrndx as u16));
    bytes[..EHDR_SIZE as usize].copy_from_slice(bytes_of(&ehdr));
    replace_file(path, &bytes, false).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(bytes.len() as u64)
}

/// The ELF header of an executable of `layout`'s machine and entry: `phoff_phnum` program
/// headers at that offset (0, 0 for none), section headers at `shoff`, `shnum_shstrndx`.
fn file_header(
    layout: &Layout<'_>,
    (phoff, phnum): (u64, u16),
    shoff: u64,
    (shnum, shstrndx): (u16, u16),
) -> elf::FileHeader64<LE> {
    elf::FileHeader64::<LE> {
        e_ident: elf::Ident {
            magic: elf::ELFMAG,
            class: elf::ELFCLASS64,
            data: elf::ELFDATA2LSB,
            version: elf::EV_CURRENT,
            os_abi: elf::ELFOSABI_NONE,
            abi_version: 0,
            padding: [0; 7],
        },
        e_type: U16::new(LE, elf::ET_EXEC),
        e_machine: U16::new(LE, layout.arch.e_machine()),
        e_version: U32::new(LE, u32::from(elf::EV_CURRENT)),
        e_entry: U64::new(LE, layout.entry),
        e_phoff: U64::new(LE, phoff),
        e_shoff: U64::new(LE, shoff),
        e_flags: U32::new(LE, 0),
        e_ehsize: U16::new(LE, EHDR_SIZE as u16),
        e_phentsize: U16::new(LE, PHDR_SIZE as u16),
        e_phnum: U16::new(LE, phnum),
        e_shentsize: U16::new(LE, size_of::<elf::SectionHeader64<LE>>() as u16),
        e_shnum: U16::new(LE, shnum),
        e_shstrndx: U16::new(LE, shstrndx),
    }
}

fn program_headers(layout: &Layout<'_>) -> Vec<elf::ProgramHeader64<LE>> {
    let page = layout.arch.page_size();
    let ph = |p_type, flags, offset, addr, filesz, memsz, align| elf::ProgramHeader64::<LE> {
        p_type: U32::new(LE, p_type),
        p_flags: U32::new(LE, flags),
        p_offset: U64::new(LE, offset),
        p_vaddr: U64::new(LE, addr),
        p_paddr: U64::new(LE, addr),
        p_filesz: U64::new(LE, filesz),
        p_memsz: U64::new(LE, memsz),
        p_align: U64::new(LE, align),
    };
    let mut out: Vec<_> = layout
        .segments
        .iter()
        .map(|s| {
            ph(
                elf::PT_LOAD,
                s.flags,
                s.offset,
                s.addr,
                s.file_size,
                s.mem_size,
                page,
            )
        })
        .collect();
    if let Some(tls) = &layout.tls {
        let offset = layout
            .sections
            .iter()
            .find(|s| s.flags & u64::from(elf::SHF_TLS) != 0)
            .map_or(0, |s| s.offset);
        out.push(ph(
            elf::PT_TLS,
            elf::PF_R,
            offset,
            tls.addr,
            tls.file_size,
            tls.mem_size,
            tls.align,
        ));
    }
    for note in layout
        .sections
        .iter()
        .filter(|s| s.rank == Rank::Note && s.size > 0)
    {
        out.push(ph(
            elf::PT_NOTE,
            elf::PF_R,
            note.offset,
            note.addr,
            note.size,
            note.size,
            note.align,
        ));
    }
    if let Some(hdr) = layout.sections.iter().find(|s| s.rank == Rank::EhFrameHdr) {
        out.push(ph(
            elf::PT_GNU_EH_FRAME,
            elf::PF_R,
            hdr.offset,
            hdr.addr,
            hdr.size,
            hdr.size,
            hdr.align,
        ));
    }
    out.push(ph(elf::PT_GNU_STACK, elf::PF_R | elf::PF_W, 0, 0, 0, 0, 16));
    out
}

#[allow(clippy::too_many_arguments)]
fn section_header(
    name: u32,
    sh_type: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
) -> elf::SectionHeader64<LE> {
    elf::SectionHeader64 {
        sh_name: U32::new(LE, name),
        sh_type: U32::new(LE, sh_type),
        sh_flags: U64::new(LE, flags),
        sh_addr: U64::new(LE, addr),
        sh_offset: U64::new(LE, offset),
        sh_size: U64::new(LE, size),
        sh_link: U32::new(LE, link),
        sh_info: U32::new(LE, info),
        sh_addralign: U64::new(LE, align),
        sh_entsize: U64::new(LE, entsize),
    }
}

/// The sizes of the symbol table and its strings: what the file reserves for them, and
/// each run's share, so that the runs are written in parallel.
#[derive(Debug, Clone)]
struct SymbolSizes {
    symtab: usize,
    strtab: usize,
    /// The index of the first global symbol; locals come first.
    first_global: u32,
    runs: Vec<Run>,
    /// Symbols and name bytes of each run.
    run_sizes: Vec<(usize, usize)>,
}

impl SymbolSizes {
    fn of(layout: &Layout<'_>) -> SymbolSizes {
        let runs = runs(layout);
        let run_sizes: Vec<(usize, usize)> = runs
            .par_iter()
            .map(|run| {
                let (mut count, mut bytes) = (0, 0);
                run.each(layout, |name, _| {
                    count += 1;
                    bytes += name.len() + 1;
                });
                (count, bytes)
            })
            .collect();
        let locals: usize = runs
            .iter()
            .zip(&run_sizes)
            .filter(|(run, _)| matches!(run, Run::Locals { .. }))
            .map(|(_, &(count, _))| count)
            .sum();
        // The null symbol and the empty name come first.
        let count = 1 + run_sizes.iter().map(|&(count, _)| count).sum::<usize>();
        SymbolSizes {
            symtab: count * SYM_SIZE,
            strtab: 1 + run_sizes.iter().map(|&(_, bytes)| bytes).sum::<usize>(),
            first_global: (1 + locals) as u32,
            runs,
            run_sizes,
        }
    }

    fn headers(
        &self,
        (symtab_name, strtab_name): (u32, u32),
        (symtab_offset, strtab_offset): (u64, u64),
        strtab_index: u32,
    ) -> [elf::SectionHeader64<LE>; 2] {
        [
            section_header(
                symtab_name,
                elf::SHT_SYMTAB,
                0,
                0,
                symtab_offset,
                self.symtab as u64,
                strtab_index,
                self.first_global,
                8,
                24,
            ),
            section_header(
                strtab_name,
                elf::SHT_STRTAB,
                0,
                0,
                strtab_offset,
                self.strtab as u64,
                0,
                0,
                1,
                0,
            ),
        ]
    }
}

const SYM_SIZE: usize = size_of::<elf::Sym64<LE>>();

/// Symbols per run: enough to amortise a task; a large object's symbols are several runs.
const RUN: usize = 16 * 1024;

/// A stretch of the symbol table: some locals of one object, or some globals. Locals come
/// first, object by object, then the globals.
#[derive(Debug, Clone)]
enum Run {
    Locals {
        object: ObjectId,
        symbols: Range<usize>,
    },
    Globals(Range<usize>),
}

fn runs(layout: &Layout<'_>) -> Vec<Run> {
    let db = layout.db;
    let split = |range: Range<usize>| {
        range
            .clone()
            .step_by(RUN)
            .map(move |start| start..(start + RUN).min(range.end))
    };
    let mut runs: Vec<Run> = db
        .live
        .iter()
        .flat_map(|&object| {
            // Past the null symbol, up to the first global.
            let o = db.object(object);
            split(1.min(o.first_global)..o.first_global)
                .map(move |symbols| Run::Locals { object, symbols })
        })
        .collect();
    runs.extend(split(0..db.globals.len()).map(Run::Globals));
    runs
}

/// Where a symbol's section index comes from.
#[derive(Clone, Copy)]
enum SymbolSection {
    /// The output section that holds this input section, or else the one at the value.
    Input(SectionId),
    /// The output section at the value.
    AtValue,
    Absolute,
}

/// One entry of the symbol table but its name.
#[derive(Clone, Copy)]
struct SymbolEntry {
    info: u8,
    section: SymbolSection,
    value: u64,
    size: u64,
}

impl Run {
    /// Calls `emit` for each symbol of the run that the table holds, in order: locals of kept
    /// sections, defined globals.
    fn each(&self, layout: &Layout<'_>, mut emit: impl FnMut(&[u8], SymbolEntry)) {
        let db = layout.db;
        match self {
            Run::Locals { object, symbols } => {
                let o = db.object(*object);
                for (index, s) in o.symbols.iter_ids().skip(symbols.start).take(symbols.len()) {
                    if s.is_section() || s.st_type == elf::STT_FILE || s.name.is_empty() {
                        continue;
                    }
                    let SymbolPlace::Section(sec) = s.place() else {
                        continue;
                    };
                    let Some(value) = layout.symbol_address(*object, index) else {
                        continue;
                    };
                    let id = SectionId {
                        object: *object,
                        index: sec,
                    };
                    emit(
                        s.name,
                        SymbolEntry {
                            info: (elf::STB_LOCAL << 4) | s.st_type,
                            section: SymbolSection::Input(id),
                            value,
                            size: s.size,
                        },
                    );
                }
            }
            Run::Globals(range) => {
                let globals = db.globals.as_slice()[range.clone()].iter();
                for (g, &value) in globals.zip(&layout.global_addr.as_slice()[range.clone()]) {
                    let (info, section, size) = match g.def {
                        Definition::Undefined => continue,
                        Definition::Defined { object, index } => {
                            let s = &db.object(object).symbols[index];
                            let section = match s.place() {
                                SymbolPlace::Section(sec) => {
                                    let id = SectionId { object, index: sec };
                                    if layout.section_address(id).is_none() {
                                        continue;
                                    }
                                    SymbolSection::Input(id)
                                }
                                _ => SymbolSection::Absolute,
                            };
                            ((s.bind << 4) | s.st_type, section, s.size)
                        }
                        Definition::Common { object, index } => (
                            (elf::STB_GLOBAL << 4) | elf::STT_OBJECT,
                            SymbolSection::AtValue,
                            db.object(object).symbols[index].size,
                        ),
                        Definition::Linker => (
                            (elf::STB_GLOBAL << 4) | elf::STT_NOTYPE,
                            SymbolSection::AtValue,
                            0,
                        ),
                    };
                    emit(
                        g.name,
                        SymbolEntry {
                            info,
                            section,
                            value,
                            size,
                        },
                    );
                }
            }
        }
    }
}

/// The output section index of each input section placed as a chunk.
fn output_indices(layout: &Layout<'_>) -> IdVec<InputSectionId, Option<NonZeroU16>> {
    let sections = layout.db.input_sections();
    let mut of = sections.table(None);
    for (i, s) in layout.sections.iter().enumerate() {
        // After the null section; layout refuses more sections than a u16 counts.
        let index = NonZeroU16::new((i + 1) as u16);
        for c in &s.chunks {
            if let ChunkKind::Input(id) | ChunkKind::EhFrame(id) = c.kind {
                of[sections.id(id)] = index;
            }
        }
    }
    of
}

/// Writes the symbol table and its strings into `symtab` and `strtab`, which hold exactly
/// what `sizes` counted, run by run in parallel.
fn write_symbols(layout: &Layout<'_>, sizes: &SymbolSizes, symtab: &mut [u8], strtab: &mut [u8]) {
    let output_index = output_indices(layout);
    let input_sections = layout.db.input_sections();
    let section_of_addr = |addr: u64| {
        layout
            .sections
            .iter()
            .position(|s| s.addr <= addr && addr < s.addr + s.size.max(1))
            .map_or(elf::SHN_ABS, |i| (i + 1) as u16)
    };
    let (null, mut symtab) = symtab.split_at_mut(SYM_SIZE);
    null.copy_from_slice(bytes_of(&sym(0, 0, 0, 0, 0, 0)));
    let (empty, mut strtab) = strtab.split_at_mut(1);
    empty[0] = 0;
    // Each run's slices of the two tables, and where its names start in the strings.
    let mut name_at = 1usize;
    let mut jobs = Vec::with_capacity(sizes.runs.len());
    for (run, &(count, bytes)) in sizes.runs.iter().zip(&sizes.run_sizes) {
        let (run_symtab, rest) = std::mem::take(&mut symtab).split_at_mut(count * SYM_SIZE);
        symtab = rest;
        let (run_strtab, rest) = std::mem::take(&mut strtab).split_at_mut(bytes);
        strtab = rest;
        jobs.push((run, run_symtab, run_strtab, name_at));
        name_at += bytes;
    }
    jobs.into_par_iter()
        .for_each(|(run, run_symtab, run_strtab, name_at)| {
            let mut slots = run_symtab.chunks_exact_mut(SYM_SIZE);
            let mut at = 0usize;
            run.each(layout, |name, e| {
                let shndx = match e.section {
                    SymbolSection::Input(id) => input_sections
                        .get(id)
                        .and_then(|id| output_index[id])
                        .map_or_else(|| section_of_addr(e.value), NonZeroU16::get),
                    SymbolSection::AtValue => section_of_addr(e.value),
                    SymbolSection::Absolute => elf::SHN_ABS,
                };
                let entry = sym((name_at + at) as u32, e.info, 0, shndx, e.value, e.size);
                slots
                    .next()
                    .expect("a run's slots as SymbolSizes counted them")
                    .copy_from_slice(bytes_of(&entry));
                run_strtab[at..at + name.len()].copy_from_slice(name);
                run_strtab[at + name.len()] = 0;
                at += name.len() + 1;
            });
        });
}

fn sym(name: u32, info: u8, other: u8, shndx: u16, value: u64, size: u64) -> elf::Sym64<LE> {
    elf::Sym64 {
        st_name: U32::new(LE, name),
        st_info: info,
        st_other: other,
        st_shndx: U16::new(LE, shndx),
        st_value: U64::new(LE, value),
        st_size: U64::new(LE, size),
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so that a
/// failure leaves no partial file and a reader never sees one. The file is readable by all,
/// mode 0755 when `executable` and 0644 otherwise: the temporary file starts as 0600, which
/// would keep a build report from anyone but its writer while the image beside it is public.
pub fn replace_file(path: &Path, bytes: &[u8], executable: bool) -> std::io::Result<()> {
    let mut tmp = temp_file_beside(path)?;
    tmp.write_all(bytes)?;
    persist(tmp, path, executable)
}

/// A temporary file in `path`'s directory, so that renaming it over `path` is atomic.
fn temp_file_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::NamedTempFile::new_in(dir)
}

/// Gives a finished temporary file its mode (0755 when `executable`, else 0644) and renames it
/// to `path`.
fn persist(tmp: tempfile::NamedTempFile, path: &Path, executable: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if executable { 0o755 } else { 0o644 };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn replaced_files_are_readable_by_all() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |name: &str, executable: bool| {
            let path = dir.path().join(name);
            replace_file(&path, b"bytes", executable).unwrap();
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode("image.elf", true), 0o755);
        assert_eq!(mode("image.json", false), 0o644);
    }
}
