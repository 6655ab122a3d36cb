//! Volumes on virtio-blk disks: the manifest's `volumes`, mounted by the init, and
//! [`mount`] for apps that mount by hand.
//!
//! The manifest's volumes reach the image as a table `cargo uniklink build` generates
//! (`__uniklink_volumes`, one line `name<TAB>mount point<TAB>rw|ro` per volume); the runner
//! attaches each volume's image as a virtio-blk disk whose serial is the volume's name.

use core::arch::global_asm;

use unik_blk::Disk;
use unik_lfs::{BlockDevice, Config, IoError};

use super::{LfsVolume, Params};
use crate::{Error, Result};

/// A blk disk as littlefs's device.
struct DiskDevice {
    disk: &'static Disk,
    write_through: bool,
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
        self.disk.read(offset, buf).map_err(io)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> core::result::Result<(), IoError> {
        self.disk.write(offset, data).map_err(io)
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

// The weak defaults for a link without uniklink's glue (whose strong definitions carry the
// profile's values) and an image without volumes.
global_asm!(
    ".pushsection .rodata.__uniklink_param_fs_cache_size,\"a\",%progbits",
    ".weak __uniklink_param_fs_cache_size",
    ".type __uniklink_param_fs_cache_size,%object",
    ".size __uniklink_param_fs_cache_size, 4",
    ".balign 4",
    "__uniklink_param_fs_cache_size:",
    ".long 4096",
    ".popsection",
    ".pushsection .rodata.__uniklink_param_fs_lookahead_size,\"a\",%progbits",
    ".weak __uniklink_param_fs_lookahead_size",
    ".type __uniklink_param_fs_lookahead_size,%object",
    ".size __uniklink_param_fs_lookahead_size, 4",
    ".balign 4",
    "__uniklink_param_fs_lookahead_size:",
    ".long 256",
    ".popsection",
    ".pushsection .rodata.__uniklink_param_fs_write_through,\"a\",%progbits",
    ".weak __uniklink_param_fs_write_through",
    ".type __uniklink_param_fs_write_through,%object",
    ".size __uniklink_param_fs_write_through, 1",
    "__uniklink_param_fs_write_through:",
    ".byte 0",
    ".popsection",
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
    static __uniklink_param_fs_cache_size: u32;
    static __uniklink_param_fs_lookahead_size: u32;
    static __uniklink_param_fs_write_through: u8;
    static __uniklink_volumes: u8;
    static __uniklink_volumes_size: u64;
}

fn params() -> Params {
    // SAFETY: each symbol has its declared size, defined above or by the glue.
    unsafe {
        Params {
            config: Config {
                cache_size: __uniklink_param_fs_cache_size,
                lookahead_size: __uniklink_param_fs_lookahead_size,
                block_cycles: 0,
            },
            write_through: __uniklink_param_fs_write_through != 0,
        }
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
    let device = DiskDevice {
        disk,
        write_through: params.write_through,
    };
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
