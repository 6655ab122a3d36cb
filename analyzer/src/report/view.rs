//! Views of a [`SizeReport`]: rows grouped by owner, section or symbol, and why-chains. Every
//! view's rows plus the remainder add up to the loadable size.

use serde::Serialize;

use super::{SectionRow, SizeReport};

/// How `report` groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// By owner: the app, each component, `core`, `alloc`, C archives, ...
    Component,
    /// By Rust crate (`smoltcp`, `talc`, `core`), C archive, then as by owner.
    Crate,
    Section,
    Symbol,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Demangled, hashes dropped.
    pub name: String,
    /// The owner; for symbol rows, the owner and the section.
    pub detail: String,
    pub size: u64,
    /// Unknown for a single symbol of a section holding several, and for rows summing others.
    pub retained: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Largest first; past `top`, the rest are summed into one last row.
    pub rows: Vec<Row>,
    /// Rows `top` folded into the last one.
    pub folded: usize,
    pub rows_total: u64,
    pub remainder_total: u64,
    /// `rows_total + remainder_total`, the sum of PT_LOAD `p_memsz`.
    pub loadable_size: u64,
}

/// One step of a why-chain: a kept section, and the symbol it references the next step
/// through (`None` on the last step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhyStep {
    pub row: usize,
    pub via: Option<String>,
}

/// `{:#}` drops the hash suffix, so names compare across builds.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

impl SectionRow {
    /// Its largest symbol, demangled, or the section name when it defines none.
    pub fn display_name(&self) -> String {
        self.symbols
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| a.size.cmp(&b.size).then(ib.cmp(ia)))
            .map_or_else(|| self.section.clone(), |(_, s)| demangle(&s.name))
    }

    /// Each symbol's share of the section: `st_size` (up to the next symbol when the
    /// assembler recorded none), clipped at the next symbol and at the section's end so that
    /// shares never overlap; aliases with nothing left are left out. Then the bytes no symbol
    /// covers.
    pub fn symbol_shares(&self) -> (Vec<(String, u64)>, u64) {
        let mut shares = Vec::new();
        let mut covered = 0u64;
        let mut end_of_last = 0u64;
        for (i, s) in self.symbols.iter().enumerate() {
            let next = self
                .symbols
                .get(i + 1..)
                .and_then(|rest| rest.iter().map(|n| n.offset).find(|&o| o > s.offset))
                .unwrap_or(self.size);
            let start = s.offset.max(end_of_last).min(self.size);
            let size = if s.size == 0 {
                next.saturating_sub(s.offset)
            } else {
                s.size
            };
            let end = s.offset.saturating_add(size).min(next).min(self.size);
            let share = end.saturating_sub(start);
            end_of_last = end_of_last.max(end);
            covered += share;
            if share > 0 {
                shares.push((demangle(&s.name), share));
            }
        }
        (shares, self.size - covered.min(self.size))
    }
}

