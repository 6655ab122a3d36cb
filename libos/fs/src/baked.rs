//! The files the manifest's `files` baked into the image: a cpio archive ("newc") in
//! `.rodata`, read in place. `cargo uniklink build` writes it with every directory as an entry
//! of its own, entries sorted, names relative to `/`.
//!
//! The archive is the symbol `__uniklink_files` with its length in `__uniklink_files_size`,
//! both defined by the object `build` generates; the weak definitions here (an empty archive)
//! stand in when an image has no baked files or is linked without uniklink.

use alloc::string::String;
use alloc::vec::Vec;

use crate::path::{file_name, join, strip_mount};
use crate::{DirEntry, Error, FileType, Metadata, Result};

/// What a path names in the archive.
pub(crate) enum Node<'a> {
    File(&'a [u8]),
    Dir,
}

#[cfg(not(test))]
core::arch::global_asm!(
    ".pushsection .rodata.__uniklink_files,\"a\",%progbits",
    ".weak __uniklink_files",
    ".type __uniklink_files,%object",
    "__uniklink_files:",
    ".popsection",
    ".pushsection .rodata.__uniklink_files_size,\"a\",%progbits",
    ".weak __uniklink_files_size",
    ".type __uniklink_files_size,%object",
    ".size __uniklink_files_size, 8",
    ".balign 8",
    "__uniklink_files_size:",
    ".quad 0",
    ".popsection",
);

#[cfg(not(test))]
fn archive() -> &'static [u8] {
    unsafe extern "C" {
        static __uniklink_files: u8;
        static __uniklink_files_size: u64;
    }
    // SAFETY: the two symbols describe one byte array in `.rodata`, defined together, either
    // here (empty) or by the object `cargo uniklink build` generates.
    unsafe {
        let len = usize::try_from(__uniklink_files_size).unwrap_or(0);
        core::slice::from_raw_parts(&raw const __uniklink_files, len)
    }
}

#[cfg(test)]
fn archive() -> &'static [u8] {
    tests::ARCHIVE.with(|a| *a.borrow())
}

/// The archive's entries as (absolute path, node); damaged entries end the archive, as the
/// reader stops at the first header it cannot read.
fn entries(archive: &[u8]) -> impl Iterator<Item = (&str, Node<'_>)> {
    cpio_reader::iter_files(archive).filter_map(|entry| {
        let name = entry.name();
        let name = name
            .strip_prefix('.')
            .unwrap_or(name)
            .trim_start_matches('/');
        if name == "TRAILER!!!" {
            return None;
        }
        let node = match entry.mode().bits() & FORMAT_MASK {
            DIRECTORY => Node::Dir,
            REGULAR => Node::File(entry.file()),
            _ => return None,
        };
        Some((name, node))
    })
}

const FORMAT_MASK: u32 = 0o170_000;
const DIRECTORY: u32 = 0o040_000;
const REGULAR: u32 = 0o100_000;

/// The node at normalised absolute `path`. A directory may also be implied by the files below
/// it; the root always exists.
pub(crate) fn lookup(path: &str) -> Option<Node<'static>> {
    lookup_in(archive(), path)
}

fn lookup_in<'a>(archive: &'a [u8], path: &str) -> Option<Node<'a>> {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return Some(Node::Dir);
    }
    let mut implied = false;
    for (name, node) in entries(archive) {
        if name == relative {
            return Some(node);
        }
        implied |= strip_mount(name, relative).is_some_and(|rest| rest != "/");
    }
    implied.then_some(Node::Dir)
}

pub(crate) fn metadata(path: &str) -> Result<Metadata> {
    metadata_in(archive(), path)
}

fn metadata_in(archive: &[u8], path: &str) -> Result<Metadata> {
    let (file_type, len) = match lookup_in(archive, path).ok_or(Error::NotFound)? {
        Node::File(data) => (FileType::File, data.len() as u64),
        Node::Dir => (FileType::Dir, 0),
    };
    Ok(Metadata {
        file_type,
        len,
        readonly: true,
    })
}

pub(crate) fn read_dir(path: &str) -> Result<Vec<DirEntry>> {
    read_dir_in(archive(), path)
}

fn read_dir_in(archive: &[u8], path: &str) -> Result<Vec<DirEntry>> {
    match lookup_in(archive, path) {
        Some(Node::Dir) => {}
        Some(Node::File(_)) => return Err(Error::NotADirectory),
        None => return Err(Error::NotFound),
    }
    let relative = path.trim_start_matches('/');
    let mut out: Vec<DirEntry> = Vec::new();
    for (name, node) in entries(archive) {
        let rest = if relative.is_empty() {
            name
        } else {
            match strip_mount(name, relative) {
                Some(rest) if rest != "/" => rest.trim_start_matches('/'),
                _ => continue,
            }
        };
        // A deeper entry implies the directory on the way to it.
        let (child, metadata) = match rest.split_once('/') {
            Some((dir, _)) => (dir, dir_metadata()),
            None => (rest, node_metadata(&node)),
        };
        if child.is_empty() || out.iter().any(|e| e.name == child) {
            continue;
        }
        let full = join(path, child);
        out.push(DirEntry {
            name: String::from(file_name(&full)),
            path: full,
            metadata,
        });
    }
    Ok(out)
}

/// The baked-files reader over an archive given in memory rather than the image's own, for the
/// host: the metadata of the normalised absolute `path` and, for a directory, its entries,
/// exactly as [`crate::metadata`] and [`crate::read_dir`] report them for a baked path. The
/// fuzz target `cpio` reads archives through it.
#[doc(hidden)]
pub fn inspect(archive: &[u8], path: &str) -> Result<(Metadata, Vec<DirEntry>)> {
    let metadata = metadata_in(archive, path)?;
    let entries = match metadata.file_type {
        FileType::Dir => read_dir_in(archive, path)?,
        FileType::File => Vec::new(),
    };
    Ok((metadata, entries))
}

fn dir_metadata() -> Metadata {
    Metadata {
        file_type: FileType::Dir,
        len: 0,
        readonly: true,
    }
}

fn node_metadata(node: &Node) -> Metadata {
    match node {
        Node::File(data) => Metadata {
            file_type: FileType::File,
            len: data.len() as u64,
            readonly: true,
        },
        Node::Dir => dir_metadata(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    use core::cell::RefCell;
    use std::vec::Vec;

    std::thread_local! {
        pub(crate) static ARCHIVE: RefCell<&'static [u8]> = const { RefCell::new(&[]) };
    }

    /// A newc archive of `(name, mode, data)` entries, as `cargo uniklink build` writes one.
    pub(crate) fn newc(entries: &[(&str, u32, &[u8])]) -> &'static [u8] {
        let mut out = Vec::new();
        let trailer = [("TRAILER!!!", 0, &[][..])];
        for (ino, (name, mode, data)) in entries.iter().chain(&trailer).enumerate() {
            let header = std::format!(
                "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                ino,
                mode,
                0,
                0,
                1,
                0,
                data.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0
            );
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        std::boxed::Box::leak(out.into_boxed_slice())
    }

    pub(crate) fn install(entries: &[(&str, u32, &[u8])]) {
        let archive = newc(entries);
        ARCHIVE.with(|a| *a.borrow_mut() = archive);
    }
}
