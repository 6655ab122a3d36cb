//! The mount table and open files: a path goes to the volume mounted at its longest matching
//! mount point, or to the baked archive when no volume covers it.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use spinning_top::Spinlock;

use crate::baked;
use crate::path::{self, normalize, strip_mount};
use crate::{DirEntry, Error, FileType, Metadata, OpenOptions, Result, SeekFrom};

/// A mounted file system, as the `fs` component implements it. Files are numbers the volume
/// hands out; paths are absolute inside the volume.
pub(crate) trait Volume: Send {
    /// Whether writes are refused (a read-only disk or a read-only volume in the manifest).
    fn readonly(&self) -> bool;
    fn open(&mut self, path: &str, options: &OpenOptions) -> Result<u32>;
    fn close(&mut self, file: u32) -> Result<()>;
    fn read(&mut self, file: u32, buf: &mut [u8]) -> Result<usize>;
    fn write(&mut self, file: u32, data: &[u8]) -> Result<usize>;
    fn seek(&mut self, file: u32, pos: SeekFrom) -> Result<u64>;
    fn set_len(&mut self, file: u32, len: u64) -> Result<()>;
    fn len(&mut self, file: u32) -> Result<u64>;
    /// Commits the file and flushes the disk.
    fn sync(&mut self, file: u32) -> Result<()>;
    fn metadata(&mut self, path: &str) -> Result<Metadata>;
    fn create_dir(&mut self, path: &str) -> Result<()>;
    /// Removes a file or an empty directory.
    fn remove(&mut self, path: &str) -> Result<()>;
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;
    fn read_dir(&mut self, path: &str) -> Result<Vec<(String, Metadata)>>;
    /// Makes an empty file system and mounts it, closing nothing (no file can be open on a
    /// volume that is not mounted, and formatting a mounted one is refused).
    fn format(&mut self) -> Result<()>;
}

struct Mount {
    /// Normalised absolute path.
    at: String,
    volume: Box<dyn Volume>,
}

/// Mounts are only ever added, so an index into the table names one for good.
static MOUNTS: Spinlock<Vec<Mount>> = Spinlock::new(Vec::new());

/// Adds `volume` at `at` (normalised here).
pub(crate) fn mount(at: &str, volume: Box<dyn Volume>) -> Result<()> {
    let at = normalize(at)?;
    let mut mounts = MOUNTS.lock();
    if mounts.iter().any(|m| m.at == at) {
        return Err(Error::AlreadyMounted);
    }
    mounts.push(Mount { at, volume });
    Ok(())
}

/// The mount points, in the order they were mounted.
pub fn mounts() -> Vec<String> {
    MOUNTS.lock().iter().map(|m| m.at.clone()).collect()
}

/// Where a normalised path lives.
enum Place<'p> {
    /// On the volume at this index of the table, at this path inside it.
    Volume(usize, &'p str),
    Baked,
}

fn place<'p>(mounts: &[Mount], path: &'p str) -> Place<'p> {
    mounts
        .iter()
        .enumerate()
        .filter_map(|(index, m)| Some((index, m.at.len(), strip_mount(path, &m.at)?)))
        .max_by_key(|&(_, len, _)| len)
        .map_or(Place::Baked, |(index, _, rest)| Place::Volume(index, rest))
}

/// An open file.
#[derive(Debug)]
pub struct File {
    inner: Inner,
    readable: bool,
    writable: bool,
}

#[derive(Debug)]
enum Inner {
    Baked {
        data: &'static [u8],
        pos: u64,
    },
    Volume {
        mount: usize,
        file: u32,
    },
    /// After `close`.
    Closed,
}

pub(crate) fn open(path: &str, options: &OpenOptions) -> Result<File> {
    let path = normalize(path)?;
    let readable = options.read;
    let writable = options.writes();
    if !readable && !writable {
        return Err(Error::InvalidInput);
    }
    let mut mounts = MOUNTS.lock();
    let inner = match place(&mounts, &path) {
        Place::Volume(mount, rest) => {
            let volume = &mut mounts[mount].volume;
            if writable && volume.readonly() {
                return Err(Error::ReadOnly);
            }
            Inner::Volume {
                mount,
                file: volume.open(rest, options)?,
            }
        }
        Place::Baked => match baked::lookup(&path) {
            Some(baked::Node::File(data)) if !writable => Inner::Baked { data, pos: 0 },
            Some(baked::Node::Dir) => return Err(Error::IsADirectory),
            Some(baked::Node::File(_)) => return Err(Error::ReadOnly),
            None if writable => return Err(Error::ReadOnly),
            None => return Err(Error::NotFound),
        },
    };
    Ok(File {
        inner,
        readable,
        writable,
    })
}

