//! littlefs, the power-loss-safe file system, over any [`BlockDevice`]: a virtio-blk disk in
//! the guest, an image file on the host (`cargo uniklink disk`). The same code formats a disk
//! on the host and mounts it in the guest, so the two always agree on the layout.
//!
//! littlefs itself is the C library the `littlefs2-sys` crate builds; this crate owns the
//! configuration (block geometry, caches, the device callbacks) and turns its handles and error
//! codes into Rust values. littlefs is copy-on-write: a write becomes visible atomically when
//! its file is synced or closed, and a power loss at any moment leaves either the old or the
//! new state, never a torn one.
//!
//! Geometry: 4 KiB blocks (the unit littlefs allocates and copies on write), read and written
//! in 512-byte sectors, so every device access is sector-aligned. The block count is the
//! device's size, read when the file system is formatted or mounted.
#![no_std]

extern crate alloc;

mod error;
mod pairs;
mod raw;

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::ffi::CString;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void};
use core::mem::MaybeUninit;

use littlefs2_sys as ll;

pub use error::{Error, IoError};

/// The unit littlefs allocates: every file and directory takes at least one.
pub const BLOCK_SIZE: u32 = 4096;
/// The unit of every device access.
pub const SECTOR_SIZE: u32 = 512;
/// The longest file or directory name, in bytes.
pub const NAME_MAX: usize = ll::LFS_NAME_MAX as usize;
/// The most bytes a file holds.
pub const FILE_MAX: u32 = ll::LFS_FILE_MAX;
/// The smallest device littlefs can use: two blocks for the superblock pair, one for the root
/// directory's data, and room to copy on write.
pub const MIN_BLOCKS: u64 = 16;

/// A disk as littlefs needs it: byte offsets and lengths are multiples of [`SECTOR_SIZE`].
pub trait BlockDevice {
    /// The device's size in bytes.
    fn size(&self) -> u64;
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), IoError>;
    /// Makes every completed write durable (a disk's cache flush).
    fn flush(&mut self) -> Result<(), IoError>;
    /// littlefs finished a commit (a file sync or close, a directory change). A device that
    /// writes through flushes here; one that writes back waits for [`Filesystem::flush`].
    fn committed(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

/// Cache and allocator sizes: memory for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bytes of each cache: the read cache, the write cache and one per open file. A multiple
    /// of [`SECTOR_SIZE`] that divides [`BLOCK_SIZE`]; larger means fewer, larger device
    /// requests.
    pub cache_size: u32,
    /// Bytes of the free-block bitmap littlefs scans ahead with (a multiple of 8); each byte
    /// covers 8 blocks.
    pub lookahead_size: u32,
    /// Erase cycles before littlefs moves a metadata pair (wear levelling); 0 turns it off,
    /// as a disk without wear needs.
    pub block_cycles: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cache_size: SECTOR_SIZE,
            lookahead_size: 16,
            block_cycles: 0,
        }
    }
}

impl Config {
    fn check(&self) -> Result<(), Error> {
        let cache_ok = self.cache_size >= SECTOR_SIZE
            && self.cache_size <= BLOCK_SIZE
            && self.cache_size.is_multiple_of(SECTOR_SIZE)
            && BLOCK_SIZE.is_multiple_of(self.cache_size);
        let lookahead_ok = self.lookahead_size >= 8 && self.lookahead_size.is_multiple_of(8);
        if cache_ok && lookahead_ok && i32::try_from(self.block_cycles).is_ok() {
            Ok(())
        } else {
            Err(Error::InvalidConfig)
        }
    }
}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    File,
    Dir,
}

/// A file's or directory's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    pub file_type: FileType,
    /// Bytes; 0 for a directory.
    pub len: u64,
}

/// One entry of a directory listing (`.` and `..` left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub metadata: Metadata,
}

/// How to open a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub truncate: bool,
    pub create: bool,
    pub create_new: bool,
}

/// Where a seek counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekFrom {
    Start(u64),
    End(i64),
    Current(i64),
}

/// Usage of a mounted file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub block_size: u32,
    pub blocks: u64,
    pub used_blocks: u64,
}

