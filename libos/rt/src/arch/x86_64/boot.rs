//! The PVH entry point and the x86_64 half of boot.
//!
//! A PVH loader (QEMU `-kernel`, Firecracker, Xen) jumps to `_pvh_start` in 32-bit
//! protected mode with paging off and %ebx holding the physical address of
//! `hvm_start_info`. The image is position-dependent and linked at 1 MiB; the linker
//! publishes `_pvh_start` in the XEN_ELFNOTE_PHYS32_ENTRY note.
//!
//! Boot only notes where the start info is; nothing reads it during boot. The command line is
//! found when the runtime's flags are first needed (when `main` is reached), the memory map
//! and the boot modules at the heap's first allocation, the ACPI root pointer at power-off.
//! Page 0 stays unmapped so that null dereferences fault; a table the loader put there (q35's
//! memory map) is read through a temporary mapping.

use core::arch::global_asm;
use core::slice;
use core::sync::atomic::{AtomicU32, Ordering};

use unik_platform::memory::{CapacityError, Span, SpanSet, heap_spans as spans_of};
use unik_platform::pvh::{self, START_INFO_V1_SIZE, StartInfo};

use super::exceptions;
use super::gdt::{self, CODE_DESCRIPTOR, DATA_DESCRIPTOR, GDT, GDT_LIMIT, KERNEL_CODE};
use super::paging::{
    self, ENTRIES, FIRST_PAGES, FIRST_PAGES_END, LOW_DIRECTORY, MAPPED_LIMIT, PAGE_SIZE, PDPT,
    PML4, TABLES_PAST_IMAGE, UPPER_GIBS,
};
use crate::exit::fatal;
use crate::heap::{MAX_SPANS, MIN_SPAN};
use crate::stack;
use crate::start::{self, MAX_REGIONS, Regions};
use crate::timeline::{self, PHASE_TICKS, Phase};

const MAX_MODULES: usize = 8;
const MAX_CMDLINE: usize = 4096;

/// Where the loader put the start info; the entry code stores it.
static START_INFO_PADDR: AtomicU32 = AtomicU32::new(0);

