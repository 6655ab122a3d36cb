//! The little of ACPI needed to power off: RSDP → RSDT/XSDT → FADT → the S5 sleep type in
//! the DSDT, and from those the register write that enters S5.
//!
//! Every function takes the bytes of one table; the caller follows the physical addresses.

use core::fmt;

use crate::le::{u32_at, u64_at};

pub const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Bytes covered by the ACPI 1.0 RSDP checksum.
pub const RSDP_V1_SIZE: usize = 20;
/// Size of the ACPI 2.0+ RSDP.
pub const RSDP_V2_SIZE: usize = 36;
pub const HEADER_SIZE: usize = 36;
pub const FADT_SIGNATURE: &[u8; 4] = b"FACP";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    Truncated {
        table: [u8; 4],
        needed: usize,
        got: usize,
    },
    BadSignature {
        expected: [u8; 4],
        found: [u8; 4],
    },
    BadChecksum {
        table: [u8; 4],
    },
    NoS5,
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::Truncated { table, needed, got } => write!(
                f,
                "ACPI {} truncated: need {needed} bytes, got {got}",
                name(table)
            ),
            AcpiError::BadSignature { expected, found } => write!(
                f,
                "ACPI table signature {:?}, expected {}",
                found,
                name(expected)
            ),
            AcpiError::BadChecksum { table } => write!(f, "ACPI {} checksum mismatch", name(table)),
            AcpiError::NoS5 => f.write_str("the DSDT defines no _S5_ sleep state"),
        }
    }
}

fn name(signature: &[u8; 4]) -> &str {
    core::str::from_utf8(signature).unwrap_or("????")
}

/// Where the root table is: the XSDT (64-bit entries) when the RSDP has one, else the RSDT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTable {
    Rsdt(u32),
    Xsdt(u64),
}

impl RootTable {
    pub fn address(&self) -> u64 {
        match *self {
            RootTable::Rsdt(address) => u64::from(address),
            RootTable::Xsdt(address) => address,
        }
    }

    fn entry_size(&self) -> usize {
        match self {
            RootTable::Rsdt(_) => 4,
            RootTable::Xsdt(_) => 8,
        }
    }
}

const RSDP_NAME: [u8; 4] = *b"RSDP";

/// Parses an RSDP; `bytes` may extend past it.
pub fn parse_rsdp(bytes: &[u8]) -> Result<RootTable, AcpiError> {
    let v1 = take(bytes, RSDP_V1_SIZE, RSDP_NAME)?;
    if &v1[..8] != RSDP_SIGNATURE {
        return Err(AcpiError::BadSignature {
            expected: RSDP_NAME,
            found: [v1[0], v1[1], v1[2], v1[3]],
        });
    }
    if !sums_to_zero(v1) {
        return Err(AcpiError::BadChecksum { table: RSDP_NAME });
    }
    let revision = v1[15];
    if revision >= 2 {
        let v2 = take(bytes, RSDP_V2_SIZE, RSDP_NAME)?;
        if !sums_to_zero(v2) {
            return Err(AcpiError::BadChecksum { table: RSDP_NAME });
        }
        let xsdt = u64_at(v2, 24);
        if xsdt != 0 {
            return Ok(RootTable::Xsdt(xsdt));
        }
    }
    Ok(RootTable::Rsdt(u32_at(v1, 16)))
}

/// The `length` field of a table header: how many bytes to read for the whole table.
pub fn table_length(header: &[u8]) -> Option<usize> {
    (header.len() >= 8).then(|| u32_at(header, 4) as usize)
}

/// The 4-byte signature of a table header.
pub fn table_signature(header: &[u8]) -> Option<[u8; 4]> {
    header.get(..4).map(|s| [s[0], s[1], s[2], s[3]])
}

/// Checks a whole table (header and checksum) and returns its body after the header.
pub fn checked_table(bytes: &[u8], signature: [u8; 4]) -> Result<&[u8], AcpiError> {
    let header = take(bytes, HEADER_SIZE, signature)?;
    let found = [header[0], header[1], header[2], header[3]];
    if found != signature {
        return Err(AcpiError::BadSignature {
            expected: signature,
            found,
        });
    }
    let length = u32_at(header, 4) as usize;
    let table = take(bytes, length.max(HEADER_SIZE), signature)?;
    if !sums_to_zero(table) {
        return Err(AcpiError::BadChecksum { table: signature });
    }
    Ok(table)
}