/// The device and the buffers littlefs's configuration points into. Boxed, so the pointers
/// stay valid when the `Filesystem` moves.
struct Context<D> {
    device: D,
    /// The first device error behind a littlefs `LFS_ERR_IO`, handed back to the caller.
    io_error: Option<IoError>,
    /// Device reads and writes the current littlefs call may still make (see [`Budget`]).
    budget: u64,
    /// The current call ran out of `budget`: its error means a damaged volume.
    exhausted: bool,
}

impl<D> Context<D> {
    /// Counts one device access; false once the call's budget is spent.
    fn spend(&mut self) -> bool {
        if self.budget == 0 {
            self.exhausted = true;
            return false;
        }
        self.budget -= 1;
        true
    }
}

/// How many device accesses one littlefs call may make before it is stopped as a damaged
/// volume's endless loop. littlefs follows lists stored on the disk and does not bound every
/// walk: a damaged volume made it repair orphans forever (`lfs_fs_deorphan`, found by the
/// `volume` fuzz target), and a cycle of split-directory tails would make a lookup or a
/// listing go round forever. Every such loop reads the device again, so the device callbacks
/// are where all of them can be stopped.
///
/// The bound is one no valid volume reaches: littlefs's costliest call on metadata repairs
/// orphans, fetching every metadata pair once for every metadata pair (each looking for its
/// parent); a volume has at most `blocks / 2 + 1` pairs, and a fetch reads the two blocks of a
/// pair at most sector by sector. Reads and writes of file data add their sectors and one
/// full scan of the device for each window of the block allocator they may use up.
///
/// A lookup, or a step of a directory listing, gets less: a path's directories have chains
/// of pairs of their own, so walking it fetches each pair of the volume at most once, and a
/// listing step fetches each pair of the directory at most once and reads one entry. Between two device accesses littlefs may look up every id a
/// pair claims (up to 1,023) by walking the pair's tags back (up to 1,023): a damaged pair can
/// claim ids it has no entries for, so a listing step that went round a chain of such pairs
/// on the full allowance would work for minutes with the device's blocks in its cache.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Any call.
    base: u64,
    /// A lookup, or one step of a directory listing.
    listing: u64,
    /// Per full scan of the device (the allocator's search for free blocks).
    scan: u64,
    /// Blocks one allocator window covers.
    window: u64,
}

/// Headroom over the counts above.
const BUDGET_FACTOR: u64 = 4;

impl Budget {
    fn new(block_count: u32, lookahead_size: u32) -> Budget {
        let sectors_per_block = u64::from(BLOCK_SIZE / SECTOR_SIZE);
        let blocks = u64::from(block_count);
        let pairs = blocks / 2 + 1;
        let fetch = 2 * sectors_per_block;
        Budget {
            base: BUDGET_FACTOR.saturating_mul(fetch.saturating_mul(pairs.saturating_mul(pairs))),
            listing: BUDGET_FACTOR
                .saturating_mul(fetch.saturating_mul(pairs).saturating_add(fetch)),
            scan: BUDGET_FACTOR * blocks * sectors_per_block,
            window: u64::from(lookahead_size) * 8,
        }
    }

    /// For a call that reads or writes `len` bytes of file data.
    fn for_transfer(&self, len: usize) -> u64 {
        let len = len as u64;
        let sectors = len / u64::from(SECTOR_SIZE) + 1;
        let scans = len / u64::from(BLOCK_SIZE) / self.window.max(1) + 1;
        self.base
            .saturating_add(BUDGET_FACTOR.saturating_mul(sectors))
            .saturating_add(scans.saturating_mul(self.scan))
    }
}

/// A mounted littlefs.
pub struct Filesystem<D: BlockDevice> {
    lfs: Box<MaybeUninit<ll::lfs_t>>,
    config: Box<ll::lfs_config>,
    context: Box<Context<D>>,
    budget: Budget,
    cache_size: usize,
    _buffers: [Box<[u8]>; 3],
    /// Open files by [`FileId`]; littlefs links each into its list until it is closed, so
    /// they live here, where nothing can free one while it is open.
    files: Vec<Option<OpenFile>>,
}

