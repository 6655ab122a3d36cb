//! The device callbacks littlefs calls through its configuration. Each finds the
//! `Context` through the configuration's `context` pointer, turns block and offset into a
//! byte offset, and parks the device's error where `Filesystem::check` finds it.

use core::ffi::{c_int, c_void};

use littlefs2_sys as ll;

use crate::{BLOCK_SIZE, BlockDevice, Context, IoError};

fn offset(block: ll::lfs_block_t, off: ll::lfs_off_t) -> u64 {
    u64::from(block) * u64::from(BLOCK_SIZE) + u64::from(off)
}

/// # Safety
///
/// `c` is the configuration a `Filesystem<D>` built, whose `context` points to its live
/// `Context<D>`, which nothing else borrows while littlefs runs.
unsafe fn context<'a, D>(c: *const ll::lfs_config) -> &'a mut Context<D> {
    // SAFETY: as the caller promises.
    unsafe { &mut *(*c).context.cast::<Context<D>>() }
}

fn code<D>(context: &mut Context<D>, result: Result<(), IoError>) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => {
            context.io_error.get_or_insert(e);
            ll::lfs_error_LFS_ERR_IO
        }
    }
}

pub(crate) unsafe extern "C" fn read<D: BlockDevice>(
    c: *const ll::lfs_config,
    block: ll::lfs_block_t,
    off: ll::lfs_off_t,
    buffer: *mut c_void,
    size: ll::lfs_size_t,
) -> c_int {
    // SAFETY: littlefs passes its own configuration and a buffer of `size` bytes.
    let (context, buf) = unsafe {
        (
            context::<D>(c),
            core::slice::from_raw_parts_mut(buffer.cast::<u8>(), size as usize),
        )
    };
    if !context.spend() {
        return ll::lfs_error_LFS_ERR_IO;
    }
    let result = context.device.read(offset(block, off), buf);
    code(context, result)
}

pub(crate) unsafe extern "C" fn prog<D: BlockDevice>(
    c: *const ll::lfs_config,
    block: ll::lfs_block_t,
    off: ll::lfs_off_t,
    buffer: *const c_void,
    size: ll::lfs_size_t,
) -> c_int {
    // SAFETY: littlefs passes its own configuration and a buffer of `size` bytes.
    let (context, data) = unsafe {
        (
            context::<D>(c),
            core::slice::from_raw_parts(buffer.cast::<u8>(), size as usize),
        )
    };
    if !context.spend() {
        return ll::lfs_error_LFS_ERR_IO;
    }
    let result = context.device.write(offset(block, off), data);
    code(context, result)
}

/// Disks need no erase before a write.
pub(crate) unsafe extern "C" fn erase(_c: *const ll::lfs_config, _block: ll::lfs_block_t) -> c_int {
    0
}

pub(crate) unsafe extern "C" fn sync<D: BlockDevice>(c: *const ll::lfs_config) -> c_int {
    // SAFETY: littlefs passes its own configuration.
    let context = unsafe { context::<D>(c) };
    let result = context.device.committed();
    code(context, result)
}
