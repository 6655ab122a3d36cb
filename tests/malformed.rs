//! Malformed inputs: objects and archives generated at test time from a valid object
//! (`fixtures/malformed/valid.c`), each with one corruption from the table below. uniklink must
//! refuse every one with a message naming the file (and member, section or symbol where there
//! is one), exit status 1, no panic and no output file.

#[path = "common/linkers.rs"]
mod linkers;
#[path = "common/run.rs"]
mod run;

use std::path::{Path, PathBuf};
use std::process::Command;

use goblin::elf::Elf;
use linkers::{failure_problems, linkers, listing};

/// Which file a corruption is applied to and how it is linked.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// `valid.o`, linked alone with `--entry valid_entry`.
    Object,
    /// `libvalid.a`, whose one member is `valid.o` under a name long enough to live in the
    /// archive's `//` name table, linked after `start.o`, which needs the member. Object
    /// positions ([`At::Ehdr`] to [`At::Rela`]) are taken inside the member.
    Archive,
}

/// A position in the target file, resolved against the valid file's structure.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Offset into the ELF header.
    Ehdr(u64),
    /// Offset into the section header table (`e_shoff + n`).
    Shdrs(u64),
    /// A field of the named section's header.
    Section(&'static str, u64),
    /// A field of the named symbol's `Elf64_Sym`.
    Symbol(&'static str, u64),
    /// A field of one `Elf64_Rela` of the named relocation section.
    Rela(&'static str, usize, u64),
    /// Offset into the `ar` header of the member.
    MemberHeader(u64),
}

#[derive(Debug, Clone, Copy)]
enum Edit {
    /// Cut the file at this position.
    Truncate(At),
    U16(At, u16),
    U32(At, u32),
    U64(At, u64),
    /// An offset this far past the end of the file.
    PastEof(At, u64),
    Text(At, &'static str),
}

struct Corruption {
    name: &'static str,
    target: Target,
    edit: Edit,
    /// Fragments uniklink's stderr must contain, beyond the exit status and no output.
    stderr: &'static [&'static str],
}

// Field offsets in ELF64 structures.
const E_CLASS: u64 = 4;
const E_SHOFF: u64 = 0x28;
const E_SHENTSIZE: u64 = 0x3a;
const E_SHNUM: u64 = 0x3c;
const E_SHSTRNDX: u64 = 0x3e;
const SH_NAME: u64 = 0;
const SH_FLAGS: u64 = 8;
const SH_OFFSET: u64 = 0x18;
const SH_SIZE: u64 = 0x20;
const SH_LINK: u64 = 0x28;
const SH_INFO: u64 = 0x2c;
const SH_ADDRALIGN: u64 = 0x30;
const SH_ENTSIZE: u64 = 0x38;
const ST_NAME: u64 = 0;
const ST_SHNDX: u64 = 6;
const R_OFFSET: u64 = 0;
const R_INFO: u64 = 8;
// Field offsets in a 60-byte ar member header.
const AR_SIZE: u64 = 48;
const AR_FMAG: u64 = 58;

/// The archive member's name: over 15 characters, so its header refers to the `//` table.
const MEMBER: &str = "valid_long_member_name.o";

const CORRUPTIONS: &[Corruption] = &[
    Corruption {
        name: "truncated ELF header",
        target: Target::Object,
        edit: Edit::Truncate(At::Ehdr(40)),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "truncated section header table",
        target: Target::Object,
        edit: Edit::Truncate(At::Shdrs(64 * 3 + 20)),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "ELF32 class",
        target: Target::Object,
        edit: Edit::Text(At::Ehdr(E_CLASS), "\x01"),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "section header table past EOF",
        target: Target::Object,
        edit: Edit::PastEof(At::Ehdr(E_SHOFF), 0x1000),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "bad e_shentsize",
        target: Target::Object,
        edit: Edit::U16(At::Ehdr(E_SHENTSIZE), 40),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "huge section count",
        target: Target::Object,
        edit: Edit::U16(At::Ehdr(E_SHNUM), 0xfeff),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "huge extended section count",
        target: Target::Object,
        // e_shnum 0 says the count is in section 0's sh_size.
        edit: Edit::U64(At::Shdrs(SH_SIZE), 0xffff_ffff_ffff),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "section name string table index out of range",
        target: Target::Object,
        edit: Edit::U16(At::Ehdr(E_SHSTRNDX), 0xfe00),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "section name offset out of range",
        target: Target::Object,
        edit: Edit::U32(At::Section(".text", SH_NAME), 0xffff_fff0),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "section data past EOF",
        target: Target::Object,
        edit: Edit::PastEof(At::Section(".text", SH_OFFSET), 0x40),
        stderr: &["valid.o", ".text"],
    },
    Corruption {
        name: "section size past EOF",
        target: Target::Object,
        edit: Edit::U64(At::Section(".data", SH_SIZE), 0x7fff_ffff_0000),
        stderr: &["valid.o", ".data"],
    },
    Corruption {
        name: "symbol table with a bad entry size",
        target: Target::Object,
        edit: Edit::U64(At::Section(".symtab", SH_ENTSIZE), 7),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "symbol table linked to a missing string table",
        target: Target::Object,
        edit: Edit::U32(At::Section(".symtab", SH_LINK), 0xffff),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "symbol name offset out of range",
        target: Target::Object,
        edit: Edit::U32(At::Symbol("valid_data", ST_NAME), 0x7fff_fff0),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "symbol section index out of range",
        target: Target::Object,
        edit: Edit::U16(At::Symbol("valid_data", ST_SHNDX), 0x7fff),
        stderr: &["valid.o", "valid_data"],
    },
    Corruption {
        name: "relocation symbol index out of range",
        target: Target::Object,
        // Symbol 0x00ff_ffff, type R_X86_64_32S.
        edit: Edit::U64(At::Rela(".rela.text", 2, R_INFO), 0x00ff_ffff_0000_000b),
        stderr: &["valid.o", ".text"],
    },
    Corruption {
        name: "relocation offset past its section",
        target: Target::Object,
        edit: Edit::U64(At::Rela(".rela.text", 1, R_OFFSET), 0xffff_ff00),
        stderr: &["valid.o", ".text"],
    },
    Corruption {
        name: "relocation section for a missing section",
        target: Target::Object,
        edit: Edit::U32(At::Section(".rela.text", SH_INFO), 0x7fff),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "relocation section size not a multiple of its entries",
        target: Target::Object,
        edit: Edit::U64(At::Section(".rela.text", SH_SIZE), 0x60 + 5),
        stderr: &["valid.o", ".rela.text"],
    },
    Corruption {
        name: "unknown relocation type",
        target: Target::Object,
        // Symbol 8 (valid_data), type 0xfe, which x86_64 does not define.
        edit: Edit::U64(At::Rela(".rela.text", 2, R_INFO), 0x0000_0008_0000_00fe),
        stderr: &["valid.o", ".text"],
    },
    Corruption {
        name: "section alignment not a power of two",
        target: Target::Object,
        edit: Edit::U64(At::Section(".data", SH_ADDRALIGN), 24),
        stderr: &["valid.o", ".data"],
    },
    // An alignment the layout would pad the image by: 8 GiB of padding, or a size that
    // overflows, once aborted the linker on allocating its output (issue #16).
    Corruption {
        name: "section alignment of 8 GiB",
        target: Target::Object,
        edit: Edit::U64(At::Section(".data", SH_ADDRALIGN), 1 << 33),
        stderr: &["valid.o", ".data", "sh_addralign"],
    },
    Corruption {
        name: "section alignment of 2^63",
        target: Target::Object,
        edit: Edit::U64(At::Section(".text", SH_ADDRALIGN), 1 << 63),
        stderr: &["valid.o", ".text", "sh_addralign"],
    },
    Corruption {
        name: "section alignment of 2 GiB in an archive member",
        target: Target::Archive,
        edit: Edit::U64(At::Section(".data", SH_ADDRALIGN), 1 << 31),
        stderr: &["libvalid.a", ".data", "sh_addralign"],
    },
    Corruption {
        name: "compression header of unknown type",
        target: Target::Object,
        // SHF_COMPRESSED on .comment (SHF_MERGE|SHF_STRINGS): its first bytes, "\0GCC", are
        // then read as an Elf64_Chdr whose ch_type is no ELFCOMPRESS_* value.
        edit: Edit::U64(At::Section(".comment", SH_FLAGS), 0x830),
        stderr: &["valid.o", ".comment", "compression type 0x43434700"],
    },
    Corruption {
        name: "string table without its final NUL",
        target: Target::Object,
        // The last name, valid_data, then runs to the end of the section unterminated.
        edit: Edit::U64(At::Section(".strtab", SH_SIZE), 0x2f),
        stderr: &["valid.o"],
    },
    Corruption {
        name: "truncated archive member header",
        target: Target::Archive,
        edit: Edit::Truncate(At::MemberHeader(30)),
        stderr: &["libvalid.a"],
    },
    Corruption {
        name: "archive member size past EOF",
        target: Target::Archive,
        edit: Edit::Text(At::MemberHeader(AR_SIZE), "99999999  "),
        stderr: &["libvalid.a", MEMBER],
    },
    Corruption {
        name: "archive member size not a number",
        target: Target::Archive,
        edit: Edit::Text(At::MemberHeader(AR_SIZE), "12ab      "),
        stderr: &["libvalid.a"],
    },
    Corruption {
        name: "archive member header terminator",
        target: Target::Archive,
        edit: Edit::Text(At::MemberHeader(AR_FMAG), "XX"),
        stderr: &["libvalid.a"],
    },
    Corruption {
        name: "archive member name offset past the name table",
        target: Target::Archive,
        edit: Edit::Text(At::MemberHeader(0), "/9999           "),
        stderr: &["libvalid.a"],
    },
    Corruption {
        name: "archive member with its section header table past EOF",
        target: Target::Archive,
        edit: Edit::PastEof(At::Ehdr(E_SHOFF), 0x1000),
        stderr: &["libvalid.a", MEMBER],
    },
    Corruption {
        name: "archive member with a relocation symbol index out of range",
        target: Target::Archive,
        edit: Edit::U64(At::Rela(".rela.text", 0, R_INFO), 0x00ff_ffff_0000_000b),
        stderr: &["libvalid.a", MEMBER, ".text"],
    },
];

/// The valid inputs, compiled once per test run.
struct Valid {
    dir: tempfile::TempDir,
    object: Vec<u8>,
    archive: Vec<u8>,
    start: PathBuf,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/malformed")
        .join(name)
}

fn build_valid() -> Valid {
    let toolchain = &linkers().toolchain;
    let dir = tempfile::tempdir().expect("temporary directory");
    let object = dir.path().join("valid.o");
    let start = dir.path().join("start.o");
    toolchain
        .compile(&fixture("valid.c"), &object, &[])
        .unwrap_or_else(|error| panic!("{error}"));
    toolchain
        .compile(&fixture("start.c"), &start, &[])
        .unwrap_or_else(|error| panic!("{error}"));
    let archive = dir.path().join("libvalid.a");
    std::fs::copy(&object, dir.path().join(MEMBER)).expect("copy valid.o");
    let status = Command::new("ar")
        .current_dir(dir.path())
        .args(["rcs", "libvalid.a", MEMBER])
        .status()
        .unwrap_or_else(|error| panic!("cannot run ar (binutils): {error}"));
    assert!(status.success(), "ar failed");
    Valid {
        object: std::fs::read(&object).expect("valid.o"),
        archive: std::fs::read(&archive).expect("libvalid.a"),
        start,
        dir,
    }
}

/// Offset of [`MEMBER`]'s 60-byte header, walking the archive's headers and resolving long
/// names through the `//` table.
fn member_header(archive: &[u8]) -> u64 {
    let mut names: &[u8] = &[];
    let mut at = 8;
    while at + 60 <= archive.len() {
        let header = &archive[at..at + 60];
        let field = |range: std::ops::Range<usize>| {
            std::str::from_utf8(&header[range])
                .expect("ASCII header")
                .trim_end()
        };
        let size: usize = field(48..58).parse().expect("decimal size");
        let data = &archive[at + 60..at + 60 + size];
        let name = field(0..16);
        if name == "//" {
            names = data;
        } else if let Some(offset) = name.strip_prefix('/').and_then(|n| n.parse::<usize>().ok())
            && names[offset..].starts_with(MEMBER.as_bytes())
        {
            return at as u64;
        }
        at += 60 + size + size % 2;
    }
    panic!("no member {MEMBER} in the valid archive");
}

/// Resolves a position to an offset in the object (for object positions) or archive.
fn resolve(at: At, object: &[u8], archive: &[u8]) -> u64 {
    let elf = Elf::parse(object).expect("the valid object parses");
    let section = |name: &str| {
        let index = elf
            .section_headers
            .iter()
            .position(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(name))
            .unwrap_or_else(|| panic!("no section {name} in valid.o"));
        (index as u64, &elf.section_headers[index])
    };
    match at {
        At::Ehdr(n) => n,
        At::Shdrs(n) => elf.header.e_shoff + n,
        At::Section(name, field) => elf.header.e_shoff + section(name).0 * 64 + field,
        At::Symbol(name, field) => {
            let index = elf
                .syms
                .iter()
                .position(|sym| elf.strtab.get_at(sym.st_name) == Some(name))
                .unwrap_or_else(|| panic!("no symbol {name} in valid.o"));
            section(".symtab").1.sh_offset + index as u64 * 24 + field
        }
        At::Rela(name, index, field) => section(name).1.sh_offset + index as u64 * 24 + field,
        At::MemberHeader(n) => member_header(archive) + n,
    }
}

fn is_object_position(at: At) -> bool {
    !matches!(at, At::MemberHeader(..))
}

fn corrupt(corruption: &Corruption, valid: &Valid) -> Vec<u8> {
    let (mut bytes, base) = match corruption.target {
        Target::Object => (valid.object.clone(), 0),
        Target::Archive => (valid.archive.clone(), member_header(&valid.archive) + 60),
    };
    let position = |at: At| {
        let offset = resolve(at, &valid.object, &valid.archive);
        let offset = if is_object_position(at) {
            base + offset
        } else {
            offset
        };
        usize::try_from(offset).expect("offset fits")
    };
    let end = bytes.len() as u64;
    let mut write = |at: At, new: &[u8]| {
        let start = position(at);
        bytes[start..start + new.len()].copy_from_slice(new);
    };
    match corruption.edit {
        Edit::Truncate(at) => {
            let cut = position(at);
            bytes.truncate(cut);
        }
        Edit::U16(at, value) => write(at, &value.to_le_bytes()),
        Edit::U32(at, value) => write(at, &value.to_le_bytes()),
        Edit::U64(at, value) => write(at, &value.to_le_bytes()),
        Edit::PastEof(at, beyond) => write(at, &(end + beyond).to_le_bytes()),
        Edit::Text(at, text) => write(at, text.as_bytes()),
    }
    if let Edit::U64(At::Shdrs(SH_SIZE), _) = corruption.edit {
        // The extended count applies only when e_shnum is 0.
        let shnum = position(At::Ehdr(E_SHNUM));
        bytes[shnum..shnum + 2].copy_from_slice(&0u16.to_le_bytes());
    }
    bytes
}

/// Links `file` (written into a fresh directory under its valid name) with uniklink.
fn link(valid: &Valid, target: Target, bytes: &[u8]) -> (linkers::Linked, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir_in(valid.dir.path()).expect("temporary directory");
    let out = dir.path().join("out");
    let linked = match target {
        Target::Object => {
            let file = dir.path().join("valid.o");
            std::fs::write(&file, bytes).expect("write corrupted object");
            let before = listing(dir.path());
            let linked = linkers().uniklink(
                &out,
                ["--entry".as_ref(), "valid_entry".as_ref(), file.as_os_str()],
            );
            (linked, before)
        }
        Target::Archive => {
            let file = dir.path().join("libvalid.a");
            std::fs::write(&file, bytes).expect("write corrupted archive");
            let before = listing(dir.path());
            let linked = linkers().uniklink(
                &out,
                [
                    "--entry".as_ref(),
                    "_start".as_ref(),
                    valid.start.as_os_str(),
                    file.as_os_str(),
                ],
            );
            (linked, before)
        }
    };
    // The directory lives inside `valid.dir`, which removes it.
    let path = dir.keep();
    (linked.0, path.join("out"), linked.1)
}

#[test]
fn valid_inputs_link() {
    let valid = build_valid();
    let (linked, out, _) = link(&valid, Target::Object, &valid.object);
    assert!(
        linked.succeeded() && out.is_file(),
        "the uncorrupted object must link, or the corruptions prove nothing: {linked}"
    );
    let (linked, out, _) = link(&valid, Target::Archive, &valid.archive);
    assert!(
        linked.succeeded() && out.is_file(),
        "the uncorrupted archive must link, or the corruptions prove nothing: {linked}"
    );
    // valid_entry(1): valid_data[1] + 'a' + scratch[1] after adding 1, i.e. 2 + 97 + 1.
    let ran = run::run(&out, b"");
    assert_eq!(
        ran.status, "exit 100",
        "the program linked from the archive: {ran:?}"
    );
}

#[test]
fn every_corruption_is_refused_cleanly() {
    let valid = build_valid();
    let mut failures = Vec::new();
    for corruption in CORRUPTIONS {
        let bytes = corrupt(corruption, &valid);
        let original = match corruption.target {
            Target::Object => &valid.object,
            Target::Archive => &valid.archive,
        };
        assert_ne!(
            &bytes, original,
            "{}: the edit changed nothing",
            corruption.name
        );
        let (linked, out, before) = link(&valid, corruption.target, &bytes);
        let mut problems = failure_problems(&linked, &out, &before);
        for fragment in corruption.stderr {
            if !linked.stderr.contains(fragment) {
                problems.push(format!("stderr does not name {fragment:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  stderr: {}",
                corruption.name,
                problems.join("; "),
                linked.stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corruptions mishandled:\n{}",
        failures.len(),
        CORRUPTIONS.len(),
        failures.join("\n")
    );
}

/// Beyond the table: the valid object and archive cut at every 16th byte, and a fixed
/// pseudo-random series of byte overwrites. A damaged input may still link (a changed
/// instruction byte is no error), but the linker must never panic, crash, hang or exit with
/// anything but 0 or 1, and a failed link must leave nothing behind.
#[test]
fn damaged_inputs_never_panic() {
    let valid = build_valid();
    let original = |target| match target {
        Target::Object => &valid.object,
        Target::Archive => &valid.archive,
    };
    let mut cases: Vec<(String, Target, Vec<u8>)> = Vec::new();
    for target in [Target::Object, Target::Archive] {
        let bytes = original(target);
        for cut in (0..bytes.len()).step_by(16) {
            cases.push((
                format!("{target:?} cut to {cut} bytes"),
                target,
                bytes[..cut].to_vec(),
            ));
        }
    }
    // xorshift64: a fixed seed keeps every run's inputs the same.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in 0..200 {
        let target = if case % 4 == 0 {
            Target::Archive
        } else {
            Target::Object
        };
        let mut bytes = original(target).clone();
        let mut edits = Vec::new();
        for _ in 0..=next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            let value = next() as u8;
            bytes[at] = value;
            edits.push(format!("{at:#x}={value:#04x}"));
        }
        cases.push((
            format!("{target:?} with bytes {}", edits.join(",")),
            target,
            bytes,
        ));
    }

    let mut failures = Vec::new();
    for (name, target, bytes) in &cases {
        let (linked, out, before) = link(&valid, *target, bytes);
        let problems = match linked.code {
            Some(0) if out.is_file() => Vec::new(),
            Some(0) => vec!["exit status 0 but no output".to_string()],
            _ => failure_problems(&linked, &out, &before),
        };
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {}\n  stderr: {}",
                problems.join("; "),
                linked.stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} damaged inputs mishandled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
