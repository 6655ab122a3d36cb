//! How `why` finds kept sections by what `report` shows: a symbol as the symbol table has it,
//! its demangled path or any trailing part of that path, each with or without generic
//! arguments and with or without the hash; a section as `OBJECT:(SECTION)`; or a whole crate
//! or owner, by its row in `report --by crate` or `--by component`.

use super::render::short_object;
use super::view::demangle;
use super::{SectionRow, SizeReport};

/// A name given to `why`, in the form the report's names are compared in: demangled, hashes
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// As given, for symbol-table names and section names.
    raw: String,
    /// Demangled without hashes, legacy (`::h0123456789abcdef`) and v0 (`core[1a2b]`) alike.
    name: String,
}

/// A kept section and the name it matched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub row: usize,
    /// The demangled symbol, or the section, that matched.
    pub name: String,
}

/// What a [`Query`] found among the kept sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Sections defining a symbol of that name or named so; largest first.
    Sections(Vec<Match>),
    /// Every section of one row of `report --by crate` (`krate`) or `--by component`;
    /// largest first.
    Group {
        name: String,
        by_crate: bool,
        rows: Vec<usize>,
    },
}

impl Found {
    pub fn rows(&self) -> Vec<usize> {
        match self {
            Found::Sections(matches) => matches.iter().map(|m| m.row).collect(),
            Found::Group { rows, .. } => rows.clone(),
        }
    }
}

impl Query {
    pub fn new(text: &str) -> Query {
        let raw = text.trim().to_owned();
        let name = match rustc_demangle::try_demangle(&raw) {
            Ok(demangled) => format!("{demangled:#}"),
            Err(_) => without_hashes(&raw),
        };
        Query { raw, name }
    }

    /// The query as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether `name`, demangled without hashes, is the query, with or without its generic
    /// arguments.
    fn is(&self, name: &str) -> bool {
        name == self.name || without_generics(name) == self.name
    }

    /// Whether `name`, demangled without hashes, is the query or ends with it at a path
    /// boundary (`main` in `hello::main`, `Display>::fmt` in `<T as core::fmt::Display>::fmt`),
    /// with or without its generic arguments.
    pub fn matches(&self, name: &str) -> bool {
        self.is(name)
            || ends_with_part(name, &self.name)
            || ends_with_part(&without_generics(name), &self.name)
    }

    /// Whether `section` is the query or is named after a symbol the query matches
    /// (`.text.e`, `.text._ZN5hello4main17h0123456789abcdefE`): for sections that were not kept,
    /// of which the report keeps only the names.
    pub fn names_section(&self, section: &str) -> bool {
        section == self.raw
            || section
                .rsplit_once('.')
                .is_some_and(|(_, symbol)| self.matches(&demangle(symbol)))
    }

    /// The name a section matches exactly by, if any.
    fn exact(&self, s: &SectionRow) -> Option<String> {
        let placed = format!("{}:({})", short_object(&s.object), s.section);
        if s.section == self.raw
            || placed == self.raw
            || format!("{}:({})", s.object, s.section) == self.raw
        {
            return Some(s.section.clone());
        }
        s.symbols.iter().find_map(|sym| {
            let demangled = demangle(&sym.name);
            (sym.name == self.raw || self.is(&demangled)).then_some(demangled)
        })
    }

    /// The symbol of a section this query is a trailing part of, if any.
    fn suffix(&self, s: &SectionRow) -> Option<String> {
        s.symbols.iter().find_map(|sym| {
            let demangled = demangle(&sym.name);
            self.matches(&demangled).then_some(demangled)
        })
    }
}

