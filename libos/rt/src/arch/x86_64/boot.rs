//! The PVH entry point and the x86_64 half of boot.
//!
//! A PVH loader (QEMU `-kernel`, Firecracker, Xen) jumps to `_pvh_start` in 32-bit
//! protected mode with paging off and %ebx holding the physical address of
//! `hvm_start_info`. The image is position-dependent and linked at 1 MiB; the linker
//! publishes `_pvh_start` in the XEN_ELFNOTE_PHYS32_ENTRY note.

use core::arch::global_asm;
use core::ops::Range;
use core::slice;

use unik_platform::cmdline::BootFlags;
use unik_platform::memory::{Span, heap_spans};
use unik_platform::pvh::{self, START_INFO_V1_SIZE, StartInfo};

use super::gdt::{self, GDT, GDT_LIMIT, KERNEL_CODE, KERNEL_DATA};
use super::paging::{self, DIRECTORIES, DIRECTORY_COUNT, MAPPED_LIMIT, PAGE_SIZE, PDPT, PML4};
use super::{exceptions, power, serial};
use crate::exit::fatal;
use crate::heap::MIN_SPAN;
use crate::start::{self, BootInfo, MAX_REGIONS};
use crate::time::Instant;

const STACK_SIZE: usize = 128 * 1024;
const MAX_MODULES: usize = 8;
const MAX_CMDLINE: usize = 4096;

/// The boot stack, with an unmapped guard page below it so an overflow faults instead of
/// silently overwriting whatever precedes the stack in .bss.
#[repr(C, align(4096))]
struct BootStack {
    guard: [u8; PAGE_SIZE as usize],
    stack: [u8; STACK_SIZE],
}

static mut BOOT_STACK: BootStack = BootStack {
    guard: [0; PAGE_SIZE as usize],
    stack: [0; STACK_SIZE],
};

unsafe extern "C" {
    /// End of the image including .bss, provided by the linker.
    static _end: u8;
}

// The TSC is read first so `entry_to_main_ns` covers all of boot; it travels in
// %esi:%ebp, registers that nothing before the Rust call uses.
global_asm!(
    r#"
    .pushsection .text.unik_pvh_start, "ax", @progbits
    .code32
    .globl _pvh_start
    .type _pvh_start, @function
_pvh_start:
    rdtsc
    mov %eax, %esi
    mov %edx, %ebp

    /* PML4[0] -> PDPT */
    mov ${pdpt}, %eax
    or $0x3, %eax
    mov %eax, {pml4}

    /* PDPT[0..4] -> the page directories, 1 GiB each */
    mov ${directories}, %eax
    or $0x3, %eax
    xor %ecx, %ecx
.Lunik_fill_pdpt:
    mov %eax, {pdpt}(,%ecx,8)
    add $0x1000, %eax
    inc %ecx
    cmp ${directory_count}, %ecx
    jb .Lunik_fill_pdpt

    /* 2 MiB pages, present and writable: identity map of 0..4 GiB */
    mov $0x83, %eax
    xor %ecx, %ecx
.Lunik_fill_directories:
    mov %eax, {directories}(,%ecx,8)
    add $0x200000, %eax
    inc %ecx
    cmp ${large_pages}, %ecx
    jb .Lunik_fill_directories

    mov ${pml4}, %eax
    mov %eax, %cr3
    /* CR4.PAE */
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    /* EFER.LME */
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    /* CR0.PG: enters long mode (compatibility mode until the far jump) */
    mov %cr0, %eax
    or $0x80000000, %eax
    mov %eax, %cr0

    lgdt .Lunik_boot_gdtr
    ljmp ${code}, $.Lunik_long_mode

    .code64
.Lunik_long_mode:
    mov ${data}, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs

    /* Upper register halves are undefined after the mode switch. */
    mov %ebx, %edi
    mov %esi, %esi
    shl $32, %rbp
    or %rbp, %rsi
    xor %ebp, %ebp
    lea {stack}+{stack_top}(%rip), %rsp
    call {entry}
    ud2
    .size _pvh_start, . - _pvh_start
    .popsection

    .pushsection .rodata.unik_boot_gdtr, "a", @progbits
    .balign 8
.Lunik_boot_gdtr:
    .word {gdt_limit}
    .long {gdt}
    .popsection
    "#,
    pml4 = sym PML4,
    pdpt = sym PDPT,
    directories = sym DIRECTORIES,
    directory_count = const DIRECTORY_COUNT,
    large_pages = const DIRECTORY_COUNT * 512,
    code = const KERNEL_CODE,
    data = const KERNEL_DATA,
    gdt = sym GDT,
    gdt_limit = const GDT_LIMIT,
    stack = sym BOOT_STACK,
    stack_top = const size_of::<BootStack>(),
    entry = sym pvh_entry,
    options(att_syntax),
);

/// The guard page below the boot stack.
pub(super) fn stack_guard_page() -> Range<u64> {
    let guard = (&raw const BOOT_STACK) as u64;
    guard..guard + PAGE_SIZE
}

