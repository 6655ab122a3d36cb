//! Disk images for the guest's littlefs volumes: created, listed, read and written on the host
//! with the same `unik-lfs` the guest mounts them with, so that both sides agree on the format.
//!
//! An image is a raw file as large as the disk, written sparse. Guest paths are absolute inside
//! the volume (`/etc/app.conf`); `.`, `..`, NUL and names longer than 255 bytes are refused.
//! Writes reach the image file as littlefs commits them; [`Disk::close`] makes them durable.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use unik_lfs::{BLOCK_SIZE, BlockDevice, Config, Filesystem, IoError, MIN_BLOCKS, NAME_MAX};
use unik_lfs::{Error as LfsError, OpenFlags};

pub use unik_lfs::{FileType, Usage};

/// The smallest disk littlefs formats: 64 KiB.
pub const MIN_SIZE: u64 = MIN_BLOCKS * BLOCK_SIZE as u64;
/// littlefs numbers blocks with 32 bits.
pub const MAX_SIZE: u64 = u32::MAX as u64 * BLOCK_SIZE as u64;

/// The lookahead bitmap's cap: 64 KiB covers 2 GiB of disk; a larger disk rescans for free
/// blocks every 2 GiB it allocates.
const MAX_LOOKAHEAD: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{}: cannot open the disk image: {source}", image.display())]
    Open {
        image: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a disk image (not a regular file)", image.display())]
    NotAFile { image: PathBuf },
    #[error(
        "{}: in use: a running QEMU (or another disk command) {}",
        image.display(),
        if *writable { "uses it" } else { "may be writing it" }
    )]
    InUse { image: PathBuf, writable: bool },
    #[error("{}: cannot lock it: {source}", image.display())]
    Lock {
        image: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: {size} bytes is not a disk size: a disk is a multiple of 4 KiB, at least 64 KiB and under 16 TiB",
        image.display()
    )]
    Size { image: PathBuf, size: u64 },
    #[error("{}: already exists; disk create never overwrites a file", image.display())]
    Exists { image: PathBuf },
    #[error("{}: cannot create the disk image: {source}", image.display())]
    Create {
        image: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot format: {source}", image.display())]
    Format {
        image: PathBuf,
        #[source]
        source: LfsError,
    },
    #[error("{}: no littlefs file system (unformatted or damaged)", image.display())]
    NoFilesystem { image: PathBuf },
    #[error(
        "{}: its littlefs does not fit the image: made for another size (was the file resized?) or block size, or by a newer littlefs",
        image.display()
    )]
    Mismatch { image: PathBuf },
    #[error("{}: {source}", image.display())]
    Volume {
        image: PathBuf,
        #[source]
        source: LfsError,
    },
    #[error("{}: cannot read or write the image file: {source}", image.display())]
    Access {
        image: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: opened read-only", image.display())]
    ReadOnly { image: PathBuf },
    #[error("{}: {guest}: {reason}", image.display())]
    GuestPath {
        image: PathBuf,
        guest: String,
        reason: &'static str,
    },
    #[error("{}: {guest}: {source}", image.display())]
    Fs {
        image: PathBuf,
        guest: String,
        #[source]
        source: LfsError,
    },
    #[error("{}: {guest}: cannot read or write the image file: {source}", image.display())]
    Device {
        image: PathBuf,
        guest: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: {guest}: damaged file system: {what}", image.display())]
    Damaged {
        image: PathBuf,
        guest: String,
        what: &'static str,
    },
    #[error("{}: {guest}: cannot {action} {}: {source}", image.display(), host.display())]
    Host {
        image: PathBuf,
        guest: String,
        host: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: {guest}: {}: {reason}", image.display(), host.display())]
    HostPath {
        image: PathBuf,
        guest: String,
        host: PathBuf,
        reason: &'static str,
    },
    #[error(
        "{}: {guest}: {}: {len} bytes do not fit: the image holds at most {limit} bytes in a file",
        image.display(),
        host.display()
    )]
    HostTooLarge {
        image: PathBuf,
        guest: String,
        host: PathBuf,
        len: u64,
        limit: u64,
    },
}

/// QEMU's image locking (`block/file-posix.c`), which `disk` takes part in so that it never
/// changes an image a running guest uses, nor reads one a guest is writing: whoever uses an
/// image holds a shared lock on byte 100 + i for each permission i it has, and on 200 + i
/// for each it does not let others have (i: 0 consistent read, 1 write), as open file
/// description locks, released when the file is closed.
const LOCK_PERM_BASE: i64 = 100;
const LOCK_SHARED_BASE: i64 = 200;
const PERM_CONSISTENT_READ: i64 = 0;
const PERM_WRITE: i64 = 1;

/// Locks the image as a user that reads, writes when `writable`, and lets nobody else
/// write; then refuses it if someone else writes it (or, to write it, lets nobody write).
fn lock_like_qemu(file: &File, path: &Path, writable: bool) -> Result<(), DiskError> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    let lock_error = |source| DiskError::Lock {
        image: path.to_owned(),
        source,
    };
    let range = |l_type: i32, start: i64| libc::flock {
        l_type: l_type as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: 1,
        l_pid: 0,
    };
    // Locks first, then the check, as QEMU does: two users that start together both see
    // each other and both refuse, where checking first could let both in. A check ignores
    // the locks of the caller's own open file description.
    let mut held = vec![
        LOCK_PERM_BASE + PERM_CONSISTENT_READ,
        LOCK_SHARED_BASE + PERM_WRITE,
    ];
    if writable {
        held.push(LOCK_PERM_BASE + PERM_WRITE);
    }
    for byte in held {
        let lock = range(libc::F_RDLCK, byte);
        // SAFETY: `fd` is open for as long as `file`; a shared lock on one byte of it.
        if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &lock) } != 0 {
            let error = io::Error::last_os_error();
            return Err(match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::PermissionDenied => DiskError::InUse {
                    image: path.to_owned(),
                    writable,
                },
                _ => lock_error(error),
            });
        }
    }
    let mut busy = vec![LOCK_PERM_BASE + PERM_WRITE];
    if writable {
        busy.push(LOCK_SHARED_BASE + PERM_WRITE);
    }
    for byte in busy {
        let mut probe = range(libc::F_WRLCK, byte);
        // SAFETY: as above; `probe` is a valid flock for the kernel to fill in.
        if unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut probe) } != 0 {
            return Err(lock_error(io::Error::last_os_error()));
        }
        if i32::from(probe.l_type) != libc::F_UNLCK {
            return Err(DiskError::InUse {
                image: path.to_owned(),
                writable,
            });
        }
    }
    Ok(())
}