impl SizeReport {
    /// The kept sections `query` names: those defining a symbol of exactly that name (or
    /// being that section), else every section of the crate or owner of that name, else those
    /// defining a symbol whose path ends with it. Empty when none does.
    pub fn find(&self, query: &Query) -> Found {
        let named = |by: &dyn Fn(&SectionRow) -> Option<String>| -> Vec<Match> {
            let mut found: Vec<Match> = self
                .sections
                .iter()
                .enumerate()
                .filter_map(|(row, s)| Some(Match { row, name: by(s)? }))
                .collect();
            found.sort_by(|a, b| {
                self.sections[b.row]
                    .size
                    .cmp(&self.sections[a.row].size)
                    .then_with(|| a.name.cmp(&b.name))
                    .then(a.row.cmp(&b.row))
            });
            found
        };
        let exact = named(&|s| query.exact(s));
        if !exact.is_empty() {
            return Found::Sections(exact);
        }
        for by_crate in [true, false] {
            let mut rows: Vec<usize> = (0..self.sections.len())
                .filter(|&i| {
                    let s = &self.sections[i];
                    let group = if by_crate {
                        s.krate.as_deref()
                    } else {
                        Some(s.owner.as_str())
                    };
                    group == Some(query.as_str())
                })
                .collect();
            if !rows.is_empty() {
                rows.sort_by(|&a, &b| {
                    self.sections[b]
                        .size
                        .cmp(&self.sections[a].size)
                        .then(a.cmp(&b))
                });
                return Found::Group {
                    name: query.as_str().to_owned(),
                    by_crate,
                    rows,
                };
            }
        }
        Found::Sections(named(&|s| query.suffix(s)))
    }

    /// The sections of `rows` that something outside them reached first, or that are roots:
    /// where the chains that keep a crate or owner enter it.
    pub fn entries(&self, rows: &[usize]) -> Vec<usize> {
        let mut inside = vec![false; self.sections.len()];
        for &row in rows {
            inside[row] = true;
        }
        rows.iter()
            .copied()
            .filter(|&row| match &self.sections[row].parent {
                Some((parent, _)) => !inside[*parent],
                None => true,
            })
            .collect()
    }
}

/// Whether `name` is `part` or ends with it after a path separator, or after the `<`, space,
/// `&`, `*`, `(` or `,` that can precede a path.
fn ends_with_part(name: &str, part: &str) -> bool {
    if part.is_empty() {
        return false;
    }
    match name.strip_suffix(part) {
        Some("") => true,
        Some(before) => before.ends_with("::") || before.ends_with(['<', ' ', '&', '*', '(', ',']),
        None => false,
    }
}

/// `name` without generic arguments: `f::<f64>` → `f`, `<Vec<u8> as Drop>::drop` →
/// `<Vec as Drop>::drop`. A `<` after a name or `::` opens generic arguments; one elsewhere
/// opens a qualified path (`<T as Trait>`), which stays.
fn without_generics(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut skipping = 0usize;
    // For each `<` inside skipped arguments or a kept qualified path: whether it was kept.
    let mut opened: Vec<bool> = Vec::new();
    let mut previous = '\0';
    for c in name.chars() {
        match c {
            '<' => {
                let generic = skipping > 0
                    || out.ends_with("::")
                    || previous.is_alphanumeric()
                    || previous == '_';
                if generic {
                    if skipping == 0 && out.ends_with("::") {
                        out.truncate(out.len() - 2);
                    }
                    skipping += 1;
                    opened.push(false);
                } else {
                    out.push(c);
                    opened.push(true);
                }
            }
            // `->` in `fn(u8) -> u8` closes nothing.
            '>' if previous != '-' => match opened.pop() {
                Some(false) => skipping -= 1,
                _ => out.push(c),
            },
            _ if skipping > 0 => {}
            _ => out.push(c),
        }
        previous = c;
    }
    out
}

