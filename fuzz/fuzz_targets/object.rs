//! The analyzer's ELF object parser on arbitrary bytes, then what later phases ask of a parsed
//! object: section contents (decompressed), relocations, symbols by section.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use uniklink_analyzer::input::InputId;
use uniklink_analyzer::object::{self, ObjectId};

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = object::parse(ObjectId(0), InputId(0), "fuzz.o".into(), false, data) else {
        return;
    };
    for section in &parsed.sections {
        let _ = section.contents();
        for reloc in section.relocs() {
            std::hint::black_box(reloc);
        }
    }
    let by_section = parsed.symbols_by_section();
    for index in parsed.sections.ids() {
        std::hint::black_box(by_section.of(index));
        std::hint::black_box(parsed.section_name(index));
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    uniklink_fuzz::mutate_elf(data, size, max_size, seed)
});