/// An open file of a [`Filesystem`], by number. Numbers of closed files are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// littlefs's file state and its cache, boxed so that littlefs's list of open files can point
/// at them.
struct OpenFile {
    raw: Box<MaybeUninit<ll::lfs_file_t>>,
    _config: Box<ll::lfs_file_config>,
    _buffer: Box<[u8]>,
}

// SAFETY: the configuration's and files' raw pointers lead to memory the `Filesystem` owns and
// reaches only through `&mut self`.
unsafe impl<D: BlockDevice + Send> Send for Filesystem<D> {}

impl<D: BlockDevice> Filesystem<D> {
    /// Writes an empty file system over the whole device and mounts it.
    pub fn format(device: D, config: Config) -> Result<Filesystem<D>, (Error, D)> {
        let mut fs = Filesystem::new(device, config)?;
        fs.arm(fs.budget.for_transfer(0));
        // SAFETY: `lfs` and `config` are the pair `new` prepared; format leaves `lfs` unmounted.
        let code = unsafe { ll::lfs_format(fs.lfs.as_mut_ptr(), &*fs.config) };
        if let Err(e) = fs.check(code) {
            return Err((e, fs.into_device()));
        }
        Filesystem::mount_prepared(fs)
    }

    /// Mounts the file system on `device`: an unformatted or damaged device is an error
    /// ([`Error::Corrupt`]), and the device comes back with it so that the caller can format.
    pub fn mount(device: D, config: Config) -> Result<Filesystem<D>, (Error, D)> {
        Filesystem::mount_prepared(Filesystem::new(device, config)?)
    }

    fn mount_prepared(mut fs: Filesystem<D>) -> Result<Filesystem<D>, (Error, D)> {
        if let Err(e) = pairs::check(&mut fs.context.device, fs.config.block_count) {
            return Err((e, fs.into_device()));
        }
        fs.arm(fs.budget.for_transfer(0));
        // SAFETY: as in `format`; on success `lfs` is mounted and `Drop` unmounts it.
        let code = unsafe { ll::lfs_mount(fs.lfs.as_mut_ptr(), &*fs.config) };
        match fs.check(code) {
            Ok(_) => Ok(fs),
            Err(e) => Err((e, fs.into_device())),
        }
    }

    fn new(device: D, config: Config) -> Result<Filesystem<D>, (Error, D)> {
        if let Err(e) = config.check() {
            return Err((e, device));
        }
        let blocks = device.size() / u64::from(BLOCK_SIZE);
        let Ok(block_count) = u32::try_from(blocks) else {
            return Err((Error::TooLarge, device));
        };
        if u64::from(block_count) < MIN_BLOCKS {
            return Err((Error::TooSmall, device));
        }
        let cache_size = config.cache_size as usize;
        let mut buffers = [
            vec![0u8; cache_size].into_boxed_slice(),
            vec![0u8; cache_size].into_boxed_slice(),
            vec![0u8; config.lookahead_size as usize].into_boxed_slice(),
        ];
        let mut context = Box::new(Context {
            device,
            io_error: None,
            budget: 0,
            exhausted: false,
        });
        let raw_config = ll::lfs_config {
            context: (&raw mut *context).cast::<c_void>(),
            read: Some(raw::read::<D>),
            prog: Some(raw::prog::<D>),
            erase: Some(raw::erase),
            sync: Some(raw::sync::<D>),
            read_size: SECTOR_SIZE,
            prog_size: SECTOR_SIZE,
            block_size: BLOCK_SIZE,
            block_count,
            block_cycles: if config.block_cycles == 0 {
                -1
            } else {
                config.block_cycles as i32
            },
            cache_size: config.cache_size,
            lookahead_size: config.lookahead_size,
            read_buffer: buffers[0].as_mut_ptr().cast(),
            prog_buffer: buffers[1].as_mut_ptr().cast(),
            lookahead_buffer: buffers[2].as_mut_ptr().cast(),
            ..Default::default()
        };
        Ok(Filesystem {
            lfs: Box::new(MaybeUninit::zeroed()),
            config: Box::new(raw_config),
            context,
            budget: Budget::new(block_count, config.lookahead_size),
            cache_size,
            _buffers: buffers,
            files: Vec::new(),
        })
    }

