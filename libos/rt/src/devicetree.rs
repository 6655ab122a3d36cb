//! The device tree the loader passed (aarch64 `virt`), kept for components that find their
//! devices in it (virtio-mmio windows, the rtc component's PL031). It stays where the loader
//! put it, and boot keeps the heap off it. Machines without one (x86_64 PVH) have none.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use unik_platform::devicetree::DeviceTree;

static START: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static LEN: AtomicUsize = AtomicUsize::new(0);

#[cfg_attr(not(target_arch = "aarch64"), expect(dead_code))]
pub(crate) fn set(tree: &'static [u8]) {
    START.store(tree.as_ptr().cast_mut(), Ordering::Relaxed);
    LEN.store(tree.len(), Ordering::Relaxed);
}

fn tree() -> Option<DeviceTree<'static>> {
    let start = START.load(Ordering::Relaxed);
    if start.is_null() {
        return None;
    }
    // SAFETY: `set` stored a `'static` slice's pointer and length.
    let bytes = unsafe { core::slice::from_raw_parts(start, LEN.load(Ordering::Relaxed)) };
    DeviceTree::parse(bytes).ok()
}

/// `(base, size)` of every `virtio,mmio` node, in tree order; none without a device tree.
pub fn virtio_mmio() -> impl Iterator<Item = (u64, u64)> {
    let tree = tree();
    let mut windows = [(0, 0); MAX_WINDOWS];
    let mut count = 0;
    if let Some(tree) = &tree {
        for (slot, span) in windows.iter_mut().zip(tree.windows("virtio,mmio")) {
            *slot = (span.start, span.len());
            count += 1;
        }
    }
    windows.into_iter().take(count)
}

/// `(base, size)` of the first node compatible with `compatible`; none without a device tree.
pub fn window(compatible: &'static str) -> Option<(u64, u64)> {
    let span = tree()?.windows(compatible).next()?;
    Some((span.start, span.len()))
}

/// QEMU virt has 32 virtio-mmio transports.
const MAX_WINDOWS: usize = 64;
