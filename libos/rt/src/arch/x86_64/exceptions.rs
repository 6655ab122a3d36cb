//! CPU exceptions: an IDT whose 32 gates all print what happened and exit with
//! `exit::EXCEPTION`. Interrupts stay disabled, so vectors 32 and up need no gates.

use core::arch::{asm, global_asm};

use super::gdt::{EXCEPTION_IST, KERNEL_CODE};
use crate::exit::{EXCEPTION, exit};
use crate::println;

const EXCEPTION_COUNT: usize = 32;

// One stub per vector brings the stack to a common `ExceptionFrame` shape: the CPU pushes an
// error code for some vectors only, so the others push a zero in its place.
global_asm!(
    r#"
    .pushsection .text.unik_exception_stubs, "ax", @progbits
    .macro unik_exception_stub vector, has_error_code
    .balign 16
    .Lunik_exception_\vector:
    .if \has_error_code == 0
    pushq $0
    .endif
    pushq $\vector
    jmp .Lunik_exception_common
    .endm

    unik_exception_stub 0, 0
    unik_exception_stub 1, 0
    unik_exception_stub 2, 0
    unik_exception_stub 3, 0
    unik_exception_stub 4, 0
    unik_exception_stub 5, 0
    unik_exception_stub 6, 0
    unik_exception_stub 7, 0
    unik_exception_stub 8, 1
    unik_exception_stub 9, 0
    unik_exception_stub 10, 1
    unik_exception_stub 11, 1
    unik_exception_stub 12, 1
    unik_exception_stub 13, 1
    unik_exception_stub 14, 1
    unik_exception_stub 15, 0
    unik_exception_stub 16, 0
    unik_exception_stub 17, 1
    unik_exception_stub 18, 0
    unik_exception_stub 19, 0
    unik_exception_stub 20, 0
    unik_exception_stub 21, 1
    unik_exception_stub 22, 0
    unik_exception_stub 23, 0
    unik_exception_stub 24, 0
    unik_exception_stub 25, 0
    unik_exception_stub 26, 0
    unik_exception_stub 27, 0
    unik_exception_stub 28, 0
    unik_exception_stub 29, 1
    unik_exception_stub 30, 1
    unik_exception_stub 31, 0

.Lunik_exception_common:
    mov %rsp, %rdi
    mov %rbp, %rsi
    and $-16, %rsp
    call {handler}
    ud2
    .popsection

    .pushsection .rodata.unik_exception_stubs, "a", @progbits
    .balign 8
    .globl __unik_exception_stubs
    .hidden __unik_exception_stubs
__unik_exception_stubs:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad .Lunik_exception_\vector
    .endr
    .popsection
    "#,
    handler = sym handle_exception,
    options(att_syntax),
);

unsafe extern "C" {
    static __unik_exception_stubs: [u64; EXCEPTION_COUNT];
}

/// The stack as the common stub hands it over, lowest address first (the interrupted SS
/// follows but is of no interest).
#[repr(C)]
struct ExceptionFrame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    _reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        _reserved: 0,
    };

    fn interrupt(handler: u64) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist: EXCEPTION_IST,
            // Present, ring 0, 64-bit interrupt gate.
            attributes: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            _reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; EXCEPTION_COUNT]);

static mut IDT: Idt = Idt([Gate::MISSING; EXCEPTION_COUNT]);

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

pub(super) fn init() {
    let idt = &raw mut IDT;
    // SAFETY: boot runs single-threaded; the stub table is immutable data from the asm above.
    unsafe {
        for (gate, &stub) in (*idt).0.iter_mut().zip(&__unik_exception_stubs) {
            *gate = Gate::interrupt(stub);
        }
        let pointer = DescriptorPointer {
            limit: (size_of::<Idt>() - 1) as u16,
            base: idt as u64,
        };
        asm!("lidt [{}]", in(reg) &raw const pointer, options(readonly, nostack, preserves_flags));
    }
}

const NAMES: [&str; EXCEPTION_COUNT] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved",
];

const PAGE_FAULT: u64 = 14;

/// `fp` is the interrupted code's frame pointer, for the backtrace.
extern "C" fn handle_exception(frame: &ExceptionFrame, fp: u64) -> ! {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    let name = NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("unknown");
    let guard = crate::stack::guard_page();
    let overflow = frame.vector == PAGE_FAULT && guard.contains(&cr2);
    println!(
        "uniklink:exception vector={} ({name}) error_code={:#x} cr2={:#x} rip={:#x} rsp={:#x} cs={:#x} rflags={:#x}{}",
        frame.vector,
        frame.error_code,
        cr2,
        frame.rip,
        frame.rsp,
        frame.cs,
        frame.rflags,
        if overflow { " stack-overflow" } else { "" },
    );
    crate::backtrace::print(Some(frame.rip), fp);
    exit(EXCEPTION)
}
