//! The mapping sub-phase: which output section each kept input section goes to, in which
//! order, and which `.ctors`/`.dtors` inputs are stored reversed in an init array.

use object::elf;
use rustc_hash::{FxHashMap, FxHashSet};
use uniklink_analyzer::graph::SectionGraph;
use uniklink_analyzer::object::{Section, SectionId};

/// Output section kinds in address order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    Note,
    Init,
    Text,
    OtherExec,
    Fini,
    Rodata,
    OtherRo,
    EhFrameHdr,
    EhFrame,
    GccExceptTable,
    /// The image's translation tables, which the linker writes (virt images).
    PageTables,
    Tdata,
    Tbss,
    PreinitArray,
    InitArray,
    FiniArray,
    Ctors,
    Dtors,
    DataRelRo,
    Got,
    Data,
    OtherData,
    Bss,
    OtherBss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentKind {
    Headers,
    Exec,
    ReadOnly,
    Writable,
}

impl Rank {
    pub fn segment(self) -> SegmentKind {
        match self {
            Rank::Note => SegmentKind::Headers,
            Rank::Init | Rank::Text | Rank::OtherExec | Rank::Fini => SegmentKind::Exec,
            Rank::Rodata
            | Rank::OtherRo
            | Rank::EhFrameHdr
            | Rank::EhFrame
            | Rank::GccExceptTable
            | Rank::PageTables => SegmentKind::ReadOnly,
            _ => SegmentKind::Writable,
        }
    }

    pub(super) fn sh_type(self) -> u32 {
        match self {
            Rank::Note => elf::SHT_NOTE,
            Rank::Tbss | Rank::Bss | Rank::OtherBss => elf::SHT_NOBITS,
            Rank::PreinitArray => elf::SHT_PREINIT_ARRAY,
            Rank::InitArray => elf::SHT_INIT_ARRAY,
            Rank::FiniArray => elf::SHT_FINI_ARRAY,
            _ => elf::SHT_PROGBITS,
        }
    }

    pub(super) fn flags(self) -> u64 {
        let alloc = u64::from(elf::SHF_ALLOC);
        let write = u64::from(elf::SHF_WRITE);
        match self.segment() {
            SegmentKind::Headers | SegmentKind::ReadOnly => alloc,
            SegmentKind::Exec => alloc | u64::from(elf::SHF_EXECINSTR),
            SegmentKind::Writable if matches!(self, Rank::Tdata | Rank::Tbss) => {
                alloc | write | u64::from(elf::SHF_TLS)
            }
            SegmentKind::Writable => alloc | write,
        }
    }
}

/// Matches `name` or `name.*`.
fn has_prefix(name: &[u8], prefix: &[u8]) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'.')
}

fn is_c_identifier(name: &[u8]) -> bool {
    !name.is_empty()
        && !name[0].is_ascii_digit()
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The output section an input section goes to. Sections named like C identifiers keep
/// their own output section so `__start_`/`__stop_` symbols can bound them.
/// `crt_lists` marks crtbegin/crtend objects, whose `.ctors`/`.dtors` hold list sentinels for
/// crtstuff's own walker and stay out of the init arrays, as in GNU ld's default script.
fn output_section_for<'d>(s: &Section<'d>, crt_lists: bool) -> (&'d [u8], Rank) {
    let name = s.name;
    let exec = s.flags & u64::from(elf::SHF_EXECINSTR) != 0;
    let write = s.flags & u64::from(elf::SHF_WRITE) != 0;
    if s.sh_type == elf::SHT_NOTE {
        return (name, Rank::Note);
    }
    if s.flags & u64::from(elf::SHF_TLS) != 0 {
        return if s.is_nobits() {
            (b".tbss", Rank::Tbss)
        } else {
            (b".tdata", Rank::Tdata)
        };
    }
    if s.sh_type == elf::SHT_PREINIT_ARRAY || has_prefix(name, b".preinit_array") {
        return (b".preinit_array", Rank::PreinitArray);
    }
    if s.sh_type == elf::SHT_INIT_ARRAY || has_prefix(name, b".init_array") {
        return (b".init_array", Rank::InitArray);
    }
    if s.sh_type == elf::SHT_FINI_ARRAY || has_prefix(name, b".fini_array") {
        return (b".fini_array", Rank::FiniArray);
    }
    if has_prefix(name, b".ctors") {
        return if crt_lists {
            (b".ctors", Rank::Ctors)
        } else {
            (b".init_array", Rank::InitArray)
        };
    }
    if has_prefix(name, b".dtors") {
        return if crt_lists {
            (b".dtors", Rank::Dtors)
        } else {
            (b".fini_array", Rank::FiniArray)
        };
    }
    if exec {
        return match name {
            b".init" => (name, Rank::Init),
            b".fini" => (name, Rank::Fini),
            _ if has_prefix(name, b".text") => (b".text", Rank::Text),
            _ if is_c_identifier(name) => (name, Rank::OtherExec),
            _ => (b".text", Rank::Text),
        };
    }
    if write {
        return if s.is_nobits() {
            if is_c_identifier(name) {
                (name, Rank::OtherBss)
            } else {
                (b".bss", Rank::Bss)
            }
        } else if has_prefix(name, b".data.rel.ro") {
            (b".data.rel.ro", Rank::DataRelRo)
        } else if is_c_identifier(name) {
            (name, Rank::OtherData)
        } else {
            (b".data", Rank::Data)
        };
    }
    if name == b".eh_frame" || s.sh_type == elf::SHT_X86_64_UNWIND {
        (b".eh_frame", Rank::EhFrame)
    } else if has_prefix(name, b".gcc_except_table") {
        (b".gcc_except_table", Rank::GccExceptTable)
    } else if is_c_identifier(name) {
        (name, Rank::OtherRo)
    } else {
        (b".rodata", Rank::Rodata)
    }
}

