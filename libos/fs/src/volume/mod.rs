//! The `fs` component: littlefs volumes. [`mount`] (and the init, for the manifest's
//! `volumes`) put a littlefs on a disk into the mount table; only this module makes volumes,
//! so only an app that mounts one keeps littlefs.
//!
//! A volume whose disk holds no file system (or a damaged one) is mounted anyway, in a failed
//! state: every call under it returns the mount's error until the app calls
//! [`crate::format`].

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use unik_lfs::{BlockDevice, Config, FileId, Filesystem, OpenFlags};

use crate::vfs::Volume;
use crate::{Error, FileType, Metadata, OpenOptions, Result, SeekFrom};

#[cfg(target_os = "none")]
mod disk;

#[cfg(target_os = "none")]
pub use disk::mount;

/// The component's parameters, as the glue object bakes them in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub config: Config,
    pub write_through: bool,
    /// Bytes a disk read fetches ahead of what littlefs asks for.
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub read_ahead: usize,
    /// Bytes of disk blocks kept in memory.
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub block_cache: usize,
}

enum State<D: BlockDevice> {
    Mounted(Filesystem<D>),
    /// The mount failed; the device (if there is one) waits for `format`.
    Failed(Option<D>, Error),
    /// Only while a transition is under way.
    Gone,
}

/// A littlefs on device `D`.
pub(crate) struct LfsVolume<D: BlockDevice> {
    state: State<D>,
    readonly: bool,
    params: Params,
}

impl<D: BlockDevice + Send + 'static> LfsVolume<D> {
    /// Mounts the littlefs on `device`; a failed mount is kept as the volume's state.
    pub(crate) fn new(device: D, readonly: bool, params: Params) -> LfsVolume<D> {
        let state = match Filesystem::mount(device, params.config) {
            Ok(fs) => State::Mounted(fs),
            Err((e, device)) => State::Failed(Some(device), error(e)),
        };
        LfsVolume {
            state,
            readonly,
            params,
        }
    }

    /// A volume whose disk is not attached: every call fails with [`Error::NoDevice`].
    pub(crate) fn missing(readonly: bool, params: Params) -> LfsVolume<D> {
        LfsVolume {
            state: State::Failed(None, Error::NoDevice),
            readonly,
            params,
        }
    }

    /// The error the mount failed with, if it did.
    pub(crate) fn mount_error(&self) -> Option<Error> {
        match &self.state {
            State::Failed(_, e) => Some(*e),
            _ => None,
        }
    }

    fn fs(&mut self) -> Result<&mut Filesystem<D>> {
        match &mut self.state {
            State::Mounted(fs) => Ok(fs),
            State::Failed(_, e) => Err(*e),
            State::Gone => Err(Error::Io),
        }
    }

    /// Commits the file and flushes the disk when the volume writes through.
    fn write_through(&mut self, file: FileId) -> Result<()> {
        if self.params.write_through {
            self.fs()?.sync(file).map_err(error)?;
        }
        Ok(())
    }
}

