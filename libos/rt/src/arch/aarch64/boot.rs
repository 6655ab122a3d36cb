//! The `virt` entry point and the aarch64 half of boot.
//!
//! QEMU's `-kernel` loader copies the ELF to its link address (2 MiB into RAM, see the
//! linker's virt image kind) and enters `_virt_start` at EL1 with the MMU and caches off and
//! interrupts masked. For an ELF kernel x0 is 0 and the device tree sits at the bottom of
//! RAM; a loader that passes a device tree pointer in x0 (the arm64 boot protocol) is
//! honoured.
//!
//! Boot only notes where the device tree is. It is checked and trimmed when first read: the
//! command line when the runtime's flags are first needed (when `main` is reached), the memory
//! nodes and reservations at the heap's first allocation, device windows by components, the
//! PSCI conduit when the machine is powered off.

use core::arch::global_asm;
use core::slice;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use unik_platform::devicetree::{self, DeviceTree};
use unik_platform::memory::{CapacityError, Span, SpanSet, heap_spans as spans_of};

use super::exceptions::{self, EXCEPTION_STACK};
use super::mmu::{self, MAPPED_LIMIT, RAM_START};
use crate::exit::fatal;
use crate::heap::{MAX_SPANS, MIN_SPAN};
use crate::start::{self, Regions};
use crate::timeline::{self, PHASE_TICKS, Phase};

const PAGE_SIZE: usize = 4096;
/// Reservations from the device tree that are honoured; more is an error.
const MAX_RESERVED: usize = 8;

/// Where the loader put the device tree, and its length once trimmed (0 until then).
static DEVICE_TREE: AtomicU64 = AtomicU64::new(0);
static DEVICE_TREE_LEN: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    /// The ELF header, loaded at the image's first address; the program headers follow it.
    static __ehdr_start: u8;
    /// The boot stack's reserve, whose first page is the guard page (see `stack`).
    static __uniklink_reserve_rt_stack_size: u8;
    /// End of the image including .bss, provided by the linker.
    static _end: u8;
}

// The counter is read first so `entry_to_main` covers all of boot. CPACR_EL1.FPEN turns
// on FP/SIMD before any Rust code, which the target lets use NEON registers anywhere. The
// ISB that makes it and VBAR_EL1 take effect comes with the mapping, where it ends no
// block of code an emulator would not end anyway, and on the way out where the mapping gives
// up (`.Lunik_map_unmapped`, which enters `virt_entry_unmapped` instead of `virt_entry`, so
// that `virt_entry` has no branch on it).
// Reset leaves SPSel at 1, so the first stack set is SP_EL1, the exception stack; the
// runtime then switches to SP_EL0 with the boot stack, whose top is the reserve's start plus
// rt.stack_size, 16-byte aligned. Then the MMU, on the tables the linker wrote or, for
// another linker's image, tables built here (`mmu::map_image_asm`), so that all Rust code
// runs with the MMU and caches on.
global_asm!(
    r#"
    .pushsection .text.unik_virt_start, "ax", %progbits
    .globl _virt_start
    .type _virt_start, %function
_virt_start:
    mrs x9, cntvct_el0
    adrp x10, {entry_ticks}
    str x9, [x10, :lo12:{entry_ticks}]
    mov x20, x0
    mov x9, #(3 << 20)
    msr cpacr_el1, x9
    adrp x9, {vectors}
    add x9, x9, :lo12:{vectors}
    msr vbar_el1, x9
    adrp x9, {exception_stack}
    add x9, x9, :lo12:{exception_stack}
    add sp, x9, #{exception_stack_pages}, lsl #12
    msr spsel, #0
    adrp x9, __uniklink_param_rt_stack_size
    ldr w10, [x9, :lo12:__uniklink_param_rt_stack_size]
    adrp x9, __uniklink_reserve_rt_stack_size
    add x9, x9, :lo12:__uniklink_reserve_rt_stack_size
    add x9, x9, x10
    and x9, x9, #~15
    mov sp, x9
"#,
    mmu::map_image_asm!(),
    r#"
    mov x0, x20
    bl {entry}
    b .
"#,
    mmu::build_tables_asm!(),
    r#"
.Lunik_map_unmapped:
    isb
    mov x0, x20
    bl {entry_unmapped}
    b .
    .ltorg
    .size _virt_start, . - _virt_start
    .popsection
    "#,
    entry_ticks = sym PHASE_TICKS,
    vectors = sym exceptions::VECTORS,
    exception_stack = sym EXCEPTION_STACK,
    exception_stack_pages = const exceptions::STACK_SIZE / PAGE_SIZE,
    entry = sym virt_entry,
    entry_unmapped = sym virt_entry_unmapped,
    ram_start = const RAM_START,
    ram_end = const mmu::RAM_END,
    block_1g = const mmu::BLOCK_1G,
    image_blocks = const mmu::IMAGE_BLOCKS,
    image = sym mmu::IMAGE,
    ram_page = const mmu::RAM_PAGE,
    page_access = sym mmu::PAGE_ACCESS,
    guard = sym __uniklink_reserve_rt_stack_size,
    ram = sym mmu::RAM,
    ram_first = const mmu::RAM_FIRST,
    table = const mmu::TABLE,
    low = sym mmu::LOW,
    device_offset = const mmu::DEVICE_OFFSET,
    device_first = const mmu::DEVICE_FIRST,
    device_count = const mmu::DEVICE_COUNT,
    level1 = sym mmu::LEVEL1,
    upper_first = const mmu::UPPER_FIRST,
    mair = const mmu::MAIR,
    tcr = const mmu::TCR,
    sctlr = const mmu::SCTLR_SET,
);

