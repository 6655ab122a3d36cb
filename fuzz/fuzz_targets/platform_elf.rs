//! The image's own ELF and program headers as the aarch64 runtime reads them at boot
//! (little-endian words), then the page permissions computed from the segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unik_platform::elf::{self, EHDR_WORDS, Segment};

fuzz_target!(|data: &[u8]| {
    let words: Vec<u64> = data
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let Ok(len) = elf::headers_words(&words[..words.len().min(EHDR_WORDS)]) else {
        return;
    };
    std::hint::black_box(len);
    let mut segments = [Segment {
        start: 0,
        end: 0,
        writable: false,
        executable: false,
    }; 16];
    let Ok(count) = elf::loaded_segments(&words, &mut segments) else {
        return;
    };
    let mut calls = 0usize;
    elf::block_access(&segments[..count], 0x4000_0000, 4096, 512, |_, _, _| calls += 1);
    std::hint::black_box(calls);
});
