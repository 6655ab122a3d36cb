//! Physical address arithmetic: which parts of RAM the heap may take.

use core::fmt;

use crate::pvh::{MemoryRegion, RegionKind};

pub const PAGE_SIZE: u64 = 4096;

/// A half-open physical address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    pub const EMPTY: Span = Span { start: 0, end: 0 };

    pub const fn new(start: u64, end: u64) -> Self {
        Span { start, end }
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The largest page-aligned span inside this one.
    pub fn page_aligned(&self) -> Span {
        let start = self
            .start
            .checked_next_multiple_of(PAGE_SIZE)
            .unwrap_or(u64::MAX);
        let end = self.end - self.end % PAGE_SIZE;
        Span {
            start,
            end: end.max(start),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    pub capacity: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} disjoint memory spans", self.capacity)
    }
}

/// A fixed-capacity set of disjoint, non-empty spans kept sorted by address; fixed
/// capacity because it is computed before any heap exists.
#[derive(Debug, Clone, Copy)]
pub struct SpanSet<const N: usize> {
    spans: [Span; N],
    len: usize,
}

impl<const N: usize> Default for SpanSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SpanSet<N> {
    pub const fn new() -> Self {
        SpanSet {
            spans: [Span::EMPTY; N],
            len: 0,
        }
    }

    pub fn as_slice(&self) -> &[Span] {
        &self.spans[..self.len]
    }

    pub fn total(&self) -> u64 {
        self.as_slice().iter().map(Span::len).sum()
    }

    /// Adds `span`; overlaps with spans already present are merged away so nothing is
    /// ever handed out twice.
    pub fn insert(&mut self, span: Span) -> Result<(), CapacityError> {
        if span.is_empty() {
            return Ok(());
        }
        // Memory maps list their regions in address order, so appending is the common case
        // and keeps building a set from one linear.
        if self
            .as_slice()
            .last()
            .is_none_or(|last| last.end <= span.start)
        {
            if self.len == N {
                return Err(CapacityError { capacity: N });
            }
            self.spans[self.len] = span;
            self.len += 1;
            return Ok(());
        }
        self.remove(span)?;
        if self.len == N {
            return Err(CapacityError { capacity: N });
        }
        let at = self.as_slice().partition_point(|s| s.start < span.start);
        self.spans.copy_within(at..self.len, at + 1);
        self.spans[at] = span;
        self.len += 1;
        Ok(())
    }

    /// Takes `hole` out of every span it overlaps, splitting a span when the hole is
    /// strictly inside it.
    pub fn remove(&mut self, hole: Span) -> Result<(), CapacityError> {
        if hole.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        while i < self.len {
            let span = self.spans[i];
            if hole.end <= span.start || span.end <= hole.start {
                i += 1;
                continue;
            }
            let below = Span::new(span.start, hole.start.max(span.start));
            let above = Span::new(hole.end.min(span.end), span.end);
            match (below.is_empty(), above.is_empty()) {
                (true, true) => {
                    self.spans.copy_within(i + 1..self.len, i);
                    self.len -= 1;
                }
                (false, true) => {
                    self.spans[i] = below;
                    i += 1;
                }
                (true, false) => {
                    self.spans[i] = above;
                    i += 1;
                }
                (false, false) => {
                    if self.len == N {
                        return Err(CapacityError { capacity: N });
                    }
                    self.spans.copy_within(i + 1..self.len, i + 2);
                    self.spans[i] = below;
                    self.spans[i + 1] = above;
                    self.len += 1;
                    i += 2;
                }
            }
        }
        Ok(())
    }
}

/// Most reserved ranges [`heap_spans`] takes out of RAM.
pub const MAX_HOLES: usize = 16;

/// The RAM a heap may claim: RAM regions below `limit` (the end of the identity mapping),
/// minus `reserved` (image, boot data, modules), shrunk to whole pages, dropping pieces
/// smaller than `min_len`. One pass over the regions and the reserved ranges, each sorted
/// once.
pub fn heap_spans<const N: usize>(
    regions: impl IntoIterator<Item = MemoryRegion>,
    reserved: &[Span],
    limit: u64,
    min_len: u64,
) -> Result<SpanSet<N>, CapacityError> {
    let mut ram = SpanSet::<N>::new();
    for region in regions {
        if region.kind == RegionKind::Ram {
            ram.insert(Span::new(region.base.min(limit), region.end().min(limit)))?;
        }
    }
    let mut sorted = [Span::EMPTY; MAX_HOLES];
    let holes = sorted.get_mut(..reserved.len()).ok_or(CapacityError {
        capacity: MAX_HOLES,
    })?;
    holes.copy_from_slice(reserved);
    holes.sort_unstable_by_key(|hole| hole.start);

    let mut usable = SpanSet::<N>::new();
    let mut keep = |piece: Span| {
        let aligned = piece.page_aligned();
        if aligned.len() >= min_len {
            usable.insert(aligned)?;
        }
        Ok(())
    };
    let mut first_hole = 0;
    for span in ram.as_slice() {
        // The spans are sorted too: a hole that ends before this one cannot touch a later one.
        while holes
            .get(first_hole)
            .is_some_and(|hole| hole.end <= span.start)
        {
            first_hole += 1;
        }
        let mut start = span.start;
        for hole in holes[first_hole..].iter().filter(|hole| !hole.is_empty()) {
            if hole.start >= span.end {
                break;
            }
            if hole.start > start {
                keep(Span::new(start, hole.start))?;
            }
            start = start.max(hole.end);
        }
        if start < span.end {
            keep(Span::new(start, span.end))?;
        }
    }
    Ok(usable)
}