    /// Closes every open file (committing what was written), unmounts and hands the device
    /// back.
    pub fn unmount(mut self) -> Result<D, Error> {
        let closed = self.close_all();
        // SAFETY: `self` is mounted (constructors return only mounted file systems).
        let code = unsafe { ll::lfs_unmount(self.lfs()) };
        let result = closed.and(self.check(code).map(drop));
        let device = self.into_device();
        result.map(|_| device)
    }

    fn close_all(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        for id in 0..self.files.len() {
            if self.files[id].is_some() {
                result = result.and(self.close(FileId(id as u32)));
            }
        }
        result
    }

    fn into_device(self) -> D {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and its other fields are dropped here; the
        // mounted state (if any) needs no cleanup beyond memory, as unmount only frees.
        unsafe {
            let context = core::ptr::read(&this.context);
            drop(core::ptr::read(&this.lfs));
            drop(core::ptr::read(&this.config));
            drop(core::ptr::read(&this._buffers));
            drop(core::ptr::read(&this.files));
            context.device
        }
    }

    /// The device, for its own queries (size, name).
    pub fn device(&self) -> &D {
        &self.context.device
    }

    /// A littlefs return code as a result, with the device's own error behind `LFS_ERR_IO`;
    /// a call stopped by its budget failed on a damaged volume.
    fn check(&mut self, code: c_int) -> Result<u32, Error> {
        let io = self.context.io_error.take();
        let exhausted = core::mem::take(&mut self.context.exhausted);
        if code >= 0 {
            return Ok(code as u32);
        }
        Err(match (Error::from_code(code), io) {
            _ if exhausted => Error::Corrupt,
            (Error::Io(_), Some(io)) => Error::Io(io),
            (e, _) => e,
        })
    }

    /// Gives the next littlefs call (or calls, until armed again) `budget` device accesses.
    fn arm(&mut self, budget: u64) {
        self.context.budget = budget;
        self.context.exhausted = false;
    }

    /// littlefs's state, for one call with the budget of a call without file data.
    fn lfs(&mut self) -> *mut ll::lfs_t {
        self.arm(self.budget.for_transfer(0));
        self.lfs.as_mut_ptr()
    }

    /// littlefs's state, for a call that only looks up: a path walked, a directory opened, a
    /// step of a directory listing, a file opened to read. None repairs anything, so none
    /// needs the allowance of a repair, which grows with the square of the volume: a chain
    /// of pairs that goes round (a damaged volume) runs out the smaller one in seconds.
    fn lfs_lookup(&mut self) -> *mut ll::lfs_t {
        self.arm(self.budget.listing);
        self.lfs.as_mut_ptr()
    }

    /// Walks to `path` on the lookup allowance before a call that may change the volume and
    /// gets the larger one: a damaged chain on the way fails here, quickly. Whether `path`
    /// exists is the call's business.
    fn look_up_first(&mut self, path: &core::ffi::CStr) -> Result<(), Error> {
        let mut info = MaybeUninit::<ll::lfs_info>::zeroed();
        // SAFETY: `path` is NUL-terminated; `info` is only written.
        let code = unsafe { ll::lfs_stat(self.lfs_lookup(), path.as_ptr(), info.as_mut_ptr()) };
        match self.check(code) {
            Err(e @ (Error::Corrupt | Error::Io(_))) => Err(e),
            _ => Ok(()),
        }
    }

