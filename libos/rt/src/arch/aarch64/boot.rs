//! The `virt` entry point and the aarch64 half of boot.
//!
//! QEMU's `-kernel` loader copies the ELF to its link address (2 MiB into RAM, see the
//! linker's virt image kind) and enters `_virt_start` at EL1 with the MMU and caches off and
//! interrupts masked. For an ELF kernel x0 is 0 and the device tree sits at the bottom of
//! RAM; a loader that passes a device tree pointer in x0 (the arm64 boot protocol) is
//! honoured.

use core::arch::global_asm;
use core::ops::Range;
use core::slice;

use unik_platform::cmdline::BootFlags;
use unik_platform::devicetree::{self, DeviceTree};
use unik_platform::elf::{self, Segment};
use unik_platform::memory::{Span, heap_spans};
use unik_platform::pvh::{MemoryRegion, RegionKind};

use super::exceptions::{self, EXCEPTION_STACK};
use super::mmu::{self, MAPPED_LIMIT, RAM_START};
use super::power;
use crate::exit::fatal;
use crate::heap::MIN_SPAN;
use crate::start::{self, BootInfo, MAX_REGIONS};
use crate::time::Instant;

const PAGE_SIZE: usize = 4096;
const STACK_SIZE: usize = 256 * 1024;
/// Loaded segments the mapping distinguishes; uniklink writes four (headers, code,
/// read-only data, data), GNU ld as many.
const MAX_SEGMENTS: usize = 8;
/// Reservations from the device tree that are honoured; more is a boot failure.
const MAX_RESERVED: usize = 8;

/// The boot stack, with an unmapped guard page below it so an overflow faults instead of
/// silently overwriting whatever precedes the stack in .bss.
#[repr(C, align(4096))]
struct BootStack {
    guard: [u8; PAGE_SIZE],
    stack: [u8; STACK_SIZE],
}

static mut BOOT_STACK: BootStack = BootStack {
    guard: [0; PAGE_SIZE],
    stack: [0; STACK_SIZE],
};

unsafe extern "C" {
    /// The ELF header, loaded at the image's first address; the program headers follow it.
    static __ehdr_start: u8;
    /// End of the image including .bss, provided by the linker.
    static _end: u8;
}

// The counter is read first so `entry_to_main_ns` covers all of boot. CPACR_EL1.FPEN turns
// on FP/SIMD before any Rust code, which the target lets use NEON registers anywhere.
// Reset leaves SPSel at 1, so the first stack set is SP_EL1, the exception stack; the
// runtime then switches to SP_EL0 with the boot stack.
global_asm!(
    r#"
    .pushsection .text.unik_virt_start, "ax", %progbits
    .globl _virt_start
    .type _virt_start, %function
_virt_start:
    mrs x19, cntvct_el0
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
    adrp x9, {stack}
    add x9, x9, :lo12:{stack}
    add sp, x9, #{stack_pages}, lsl #12
    isb
    mov x0, x20
    mov x1, x19
    bl {entry}
    b .
    .size _virt_start, . - _virt_start
    .popsection
    "#,
    vectors = sym exceptions::VECTORS,
    exception_stack = sym EXCEPTION_STACK,
    exception_stack_pages = const exceptions::STACK_SIZE / PAGE_SIZE,
    stack = sym BOOT_STACK,
    stack_pages = const size_of::<BootStack>() / PAGE_SIZE,
    entry = sym virt_entry,
);

/// The guard page below the boot stack.
pub(super) fn stack_guard_page() -> Range<u64> {
    let guard = (&raw const BOOT_STACK) as u64;
    guard..guard + PAGE_SIZE as u64
}

