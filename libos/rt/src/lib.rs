//! The uniklink library OS runtime.
//!
//! Boot (PVH entry, page tables, exception handlers), the serial console, the heap, the
//! TSC clock, panics and exit. Apps do not use this crate directly but through the `unik`
//! facade. Architecture-specific code lives under `arch/<name>/`; everything else talks to
//! it through the functions `arch/mod.rs` re-exports.
#![no_std]

#[cfg(not(all(
    target_os = "none",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!("unik-rt runs on x86_64-unknown-none and aarch64-unknown-none only");

extern crate alloc;

mod arch;
mod backtrace;
pub mod cmdline;
pub mod console;
pub mod devicetree;
pub mod env;
pub mod exit;
mod heap;
pub mod idle;
mod panic;
mod params;
mod stack;
mod start;
pub mod time;
pub mod timeline;
mod weave;