/// A disk image file as littlefs's block device.
pub struct ImageDevice {
    file: File,
    size: u64,
    writable: bool,
    /// The OS error behind the last failed access; littlefs passes on only that one failed.
    last_error: Cell<Option<io::Error>>,
}

impl ImageDevice {
    /// Opens the image at `path`, whose length must be a disk size.
    pub fn open(path: &Path, writable: bool) -> Result<ImageDevice, DiskError> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|source| DiskError::Open {
                image: path.to_owned(),
                source,
            })?;
        let device = ImageDevice::new(file, path, writable)?;
        lock_like_qemu(&device.file, path, writable)?;
        Ok(device)
    }

    fn new(file: File, path: &Path, writable: bool) -> Result<ImageDevice, DiskError> {
        let metadata = file.metadata().map_err(|source| DiskError::Open {
            image: path.to_owned(),
            source,
        })?;
        if !metadata.is_file() {
            return Err(DiskError::NotAFile {
                image: path.to_owned(),
            });
        }
        check_size(path, metadata.len())?;
        Ok(ImageDevice {
            file,
            size: metadata.len(),
            writable,
            last_error: Cell::new(None),
        })
    }

    /// The OS error behind the last failed access, once.
    fn take_error(&self) -> Option<io::Error> {
        self.last_error.take()
    }

    fn fail(&self, error: io::Error) -> IoError {
        self.last_error.set(Some(error));
        IoError::Device
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<(), IoError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(IoError::OutOfRange),
        }
    }
}

impl BlockDevice for ImageDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.check_range(offset, buf.len())?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| self.fail(e))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), IoError> {
        if !self.writable {
            return Err(IoError::ReadOnly);
        }
        self.check_range(offset, data.len())?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| self.fail(e))
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.file.sync_data().map_err(|e| self.fail(e))
    }
}

fn check_size(image: &Path, size: u64) -> Result<(), DiskError> {
    if size.is_multiple_of(u64::from(BLOCK_SIZE)) && (MIN_SIZE..=MAX_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(DiskError::Size {
            image: image.to_owned(),
            size,
        })
    }
}

/// Block-sized caches, for fewer and larger file accesses than the guest's sector-sized
/// default, and a lookahead bitmap over the whole disk, so that writing a large tree scans the
/// file system for free blocks once rather than every 128 blocks. Neither changes the format:
/// littlefs keeps a file inline up to min(cache, block / 8) bytes, 512 for every cache size
/// the guest may choose.
fn config(size: u64) -> Config {
    let blocks = size / u64::from(BLOCK_SIZE);
    let lookahead = (blocks.div_ceil(64) * 8).min(MAX_LOOKAHEAD);
    Config {
        cache_size: BLOCK_SIZE,
        lookahead_size: lookahead as u32,
        block_cycles: 0,
    }
}

/// Writes a new, empty, formatted disk image of `size` bytes at `path`, which must not exist.
/// The image is written beside `path` first and renamed into place, so that a failure leaves
/// nothing behind.
pub fn create(path: &Path, size: u64) -> Result<(), DiskError> {
    check_size(path, size)?;
    if path.symlink_metadata().is_ok() {
        return Err(DiskError::Exists {
            image: path.to_owned(),
        });
    }
    let create_error = |source| DiskError::Create {
        image: path.to_owned(),
        source,
    };
    let staging = tempfile::Builder::new()
        .prefix(".uniklink-disk")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(parent_dir(path))
        .map_err(create_error)?;
    staging.as_file().set_len(size).map_err(create_error)?;
    let file = staging.as_file().try_clone().map_err(create_error)?;
    let device = ImageDevice::new(file, path, true)?;
    let fs = Filesystem::format(device, config(size)).map_err(|(source, _)| DiskError::Format {
        image: path.to_owned(),
        source,
    })?;
    let device = fs.unmount().map_err(|source| DiskError::Format {
        image: path.to_owned(),
        source,
    })?;
    device.file.sync_data().map_err(create_error)?;
    staging
        .persist_noclobber(path)
        .map_err(|e| match e.error.kind() {
            io::ErrorKind::AlreadyExists => DiskError::Exists {
                image: path.to_owned(),
            },
            _ => create_error(e.error),
        })?;
    Ok(())
}

/// A file or directory in a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: FileType,
    /// Bytes; 0 for a directory.
    pub len: u64,
}

/// A disk image with its littlefs mounted.
pub struct Disk {
    image: PathBuf,
    fs: Filesystem<ImageDevice>,
    writable: bool,
}

