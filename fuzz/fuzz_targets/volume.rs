//! A littlefs volume on a fuzzed disk image, mounted twice: as the host's `cargo uniklink
//! disk` commands mount it (`uniklink::disk::Disk` over the image file, the host's caches)
//! and as the guest's `fs` component does (`unik_lfs::Filesystem` over the disk's bytes, with
//! the guest's smallest cache). Each mount walks every directory, stats and reads every file,
//! then writes files (a new directory, a file inline in its directory's metadata and one of
//! several blocks), commits, remounts and reads them back, so that the commit paths run on
//! damaged metadata too. Any panic, abort, hang or outsized allocation is a finding.
//!
//! A write that succeeds need not read back: littlefs trusts what a commit with a valid CRC
//! says, and compacting a directory that holds a tag no littlefs writes (found in the first
//! minute: a directory-pointer tag of id 0x3ff beside the superblock) can turn it into one
//! that hides the superblock, so that the next mount fails with a clean error.
//!
//! The input is the image with its trailing zeros cut, as `seeds/volume.sh` stores the
//! seeds: zeros pad it back to whole 4 KiB blocks, at least the 16 of the smallest disk. The
//! mutator (`uniklink_fuzz::mutate_littlefs`) keeps most commits' CRCs valid, so that the
//! mutations reach what littlefs reads past its checksums.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use unik_lfs::{BLOCK_SIZE, BlockDevice, Config, Filesystem, IoError, OpenFlags, SECTOR_SIZE};
use uniklink::disk::{Disk, FileType, MIN_SIZE};

/// The image file, in a directory made once per process: in memory (`/dev/shm`) where there
/// is one, since every write pass ends with a `sync_data` of the image.
fn image_path() -> &'static PathBuf {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &IMAGE
        .get_or_init(|| {
            let shm = std::path::Path::new("/dev/shm");
            let dir = if shm.is_dir() {
                tempfile::tempdir_in(shm)
            } else {
                tempfile::tempdir()
            }
            .expect("a temporary directory");
            let path = dir.path().join("volume.img");
            (dir, path)
        })
        .1
}

/// What the write passes store: three blocks and a bit, so that the file's blocks form a
/// list (littlefs's CTZ skip list), not one block or inline data.
fn contents() -> Vec<u8> {
    (0..3 * BLOCK_SIZE as usize + 100)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect()
}

const SMALL: &[u8] = b"inline in the directory's metadata";

fn host(image: &[u8]) {
    let path = image_path();
    std::fs::write(path, image).expect("write the image");
    let Ok(mut disk) = Disk::open(path, true) else {
        return;
    };
    if let Ok(tree) = disk.walk("/") {
        for (guest, entry) in tree {
            let _ = disk.metadata(&guest);
            if entry.kind == FileType::File {
                let _ = disk.get(&guest);
            }
        }
    }
    let _ = disk.usage();
    let big = contents();
    let written = disk
        .put("/fuzz/big", &big)
        .and_then(|()| disk.put("/small", SMALL));
    let closed = disk.close();
    if written.is_ok()
        && closed.is_ok()
        && let Ok(mut disk) = Disk::open(path, false)
    {
        let _ = disk.get("/fuzz/big");
        let _ = disk.get("/small");
    }
}

/// The guest's disk: the image's bytes, accessed in whole sectors as virtio-blk accesses them.
struct Ram(Vec<u8>);

impl Ram {
    fn range(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, IoError> {
        // littlefs is configured for 512-byte reads and writes: anything else is a bug in the
        // binding's geometry, which the guest's disk would refuse.
        assert!(
            offset.is_multiple_of(u64::from(SECTOR_SIZE))
                && len.is_multiple_of(SECTOR_SIZE as usize),
            "unaligned access: {len} bytes at {offset}"
        );
        let start = usize::try_from(offset).map_err(|_| IoError::OutOfRange)?;
        match start.checked_add(len) {
            Some(end) if end <= self.0.len() => Ok(start..end),
            _ => Err(IoError::OutOfRange),
        }
    }
}

impl BlockDevice for Ram {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let range = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.0[range]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), IoError> {
        let range = self.range(offset, data.len())?;
        self.0[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

const READ: OpenFlags = OpenFlags {
    read: true,
    write: false,
    append: false,
    truncate: false,
    create: false,
    create_new: false,
};

/// The file's bytes, at most `limit` of them (an app reads a file to its end; a file longer
/// than the disk repeats blocks, and reading it to its recorded 2 GiB would only be slow).
fn read_file(fs: &mut Filesystem<Ram>, path: &str, limit: usize) -> Option<Vec<u8>> {
    let file = fs.open(path, READ).ok()?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = loop {
        match fs.read(file, &mut buf) {
            Ok(0) => break true,
            Ok(n) if bytes.len() + n <= limit => bytes.extend_from_slice(&buf[..n]),
            _ => break false,
        }
    };
    let _ = fs.len(file);
    let closed = fs.close(file).is_ok();
    (complete && closed).then_some(bytes)
}

fn write_file(fs: &mut Filesystem<Ram>, path: &str, bytes: &[u8]) -> bool {
    let flags = OpenFlags {
        write: true,
        create: true,
        truncate: true,
        ..READ
    };
    let Ok(file) = fs.open(path, flags) else {
        return false;
    };
    let written = fs.write(file, bytes).is_ok_and(|n| n == bytes.len());
    let synced = written && fs.sync(file).is_ok();
    fs.close(file).is_ok() && synced
}

fn guest(image: Vec<u8>) {
    let limit = image.len();
    let Ok(mut fs) = Filesystem::mount(Ram(image), Config::default()) else {
        return;
    };
    // A damaged tree may loop back on itself: a directory per block at most.
    let mut pending = vec![String::from("/")];
    let mut listings = limit / BLOCK_SIZE as usize;
    while let Some(dir) = pending.pop() {
        listings = match listings.checked_sub(1) {
            Some(left) => left,
            None => break,
        };
        let Ok(entries) = fs.read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = format!("{}/{}", dir.trim_end_matches('/'), entry.name);
            let _ = fs.metadata(&path);
            match entry.metadata.file_type {
                unik_lfs::FileType::Dir => pending.push(path),
                unik_lfs::FileType::File => drop(read_file(&mut fs, &path, limit)),
            }
        }
    }
    let _ = fs.usage();
    let big = contents();
    let written = fs.create_dir("/guest").is_ok()
        && write_file(&mut fs, "/guest/big", &big)
        && write_file(&mut fs, "/small", SMALL);
    let Ok(device) = fs.unmount() else {
        return;
    };
    if written && let Ok(mut fs) = Filesystem::mount(device, Config::default()) {
        let _ = read_file(&mut fs, "/guest/big", limit);
        let _ = read_file(&mut fs, "/small", limit);
    }
}

fuzz_target!(|input: &[u8]| {
    let size = (input.len() as u64)
        .next_multiple_of(u64::from(BLOCK_SIZE))
        .max(MIN_SIZE);
    let mut image = input.to_vec();
    image.resize(size as usize, 0);
    host(&image);
    guest(image);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    uniklink_fuzz::mutate_littlefs(data, size, max_size, seed)
});