impl<D: BlockDevice + Send + 'static> Volume for LfsVolume<D> {
    fn readonly(&self) -> bool {
        self.readonly
    }

    fn open(&mut self, path: &str, options: &OpenOptions) -> Result<u32> {
        let flags = OpenFlags {
            read: options.read,
            write: options.write,
            append: options.append,
            truncate: options.truncate,
            create: options.create,
            create_new: options.create_new,
        };
        let id = self.fs()?.open(path, flags).map_err(error)?;
        Ok(id.0)
    }

    fn close(&mut self, file: u32) -> Result<()> {
        self.fs()?.close(FileId(file)).map_err(error)?;
        if self.params.write_through {
            self.fs()?.flush().map_err(error)?;
        }
        Ok(())
    }

    fn read(&mut self, file: u32, buf: &mut [u8]) -> Result<usize> {
        self.fs()?.read(FileId(file), buf).map_err(error)
    }

    fn write(&mut self, file: u32, data: &[u8]) -> Result<usize> {
        let n = self.fs()?.write(FileId(file), data).map_err(error)?;
        self.write_through(FileId(file))?;
        Ok(n)
    }

    fn seek(&mut self, file: u32, pos: SeekFrom) -> Result<u64> {
        let pos = match pos {
            SeekFrom::Start(n) => unik_lfs::SeekFrom::Start(n),
            SeekFrom::End(n) => unik_lfs::SeekFrom::End(n),
            SeekFrom::Current(n) => unik_lfs::SeekFrom::Current(n),
        };
        self.fs()?.seek(FileId(file), pos).map_err(error)
    }

    fn set_len(&mut self, file: u32, len: u64) -> Result<()> {
        self.fs()?.set_len(FileId(file), len).map_err(error)?;
        self.write_through(FileId(file))
    }

    fn len(&mut self, file: u32) -> Result<u64> {
        self.fs()?.len(FileId(file)).map_err(error)
    }

    fn sync(&mut self, file: u32) -> Result<()> {
        self.fs()?.sync(FileId(file)).map_err(error)
    }

    fn metadata(&mut self, path: &str) -> Result<Metadata> {
        let meta = self.fs()?.metadata(path).map_err(error)?;
        Ok(metadata(meta))
    }

    fn create_dir(&mut self, path: &str) -> Result<()> {
        self.fs()?.create_dir(path).map_err(error)
    }

    fn remove(&mut self, path: &str) -> Result<()> {
        self.fs()?.remove(path).map_err(error)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.fs()?.rename(from, to).map_err(error)
    }

    fn read_dir(&mut self, path: &str) -> Result<Vec<(String, Metadata)>> {
        let entries = self.fs()?.read_dir(path).map_err(error)?;
        Ok(entries
            .into_iter()
            .map(|e| (e.name, metadata(e.metadata)))
            .collect())
    }

    fn format(&mut self) -> Result<()> {
        if self.readonly {
            return Err(Error::ReadOnly);
        }
        let device = match core::mem::replace(&mut self.state, State::Gone) {
            State::Failed(Some(device), _) => device,
            failed @ State::Failed(None, _) => {
                self.state = failed;
                return Err(Error::NoDevice);
            }
            mounted @ State::Mounted(_) => {
                self.state = mounted;
                return Err(Error::AlreadyMounted);
            }
            State::Gone => return Err(Error::Io),
        };
        let (state, result) = match Filesystem::format(device, self.params.config) {
            Ok(fs) => (State::Mounted(fs), Ok(())),
            Err((e, device)) => (State::Failed(Some(device), error(e)), Err(error(e))),
        };
        self.state = state;
        result?;
        self.fs()?.flush().map_err(error)
    }
}

fn metadata(meta: unik_lfs::Metadata) -> Metadata {
    Metadata {
        file_type: match meta.file_type {
            unik_lfs::FileType::File => FileType::File,
            unik_lfs::FileType::Dir => FileType::Dir,
        },
        len: meta.len,
        readonly: false,
    }
}

fn error(e: unik_lfs::Error) -> Error {
    use unik_lfs::{Error as L, IoError};
    match e {
        L::Io(IoError::ReadOnly) => Error::ReadOnly,
        L::Io(_) => Error::Io,
        L::Corrupt | L::TooSmall => Error::Corrupt,
        L::NotFound => Error::NotFound,
        L::AlreadyExists => Error::AlreadyExists,
        L::NotADirectory => Error::NotADirectory,
        L::IsADirectory => Error::IsADirectory,
        L::DirectoryNotEmpty => Error::DirectoryNotEmpty,
        L::NoSpace => Error::NoSpace,
        L::NameTooLong => Error::NameTooLong,
        L::TooLarge => Error::TooLarge,
        L::InvalidInput | L::InvalidConfig | L::BadHandle => Error::InvalidInput,
        L::OutOfMemory => Error::OutOfMemory,
    }
}

/// Adds `volume` to the mount table at `at`; returns the error its mount failed with, if it
/// did (the volume stays in the table in that state).
pub(crate) fn add<D: BlockDevice + Send + 'static>(
    at: &str,
    volume: LfsVolume<D>,
) -> Result<Option<Error>> {
    let failed = volume.mount_error();
    crate::vfs::mount(at, Box::new(volume))?;
    Ok(failed)
}
