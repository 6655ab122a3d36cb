//! x86_64: PVH boot in 32-bit protected mode, identity paging, 16550 console, TSC clock,
//! isa-debug-exit.

mod boot;
mod counter;
mod exceptions;
mod gdt;
mod paging;
mod pit;
mod port;
mod power;
pub(crate) mod serial;
mod tsc;
mod weave;

pub(crate) use boot::{device_tree, find_command_line, heap_spans, memory_map};
pub(crate) use counter::{stated_frequency, ticks};
pub(crate) use power::power_off;
pub(crate) use tsc::frequency as clock_frequency;
