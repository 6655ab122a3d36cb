//! Finding virtio devices and giving `virtio-drivers` what it needs to drive them.
//!
//! Two transports: virtio-mmio, whose devices QEMU microvm and Firecracker announce on the
//! kernel command line (`virtio_mmio.device=<size>@<base>:<irq>`) and QEMU virt (aarch64) in
//! its device tree, and virtio-pci (q35), found by scanning PCI bus 0 through the
//! configuration ports 0xcf8/0xcfc. Memory is identity-mapped
//! below 4 GiB, so DMA buffers come straight from the heap ([`IdentityHal`]).
//!
//! Nothing here touches the runtime, so the command-line parsing is unit-tested on the host.
#![no_std]

extern crate alloc;

mod hal;
pub mod mmio;
#[cfg(target_arch = "x86_64")]
mod pci;

use core::ptr::NonNull;

pub use hal::IdentityHal;
pub use virtio_drivers::transport::{DeviceType, SomeTransport};

use virtio_drivers::transport::Transport as _;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};

/// The first device of type `wanted`: virtio-mmio devices in `windows` (`(base, size)` from
/// the device tree, on aarch64 `virt`), then those named on `cmdline`, then virtio-pci devices
/// on bus 0 (x86_64).
///
/// # Safety
///
/// Every window and every `virtio_mmio.device` entry on `cmdline` must describe a real,
/// identity-mapped virtio-mmio region that nothing else uses, and on x86_64 the PCI
/// configuration ports must belong to a PCI host bridge (or float), as on every PC-compatible
/// machine.
pub unsafe fn find(
    wanted: DeviceType,
    windows: impl IntoIterator<Item = (u64, u64)>,
    cmdline: &[u8],
) -> Option<SomeTransport<'static>> {
    let named = mmio::regions(cmdline).map(|region| (region.base, region.size));
    for (base, size) in windows.into_iter().chain(named) {
        let Some(header) = NonNull::new(base as *mut VirtIOHeader) else {
            continue;
        };
        let Ok(size) = usize::try_from(size) else {
            continue;
        };
        // SAFETY: the caller vouches for the windows and the regions the command line names.
        // An empty transport slot (device id 0, as QEMU virt has many) is an error here.
        let Ok(transport) = (unsafe { MmioTransport::new(header, size) }) else {
            continue;
        };
        if transport.device_type() == wanted {
            return Some(transport.into());
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the caller vouches for the configuration ports.
        if let Some(transport) = unsafe { pci::find(wanted) } {
            return Some(transport.into());
        }
    }
    None
}
