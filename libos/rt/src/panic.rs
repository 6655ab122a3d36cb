use core::fmt::Display;
use core::panic::{Location, PanicInfo};
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::exit::{PANIC, exit};

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Prints the panic line if the panic is an allocation failure; false if not.
type AllocationReport = fn(&PanicInfo<'_>) -> bool;

/// An [`AllocationReport`], null until the heap first refuses an allocation: the panic
/// handler reaches the heap's code only through it, so an image whose app never allocates
/// keeps none of the heap.
static ALLOCATION_REPORT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

pub(crate) fn set_allocation_report(report: AllocationReport) {
    // Opaque to the optimiser: knowing which function is the only one ever stored, LTO would
    // call it directly from the panic handler, and the heap would be linked into every image
    // that has allocator code anywhere.
    let report = core::hint::black_box(report as *mut ());
    ALLOCATION_REPORT.store(report, Ordering::Relaxed);
}

fn allocation_report() -> Option<AllocationReport> {
    let report = ALLOCATION_REPORT.load(Ordering::Relaxed);
    // SAFETY: only `set_allocation_report` stores a non-null value, an `AllocationReport`.
    (!report.is_null())
        .then(|| unsafe { core::mem::transmute::<*mut (), AllocationReport>(report) })
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // A panic while formatting the first one's message must not recurse forever.
    if PANICKING.swap(true, Ordering::Relaxed) {
        exit(PANIC);
    }
    if !allocation_report().is_some_and(|report| report(info)) {
        print_line(info.location(), &info.message());
    }
    crate::backtrace::print(None, crate::arch::frame_pointer());
    exit(PANIC)
}

/// The runtime's one panic line.
pub(crate) fn print_line(location: Option<&Location<'_>>, message: &dyn Display) {
    match location {
        Some(location) => crate::println!("uniklink:panic at {location}: {message}"),
        None => crate::println!("uniklink:panic: {message}"),
    }
}