impl Disk {
    /// Opens and mounts the image at `path`; only a writable disk takes [`Disk::put`].
    pub fn open(path: &Path, writable: bool) -> Result<Disk, DiskError> {
        let device = ImageDevice::open(path, writable)?;
        let size = device.size;
        let fs = Filesystem::mount(device, config(size)).map_err(|(e, device)| match e {
            LfsError::Corrupt => DiskError::NoFilesystem {
                image: path.to_owned(),
            },
            LfsError::InvalidInput => DiskError::Mismatch {
                image: path.to_owned(),
            },
            e => image_error(path, &device, e),
        })?;
        Ok(Disk {
            image: path.to_owned(),
            fs,
            writable,
        })
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The entries of a directory, by name.
    pub fn list(&mut self, guest_dir: &str) -> Result<Vec<Entry>, DiskError> {
        let guest = self.guest_path(guest_dir)?;
        self.list_at(&guest)
    }

    /// What `guest_path` names; the root is called `/`.
    pub fn metadata(&mut self, guest_path: &str) -> Result<Entry, DiskError> {
        let guest = self.guest_path(guest_path)?;
        let metadata = self
            .fs
            .metadata(&guest)
            .map_err(|e| self.fs_error(&guest, e))?;
        let name = match guest.rsplit_once('/') {
            Some((_, "")) | None => "/",
            Some((_, name)) => name,
        };
        Ok(Entry {
            name: name.to_owned(),
            kind: metadata.file_type,
            len: metadata.len,
        })
    }

    /// Every file and directory under `guest_dir`, each with its guest path, a directory
    /// before its entries and entries by name.
    pub fn walk(&mut self, guest_dir: &str) -> Result<Vec<(String, Entry)>, DiskError> {
        let root = self.guest_path(guest_dir)?;
        let mut pending = self.children(&root)?;
        let mut found = Vec::new();
        // A directory takes at least one block, so a count past the image's blocks means the
        // tree loops back on itself.
        let mut dirs_left = self.fs.device().size / u64::from(BLOCK_SIZE);
        while let Some((path, entry)) = pending.pop() {
            if entry.kind == FileType::Dir {
                dirs_left = dirs_left.checked_sub(1).ok_or_else(|| {
                    self.damaged(
                        &path,
                        "more directories than the image has blocks (a directory loop)",
                    )
                })?;
                pending.extend(self.children(&path)?);
            }
            found.push((path, entry));
        }
        Ok(found)
    }

    /// The entries of `dir` with their paths, last name first, ready to pop in order.
    fn children(&mut self, dir: &str) -> Result<Vec<(String, Entry)>, DiskError> {
        // A directory that contains itself makes its paths longer at every level: the limit
        // on paths ends the walk long before their lengths add up.
        if dir.len() > MAX_GUEST_PATH {
            return Err(DiskError::GuestPath {
                image: self.image.clone(),
                guest: format!("{}…", &dir[..dir.floor_char_boundary(64)]),
                reason: TOO_DEEP,
            });
        }
        let entries = self.list_at(dir)?;
        Ok(entries
            .into_iter()
            .rev()
            .map(|entry| (join(dir, &entry.name), entry))
            .collect())
    }

    /// The contents of a file.
    pub fn get(&mut self, guest_path: &str) -> Result<Vec<u8>, DiskError> {
        let guest = self.guest_path(guest_path)?;
        self.read_file(&guest)
    }

    /// Copies the file `guest_path` to `host_path`, replacing a file there. The copy is
    /// written beside `host_path` and renamed into place, so that a failure leaves the old
    /// file or none.
    pub fn get_file(&mut self, guest_path: &str, host_path: &Path) -> Result<(), DiskError> {
        let guest = self.guest_path(guest_path)?;
        let bytes = self.read_file(&guest)?;
        write_host_file(host_path, &bytes)
            .map_err(|source| self.host_error(&guest, host_path, "write", source))
    }

    /// Writes `bytes` as the file `guest_path`, replacing an existing file and creating
    /// missing parent directories. The file changes atomically: a failure leaves the old
    /// contents.
    pub fn put(&mut self, guest_path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.check_writable()?;
        let guest = self.guest_path(guest_path)?;
        if let Some((parent, _)) = guest.rsplit_once('/') {
            self.create_dir_all(parent)?;
        }
        self.write_file(&guest, bytes)
    }

    /// Copies the file `host_path` to `guest_path` as [`Disk::put`] writes it.
    pub fn put_file(&mut self, host_path: &Path, guest_path: &str) -> Result<(), DiskError> {
        self.check_writable()?;
        let guest = self.guest_path(guest_path)?;
        let bytes = self.read_host_file(&guest, host_path)?;
        self.put(&guest, &bytes)
    }

    /// The bytes of the regular file `host`, for `guest`: a device, FIFO or socket is refused
    /// before it is opened (reading one may never end), and a file larger than a file on this
    /// image can be before it is read.
    fn read_host_file(&self, guest: &str, host: &Path) -> Result<Vec<u8>, DiskError> {
        use std::io::Read as _;
        let special = || self.host_path_error(guest, host, NOT_FILE_OR_DIRECTORY);
        let read_error = |source| self.host_error(guest, host, "read", source);
        let kind = fs::metadata(host).map_err(read_error)?.file_type();
        if kind.is_dir() {
            return Err(self.host_path_error(guest, host, "a directory, not a file"));
        }
        if !kind.is_file() {
            return Err(special());
        }
        let file = File::open(host).map_err(read_error)?;
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            return Err(special());
        }
        self.check_fits(guest, host, metadata.len())?;
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        file.take(self.file_limit() + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        self.check_fits(guest, host, bytes.len() as u64)?;
        Ok(bytes)
    }

    /// Whether `len` bytes from `host` fit in a file on this image.
    fn check_fits(&self, guest: &str, host: &Path, len: u64) -> Result<(), DiskError> {
        let limit = self.file_limit();
        if len > limit {
            return Err(DiskError::HostTooLarge {
                image: self.image.clone(),
                guest: guest.to_owned(),
                host: host.to_owned(),
                len,
                limit,
            });
        }
        Ok(())
    }

    /// The most a file on this image can hold: littlefs's limit, or the image's size.
    fn file_limit(&self) -> u64 {
        u64::from(unik_lfs::FILE_MAX).min(self.fs.device().size)
    }

    /// Copies the files and directories in `host_dir` into `guest_dir` (created if missing),
    /// following symbolic links and replacing files that exist. Entries go in by name, so
    /// that the same tree makes the same image. The whole tree is checked first (names a
    /// guest can have, files and directories only, no link back up, no file larger than the
    /// image holds), so that a tree refused for any of those leaves the image as it was; the
    /// image filling up, or a guest file where the tree has a directory, can still stop the
    /// copy part way.
    pub fn put_tree(&mut self, host_dir: &Path, guest_dir: &str) -> Result<(), DiskError> {
        self.check_writable()?;
        let guest = self.guest_path(guest_dir)?;
        let metadata = fs::metadata(host_dir)
            .map_err(|source| self.host_error(&guest, host_dir, "read", source))?;
        if !metadata.is_dir() {
            return Err(self.host_path_error(&guest, host_dir, "not a directory"));
        }
        let mut plan = Vec::new();
        let mut ancestors = vec![(metadata.dev(), metadata.ino())];
        self.plan_dir(host_dir, &guest, &mut ancestors, &mut plan)?;
        self.create_dir_all(&guest)?;
        for (guest, host, is_dir) in plan {
            if is_dir {
                self.create_dir(&guest)?;
            } else {
                let bytes = self.read_host_file(&guest, &host)?;
                self.write_file(&guest, &bytes)?;
            }
        }
        Ok(())
    }

    /// Adds to `plan` what copying `host_dir` into `guest_dir` makes, in order: (guest path,
    /// host path, whether a directory). `ancestors` are the directories (device, inode) being
    /// planned, to catch a symbolic link back to one of them.
    fn plan_dir(
        &self,
        host_dir: &Path,
        guest_dir: &str,
        ancestors: &mut Vec<(u64, u64)>,
        plan: &mut Vec<(String, PathBuf, bool)>,
    ) -> Result<(), DiskError> {
        let mut names: Vec<_> = fs::read_dir(host_dir)
            .and_then(|dir| dir.map(|entry| entry.map(|e| e.file_name())).collect())
            .map_err(|source| self.host_error(guest_dir, host_dir, "list", source))?;
        names.sort();
        for name in names {
            let host = host_dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(self.host_path_error(
                    guest_dir,
                    &host,
                    "its name is not UTF-8, as guest names must be",
                ));
            };
            let guest = self.guest_path(&join(guest_dir, name))?;
            let metadata = fs::metadata(&host)
                .map_err(|source| self.host_error(&guest, &host, "read", source))?;
            if metadata.is_dir() {
                let id = (metadata.dev(), metadata.ino());
                if ancestors.contains(&id) {
                    return Err(self.host_path_error(&guest, &host, "a symbolic link loop"));
                }
                plan.push((guest.clone(), host.clone(), true));
                ancestors.push(id);
                self.plan_dir(&host, &guest, ancestors, plan)?;
                ancestors.pop();
            } else if metadata.is_file() {
                self.check_fits(&guest, &host, metadata.len())?;
                plan.push((guest, host, false));
            } else {
                return Err(self.host_path_error(&guest, &host, NOT_FILE_OR_DIRECTORY));
            }
        }
        Ok(())
    }

