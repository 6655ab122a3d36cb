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

use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};

/// Every device of type `wanted`, in discovery order: virtio-mmio devices in `windows`
/// (`(base, size)` from the device tree, on aarch64 `virt`), then those named on `cmdline`,
/// then virtio-pci devices on bus 0 (x86_64). Each transport is made only when the iterator
/// reaches it, and only for a device of the wanted type: making one and dropping it resets the
/// device, which would cut off another component's device.
///
/// # Safety
///
/// Every window and every `virtio_mmio.device` entry on `cmdline` must describe a real,
/// identity-mapped virtio-mmio region, and on x86_64 the PCI configuration ports must belong
/// to a PCI host bridge (or float), as on every PC-compatible machine. The caller must not
/// make a second transport for a device it already drives.
pub unsafe fn devices<'a>(
    wanted: DeviceType,
    windows: impl IntoIterator<Item = (u64, u64)> + 'a,
    cmdline: &'a [u8],
) -> impl Iterator<Item = SomeTransport<'static>> + 'a {
    let named = mmio::regions(cmdline).map(|region| (region.base, region.size));
    let mmio = windows
        .into_iter()
        .chain(named)
        .filter_map(move |(base, size)| {
            let header = NonNull::new(base as *mut VirtIOHeader)?;
            let size = usize::try_from(size).ok()?;
            // SAFETY: the caller vouches for the windows and the regions the command line names.
            if unsafe { mmio::device_id(header, size) } != Some(u32::from(wanted as u8)) {
                return None;
            }
            // SAFETY: as above; the header was checked to be a virtio device of the wanted type.
            let transport = unsafe { MmioTransport::new(header, size) }.ok()?;
            Some(SomeTransport::from(transport))
        });
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller vouches for the configuration ports.
    let pci = unsafe { pci::devices(wanted) }.map(SomeTransport::from);
    #[cfg(not(target_arch = "x86_64"))]
    let pci = core::iter::empty();
    mmio.chain(pci)
}

/// The first device of type `wanted` (see [`devices`]).
///
/// # Safety
///
/// As for [`devices`].
pub unsafe fn find(
    wanted: DeviceType,
    windows: impl IntoIterator<Item = (u64, u64)>,
    cmdline: &[u8],
) -> Option<SomeTransport<'static>> {
    // SAFETY: the caller's promises are `devices`' own.
    unsafe { devices(wanted, windows, cmdline) }.next()
}