impl File {
    /// Opens for reading.
    pub fn open(path: &str) -> Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens for writing, creating the file or cutting it to nothing.
    pub fn create(path: &str) -> Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    fn with_volume<T>(&self, f: impl FnOnce(&mut dyn Volume, u32) -> Result<T>) -> Result<T> {
        match self.inner {
            Inner::Volume { mount, file } => f(&mut *MOUNTS.lock()[mount].volume, file),
            Inner::Baked { .. } | Inner::Closed => Err(Error::InvalidInput),
        }
    }

    /// Reads up to `buf.len()` bytes; 0 at the end of the file.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if !self.readable {
            return Err(Error::WriteOnly);
        }
        match &mut self.inner {
            Inner::Baked { data, pos } => {
                let start = usize::try_from(*pos).unwrap_or(usize::MAX).min(data.len());
                let n = buf.len().min(data.len() - start);
                buf[..n].copy_from_slice(&data[start..start + n]);
                *pos += n as u64;
                Ok(n)
            }
            _ => self.with_volume(|v, file| v.read(file, buf)),
        }
    }

    /// Reads to the end of the file, appending to `out`; returns the bytes read.
    pub fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<usize> {
        let start = out.len();
        if let Ok(len) = self.len() {
            out.try_reserve(usize::try_from(len).unwrap_or(0))
                .map_err(|_| Error::OutOfMemory)?;
        }
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(out.len() - start);
            }
            out.try_reserve(n).map_err(|_| Error::OutOfMemory)?;
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes up to `data.len()` bytes at the position (at the end when opened to append).
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        self.with_volume(|v, file| v.write(file, data))
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match self.write(data)? {
                0 => return Err(Error::WriteZero),
                n => data = &data[n..],
            }
        }
        Ok(())
    }

    /// Moves the position; returns the new one.
    pub fn seek(&mut self, to: SeekFrom) -> Result<u64> {
        match &mut self.inner {
            Inner::Baked { data, pos } => {
                let base = match to {
                    SeekFrom::Start(n) => Some(n),
                    SeekFrom::End(n) => (data.len() as u64).checked_add_signed(n),
                    SeekFrom::Current(n) => pos.checked_add_signed(n),
                };
                *pos = base.ok_or(Error::InvalidInput)?;
                Ok(*pos)
            }
            _ => self.with_volume(|v, file| v.seek(file, to)),
        }
    }

    /// Cuts or extends (with zeros) the file to `len` bytes.
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        self.with_volume(|v, file| v.set_len(file, len))
    }

    pub fn len(&self) -> Result<u64> {
        match &self.inner {
            Inner::Baked { data, .. } => Ok(data.len() as u64),
            _ => self.with_volume(|v, file| v.len(file)),
        }
    }

    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|len| len == 0)
    }

    pub fn metadata(&self) -> Result<Metadata> {
        let readonly = match &self.inner {
            Inner::Volume { mount, .. } => MOUNTS.lock()[*mount].volume.readonly(),
            _ => true,
        };
        Ok(Metadata {
            file_type: FileType::File,
            len: self.len()?,
            readonly,
        })
    }

    /// Commits what was written (atomically: after a power loss the file holds all of it or
    /// what it held before) and flushes the disk's cache.
    pub fn sync_all(&mut self) -> Result<()> {
        match self.inner {
            Inner::Baked { .. } => Ok(()),
            _ => self.with_volume(|v, file| v.sync(file)),
        }
    }

    /// Closes the file, committing what was written, and reports a failed commit (dropping
    /// a `File` commits too, but cannot report).
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        match core::mem::replace(&mut self.inner, Inner::Closed) {
            Inner::Volume { mount, file } => MOUNTS.lock()[mount].volume.close(file),
            Inner::Baked { .. } | Inner::Closed => Ok(()),
        }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

