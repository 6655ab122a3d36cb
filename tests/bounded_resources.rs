//! Inputs built to trip super-linear paths (issue #16): a million tiny sections, a symbol
//! table that names itself as its string table, a chain of archive members each needing the
//! next. Each is linked beside a clean input of similar size; the link must end (no signal, a
//! clean error or an image) with a peak RSS at most ten times the clean link's.
//!
//! Linux counts the address space a child had before `exec` (the parent's, at `fork`) into its
//! peak RSS, so the link runs under `/usr/bin/time` (Debian's `time`, installed by
//! `.ci/setup`), a small process whose own child the linker is, and which reports that
//! child's peak alone.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use assert_cmd::cargo::CommandCargoExt;
use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope, elf,
};

/// Peak RSS of a link may be this many times the clean link's.
const MEMORY_FACTOR: u64 = 10;

/// How one `cargo-uniklink link` ended.
struct Linked {
    status: ExitStatus,
    /// Peak resident set size in KiB.
    max_rss: u64,
    stderr: String,
}

/// Links `inputs` into `out` with entry `_start` under `/usr/bin/time`, for its peak RSS.
fn link(inputs: &[PathBuf], out: &Path) -> Linked {
    let rss = out.with_extension("rss");
    let uniklink = Command::cargo_bin("cargo-uniklink").expect("the cargo-uniklink binary");
    let output = Command::new("/usr/bin/time")
        .args(["--format", "%M", "--output"])
        .arg(&rss)
        .arg(uniklink.get_program())
        .args(["link", "--entry", "_start", "-o"])
        .arg(out)
        .args(inputs)
        .output()
        .expect("/usr/bin/time runs (Debian's time package)");
    let max_rss = std::fs::read_to_string(&rss)
        .ok()
        .and_then(|text| text.lines().last()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time in {}", rss.display()));
    Linked {
        status: output.status,
        max_rss,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Links the hostile and the clean inputs; the clean one must link, the hostile one must end
/// with an image or a clean error (exit 1, no output), within the memory bound.
fn check(name: &str, dir: &Path, hostile: &[PathBuf], clean: &[PathBuf]) -> Linked {
    let clean_out = dir.join(format!("{name}-clean"));
    let baseline = link(clean, &clean_out);
    assert!(
        baseline.status.success(),
        "{name}: the clean input must link: {}",
        baseline.stderr
    );
    let out = dir.join(name);
    let linked = link(hostile, &out);
    eprintln!(
        "{name}: {:?}, peak RSS {} KiB; clean input: peak RSS {} KiB",
        linked.status, linked.max_rss, baseline.max_rss
    );
    match linked.status.code() {
        Some(0) => assert!(out.exists(), "{name}: exit 0 without an image"),
        Some(1) => {
            assert!(!out.exists(), "{name}: an image beside the error");
            assert!(
                linked.stderr.contains("error") || linked.stderr.contains('×'),
                "{name}: exit 1 without a message: {}",
                linked.stderr
            );
        }
        _ => panic!("{name}: ended by {:?}: {}", linked.status, linked.stderr),
    }
    assert!(
        linked.max_rss <= MEMORY_FACTOR * baseline.max_rss,
        "{name}: peak RSS {} KiB, more than {MEMORY_FACTOR} times the clean link's {} KiB",
        linked.max_rss,
        baseline.max_rss
    );
    linked
}

fn object() -> Object<'static> {
    Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little)
}

fn define(o: &mut Object<'_>, name: &str, section: object::write::SectionId, value: u64) {
    o.add_symbol(Symbol {
        name: name.as_bytes().to_vec(),
        value,
        size: 0,
        kind: SymbolKind::Text,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    });
}

/// `call callee` at `offset` of `section`, `callee` undefined here unless defined elsewhere.
fn call(o: &mut Object<'_>, section: object::write::SectionId, offset: u64, callee: &str) {
    let symbol = o.symbol_id(callee.as_bytes()).unwrap_or_else(|| {
        o.add_symbol(Symbol {
            name: callee.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    });
    o.add_relocation(
        section,
        Relocation {
            offset: offset + 1,
            symbol,
            addend: -4,
            flags: RelocationFlags::Elf {
                r_type: elf::R_X86_64_PLT32,
            },
        },
    )
    .expect("relocation");
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).expect("test input written");
    path.to_path_buf()
}

/// An ELF64 relocatable object with `_start` (`ret`) in `.text` and `tiny` more one-byte
/// executable sections, all named `.text.t` and sharing one byte of data. Past 0xff00
/// sections the count lives in section 0's `sh_size` (extended numbering), as in objects with
/// very many sections.
fn many_sections(tiny: u32) -> Vec<u8> {
    let shstrtab = b"\0.shstrtab\0.strtab\0.symtab\0.text\0.text.t\0";
    let name = |s: &str| {
        let at = shstrtab
            .windows(s.len() + 1)
            .position(|w| &w[1..] == s.as_bytes() && w[0] == 0)
            .expect("a section name");
        (at + 1) as u32
    };
    let strtab = b"\0_start\0";
    let mut symtab = vec![0u8; 24];
    let mut start = [0u8; 24];
    start[0..4].copy_from_slice(&1u32.to_le_bytes());
    start[4] = (elf::STB_GLOBAL << 4) | elf::STT_FUNC;
    start[6..8].copy_from_slice(&4u16.to_le_bytes());
    symtab.extend_from_slice(&start);
    let text = [0xc3u8];

    let mut file = vec![0u8; 64];
    let mut place = |bytes: &[u8]| {
        let at = file.len() as u64;
        file.extend_from_slice(bytes);
        at
    };
    let shstrtab_at = place(shstrtab);
    let strtab_at = place(strtab);
    while !file.len().is_multiple_of(8) {
        file.push(0);
    }
    let symtab_at = file.len() as u64;
    file.extend_from_slice(&symtab);
    let text_at = file.len() as u64;
    file.extend_from_slice(&text);
    while !file.len().is_multiple_of(8) {
        file.push(0);
    }
    let shoff = file.len() as u64;
    let count = 5 + u64::from(tiny);

    #[allow(clippy::too_many_arguments)]
    fn header(
        name: u32,
        sh_type: u32,
        flags: u64,
        offset: u64,
        size: u64,
        link: u32,
        info: u32,
        align: u64,
        entsize: u64,
    ) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&sh_type.to_le_bytes());
        h[8..16].copy_from_slice(&flags.to_le_bytes());
        h[24..32].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[40..44].copy_from_slice(&link.to_le_bytes());
        h[44..48].copy_from_slice(&info.to_le_bytes());
        h[48..56].copy_from_slice(&align.to_le_bytes());
        h[56..64].copy_from_slice(&entsize.to_le_bytes());
        h
    }
    let exec = u64::from(elf::SHF_ALLOC | elf::SHF_EXECINSTR);
    file.reserve(64 * count as usize);
    file.extend_from_slice(&header(0, 0, 0, 0, count, 0, 0, 0, 0));
    let shstrtab_len = shstrtab.len() as u64;
    file.extend_from_slice(&header(
        name(".shstrtab"),
        elf::SHT_STRTAB,
        0,
        shstrtab_at,
        shstrtab_len,
        0,
        0,
        1,
        0,
    ));
    file.extend_from_slice(&header(
        name(".strtab"),
        elf::SHT_STRTAB,
        0,
        strtab_at,
        strtab.len() as u64,
        0,
        0,
        1,
        0,
    ));
    file.extend_from_slice(&header(
        name(".symtab"),
        elf::SHT_SYMTAB,
        0,
        symtab_at,
        symtab.len() as u64,
        2,
        1,
        8,
        24,
    ));
    let text_header = |name| header(name, elf::SHT_PROGBITS, exec, text_at, 1, 0, 0, 1, 0);
    file.extend_from_slice(&text_header(name(".text")));
    let tiny_header = text_header(name(".text.t"));
    for _ in 0..tiny {
        file.extend_from_slice(&tiny_header);
    }

    let mut ehdr = [0u8; 64];
    ehdr[0..4].copy_from_slice(b"\x7fELF");
    ehdr[4] = elf::ELFCLASS64;
    ehdr[5] = elf::ELFDATA2LSB;
    ehdr[6] = elf::EV_CURRENT;
    ehdr[16..18].copy_from_slice(&elf::ET_REL.to_le_bytes());
    ehdr[18..20].copy_from_slice(&elf::EM_X86_64.to_le_bytes());
    ehdr[20..24].copy_from_slice(&1u32.to_le_bytes());
    ehdr[40..48].copy_from_slice(&shoff.to_le_bytes());
    ehdr[52..54].copy_from_slice(&64u16.to_le_bytes());
    ehdr[58..60].copy_from_slice(&64u16.to_le_bytes());
    // e_shnum 0: the count is section 0's sh_size.
    let shnum: u16 = if count >= u64::from(elf::SHN_LORESERVE) {
        0
    } else {
        count as u16
    };
    ehdr[60..62].copy_from_slice(&shnum.to_le_bytes());
    ehdr[62..64].copy_from_slice(&1u16.to_le_bytes());
    file[..64].copy_from_slice(&ehdr);
    file
}

