//! The architecture-independent part of boot: everything between "the CPU is in its final
//! mode with a stack" and the app's `main`.

use core::ptr::write_volatile;

use unik_platform::clock::TscScale;
use unik_platform::cmdline::BootFlags;
use unik_platform::pvh::{MemoryRegion, RegionKind};

use crate::arch::serial::write_bytes;
use crate::exit::{SUCCESS, exit};
use crate::timeline::{self, Phase};
use crate::{arch, println, stack, weave};

pub(crate) const MAX_REGIONS: usize = 64;

/// The byte Firecracker's boot timer device takes as "the guest has booted".
const BOOT_TIMER_MAGIC: u8 = 123;

/// The guest's memory map, copied out of loader memory or the device tree.
pub(crate) struct Regions {
    regions: [MemoryRegion; MAX_REGIONS],
    len: usize,
}

impl Regions {
    pub(crate) const fn new() -> Regions {
        Regions {
            regions: [MemoryRegion {
                base: 0,
                size: 0,
                kind: RegionKind::Reserved,
            }; MAX_REGIONS],
            len: 0,
        }
    }

    /// Adds `region`; `false` when the table is full.
    pub(crate) fn push(&mut self, region: MemoryRegion) -> bool {
        let Some(slot) = self.regions.get_mut(self.len) else {
            return false;
        };
        *slot = region;
        self.len += 1;
        true
    }

    pub(crate) fn as_slice(&self) -> &[MemoryRegion] {
        &self.regions[..self.len]
    }
}

/// Runs once the architecture's boot is done: the component inits and the app
/// (`uniklink_start`). Inlined into the entry: a call of its own would be one more block of
/// code for an emulator to translate on the way to `main`.
#[inline(always)]
pub(crate) fn run() -> ! {
    timeline::stamp(Phase::Runtime);
    weave::start();
    exit(SUCCESS)
}

fn print_verbose() {
    for region in arch::memory_map().as_slice() {
        println!(
            "uniklink:verbose memmap {:#014x}-{:#014x} {:?}",
            region.base,
            region.end(),
            region.kind
        );
    }
    match arch::heap_spans() {
        Ok(spans) => {
            for span in spans.as_slice() {
                println!(
                    "uniklink:verbose heap {:#014x}-{:#014x}",
                    span.start, span.end
                );
            }
        }
        Err(error) => println!("uniklink:verbose heap: {error}"),
    }
    let stack = stack::range();
    println!(
        "uniklink:verbose stack {:#014x}-{:#014x} (guard page {:#014x})",
        stack.start,
        stack.end,
        stack::guard_page().start
    );
    match arch::stated_frequency() {
        Some((hz, source)) => println!("uniklink:verbose tsc {hz} Hz from {source}"),
        None => println!(
            "uniklink:verbose tsc frequency not stated; the clock measures it when the app \
             first reads it"
        ),
    }
    for line in weave::report().lines() {
        println!("uniklink:verbose {line}");
    }
}

/// After the inits: the boot timer, the verbose report and the ready marker (and the
/// timeline), as the command line asks, then the app's `main`. Everything here comes after
/// the stamp the ready marker reports, the command line's words included.
pub(crate) fn enter_main() {
    timeline::stamp(Phase::Main);
    ready_then_main();
}

/// What [`enter_main`] does after its stamp, out of line: an emulator translates a whole
/// block of code before running its first instruction, and this function's frame set-up
/// (registers, the verbose report's buffers) would otherwise be in the stamp's block and
/// counted before `main`.
#[inline(never)]
fn ready_then_main() {
    let boot_timer = weave::boot_timer();
    if boot_timer != 0 {
        // SAFETY: the glue object names this address only for a platform whose boot timer
        // device sits there (Firecracker's), identity-mapped like all of the first 4 GiB.
        unsafe { write_volatile(boot_timer as *mut u8, BOOT_TIMER_MAGIC) };
    }
    let flags = BootFlags::parse(crate::cmdline::command_line());
    if flags.verbose {
        print_verbose();
    }
    let scale = arch::stated_frequency().and_then(|(hz, _)| TscScale::from_hz(hz));
    let entry_to_main = timeline::ticks_to(Phase::Main);
    match scale {
        Some(scale) => {
            write_bytes(b"uniklink:ready entry_to_main_ns=");
            timeline::write_number(scale.ticks_to_ns(entry_to_main));
        }
        None => {
            write_bytes(b"uniklink:ready entry_to_main_ticks=");
            timeline::write_number(entry_to_main);
        }
    }
    write_bytes(b"\n");
    if flags.timeline {
        timeline::print(scale, weave::init_names());
    }
    weave::run_main();
}
