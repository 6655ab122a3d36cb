//! Layout and relocation of small objects built in memory: merged strings, TLS placement,
//! commons, linker-defined symbols, the synthesized GOT and segment invariants.

use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionFlags, SectionKind,
    SymbolFlags, SymbolKind, SymbolScope, elf,
};
use uniklink_analyzer::graph::{GraphOptions, RootRules, SectionGraph};
use uniklink_analyzer::input::InputId;
use uniklink_analyzer::object::{ObjectFile, ObjectId, parse};
use uniklink_analyzer::resolve::SymbolDb;
use uniklink_linker::arch::X86_64;
use uniklink_linker::layout::{Layout, LayoutOptions, Rank};
use uniklink_linker::relocate::relocate;

struct Builder(Object<'static>);

impl Builder {
    fn new() -> Self {
        Self(Object::new(
            BinaryFormat::Elf,
            Architecture::X86_64,
            Endianness::Little,
        ))
    }

    fn section(&mut self, name: &str, kind: SectionKind, data: &[u8], align: u64) -> SectionId {
        let id = self
            .0
            .add_section(Vec::new(), name.as_bytes().to_vec(), kind);
        if matches!(
            kind,
            SectionKind::UninitializedData | SectionKind::UninitializedTls
        ) {
            self.0.append_section_bss(id, data.len() as u64, align);
        } else {
            self.0.append_section_data(id, data, align);
        }
        id
    }

    fn strings(&mut self, name: &str, data: &[u8]) -> SectionId {
        let id = self.section(name, SectionKind::ReadOnlyString, data, 1);
        self.0.section_mut(id).flags = SectionFlags::Elf {
            sh_flags: u64::from(elf::SHF_ALLOC | elf::SHF_MERGE | elf::SHF_STRINGS),
        };
        id
    }

    fn symbol(&mut self, name: &str, section: SymbolSection, value: u64, size: u64) -> SymbolId {
        let kind = match section {
            SymbolSection::Common => SymbolKind::Data,
            SymbolSection::Undefined => SymbolKind::Unknown,
            _ => SymbolKind::Text,
        };
        self.0.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind,
            scope: SymbolScope::Linkage,
            weak: false,
            section,
            flags: SymbolFlags::None,
        })
    }

    fn define(&mut self, name: &str, section: SectionId, value: u64) -> SymbolId {
        self.symbol(name, SymbolSection::Section(section), value, 0)
    }

    fn tls(&mut self, name: &str, section: SectionId, value: u64) -> SymbolId {
        let id = self.define(name, section, value);
        self.0.symbol_mut(id).kind = SymbolKind::Tls;
        id
    }

    fn reloc(
        &mut self,
        section: SectionId,
        offset: u64,
        symbol: SymbolId,
        r_type: u32,
        addend: i64,
    ) {
        self.0
            .add_relocation(
                section,
                Relocation {
                    offset,
                    symbol,
                    addend,
                    flags: RelocationFlags::Elf { r_type },
                },
            )
            .unwrap();
    }

    fn bytes(self) -> Vec<u8> {
        self.0.write().unwrap()
    }
}

fn parse_all<'d>(inputs: &'d [(&str, Vec<u8>)]) -> Vec<ObjectFile<'d>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, (name, data))| {
            parse(
                ObjectId(i as u32),
                InputId(i as u32),
                (*name).to_owned(),
                false,
                data,
            )
            .unwrap()
        })
        .collect()
}

