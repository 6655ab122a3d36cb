//! Independent checks of a linked executable, made with goblin rather than with the code that
//! wrote it: loadable segments must not overlap, none may be both writable and executable,
//! each must be loadable as mapped (offset and address congruent, file bytes inside the file)
//! and the entry point must lie in an executable segment.

use std::path::Path;

use goblin::elf::Elf;
use goblin::elf::program_header::{PF_W, PF_X, PT_LOAD};

/// Every problem found, so one failure message shows them all; empty when the image is sound.
pub fn problems(path: &Path) -> Vec<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => return vec![format!("cannot read {}: {error}", path.display())],
    };
    let elf = match Elf::parse(&bytes) {
        Ok(elf) => elf,
        Err(error) => return vec![format!("goblin cannot parse {}: {error}", path.display())],
    };
    let mut found = Vec::new();
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .collect();
    if loads.is_empty() {
        found.push("no PT_LOAD segment".to_string());
    }
    for (i, ph) in loads.iter().enumerate() {
        let describe = || format!("PT_LOAD #{i} at {:#x}", ph.p_vaddr);
        if ph.p_flags & PF_W != 0 && ph.p_flags & PF_X != 0 {
            found.push(format!("{} is writable and executable", describe()));
        }
        if ph.p_filesz > ph.p_memsz {
            found.push(format!("{} has p_filesz > p_memsz", describe()));
        }
        if ph
            .p_offset
            .checked_add(ph.p_filesz)
            .is_none_or(|end| end > bytes.len() as u64)
        {
            found.push(format!(
                "{} has file bytes past the end of the file",
                describe()
            ));
        }
        if ph.p_align > 1 && ph.p_offset % ph.p_align != ph.p_vaddr % ph.p_align {
            found.push(format!(
                "{} has offset {:#x} not congruent to its address modulo {:#x}",
                describe(),
                ph.p_offset,
                ph.p_align
            ));
        }
        for (j, other) in loads.iter().enumerate().skip(i + 1) {
            let overlaps = ph.p_vaddr < other.p_vaddr.saturating_add(other.p_memsz)
                && other.p_vaddr < ph.p_vaddr.saturating_add(ph.p_memsz);
            if overlaps {
                found.push(format!(
                    "{} [{:#x}, {:#x}) overlaps PT_LOAD #{j} [{:#x}, {:#x})",
                    describe(),
                    ph.p_vaddr,
                    ph.p_vaddr + ph.p_memsz,
                    other.p_vaddr,
                    other.p_vaddr + other.p_memsz
                ));
            }
        }
    }
    let entry = elf.entry;
    let entry_executable = loads
        .iter()
        .any(|ph| ph.p_flags & PF_X != 0 && ph.p_vaddr <= entry && entry < ph.p_vaddr + ph.p_memsz);
    if !entry_executable {
        found.push(format!(
            "entry point {entry:#x} is not inside an executable PT_LOAD segment"
        ));
    }
    found
}
