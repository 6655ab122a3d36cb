//! The uniklink blk component: virtio-blk disks over virtio-mmio (QEMU microvm, virt) and
//! virtio-pci (q35).
//!
//! Disks are found once, by the init (or the first call that needs them), and named by the
//! device's serial, which `cargo uniklink run` sets to the manifest volume's name. Every
//! request is synchronous: the device is polled until it completes, since the library OS runs
//! with interrupts off. A device error is a value ([`Error`]), never a panic.
#![no_std]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use spinning_top::Spinlock;
use unik_virtio::{DeviceType, IdentityHal, SomeTransport};
use virtio_drivers::device::blk::{SECTOR_SIZE, VirtIOBlk};

/// The serial's length in virtio-blk's GET_ID answer.
const NAME_MAX: usize = 20;

/// What went wrong in a disk request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The request lies (partly) past the end of the disk.
    OutOfRange,
    /// Offset or length is not a multiple of the 512-byte sector.
    Unaligned,
    /// The disk refuses writes.
    ReadOnly,
    /// The device reported a failure, or answered nonsense.
    Device,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::OutOfRange => "request past the end of the disk",
            Error::Unaligned => "request not aligned to 512-byte sectors",
            Error::ReadOnly => "the disk is read-only",
            Error::Device => "the disk reported an error",
        })
    }
}

impl core::error::Error for Error {}

/// One virtio-blk disk.
pub struct Disk {
    name: String,
    size: u64,
    readonly: bool,
    device: Spinlock<VirtIOBlk<IdentityHal, SomeTransport<'static>>>,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("readonly", &self.readonly)
            .finish()
    }
}

impl Disk {
    /// The device's serial (the manifest volume's name under `cargo uniklink run`); empty if
    /// the device has none.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Capacity in bytes, as the device reports it.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Reads `buf.len()` bytes at byte `offset`; both multiples of 512.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let first = self.sector(offset, buf.len())?;
        let mut device = self.device.lock();
        for (index, chunk) in buf.chunks_mut(max_request()).enumerate() {
            let sector = first + (index * max_request() / SECTOR_SIZE) as u64;
            let sector = usize::try_from(sector).map_err(|_| Error::OutOfRange)?;
            device
                .read_blocks(sector, chunk)
                .map_err(|_| Error::Device)?;
        }
        Ok(())
    }

    /// Writes `data` at byte `offset`; both multiples of 512. The data is in the device's
    /// cache when this returns; [`Disk::flush`] makes it durable.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        if self.readonly {
            return Err(Error::ReadOnly);
        }
        let first = self.sector(offset, data.len())?;
        let mut device = self.device.lock();
        for (index, chunk) in data.chunks(max_request()).enumerate() {
            let sector = first + (index * max_request() / SECTOR_SIZE) as u64;
            let sector = usize::try_from(sector).map_err(|_| Error::OutOfRange)?;
            device
                .write_blocks(sector, chunk)
                .map_err(|_| Error::Device)?;
        }
        Ok(())
    }

    /// Asks the device to write its cache through (VIRTIO_BLK_T_FLUSH). A device that did not
    /// offer VIRTIO_BLK_F_FLUSH writes through already, and this returns at once.
    pub fn flush(&self) -> Result<(), Error> {
        self.device.lock().flush().map_err(|_| Error::Device)
    }

    /// The first sector of a request, once it is aligned and inside the disk.
    fn sector(&self, offset: u64, len: usize) -> Result<u64, Error> {
        let sector = SECTOR_SIZE as u64;
        if !offset.is_multiple_of(sector) || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(Error::Unaligned);
        }
        let end = offset.checked_add(len as u64).ok_or(Error::OutOfRange)?;
        if end > self.size {
            return Err(Error::OutOfRange);
        }
        Ok(offset / sector)
    }
}

/// The `max_request` parameter: at least one sector, whole sectors.
fn max_request() -> usize {
    let bytes = Params::get().max_request;
    (bytes / SECTOR_SIZE).max(1) * SECTOR_SIZE
}

unik_rt::component_params! {
    struct Params for "blk" {
        max_request: u32 = 65536,
    }
}

static DISKS: Spinlock<Option<&'static [Disk]>> = Spinlock::new(None);

/// Every virtio-blk disk of the machine, in discovery order. A device that fails to set up is
/// left out.
pub fn disks() -> &'static [Disk] {
    let mut disks = DISKS.lock();
    if let Some(found) = *disks {
        return found;
    }
    // SAFETY: the device tree's virtio-mmio windows and the command line's virtio_mmio entries
    // come from the machine, the PC's PCI configuration ports belong to its host bridge, and
    // this runs once, so no device gets a second transport.
    let transports = unsafe {
        unik_virtio::devices(
            DeviceType::Block,
            unik_rt::devicetree::virtio_mmio(),
            unik_rt::cmdline::command_line(),
        )
    };
    let found: Vec<Disk> = transports.filter_map(open).collect();
    let found: &'static [Disk] = Box::leak(found.into_boxed_slice());
    *disks = Some(found);
    found
}

fn open(transport: SomeTransport<'static>) -> Option<Disk> {
    let mut device = VirtIOBlk::<IdentityHal, _>::new(transport).ok()?;
    let mut id = [0u8; NAME_MAX];
    let len = device.device_id(&mut id).unwrap_or(0);
    let name = String::from_utf8_lossy(&id[..len]).into_owned();
    let size = device.capacity().checked_mul(SECTOR_SIZE as u64)?;
    Some(Disk {
        name,
        size,
        readonly: device.readonly(),
        device: Spinlock::new(device),
    })
}

/// The disk named `name`.
pub fn disk(name: &str) -> Option<&'static Disk> {
    disks().iter().find(|disk| disk.name == name)
}

/// Finds the disks before the app's `main`, when the component is live.
#[unsafe(no_mangle)]
pub extern "C" fn unik_blk_init() {
    disks();
}

// The conventional registration, which GNU ld, lld and mold keep; uniklink's weaving calls
// the init from its glue only when the component is live.
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER: extern "C" fn() = unik_blk_init;
