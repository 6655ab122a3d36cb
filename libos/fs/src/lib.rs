//! The file API of the uniklink library OS (`unik::fs`, the `fs` feature of `unik`).
//!
//! One tree of absolute paths. Volumes (littlefs on virtio-blk disks, the `fs` component) are
//! mounted at their mount points; everything else is the read-only archive of files the
//! manifest's `files` baked into the image, read in place without copying it to the heap.
//!
//! The mount table holds volumes as trait objects that only the `fs` component creates, so the
//! file API alone reaches neither littlefs nor the disk driver: an app that reads baked files
//! keeps the archive reader and nothing more.
#![no_std]

extern crate alloc;

mod baked;
mod error;
mod path;
mod vfs;
// Volumes are made on the bare-metal targets (from disks) and in the host's unit tests.
#[cfg_attr(not(any(test, target_os = "none")), expect(dead_code))]
mod volume;

use alloc::string::String;
use alloc::vec::Vec;

#[doc(hidden)]
pub use baked::inspect as inspect_baked;
pub use error::Error;
pub use vfs::{File, mounts};
#[cfg(target_os = "none")]
pub use volume::mount;

pub type Result<T> = core::result::Result<T, Error>;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    File,
    Dir,
}

/// A file's or directory's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    file_type: FileType,
    len: u64,
    readonly: bool,
}

impl Metadata {
    pub fn file_type(&self) -> FileType {
        self.file_type
    }

    pub fn is_file(&self) -> bool {
        self.file_type == FileType::File
    }

    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Dir
    }

    /// Bytes; 0 for a directory.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it lies on a read-only volume or in the baked archive.
    pub fn readonly(&self) -> bool {
        self.readonly
    }
}

/// One entry of [`read_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    path: String,
    name: String,
    metadata: Metadata,
}

impl DirEntry {
    /// The entry's full path.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn file_name(&self) -> &str {
        &self.name
    }

    pub fn metadata(&self) -> Metadata {
        self.metadata
    }
}

/// Where a seek counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekFrom {
    Start(u64),
    End(i64),
    Current(i64),
}

/// How to open a file, as `std::fs::OpenOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
}

impl OpenOptions {
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    pub fn open(&self, path: &str) -> Result<File> {
        vfs::open(path, self)
    }

    fn writes(&self) -> bool {
        self.write || self.append || self.truncate || self.create || self.create_new
    }
}

/// The whole file.
pub fn read(path: &str) -> Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(data)
}

/// The whole file, which must be UTF-8.
pub fn read_to_string(path: &str) -> Result<String> {
    String::from_utf8(read(path)?).map_err(|_| Error::InvalidData)
}

/// Creates or replaces the file with `data`, committed (not yet flushed: see
/// [`File::sync_all`]) when this returns.
pub fn write(path: &str, data: &[u8]) -> Result<()> {
    let mut file = File::create(path)?;
    file.write_all(data)?;
    file.close()
}

pub fn metadata(path: &str) -> Result<Metadata> {
    vfs::metadata(path)
}

pub fn create_dir(path: &str) -> Result<()> {
    vfs::create_dir(path)
}

/// Creates the directory and every missing parent.
pub fn create_dir_all(path: &str) -> Result<()> {
    let normal = path::normalize(path)?;
    let mut prefix = String::new();
    for component in normal.split('/').filter(|c| !c.is_empty()) {
        prefix.push('/');
        prefix.push_str(component);
        match vfs::metadata(&prefix) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => return Err(Error::NotADirectory),
            Err(Error::NotFound) => vfs::create_dir(&prefix)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The entries of a directory, `.` and `..` left out.
pub fn read_dir(path: &str) -> Result<Vec<DirEntry>> {
    vfs::read_dir(path)
}

pub fn remove_file(path: &str) -> Result<()> {
    vfs::remove(path, FileType::File)
}

/// Removes an empty directory.
pub fn remove_dir(path: &str) -> Result<()> {
    vfs::remove(path, FileType::Dir)
}

/// Renames atomically within one volume, replacing a file or an empty directory at `to`.
pub fn rename(from: &str, to: &str) -> Result<()> {
    vfs::rename(from, to)
}

/// Writes an empty file system over the volume mounted at `mount_point` and mounts it: what
/// an app does when the volume's disk is new or damaged ([`Error::Corrupt`]).
pub fn format(mount_point: &str) -> Result<()> {
    vfs::format(mount_point)
}

#[cfg(test)]
mod tests;