/// `name` without a legacy hash (`hello::main::h0123456789abcdef` → `hello::main`) and v0
/// crate disambiguators (`core[4d7c2f1b]::fmt` → `core::fmt`), as `nm -C` and `{:}`
/// demangling print them.
fn without_hashes(name: &str) -> String {
    let is_hash = |h: &str| {
        h.len() == 17 && h.starts_with('h') && h[1..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    let name = match name.rsplit_once("::") {
        Some((path, last)) if is_hash(last) => path,
        _ => name,
    };
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let after_name = before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        match after[1..].find(']') {
            Some(close)
                if after_name
                    && close > 0
                    && after[1..=close].bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                rest = &after[close + 2..];
            }
            _ => {
                out.push('[');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{F64, image};
    use super::*;

    #[test]
    fn names_match_with_or_without_generic_arguments_and_hashes() {
        let r = image();
        let sections = |query: &str| match r.find(&Query::new(query)) {
            Found::Sections(found) => found.iter().map(|m| m.row).collect::<Vec<_>>(),
            group => panic!("{query:?} found {group:?}"),
        };
        let cases: &[(&str, &[usize])] = &[
            ("float_to_decimal_common_exact", &[0, 1]),
            ("float_to_decimal_common_exact::<f64>", &[0]),
            ("float::float_to_decimal_common_exact::<f32>", &[1]),
            ("core::fmt::float::float_to_decimal_common_exact", &[0, 1]),
            (
                "core::fmt::float::float_to_decimal_common_exact::<f64>",
                &[0],
            ),
            (
                "core[b544392e097d5653]::fmt::float::float_to_decimal_common_exact::<f64>",
                &[0],
            ),
            (F64, &[0]),
            ("main", &[2]),
            ("httpd::main", &[2]),
            ("httpd::main::h0123456789abcdef", &[2]),
            ("_ZN5httpd4main17h0123456789abcdefE", &[2]),
            ("Interface::poll", &[3]),
            ("ipv4::Packet::verify", &[4]),
            ("fmt", &[6]),
            ("Display>::fmt", &[6]),
            ("core::fmt::Display>::fmt", &[6]),
            ("<core::fmt::Arguments as core::fmt::Display>::fmt", &[6]),
            ("memcpy", &[5]),
            (".rodata.cst16", &[7]),
            ("graph.o:(.rodata.cst16)", &[7]),
            // A name two objects define: each is listed, and OBJECT:(SECTION) tells them apart.
            ("d", &[8, 9]),
            ("b.o:(.text.d)", &[9]),
            ("/t/a.o:(.text.d)", &[8]),
            // Only whole path segments match.
            ("mcpy", &[]),
            ("oll", &[]),
            ("main::h0123", &[]),
            ("nowhere", &[]),
        ];
        for (query, rows) in cases {
            assert_eq!(sections(query), *rows, "why {query:?}");
        }
    }

    #[test]
    fn crates_and_owners_find_all_their_sections() {
        let r = image();
        let cases = [
            ("smoltcp", true, vec![3, 4]),
            ("component net", false, vec![3, 4]),
            ("httpd", true, vec![2]),
            ("core", true, vec![0, 1, 6]),
            ("app", true, vec![7, 8, 9]),
        ];
        for (query, by_crate, rows) in cases {
            assert_eq!(
                r.find(&Query::new(query)),
                Found::Group {
                    name: query.to_owned(),
                    by_crate,
                    rows,
                },
                "why {query:?}"
            );
        }
        assert_eq!(r.entries(&[3, 4]), [3], "smoltcp is entered through poll");
        assert_eq!(r.entries(&[0, 1, 6]), [0, 1, 6]);
    }

    #[test]
    fn dropped_sections_match_by_the_symbol_they_are_named_after() {
        let query = Query::new("main");
        assert!(query.names_section(".text._ZN5httpd4main17h0123456789abcdefE"));
        assert!(query.names_section(".text.main"));
        assert!(!query.names_section(".text.domain"));
        assert!(Query::new(".text.e").names_section(".text.e"));
    }

    #[test]
    fn generic_arguments_go_and_qualified_paths_stay() {
        let cases = [
            (
                "core::fmt::float::float_to_decimal_common_exact::<f64>",
                "core::fmt::float::float_to_decimal_common_exact",
            ),
            (
                "<alloc::raw_vec::RawVec<u8>>::grow_one",
                "<alloc::raw_vec::RawVec>::grow_one",
            ),
            (
                "<alloc::vec::Vec<T> as core::ops::Drop>::drop",
                "<alloc::vec::Vec as core::ops::Drop>::drop",
            ),
            (
                "core::ptr::drop_in_place::<alloc::boxed::Box<dyn core::ops::Fn(u8) -> u8>>",
                "core::ptr::drop_in_place",
            ),
            ("<[u8]>::len", "<[u8]>::len"),
            (
                "<&T as core::fmt::Debug>::fmt",
                "<&T as core::fmt::Debug>::fmt",
            ),
        ];
        for (name, bare) in cases {
            assert_eq!(without_generics(name), bare, "{name}");
        }
    }

    #[test]
    fn hashes_go_and_slices_stay() {
        let cases = [
            ("hello::main::h0123456789abcdef", "hello::main"),
            ("core[b544392e097d5653]::fmt::write", "core::fmt::write"),
            (
                "<core[bb17]::fmt::Arguments as core[bb17]::fmt::Display>::fmt",
                "<core::fmt::Arguments as core::fmt::Display>::fmt",
            ),
            ("<[f64]>::sort", "<[f64]>::sort"),
            ("hello::main::hash", "hello::main::hash"),
        ];
        for (name, bare) in cases {
            assert_eq!(without_hashes(name), bare, "{name}");
        }
    }
}