    /// Copies the directory `guest_dir` and everything in it to `host_dir`, which must not
    /// exist. The copy is made beside `host_dir` and renamed into place, so that a failure
    /// leaves nothing behind.
    pub fn get_tree(&mut self, guest_dir: &str, host_dir: &Path) -> Result<(), DiskError> {
        let guest = self.guest_path(guest_dir)?;
        if host_dir.symlink_metadata().is_ok() {
            return Err(self.host_path_error(&guest, host_dir, "already exists"));
        }
        let tree = self.walk(&guest)?;
        let mut staging = tempfile::Builder::new()
            .prefix(".uniklink-disk")
            .permissions(Permissions::from_mode(0o777))
            .tempdir_in(parent_dir(host_dir))
            .map_err(|source| self.host_error(&guest, host_dir, "create", source))?;
        for (path, entry) in &tree {
            let relative = path[guest.len()..].trim_start_matches('/');
            let target = staging.path().join(relative);
            let written = match entry.kind {
                FileType::Dir => fs::create_dir(&target),
                FileType::File => {
                    let bytes = self.read_file(path)?;
                    // A new file each: on a host that folds case, `A` and `a` collide
                    // instead of one replacing the other.
                    File::options()
                        .write(true)
                        .create_new(true)
                        .open(&target)
                        .and_then(|mut file| {
                            file.write_all(&bytes)?;
                            file.sync_all()
                        })
                }
            };
            written.map_err(|source| {
                self.host_error(path, &host_dir.join(relative), "write", source)
            })?;
        }
        rename_new(staging.path(), host_dir)
            .map_err(|source| self.host_error(&guest, host_dir, "create", source))?;
        staging.disable_cleanup(true);
        Ok(())
    }

    /// Blocks in use and in all.
    pub fn usage(&mut self) -> Result<Usage, DiskError> {
        self.fs.usage().map_err(|e| self.fs_error("/", e))
    }

    /// Makes every write durable and unmounts.
    pub fn close(mut self) -> Result<(), DiskError> {
        if self.writable {
            self.fs
                .flush()
                .map_err(|e| image_error(&self.image, self.fs.device(), e))?;
        }
        let image = self.image;
        self.fs
            .unmount()
            .map(drop)
            .map_err(|source| DiskError::Volume { image, source })
    }

    fn check_writable(&self) -> Result<(), DiskError> {
        if self.writable {
            Ok(())
        } else {
            Err(DiskError::ReadOnly {
                image: self.image.clone(),
            })
        }
    }

    /// `path` as littlefs takes it: `/`, then names joined by single slashes.
    fn guest_path(&self, path: &str) -> Result<String, DiskError> {
        normalize(path).map_err(|reason| DiskError::GuestPath {
            image: self.image.clone(),
            guest: path.replace('\0', "\\0"),
            reason,
        })
    }

    fn fs_error(&self, guest: &str, e: LfsError) -> DiskError {
        match (e, self.fs.device().take_error()) {
            (LfsError::Io(_), Some(source)) => DiskError::Device {
                image: self.image.clone(),
                guest: guest.to_owned(),
                source,
            },
            (source, _) => DiskError::Fs {
                image: self.image.clone(),
                guest: guest.to_owned(),
                source,
            },
        }
    }

    fn host_error(
        &self,
        guest: &str,
        host: &Path,
        action: &'static str,
        source: io::Error,
    ) -> DiskError {
        DiskError::Host {
            image: self.image.clone(),
            guest: guest.to_owned(),
            host: host.to_owned(),
            action,
            source,
        }
    }

    fn host_path_error(&self, guest: &str, host: &Path, reason: &'static str) -> DiskError {
        DiskError::HostPath {
            image: self.image.clone(),
            guest: guest.to_owned(),
            host: host.to_owned(),
            reason,
        }
    }

    fn damaged(&self, guest: &str, what: &'static str) -> DiskError {
        DiskError::Damaged {
            image: self.image.clone(),
            guest: guest.to_owned(),
            what,
        }
    }

    /// The entries of the normalized directory `guest`; a name that could not have been
    /// written (with a `/`, or `.` or `..` as a real entry) means a damaged image, and would
    /// lead a copy out of its directory on the host.
    fn list_at(&mut self, guest: &str) -> Result<Vec<Entry>, DiskError> {
        let entries = self
            .fs
            .read_dir(guest)
            .map_err(|e| self.fs_error(guest, e))?;
        entries
            .into_iter()
            .map(|entry| {
                if matches!(entry.name.as_str(), "" | "." | "..") || entry.name.contains('/') {
                    return Err(self.damaged(guest, "an entry with an impossible name"));
                }
                Ok(Entry {
                    name: entry.name,
                    kind: entry.metadata.file_type,
                    len: entry.metadata.len,
                })
            })
            .collect()
    }