impl SizeReport {
    pub fn table(&self, by: By, top: Option<usize>) -> Table {
        let mut rows: Vec<Row> = match by {
            By::Component => self
                .owners
                .iter()
                .map(|o| Row {
                    name: o.owner.clone(),
                    detail: String::new(),
                    size: o.size,
                    retained: Some(o.retained),
                })
                .collect(),
            By::Crate => self
                .crates
                .iter()
                .map(|c| Row {
                    name: c.owner.clone(),
                    detail: self.owners_of_crate(&c.owner),
                    size: c.size,
                    retained: Some(c.retained),
                })
                .collect(),
            By::Section => self
                .sections
                .iter()
                .map(|s| Row {
                    name: s.display_name(),
                    detail: format!("{} {}", s.owner, s.section),
                    size: s.size,
                    retained: Some(s.retained),
                })
                .collect(),
            By::Symbol => self.sections.iter().flat_map(symbol_rows).collect(),
        };
        rows.sort_by(|a, b| {
            b.size
                .cmp(&a.size)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.detail.cmp(&b.detail))
        });
        let mut folded = 0;
        if let Some(top) = top
            && rows.len() > top
        {
            let rest = rows.split_off(top);
            folded = rest.len();
            rows.push(Row {
                name: format!("… {folded} more"),
                detail: String::new(),
                size: rest.iter().map(|r| r.size).sum(),
                retained: None,
            });
        }
        Table {
            rows_total: rows.iter().map(|r| r.size).sum(),
            rows,
            folded,
            remainder_total: self.unattributed(),
            loadable_size: self.loadable_size,
        }
    }

    /// The owners of a crate's sections, largest share first, unless the crate is its own
    /// owner (`core`, `app`): which component a dependency's bytes count for.
    fn owners_of_crate(&self, krate: &str) -> String {
        let mut owners: Vec<(&str, u64)> = Vec::new();
        for s in self
            .sections
            .iter()
            .filter(|s| s.krate.as_deref() == Some(krate))
        {
            match owners.iter_mut().find(|(o, _)| *o == s.owner) {
                Some((_, size)) => *size += s.size,
                None => owners.push((&s.owner, s.size)),
            }
        }
        if let [(only, _)] = owners[..]
            && only == krate
        {
            return String::new();
        }
        owners.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        owners
            .iter()
            .map(|(o, _)| *o)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The chain of references from a root to section row `row`, root first.
    pub fn why(&self, row: usize) -> Vec<WhyStep> {
        let mut steps = vec![WhyStep { row, via: None }];
        let mut at = row;
        while let Some((parent, via)) = &self.sections[at].parent {
            // Parents come from a breadth-first search and cannot loop; the guard keeps a
            // hand-edited report from hanging.
            if steps.len() > self.sections.len() {
                break;
            }
            steps.push(WhyStep {
                row: *parent,
                via: Some(via.clone()),
            });
            at = *parent;
        }
        steps.reverse();
        steps
    }

    /// Immediate dominators of `row`, nearest first: sections that every path from the roots
    /// to it passes through.
    pub fn dominators(&self, row: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = row;
        while let Some(d) = self.sections[at].idom {
            if out.len() > self.sections.len() {
                break;
            }
            out.push(d);
            at = d;
        }
        out
    }

    /// Rows whose immediate dominator is `row`.
    pub fn dominated_by(&self, row: usize) -> Vec<usize> {
        (0..self.sections.len())
            .filter(|&i| self.sections[i].idom == Some(row))
            .collect()
    }
}

fn symbol_rows(s: &SectionRow) -> Vec<Row> {
    let (shares, uncovered) = s.symbol_shares();
    let single = shares.len() == 1 && uncovered == 0;
    let mut rows: Vec<Row> = shares
        .into_iter()
        .map(|(name, size)| Row {
            name,
            detail: format!("{} {}", s.owner, s.section),
            size,
            retained: single.then_some(s.retained),
        })
        .collect();
    if uncovered > 0 || rows.is_empty() {
        rows.push(Row {
            name: s.section.clone(),
            detail: format!("{} {}", s.owner, s.object),
            size: uncovered,
            retained: rows.is_empty().then_some(s.retained),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::super::SymbolRow;
    use super::*;

    fn section(size: u64, symbols: &[(&str, u64, u64)]) -> SectionRow {
        SectionRow {
            object: "x.o".to_owned(),
            section: ".text.x".to_owned(),
            owner: "app".to_owned(),
            krate: Some("x".to_owned()),
            size,
            retained: size,
            idom: None,
            root: None,
            parent: None,
            symbols: symbols
                .iter()
                .map(|&(name, offset, size)| SymbolRow {
                    name: name.to_owned(),
                    offset,
                    size,
                })
                .collect(),
        }
    }

    #[test]
    fn symbol_shares_never_overlap_and_add_up() {
        let s = section(100, &[("a", 0, 40), ("alias", 0, 40), ("b", 30, 100)]);
        let (shares, uncovered) = s.symbol_shares();
        assert_eq!(shares, [("a".to_owned(), 30), ("b".to_owned(), 70)]);
        assert_eq!(uncovered, 0);
        let asm = section(32, &[("entry", 0, 0), ("loop", 12, 0)]);
        assert_eq!(
            asm.symbol_shares(),
            (vec![("entry".to_owned(), 12), ("loop".to_owned(), 20)], 0)
        );
        let s = section(64, &[("f", 8, 16)]);
        assert_eq!(s.symbol_shares(), (vec![("f".to_owned(), 16)], 48));
    }

    #[test]
    fn names_are_demangled_without_hashes() {
        let s = section(8, &[("_ZN5hello4main17h0123456789abcdefE", 0, 8)]);
        assert_eq!(s.display_name(), "hello::main");
        assert_eq!(section(8, &[]).display_name(), ".text.x");
    }
}
