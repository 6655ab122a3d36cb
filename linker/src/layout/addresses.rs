//! The addresses sub-phase: program headers counted, then each output section given its file
//! offset and address, segment by segment, and the TLS segment, segments and input section
//! addresses read off the result.

use object::elf;

use super::{ChunkKind, EHDR_SIZE, Layout, OutputSection, PHDR_SIZE, Rank, Segment, SegmentKind};
use crate::arch::TlsSegment;
use crate::error::{Error, Result};

impl Layout<'_> {
    /// Assigns offsets and addresses to the sized output sections.
    pub(super) fn assign_addresses(&mut self) -> Result<()> {
        let page = self.arch.page_size();
        let kinds = [
            SegmentKind::Headers,
            SegmentKind::Exec,
            SegmentKind::ReadOnly,
            SegmentKind::Writable,
        ];
        // A segment of empty sections only is not laid out, and so neither is a TLS section
        // in it: one decision for the headers counted here and the segments laid out below.
        let laid_out: Vec<SegmentKind> = kinds
            .into_iter()
            .filter(|&kind| {
                kind == SegmentKind::Headers
                    || self
                        .sections
                        .iter()
                        .any(|s| s.rank.segment() == kind && s.size > 0)
            })
            .collect();
        let loads = laid_out.len();
        let has_tls = self.sections.iter().any(|s| {
            matches!(s.rank, Rank::Tdata | Rank::Tbss) && laid_out.contains(&s.rank.segment())
        });
        // One PT_NOTE per note section: notes of different alignment cannot share one.
        let notes = self
            .sections
            .iter()
            .filter(|s| s.rank == Rank::Note && s.size > 0)
            .count();
        let has_eh_frame_hdr = self.sections.iter().any(|s| s.rank == Rank::EhFrameHdr);
        self.phnum = loads + 1 + usize::from(has_tls) + notes + usize::from(has_eh_frame_hdr);
        self.headers_size = EHDR_SIZE + PHDR_SIZE * self.phnum as u64;

        let mut offset = self.headers_size;
        let mut addr = self
            .base
            .checked_add(offset)
            .ok_or_else(|| Error::AddressOverflow {
                base: self.base,
                section: "the ELF headers".to_owned(),
                size: offset,
            })?;
        let mut tls: Option<(u64, u64, u64, u64)> = None;
        for kind in kinds {
            let members: Vec<usize> = (0..self.sections.len())
                .filter(|&i| self.sections[i].rank.segment() == kind)
                .collect();
            if !laid_out.contains(&kind) {
                for &i in &members {
                    self.sections[i].addr = addr;
                    self.sections[i].offset = offset;
                }
                continue;
            }
            let (seg_offset, seg_addr) = if kind == SegmentKind::Headers {
                (0, self.base)
            } else {
                addr = load_address(addr, offset, page).ok_or_else(|| Error::AddressOverflow {
                    base: self.base,
                    section: self.sections[members[0]].name_str(),
                    size: self.sections[members[0]].size,
                })?;
                (offset, addr)
            };
            let mut file_end = offset;
            let tbss_align = tls_bss_align(&self.sections);
            for &i in &members {
                let s = &mut self.sections[i];
                if s.rank == Rank::Tdata {
                    // The TLS block's start must be aligned for its strictest member, .tbss
                    // included, for the variant II offset computation.
                    s.align = s.align.max(tbss_align);
                }
                let unpadded = addr;
                let pad = addr.checked_next_multiple_of(s.align).ok_or_else(|| {
                    Error::AddressOverflow {
                        base: self.base,
                        section: s.name_str(),
                        size: s.size,
                    }
                })? - addr;
                addr += pad;
                if !s.is_nobits() {
                    offset += pad;
                }
                s.addr = addr;
                s.offset = offset;
                match s.rank {
                    Rank::Tdata => {
                        tls = Some((addr, offset, s.size, s.align));
                    }
                    Rank::Tbss => {
                        let (start, off, file, align) = tls.unwrap_or((addr, offset, 0, 1));
                        let end =
                            addr.checked_add(s.size)
                                .ok_or_else(|| Error::AddressOverflow {
                                    base: self.base,
                                    section: s.name_str(),
                                    size: s.size,
                                })?;
                        tls = Some((start, off, file, align.max(s.align)));
                        self.tls = Some(TlsSegment {
                            addr: start,
                            file_size: file,
                            mem_size: end - start,
                            align: align.max(s.align),
                        });
                        // .tbss occupies no address space in the image itself.
                        addr = unpadded;
                        continue;
                    }
                    _ => {}
                }
                addr = addr
                    .checked_add(s.size)
                    .ok_or_else(|| Error::AddressOverflow {
                        base: self.base,
                        section: s.name_str(),
                        size: s.size,
                    })?;
                if !s.is_nobits() {
                    offset += s.size;
                    file_end = offset;
                }
            }
            if let Some((start, _, file, align)) = tls
                && self.tls.is_none()
            {
                self.tls = Some(TlsSegment {
                    addr: start,
                    file_size: file,
                    mem_size: file,
                    align,
                });
            }
            let flags = match kind {
                SegmentKind::Headers | SegmentKind::ReadOnly => elf::PF_R,
                SegmentKind::Exec => elf::PF_R | elf::PF_X,
                SegmentKind::Writable => elf::PF_R | elf::PF_W,
            };
            self.segments.push(Segment {
                kind,
                offset: seg_offset,
                addr: seg_addr,
                file_size: file_end - seg_offset,
                mem_size: addr - seg_addr,
                flags,
            });
        }
        self.file_size = offset;

        for s in &self.sections {
            for c in &s.chunks {
                let at = s.addr + c.offset;
                match c.kind {
                    ChunkKind::Input(id) | ChunkKind::EhFrame(id) => {
                        self.section_addr[self.db.input_sections().id(id)] = Some(at);
                    }
                    ChunkKind::Got => self.got_addr = at,
                    ChunkKind::Strings(_)
                    | ChunkKind::EhFrameHdr(_)
                    | ChunkKind::Commons
                    | ChunkKind::Thunks(_)
                    | ChunkKind::PageTables(_) => {}
                }
            }
        }
        for s in &self.sections {
            for c in &s.chunks {
                if let ChunkKind::Strings(index) = c.kind {
                    for (sid, (i, _)) in &self.pieces {
                        if *i == index {
                            self.section_addr[self.db.input_sections().id(*sid)] =
                                Some(s.addr + c.offset);
                        }
                    }
                }
            }
        }
        if self.got_addr == 0 {
            self.got_addr = self
                .sections
                .iter()
                .find(|s| s.rank == Rank::Got)
                .map_or(0, |s| s.addr);
        }
        Ok(())
    }
}