/// `_start` in `.text` and `data` bytes in a retained `.data` section: an object of about the
/// given size whose link copies all of it.
fn one_big_section(data: usize) -> Vec<u8> {
    let mut o = object();
    let text = o.section_id(StandardSection::Text);
    let at = o.append_section_data(text, &[0xc3], 16);
    define(&mut o, "_start", text, at);
    let section = o.add_section(Vec::new(), b".data.big".to_vec(), SectionKind::Data);
    o.section_mut(section).flags = object::SectionFlags::Elf {
        sh_flags: u64::from(elf::SHF_ALLOC | elf::SHF_WRITE | elf::SHF_GNU_RETAIN),
    };
    o.append_section_data(section, &vec![0x5a; data], 8);
    o.write().expect("object")
}

#[test]
fn a_million_tiny_sections() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = many_sections(1_000_000);
    let clean = write(&dir.path().join("big.o"), &one_big_section(hostile.len()));
    let hostile = write(&dir.path().join("sections.o"), &hostile);
    let linked = check("sections", dir.path(), &[hostile], &[clean]);
    assert!(linked.status.success(), "{}", linked.stderr);
}

/// A small object whose `.symtab` names itself, not `.strtab`, as its string table
/// (`sh_link`): symbol names then index into symbol entries.
/// `_start` taking the address of the first of `count` distinct strings in one mergeable
/// string section (`SHF_MERGE | SHF_STRINGS`), every piece of which is aligned to `align`;
/// through a local symbol, as assemblers write it, or the section's symbol, whose addend
/// (-4 for the displacement's place) then falls before the section's start.
fn mergeable_strings(count: u32, align: u64, section_symbol: bool) -> Vec<u8> {
    let mut o = object();
    let text = o.section_id(StandardSection::Text);
    // lea strings(%rip), %rax; ret
    o.append_section_data(text, &[0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3], 16);
    define(&mut o, "_start", text, 0);
    let strings = o.add_section(
        Vec::new(),
        b".rodata.str1.1".to_vec(),
        SectionKind::ReadOnlyString,
    );
    let bytes: Vec<u8> = (0..count)
        .flat_map(|i| format!("s{i}\0").into_bytes())
        .collect();
    o.append_section_data(strings, &bytes, align);
    // A local symbol, as assemblers keep for a reference with an addend into a mergeable
    // section.
    let symbol = if section_symbol {
        o.section_symbol(strings)
    } else {
        o.add_symbol(Symbol {
            name: b"first".to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Data,
            scope: SymbolScope::Compilation,
            weak: false,
            section: SymbolSection::Section(strings),
            flags: SymbolFlags::None,
        })
    };
    o.add_relocation(
        text,
        Relocation {
            offset: 3,
            symbol,
            addend: -4,
            flags: RelocationFlags::Elf {
                r_type: elf::R_X86_64_PC32,
            },
        },
    )
    .expect("relocation");
    o.write().expect("object written")
}

