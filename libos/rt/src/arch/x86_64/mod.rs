//! x86_64: PVH boot in 32-bit protected mode, identity paging, 16550 console, TSC clock,
//! isa-debug-exit.

mod boot;
mod exceptions;
mod gdt;
mod paging;
mod pit;
mod port;
mod power;
pub(crate) mod serial;
mod tsc;
mod weave;

pub(crate) use power::power_off;
pub(crate) use tsc::{frequency as tsc_frequency, ticks};
