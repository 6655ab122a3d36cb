//! The global allocator: talc over the RAM the memory map reports, minus the image.
//!
//! Boot only keeps the memory map; talc works out the free spans and claims them on its first
//! allocation (`Source::acquire`). An app that never allocates therefore never reaches talc,
//! and the linker drops the allocator along with this claiming code.
//!
//! A refused allocation still returns null, so fallible callers (`try_reserve`) carry on; it
//! also records the request and the largest block left, for the panic line of the allocation
//! error handler that infallible callers reach. The panic handler finds that report through a
//! pointer the first refusal sets, so an app that never allocates links none of it either.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use spinning_top::{RawSpinlock, Spinlock};
use talc::TalcLock;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use unik_platform::memory::{Span, guest_ram};
use unik_platform::oom::{self, OutOfMemory};

use crate::arch;
use crate::exit::fatal;

pub(crate) const MAX_SPANS: usize = 16;
/// Pieces smaller than this are not worth talc's per-heap metadata.
pub(crate) const MIN_SPAN: u64 = 64 * 1024;

/// Whether talc has had the free memory: it asks again only when it runs out.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// What talc was given, for the out-of-memory report.
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);
static HEAP_SPANS: AtomicUsize = AtomicUsize::new(0);
static GUEST_RAM: AtomicU64 = AtomicU64::new(0);

/// The last allocation talc refused and the largest block it could still hand out then.
static REFUSED: Spinlock<Option<Refused>> = Spinlock::new(None);

#[derive(Debug, Clone, Copy)]
struct Refused {
    layout: Layout,
    largest_free: u64,
}

/// Prints the panic line with the out-of-memory report if the panic is the allocation error
/// handler's for the allocation talc refused last; false, printing nothing, for any other.
fn print_out_of_memory(info: &PanicInfo<'_>) -> bool {
    let Some(report) = Short::format(info.message()).and_then(|short| out_of_memory(&short)) else {
        return false;
    };
    crate::panic::print_line(info.location(), &report);
    true
}

fn out_of_memory(message: &Short) -> Option<OutOfMemory> {
    let size = oom::failed_allocation_size(message.as_str())?;
    let refused = (*REFUSED.try_lock()?)?;
    (refused.layout.size() == size).then(|| OutOfMemory {
        size,
        align: refused.layout.align(),
        heap_bytes: HEAP_BYTES.load(Ordering::Relaxed),
        heap_spans: HEAP_SPANS.load(Ordering::Relaxed),
        largest_free: refused.largest_free,
        guest_ram: GUEST_RAM.load(Ordering::Relaxed),
    })
}

/// A panic message formatted into a buffer just long enough for the allocation error
/// handler's, so that one can be recognised without a heap.
struct Short {
    bytes: [u8; 64],
    len: usize,
}

impl Short {
    /// `None` if the message is longer than the buffer.
    fn format(message: impl fmt::Display) -> Option<Short> {
        let mut short = Short {
            bytes: [0; 64],
            len: 0,
        };
        write!(short, "{message}").ok()?;
        Some(short)
    }

    fn as_str(&self) -> &str {
        // `write_str` appends whole `str`s only, so the bytes are UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Write for Short {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[derive(Debug)]
struct BootMemory;

// SAFETY: `acquire` reads only the boot's memory map, never the global allocator.
unsafe impl Source for BootMemory {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, _layout: Layout) -> Result<(), ()> {
        if CLAIMED.swap(true, Ordering::Relaxed) {
            return Err(());
        }
        let spans =
            arch::heap_spans().unwrap_or_else(|error| fatal(format_args!("memory map: {error}")));
        HEAP_BYTES.store(spans.total(), Ordering::Relaxed);
        HEAP_SPANS.store(spans.as_slice().len(), Ordering::Relaxed);
        let regions = arch::memory_map();
        GUEST_RAM.store(
            guest_ram(regions.as_slice().iter().copied()),
            Ordering::Relaxed,
        );
        // Talc keeps its metadata at the start of the first span it claims; the smallest
        // span takes it, so the largest stays whole for the largest allocations.
        let mut by_size = [Span::EMPTY; MAX_SPANS];
        let by_size = &mut by_size[..spans.as_slice().len()];
        by_size.copy_from_slice(spans.as_slice());
        by_size.sort_unstable_by_key(Span::len);
        let mut claimed = false;
        for span in by_size.iter() {
            let size = usize::try_from(span.len()).map_err(|_| ())?;
            // SAFETY: the span is RAM from the memory map, identity-mapped, outside the
            // image, stack, page tables and boot modules, and handed out only this once.
            claimed |= unsafe { talc.claim(span.start as *mut u8, size) }.is_some();
        }
        if claimed { Ok(()) } else { Err(()) }
    }
}

/// talc, noting what it refuses.
struct Heap(TalcLock<RawSpinlock, BootMemory>);

impl Heap {
    fn note(&self, ptr: *mut u8, layout: Layout) -> *mut u8 {
        if ptr.is_null() {
            let largest_free = self.largest_free();
            *REFUSED.lock() = Some(Refused {
                layout,
                largest_free,
            });
            crate::panic::set_allocation_report(print_out_of_memory);
        }
        ptr
    }

    /// The largest block talc can hand out right now, found by asking it for sizes in a
    /// binary search and freeing each block at once (talc reports no free-list sizes). Only
    /// a refusal pays for this.
    fn largest_free(&self) -> u64 {
        let mut talc = self.0.lock();
        let mut fits = 0;
        let mut too_big = HEAP_BYTES.load(Ordering::Relaxed).saturating_add(1);
        while too_big - fits > 1 {
            let size = fits + (too_big - fits) / 2;
            let Some(layout) = usize::try_from(size)
                .ok()
                .and_then(|size| Layout::from_size_align(size, 1).ok())
            else {
                too_big = size;
                continue;
            };
            // SAFETY: `size` is at least 1.
            match unsafe { talc.try_allocate(layout) } {
                Some(block) => {
                    // SAFETY: talc just handed out this block for `layout`.
                    unsafe { talc.deallocate(block.as_ptr(), layout) };
                    fits = size;
                }
                None => too_big = size,
            }
        }
        fits
    }
}

// SAFETY: every call goes to talc with the caller's arguments; `note` only records.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        self.note(unsafe { self.0.alloc(layout) }, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        self.note(unsafe { self.0.alloc_zeroed(layout) }, layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` rounded up to `layout.align()` fits isize.
        let requested = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: the caller's guarantees, passed on.
        self.note(unsafe { self.0.realloc(ptr, layout, new_size) }, requested)
    }
}

#[global_allocator]
static ALLOCATOR: Heap = Heap(TalcLock::new(BootMemory));
