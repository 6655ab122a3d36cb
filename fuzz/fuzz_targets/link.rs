//! A whole link: one fuzzed object (a mutation of `seeds/start.o`) with a fixed mini libc
//! archive (`seeds/libmini.a`, whose members the object needs). The link must give an image
//! or an error, never a panic, an abort or an allocation out of proportion to the input.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use uniklink::pipeline::{LinkOptions, link};

const LIBMINI: &[u8] = include_bytes!("../seeds/libmini.a");

struct Scratch {
    _dir: tempfile::TempDir,
    object: PathBuf,
    archive: PathBuf,
    output: PathBuf,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let archive = dir.path().join("libmini.a");
        std::fs::write(&archive, LIBMINI).expect("libmini.a");
        Scratch {
            object: dir.path().join("fuzz.o"),
            output: dir.path().join("out.elf"),
            archive,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    std::fs::write(&s.object, data).expect("write the object");
    let _ = std::fs::remove_file(&s.output);
    let opts = LinkOptions::new(vec![s.object.clone(), s.archive.clone()], s.output.clone());
    let _ = link(&opts);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    uniklink_fuzz::mutate_elf(data, size, max_size, seed)
});
