//! Splitting `.eh_frame` into CIE and FDE records so FDEs of dropped functions can be dropped.

/// What a record is; FDEs point at their CIE by input offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Cie,
    Fde {
        cie: u32,
    },
    /// A zero length word that ends the section (crtend.o supplies one).
    Terminator,
}

/// One record, by its offsets in the section: 32 bits, as a large program has hundreds of
/// thousands of records, kept until the output is written, and sections are checked to be
/// shorter than 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub start: u32,
    /// Bytes including the length field.
    pub len: u32,
    pub kind: RecordKind,
    /// Offset of the CIE-pointer or CIE-id field; `pc_begin` follows it.
    pub id_offset: u32,
}

impl Record {
    pub fn start(&self) -> u64 {
        u64::from(self.start)
    }

    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.len)
    }

    pub fn id_offset(&self) -> u64 {
        u64::from(self.id_offset)
    }
}

/// Splits section bytes into records. Errors describe the bad record's offset.
pub fn parse(data: &[u8]) -> Result<Vec<Record>, String> {
    if u32::try_from(data.len()).is_err() {
        return Err(format!("{:#x} bytes is more than 4 GiB", data.len()));
    }
    let mut records = Vec::new();
    // CIE offsets, ascending, to check FDE back-pointers.
    let mut cies = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let word = |at: usize| -> Result<u32, String> {
            data.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| format!("record at offset {at:#x} is truncated"))
        };
        let len32 = word(pos)?;
        if len32 == 0 {
            records.push(Record {
                start: pos as u32,
                len: 4,
                kind: RecordKind::Terminator,
                id_offset: pos as u32,
            });
            pos += 4;
            continue;
        }
        let (body_start, body_len) = if len32 == u32::MAX {
            let b = data
                .get(pos + 4..pos + 12)
                .ok_or_else(|| format!("record at offset {pos:#x} is truncated"))?;
            (pos + 12, u64::from_le_bytes(b.try_into().expect("8 bytes")))
        } else {
            (pos + 4, u64::from(len32))
        };
        if body_len < 4 {
            return Err(format!(
                "record at offset {pos:#x} with length {body_len:#x} is too short to hold its CIE id or CIE pointer"
            ));
        }
        let end = usize::try_from(body_len)
            .ok()
            .and_then(|l| body_start.checked_add(l))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                format!(
                    "record at offset {pos:#x} with length {body_len:#x} runs past the section end"
                )
            })?;
        let id = word(body_start)?;
        // Every offset below is inside `data`, so fits in 32 bits (checked above).
        let kind = if id == 0 {
            cies.push(pos as u32);
            RecordKind::Cie
        } else {
            let cie = (body_start as u32)
                .checked_sub(id)
                .filter(|cie| cies.binary_search(cie).is_ok())
                .ok_or_else(|| format!("FDE at offset {pos:#x} does not point at a CIE"))?;
            RecordKind::Fde { cie }
        };
        records.push(Record {
            start: pos as u32,
            len: (end - pos) as u32,
            kind,
            id_offset: body_start as u32,
        });
        pos = end;
    }
    // The records stay until the output is written: give back what doubling left spare.
    records.shrink_to_fit();
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cie() -> Vec<u8> {
        let mut v = 12u32.to_le_bytes().to_vec();
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&[1, b'z', b'R', 0, 1, 0x78, 0x10, 0]);
        v
    }

    #[test]
    fn splits_cie_fdes_and_terminator() {
        let mut data = cie();
        let fde_start = data.len();
        data.extend_from_slice(&20u32.to_le_bytes());
        data.extend_from_slice(&((fde_start + 4) as u32).to_le_bytes());
        data.extend_from_slice(&[0; 16]);
        data.extend_from_slice(&0u32.to_le_bytes());
        let records = parse(&data).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].kind, RecordKind::Cie);
        assert_eq!(records[1].kind, RecordKind::Fde { cie: 0 });
        assert_eq!(records[1].start, 16);
        assert_eq!(records[1].len, 24);
        assert_eq!(records[2].kind, RecordKind::Terminator);
    }

    #[test]
    fn fde_must_point_at_a_cie() {
        let mut data = cie();
        data.extend_from_slice(&20u32.to_le_bytes());
        // Points 4 bytes into the CIE.
        data.extend_from_slice(&16u32.to_le_bytes());
        data.extend_from_slice(&[0; 16]);
        let err = parse(&data).unwrap_err();
        assert_eq!(err, "FDE at offset 0x10 does not point at a CIE");
    }

    #[test]
    fn truncated_record_is_an_error() {
        let mut data = cie();
        data.extend_from_slice(&100u32.to_le_bytes());
        data.extend_from_slice(&[0; 8]);
        let err = parse(&data).unwrap_err();
        assert!(err.contains("offset 0x10"), "{err}");
    }

    /// A record of 1 to 3 bytes holds no id: the 4 bytes after its length belong to the next
    /// record (here a terminator), which a reader of its id would run into.
    #[test]
    fn a_record_too_short_for_its_id_is_an_error() {
        for len in 1u32..4 {
            let mut data = len.to_le_bytes().to_vec();
            data.extend_from_slice(&[0; 8]);
            let err = parse(&data).unwrap_err();
            assert!(err.contains("too short to hold its CIE id"), "{len}: {err}");
        }
    }
}
