//! Copies kept input bytes to their output place and applies relocations through the
//! architecture's table. Chunks are disjoint slices of the image, so they are filled in
//! parallel.

use rayon::prelude::*;
use uniklink_analyzer::eh_frame::RecordKind;
use uniklink_analyzer::object::{Reloc, SectionId};

use uniklink_analyzer::id::Idx;

use crate::arch::{Applied, RelocValue};
use crate::eh_frame_hdr;
use crate::error::{Error, RelocFailure, Result};
use crate::image::virt;
use crate::layout::{Chunk, ChunkKind, Layout, OutputSection, Rank, Recorded, RelocIndex};

/// The largest image file built: PVH loads images below 4 GiB, and a size past it comes from
/// corrupt input, which must give an error rather than an allocation failure.
const MAX_IMAGE_SIZE: u64 = 1 << 32;

/// Refuses an image too large for any platform before anything is allocated or written.
pub fn check_size(layout: &Layout<'_>) -> Result<()> {
    if layout.file_size > MAX_IMAGE_SIZE {
        return Err(Error::ImageTooLarge {
            size: layout.file_size,
            max: MAX_IMAGE_SIZE,
        });
    }
    Ok(())
}

/// Builds the loaded part of the image in `image`, which holds `layout.file_size` zeroed bytes
/// (or more, left as they are); headers and gaps stay zero.
pub fn relocate(layout: &Layout<'_>, image: &mut [u8]) -> Result<()> {
    check_size(layout)?;
    let image = &mut image[..layout.file_size as usize];
    batches(layout, image)
        .into_par_iter()
        .try_for_each(|batch| batch.fill(layout))?;
    fill_eh_frame_hdr(layout, image)
}

/// Chunks per task: enough to amortise a task, few enough to balance the threads. A list of
/// tasks per chunk would cost as much memory as the chunks themselves (32 bytes each, 18 MB
/// for 400,000 sections) at the link's peak.
const BATCH: usize = 256;

/// Consecutive chunks of one output section and the bytes of the image they cover.
struct Batch<'l, 'i> {
    section: &'l OutputSection,
    chunks: &'l [Chunk],
    /// Offset in the section of `bytes[0]`.
    start: u64,
    bytes: &'i mut [u8],
}

impl Batch<'_, '_> {
    fn fill(self, layout: &Layout<'_>) -> Result<()> {
        for chunk in self.chunks.iter().filter(|c| c.size > 0) {
            let at = (chunk.offset - self.start) as usize;
            let buf = &mut self.bytes[at..at + chunk.size as usize];
            fill_chunk(layout, self.section.addr + chunk.offset, chunk, buf)?;
        }
        Ok(())
    }
}

/// The image split into batches in file order. Layout places a section's chunks one after the
/// other and sections apart, so each batch's bytes are its own.
fn batches<'l, 'i>(layout: &'l Layout<'_>, image: &'i mut [u8]) -> Vec<Batch<'l, 'i>> {
    let mut sections: Vec<&OutputSection> = layout
        .sections
        .iter()
        .filter(|s| !s.is_nobits() && !s.chunks.is_empty())
        .collect();
    sections.sort_by_key(|s| s.offset);
    let mut batches = Vec::new();
    let mut rest = image;
    let mut pos = 0u64;
    for section in sections {
        for chunks in section.chunks.chunks(BATCH) {
            let (first, last) = (&chunks[0], &chunks[chunks.len() - 1]);
            let (start, end) = (first.offset, last.offset + last.size);
            let (_, tail) = rest.split_at_mut((section.offset + start - pos) as usize);
            let (bytes, tail) = tail.split_at_mut((end - start) as usize);
            batches.push(Batch {
                section,
                chunks,
                start,
                bytes,
            });
            rest = tail;
            pos = section.offset + end;
        }
    }
    batches
}

/// The `.eh_frame_hdr` table, read off the relocated `.eh_frame`, when layout made one.
fn fill_eh_frame_hdr(layout: &Layout<'_>, image: &mut [u8]) -> Result<()> {
    let section = |rank| layout.sections.iter().find(|s| s.rank == rank);
    let (Some(hdr), Some(frame)) = (section(Rank::EhFrameHdr), section(Rank::EhFrame)) else {
        return Ok(());
    };
    // The header comes first in the read-only segment, so the two slices are disjoint.
    let (before, after) = image.split_at_mut(frame.offset as usize);
    let hdr_bytes = &mut before[hdr.offset as usize..(hdr.offset + hdr.size) as usize];
    let frame_bytes = &after[..frame.size as usize];
    eh_frame_hdr::fill(hdr_bytes, hdr.addr, frame_bytes, frame.addr)
}