/// Found by the `link` fuzz target: a mergeable string section aligned far beyond its pieces'
/// size gives each piece that alignment, so kilobytes of strings at 1 MiB each asked for
/// gigabytes (the fuzzer's object, 2.5 KB, reached a 2 GiB allocation). Refused before the
/// merged bytes are allocated.
#[test]
fn mergeable_strings_aligned_far_beyond_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let clean = write(
        &dir.path().join("strings.o"),
        &mergeable_strings(100_000, 1, false),
    );
    let hostile = write(
        &dir.path().join("aligned.o"),
        &mergeable_strings(100_000, 1 << 20, false),
    );
    let linked = check("merge", dir.path(), &[hostile], &[clean]);
    assert_eq!(linked.status.code(), Some(1), "{}", linked.stderr);
    assert!(
        linked.stderr.contains("aligned.o") && linked.stderr.contains("mergeable"),
        "{}",
        linked.stderr
    );
    // Its section's symbol with the displacement's -4 names no string: once an overflow
    // (a panic in a debug build), now an error naming the object and section.
    let before = write(
        &dir.path().join("before.o"),
        &mergeable_strings(100_000, 1, true),
    );
    let linked = check(
        "before",
        dir.path(),
        &[before],
        &[dir.path().join("strings.o")],
    );
    assert_eq!(linked.status.code(), Some(1), "{}", linked.stderr);
    // The message as one line: the terminal renderer wraps it where the path's length puts it.
    let words: Vec<&str> = linked
        .stderr
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect();
    assert!(
        linked.stderr.contains("before.o") && words.join(" ").contains("refers to offset -4"),
        "{}",
        linked.stderr
    );
}