/// First Rust code: EL1, MMU on, boot stack, interrupts masked.
extern "C" fn virt_entry(device_tree: u64) -> ! {
    timeline::stamp(Phase::Paging);
    note_device_tree(device_tree);
    start::run()
}

/// First Rust code where the entry code could not map the image (MMU off): says why. The
/// device tree is noted first, as power-off without semihosting looks up PSCI in it.
extern "C" fn virt_entry_unmapped(device_tree: u64) -> ! {
    note_device_tree(device_tree);
    let image = (&raw const __ehdr_start) as u64..(&raw const _end) as u64;
    match mmu::check_image(image.clone()) {
        Err(error) => fatal(format_args!("{error}")),
        Ok(()) => fatal(format_args!(
            "the entry code left the image {:#x}-{:#x} unmapped",
            image.start, image.end
        )),
    }
}

/// Where the device tree is: `device_tree` as the loader passed it in x0, or the bottom of
/// RAM where it passed 0 (an ELF kernel).
fn note_device_tree(device_tree: u64) {
    let address = if device_tree == 0 {
        RAM_START
    } else {
        device_tree
    };
    DEVICE_TREE.store(address, Ordering::Relaxed);
}

/// The device tree, trimmed at the first call to its blocks (the free space after them is the
/// heap's): the one the loader passed, checked to lie in mapped RAM.
pub(crate) fn device_tree() -> &'static [u8] {
    let mut len = DEVICE_TREE_LEN.load(Ordering::Relaxed);
    let address = DEVICE_TREE.load(Ordering::Relaxed);
    if len == 0 {
        let whole = device_tree_at(address);
        len = devicetree::trim_free_space(whole)
            .unwrap_or_else(|error| fatal(format_args!("device tree at {address:#x}: {error}")));
        DEVICE_TREE_LEN.store(len, Ordering::Relaxed);
    }
    // SAFETY: the trimmed tree, which stays as it is for the rest of the run.
    unsafe { slice::from_raw_parts(address as *const u8, len) }
}

/// The device tree at `address`, checked to lie in mapped RAM.
fn device_tree_at(address: u64) -> &'static mut [u8] {
    if !mmu::is_ram(address..address + devicetree::HEADER_PREFIX as u64) {
        fatal(format_args!("no device tree: {address:#x} is not RAM"));
    }
    // SAFETY: mapped RAM, and the loader wrote the tree there (or other bytes, which the
    // magic check rejects).
    let prefix = unsafe { slice::from_raw_parts(address as *const u8, devicetree::HEADER_PREFIX) };
    let size = devicetree::total_size(prefix)
        .unwrap_or_else(|error| fatal(format_args!("device tree at {address:#x}: {error}")));
    if !mmu::is_ram(address..address.saturating_add(size as u64)) {
        fatal(format_args!(
            "device tree at {address:#x}: {size} bytes run past the mapped RAM"
        ));
    }
    // SAFETY: mapped RAM holding the tree, which nothing refers to before it is trimmed.
    unsafe { slice::from_raw_parts_mut(address as *mut u8, size) }
}

/// `/chosen/bootargs`.
pub(crate) fn find_command_line() -> &'static [u8] {
    let tree = device_tree();
    devicetree::chosen_bootargs(tree).unwrap_or_else(|error| {
        fatal(format_args!(
            "device tree at {:#x}: {error}",
            tree.as_ptr() as u64
        ))
    })
}

/// The device tree, parsed, and where it is.
fn parsed_device_tree() -> (DeviceTree<'static>, u64) {
    let tree = device_tree();
    let address = tree.as_ptr() as u64;
    let parsed = DeviceTree::parse(tree)
        .unwrap_or_else(|error| fatal(format_args!("device tree at {address:#x}: {error}")));
    (parsed, address)
}

/// The device tree's `memory` nodes.
pub(crate) fn memory_map() -> Regions {
    let mut regions = Regions::new();
    for region in parsed_device_tree().0.memory() {
        if !regions.push(region) {
            break;
        }
    }
    regions
}

/// The RAM the heap may take: the `memory` nodes below the end of the mapping, less the
/// device tree, the image (with its stack and page tables) and the tree's reservations.
pub(crate) fn heap_spans() -> Result<SpanSet<MAX_SPANS>, CapacityError> {
    let (tree, address) = parsed_device_tree();
    let regions = memory_map();
    if regions.as_slice().is_empty() {
        fatal(format_args!(
            "the device tree at {address:#x} has no memory node"
        ));
    }
    let mut reserved = [Span::EMPTY; 2 + MAX_RESERVED];
    reserved[0] = Span::new(address, address + tree.size() as u64);
    reserved[1] = Span::new((&raw const __ehdr_start) as u64, (&raw const _end) as u64);
    let mut count = 2;
    for span in tree.reserved() {
        let Some(slot) = reserved.get_mut(count) else {
            fatal(format_args!(
                "the device tree reserves more than {MAX_RESERVED} ranges"
            ))
        };
        *slot = span;
        count += 1;
    }
    spans_of(
        regions.as_slice().iter().copied(),
        &reserved[..count],
        MAPPED_LIMIT,
        MIN_SPAN,
    )
}