fn fill_chunk(layout: &Layout<'_>, addr: u64, chunk: &Chunk, buf: &mut [u8]) -> Result<()> {
    let db = layout.db;
    match chunk.kind {
        ChunkKind::Input(id) => {
            let s = db.object(id.object).section(id.index);
            // A NOBITS input inside a PROGBITS output section stays zero-filled.
            if !s.is_nobits() {
                buf.copy_from_slice(s.data);
            }
            if layout.is_reversed(id) {
                let words: Vec<[u8; 8]> = buf
                    .chunks_exact(8)
                    .map(|w| w.try_into().expect("8-byte word"))
                    .collect();
                for (slot, word) in buf.chunks_exact_mut(8).zip(words.iter().rev()) {
                    slot.copy_from_slice(word);
                }
            }
            apply_relocs(layout, id, indexed(s.relocs()), addr, buf, |offset| {
                Some(layout.output_offset(id, offset))
            })
        }
        ChunkKind::EhFrame(id) => {
            let s = db.object(id.object).section(id.index);
            let frame = &layout.graph.eh_frames()[&id];
            let offsets = &layout.eh_offsets[&id];
            for (rec, out) in frame.records.iter().zip(offsets) {
                let Some(out) = *out else { continue };
                let (start, len) = (rec.start as usize, rec.len as usize);
                buf[out as usize..out as usize + len].copy_from_slice(&s.data[start..start + len]);
                if let RecordKind::Fde { cie } = rec.kind {
                    // Dropped FDEs move records, so the FDE's backward CIE pointer changes.
                    let cie_index = frame.records.partition_point(|r| r.start < cie);
                    let cie_out = offsets.get(cie_index).copied().flatten().ok_or_else(|| {
                        Error::Section {
                            object: db.object(id.object).name.clone(),
                            section: db.object(id.object).section_name(id.index),
                            reason: format!("FDE at {:#x} points at no CIE", rec.start),
                        }
                    })?;
                    let field = out + u64::from(rec.id_offset - rec.start);
                    let ptr = (field - cie_out) as u32;
                    buf[field as usize..field as usize + 4].copy_from_slice(&ptr.to_le_bytes());
                }
            }
            let map = |off: u64| {
                let i = frame.records.partition_point(|r| r.end() <= off);
                let rec = frame.records.get(i)?;
                offsets[i].map(|out| out + (off - rec.start()))
            };
            // In offset order, as assemblers write them; a copy to sort only when they are not
            // (a copy of 320,000 FDEs' relocations is 18 MB at the link's peak).
            if s.relocs().is_sorted_by_key(|r| r.offset) {
                apply_relocs(layout, id, indexed(s.relocs()), addr, buf, map)
            } else {
                let mut relocs: Vec<(RelocIndex, Reloc)> = indexed(s.relocs()).collect();
                relocs.sort_by_key(|(_, r)| r.offset);
                apply_relocs(layout, id, relocs.into_iter(), addr, buf, map)
            }
        }
        ChunkKind::Strings(i) => {
            buf.copy_from_slice(&layout.strings[i].data);
            Ok(())
        }
        ChunkKind::Got => {
            for (slot, entry) in layout.got.entries.iter_ids() {
                let v = layout.got_value(entry)?;
                let at = slot.index() * 8;
                buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            Ok(())
        }
        // Filled once every .eh_frame record is in place: see `fill_eh_frame_hdr`.
        ChunkKind::EhFrameHdr(_) | ChunkKind::Commons => Ok(()),
        ChunkKind::Thunks(index) => layout.write_thunks(index, addr, buf),
        ChunkKind::PageTables(_) => {
            virt::write_page_tables(layout, addr, buf);
            Ok(())
        }
    }
}

/// A section's relocations with their indices, by which layout recorded its decisions.
fn indexed(relocs: impl Iterator<Item = Reloc>) -> impl Iterator<Item = (RelocIndex, Reloc)> {
    relocs
        .enumerate()
        .map(|(i, r)| (RelocIndex::from_index(i), r))
}

/// Applies `relocs` of input section `id` as layout decided. `map` turns an input offset
/// into an output offset within `buf`, or `None` when that part of the section was dropped.
fn apply_relocs(
    layout: &Layout<'_>,
    id: SectionId,
    relocs: impl Iterator<Item = (RelocIndex, Reloc)>,
    addr: u64,
    buf: &mut [u8],
    map: impl Fn(u64) -> Option<u64>,
) -> Result<()> {
    let db = layout.db;
    let arch = layout.arch;
    let recorded = layout.got.of_section(id);
    let mut skip = false;
    for (index, r) in relocs {
        if std::mem::take(&mut skip) {
            continue;
        }
        let Some(out) = map(r.offset) else { continue };
        let mut target = layout.target(id.object, r.symbol, r.addend, (id, r.offset))?;
        let place = addr + out;
        if !layout.thunked.is_empty()
            && let Some(&thunk) = layout.thunked.get(&(id, index))
        {
            target.addr = thunk;
            target.addend = 0;
        }
        let decision = recorded.get(index);
        let value = RelocValue {
            r_type: r.r_type,
            symbol: target.addr,
            addend: target.addend,
            place,
            got: layout.got_addr,
            got_slot: match decision {
                Some(Recorded::Got(slot)) => Some(layout.got_slot_addr(slot)),
                Some(Recorded::Relax(_)) | None => None,
            },
            relaxation: match decision {
                Some(Recorded::Relax(relaxation)) => Some(relaxation),
                Some(Recorded::Got(_)) | None => None,
            },
            size: target.size,
            tp_offset: layout.tls.map(|t| arch.tp_offset(target.addr, &t)),
        };
        match arch.apply(&value, buf, out as usize) {
            Ok(Applied::Done) => {}
            Ok(Applied::SkipNext) => skip = true,
            Err(source) => {
                let o = db.object(id.object);
                return Err(Error::Reloc(Box::new(RelocFailure {
                    object: o.name.clone(),
                    section: o.section_name(id.index),
                    offset: r.offset,
                    place,
                    r_type: arch
                        .reloc_name(r.r_type)
                        .map_or_else(|| format!("type {}", r.r_type), str::to_owned),
                    symbol: db.symbol_name(id.object, r.symbol),
                    target: target.addr,
                    addend: target.addend,
                    source,
                })));
            }
        }
    }
    Ok(())
}
