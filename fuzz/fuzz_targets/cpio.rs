//! The baked-files reader (`unik-fs`, over `cpio_reader`): the archive of the manifest's
//! `files` as the guest's file API walks it, every directory listed from the root down and
//! every file's metadata read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unik_fs::{FileType, inspect_baked};

fuzz_target!(|archive: &[u8]| {
    let mut pending = vec![String::from("/")];
    // Each listing walks the whole archive; a bounded number keeps a run linear in its size.
    for _ in 0..64 {
        let Some(path) = pending.pop() else { break };
        let Ok((metadata, entries)) = inspect_baked(archive, &path) else {
            continue;
        };
        if metadata.file_type() == FileType::File {
            assert!(metadata.len() <= archive.len() as u64);
        }
        for entry in entries {
            assert!(entry.path().starts_with(path.as_str()), "{} under {path}", entry.path());
            pending.push(entry.path().to_owned());
        }
    }
});
