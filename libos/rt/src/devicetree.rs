//! The device tree the loader passed (aarch64 `virt`), kept for the runtime (command line,
//! memory, PSCI) and for components that find their devices in it (virtio-mmio windows, the
//! rtc component's PL031). It stays where the loader put it, and the heap is kept off it.
//! Machines without one (x86_64 PVH) have none.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use unik_platform::devicetree::{self, DeviceTree, PsciConduit};

use crate::exit::fatal;

static START: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static LEN: AtomicUsize = AtomicUsize::new(0);
static TRIMMED: AtomicBool = AtomicBool::new(false);

/// The tree the loader passed, `totalsize` bytes long.
#[cfg_attr(not(target_arch = "aarch64"), expect(dead_code))]
pub(crate) fn set(tree: &'static mut [u8]) {
    START.store(tree.as_mut_ptr(), Ordering::Relaxed);
    LEN.store(tree.len(), Ordering::Relaxed);
}

/// The tree's bytes, trimmed at the first call to its blocks (the free space after them is
/// the heap's); empty without a device tree.
pub(crate) fn bytes() -> &'static [u8] {
    let start = START.load(Ordering::Relaxed);
    if start.is_null() {
        return &[];
    }
    if !TRIMMED.swap(true, Ordering::Relaxed) {
        // SAFETY: `set` stored a `'static mut` slice, which nothing reads before this first
        // call, so the header can still be rewritten.
        let whole = unsafe { core::slice::from_raw_parts_mut(start, LEN.load(Ordering::Relaxed)) };
        let used = devicetree::trim_free_space(whole).unwrap_or_else(|error| {
            fatal(format_args!("device tree at {:#x}: {error}", start as u64))
        });
        LEN.store(used, Ordering::Relaxed);
    }
    // SAFETY: the trimmed tree, which stays as it is for the rest of the run.
    unsafe { core::slice::from_raw_parts(start, LEN.load(Ordering::Relaxed)) }
}

fn tree() -> Option<DeviceTree<'static>> {
    DeviceTree::parse(bytes()).ok()
}

/// How to reach PSCI, if the tree says.
#[cfg_attr(not(target_arch = "aarch64"), expect(dead_code))]
pub(crate) fn psci() -> Option<PsciConduit> {
    tree()?.psci()
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
