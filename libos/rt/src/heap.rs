//! The global allocator: talc over the RAM the memory map reports, minus the image.
//!
//! Boot only records which spans are free; talc claims them on its first allocation
//! (`Source::acquire`). An app that never allocates therefore never reaches talc, and the
//! linker drops the allocator along with this claiming code.

use core::alloc::Layout;

use spinning_top::{RawSpinlock, Spinlock};
use talc::TalcLock;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use unik_platform::memory::{Span, SpanSet};

pub(crate) const MAX_SPANS: usize = 16;
/// Pieces smaller than this are not worth talc's per-heap metadata.
pub(crate) const MIN_SPAN: u64 = 64 * 1024;

static FREE_RAM: Spinlock<Option<SpanSet<MAX_SPANS>>> = Spinlock::new(None);

/// Hands the heap its memory; called once at boot before the app runs.
pub(crate) fn offer(spans: SpanSet<MAX_SPANS>) {
    *FREE_RAM.lock() = Some(spans);
}

#[derive(Debug)]
struct BootMemory;

// SAFETY: `acquire` touches only `FREE_RAM`, never the global allocator.
unsafe impl Source for BootMemory {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, _layout: Layout) -> Result<(), ()> {
        let spans = FREE_RAM.lock().take().ok_or(())?;
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

#[global_allocator]
static ALLOCATOR: TalcLock<RawSpinlock, BootMemory> = TalcLock::new(BootMemory);
