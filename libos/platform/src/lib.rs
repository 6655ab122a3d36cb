//! Logic of the uniklink library OS that touches no hardware.
//!
//! Everything here works on plain bytes and integers so that it can be unit-tested on the
//! host; `unik-rt` reads the hardware and hands the raw data to these functions.
#![no_std]

pub mod acpi;
pub mod clock;
pub mod cmdline;
pub mod decimal;
pub mod devicetree;
mod le;
pub mod memory;
pub mod oom;
pub mod pvh;
pub mod rtc;
pub mod virt_map;