    pub fn open(&mut self, path: &str, flags: OpenFlags) -> Result<FileId, Error> {
        let path = c_path(path)?;
        let mut bits = 0;
        if flags.read {
            bits |= ll::lfs_open_flags_LFS_O_RDONLY;
        }
        if flags.write || flags.append {
            bits |= ll::lfs_open_flags_LFS_O_WRONLY;
        }
        if bits == 0 {
            return Err(Error::InvalidInput);
        }
        if flags.append {
            bits |= ll::lfs_open_flags_LFS_O_APPEND;
        }
        if flags.truncate {
            bits |= ll::lfs_open_flags_LFS_O_TRUNC;
        }
        if flags.create || flags.create_new {
            bits |= ll::lfs_open_flags_LFS_O_CREAT;
        }
        if flags.create_new {
            bits |= ll::lfs_open_flags_LFS_O_EXCL;
        }
        let mut buffer = vec![0u8; self.cache_size].into_boxed_slice();
        let config = Box::new(ll::lfs_file_config {
            buffer: buffer.as_mut_ptr().cast(),
            attrs: core::ptr::null_mut(),
            attr_count: 0,
        });
        let mut raw = Box::new(MaybeUninit::<ll::lfs_file_t>::zeroed());
        let lfs = if bits == ll::lfs_open_flags_LFS_O_RDONLY {
            self.lfs_lookup()
        } else {
            self.look_up_first(&path)?;
            self.lfs()
        };
        // SAFETY: the file and its configuration are boxed and stay in `files` until closed.
        let code = unsafe {
            ll::lfs_file_opencfg(
                lfs,
                raw.as_mut_ptr(),
                path.as_ptr(),
                bits as c_int,
                &*config,
            )
        };
        self.check(code)?;
        let file = OpenFile {
            raw,
            _config: config,
            _buffer: buffer,
        };
        let slot = match self.files.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.files.push(None);
                self.files.len() - 1
            }
        };
        self.files[slot] = Some(file);
        Ok(FileId(slot as u32))
    }

    fn file(&mut self, id: FileId) -> Result<*mut ll::lfs_file_t, Error> {
        match self.files.get_mut(id.0 as usize) {
            Some(Some(file)) => Ok(file.raw.as_mut_ptr()),
            _ => Err(Error::BadHandle),
        }
    }

    /// Commits what was written to `file` and closes it; the number is free again, whatever
    /// the result.
    pub fn close(&mut self, file: FileId) -> Result<(), Error> {
        let raw = self.file(file)?;
        // SAFETY: `raw` is an open file of this file system; littlefs unlinks it even when
        // the commit fails.
        let code = unsafe { ll::lfs_file_close(self.lfs(), raw) };
        self.files[file.0 as usize] = None;
        self.check(code).map(drop)
    }

    pub fn read(&mut self, file: FileId, buf: &mut [u8]) -> Result<usize, Error> {
        let raw = self.file(file)?;
        let len = clamp_len(buf.len());
        let lfs = self.lfs();
        self.arm(self.budget.for_transfer(len as usize));
        // SAFETY: `raw` is open here and `buf` has at least `len` bytes.
        let code = unsafe { ll::lfs_file_read(lfs, raw, buf.as_mut_ptr().cast(), len) };
        self.check(code).map(|n| n as usize)
    }

    pub fn write(&mut self, file: FileId, data: &[u8]) -> Result<usize, Error> {
        let raw = self.file(file)?;
        let len = clamp_len(data.len());
        let lfs = self.lfs();
        self.arm(self.budget.for_transfer(len as usize));
        // SAFETY: `raw` is open here and `data` has at least `len` bytes.
        let code = unsafe { ll::lfs_file_write(lfs, raw, data.as_ptr().cast(), len) };
        self.check(code).map(|n| n as usize)
    }

    /// Moves the position; returns the new one.
    pub fn seek(&mut self, file: FileId, pos: SeekFrom) -> Result<u64, Error> {
        let raw = self.file(file)?;
        let (offset, whence) = match pos {
            SeekFrom::Start(n) => (
                i32::try_from(n).map_err(|_| Error::TooLarge)?,
                ll::lfs_whence_flags_LFS_SEEK_SET,
            ),
            SeekFrom::End(n) => (
                i32::try_from(n).map_err(|_| Error::InvalidInput)?,
                ll::lfs_whence_flags_LFS_SEEK_END,
            ),
            SeekFrom::Current(n) => (
                i32::try_from(n).map_err(|_| Error::InvalidInput)?,
                ll::lfs_whence_flags_LFS_SEEK_CUR,
            ),
        };
        // SAFETY: `raw` is open here.
        let code = unsafe { ll::lfs_file_seek(self.lfs(), raw, offset, whence as c_int) };
        self.check(code).map(u64::from)
    }

    /// Cuts or extends (with zeros) the file to `len` bytes.
    pub fn set_len(&mut self, file: FileId, len: u64) -> Result<(), Error> {
        let raw = self.file(file)?;
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= ll::LFS_FILE_MAX)
            .ok_or(Error::TooLarge)?;
        // SAFETY: `raw` is open here.
        let code = unsafe { ll::lfs_file_truncate(self.lfs(), raw, len) };
        self.check(code).map(drop)
    }

    pub fn len(&mut self, file: FileId) -> Result<u64, Error> {
        let raw = self.file(file)?;
        // SAFETY: `raw` is open here.
        let code = unsafe { ll::lfs_file_size(self.lfs(), raw) };
        self.check(code).map(u64::from)
    }

    /// Commits what was written to `file` (littlefs's atomic update) and makes it durable.
    pub fn sync(&mut self, file: FileId) -> Result<(), Error> {
        let raw = self.file(file)?;
        // SAFETY: `raw` is open here.
        let code = unsafe { ll::lfs_file_sync(self.lfs(), raw) };
        self.check(code)?;
        self.flush()
    }

    /// Flushes the device's write cache: everything littlefs committed so far survives a
    /// power loss.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.context.device.flush().map_err(Error::Io)
    }

    pub fn metadata(&mut self, path: &str) -> Result<Metadata, Error> {
        let path = c_path(path)?;
        let mut info = MaybeUninit::<ll::lfs_info>::zeroed();
        // SAFETY: `info` is written by littlefs before it is read.
        let code = unsafe { ll::lfs_stat(self.lfs_lookup(), path.as_ptr(), info.as_mut_ptr()) };
        self.check(code)?;
        // SAFETY: `lfs_stat` succeeded, so it filled `info`.
        let info = unsafe { info.assume_init() };
        Ok(metadata(&info))
    }

    pub fn create_dir(&mut self, path: &str) -> Result<(), Error> {
        let path = c_path(path)?;
        self.look_up_first(&path)?;
        // SAFETY: `path` is a NUL-terminated string.
        let code = unsafe { ll::lfs_mkdir(self.lfs(), path.as_ptr()) };
        self.check(code).map(drop)
    }

    /// Removes a file or an empty directory.
    pub fn remove(&mut self, path: &str) -> Result<(), Error> {
        let path = c_path(path)?;
        self.look_up_first(&path)?;
        // SAFETY: `path` is a NUL-terminated string.
        let code = unsafe { ll::lfs_remove(self.lfs(), path.as_ptr()) };
        self.check(code).map(drop)
    }

    /// Renames atomically, replacing `to` if it is a file or an empty directory.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let (from, to) = (c_path(from)?, c_path(to)?);
        self.look_up_first(&from)?;
        self.look_up_first(&to)?;
        // SAFETY: both are NUL-terminated strings.
        let code = unsafe { ll::lfs_rename(self.lfs(), from.as_ptr(), to.as_ptr()) };
        self.check(code).map(drop)
    }

    /// The entries of a directory, in littlefs's order (by name).
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let path = c_path(path)?;
        let mut dir = Box::new(MaybeUninit::<ll::lfs_dir_t>::zeroed());
        // SAFETY: `dir` is boxed and closed below before it is freed.
        let code = unsafe { ll::lfs_dir_open(self.lfs_lookup(), dir.as_mut_ptr(), path.as_ptr()) };
        self.check(code)?;
        let mut entries = Vec::new();
        // A damaged directory whose entries link in a cycle would list forever: no real one
        // holds more entries than the disk has room for names.
        let most = u64::from(self.config.block_count) * u64::from(BLOCK_SIZE) / 8;
        let mut pairs = SplitPairs::default();
        let result = loop {
            // SAFETY: `dir` is open, so littlefs initialised it.
            if let Err(e) = pairs.visit(unsafe { dir.assume_init_ref() }) {
                break Err(e);
            }
            if entries.len() as u64 > most {
                break Err(Error::Corrupt);
            }
            let mut info = MaybeUninit::<ll::lfs_info>::zeroed();
            // SAFETY: `dir` is open; `info` is written before it is read.
            let code =
                unsafe { ll::lfs_dir_read(self.lfs_lookup(), dir.as_mut_ptr(), info.as_mut_ptr()) };
            match self.check(code) {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    // SAFETY: a positive result means `info` holds an entry.
                    let info = unsafe { info.assume_init() };
                    let name = name(&info);
                    if name != "." && name != ".." {
                        entries.push(DirEntry {
                            name,
                            metadata: metadata(&info),
                        });
                    }
                }
                Err(e) => break Err(e),
            }
        };
        // SAFETY: `dir` is open.
        let code = unsafe { ll::lfs_dir_close(self.lfs(), dir.as_mut_ptr()) };
        result.and(self.check(code).map(drop))?;
        Ok(entries)
    }

    pub fn usage(&mut self) -> Result<Usage, Error> {
        // SAFETY: `self` is mounted.
        let code = unsafe { ll::lfs_fs_size(self.lfs()) };
        let used = self.check(code)?;
        Ok(Usage {
            block_size: BLOCK_SIZE,
            blocks: u64::from(self.config.block_count),
            used_blocks: u64::from(used),
        })
    }
}

