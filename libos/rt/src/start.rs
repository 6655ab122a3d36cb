//! The architecture-independent part of boot: everything between "the CPU is in its final
//! mode with a stack" and the app's `main`.

use unik_platform::cmdline::BootFlags;
use unik_platform::memory::{SpanSet, guest_ram};
use unik_platform::pvh::MemoryRegion;

use crate::exit::{SUCCESS, exit, fatal};
use crate::heap::{self, MAX_SPANS};
use crate::time::{self, Instant};
use crate::{arch, println};

pub(crate) const MAX_REGIONS: usize = 64;

/// What the architecture's boot code learned from the loader, copied out of loader memory.
pub(crate) struct BootInfo {
    pub entry: Instant,
    pub flags: BootFlags,
    pub regions: [MemoryRegion; MAX_REGIONS],
    pub region_count: usize,
    pub heap: SpanSet<MAX_SPANS>,
}

pub(crate) fn run(boot: BootInfo) -> ! {
    if boot.flags.verbose {
        for region in &boot.regions[..boot.region_count] {
            println!(
                "uniklink:verbose memmap {:#014x}-{:#014x} {:?}",
                region.base,
                region.end(),
                region.kind
            );
        }
        for span in boot.heap.as_slice() {
            println!(
                "uniklink:verbose heap {:#014x}-{:#014x}",
                span.start, span.end
            );
        }
    }
    heap::offer(
        boot.heap,
        guest_ram(boot.regions[..boot.region_count].iter().copied()),
    );

    let (hz, source) = arch::tsc_frequency().unwrap_or_else(|| {
        fatal(format_args!(
            "no TSC frequency source (CPUID 0x15/0x16, hypervisor leaf, PIT)"
        ))
    });
    if time::set_frequency(hz).is_none() {
        fatal(format_args!("TSC frequency of 0 Hz from {source}"));
    }
    if boot.flags.verbose {
        println!("uniklink:verbose tsc {hz} Hz from {source}");
        for line in crate::weave::report().lines() {
            println!("uniklink:verbose {line}");
        }
    }

    let entry_to_main = boot.entry.elapsed();
    println!(
        "uniklink:ready entry_to_main_ns={}",
        entry_to_main.as_nanos()
    );
    crate::weave::start();
    exit(SUCCESS)
}