/// First Rust code: 64-bit mode, identity paging, boot stack, interrupts off.
extern "C" fn pvh_entry(start_info_paddr: u64, entry_ticks: u64) -> ! {
    serial::init();
    gdt::load_tss();
    exceptions::init();
    let boot = read_boot_info(start_info_paddr, Instant::from_ticks(entry_ticks));
    // After reading the start info: loaders may place it in page 0.
    for page in [0, stack_guard_page().start] {
        if let Err(error) = paging::unmap_page(page) {
            fatal(format_args!("{error}"));
        }
    }
    paging::flush();
    start::run(boot)
}

fn read_boot_info(start_info_paddr: u64, entry: Instant) -> BootInfo {
    // SAFETY: the loader put hvm_start_info here; a version 0 structure is shorter, and the
    // bytes after it are ordinary RAM the parser ignores.
    let bytes = unsafe { loader_bytes("start info", start_info_paddr, START_INFO_V1_SIZE) };
    let info = StartInfo::parse(bytes).unwrap_or_else(|error| {
        fatal(format_args!("start info at {start_info_paddr:#x}: {error}"))
    });
    let line = cmdline(&info);
    crate::cmdline::set(line);
    let flags = BootFlags::parse(line);
    power::set_rsdp_address(info.rsdp_paddr);

    // SAFETY: the loader wrote `memmap_entries` entries at `memmap_paddr`.
    let memmap = unsafe { loader_bytes("memory map", info.memmap_paddr, info.memmap_len()) };
    if memmap.is_empty() {
        fatal(format_args!(
            "the loader passed no memory map (start info version {})",
            info.version
        ));
    }

    let mut reserved = [Span::EMPTY; 1 + MAX_MODULES];
    // Everything below the image end: the image, its stack and page tables, and the loader's
    // low-memory structures (start info, command line).
    reserved[0] = Span::new(0, (&raw const _end) as u64);
    if info.nr_modules as usize > MAX_MODULES {
        fatal(format_args!(
            "{} boot modules, at most {MAX_MODULES} supported",
            info.nr_modules
        ));
    }
    // SAFETY: the loader wrote `nr_modules` entries at `modlist_paddr`.
    let modlist = unsafe { loader_bytes("module list", info.modlist_paddr, info.modlist_len()) };
    for (slot, module) in reserved[1..].iter_mut().zip(pvh::modules(modlist)) {
        *slot = Span::new(module.paddr, module.paddr.saturating_add(module.size));
    }

    let heap = heap_spans(
        pvh::memory_regions(memmap),
        &reserved,
        MAPPED_LIMIT,
        MIN_SPAN,
    )
    .unwrap_or_else(|error| fatal(format_args!("memory map: {error}")));

    let mut regions = [pvh::MemoryRegion {
        base: 0,
        size: 0,
        kind: pvh::RegionKind::Reserved,
    }; MAX_REGIONS];
    let mut region_count = 0;
    for (slot, region) in regions.iter_mut().zip(pvh::memory_regions(memmap)) {
        *slot = region;
        region_count += 1;
    }
    BootInfo {
        entry,
        flags,
        regions,
        region_count,
        heap,
    }
}

/// The command line without its NUL terminator, at most `MAX_CMDLINE` bytes. Its length is
/// found byte by byte because reading a fixed length could run past RAM.
fn cmdline(info: &StartInfo) -> &'static [u8] {
    if info.cmdline_paddr == 0 {
        return &[];
    }
    let start = info.cmdline_paddr as *const u8;
    // Stop at the end of the identity mapping too: a corrupt address must not fault here.
    let max = MAX_CMDLINE.min(MAPPED_LIMIT.saturating_sub(info.cmdline_paddr) as usize);
    let len = (0..max)
        // SAFETY: the loader put a NUL-terminated string at this identity-mapped address,
        // and reading stops at the terminator or the end of the mapping.
        .take_while(|&i| unsafe { start.add(i).read() } != 0)
        .count();
    // SAFETY: the `len` bytes were just read.
    unsafe { loader_bytes("command line", info.cmdline_paddr, len) }
}

/// `len` bytes the loader left at `paddr`; empty when it passed a null address. A range
/// outside the identity mapping is a corrupt start info and stops the boot, instead of
/// faulting somewhere in the parser.
///
/// # Safety
/// `len` bytes at `paddr` must be memory the loader initialised.
unsafe fn loader_bytes(what: &str, paddr: u64, len: usize) -> &'static [u8] {
    if paddr == 0 || len == 0 {
        return &[];
    }
    if paddr
        .checked_add(len as u64)
        .is_none_or(|end| end > MAPPED_LIMIT)
    {
        fatal(format_args!(
            "{what} at {paddr:#x} ({len} bytes) lies outside the first 4 GiB"
        ));
    }
    // SAFETY: the range is identity-mapped, and initialised by the caller's guarantee.
    unsafe { slice::from_raw_parts(paddr as *const u8, len) }
}