impl<D: BlockDevice> Drop for Filesystem<D> {
    fn drop(&mut self) {
        let _ = self.close_all();
        // SAFETY: a `Filesystem` that is dropped (not turned back into its device) is mounted.
        unsafe { ll::lfs_unmount(self.lfs()) };
    }
}

/// The metadata pairs a directory listing has been through. A directory too big for one
/// pair continues in another (a split tail), and littlefs follows these tails as the disk
/// says: a damaged chain that leads back to a pair already listed hands out the same entries
/// forever, each call within its budget of device accesses (found by the `volume` fuzz target,
/// whose listing ran until its cap on entries, 24 s on a 16-block disk). In a valid chain
/// every pair is new, its two blocks differ, no block belongs to two pairs, and the ids read
/// in one pair only grow.
///
/// A chain that leads back is refused before the step that would follow it. A chain one
/// littlefs call enters and leaves within itself (through pairs that list nothing) is out of
/// this walk's sight; it reads the device on each pair unless a pair's two blocks are one,
/// and such pairs are refused at mount (`pairs.rs`).
#[derive(Default)]
struct SplitPairs {
    /// The pair the listing is in and the id it has read up to there.
    current: Option<([ll::lfs_block_t; 2], u16)>,
    blocks: BTreeSet<ll::lfs_block_t>,
}

