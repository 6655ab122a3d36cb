//! The linker-symbols sub-phase: the value of every global symbol once addresses are known,
//! the linker-defined ones (`_end`, `__init_array_start`, `__start_SECTION`, ...) computed
//! from the laid-out sections and segments.

use rayon::prelude::*;
use uniklink_analyzer::id::Idx;
use uniklink_analyzer::resolve::{Definition, SymbolId, start_stop_section};

use super::{Layout, OutputSection, Rank, Segment, SegmentKind};
use crate::error::Result;
use crate::image::virt;
use unik_platform::virt_map;

impl Layout<'_> {
    /// The end of the last segment in memory, `.bss` included.
    pub fn end(&self) -> u64 {
        self.placed().end()
    }

    fn placed(&self) -> Placed<'_> {
        Placed {
            base: self.base,
            headers_size: self.headers_size,
            got_addr: self.got_addr,
            sections: &self.sections,
            segments: &self.segments,
        }
    }

    /// Gives every global symbol its final value.
    pub(super) fn assign_globals(&mut self) -> Result<()> {
        let db = self.db;
        let placed = self.placed();
        let values = db
            .globals
            .as_slice()
            .par_iter()
            .enumerate()
            .map(|(i, g)| {
                Ok(match g.def {
                    Definition::Defined { object, index } => {
                        self.local_target(object, index, 0, None)?.addr
                    }
                    Definition::Common { .. } => self.commons[&SymbolId::from_index(i)],
                    Definition::Linker => linker_symbol(g.name, &placed),
                    Definition::Undefined => 0,
                })
            })
            .collect::<Result<Vec<u64>>>()?;
        self.global_addr = values.into();
        Ok(())
    }
}

/// The laid-out image as linker-defined symbols see it.
struct Placed<'l> {
    base: u64,
    headers_size: u64,
    got_addr: u64,
    sections: &'l [OutputSection],
    segments: &'l [Segment],
}

impl Placed<'_> {
    fn end(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.addr + s.mem_size)
            .max()
            .unwrap_or(self.base)
    }

    fn segment_end(&self, kind: SegmentKind) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.addr + s.mem_size)
    }

    fn section_bounds(&self, name: &[u8]) -> Option<(u64, u64)> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| (s.addr, s.addr + s.size))
    }
}

/// Value of the linker-defined symbol `name` in `image`; 0 for names it does not define.
fn linker_symbol(name: &[u8], image: &Placed<'_>) -> u64 {
    let rw = image
        .segments
        .iter()
        .find(|s| s.kind == SegmentKind::Writable);
    let image_end = image.end();
    let data_end = rw.map_or(image_end, |s| s.addr + s.file_size);
    let array = |n: &[u8], end: bool| {
        image
            .section_bounds(n)
            .map(|(s, e)| if end { e } else { s })
            .unwrap_or(rw.map_or(image_end, |s| s.addr))
    };
    match name {
        b"__ehdr_start" | b"__executable_start" => image.base,
        b"_etext" | b"etext" | b"__etext" => image
            .segment_end(SegmentKind::Exec)
            .unwrap_or(image.base + image.headers_size),
        b"_edata" | b"edata" => data_end,
        b"_end" | b"end" => image_end,
        b"__bss_start" => image.section_bounds(b".bss").map_or(data_end, |(s, _)| s),
        b"__init_array_start" => array(b".init_array", false),
        b"__init_array_end" => array(b".init_array", true),
        b"__fini_array_start" => array(b".fini_array", false),
        b"__fini_array_end" => array(b".fini_array", true),
        b"__preinit_array_start" => array(b".preinit_array", false),
        b"__preinit_array_end" => array(b".preinit_array", true),
        b"_GLOBAL_OFFSET_TABLE_" => image.got_addr,
        // By rank, not name: an input section may be called anything.
        virt::PAGE_TABLES_SYMBOL => image
            .sections
            .iter()
            .find(|s| s.rank == Rank::PageTables)
            .map_or(0, |s| s.addr + s.size - virt_map::LEVEL1_ENTRIES * 8),
        _ => match start_stop_section(name) {
            Some(sec) => {
                let (start, end) = image.section_bounds(sec).unwrap_or((0, 0));
                if name.starts_with(b"__start_") {
                    start
                } else {
                    end
                }
            }
            None => 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &[u8], rank: Rank, addr: u64, size: u64) -> OutputSection {
        OutputSection {
            name: name.to_vec(),
            rank,
            sh_type: rank.sh_type(),
            flags: rank.flags(),
            align: 8,
            addr,
            offset: 0,
            size,
            chunks: Vec::new(),
        }
    }

    fn segment(kind: SegmentKind, addr: u64, file_size: u64, mem_size: u64) -> Segment {
        Segment {
            kind,
            offset: 0,
            addr,
            file_size,
            mem_size,
            flags: 0,
        }
    }

    #[test]
    fn linker_symbols_bound_sections_and_segments() {
        let sections = [
            // An input note may take the tables' name; the symbol follows the rank.
            section(b".unik.page_tables", Rank::Note, 0x40_00b0, 0x40),
            section(b".text", Rank::Text, 0x40_1000, 0x100),
            section(b".unik.page_tables", Rank::PageTables, 0x40_2000, 0x3020),
            section(b".init_array", Rank::InitArray, 0x40_3000, 0x10),
            section(b"my_set", Rank::OtherData, 0x40_3010, 0x20),
            section(b".bss", Rank::Bss, 0x40_3040, 0x400),
        ];
        let segments = [
            segment(SegmentKind::Headers, 0x40_0000, 0xb0, 0xb0),
            segment(SegmentKind::Exec, 0x40_1000, 0x100, 0x100),
            segment(SegmentKind::Writable, 0x40_3000, 0x30, 0x440),
        ];
        let image = Placed {
            base: 0x40_0000,
            headers_size: 0xb0,
            got_addr: 0x40_3030,
            sections: &sections,
            segments: &segments,
        };
        let value = |name: &[u8]| linker_symbol(name, &image);
        assert_eq!(value(b"__executable_start"), 0x40_0000);
        assert_eq!(value(b"_etext"), 0x40_1100);
        assert_eq!(value(b"_edata"), 0x40_3030);
        assert_eq!(value(b"__bss_start"), 0x40_3040);
        assert_eq!(value(b"_end"), 0x40_3440);
        assert_eq!(value(b"__init_array_start"), 0x40_3000);
        assert_eq!(value(b"__init_array_end"), 0x40_3010);
        // Absent arrays are empty, at the start of the writable segment.
        assert_eq!(value(b"__fini_array_start"), 0x40_3000);
        assert_eq!(value(b"__fini_array_end"), 0x40_3000);
        assert_eq!(value(b"__start_my_set"), 0x40_3010);
        assert_eq!(value(b"__stop_my_set"), 0x40_3030);
        assert_eq!(value(b"_GLOBAL_OFFSET_TABLE_"), 0x40_3030);
        assert_eq!(value(b"__uniklink_page_tables"), 0x40_5000);
        assert_eq!(value(b"unknown"), 0);
        let without_tables = Placed {
            sections: &sections[..2],
            ..image
        };
        assert_eq!(linker_symbol(b"__uniklink_page_tables", &without_tables), 0);
    }
}