/// Where a segment starts in memory after `addr`: on a fresh page, at the position within
/// the page of its file offset, so that the file stays dense.
fn load_address(addr: u64, offset: u64, page: u64) -> Option<u64> {
    addr.checked_next_multiple_of(page)?
        .checked_add(offset % page)
}

fn tls_bss_align(sections: &[OutputSection]) -> u64 {
    sections
        .iter()
        .filter(|s| s.rank == Rank::Tbss)
        .map(|s| s.align)
        .max()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_start_on_a_fresh_page_at_their_file_offsets_page_position() {
        assert_eq!(load_address(0x40_0123, 0x123, 0x1000), Some(0x40_1123));
        assert_eq!(load_address(0x40_1000, 0x2000, 0x1000), Some(0x40_1000));
        assert_eq!(load_address(u64::MAX - 2, 0, 0x1000), None);
    }

    #[test]
    fn the_tls_block_aligns_for_its_strictest_tbss() {
        let section = |rank, align| OutputSection {
            name: Vec::new(),
            rank,
            sh_type: rank.sh_type(),
            flags: rank.flags(),
            align,
            addr: 0,
            offset: 0,
            size: 8,
            chunks: Vec::new(),
        };
        let sections = [
            section(Rank::Tdata, 8),
            section(Rank::Tbss, 32),
            section(Rank::Bss, 64),
        ];
        assert_eq!(tls_bss_align(&sections), 32);
        assert_eq!(tls_bss_align(&sections[..1]), 1);
    }
}