impl SplitPairs {
    /// Notes where the listing is, once the directory is open and after each step.
    fn visit(&mut self, dir: &ll::lfs_dir_t) -> Result<(), Error> {
        let (pair, id) = (dir.m.pair, dir.id);
        match self.current {
            Some((current, last)) if current == pair || current == [pair[1], pair[0]] => {
                // "." and ".." leave the id at 0; an entry read moves it past the entry's.
                if id != 0 && id <= last {
                    return Err(Error::Corrupt);
                }
            }
            _ => {
                if !self.blocks.insert(pair[0]) || !self.blocks.insert(pair[1]) {
                    return Err(Error::Corrupt);
                }
            }
        }
        self.current = Some((pair, id));
        let tail = dir.m.tail;
        if dir.m.split && (self.blocks.contains(&tail[0]) || self.blocks.contains(&tail[1])) {
            return Err(Error::Corrupt);
        }
        Ok(())
    }
}

/// littlefs takes sizes as `u32`; a longer buffer is read or written in part, as `read(2)`
/// may.
fn clamp_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX).min(ll::LFS_FILE_MAX)
}

fn c_path(path: &str) -> Result<CString, Error> {
    if path.split('/').any(|component| component.len() > NAME_MAX) {
        return Err(Error::NameTooLong);
    }
    CString::new(path).map_err(|_| Error::InvalidInput)
}

fn name(info: &ll::lfs_info) -> String {
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        // `c_char` is `i8` on x86_64 and `u8` on aarch64.
        .map(|&c| {
            #[allow(clippy::unnecessary_cast)]
            let byte = c as u8;
            byte
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn metadata(info: &ll::lfs_info) -> Metadata {
    if u32::from(info.type_) == ll::lfs_type_LFS_TYPE_DIR {
        Metadata {
            file_type: FileType::Dir,
            len: 0,
        }
    } else {
        Metadata {
            file_type: FileType::File,
            len: u64::from(info.size),
        }
    }
}

#[cfg(test)]
mod tests;
