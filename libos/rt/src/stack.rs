//! The boot stack: `rt.stack_size` bytes that uniklink's glue object reserves in `.bss`
//! (`__uniklink_reserve_rt_stack_size`, page-aligned), sized by the profile or the manifest.
//! Its lowest page is the guard page boot unmaps, so an overflow faults instead of silently
//! overwriting whatever precedes the stack. The entry code sets the stack pointer to its top.

use core::arch::global_asm;
use core::ops::Range;

crate::component_params! {
    /// The parameters of the runtime core.
    pub(crate) struct Params for "rt" {
        stack_size: u32 = 131072,
    }
}

/// The size of the weak reserve below, which must be the parameter's weak default above: an
/// image linked without uniklink's glue gets both.
const DEFAULT_STACK_SIZE: usize = 128 * 1024;
const GUARD_SIZE: u64 = 4096;

global_asm!(
    ".pushsection .bss.__uniklink_reserve_rt_stack_size,\"aw\",%nobits",
    ".weak __uniklink_reserve_rt_stack_size",
    ".type __uniklink_reserve_rt_stack_size,%object",
    ".size __uniklink_reserve_rt_stack_size, {size}",
    ".balign 4096",
    "__uniklink_reserve_rt_stack_size:",
    ".skip {size}",
    ".popsection",
    size = const DEFAULT_STACK_SIZE,
);

unsafe extern "C" {
    static __uniklink_reserve_rt_stack_size: u8;
}

/// The whole reserve, guard page included.
pub(crate) fn range() -> Range<u64> {
    let start = (&raw const __uniklink_reserve_rt_stack_size) as u64;
    start..start + Params::get().stack_size as u64
}

pub(crate) fn guard_page() -> Range<u64> {
    let start = range().start;
    start..start + GUARD_SIZE
}
