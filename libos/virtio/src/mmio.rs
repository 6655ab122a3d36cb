//! virtio-mmio regions announced on the kernel command line.
//!
//! The format is Linux's: `virtio_mmio.device=<size>@<base>:<irq>[:<id>]`, where `size` takes
//! an optional K/M/G suffix and numbers are decimal or `0x` hexadecimal. QEMU microvm appends
//! one such word per device it has (`512@0xfeb00e00:12`), Firecracker does the same.

use core::ptr::NonNull;

use virtio_drivers::transport::mmio::VirtIOHeader;

const KEY: &[u8] = b"virtio_mmio.device=";
/// "virt" in little endian, the first word of every virtio-mmio register window.
const MAGIC: u32 = 0x7472_6976;
/// The device id register's offset; 0 there means an empty transport slot.
const DEVICE_ID: usize = 8;

/// The virtio device id of the window at `header`, or `None` when it is not a virtio-mmio
/// window or too small to hold the registers. Only reads: unlike making a transport (whose
/// drop resets the device), probing leaves a device another driver uses alone.
///
/// # Safety
///
/// `header` must be a mapped device window of at least `size` bytes.
pub unsafe fn device_id(header: NonNull<VirtIOHeader>, size: usize) -> Option<u32> {
    if size < DEVICE_ID + 4 {
        return None;
    }
    let base = header.as_ptr().cast::<u32>();
    // SAFETY: both words lie inside the window the caller vouches for, and reading these
    // registers has no side effects.
    let (magic, id) = unsafe {
        (
            base.read_volatile(),
            base.add(DEVICE_ID / 4).read_volatile(),
        )
    };
    (magic == MAGIC && id != 0).then_some(id)
}

/// One device window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

/// The regions on `cmdline`, in order; malformed entries are skipped, since a word the
/// library OS cannot read may be meant for someone else.
pub fn regions(cmdline: &[u8]) -> impl Iterator<Item = Region> + '_ {
    cmdline
        .split(u8::is_ascii_whitespace)
        .filter_map(|word| word.strip_prefix(KEY))
        .filter_map(parse)
}

fn parse(spec: &[u8]) -> Option<Region> {
    let at = spec.iter().position(|&b| b == b'@')?;
    let (size, rest) = (&spec[..at], &spec[at + 1..]);
    let colon = rest.iter().position(|&b| b == b':')?;
    let (base, rest) = (&rest[..colon], &rest[colon + 1..]);
    let irq = match rest.iter().position(|&b| b == b':') {
        Some(end) => &rest[..end],
        None => rest,
    };
    let (digits, scale) = match size.last()? {
        b'k' | b'K' => (&size[..size.len() - 1], 1 << 10),
        b'm' | b'M' => (&size[..size.len() - 1], 1 << 20),
        b'g' | b'G' => (&size[..size.len() - 1], 1 << 30),
        _ => (size, 1),
    };
    let size = number(digits)?.checked_mul(scale)?;
    let base = number(base)?;
    base.checked_add(size)?;
    Some(Region {
        base,
        size,
        irq: u32::try_from(number(irq)?).ok()?,
    })
}

fn number(text: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(text).ok()?;
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    fn all(cmdline: &str) -> Vec<Region> {
        regions(cmdline.as_bytes()).collect()
    }

    #[test]
    fn qemu_microvm_entries() {
        assert_eq!(
            all("root=/srv/www virtio_mmio.device=512@0xfeb00e00:12 \
                 virtio_mmio.device=512@0xfeb00c00:11"),
            [
                Region {
                    base: 0xfeb0_0e00,
                    size: 512,
                    irq: 12
                },
                Region {
                    base: 0xfeb0_0c00,
                    size: 512,
                    irq: 11
                },
            ]
        );
    }

    #[test]
    fn suffixes_decimal_bases_and_device_ids() {
        assert_eq!(
            all("virtio_mmio.device=4K@0xd0000000:5:3 virtio_mmio.device=1m@4096:7"),
            [
                Region {
                    base: 0xd000_0000,
                    size: 4096,
                    irq: 5
                },
                Region {
                    base: 4096,
                    size: 1 << 20,
                    irq: 7
                },
            ]
        );
    }

    #[test]
    fn malformed_entries_are_skipped() {
        assert_eq!(
            all(
                "virtio_mmio.device= virtio_mmio.device=512 virtio_mmio.device=512@0xzz:1 \
                 virtio_mmio.device=512@0x1000 virtio_mmio.device=16G@0xffffffffffffffff:1 \
                 virtio_mmio.device=512@0x1000:99999999999 xvirtio_mmio.device=512@0x1000:1 \
                 virtio_mmio.device=512@0x2000:3"
            ),
            [Region {
                base: 0x2000,
                size: 512,
                irq: 3
            }]
        );
    }
}
