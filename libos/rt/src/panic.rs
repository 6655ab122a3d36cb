use core::fmt::Display;
use core::panic::{Location, PanicInfo};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::exit::{PANIC, exit};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // A panic while formatting the first one's message must not recurse forever.
    if PANICKING.swap(true, Ordering::Relaxed) {
        exit(PANIC);
    }
    if !crate::heap::report_out_of_memory(info) {
        print_line(info.location(), &info.message());
    }
    exit(PANIC)
}

/// The runtime's one panic line.
pub(crate) fn print_line(location: Option<&Location<'_>>, message: &dyn Display) {
    match location {
        Some(location) => crate::println!("uniklink:panic at {location}: {message}"),
        None => crate::println!("uniklink:panic: {message}"),
    }
}
