//! The commons sub-phase: the common symbols resolution left undecided get space in one chunk
//! at the end of `.bss`, each aligned as its symbol asks (`st_value` of a common is its
//! alignment), in symbol order.

use uniklink_analyzer::resolve::{Definition, SymbolDb, SymbolId};

/// The commons' chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Commons {
    /// Each common and its offset in the chunk.
    pub offsets: Vec<(SymbolId, u64)>,
    pub size: u64,
    pub align: u64,
}

impl Commons {
    /// Places the commons of `db`; the error is the size of a common that does not fit in
    /// the address space.
    pub fn place(db: &SymbolDb<'_>) -> Result<Self, u64> {
        Self::place_sized(db.globals.iter_ids().filter_map(|(id, g)| match g.def {
            Definition::Common { object, index } => {
                let sym = &db.object(object).symbols[index];
                Some((id, sym.size, sym.value))
            }
            _ => None,
        }))
    }

    /// Places (symbol, size, requested alignment) in order.
    fn place_sized(commons: impl Iterator<Item = (SymbolId, u64, u64)>) -> Result<Self, u64> {
        let mut placed = Commons {
            align: 1,
            ..Commons::default()
        };
        for (id, size, align) in commons {
            let align = align.max(1).checked_next_power_of_two().ok_or(size)?;
            let offset = placed.size.checked_next_multiple_of(align).ok_or(size)?;
            placed.offsets.push((id, offset));
            placed.size = offset.checked_add(size).ok_or(size)?;
            placed.align = placed.align.max(align);
        }
        Ok(placed)
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commons_are_aligned_in_order_and_the_chunk_to_the_strictest() {
        let placed = Commons::place_sized(
            [
                (SymbolId(1), 4, 4),
                (SymbolId(2), 1, 0),
                (SymbolId(3), 16, 12),
                (SymbolId(4), 3, 1),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(
            placed.offsets,
            [
                (SymbolId(1), 0),
                (SymbolId(2), 4),
                (SymbolId(3), 16),
                (SymbolId(4), 32)
            ]
        );
        assert_eq!((placed.size, placed.align), (35, 16));
        assert!(Commons::place_sized(std::iter::empty()).unwrap().is_empty());
    }

    #[test]
    fn a_common_past_the_address_space_is_an_error() {
        let huge = [(SymbolId(1), 8, 8), (SymbolId(2), u64::MAX, 1)];
        assert_eq!(Commons::place_sized(huge.into_iter()), Err(u64::MAX));
    }
}
