//! The flattened device tree QEMU's aarch64 virt machine hands the guest: its size, the
//! blocks `trim_free_space` rewrites, and every query the runtime makes of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unik_platform::devicetree::{self, DeviceTree};

fuzz_target!(|data: &[u8]| {
    let _ = devicetree::total_size(data);
    let _ = devicetree::chosen_bootargs(data);
    if let Ok(tree) = DeviceTree::parse(data) {
        std::hint::black_box(tree.size());
        std::hint::black_box(tree.memory().count());
        std::hint::black_box(tree.reserved().count());
        std::hint::black_box(tree.bootargs());
        std::hint::black_box(tree.psci());
        std::hint::black_box(tree.windows("virtio,mmio").count());
        std::hint::black_box(tree.windows("arm,pl011").count());
    }
    let mut copy = data.to_vec();
    if let Ok(size) = devicetree::trim_free_space(&mut copy) {
        assert!(size <= copy.len(), "trimmed to {size} of {} bytes", copy.len());
        // A trimmed tree parses as the untrimmed one did.
        let _ = DeviceTree::parse(&copy[..size]);
    }
});
