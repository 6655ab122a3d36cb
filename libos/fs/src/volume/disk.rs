//! Volumes on virtio-blk disks: the manifest's `volumes`, mounted by the init, and
//! [`mount`] for apps that mount by hand.
//!
//! The manifest's volumes reach the image as a table `cargo uniklink build` generates
//! (`__uniklink_volumes`, one line `name<TAB>mount point<TAB>rw|ro` per volume); the runner
//! attaches each volume's image as a virtio-blk disk whose serial is the volume's name.

use core::arch::global_asm;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use unik_blk::Disk;
use unik_lfs::{BlockDevice, Config, IoError};

use super::{LfsVolume, Params};
use crate::{Error, Result};

/// A blk disk as littlefs's device, behind a cache of whole blocks. littlefs finds a file's
/// blocks through a skip list whose upper links every lookup reads again, and reads a file
/// block by block: cached blocks and read-ahead turn those small reads into few, large device
/// requests. Writes go to the disk at once (littlefs's order of writes is its crash safety)
/// and update the copies they overlap.
struct DiskDevice {
    disk: &'static Disk,
    write_through: bool,
    /// Bytes fetched by a read that misses the cache, at least the block asked for.
    read_ahead: usize,
    cache: BlockCache,
}

const BLOCK: usize = unik_lfs::BLOCK_SIZE as usize;

/// Least recently used blocks, by block number.
struct BlockCache {
    capacity: usize,
    /// (block number, last use, bytes); a linear scan, as it holds at most a few hundred.
    blocks: Vec<(u64, u64, Box<[u8]>)>,
    clock: u64,
}

impl BlockCache {
    fn get(&mut self, block: u64) -> Option<&[u8]> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.blocks.iter_mut().find(|(b, _, _)| *b == block)?;
        entry.1 = clock;
        Some(&entry.2)
    }

    fn insert(&mut self, block: u64, bytes: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        if let Some(entry) = self.blocks.iter_mut().find(|(b, _, _)| *b == block) {
            entry.1 = self.clock;
            entry.2.copy_from_slice(bytes);
        } else if self.blocks.len() < self.capacity {
            self.blocks.push((block, self.clock, bytes.into()));
        } else if let Some(oldest) = self.blocks.iter_mut().min_by_key(|(_, used, _)| *used) {
            *oldest = (block, self.clock, bytes.into());
        }
    }

    /// Writes `data`, at disk `offset`, into the copies it overlaps.
    fn update(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        for (block, _, bytes) in &mut self.blocks {
            let start = *block * BLOCK as u64;
            let (from, to) = (offset.max(start), end.min(start + BLOCK as u64));
            if from < to {
                let (dst, src, len) = (
                    (from - start) as usize,
                    (from - offset) as usize,
                    (to - from) as usize,
                );
                bytes[dst..dst + len].copy_from_slice(&data[src..src + len]);
            }
        }
    }
}

impl DiskDevice {
    fn new(disk: &'static Disk, params: &Params) -> DiskDevice {
        DiskDevice {
            disk,
            write_through: params.write_through,
            read_ahead: params.read_ahead.max(BLOCK) / BLOCK * BLOCK,
            cache: BlockCache {
                capacity: params.block_cache / BLOCK,
                blocks: Vec::new(),
                clock: 0,
            },
        }
    }

    /// Reads block `block`, and the blocks after it up to the read-ahead, into the cache.
    fn fill(&mut self, block: u64) -> core::result::Result<(), IoError> {
        let start = block * BLOCK as u64;
        let len = self
            .disk
            .size()
            .saturating_sub(start)
            .min(self.read_ahead as u64) as usize;
        let mut bytes = vec![0u8; len];
        self.disk.read(start, &mut bytes).map_err(io)?;
        for (i, chunk) in bytes.chunks_exact(BLOCK).enumerate() {
            self.cache.insert(block + i as u64, chunk);
        }
        Ok(())
    }
}

fn io(e: unik_blk::Error) -> IoError {
    match e {
        unik_blk::Error::OutOfRange | unik_blk::Error::Unaligned => IoError::OutOfRange,
        unik_blk::Error::ReadOnly => IoError::ReadOnly,
        unik_blk::Error::Device => IoError::Device,
    }
}

