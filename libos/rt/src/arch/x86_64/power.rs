//! Stopping the machine: QEMU's debug-exit device carries the exit code; where it is absent,
//! ACPI S5 powers off cleanly (without a code); where that fails too, the CPU halts.

use core::arch::asm;
use core::slice;

use unik_platform::acpi::{
    self, AddressSpace, FADT_SIGNATURE, HEADER_SIZE, PowerOff, RSDP_SIGNATURE, RSDP_V2_SIZE,
    RootTable,
};

use super::paging::{MAPPED_LIMIT, PAGE_SIZE};
use super::port::{outb, outl, outw};

/// QEMU's `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: writing v exits QEMU with
/// status `(v << 1) | 1`. Where the device is absent the write goes nowhere.
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Where legacy BIOSes put the RSDP when the loader does not pass its address.
const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);
/// No real ACPI table comes close; a larger length is a corrupt header.
const MAX_TABLE_LENGTH: usize = 1 << 20;

pub(crate) fn power_off(code: u8) -> ! {
    outl(DEBUG_EXIT_PORT, u32::from(code));
    acpi_power_off();
    halt()
}

/// Stops the CPU for good: interrupts are off, so `hlt` never returns except for an NMI,
/// after which it halts again.
fn halt() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting touch no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Enters ACPI S5; returns only if the tables are missing or the write had no effect.
fn acpi_power_off() {
    let Some(plan) = acpi_plan() else { return };
    match plan {
        PowerOff::Pm1 { pm1a, pm1b, value } => {
            outw(pm1a, value);
            if let Some(pm1b) = pm1b {
                outw(pm1b, value);
            }
        }
        PowerOff::SleepControl { register, value } => match register.space {
            AddressSpace::Io => {
                if let Ok(port) = u16::try_from(register.address) {
                    outb(port, value);
                }
            }
            AddressSpace::Memory if mapped(register.address, 1) => {
                // SAFETY: the FADT names this identity-mapped MMIO byte as the sleep
                // control register.
                unsafe { (register.address as *mut u8).write_volatile(value) };
            }
            AddressSpace::Memory | AddressSpace::Other(_) => {}
        },
    }
}

fn acpi_plan() -> Option<PowerOff> {
    let root = match super::boot::rsdp_address() {
        0 => find_rsdp()?,
        address => acpi::parse_rsdp(physical(address, RSDP_V2_SIZE)?).ok()?,
    };
    let signature = match root {
        RootTable::Rsdt(_) => *b"RSDT",
        RootTable::Xsdt(_) => *b"XSDT",
    };
    let root_table = table(root.address(), signature)?;
    let fadt = acpi::root_entries(root, root_table)
        .filter_map(|address| table(address, *FADT_SIGNATURE))
        .find_map(|fadt| acpi::parse_fadt(fadt).ok())?;
    let sleep_type = acpi::s5_sleep_type(table(fadt.dsdt, *b"DSDT")?).ok()?;
    PowerOff::new(&fadt, sleep_type)
}

fn find_rsdp() -> Option<RootTable> {
    let (start, end) = BIOS_AREA;
    (start..end).step_by(16).find_map(|address| {
        let candidate = physical(address, RSDP_V2_SIZE)?;
        if !candidate.starts_with(RSDP_SIGNATURE) {
            return None;
        }
        acpi::parse_rsdp(candidate).ok()
    })
}

/// The checked table at `address`, if its header, length and checksum are sound.
fn table(address: u64, signature: [u8; 4]) -> Option<&'static [u8]> {
    let length = acpi::table_length(physical(address, HEADER_SIZE)?)?;
    if length > MAX_TABLE_LENGTH {
        return None;
    }
    acpi::checked_table(physical(address, length)?, signature).ok()
}

fn mapped(address: u64, len: usize) -> bool {
    address >= PAGE_SIZE
        && address
            .checked_add(len as u64)
            .is_some_and(|end| end <= MAPPED_LIMIT)
}

/// Firmware tables in identity-mapped memory; `None` for page 0 and addresses past the
/// mapping.
fn physical(address: u64, len: usize) -> Option<&'static [u8]> {
    // SAFETY: `mapped` keeps the range inside the identity mapping and off page 0; ACPI
    // tables sit in reserved RAM that neither the heap nor the image uses.
    mapped(address, len).then(|| unsafe { slice::from_raw_parts(address as *const u8, len) })
}