    fn read_file(&mut self, guest: &str) -> Result<Vec<u8>, DiskError> {
        let flags = OpenFlags {
            read: true,
            ..OpenFlags::default()
        };
        let file = self
            .fs
            .open(guest, flags)
            .map_err(|e| self.fs_error(guest, e))?;
        let read = self.read_open(file, guest);
        let closed = self.fs.close(file).map_err(|e| self.fs_error(guest, e));
        let bytes = read?;
        closed?;
        Ok(bytes)
    }

    fn read_open(&mut self, file: unik_lfs::FileId, guest: &str) -> Result<Vec<u8>, DiskError> {
        let len = self.fs.len(file).map_err(|e| self.fs_error(guest, e))?;
        if len > self.fs.device().size {
            return Err(self.damaged(guest, "a file larger than the image"));
        }
        let mut bytes = vec![0; len as usize];
        let mut filled = 0;
        while filled < bytes.len() {
            let n = self
                .fs
                .read(file, &mut bytes[filled..])
                .map_err(|e| self.fs_error(guest, e))?;
            if n == 0 {
                return Err(self.damaged(guest, "a file shorter than its recorded size"));
            }
            filled += n;
        }
        Ok(bytes)
    }

    /// Writes the file `guest` whole. littlefs commits a file only when it is closed without
    /// an error, so a failed write leaves the old contents; a file the write created is
    /// removed again.
    fn write_file(&mut self, guest: &str, bytes: &[u8]) -> Result<(), DiskError> {
        let existed = self.fs.metadata(guest).is_ok();
        let flags = OpenFlags {
            write: true,
            create: true,
            truncate: true,
            ..OpenFlags::default()
        };
        let file = self
            .fs
            .open(guest, flags)
            .map_err(|e| self.fs_error(guest, e))?;
        let mut rest = bytes;
        let mut written = Ok(());
        while !rest.is_empty() {
            match self.fs.write(file, rest) {
                Ok(0) => written = Err(LfsError::NoSpace),
                Ok(n) => rest = &rest[n..],
                Err(e) => written = Err(e),
            }
            if written.is_err() {
                break;
            }
        }
        let result = written
            .and(self.fs.close(file))
            .map_err(|e| self.fs_error(guest, e));
        if result.is_err() && !existed {
            let _ = self.fs.remove(guest);
        }
        result
    }

    /// Creates the normalized directory `guest`; one that exists already is fine.
    fn create_dir(&mut self, guest: &str) -> Result<(), DiskError> {
        match self.fs.create_dir(guest) {
            Ok(()) => Ok(()),
            Err(LfsError::AlreadyExists) => match self.fs.metadata(guest) {
                Ok(m) if m.file_type == FileType::Dir => Ok(()),
                Ok(_) => Err(self.fs_error(guest, LfsError::NotADirectory)),
                Err(e) => Err(self.fs_error(guest, e)),
            },
            Err(e) => Err(self.fs_error(guest, e)),
        }
    }

    /// Creates the normalized directory `guest` and its missing parents.
    fn create_dir_all(&mut self, guest: &str) -> Result<(), DiskError> {
        let ends = guest
            .match_indices('/')
            .map(|(i, _)| i)
            .skip(1)
            .chain([guest.len()]);
        for end in ends {
            if end > 1 {
                self.create_dir(&guest[..end])?;
            }
        }
        Ok(())
    }
}

/// A failure of the file system as a whole, with the OS error behind it if there is one.
fn image_error(image: &Path, device: &ImageDevice, e: LfsError) -> DiskError {
    match (e, device.take_error()) {
        (LfsError::Io(_), Some(source)) => DiskError::Access {
            image: image.to_owned(),
            source,
        },
        (source, _) => DiskError::Volume {
            image: image.to_owned(),
            source,
        },
    }
}

/// Why a host entry is neither copied nor descended into.
const NOT_FILE_OR_DIRECTORY: &str = "neither a file nor a directory (a device, socket or FIFO)";

/// The longest guest path: Linux's `PATH_MAX`, so that whatever is on a disk fits on the host.
const MAX_GUEST_PATH: usize = 4096;
const TOO_LONG: &str = "a guest path longer than 4096 bytes, more than a host path holds";
/// [`TOO_LONG`], met in a walk of the image.
const TOO_DEEP: &str =
    "a guest path longer than 4096 bytes, more than a host path holds (a directory in itself?)";

/// A guest path with single slashes and no trailing one, or why it is not one.
fn normalize(path: &str) -> Result<String, &'static str> {
    if !path.starts_with('/') {
        return Err("guest paths are absolute inside the volume: start it with /");
    }
    if path.contains('\0') {
        return Err("a NUL byte in a guest path");
    }
    let mut normal = String::with_capacity(path.len());
    for name in path.split('/').filter(|name| !name.is_empty()) {
        if name == "." || name == ".." {
            return Err("`.` and `..` have no place in a guest path");
        }
        if name.len() > NAME_MAX {
            return Err("a name longer than 255 bytes");
        }
        normal.push('/');
        normal.push_str(name);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    if normal.len() > MAX_GUEST_PATH {
        return Err(TOO_LONG);
    }
    Ok(normal)
}

/// `dir/name` for a normalized `dir`.
fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Writes `bytes` to a file beside `path` and renames it over `path`.
fn write_host_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut staging = tempfile::Builder::new()
        .prefix(".uniklink-disk")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(parent_dir(path))?;
    staging.write_all(bytes)?;
    staging.as_file().sync_all()?;
    staging.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Renames `from` to `to` unless `to` exists, atomically: a directory made there since it