impl BlockDevice for DiskDevice {
    fn size(&self) -> u64 {
        self.disk.size()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), IoError> {
        if self.cache.capacity == 0 {
            return self.disk.read(offset, buf).map_err(io);
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let (block, within) = (at / BLOCK as u64, (at % BLOCK as u64) as usize);
            let len = (BLOCK - within).min(buf.len() - done);
            if self.cache.get(block).is_none() {
                self.fill(block)?;
            }
            match self.cache.get(block) {
                Some(bytes) => buf[done..done + len].copy_from_slice(&bytes[within..within + len]),
                // A block past the last whole one: straight from the disk.
                None => self.disk.read(at, &mut buf[done..done + len]).map_err(io)?,
            }
            done += len;
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> core::result::Result<(), IoError> {
        self.disk.write(offset, data).map_err(io)?;
        self.cache.update(offset, data);
        // littlefs reads back what it wrote to check it: keep whole written blocks at hand.
        if offset.is_multiple_of(BLOCK as u64) {
            for (i, chunk) in data.chunks_exact(BLOCK).enumerate() {
                self.cache.insert(offset / BLOCK as u64 + i as u64, chunk);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> core::result::Result<(), IoError> {
        self.disk.flush().map_err(io)
    }

    fn committed(&mut self) -> core::result::Result<(), IoError> {
        if self.write_through {
            self.flush()
        } else {
            Ok(())
        }
    }
}

unik_rt::component_params! {
    /// The fs component's parameters as the glue object baked them in.
    struct Glued for "fs" {
        cache_size: u32 = 4096,
        lookahead_size: u32 = 256,
        write_through: bool = 0,
        read_ahead: u32 = 65536,
        block_cache: u32 = 262144,
    }
}

// The volume table, weakly empty for an image without volumes or linked without uniklink.
global_asm!(
    ".pushsection .rodata.__uniklink_volumes,\"a\",%progbits",
    ".weak __uniklink_volumes",
    ".type __uniklink_volumes,%object",
    "__uniklink_volumes:",
    ".popsection",
    ".pushsection .rodata.__uniklink_volumes_size,\"a\",%progbits",
    ".weak __uniklink_volumes_size",
    ".type __uniklink_volumes_size,%object",
    ".size __uniklink_volumes_size, 8",
    ".balign 8",
    "__uniklink_volumes_size:",
    ".quad 0",
    ".popsection",
);

unsafe extern "C" {
    static __uniklink_volumes: u8;
    static __uniklink_volumes_size: u64;
}

fn params() -> Params {
    let glued = Glued::get();
    Params {
        config: Config {
            cache_size: glued.cache_size as u32,
            lookahead_size: glued.lookahead_size as u32,
            block_cycles: 0,
        },
        write_through: glued.write_through,
        read_ahead: glued.read_ahead,
        block_cache: glued.block_cache,
    }
}

fn volume_table() -> &'static [u8] {
    // SAFETY: the two symbols describe one byte array in `.rodata`, defined together here
    // (empty) or by the object `cargo uniklink build` generates.
    unsafe {
        let len = usize::try_from(__uniklink_volumes_size).unwrap_or(0);
        core::slice::from_raw_parts(&raw const __uniklink_volumes, len)
    }
}

/// Mounts the littlefs on the disk named `disk` (its virtio-blk serial) at `at`.
///
/// A disk without a valid file system is still mounted, and this returns its error
/// ([`Error::Corrupt`]): every call under `at` fails with it until [`crate::format`].
/// Writes are refused when `readonly` is set or the disk itself is read-only.
pub fn mount(disk: &str, at: &str, readonly: bool) -> Result<()> {
    let disk = unik_blk::disk(disk).ok_or(Error::NoDevice)?;
    let params = params();
    let device = DiskDevice::new(disk, &params);
    let volume = LfsVolume::new(device, readonly || disk.readonly(), params);
    match super::add(at, volume)? {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// Mounts the manifest's volumes before `main`. A volume that fails to mount stays in the
/// table in its failed state, where the app meets the error at its first call (and may
/// format); the boot goes on.
#[unsafe(no_mangle)]
pub extern "C" fn unik_fs_init() {
    for line in volume_table().split(|&b| b == b'\n') {
        let Ok(line) = core::str::from_utf8(line) else {
            continue;
        };
        let mut fields = line.split('\t');
        let (Some(name), Some(at), Some(mode)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let readonly = mode == "ro";
        if unik_blk::disk(name).is_none() {
            let _ = super::add(at, LfsVolume::<DiskDevice>::missing(readonly, params()));
            continue;
        }
        let _ = mount(name, at, readonly);
    }
}

// The conventional registration, which GNU ld, lld and mold keep; uniklink's weaving calls
// the init from its glue only when the component is live.
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER: extern "C" fn() = unik_fs_init;
