//! virtio-pci on bus 0, through the PC's configuration mechanism #1 (ports 0xcf8/0xcfc), which
//! every PC-compatible machine (QEMU q35 and pc) has without ACPI or an ECAM address.
//! The firmware has assigned the BARs by the time the library OS runs.

use alloc::vec::Vec;
use core::arch::asm;

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};

use crate::IdentityHal;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Configuration mechanism #1.
struct PortCam;

impl PortCam {
    fn select(device_function: DeviceFunction, register_offset: u8) {
        let address = 0x8000_0000
            | u32::from(device_function.bus) << 16
            | u32::from(device_function.device) << 11
            | u32::from(device_function.function) << 8
            | u32::from(register_offset & 0xfc);
        // SAFETY: writing the configuration address register has no memory effects.
        unsafe {
            asm!("out dx, eax", in("dx") CONFIG_ADDRESS, in("eax") address,
                 options(nomem, nostack, preserves_flags))
        };
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        Self::select(device_function, register_offset);
        let value: u32;
        // SAFETY: reading the configuration data register has no memory effects.
        unsafe {
            asm!("in eax, dx", out("eax") value, in("dx") CONFIG_DATA,
                 options(nomem, nostack, preserves_flags))
        };
        value
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        Self::select(device_function, register_offset);
        // SAFETY: configuration writes only reprogram the device, never guest memory.
        unsafe {
            asm!("out dx, eax", in("dx") CONFIG_DATA, in("eax") data,
                 options(nomem, nostack, preserves_flags))
        };
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// Every virtio device of type `wanted` on bus 0, each with memory decoding and bus mastering
/// switched on when the iterator reaches it (the firmware assigns BARs but may leave a device
/// it did not boot from idle).
///
/// # Safety
///
/// The configuration ports must belong to a PCI host bridge or be unclaimed.
pub(crate) unsafe fn devices(wanted: DeviceType) -> impl Iterator<Item = PciTransport> {
    let mut root = PciRoot::new(PortCam);
    let found: Vec<DeviceFunction> = root
        .enumerate_bus(0)
        .filter(|(_, info)| virtio_device_type(info) == Some(wanted))
        .map(|(device_function, _)| device_function)
        .collect();
    found.into_iter().filter_map(move |device_function| {
        let (_, command) = root.get_status_command(device_function);
        root.set_command(
            device_function,
            command | Command::MEMORY_SPACE | Command::BUS_MASTER,
        );
        PciTransport::new::<IdentityHal, _>(&mut root, device_function).ok()
    })
}