#[test]
fn a_symbol_table_that_is_its_own_string_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = object();
    let text = o.section_id(StandardSection::Text);
    let at = o.append_section_data(text, &[0xc3; 16], 16);
    define(&mut o, "_start", text, at);
    for i in 0..64 {
        define(&mut o, &format!("f{i}"), text, i);
    }
    let clean = o.write().expect("object");
    let mut hostile = clean.clone();
    let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&clean[..]).unwrap();
    use object::read::elf::{FileHeader, SectionHeader};
    let header = file.elf_header();
    let sections = header.sections(object::LittleEndian, &clean[..]).unwrap();
    let (symtab, _) = sections
        .iter()
        .enumerate()
        .find(|(_, s)| s.sh_type(object::LittleEndian) == elf::SHT_SYMTAB)
        .expect("a symbol table");
    let shoff = header.e_shoff(object::LittleEndian) as usize;
    let link_field = shoff + 64 * symtab + 40;
    hostile[link_field..link_field + 4].copy_from_slice(&(symtab as u32).to_le_bytes());
    let hostile = write(&dir.path().join("self.o"), &hostile);
    let clean = write(&dir.path().join("clean.o"), &clean);
    let linked = check("self-strtab", dir.path(), &[hostile], &[clean]);
    assert!(
        linked.stderr.contains("self.o"),
        "the message names the object: {}",
        linked.stderr
    );
}

/// `lib.a`'s member `i` defines `f<i>`, which calls `f<i+1>`; `_start` calls `f0`, so
/// resolution fetches every member, one after another.
#[test]
fn a_deep_chain_of_archive_members() {
    const DEPTH: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let start = {
        let mut o = object();
        let text = o.section_id(StandardSection::Text);
        let at = o.append_section_data(text, &[0xe8, 0, 0, 0, 0, 0xc3], 16);
        define(&mut o, "_start", text, at);
        call(&mut o, text, at, "f0");
        o.write().expect("object")
    };
    let function = |o: &mut Object<'_>, i: usize| {
        let section = o.add_section(
            Vec::new(),
            format!(".text.f{i}").into_bytes(),
            SectionKind::Text,
        );
        let code: &[u8] = if i + 1 < DEPTH {
            &[0xe8, 0, 0, 0, 0, 0xc3]
        } else {
            &[0xc3]
        };
        let at = o.append_section_data(section, code, 16);
        define(o, &format!("f{i}"), section, at);
        if i + 1 < DEPTH {
            call(o, section, at, &format!("f{}", i + 1));
        }
    };
    let mut archive = b"!<arch>\n".to_vec();
    for i in 0..DEPTH {
        let mut o = object();
        function(&mut o, i);
        let member = o.write().expect("object");
        let name = format!("m{i}.o/");
        let header = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            644,
            member.len()
        );
        assert_eq!(header.len(), 60);
        archive.extend_from_slice(header.as_bytes());
        archive.extend_from_slice(&member);
        if archive.len() % 2 == 1 {
            archive.push(b'\n');
        }
    }
    let mut all = object();
    for i in 0..DEPTH {
        function(&mut all, i);
    }
    let all = all.write().expect("object");
    let start = write(&dir.path().join("start.o"), &start);
    let hostile = [start.clone(), write(&dir.path().join("lib.a"), &archive)];
    let clean = [start, write(&dir.path().join("all.o"), &all)];
    let linked = check("chain", dir.path(), &hostile, &clean);
    assert!(linked.status.success(), "{}", linked.stderr);
}