// The TSC is read first so `entry_to_main` covers all of boot.
global_asm!(
    r#"
    .pushsection .text.unik_pvh_start, "ax", @progbits
    .code32
    .globl _pvh_start
    .type _pvh_start, @function
_pvh_start:
    rdtsc
    mov %eax, {entry_ticks}
    mov %edx, {entry_ticks} + 4
    mov %ebx, {start_info_paddr}

    /* The first GiB's tables are in the image (see `paging`); only the links between the
       tables, which are addresses, are written here. */
    movl ${pdpt} + 0x3, {pml4}
    movl ${low} + 0x3, {pdpt}
    movl ${first} + 0x3, {low}
    /* Unmap the stack's guard page if it is in the first 2 MiB; otherwise the store goes to
       PML4's last entry, which is 0 anyway, and Rust splits the guard's 2 MiB page. */
    mov $__uniklink_reserve_rt_stack_size, %eax
    shr $12, %eax
    lea {first}(,%eax,8), %eax
    mov ${pml4} + 4088, %ecx
    cmp ${first} + 4096, %eax
    cmovae %ecx, %eax
    movl $0, (%eax)

    /* 1..4 GiB: 1 GiB pages where CPUID.80000001H:EDX.Page1GB says the CPU has them (every
       x86_64 CPU has the leaf: it also says whether there is long mode). */
    mov $0x80000001, %eax
    cpuid
    bt $26, %edx
    jnc .Lunik_upper_directories
    movl $0x40000083, {pdpt} + 8
    movl $0x80000083, {pdpt} + 16
    movl $0xc0000083, {pdpt} + 24

.Lunik_paging_on:
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

    movl ${code_low}, {gdt} + 8
    movl ${code_high}, {gdt} + 12
    movl ${data_low}, {gdt} + 16
    movl ${data_high}, {gdt} + 20
    lgdt .Lunik_boot_gdtr
    ljmp ${code}, $.Lunik_long_mode

    /* Without 1 GiB pages: three directories of 2 MiB pages in the RAM past the image. It is
       not zeroed, so both halves of each entry are written. */
.Lunik_upper_directories:
    mov $_end + 0xfff, %esi
    and $-4096, %esi
    lea 0x3(%esi), %eax
    mov %eax, {pdpt} + 8
    lea 0x1003(%esi), %eax
    mov %eax, {pdpt} + 16
    lea 0x2003(%esi), %eax
    mov %eax, {pdpt} + 24
    mov $0x40000083, %eax
    xor %ecx, %ecx
.Lunik_fill_upper:
    mov %eax, (%esi,%ecx,8)
    movl $0, 4(%esi,%ecx,8)
    add $0x200000, %eax
    inc %ecx
    cmp ${upper_entries}, %ecx
    jb .Lunik_fill_upper
    jmp .Lunik_paging_on

    .code64
.Lunik_long_mode:
    /* The stack's top: the reserve's start plus rt.stack_size, 16-byte aligned. In 64-bit
       mode the data segment registers are ignored, so the loader's flat ones stay. */
    lea __uniklink_reserve_rt_stack_size(%rip), %rsp
    mov __uniklink_param_rt_stack_size(%rip), %eax
    add %rax, %rsp
    and $-16, %rsp
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
    entry_ticks = sym PHASE_TICKS,
    start_info_paddr = sym START_INFO_PADDR,
    pml4 = sym PML4,
    pdpt = sym PDPT,
    low = sym LOW_DIRECTORY,
    first = sym FIRST_PAGES,
    upper_entries = const UPPER_GIBS * ENTRIES,
    code = const KERNEL_CODE,
    gdt = sym GDT,
    code_low = const CODE_DESCRIPTOR as u32,
    code_high = const CODE_DESCRIPTOR >> 32,
    data_low = const DATA_DESCRIPTOR as u32,
    data_high = const DATA_DESCRIPTOR >> 32,
    gdt_limit = const GDT_LIMIT,
    entry = sym pvh_entry,
    options(att_syntax),
);

/// First Rust code: 64-bit mode, identity paging, boot stack, interrupts off.
extern "C" fn pvh_entry() -> ! {
    timeline::stamp(Phase::Paging);
    gdt::load_tss();
    exceptions::init();
    let guard = stack::guard_page().start;
    if guard >= FIRST_PAGES_END
        && let Err(error) = paging::unmap_guard_page(guard)
    {
        fatal(format_args!("{error}"));
    }
    start::run()
}

/// PVH machines describe themselves with the start info and ACPI tables, not a device tree.
pub(crate) fn device_tree() -> &'static [u8] {
    &[]
}

/// The start info; a boot error if it is none.
fn start_info() -> StartInfo {
    let paddr = u64::from(START_INFO_PADDR.load(Ordering::Relaxed));
    // A version 0 structure is shorter; the bytes after it are ordinary RAM the parser
    // ignores.
    read_loader_table("start info", paddr, START_INFO_V1_SIZE, StartInfo::parse)
        .unwrap_or_else(|error| fatal(format_args!("start info at {paddr:#x}: {error}")))
}

/// The ACPI root pointer's address from the start info; 0 when there is none, a start info
/// that does not parse included (power-off must not fail on it).
pub(super) fn rsdp_address() -> u64 {
    let paddr = u64::from(START_INFO_PADDR.load(Ordering::Relaxed));
    if paddr == 0 {
        return 0;
    }
    read_loader_table("start info", paddr, START_INFO_V1_SIZE, StartInfo::parse)
        .map_or(0, |info| info.rsdp_paddr)
}

