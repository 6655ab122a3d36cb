//! The GDT (flat 64-bit code and data) and the TSS, which exists only to give exception
//! handlers their own stack: a stack overflow faults on the guard page, and the CPU could
//! not push the exception frame onto the overflowed stack.

use core::arch::asm;

pub(super) const KERNEL_CODE: u16 = 0x08;
const TSS_SELECTOR: u16 = 0x18;
/// Interrupt stack table slot used by every exception gate.
pub(super) const EXCEPTION_IST: u8 = 1;
/// Enough for the handler's one formatted line.
const EXCEPTION_STACK_SIZE: usize = 8 * 1024;

#[repr(C, align(16))]
pub(super) struct Gdt([u64; 5]);

pub(super) const GDT_LIMIT: u16 = (size_of::<Gdt>() - 1) as u16;
/// KERNEL_CODE's descriptor: present, ring 0, code, long mode.
pub(super) const CODE_DESCRIPTOR: u64 = 0x00af_9a00_0000_ffff;
/// Data: present, ring 0, writable. 64-bit mode ignores the data segment registers, so the
/// loader's flat ones stay loaded and this one is for completeness only.
pub(super) const DATA_DESCRIPTOR: u64 = 0x00cf_9200_0000_ffff;

/// Zero in the image, so that it takes no room there (entry 0 stays the null descriptor): the
/// 32-bit entry code writes the code and data descriptors before it loads the GDT to enter
/// long mode, `load_tss` the TSS descriptor (entries 3 and 4: the TSS address split across
/// bit fields, which no relocation expresses).
pub(super) static mut GDT: Gdt = Gdt([0; 5]);

#[repr(C, packed(4))]
struct Tss {
    _reserved0: u32,
    privilege_stacks: [u64; 3],
    _reserved1: u64,
    interrupt_stacks: [*const u8; 7],
    _reserved2: u64,
    _reserved3: u16,
    io_map_base: u16,
}

#[repr(C, align(16))]
struct ExceptionStack([u8; EXCEPTION_STACK_SIZE]);

static mut EXCEPTION_STACK: ExceptionStack = ExceptionStack([0; EXCEPTION_STACK_SIZE]);

/// Filled in by `load_tss`, like the GDT, to take no room in the image.
static mut TSS: Tss = Tss {
    _reserved0: 0,
    privilege_stacks: [0; 3],
    _reserved1: 0,
    interrupt_stacks: [core::ptr::null(); 7],
    _reserved2: 0,
    _reserved3: 0,
    io_map_base: 0,
};

pub(super) fn load_tss() {
    let base = (&raw const TSS) as u64;
    let limit = size_of::<Tss>() as u64 - 1;
    let available_tss = 0x89;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (available_tss << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let gdt = &raw mut GDT;
    let tss = &raw mut TSS;
    // SAFETY: nothing uses the TSS before `ltr` below; the GDT is loaded but its TSS entries
    // are unused until then.
    unsafe {
        (*tss).interrupt_stacks[EXCEPTION_IST as usize - 1] = (&raw const EXCEPTION_STACK)
            .cast::<u8>()
            .wrapping_add(EXCEPTION_STACK_SIZE);
        // Past the limit: no I/O permission bitmap, which ring 0 never consults.
        (*tss).io_map_base = size_of::<Tss>() as u16;
        (*gdt).0[3] = low;
        (*gdt).0[4] = base >> 32;
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags));
    }
}