/// The guest's RAM as a manifest's `memory:` states it: the RAM regions summed and rounded up
/// to whole MiB, since a PC's memory map leaves out the firmware's 384 KiB below 1 MiB (VGA
/// window and ROMs) that QEMU's `-m` counts.
pub fn guest_ram(regions: impl IntoIterator<Item = MemoryRegion>) -> u64 {
    const MIB: u64 = 1 << 20;
    regions
        .into_iter()
        .filter(|region| region.kind == RegionKind::Ram)
        .fold(0u64, |sum, region| sum.saturating_add(region.size))
        .checked_next_multiple_of(MIB)
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(base: u64, size: u64) -> MemoryRegion {
        MemoryRegion {
            base,
            size,
            kind: RegionKind::Ram,
        }
    }

    #[test]
    fn insert_keeps_order_and_merges_overlaps() {
        let mut set = SpanSet::<4>::new();
        set.insert(Span::new(0x5000, 0x6000)).unwrap();
        set.insert(Span::new(0x1000, 0x2000)).unwrap();
        set.insert(Span::new(0x1800, 0x3000)).unwrap();
        assert_eq!(
            set.as_slice(),
            [
                Span::new(0x1000, 0x1800),
                Span::new(0x1800, 0x3000),
                Span::new(0x5000, 0x6000)
            ]
        );
        assert_eq!(set.total(), 0x3000);
    }

    #[test]
    fn remove_trims_splits_and_deletes() {
        let mut set = SpanSet::<4>::new();
        set.insert(Span::new(0, 0x10000)).unwrap();
        set.insert(Span::new(0x20000, 0x30000)).unwrap();
        set.remove(Span::new(0x4000, 0x5000)).unwrap();
        set.remove(Span::new(0xf000, 0x21000)).unwrap();
        set.remove(Span::new(0x2f000, 0x40000)).unwrap();
        assert_eq!(
            set.as_slice(),
            [
                Span::new(0, 0x4000),
                Span::new(0x5000, 0xf000),
                Span::new(0x21000, 0x2f000)
            ]
        );
        set.remove(Span::new(0, 0x100000)).unwrap();
        assert!(set.as_slice().is_empty());
    }

    #[test]
    fn split_beyond_capacity_is_an_error() {
        let mut set = SpanSet::<1>::new();
        set.insert(Span::new(0, 0x10000)).unwrap();
        assert_eq!(
            set.remove(Span::new(0x1000, 0x2000)),
            Err(CapacityError { capacity: 1 })
        );
        assert_eq!(
            set.insert(Span::new(0x20000, 0x30000)),
            Err(CapacityError { capacity: 1 })
        );
    }

    #[test]
    fn page_alignment_shrinks_inward() {
        assert_eq!(
            Span::new(0x1001, 0x3fff).page_aligned(),
            Span::new(0x2000, 0x3000)
        );
        assert!(Span::new(0x1001, 0x1fff).page_aligned().is_empty());
    }

    #[test]
    fn heap_spans_of_a_qemu_like_map() {
        let regions = [
            ram(0, 0x9fc00),
            MemoryRegion {
                base: 0x9fc00,
                size: 0x400,
                kind: RegionKind::Reserved,
            },
            ram(0x10_0000, 0x7f0_0000),
            MemoryRegion {
                base: 0xfeff_c000,
                size: 0x4000,
                kind: RegionKind::Reserved,
            },
            ram(0x1_0000_0000, 0x1000_0000),
        ];
        let image_end = 0x13_2a18;
        let module = Span::new(0x40_0000, 0x40_8000);
        let spans = heap_spans::<8>(
            regions,
            &[Span::new(0, image_end), module],
            0x1_0000_0000,
            0x1000,
        )
        .unwrap();
        assert_eq!(
            spans.as_slice(),
            [
                Span::new(0x13_3000, 0x40_0000),
                Span::new(0x40_8000, 0x800_0000)
            ]
        );
    }

    #[test]
    fn heap_spans_drop_small_pieces_and_overlapping_ram_entries_count_once() {
        let regions = [
            ram(0x10_0000, 0x10_0000),
            ram(0x18_0000, 0x10_0000),
            ram(0x30_0000, 0x800),
        ];
        let spans = heap_spans::<4>(regions, &[], u64::MAX, 0x1000).unwrap();
        assert_eq!(
            spans.as_slice(),
            [
                Span::new(0x10_0000, 0x18_0000),
                Span::new(0x18_0000, 0x28_0000)
            ]
        );
        assert_eq!(spans.total(), 0x18_0000);
    }

    #[test]
    fn heap_spans_take_out_unsorted_and_overlapping_holes() {
        let regions = [ram(0x10_0000, 0x70_0000), ram(0, 0x8_0000)];
        let holes = [
            Span::new(0x50_0000, 0x60_0000),
            Span::new(0, 0x12_0000),
            Span::new(0x11_0000, 0x11_8000),
            Span::new(0x58_0000, 0x58_0000),
            Span::new(0x30_0000, 0x30_1000),
        ];
        let spans = heap_spans::<8>(regions, &holes, 1 << 32, 0x1000).unwrap();
        assert_eq!(
            spans.as_slice(),
            [
                Span::new(0x12_0000, 0x30_0000),
                Span::new(0x30_1000, 0x50_0000),
                Span::new(0x60_0000, 0x80_0000)
            ]
        );
        let too_many = [Span::EMPTY; MAX_HOLES + 1];
        assert_eq!(
            heap_spans::<8>(regions, &too_many, 1 << 32, 0x1000).err(),
            Some(CapacityError {
                capacity: MAX_HOLES
            })
        );
    }

    /// The memory map QEMU's PVH boot gives a 4 MiB microvm.
    fn pvh_4_mib() -> [MemoryRegion; 5] {
        [
            ram(0, 0x9_fc00),
            MemoryRegion {
                base: 0x9_fc00,
                size: 0x400,
                kind: RegionKind::Reserved,
            },
            MemoryRegion {
                base: 0xd_0000,
                size: 0x2_0000,
                kind: RegionKind::AcpiNvs,
            },
            MemoryRegion {
                base: 0xf_0000,
                size: 0x1_0000,
                kind: RegionKind::Reserved,
            },
            ram(0x10_0000, 0x30_0000),
        ]
    }

    #[test]
    fn guest_ram_is_what_the_manifest_gave() {
        assert_eq!(
            guest_ram(pvh_4_mib()),
            4 << 20,
            "the holes below 1 MiB count"
        );
        assert_eq!(guest_ram([ram(0x4000_0000, 4 << 20)]), 4 << 20);
        assert_eq!(
            guest_ram([ram(0, 0x8000_0000), ram(0x1_0000_0000, 0x8000_0000)]),
            4 << 30
        );
        assert_eq!(guest_ram([]), 0);
    }

    fn largest(spans: &[Span]) -> u64 {
        spans.iter().map(Span::len).max().unwrap_or(0)
    }

    /// `memory: 4MiB` on both machines, with the images a small release build links (`_end`
    /// 0x138000 on PVH, 0x40260000 on virt) and QEMU's 1 MiB device tree at the start of virt's
    /// RAM, of which 7.4 KiB are blocks and the rest free space.
    #[test]
    fn virt_gives_the_heap_a_largest_span_like_pvh() {
        let pvh =
            heap_spans::<8>(pvh_4_mib(), &[Span::new(0, 0x13_8000)], 1 << 32, 0x1_0000).unwrap();
        assert_eq!(pvh.as_slice(), [Span::new(0x13_8000, 0x40_0000)]);

        let virt_ram = [ram(0x4000_0000, 4 << 20)];
        let image = Span::new(0x4020_0000, 0x4026_0000);
        let whole_tree = Span::new(0x4000_0000, 0x4010_0000);
        let untrimmed = heap_spans::<8>(virt_ram, &[whole_tree, image], 1 << 32, 0x1_0000).unwrap();
        assert_eq!(largest(untrimmed.as_slice()), 0x1a_0000);

        let trimmed_tree = Span::new(0x4000_0000, 0x4000_1d9b);
        let virt = heap_spans::<8>(virt_ram, &[trimmed_tree, image], 1 << 32, 0x1_0000).unwrap();
        assert_eq!(
            virt.as_slice(),
            [
                Span::new(0x4000_2000, 0x4020_0000),
                Span::new(0x4026_0000, 0x4040_0000)
            ]
        );
        assert_eq!(largest(virt.as_slice()), (2 << 20) - 0x2000);
        assert!(
            largest(virt.as_slice()) >= largest(pvh.as_slice()) * 2 / 3,
            "{virt:x?} against {pvh:x?}"
        );
        assert!(virt.total() >= pvh.total());
    }
}
