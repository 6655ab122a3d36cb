//! Ending the unikernel, and the guest exit codes the runtime itself uses.
//!
//! Under QEMU with `isa-debug-exit` the host process exits with `(code << 1) | 1`, so only
//! codes 0..=127 survive the 8-bit host exit status unchanged.

/// `main` returned, or the app called `exit(0)`.
pub const SUCCESS: u8 = 0;
/// A Rust panic (including allocation failure).
pub const PANIC: u8 = 101;
/// A CPU exception (page fault, general protection, ...), stack overflow included.
pub const EXCEPTION: u8 = 102;
/// The runtime could not boot: bad start info, no clock, unusable memory map.
pub const BOOT_FAILURE: u8 = 103;

/// Stops the machine with guest exit code `code`.
pub fn exit(code: u8) -> ! {
    crate::arch::power_off(code)
}

/// Prints a fatal runtime error and exits with [`BOOT_FAILURE`].
pub(crate) fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    crate::console::_print_line(format_args!("uniklink:boot-error {args}"));
    exit(BOOT_FAILURE)
}
