//! CPU exceptions: a vector table whose sixteen entries all print what happened (ESR, FAR,
//! ELR) and exit with `exit::EXCEPTION`. Interrupts stay masked, so only synchronous
//! exceptions and SErrors can arrive; every entry is handled alike.
//!
//! The runtime runs on SP_EL0 (`spsel` 0) and exceptions switch to SP_EL1, a stack of their
//! own, so that a stack overflow into the guard page can still be reported.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};

use super::power;
use crate::exit::{EXCEPTION, exit};
use crate::println;

pub(super) const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
pub(super) struct ExceptionStack(pub [u8; STACK_SIZE]);

pub(super) static mut EXCEPTION_STACK: ExceptionStack = ExceptionStack([0; STACK_SIZE]);

// Each entry resets SP_EL1 to the top of the exception stack: nothing returns from the
// handler, and a fault inside it must not run off the stack's end.
global_asm!(
    r#"
    .pushsection .text.unik_exception_vectors, "ax", %progbits
    .balign 2048
    .globl __unik_exception_vectors
    .hidden __unik_exception_vectors
__unik_exception_vectors:
    .irp kind, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 128
    adrp x9, {stack}
    add x9, x9, :lo12:{stack}
    add sp, x9, #{stack_pages}, lsl #12
    mov x0, #\kind
    mov x1, x29
    b {handler}
    .endr
    .popsection
    "#,
    stack = sym EXCEPTION_STACK,
    stack_pages = const STACK_SIZE / 4096,
    handler = sym handle_exception,
);

unsafe extern "C" {
    /// The vector table above, for VBAR_EL1.
    #[link_name = "__unik_exception_vectors"]
    pub(super) static VECTORS: [u8; 2048];
}

const KINDS: [&str; 16] = [
    "synchronous, current EL, SP_EL0",
    "IRQ, current EL, SP_EL0",
    "FIQ, current EL, SP_EL0",
    "SError, current EL, SP_EL0",
    "synchronous, current EL, SP_ELx",
    "IRQ, current EL, SP_ELx",
    "FIQ, current EL, SP_ELx",
    "SError, current EL, SP_ELx",
    "synchronous, lower EL, AArch64",
    "IRQ, lower EL, AArch64",
    "FIQ, lower EL, AArch64",
    "SError, lower EL, AArch64",
    "synchronous, lower EL, AArch32",
    "IRQ, lower EL, AArch32",
    "FIQ, lower EL, AArch32",
    "SError, lower EL, AArch32",
];

/// Names of the exception classes (ESR_EL1.EC) a unikernel at EL1 can run into.
fn class_name(class: u64) -> &'static str {
    match class {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "WFI/WFE trapped",
        0x07 => "SIMD/FP access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "system register access trapped",
        0x20 => "instruction abort, lower EL",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort, lower EL",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2c => "floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "reserved",
    }
}

const DATA_ABORT: u64 = 0x25;

static HANDLING: AtomicBool = AtomicBool::new(false);

/// `fp` is the interrupted code's frame pointer (x29), for the backtrace.
extern "C" fn handle_exception(kind: u64, fp: u64) -> ! {
    if power::exiting() {
        power::after_failed_exit();
    }
    // A fault while reporting one (a broken console, say) must not loop. One core with
    // interrupts masked: a plain load and store suffice, and unlike a read-modify-write they
    // also work before the MMU is on, when exclusive accesses to device memory are undefined.
    if HANDLING.load(Ordering::Relaxed) {
        exit(EXCEPTION);
    }
    HANDLING.store(true, Ordering::Relaxed);
    let (esr, far, elr, spsr, sp): (u64, u64, u64, u64, u64);
    // SAFETY: reading the exception syndrome registers and SP_EL0 has no side effects.
    unsafe {
        asm!(
            "mrs {esr}, esr_el1",
            "mrs {far}, far_el1",
            "mrs {elr}, elr_el1",
            "mrs {spsr}, spsr_el1",
            "mrs {sp}, sp_el0",
            esr = out(reg) esr,
            far = out(reg) far,
            elr = out(reg) elr,
            spsr = out(reg) spsr,
            sp = out(reg) sp,
            options(nomem, nostack, preserves_flags),
        );
    }
    let class = (esr >> 26) & 0x3f;
    let kind_name = KINDS.get(kind as usize).copied().unwrap_or("unknown");
    let overflow = class == DATA_ABORT && crate::stack::guard_page().contains(&far);
    println!(
        "uniklink:exception class={class:#x} ({}) esr={esr:#x} far={far:#x} elr={elr:#x} sp={sp:#x} spsr={spsr:#x} vector={kind} ({kind_name}){}",
        class_name(class),
        if overflow { " stack-overflow" } else { "" },
    );
    crate::backtrace::print(Some(elr), fp);
    exit(EXCEPTION)
}