/// Physical addresses of the tables a checked root table lists.
pub fn root_entries<'a>(root: RootTable, table: &'a [u8]) -> impl Iterator<Item = u64> + 'a {
    let size = root.entry_size();
    table[HEADER_SIZE.min(table.len())..]
        .chunks_exact(size)
        .map(move |entry| {
            if size == 4 {
                u64::from(u32_at(entry, 0))
            } else {
                u64_at(entry, 0)
            }
        })
}

/// ACPI Generic Address Structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericAddress {
    pub space: AddressSpace,
    pub address: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSpace {
    Memory,
    Io,
    Other(u8),
}

/// What the FADT says about sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fadt {
    pub dsdt: u64,
    pub pm1a_control: u32,
    pub pm1b_control: u32,
    /// Hardware-reduced ACPI (e.g. QEMU microvm) sleeps through this register instead.
    pub sleep_control: Option<GenericAddress>,
}

const HW_REDUCED_ACPI: u32 = 1 << 20;

/// Parses a checked FADT (see [`checked_table`]).
pub fn parse_fadt(table: &[u8]) -> Result<Fadt, AcpiError> {
    let fixed = take(table, 116, *FADT_SIGNATURE)?;
    let flags = u32_at(fixed, 112);
    let x_dsdt = table.get(140..148).map_or(0, |raw| u64_at(raw, 0));
    let dsdt = if x_dsdt != 0 {
        x_dsdt
    } else {
        u64::from(u32_at(fixed, 40))
    };
    let sleep_control = if flags & HW_REDUCED_ACPI != 0 {
        table.get(244..256).map(|gas| GenericAddress {
            space: match gas[0] {
                0 => AddressSpace::Memory,
                1 => AddressSpace::Io,
                other => AddressSpace::Other(other),
            },
            address: u64_at(gas, 4),
        })
    } else {
        None
    };
    Ok(Fadt {
        dsdt,
        pm1a_control: u32_at(fixed, 64),
        pm1b_control: u32_at(fixed, 68),
        sleep_control,
    })
}

const NAME_OP: u8 = 0x08;
const ROOT_PREFIX: u8 = b'\\';
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const BYTE_PREFIX: u8 = 0x0a;

/// SLP_TYPa of the `\_S5_` package in a checked DSDT: `Name (_S5, Package () { a, b, ... })`.
///
/// A full AML interpreter is out of proportion for one constant; firmware defines `_S5_` as
/// a plain named package, which this recognises.
pub fn s5_sleep_type(dsdt: &[u8]) -> Result<u8, AcpiError> {
    let body = dsdt.get(HEADER_SIZE..).unwrap_or(&[]);
    for at in 0..body.len().saturating_sub(4) {
        if &body[at..at + 4] != b"_S5_" {
            continue;
        }
        let named = match at {
            0 => false,
            1 => body[0] == NAME_OP,
            _ => {
                body[at - 1] == NAME_OP || (body[at - 1] == ROOT_PREFIX && body[at - 2] == NAME_OP)
            }
        };
        if !named || body.get(at + 4) != Some(&PACKAGE_OP) {
            continue;
        }
        let Some(&lead) = body.get(at + 5) else {
            continue;
        };
        // PkgLength: bits 7-6 of the lead byte count the bytes that follow it.
        let elements = at + 5 + 1 + usize::from(lead >> 6) + 1;
        return match body.get(elements..elements + 2) {
            Some([BYTE_PREFIX, value]) => Ok(*value),
            Some([ZERO_OP, _]) => Ok(0),
            Some([ONE_OP, _]) => Ok(1),
            Some([value, _]) => Ok(*value),
            _ => Err(AcpiError::NoS5),
        };
    }
    Err(AcpiError::NoS5)
}

/// The register write that enters S5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOff {
    /// Write `value` (16 bits) to the PM1a and, when present, PM1b control ports.
    Pm1 {
        pm1a: u16,
        pm1b: Option<u16>,
        value: u16,
    },
    /// Write `value` (8 bits) to the hardware-reduced sleep control register.
    SleepControl { register: GenericAddress, value: u8 },
}

const SLP_EN: u16 = 1 << 13;
const SLP_TYP_SHIFT: u16 = 10;
const HW_SLP_EN: u8 = 1 << 5;
const HW_SLP_TYP_SHIFT: u8 = 2;