pub(crate) fn metadata(path: &str) -> Result<Metadata> {
    let path = normalize(path)?;
    let mut mounts = MOUNTS.lock();
    match place(&mounts, &path) {
        Place::Volume(mount, rest) => {
            let volume = &mut mounts[mount].volume;
            let readonly = volume.readonly();
            volume.metadata(rest).map(|m| Metadata { readonly, ..m })
        }
        Place::Baked => baked::metadata(&path),
    }
}

pub(crate) fn create_dir(path: &str) -> Result<()> {
    let path = normalize(path)?;
    let mut mounts = MOUNTS.lock();
    match place(&mounts, &path) {
        Place::Volume(mount, rest) => writable(&mut mounts[mount])?.create_dir(rest),
        Place::Baked if baked::lookup(&path).is_some() => Err(Error::AlreadyExists),
        Place::Baked => Err(Error::ReadOnly),
    }
}

fn writable(mount: &mut Mount) -> Result<&mut dyn Volume> {
    if mount.volume.readonly() {
        Err(Error::ReadOnly)
    } else {
        Ok(&mut *mount.volume)
    }
}

pub(crate) fn remove(path: &str, expected: FileType) -> Result<()> {
    let path = normalize(path)?;
    let mut mounts = MOUNTS.lock();
    match place(&mounts, &path) {
        Place::Volume(_, "/") => Err(Error::ReadOnly),
        Place::Volume(mount, rest) => {
            let volume = writable(&mut mounts[mount])?;
            match (volume.metadata(rest)?.file_type, expected) {
                (FileType::Dir, FileType::File) => Err(Error::IsADirectory),
                (FileType::File, FileType::Dir) => Err(Error::NotADirectory),
                _ => volume.remove(rest),
            }
        }
        Place::Baked => match baked::lookup(&path) {
            Some(_) => Err(Error::ReadOnly),
            None => Err(Error::NotFound),
        },
    }
}

pub(crate) fn rename(from: &str, to: &str) -> Result<()> {
    let (from, to) = (normalize(from)?, normalize(to)?);
    let mut mounts = MOUNTS.lock();
    match (place(&mounts, &from), place(&mounts, &to)) {
        (Place::Volume(a, from), Place::Volume(b, to)) if a == b => {
            if from == "/" || to == "/" {
                return Err(Error::InvalidInput);
            }
            writable(&mut mounts[a])?.rename(from, to)
        }
        (Place::Baked, Place::Baked) => match baked::lookup(&from) {
            Some(_) => Err(Error::ReadOnly),
            None => Err(Error::NotFound),
        },
        _ => Err(Error::CrossesDevices),
    }
}

pub(crate) fn read_dir(path: &str) -> Result<Vec<DirEntry>> {
    let path = normalize(path)?;
    let mut mounts = MOUNTS.lock();
    let mut entries: Vec<DirEntry> = match place(&mounts, &path) {
        Place::Volume(mount, rest) => {
            let volume = &mut mounts[mount].volume;
            let readonly = volume.readonly();
            volume
                .read_dir(rest)?
                .into_iter()
                .map(|(name, metadata)| DirEntry {
                    path: path::join(&path, &name),
                    name,
                    metadata: Metadata {
                        readonly,
                        ..metadata
                    },
                })
                .collect()
        }
        Place::Baked => baked::read_dir(&path)?,
    };
    // Mount points directly below `path` show as directories, wherever their parent lives.
    for m in mounts.iter() {
        let Some(rest) = strip_mount(&m.at, &path) else {
            continue;
        };
        let name = rest.trim_start_matches('/');
        if !name.is_empty() && !name.contains('/') && !entries.iter().any(|e| e.name == name) {
            entries.push(DirEntry {
                path: m.at.clone(),
                name: String::from(path::file_name(&m.at)),
                metadata: Metadata {
                    file_type: FileType::Dir,
                    len: 0,
                    readonly: m.volume.readonly(),
                },
            });
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

pub(crate) fn format(mount_point: &str) -> Result<()> {
    let at = normalize(mount_point)?;
    let mut mounts = MOUNTS.lock();
    let mount = mounts
        .iter_mut()
        .find(|m| m.at == at)
        .ok_or(Error::NotMounted)?;
    writable(mount)?.format()
}

#[cfg(test)]
pub(crate) fn reset() {
    MOUNTS.lock().clear();
}