/// was checked is not replaced. Where the file system cannot (NFS, some FUSE), it checks, then
/// renames.
fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = |path: &Path| {
        std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (c_from, c_to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths, relative to the working directory.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if done == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EINVAL) {
        return Err(error);
    }
    if to.symlink_metadata().is_ok() {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    fs::rename(from, to)
}

/// The directory a new `path` goes in, where its staging copy is made.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A fresh formatted image of `size` bytes in its own temporary directory.
    fn image(size: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        create(&path, size).unwrap();
        (dir, path)
    }

    /// Deterministic bytes that do not compress into patterns littlefs could mistake for
    /// anything.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn open_error(path: &Path) -> DiskError {
        match Disk::open(path, false) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn create_writes_a_sparse_formatted_image_and_nothing_else() {
        let (dir, path) = image(64 * MIB);
        let metadata = fs::metadata(&path).unwrap();
        assert_eq!(metadata.len(), 64 * MIB);
        assert!(
            metadata.blocks() * 512 < MIB,
            "sparse: {} blocks",
            metadata.blocks()
        );
        assert_eq!(files_in(dir.path()), ["disk.img"]);
        let mut disk = Disk::open(&path, false).unwrap();
        assert_eq!(disk.list("/").unwrap(), []);
        let usage = disk.usage().unwrap();
        assert_eq!(usage.blocks, 64 * MIB / 4096);
        assert!(usage.used_blocks < 8, "{usage:?}");
        disk.close().unwrap();
    }

    #[test]
    fn create_refuses_an_existing_path_and_odd_sizes_and_leaves_nothing() {
        let (dir, path) = image(MIN_SIZE);
        let before = fs::read(&path).unwrap();
        let e = create(&path, MIB).unwrap_err();
        assert!(matches!(e, DiskError::Exists { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{}: ", path.display())),
            "{e}"
        );
        assert_eq!(fs::read(&path).unwrap(), before);
        for size in [0, 4095, MIN_SIZE - 4096, MIN_SIZE + 1, MAX_SIZE + 4096] {
            let other = dir.path().join("other.img");
            let e = create(&other, size).unwrap_err();
            assert!(matches!(e, DiskError::Size { .. }), "{size}: {e}");
            assert!(e.to_string().contains("other.img"), "{e}");
        }
        let e = create(&dir.path().join("missing/dir/x.img"), MIB).unwrap_err();
        assert!(matches!(e, DiskError::Create { .. }), "{e}");
        assert_eq!(files_in(dir.path()), ["disk.img"]);
    }

    #[test]
    fn files_round_trip_and_replace_atomically() {
        let (_dir, path) = image(MIB);
        let mut disk = Disk::open(&path, true).unwrap();
        disk.put("/etc/app/config.toml", b"port = 80\n").unwrap();
        disk.put("//etc///app/config.toml/", b"port = 8080\n")
            .unwrap();
        disk.put("/empty", b"").unwrap();
        disk.close().unwrap();

        let mut disk = Disk::open(&path, false).unwrap();
        assert_eq!(disk.get("/etc/app/config.toml").unwrap(), b"port = 8080\n");
        assert_eq!(disk.get("/empty").unwrap(), b"");
        let names = |entries: Vec<Entry>| -> Vec<(String, FileType, u64)> {
            entries
                .into_iter()
                .map(|e| (e.name, e.kind, e.len))
                .collect()
        };
        assert_eq!(
            names(disk.list("/").unwrap()),
            [
                ("empty".into(), FileType::File, 0),
                ("etc".into(), FileType::Dir, 0)
            ]
        );
        assert_eq!(
            disk.metadata("/etc/app/config.toml").unwrap(),
            Entry {
                name: "config.toml".into(),
                kind: FileType::File,
                len: 12
            }
        );
        assert_eq!(disk.metadata("/").unwrap().name, "/");
        let walked: Vec<String> = disk
            .walk("/")
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            walked,
            ["/empty", "/etc", "/etc/app", "/etc/app/config.toml"]
        );
    }

    #[test]
    fn host_files_round_trip_and_replace_host_files() {
        let (dir, path) = image(MIB);
        let host = dir.path().join("in.bin");
        fs::write(&host, noise(10_000, 1)).unwrap();
        let mut disk = Disk::open(&path, true).unwrap();
        disk.put_file(&host, "/d/in.bin").unwrap();
        let out = dir.path().join("out.bin");
        fs::write(&out, "old").unwrap();
        disk.get_file("/d/in.bin", &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), noise(10_000, 1));
        let e = disk.get_file("/d", &out).unwrap_err();
        assert!(e.to_string().ends_with(": /d: is a directory"), "{e}");
        let e = disk.put_file(dir.path(), "/x").unwrap_err();
        assert!(e.to_string().ends_with("a directory, not a file"), "{e}");
        assert_eq!(fs::read(&out).unwrap(), noise(10_000, 1));
        assert_eq!(files_in(dir.path()), ["disk.img", "in.bin", "out.bin"]);
    }

    /// The guest mounts with its own caches (the fs component's `cache_size`, 512 bytes to
    /// 4 KiB) and reads what the host wrote, inline files included, and the other way round.
    #[test]
    fn the_guest_configuration_reads_and_writes_host_images() {
        let (_dir, path) = image(MIB);
        let files = [
            ("/inline", noise(300, 1)),
            ("/edge", noise(512, 2)),
            ("/d/outlined", noise(513, 3)),
            ("/d/big", noise(200_000, 4)),
        ];
        let mut disk = Disk::open(&path, true).unwrap();
        for (name, bytes) in &files {
            disk.put(name, bytes).unwrap();
        }
        disk.close().unwrap();
        for cache_size in [512, 1024, 4096] {
            let guest = Config {
                cache_size,
                lookahead_size: 16,
                block_cycles: 0,
            };
            let device = ImageDevice::open(&path, true).unwrap();
            let mut fs = Filesystem::mount(device, guest)
                .map_err(|(e, _)| e)
                .unwrap();
            for (name, bytes) in &files {
                let file = fs
                    .open(
                        name,
                        OpenFlags {
                            read: true,
                            ..OpenFlags::default()
                        },
                    )
                    .unwrap();
                let mut read = vec![0; bytes.len() + 1];
                let mut filled = 0;
                loop {
                    let n = fs.read(file, &mut read[filled..]).unwrap();
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                fs.close(file).unwrap();
                assert_eq!(
                    &read[..filled],
                    &bytes[..],
                    "{name} with a {cache_size}-byte cache"
                );
            }
            let flags = OpenFlags {
                write: true,
                create: true,
                truncate: true,
                ..OpenFlags::default()
            };
            let written = format!("/d/from-guest-{cache_size}");
            let file = fs.open(&written, flags).unwrap();
            fs.write(file, &noise(400, u64::from(cache_size))).unwrap();
            fs.close(file).unwrap();
            fs.unmount().unwrap();
            let mut disk = Disk::open(&path, false).unwrap();
            assert_eq!(
                disk.get(&written).unwrap(),
                noise(400, u64::from(cache_size))
            );
        }
    }

    #[test]
    fn a_write_that_does_not_fit_leaves_the_old_file_or_none() {
        let (_dir, path) = image(MIN_SIZE);
        let mut disk = Disk::open(&path, true).unwrap();
        disk.put("/keep", b"old").unwrap();
        let big = noise((2 * MIN_SIZE) as usize, 7);
        let e = disk.put("/keep", &big).unwrap_err();
        assert!(
            matches!(
                e,
                DiskError::Fs {
                    source: LfsError::NoSpace,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!("{}: /keep: no space left on the device", path.display())
        );
        assert!(disk.put("/new", &big).is_err());
        disk.close().unwrap();
        let mut disk = Disk::open(&path, false).unwrap();
        assert_eq!(disk.get("/keep").unwrap(), b"old");
        assert!(disk.metadata("/new").is_err());
    }

    #[test]
    fn trees_round_trip_byte_for_byte() {
        let host = tempfile::tempdir().unwrap();
        let src = host.path().join("src");
        fs::create_dir_all(src.join("a/b/c")).unwrap();
        fs::create_dir_all(src.join("empty-dir")).unwrap();
        fs::write(src.join("a/b/c/deep.txt"), "deep").unwrap();
        fs::write(src.join("a/empty"), "").unwrap();
        fs::write(src.join("a/b/big.bin"), noise(MIB as usize, 3)).unwrap();
        fs::write(src.join("grüße-データ.txt"), "hallo").unwrap();
        std::os::unix::fs::symlink("a/b/c/deep.txt", src.join("link")).unwrap();

        let (_dir, path) = image(8 * MIB);
        let mut disk = Disk::open(&path, true).unwrap();
        disk.put_tree(&src, "/srv/data").unwrap();
        disk.close().unwrap();

        let mut disk = Disk::open(&path, false).unwrap();
        assert_eq!(disk.get("/srv/data/link").unwrap(), b"deep");
        let out = host.path().join("out");
        disk.get_tree("/srv/data", &out).unwrap();
        fs::remove_file(src.join("link")).unwrap();
        fs::write(src.join("link"), "deep").unwrap();
        assert_eq!(tree(&out), tree(&src));
        assert_eq!(files_in(host.path()), ["out", "src"]);

        let e = disk.get_tree("/srv", &out).unwrap_err();
        assert!(matches!(e, DiskError::HostPath { .. }), "{e}");
        let e = disk
            .get_tree("/srv/data/a/empty", &host.path().join("x"))
            .unwrap_err();
        assert!(
            e.to_string().contains("/srv/data/a/empty: not a directory"),
            "{e}"
        );
        assert_eq!(files_in(host.path()), ["out", "src"]);
    }

    /// Every path under `root` with its contents (`None` for a directory).
    fn tree(root: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(root).unwrap().to_path_buf();
                if path.is_dir() {
                    pending.push(path);
                    found.push((relative, None));
                } else {
                    found.push((relative, Some(fs::read(&path).unwrap())));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn put_tree_refuses_loops_and_special_files() {
        let host = tempfile::tempdir().unwrap();
        let src = host.path().join("src");
        fs::create_dir_all(src.join("d")).unwrap();
        // Before the loop in name order: a tree that cannot go in writes nothing.
        fs::write(src.join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("..", src.join("d/up")).unwrap();
        let (_dir, path) = image(MIB);
        let mut disk = Disk::open(&path, true).unwrap();
        let e = disk.put_tree(&src, "/").unwrap_err();
        assert!(e.to_string().ends_with("a symbolic link loop"), "{e}");
        assert!(e.to_string().contains("/d/up"), "{e}");
        assert!(disk.list("/").unwrap().is_empty(), "nothing went in");
        fs::remove_file(src.join("d/up")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(src.join("z"))
            .status()
            .unwrap();
        assert!(fifo.success());
        let e = disk.put_tree(&src, "/").unwrap_err();
        assert!(e.to_string().ends_with("(a device, socket or FIFO)"), "{e}");
        assert!(disk.list("/").unwrap().is_empty(), "nothing went in");
        fs::remove_file(src.join("z")).unwrap();

        let e = disk.put_tree(&src.join("d/missing"), "/").unwrap_err();
        assert!(matches!(e, DiskError::Host { .. }), "{e}");
        fs::write(src.join("file"), "x").unwrap();
        let e = disk.put_tree(&src.join("file"), "/").unwrap_err();
        assert!(e.to_string().ends_with("file: not a directory"), "{e}");
    }

    /// `put` reads only regular files, and only those a file on the image can hold: a FIFO
    /// (reading it would wait for a writer forever) and a file larger than the image are
    /// refused before anything is read or written.
    #[test]
    fn put_file_refuses_special_files_and_files_larger_than_the_image() {
        let host = tempfile::tempdir().unwrap();
        let fifo = host.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (_dir, path) = image(MIB);
        let mut disk = Disk::open(&path, true).unwrap();
        let e = disk.put_file(&fifo, "/f").unwrap_err();
        assert!(e.to_string().ends_with("(a device, socket or FIFO)"), "{e}");
        let e = disk.put_file(Path::new("/dev/zero"), "/z").unwrap_err();
        assert!(e.to_string().ends_with("(a device, socket or FIFO)"), "{e}");

        let big = host.path().join("big");
        File::create(&big).unwrap().set_len(MIB + 1).unwrap();
        let e = disk.put_file(&big, "/big").unwrap_err();
        assert!(
            e.to_string().ends_with(&format!(
                "1048577 bytes do not fit: the image holds at most {MIB} bytes in a file"
            )),
            "{e}"
        );
        assert!(disk.list("/").unwrap().is_empty(), "nothing written");
    }

    /// A directory that contains itself (a damaged image) makes ever longer paths; a walk
    /// stops at paths longer than a host path can be. Made here by the guest's own means: a
    /// tree deeper than that, which the host side cannot name.
    #[test]
    fn a_walk_stops_at_paths_no_host_can_hold() {
        let (_dir, path) = image(MIB);
        let mut disk = Disk::open(&path, true).unwrap();
        let name = "d".repeat(255);
        let mut deep = String::new();
        for _ in 0..17 {
            deep = format!("{deep}/{name}");
            disk.fs.create_dir(&deep).unwrap();
        }
        assert!(deep.len() > MAX_GUEST_PATH);
        let e = disk.walk("/").unwrap_err();
        assert!(
            e.to_string().ends_with("a guest path longer than 4096 bytes, more than a host path holds (a directory in itself?)"),
            "{e}"
        );
        let e = disk.list(&deep).unwrap_err();
        assert!(matches!(e, DiskError::GuestPath { .. }), "{e}");
    }

    /// `get -r`'s final rename does not replace a directory made in its place meanwhile.
    #[test]
    fn rename_new_does_not_replace() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        fs::create_dir(&from).unwrap();
        fs::create_dir(&to).unwrap();
        let e = rename_new(&from, &to).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        fs::remove_dir(&to).unwrap();
        rename_new(&from, &to).unwrap();
        assert!(to.is_dir() && !from.exists());
    }

    /// While a disk is open, QEMU cannot start on its image: the locks `disk` holds are the
    /// ones QEMU's own image locking checks.
    #[test]
    fn qemu_cannot_start_on_an_open_disk() {
        let (dir, path) = image(MIB);
        let _disk = Disk::open(&path, false).unwrap();
        let out = std::process::Command::new("timeout")
            .current_dir(dir.path())
            .args([
                "30",
                "qemu-system-x86_64",
                "-machine",
                "q35",
                "-accel",
                "tcg",
            ])
            .args(["-nodefaults", "-S", "-display", "none", "-monitor", "none"])
            .args(["-drive", "file=disk.img,format=raw,if=none,id=d"])
            .args(["-device", "virtio-blk-pci,drive=d"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("Failed to get \"write\" lock"), "{stderr}");
    }

    #[test]
    fn guest_paths_are_absolute_without_dots_nul_or_long_names() {
        let (_dir, path) = image(MIB);
        let mut disk = Disk::open(&path, true).unwrap();
        let long = format!("/{}", "x".repeat(256));
        for bad in ["relative", "", "/a/../b", "/./a", "/a\0b", long.as_str()] {
            let e = disk.put(bad, b"x").unwrap_err();
            assert!(matches!(e, DiskError::GuestPath { .. }), "{bad:?}: {e}");
            assert!(
                e.to_string().starts_with(&format!("{}: ", path.display())),
                "{e}"
            );
            assert!(disk.get(bad).is_err() && disk.list(bad).is_err());
        }
        let e = disk.get("/a\0b").unwrap_err();
        assert!(e.to_string().contains("/a\\0b: a NUL byte"), "{e}");
        disk.put(&format!("/{}", "y".repeat(255)), b"ok").unwrap();
        assert_eq!(disk.list("/").unwrap().len(), 1);
    }

    #[test]
    fn missing_entries_and_read_only_disks_are_errors_naming_the_path() {
        let (_dir, path) = image(MIB);
        let mut disk = Disk::open(&path, false).unwrap();
        let e = disk.get("/nope").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: /nope: no such file or directory", path.display())
        );
        let e = disk.put("/x", b"x").unwrap_err();
        assert!(matches!(e, DiskError::ReadOnly { .. }), "{e}");
        let e = disk.get("/").unwrap_err();
        assert!(e.to_string().ends_with(": /: is a directory"), "{e}");
    }

    /// Every way an image can be bad: an error naming the file, never a panic or a hang.
    #[test]
    fn bad_images_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            path
        };
        let valid = {
            let path = dir.path().join("valid.img");
            create(&path, MIB).unwrap();
            let mut disk = Disk::open(&path, true).unwrap();
            disk.put("/a/b", &noise(100_000, 5)).unwrap();
            disk.close().unwrap();
            fs::read(&path).unwrap()
        };
        let mut no_superblock = valid.clone();
        no_superblock[..2 * 4096].fill(0);

        let cases = [
            (
                write("random.img", &noise(MIB as usize, 11)),
                "no littlefs file system",
            ),
            (
                write("zeros.img", &vec![0; MIB as usize]),
                "no littlefs file system",
            ),
            (
                write("no-superblock.img", &no_superblock),
                "no littlefs file system",
            ),
            (
                write("short.img", &valid[..3000]),
                "3000 bytes is not a disk size",
            ),
            (
                write("tiny.img", &valid[..8192]),
                "8192 bytes is not a disk size",
            ),
            (
                write("odd.img", &[&valid[..], &[0; 100]].concat()),
                "is not a disk size",
            ),
            (
                write("halved.img", &valid[..valid.len() / 2]),
                "does not fit the image",
            ),
            (dir.path().to_path_buf(), "not a regular file"),
            (dir.path().join("missing.img"), "No such file"),
        ];
        for (path, message) in &cases {
            let e = open_error(path);
            let text = e.to_string();
            assert!(text.starts_with(&format!("{}: ", path.display())), "{text}");
            assert!(text.contains(message), "{text}");
        }
        let e = Disk::open(dir.path(), true).err().unwrap();
        assert!(e.to_string().contains("Is a directory"), "{e}");
    }

    /// Bytes flipped all over a valid image's metadata: each mount and read either works or
    /// fails with an error.
    #[test]
    fn damaged_images_never_panic() {
        let (dir, path) = image(MIN_SIZE * 2);
        let mut disk = Disk::open(&path, true).unwrap();
        for i in 0..20 {
            disk.put(&format!("/d{}/f{i}", i % 3), &noise(300 * i, i as u64))
                .unwrap();
        }
        disk.close().unwrap();
        let valid = fs::read(&path).unwrap();
        let damaged = dir.path().join("damaged.img");
        let used = valid.len() / 4;
        let flips = noise(4 * 64, 99);
        for (round, flip) in flips.chunks(4).enumerate() {
            let mut bytes = valid.clone();
            let at = usize::from(u16::from_le_bytes([flip[0], flip[1]])) * used / 65536;
            for (k, byte) in bytes[at..].iter_mut().take(1 + round % 5).enumerate() {
                *byte ^= flip[2 + k % 2] | 1;
            }
            fs::write(&damaged, &bytes).unwrap();
            let Ok(mut disk) = Disk::open(&damaged, false) else {
                continue;
            };
            if let Ok(tree) = disk.walk("/") {
                for (path, entry) in tree {
                    if entry.kind == FileType::File {
                        let _ = disk.get(&path);
                    }
                }
            }
        }
    }
}