impl PowerOff {
    pub fn new(fadt: &Fadt, sleep_type: u8) -> Option<PowerOff> {
        if let Some(register) = fadt.sleep_control {
            return Some(PowerOff::SleepControl {
                register,
                value: ((sleep_type & 0x7) << HW_SLP_TYP_SHIFT) | HW_SLP_EN,
            });
        }
        let pm1a = u16::try_from(fadt.pm1a_control)
            .ok()
            .filter(|&port| port != 0)?;
        let pm1b = u16::try_from(fadt.pm1b_control)
            .ok()
            .filter(|&port| port != 0);
        Some(PowerOff::Pm1 {
            pm1a,
            pm1b,
            value: (u16::from(sleep_type & 0x7) << SLP_TYP_SHIFT) | SLP_EN,
        })
    }
}

fn take(bytes: &[u8], needed: usize, table: [u8; 4]) -> Result<&[u8], AcpiError> {
    bytes.get(..needed).ok_or(AcpiError::Truncated {
        table,
        needed,
        got: bytes.len(),
    })
}

fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec::Vec;

    fn fix_checksum(bytes: &mut [u8], at: usize) {
        bytes[at] = 0;
        let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        bytes[at] = sum.wrapping_neg();
    }

    fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(RSDP_SIGNATURE);
        bytes.push(0);
        bytes.extend_from_slice(b"BOCHS ");
        bytes.push(revision);
        bytes.extend_from_slice(&rsdt.to_le_bytes());
        bytes.extend_from_slice(&36u32.to_le_bytes());
        bytes.extend_from_slice(&xsdt.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        fix_checksum(&mut bytes[..20], 8);
        fix_checksum(&mut bytes, 32);
        bytes
    }

    fn table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(signature);
        bytes.extend_from_slice(&((HEADER_SIZE + body.len()) as u32).to_le_bytes());
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(b"BOCHS BXPC    ");
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(body);
        fix_checksum(&mut bytes, 9);
        bytes
    }

    #[test]
    fn rsdp_versions() {
        assert_eq!(
            parse_rsdp(&rsdp(0, 0x7fe_1234, 0)),
            Ok(RootTable::Rsdt(0x7fe_1234))
        );
        assert_eq!(
            parse_rsdp(&rsdp(2, 0x7fe_1234, 0x7fe_2000)),
            Ok(RootTable::Xsdt(0x7fe_2000))
        );
        assert_eq!(
            parse_rsdp(&rsdp(2, 0x7fe_1234, 0)),
            Ok(RootTable::Rsdt(0x7fe_1234))
        );
    }

    #[test]
    fn rsdp_errors() {
        let mut bad_sum = rsdp(0, 0x1000, 0);
        bad_sum[16] ^= 1;
        assert_eq!(
            parse_rsdp(&bad_sum),
            Err(AcpiError::BadChecksum { table: *b"RSDP" })
        );
        let mut bad_sig = rsdp(0, 0x1000, 0);
        bad_sig[0] = b'X';
        assert!(matches!(
            parse_rsdp(&bad_sig),
            Err(AcpiError::BadSignature { .. })
        ));
        assert_eq!(
            parse_rsdp(&rsdp(2, 1, 2)[..30]),
            Err(AcpiError::Truncated {
                table: *b"RSDP",
                needed: 36,
                got: 30
            })
        );
    }

    #[test]
    fn root_table_entries() {
        let rsdt = table(b"RSDT", &[0x00, 0x10, 0, 0, 0x00, 0x20, 0, 0]);
        let checked = checked_table(&rsdt, *b"RSDT").unwrap();
        let entries: Vec<_> = root_entries(RootTable::Rsdt(0), checked).collect();
        assert_eq!(entries, [0x1000, 0x2000]);
        let xsdt = table(b"XSDT", &0x1_0000_0000u64.to_le_bytes());
        let checked = checked_table(&xsdt, *b"XSDT").unwrap();
        let entries: Vec<_> = root_entries(RootTable::Xsdt(0), checked).collect();
        assert_eq!(entries, [0x1_0000_0000]);
        assert_eq!(table_signature(&xsdt), Some(*b"XSDT"));
        assert_eq!(table_length(&xsdt), Some(44));
    }

    #[test]
    fn checked_table_rejects_bad_sum_and_signature() {
        let mut rsdt = table(b"RSDT", &[1, 2, 3, 4]);
        assert!(matches!(
            checked_table(&rsdt, *b"XSDT"),
            Err(AcpiError::BadSignature { .. })
        ));
        rsdt[38] = 9;
        assert_eq!(
            checked_table(&rsdt, *b"RSDT"),
            Err(AcpiError::BadChecksum { table: *b"RSDT" })
        );
    }

    fn fadt_body(
        dsdt: u32,
        pm1a: u32,
        flags: u32,
        x_dsdt: u64,
        sleep: Option<(u8, u64)>,
    ) -> Vec<u8> {
        let mut body = std::vec![0u8; 276 - HEADER_SIZE];
        let at = |offset: usize| offset - HEADER_SIZE;
        body[at(40)..at(44)].copy_from_slice(&dsdt.to_le_bytes());
        body[at(64)..at(68)].copy_from_slice(&pm1a.to_le_bytes());
        body[at(112)..at(116)].copy_from_slice(&flags.to_le_bytes());
        body[at(140)..at(148)].copy_from_slice(&x_dsdt.to_le_bytes());
        if let Some((space, address)) = sleep {
            body[at(244)] = space;
            body[at(244) + 1] = 8;
            body[at(248)..at(256)].copy_from_slice(&address.to_le_bytes());
        }
        body
    }

    #[test]
    fn fadt_of_a_pc_and_of_hardware_reduced_acpi() {
        let pc = table(FADT_SIGNATURE, &fadt_body(0x7fe_0040, 0x604, 0, 0, None));
        let fadt = parse_fadt(checked_table(&pc, *FADT_SIGNATURE).unwrap()).unwrap();
        assert_eq!(
            fadt,
            Fadt {
                dsdt: 0x7fe_0040,
                pm1a_control: 0x604,
                pm1b_control: 0,
                sleep_control: None
            }
        );
        assert_eq!(
            PowerOff::new(&fadt, 0),
            Some(PowerOff::Pm1 {
                pm1a: 0x604,
                pm1b: None,
                value: 0x2000
            })
        );
        assert_eq!(
            PowerOff::new(&fadt, 5),
            Some(PowerOff::Pm1 {
                pm1a: 0x604,
                pm1b: None,
                value: 0x3400
            })
        );

        let reduced = fadt_body(0, 0, HW_REDUCED_ACPI, 0x7fe_8000, Some((0, 0xfea0_0100)));
        let reduced = table(FADT_SIGNATURE, &reduced);
        let fadt = parse_fadt(checked_table(&reduced, *FADT_SIGNATURE).unwrap()).unwrap();
        let register = GenericAddress {
            space: AddressSpace::Memory,
            address: 0xfea0_0100,
        };
        assert_eq!(fadt.dsdt, 0x7fe_8000);
        assert_eq!(fadt.sleep_control, Some(register));
        assert_eq!(
            PowerOff::new(&fadt, 5),
            Some(PowerOff::SleepControl {
                register,
                value: 0x34
            })
        );
    }

    #[test]
    fn fadt_without_pm1_port_cannot_power_off() {
        let fadt = Fadt {
            dsdt: 1,
            pm1a_control: 0,
            pm1b_control: 0,
            sleep_control: None,
        };
        assert_eq!(PowerOff::new(&fadt, 0), None);
    }

    #[test]
    fn s5_package_forms() {
        // Name (\_S5, Package (0x04) { Zero, Zero, Zero, Zero }) as iasl emits it for QEMU.
        let qemu = table(
            b"DSDT",
            &[
                0x10, 0x08, 0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00,
                0x00, 0x00,
            ],
        );
        assert_eq!(s5_sleep_type(&qemu), Ok(0));
        let byte_prefix = table(
            b"DSDT",
            &[
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x02, 0x0a, 0x05, 0x0a, 0x05,
            ],
        );
        assert_eq!(s5_sleep_type(&byte_prefix), Ok(5));
        let one = table(
            b"DSDT",
            &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02, 0x01, 0x01],
        );
        assert_eq!(s5_sleep_type(&one), Ok(1));
        // A two-byte PkgLength (lead byte 0x4X) shifts the element list by one.
        let long = table(
            b"DSDT",
            &[
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x01, 0x02, 0x0a, 0x07, 0x0a, 0x07,
            ],
        );
        assert_eq!(s5_sleep_type(&long), Ok(7));
    }

    #[test]
    fn s5_reference_that_is_not_a_definition_is_skipped() {
        let dsdt = table(b"DSDT", &[0x70, b'_', b'S', b'5', b'_', 0x60]);
        assert_eq!(s5_sleep_type(&dsdt), Err(AcpiError::NoS5));
        assert_eq!(s5_sleep_type(&table(b"DSDT", &[])), Err(AcpiError::NoS5));
    }
}
