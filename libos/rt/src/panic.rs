use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::exit::{PANIC, exit};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // A panic while formatting the first one's message must not recurse forever.
    if PANICKING.swap(true, Ordering::Relaxed) {
        exit(PANIC);
    }
    match info.location() {
        Some(location) => crate::println!("uniklink:panic at {location}: {}", info.message()),
        None => crate::println!("uniklink:panic: {}", info.message()),
    }
    exit(PANIC)
}