/// Links and returns (layout, image bytes) to a closure, since both borrow the inputs.
fn with_link(
    inputs: &[(&str, Vec<u8>)],
    base: Option<u64>,
    check: impl FnOnce(&Layout<'_>, &[u8]),
) {
    with_link_tables(inputs, base, false, check)
}

/// [`with_link`], with layout reserving page tables when `page_tables` and an input asks.
fn with_link_tables(
    inputs: &[(&str, Vec<u8>)],
    base: Option<u64>,
    page_tables: bool,
    check: impl FnOnce(&Layout<'_>, &[u8]),
) {
    let objects = parse_all(inputs);
    let db = SymbolDb::resolve(&objects, &[b"_start"]).unwrap();
    let graph = SectionGraph::build(
        &db,
        &GraphOptions {
            entry: "_start",
            keep: &[],
            rules: RootRules::CONVENTIONAL,
            extra_roots: &[],
            gc: true,
        },
    )
    .unwrap();
    let layout = Layout::build(
        &graph,
        &X86_64,
        &LayoutOptions {
            entry: "_start",
            base,
            randomize: None,
            eh_frame_hdr: false,
            page_tables,
        },
    )
    .unwrap();
    let mut image = vec![0; layout.file_size as usize];
    relocate(&layout, &mut image).unwrap();
    check(&layout, &image);
}

/// Writes the relocated `image` to `out` the way the pipeline does: the file reserved at its
/// planned size, the image copied into it, headers and tail written around it.
fn write(
    layout: &Layout<'_>,
    image: &[u8],
    out: &std::path::Path,
    opts: &uniklink_linker::write::WriteOptions,
) -> uniklink_linker::write::Written {
    use uniklink_linker::write::{FilePlan, OutputFile};
    let file = FilePlan::new(layout, opts).unwrap();
    let mut output = OutputFile::reserve(out, file.size()).unwrap();
    output.bytes_mut()[..image.len()].copy_from_slice(image);
    file.write(layout, output).unwrap()
}

fn symbol(layout: &Layout<'_>, name: &str) -> u64 {
    let id = layout.db.lookup(name.as_bytes()).unwrap();
    layout.global_addr[id]
}

fn read_u64(layout: &Layout<'_>, image: &[u8], addr: u64) -> u64 {
    let s = layout
        .sections
        .iter()
        .find(|s| !s.is_nobits() && s.addr <= addr && addr + 8 <= s.addr + s.size)
        .expect("address in a file-backed section");
    let at = (s.offset + addr - s.addr) as usize;
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

/// Bytes of `len` at `addr`.
fn bytes_at<'i>(layout: &Layout<'_>, image: &'i [u8], addr: u64, len: usize) -> &'i [u8] {
    let s = layout
        .sections
        .iter()
        .find(|s| !s.is_nobits() && s.addr <= addr && addr < s.addr + s.size)
        .unwrap();
    let at = (s.offset + addr - s.addr) as usize;
    &image[at..at + len]
}

#[test]
fn merged_strings_are_deduplicated_and_references_follow_them() {
    let mut a = Builder::new();
    let strings = a.strings(".rodata.str1.1", b"hello\0world\0");
    let text = a.section(".text", SectionKind::Text, &[0; 16], 16);
    a.define("_start", text, 0);
    let sec = a.0.section_symbol(strings);
    // `world` through the section symbol plus addend, as assemblers emit for R_X86_64_64.
    a.reloc(text, 0, sec, elf::R_X86_64_64, 6);
    let mut b = Builder::new();
    let strings_b = b.strings(".rodata.str1.1", b"world\0bye\0");
    let data = b.section(".data", SectionKind::Data, &[0; 16], 8);
    let sec_b = b.0.section_symbol(strings_b);
    b.reloc(data, 0, sec_b, elf::R_X86_64_64, 0);
    b.reloc(data, 8, sec_b, elf::R_X86_64_64, 6);
    let table = b.define("table", data, 0);
    let text_b = b.section(".text.b", SectionKind::Text, &[0; 8], 1);
    b.reloc(text_b, 0, table, elf::R_X86_64_64, 0);
    b.define("use_table", text_b, 0);
    let use_table = a.symbol("use_table", SymbolSection::Undefined, 0, 0);
    a.reloc(text, 8, use_table, elf::R_X86_64_64, 0);

    with_link(
        &[("a.o", a.bytes()), ("b.o", b.bytes())],
        None,
        |layout, image| {
            assert_eq!(layout.strings.len(), 1);
            assert_eq!(layout.strings[0].data, b"hello\0world\0bye\0");
            let rodata = layout
                .sections
                .iter()
                .find(|s| s.name == b".rodata")
                .unwrap();
            let text = symbol(layout, "_start");
            let world = read_u64(layout, image, text);
            assert_eq!(bytes_at(layout, image, world, 6), b"world\0");
            assert_eq!(world, rodata.addr + 6);
            let table = symbol(layout, "table");
            assert_eq!(read_u64(layout, image, table), world);
            let bye = read_u64(layout, image, table + 8);
            assert_eq!(bytes_at(layout, image, bye, 4), b"bye\0");
        },
    );
}

#[test]
fn tls_commons_linker_symbols_and_segments() {
    let mut o = Builder::new();
    let text = o.section(".text", SectionKind::Text, &[0; 32], 16);
    o.define("_start", text, 0);
    let tdata = o.section(".tdata", SectionKind::Tls, &[1, 2, 3, 4, 5], 4);
    let tbss = o.section(".tbss", SectionKind::UninitializedTls, &[0; 24], 16);
    let x = o.tls("x", tdata, 4);
    let y = o.tls("y", tbss, 8);
    o.reloc(text, 0, x, elf::R_X86_64_TPOFF32, 0);
    o.reloc(text, 4, y, elf::R_X86_64_TPOFF32, 0);
    let data = o.section(".data", SectionKind::Data, &[0; 8], 8);
    let common = o.symbol("common_buf", SymbolSection::Common, 32, 100);
    o.reloc(text, 8, common, elf::R_X86_64_64, 0);
    let end = o.symbol("_end", SymbolSection::Undefined, 0, 0);
    o.reloc(text, 16, end, elf::R_X86_64_64, 0);
    let bss_start = o.symbol("__bss_start", SymbolSection::Undefined, 0, 0);
    o.reloc(data, 0, bss_start, elf::R_X86_64_64, 0);
    let ds = o.define("data_start", data, 0);
    o.reloc(text, 24, ds, elf::R_X86_64_64, 0);

    with_link(&[("tls.o", o.bytes())], None, |layout, image| {
        let tls = layout.tls.expect("PT_TLS");
        assert_eq!(tls.align, 16);
        assert_eq!(tls.addr % 16, 0);
        assert_eq!(tls.file_size, 5);
        // .tdata 5 bytes, .tbss at 16 for 24 bytes.
        assert_eq!(tls.mem_size, 40);
        let start = symbol(layout, "_start");
        let tp = tls.addr + 48;
        let off = |at: u64| i32::from_le_bytes(bytes_at(layout, image, at, 4).try_into().unwrap());
        assert_eq!(i64::from(off(start)), (tls.addr + 4) as i64 - tp as i64);
        assert_eq!(
            i64::from(off(start + 4)),
            (tls.addr + 24) as i64 - tp as i64
        );

        let tbss = layout
            .sections
            .iter()
            .find(|s| s.rank == Rank::Tbss)
            .unwrap();
        let data = layout
            .sections
            .iter()
            .find(|s| s.rank == Rank::Data)
            .unwrap();
        assert!(
            data.addr < tbss.addr + tbss.size,
            ".tbss takes no address space"
        );
        for s in layout
            .sections
            .iter()
            .filter(|s| !s.is_nobits() && s.size > 0)
        {
            assert_eq!(s.addr % 0x1000, s.offset % 0x1000, "{}", s.name_str());
            assert_eq!(s.addr % s.align, 0, "{}", s.name_str());
        }

        let bss = layout
            .sections
            .iter()
            .find(|s| s.rank == Rank::Bss)
            .unwrap();
        let common = read_u64(layout, image, start + 8);
        assert!(common >= bss.addr && common + 100 <= bss.addr + bss.size);
        assert_eq!(common % 32, 0);
        assert_eq!(read_u64(layout, image, start + 16), bss.addr + bss.size);
        assert_eq!(read_u64(layout, image, data.addr), bss.addr);
        assert_eq!(read_u64(layout, image, start + 24), data.addr);

        let mut previous_end = 0;
        for seg in &layout.segments {
            assert!(seg.addr >= previous_end, "segments overlap");
            assert_eq!(seg.addr % 0x1000, seg.offset % 0x1000);
            assert!(seg.flags & elf::PF_W == 0 || seg.flags & elf::PF_X == 0);
            previous_end = seg.addr + seg.mem_size;
        }
        assert_eq!(layout.segments[0].offset, 0);
        assert_eq!(layout.entry, start);
    });
}

#[test]
fn gotpcrel_gets_a_slot_and_relaxable_loads_do_not() {
    let mut o = Builder::new();
    // mov x@GOTPCREL(%rip),%rax ; cmp y@GOTPCREL(%rip),%rax
    let code = [0x48, 0x8b, 0x05, 0, 0, 0, 0, 0x48, 0x3b, 0x05, 0, 0, 0, 0];
    let text = o.section(".text", SectionKind::Text, &code, 16);
    o.define("_start", text, 0);
    let data = o.section(".data", SectionKind::Data, &[0; 16], 8);
    let x = o.define("x", data, 0);
    let y = o.define("y", data, 8);
    o.reloc(text, 3, x, elf::R_X86_64_REX_GOTPCRELX, -4);
    o.reloc(text, 10, y, elf::R_X86_64_REX_GOTPCRELX, -4);

    with_link(&[("got.o", o.bytes())], Some(0x20_0000), |layout, image| {
        assert_eq!(layout.got.entries.len(), 1, "only the cmp needs a slot");
        let start = symbol(layout, "_start");
        assert!(start >= 0x20_0000);
        let code = bytes_at(layout, image, start, 14);
        assert_eq!(code[1], 0x8d, "mov relaxed to lea");
        let disp = i32::from_le_bytes(code[3..7].try_into().unwrap());
        assert_eq!(
            start as i64 + 7 + i64::from(disp),
            symbol(layout, "x") as i64
        );
        let disp = i32::from_le_bytes(code[10..14].try_into().unwrap());
        let slot = (start as i64 + 14 + i64::from(disp)) as u64;
        assert_eq!(slot, layout.got_addr);
        assert_eq!(read_u64(layout, image, slot), symbol(layout, "y"));
    });
}

#[test]
fn written_image_has_one_note_segment_per_note_section() {
    use object::read::elf::{FileHeader, ProgramHeader};
    use uniklink_linker::write::WriteOptions;

    let mut o = Builder::new();
    let text = o.section(".text", SectionKind::Text, &[0xc3], 16);
    o.define("_start", text, 0);
    for (name, align) in [(".note.a", 4), (".note.b", 8)] {
        let id = o.section(name, SectionKind::Note, &[0; 24], align);
        o.0.section_mut(id).flags = SectionFlags::Elf {
            sh_flags: u64::from(elf::SHF_ALLOC),
        };
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("image");
    with_link(&[("notes.o", o.bytes())], None, |layout, image| {
        write(layout, image, &out, &WriteOptions { strip: false });
    });
    let data = std::fs::read(&out).unwrap();
    let header = elf::FileHeader64::<object::LittleEndian>::parse(&data[..]).unwrap();
    let endian = object::LittleEndian;
    let phdrs = header.program_headers(endian, &data[..]).unwrap();
    let notes: Vec<(u64, u64)> = phdrs
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_NOTE)
        .map(|p| (p.p_align(endian), p.p_filesz(endian)))
        .collect();
    assert_eq!(notes, [(4, 24), (8, 24)]);
    let first = &phdrs[0];
    assert_eq!(first.p_type(endian), elf::PT_LOAD);
    assert_eq!(first.p_offset(endian), 0);
    assert!(phdrs.iter().any(|p| p.p_type(endian) == elf::PT_GNU_STACK));
    let entry = header.e_entry(endian);
    let exec = phdrs
        .iter()
        .find(|p| {
            p.p_type(endian) == elf::PT_LOAD
                && (p.p_vaddr(endian)..p.p_vaddr(endian) + p.p_memsz(endian)).contains(&entry)
        })
        .unwrap();
    assert_ne!(exec.p_flags(endian) & elf::PF_X, 0);
}

/// The stripped size `write` reports is the size of the image it writes with `strip`, which
/// has neither the symbol table nor its section names, and is what GNU strip leaves.
#[test]
fn the_stripped_size_is_that_of_the_stripped_image() {
    use object::read::elf::{FileHeader, SectionHeader};
    use uniklink_linker::write::WriteOptions;

    let mut o = Builder::new();
    let text = o.section(".text", SectionKind::Text, &[0x90, 0xc3], 16);
    o.define("_start", text, 0);
    o.define("helper", text, 1);
    let data = o.section(".data", SectionKind::Data, &[7; 24], 8);
    o.define("table", data, 0);
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let stripped = dir.path().join("stripped");
    with_link(&[("a.o", o.bytes())], None, |layout, image| {
        let written = write(layout, image, &full, &WriteOptions { strip: false });
        let bare = write(layout, image, &stripped, &WriteOptions { strip: true });
        let size = |path: &std::path::Path| std::fs::metadata(path).unwrap().len();
        assert_eq!(written.size, size(&full));
        assert!(written.stripped_size < written.size);
        assert_eq!(bare.size, size(&stripped));
        assert_eq!(bare.stripped_size, bare.size);
        assert_eq!(written.stripped_size, bare.size);
    });
    let bytes = std::fs::read(&stripped).unwrap();
    let endian = object::LittleEndian;
    let header = elf::FileHeader64::<object::LittleEndian>::parse(&bytes[..]).unwrap();
    let sections = header.sections(endian, &bytes[..]).unwrap();
    assert!(
        sections
            .symbols(endian, &bytes[..], elf::SHT_SYMTAB)
            .unwrap()
            .is_empty()
    );
    let shstrtab = sections
        .section(object::SectionIndex(usize::from(header.e_shstrndx(endian))))
        .unwrap()
        .data(endian, &bytes[..])
        .unwrap();
    assert!(!shstrtab.windows(7).any(|w| w == b".symtab"));

    // GNU strip's output is the yardstick the README's sizes use; CI installs binutils.
    let gnu = dir.path().join("gnu-stripped");
    match std::process::Command::new("strip")
        .arg("-o")
        .arg(&gnu)
        .arg(&full)
        .status()
    {
        Ok(status) => {
            assert!(status.success());
            assert_eq!(
                std::fs::metadata(&gnu).unwrap().len(),
                bytes.len() as u64,
                "GNU strip leaves a different size"
            );
        }
        Err(e) => eprintln!("not compared with GNU strip, which cannot run: {e}"),
    }
}

/// `object`'s writer has no way to set `sh_entsize`; patch it in the written bytes.
fn set_entsize(mut bytes: Vec<u8>, name: &[u8], entsize: u64) -> Vec<u8> {
    use object::read::elf::FileHeader;
    let endian = object::LittleEndian;
    let header = elf::FileHeader64::<object::LittleEndian>::parse(&bytes[..]).unwrap();
    let sections = header.sections(endian, &bytes[..]).unwrap();
    let index = sections
        .iter()
        .position(|s| sections.section_name(endian, s).unwrap() == name)
        .unwrap();
    let at = header.e_shoff(endian) as usize + index * 64 + 56;
    bytes[at..at + 8].copy_from_slice(&entsize.to_le_bytes());
    bytes
}

fn constants(b: &mut Builder, data: &[u8]) -> SectionId {
    let id = b.section(".rodata.cst8", SectionKind::ReadOnlyData, data, 8);
    b.0.section_mut(id).flags = SectionFlags::Elf {
        sh_flags: u64::from(elf::SHF_ALLOC | elf::SHF_MERGE),
    };
    id
}

#[test]
fn suffixes_share_storage_and_constants_are_deduplicated() {
    let mut a = Builder::new();
    let text = a.section(".text", SectionKind::Text, &[0; 24], 16);
    a.define("_start", text, 0);
    let hello = a.strings(".rodata.str1.1", b"hello\0");
    let hello = a.0.section_symbol(hello);
    let consts = constants(&mut a, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let consts = a.0.section_symbol(consts);
    let table = a.symbol("table", SymbolSection::Undefined, 0, 0);
    a.reloc(text, 0, consts, elf::R_X86_64_64, 0);
    a.reloc(text, 8, hello, elf::R_X86_64_64, 0);
    a.reloc(text, 16, table, elf::R_X86_64_64, 0);

    let mut b = Builder::new();
    let data = b.section(".data", SectionKind::Data, &[0; 16], 8);
    b.define("table", data, 0);
    let lo = b.strings(".rodata.str1.1", b"lo\0");
    let lo = b.0.section_symbol(lo);
    let consts = constants(&mut b, &[9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8]);
    let consts = b.0.section_symbol(consts);
    b.reloc(data, 0, consts, elf::R_X86_64_64, 8);
    b.reloc(data, 8, lo, elf::R_X86_64_64, 0);

    let inputs = [
        ("a.o", set_entsize(a.bytes(), b".rodata.cst8", 8)),
        ("b.o", set_entsize(b.bytes(), b".rodata.cst8", 8)),
    ];
    with_link(&inputs, None, |layout, image| {
        let mut merged: Vec<&[u8]> = layout.strings.iter().map(|m| &m.data[..]).collect();
        merged.sort();
        assert_eq!(
            merged,
            [
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9][..],
                &b"hello\0"[..]
            ]
        );
        let start = symbol(layout, "_start");
        let table = symbol(layout, "table");
        assert_eq!(read_u64(layout, image, start + 16), table);
        assert_eq!(
            read_u64(layout, image, start),
            read_u64(layout, image, table)
        );
        let hello = read_u64(layout, image, start + 8);
        assert_eq!(read_u64(layout, image, table + 8), hello + 3);
        assert_eq!(bytes_at(layout, image, hello + 3, 3), b"lo\0");
    });
}

#[test]
fn ctors_join_init_array_by_priority_and_reversed() {
    let mut o = Builder::new();
    let text = o.section(".text", SectionKind::Text, &[0xc3; 48], 16);
    o.define("_start", text, 0);
    let mut function = |name: &str, at: u64| o.define(name, text, at);
    let (f0, f1, f2, p100, p200) = (
        function("f0", 8),
        function("f1", 16),
        function("f2", 24),
        function("p100", 32),
        function("p200", 40),
    );
    let array = |o: &mut Builder, name: &str, sh_type: u32, targets: &[SymbolId]| {
        let id = o.section(
            name,
            SectionKind::Elf(sh_type),
            &vec![0; 8 * targets.len()],
            8,
        );
        o.0.section_mut(id).flags = SectionFlags::Elf {
            sh_flags: u64::from(elf::SHF_ALLOC | elf::SHF_WRITE),
        };
        for (i, &t) in targets.iter().enumerate() {
            o.reloc(id, 8 * i as u64, t, elf::R_X86_64_64, 0);
        }
    };
    array(&mut o, ".init_array", elf::SHT_INIT_ARRAY, &[f0]);
    array(&mut o, ".ctors", elf::SHT_PROGBITS, &[f1, f2]);
    array(&mut o, ".ctors.65435", elf::SHT_PROGBITS, &[p100]);
    array(&mut o, ".init_array.00200", elf::SHT_INIT_ARRAY, &[p200]);

    let mut crt = Builder::new();
    let crt_text = crt.section(".text", SectionKind::Text, &[0xc3], 1);
    let sentinel = crt.define("crt_sentinel", crt_text, 0);
    array(&mut crt, ".ctors", elf::SHT_PROGBITS, &[sentinel]);

    let inputs = [
        ("main.o", o.bytes()),
        ("/usr/lib/gcc/crtbegin.o", crt.bytes()),
    ];
    with_link(&inputs, None, |layout, image| {
        let init = layout
            .sections
            .iter()
            .find(|s| s.name == b".init_array")
            .unwrap();
        let entries: Vec<u64> = (0..init.size / 8)
            .map(|i| read_u64(layout, image, init.addr + 8 * i))
            .collect();
        let expected: Vec<u64> = ["p100", "p200", "f0", "f2", "f1"]
            .iter()
            .map(|n| symbol(layout, n))
            .collect();
        assert_eq!(entries, expected);
        let ctors = layout
            .sections
            .iter()
            .find(|s| s.name == b".ctors")
            .unwrap();
        assert_eq!(
            read_u64(layout, image, ctors.addr),
            symbol(layout, "crt_sentinel")
        );
    });
}

/// An object whose `.data` refers to `__uniklink_page_tables` and whose `.bss` is `bss` bytes.
fn asking_for_page_tables(bss: u64) -> Vec<u8> {
    let mut o = Builder::new();
    // ret, then a word pointing at .data, which keeps it; .data points at the tables and
    // at .bss, which keeps that
    let text = o.section(
        ".text",
        SectionKind::Text,
        &[0xc3, 0, 0, 0, 0, 0, 0, 0, 0],
        16,
    );
    o.define("_start", text, 0);
    let data = o.section(".data", SectionKind::Data, &[0; 16], 8);
    let words = o.define("words", data, 0);
    o.reloc(text, 1, words, elf::R_X86_64_64, 0);
    let tables = o.symbol("__uniklink_page_tables", SymbolSection::Undefined, 0, 0);
    o.reloc(data, 0, tables, elf::R_X86_64_64, 0);
    let bss = o.section(
        ".bss",
        SectionKind::UninitializedData,
        &vec![0; bss as usize],
        4096,
    );
    let buffer = o.define("buffer", bss, 0);
    o.reloc(data, 8, buffer, elf::R_X86_64_64, 0);
    o.bytes()
}

/// The page tables lie in the image they map, so adding a block's table can move the image's
/// end into one more block: layout repeats until the tables cover the image. Here the image
/// ends 2 KiB short of its second block's end with one block's table in, so it needs two,
/// and with two it ends 2 KiB past it and needs three.
#[test]
fn page_tables_grow_until_they_cover_the_image_they_are_part_of() {
    use unik_platform::virt_map::{blocks_of, tables_size as page_tables_size};
    let base = 0x4020_0000;
    let mut bss_start = 0;
    with_link_tables(
        &[("probe.o", asking_for_page_tables(4096))],
        Some(base),
        true,
        |layout, _| {
            let tables = layout
                .sections
                .iter()
                .find(|s| s.rank == Rank::PageTables)
                .unwrap();
            assert_eq!(tables.size, page_tables_size(1));
            bss_start = symbol(layout, "buffer");
        },
    );
    let bss = base + 2 * 0x20_0000 - 2048 - bss_start;
    with_link_tables(
        &[("big.o", asking_for_page_tables(bss))],
        Some(base),
        true,
        |layout, image| {
            let tables = layout
                .sections
                .iter()
                .find(|s| s.rank == Rank::PageTables)
                .unwrap();
            assert_eq!(tables.size, page_tables_size(3));
            assert_eq!(layout.end(), base + 2 * 0x20_0000 + 4096 + 2048);
            assert_eq!(blocks_of(base..layout.end()), 3);
            let first_level = tables.addr + tables.size - 32;
            assert_eq!(symbol(layout, "__uniklink_page_tables"), first_level);
            let data = layout.sections.iter().find(|s| s.name == b".data").unwrap();
            assert_eq!(read_u64(layout, image, data.addr), first_level);
        },
    );
    with_link_tables(
        &[("no.o", asking_for_page_tables(4096))],
        Some(base),
        false,
        |layout, image| {
            assert!(layout.sections.iter().all(|s| s.rank != Rank::PageTables));
            let data = layout.sections.iter().find(|s| s.name == b".data").unwrap();
            assert_eq!(
                read_u64(layout, image, data.addr),
                0,
                "no tables: the symbol is 0"
            );
        },
    );
}

/// A relocation whose field runs past the end of its debug section is an error naming the
/// object, not a write into the next object's debug bytes (which follow it in the output).
#[test]
fn a_debug_relocation_past_its_section_end_is_an_error() {
    let object = |name: &str, offset: u64| {
        let mut o = Builder::new();
        let text = o.section(".text", SectionKind::Text, &[0xc3], 16);
        let start = o.define(name, text, 0);
        let debug = o.section(".debug_info", SectionKind::Debug, &[0; 16], 1);
        o.reloc(debug, offset, start, elf::R_X86_64_64, 0);
        o.bytes()
    };
    let inputs = [("a.o", object("_start", 12)), ("b.o", object("other", 8))];
    with_link(&inputs, Some(0x20_0000), |layout, _| {
        let err = uniklink_linker::debug::collect(layout)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.o") && err.contains("relocation at 0xc runs past the section's end"),
            "{err}"
        );
    });
}