/// The command line the start info points at, without its NUL terminator, at most
/// `MAX_CMDLINE` bytes.
pub(crate) fn find_command_line() -> &'static [u8] {
    let paddr = start_info().cmdline_paddr;
    if paddr == 0 {
        return &[];
    }
    if paddr < PAGE_SIZE {
        fatal(format_args!(
            "the loader put the command line at {paddr:#x}, in page 0, which stays unmapped"
        ));
    }
    let start = paddr as *const u8;
    // Stop at the end of the identity mapping too: a corrupt address must not fault.
    let bound = MAX_CMDLINE.min(MAPPED_LIMIT.saturating_sub(paddr) as usize);
    let len = (0..bound)
        // SAFETY: the loader put a NUL-terminated string at this identity-mapped address
        // outside page 0, and reading stops at the terminator or the end of the mapping.
        .take_while(|&i| unsafe { start.add(i).read() } != 0)
        .count();
    // SAFETY: the `len` bytes were just read; nothing writes where the loader put them.
    unsafe { slice::from_raw_parts(start, len) }
}

/// Runs `read` on `len` bytes of a loader's table at `paddr`, mapping page 0 for the while if
/// the table lies there.
fn read_loader_table<T>(what: &str, paddr: u64, len: usize, read: impl FnOnce(&[u8]) -> T) -> T {
    if len == 0 {
        return read(&[]);
    }
    if paddr
        .checked_add(len as u64)
        .is_none_or(|end| end > MAPPED_LIMIT)
    {
        fatal(format_args!(
            "{what} at {paddr:#x} ({len} bytes) lies outside the first 4 GiB"
        ));
    }
    let low = paddr < PAGE_SIZE;
    if low {
        paging::map_first_page();
    }
    // SAFETY: the start info says the loader wrote the table there, identity-mapped, and
    // nothing has written over it: the heap never takes memory below the image.
    let result = read(unsafe { slice::from_raw_parts(paddr as *const u8, len) });
    if low {
        paging::unmap_first_page();
    }
    result
}

/// The loader's memory map.
pub(crate) fn memory_map() -> Regions {
    let info = start_info();
    if info.memmap_entries == 0 {
        fatal(format_args!(
            "the loader passed no memory map (start info version {})",
            info.version
        ));
    }
    read_loader_table(
        "memory map",
        info.memmap_paddr,
        info.memmap_len(),
        |table| {
            let mut regions = Regions::new();
            for region in pvh::memory_regions(table) {
                if !regions.push(region) {
                    fatal(format_args!(
                        "{} memory map entries, at most {MAX_REGIONS} supported",
                        info.memmap_entries
                    ));
                }
            }
            regions
        },
    )
}

/// The RAM the heap may take: the memory map's RAM below the end of the identity mapping,
/// less everything below the image's end (the image with its stack and page tables, and the
/// loader's low-memory structures) and the page tables boot may put past it, the command line wherever the loader put it (components
/// read it again later), and the boot modules.
pub(crate) fn heap_spans() -> Result<SpanSet<MAX_SPANS>, CapacityError> {
    let info = start_info();
    if info.nr_modules as usize > MAX_MODULES {
        fatal(format_args!(
            "{} boot modules, at most {MAX_MODULES} supported",
            info.nr_modules
        ));
    }
    let cmdline = crate::cmdline::command_line();
    let cmdline_start = cmdline.as_ptr() as u64;
    let mut reserved = [Span::EMPTY; 2 + MAX_MODULES];
    reserved[0] = Span::new(0, paging::past_image() + TABLES_PAST_IMAGE);
    reserved[1] = Span::new(cmdline_start, cmdline_start + cmdline.len() as u64 + 1);
    read_loader_table(
        "module list",
        info.modlist_paddr,
        info.modlist_len(),
        |table| {
            for (slot, module) in reserved[2..].iter_mut().zip(pvh::modules(table)) {
                *slot = Span::new(module.paddr, module.paddr.saturating_add(module.size));
            }
        },
    );
    spans_of(
        memory_map().as_slice().iter().copied(),
        &reserved[..2 + info.nr_modules as usize],
        MAPPED_LIMIT,
        MIN_SPAN,
    )
}