/// GNU ld's order for `.init_array.N`/`.fini_array.N`: by priority, unsuffixed last.
/// `.ctors.N` counts priorities down from 65535, so it sorts by `65535 - N`.
fn init_priority(name: &[u8]) -> u32 {
    let digits = name.rsplit(|&c| c == b'.').next().unwrap_or_default();
    let Some(n) = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u16>().ok())
    else {
        return u32::from(u16::MAX) + 1;
    };
    if is_ctors_dtors(name) {
        u32::from(u16::MAX - n)
    } else {
        u32::from(n)
    }
}

fn is_ctors_dtors(name: &[u8]) -> bool {
    has_prefix(name, b".ctors") || has_prefix(name, b".dtors")
}

/// crtbegin*.o/crtend*.o, by file name (GNU ld's `*crtbegin?.o` patterns).
fn is_crt_list_object(name: &str) -> bool {
    let file = name.rsplit(['/', '(']).next().unwrap_or(name);
    let file = file.trim_end_matches(')');
    ["crtbegin", "crtend"].iter().any(|p| {
        file.strip_prefix(p)
            .and_then(|rest| rest.strip_suffix(".o"))
            .is_some_and(|mid| mid.len() <= 1)
    })
}

/// Pointers of `.ctors`/`.dtors` run last to first; in the init arrays, which run first to
/// last, they are stored in reverse (as GNU ld does). Maps an offset into such a section.
pub(super) fn reversed_offset(size: u64, offset: u64) -> u64 {
    const WORD: u64 = 8;
    if offset >= size {
        offset
    } else {
        size - WORD - (offset - offset % WORD) + offset % WORD
    }
}

impl Rank {
    /// Whether the order of the input sections inside the output section carries no meaning,
    /// so randomization may shuffle them: not `.init`/`.fini` (crti/crtn frame the code
    /// between them), the init/fini arrays and `.ctors`/`.dtors` (order is run order),
    /// `.eh_frame` (crtend's terminator is last), TLS (the thread pointer's offsets), notes.
    pub(super) fn shufflable(self) -> bool {
        matches!(
            self,
            Rank::Text
                | Rank::OtherExec
                | Rank::Rodata
                | Rank::OtherRo
                | Rank::DataRelRo
                | Rank::Data
                | Rank::OtherData
                | Rank::Bss
                | Rank::OtherBss
        )
    }
}

/// An output section being gathered: its name, kind and inputs in order.
pub(super) struct Builder<'d> {
    pub name: &'d [u8],
    pub rank: Rank,
    pub inputs: Vec<SectionId>,
}

/// The kept input sections gathered into output sections.
pub(super) struct Mapping<'a> {
    /// In first-seen order; layout adds the synthetic sections and sorts them by rank.
    pub builders: Vec<Builder<'a>>,
    /// `.ctors`/`.dtors` inputs stored word-reversed in an init array.
    pub reversed: FxHashSet<SectionId>,
}

