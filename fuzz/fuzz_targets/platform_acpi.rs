//! The ACPI tables the x86_64 guest reads to power off: RSDP, RSDT/XSDT, FADT, DSDT's `\_S5`.
//! The input is guest memory: the RSDP at offset 0 and every address an offset into the input,
//! walked as the runtime walks it (`libos/rt/src/arch/x86_64/power.rs`). Each parser also runs
//! on the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unik_platform::acpi::{self, HEADER_SIZE, PowerOff};

fn physical(memory: &[u8], address: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(address).ok()?;
    memory.get(start..start.checked_add(len)?)
}

fn table(memory: &[u8], address: u64, signature: [u8; 4]) -> Option<&[u8]> {
    let length = acpi::table_length(physical(memory, address, HEADER_SIZE)?)?;
    acpi::checked_table(physical(memory, address, length)?, signature).ok()
}

fuzz_target!(|memory: &[u8]| {
    let _ = acpi::parse_fadt(memory);
    let _ = acpi::s5_sleep_type(memory);
    let _ = acpi::checked_table(memory, *b"FACP");
    std::hint::black_box(acpi::table_signature(memory));
    let Ok(root) = acpi::parse_rsdp(memory) else {
        return;
    };
    let signature = match root {
        acpi::RootTable::Rsdt(_) => *b"RSDT",
        acpi::RootTable::Xsdt(_) => *b"XSDT",
    };
    let Some(root_table) = table(memory, root.address(), signature) else {
        return;
    };
    let Some(fadt) = acpi::root_entries(root, root_table)
        .take(64)
        .filter_map(|address| table(memory, address, *b"FACP"))
        .find_map(|fadt| acpi::parse_fadt(fadt).ok())
    else {
        return;
    };
    if let Some(dsdt) = table(memory, fadt.dsdt, *b"DSDT") {
        if let Ok(sleep_type) = acpi::s5_sleep_type(dsdt) {
            std::hint::black_box(PowerOff::new(&fadt, sleep_type));
        }
    }
});
