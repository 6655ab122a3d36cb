//! Independent checks of a linked executable, made with goblin rather than with the code that
//! wrote it: loadable segments must not overlap, none may be both writable and executable,
//! each must be loadable as mapped (offset and address congruent, file bytes inside the file),
//! every allocated section with file contents must sit in a segment at the file offset its
//! address implies (otherwise the loader maps other bytes at that address), and the entry
//! point must lie in an executable segment.

use std::path::Path;

use goblin::elf::Elf;
use goblin::elf::program_header::{PF_W, PF_X, PT_LOAD};
use goblin::elf::section_header::{SHF_ALLOC, SHT_NOBITS};

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
    for sh in &elf.section_headers {
        if sh.sh_flags & u64::from(SHF_ALLOC) == 0 || sh.sh_type == SHT_NOBITS || sh.sh_size == 0 {
            continue;
        }
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("<unnamed>");
        let end = sh.sh_addr.saturating_add(sh.sh_size);
        let segment = loads
            .iter()
            .find(|ph| ph.p_vaddr <= sh.sh_addr && end <= ph.p_vaddr.saturating_add(ph.p_filesz));
        match segment {
            None => found.push(format!(
                "section {name} [{:#x}, {end:#x}) is not inside the file-backed part of any PT_LOAD",
                sh.sh_addr
            )),
            Some(ph) => {
                let mapped_from = ph.p_offset + (sh.sh_addr - ph.p_vaddr);
                if sh.sh_offset != mapped_from {
                    found.push(format!(
                        "section {name} at {:#x} has its bytes at file offset {:#x}, but the \
                         segment maps file offset {mapped_from:#x} there",
                        sh.sh_addr, sh.sh_offset
                    ));
                }
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