impl<'a> Mapping<'a> {
    pub fn of(graph: &'a SectionGraph<'a>) -> Self {
        let db = graph.db;
        let mut builders: Vec<Builder<'a>> = Vec::new();
        let mut reversed = FxHashSet::default();
        let mut by_name: FxHashMap<(&'a [u8], Rank), usize> = FxHashMap::default();
        for id in graph.kept_sections() {
            let s = db.object(id.object).section(id.index);
            let crt_lists = is_crt_list_object(&db.object(id.object).name);
            let (name, rank) = output_section_for(s, crt_lists);
            if matches!(rank, Rank::InitArray | Rank::FiniArray)
                && is_ctors_dtors(s.name)
                && s.size.is_multiple_of(8)
            {
                reversed.insert(id);
            }
            let i = *by_name.entry((name, rank)).or_insert_with(|| {
                builders.push(Builder {
                    name,
                    rank,
                    inputs: Vec::new(),
                });
                builders.len() - 1
            });
            builders[i].inputs.push(id);
        }
        for b in &mut builders {
            if matches!(
                b.rank,
                Rank::InitArray | Rank::FiniArray | Rank::PreinitArray
            ) {
                b.inputs
                    .sort_by_key(|id| init_priority(db.object(id.object).section(id.index).name));
            }
        }
        Mapping { builders, reversed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_name_components() {
        assert!(has_prefix(b".text", b".text"));
        assert!(has_prefix(b".text.hot.f", b".text"));
        assert!(!has_prefix(b".textual", b".text"));
        assert!(!has_prefix(b".tex", b".text"));
        assert!(is_c_identifier(b"my_section1"));
        assert!(!is_c_identifier(b".data"));
        assert!(!is_c_identifier(b"1st"));
        assert!(!is_c_identifier(b""));
    }

    #[test]
    fn init_arrays_sort_by_priority_with_ctors_counting_down() {
        assert!(init_priority(b".init_array.100") < init_priority(b".init_array.200"));
        assert!(init_priority(b".init_array.65535") < init_priority(b".init_array"));
        // .ctors.65435 is priority 100.
        assert_eq!(init_priority(b".ctors.65435"), 100);
        assert_eq!(init_priority(b".dtors.65535"), 0);
        assert!(is_ctors_dtors(b".ctors.1"));
        assert!(!is_ctors_dtors(b".init_array.1"));
    }

    #[test]
    fn crt_list_objects_are_crtbegin_and_crtend_only() {
        for name in [
            "crtbegin.o",
            "/usr/lib/gcc/x86_64-linux-gnu/12/crtbeginT.o",
            "crtend.o",
            "libgcc.a(crtendS.o)",
        ] {
            assert!(is_crt_list_object(name), "{name}");
        }
        for name in ["crti.o", "crtbeginXY.o", "mycrtbegin.c.o", "crtend.obj"] {
            assert!(!is_crt_list_object(name), "{name}");
        }
    }

    #[test]
    fn reversed_words_keep_their_bytes_in_order() {
        // Three words: word 0 lands last, and an offset inside a word keeps its place in it.
        assert_eq!(reversed_offset(24, 0), 16);
        assert_eq!(reversed_offset(24, 3), 19);
        assert_eq!(reversed_offset(24, 16), 0);
        // The end of the section stays the end.
        assert_eq!(reversed_offset(24, 24), 24);
    }

    #[test]
    fn ranks_order_segments_and_flags() {
        assert_eq!(Rank::Text.segment(), SegmentKind::Exec);
        assert_eq!(Rank::EhFrame.segment(), SegmentKind::ReadOnly);
        assert_eq!(Rank::Tbss.segment(), SegmentKind::Writable);
        assert_eq!(Rank::Tbss.sh_type(), elf::SHT_NOBITS);
        assert_ne!(Rank::Tdata.flags() & u64::from(elf::SHF_TLS), 0);
        assert_eq!(Rank::Data.flags() & u64::from(elf::SHF_TLS), 0);
        assert!(Rank::Text.shufflable());
        assert!(!Rank::InitArray.shufflable());
        let mut ranks = [Rank::Bss, Rank::Got, Rank::Text, Rank::Note];
        ranks.sort();
        assert_eq!(ranks, [Rank::Note, Rank::Text, Rank::Got, Rank::Bss]);
    }
}
