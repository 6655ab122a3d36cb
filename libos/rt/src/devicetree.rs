//! The device tree the loader passed (aarch64 `virt`), kept for the runtime (command line,
//! memory, PSCI) and for components that find their devices in it (virtio-mmio windows, the
//! rtc component's PL031). It stays where the loader put it, and the heap is kept off it.
//! Machines without one (x86_64 PVH) have none.

use unik_platform::devicetree::{DeviceTree, PsciConduit};

use crate::arch;

/// The tree's bytes, trimmed to its blocks (the free space after them is the heap's); empty
/// without a device tree.
pub(crate) fn bytes() -> &'static [u8] {
    arch::device_tree()
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
