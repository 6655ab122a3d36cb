//! The per-architecture half of the runtime. Generic code uses only what is re-exported
//! here; a new architecture provides the same names.

#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{
    clock_frequency, device_tree, find_command_line, frame_pointer, heap_spans, memory_map,
    power_off, serial, stamp_ticks, stated_frequency, ticks,
};

#[cfg(target_arch = "aarch64")]
mod aarch64;

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::{
    clock_frequency, device_tree, find_command_line, frame_pointer, heap_spans, memory_map,
    power_off, serial, stamp_ticks, stated_frequency, ticks,
};