/// First Rust code: EL1, MMU off (so every access is a device access and must be aligned,
/// which the target's strict alignment ensures), boot stack, interrupts masked.
extern "C" fn virt_entry(device_tree: u64, entry_ticks: u64) -> ! {
    let image = (&raw const __ehdr_start) as u64..(&raw const _end) as u64;
    let (segments, count) = loaded_segments();
    // SAFETY: runs once, first, with the MMU off.
    if let Err(error) =
        unsafe { mmu::enable(&segments[..count], image.clone(), stack_guard_page().start) }
    {
        fatal(format_args!("{error}"));
    }
    let address = if device_tree == 0 {
        RAM_START
    } else {
        device_tree
    };
    let tree = device_tree_at(address);
    // SAFETY: the range was just parsed as the tree, and the heap never gets it.
    crate::devicetree::set(unsafe { slice::from_raw_parts(address as *const u8, tree.size()) });
    if let Some(conduit) = tree.psci() {
        power::set_psci(conduit);
    }
    let line = tree.bootargs();
    crate::cmdline::set(line);
    let flags = BootFlags::parse(line);

    let mut reserved = [Span::EMPTY; 2 + MAX_RESERVED];
    reserved[0] = Span::new(address, address + tree.size() as u64);
    reserved[1] = Span::new(image.start, image.end);
    let mut extra = tree.reserved();
    for slot in &mut reserved[2..] {
        match extra.next() {
            Some(span) => *slot = span,
            None => break,
        }
    }
    if extra.next().is_some() {
        fatal(format_args!(
            "the device tree reserves more than {MAX_RESERVED} ranges"
        ));
    }

    let mut regions = [MemoryRegion {
        base: 0,
        size: 0,
        kind: RegionKind::Reserved,
    }; MAX_REGIONS];
    let mut region_count = 0;
    for (slot, region) in regions.iter_mut().zip(tree.memory()) {
        *slot = region;
        region_count += 1;
    }
    if region_count == 0 {
        fatal(format_args!(
            "the device tree at {address:#x} has no memory node"
        ));
    }
    let heap = heap_spans(
        regions[..region_count].iter().copied(),
        &reserved,
        MAPPED_LIMIT,
        MIN_SPAN,
    )
    .unwrap_or_else(|error| fatal(format_args!("memory map: {error}")));
    start::run(BootInfo {
        entry: Instant::from_ticks(entry_ticks),
        flags,
        regions,
        region_count,
        heap,
    })
}

/// The image's loadable segments, from its program headers.
fn loaded_segments() -> ([Segment; MAX_SEGMENTS], usize) {
    let header = (&raw const __ehdr_start).cast::<u8>();
    // SAFETY: the linker puts the ELF header at `__ehdr_start` in a loaded segment.
    let prefix = unsafe { slice::from_raw_parts(header, elf::EHDR_SIZE) };
    let segments = elf::headers_len(prefix).and_then(|len| {
        // SAFETY: and the program headers after it, in the same segment.
        elf::loaded_segments(unsafe { slice::from_raw_parts(header, len) })
    });
    let segments =
        segments.unwrap_or_else(|error| fatal(format_args!("the image's own headers: {error}")));
    let mut found = [Segment {
        start: 0,
        end: 0,
        writable: false,
        executable: false,
    }; MAX_SEGMENTS];
    let mut count = 0;
    for segment in segments {
        if count == MAX_SEGMENTS {
            fatal(format_args!("more than {MAX_SEGMENTS} loaded segments"));
        }
        found[count] = segment;
        count += 1;
    }
    (found, count)
}

fn device_tree_at(address: u64) -> DeviceTree<'static> {
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
    // SAFETY: mapped RAM holding the tree, which nothing else refers to yet.
    let whole = unsafe { slice::from_raw_parts_mut(address as *mut u8, size) };
    let used = devicetree::trim_free_space(whole)
        .unwrap_or_else(|error| fatal(format_args!("device tree at {address:#x}: {error}")));
    // SAFETY: the trimmed tree, which the heap never gets; the free space after it is heap.
    let bytes = unsafe { slice::from_raw_parts(address as *const u8, used) };
    DeviceTree::parse(bytes)
        .unwrap_or_else(|error| fatal(format_args!("device tree at {address:#x}: {error}")))
}
