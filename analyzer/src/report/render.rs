//! Text for terminals and Markdown for CI job summaries. Names go in code spans in Markdown so
//! that `<T as Trait>` is not taken for HTML.

use std::fmt::Write as _;

use super::find::{Found, Match};
use super::view::{By, Table, WhyStep};
use super::{Diff, DiffRow, SectionRow, SizeReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Markdown,
}

/// `70312` → `70,312`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `70,312 B`.
pub fn bytes(n: u64) -> String {
    format!("{} B", group_digits(n))
}

/// `+4,776 B`, `-12 B`, `0 B`.
pub fn signed_bytes(n: i128) -> String {
    let magnitude = group_digits(n.unsigned_abs().try_into().unwrap_or(u64::MAX));
    match n.signum() {
        1 => format!("+{magnitude} B"),
        -1 => format!("-{magnitude} B"),
        _ => "0 B".to_owned(),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn code(name: &str) -> String {
    format!("`{}`", name.replace('`', "'").replace('|', "\\|"))
}

const LEGEND: &str = "Shallow: bytes in the loaded image. Retained: those plus the bytes \
                      reachable only through it, which would leave the image with it.";

/// The line both formats end their size table with; CI summaries grep for it.
pub fn totals_line(t: &Table, format: Format) -> String {
    let total = match format {
        Format::Table => format!("total {}", bytes(t.loadable_size)),
        Format::Markdown => format!("**Total: {}**", bytes(t.loadable_size)),
    };
    format!(
        "{total} loaded (sum of PT_LOAD p_memsz) = {} in the rows above + {} not in any input section",
        bytes(t.rows_total),
        bytes(t.remainder_total)
    )
}

fn by_heading(by: By) -> &'static str {
    match by {
        By::Component => "Owner",
        By::Crate => "Crate",
        By::Section => "Section (largest symbol)",
        By::Symbol => "Symbol",
    }
}

/// The size table, the remainder, the components and the totals line.
pub fn report(r: &SizeReport, t: &Table, by: By, title: &str, format: Format) -> String {
    let mut out = String::new();
    let whole = t.loadable_size;
    let retained = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), bytes);
    let retained_pct = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| percent(v, whole));
    match format {
        Format::Markdown => {
            let _ = writeln!(out, "### {title}\n\n{LEGEND}\n");
            let _ = writeln!(
                out,
                "| Shallow | % | Retained | % | {} | Owner / section |",
                by_heading(by)
            );
            out.push_str("|--:|--:|--:|--:|---|---|\n");
            for row in &t.rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    bytes(row.size),
                    percent(row.size, whole),
                    retained(row.retained),
                    retained_pct(row.retained),
                    code(&row.name),
                    if row.detail.is_empty() {
                        String::new()
                    } else {
                        code(&row.detail)
                    }
                );
            }
            if !r.remainder.is_empty() {
                out.push_str("\n| Not in any input section | Size |\n|---|--:|\n");
                for rem in &r.remainder {
                    let _ = writeln!(out, "| {} | {} |", rem.what, bytes(rem.size));
                }
            }
            if !r.components.is_empty() {
                out.push_str("\n| Component | Kept | Reason | Size | Retained |\n");
                out.push_str("|---|---|---|--:|--:|\n");
                for c in &r.components {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} |",
                        code(&c.name),
                        if c.kept { "yes" } else { "no" },
                        reason(&c.reason, &c.chain),
                        bytes(c.size),
                        bytes(c.retained)
                    );
                }
            }
            let _ = writeln!(out, "\n{}", totals_line(t, format));
        }
        Format::Table => {
            let _ = writeln!(out, "{title}\n{LEGEND}\n");
            let _ = writeln!(
                out,
                "{:>14} {:>6} {:>14} {:>6}  {}",
                "Shallow",
                "%",
                "Retained",
                "%",
                by_heading(by)
            );
            for row in &t.rows {
                let _ = write!(
                    out,
                    "{:>14} {:>6} {:>14} {:>6}  {}",
                    bytes(row.size),
                    percent(row.size, whole),
                    retained(row.retained),
                    retained_pct(row.retained),
                    row.name
                );
                if !row.detail.is_empty() {
                    let _ = write!(out, "  [{}]", row.detail);
                }
                out.push('\n');
            }
            if !r.remainder.is_empty() {
                out.push_str("\nNot in any input section:\n");
                for rem in &r.remainder {
                    let _ = writeln!(out, "{:>14}  {}", bytes(rem.size), rem.what);
                }
            }
            if !r.components.is_empty() {
                out.push_str("\nComponents:\n");
                for c in &r.components {
                    let _ = writeln!(
                        out,
                        "  {:<8} {:<12} {:>12}  {}",
                        if c.kept { "kept" } else { "dropped" },
                        c.name,
                        if c.kept { bytes(c.size) } else { String::new() },
                        reason(&c.reason, &c.chain)
                    );
                }
            }
            if r.tls_bss > 0 {
                let _ = writeln!(
                    out,
                    "\n{} of .tbss per thread, not counted: no segment's memory size holds it",
                    bytes(r.tls_bss)
                );
            }
            let _ = writeln!(out, "\n{}", totals_line(t, format));
        }
    }
    out
}

fn reason(reason: &str, chain: &[String]) -> String {
    if chain.is_empty() {
        reason.to_owned()
    } else {
        let chain: Vec<String> = chain.iter().map(|c| pretty(c)).collect();
        format!("{reason}: {}", chain.join(" → "))
    }
}

/// References through section symbols are named after their section
/// (`.text._ZN4core3fmt5write17h…E`); the function's demangled name reads better.
pub fn pretty(name: &str) -> String {
    const PREFIXES: &[&str] = &[
        ".text.",
        ".rodata.",
        ".data.rel.ro.",
        ".data.",
        ".bss.",
        ".tdata.",
        ".tbss.",
    ];
    PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .and_then(|rest| rustc_demangle::try_demangle(rest).ok())
        .map_or_else(|| name.to_owned(), |d| format!("{d:#}"))
}

/// `/long/path/libhello.a(member.o)` → `libhello.a(member.o)`.
pub(super) fn short_object(object: &str) -> &str {
    let path_end = object.find('(').unwrap_or(object.len());
    let start = object[..path_end].rfind('/').map_or(0, |i| i + 1);
    &object[start..]
}

/// Why the section of row `steps.last()` is kept, from the root down.
pub fn why(r: &SizeReport, symbol: &str, steps: &[WhyStep]) -> String {
    let mut out = String::new();
    let Some(last) = steps.last() else {
        return out;
    };
    let target = &r.sections[last.row];
    let _ = writeln!(
        out,
        "`{symbol}` is kept: {} ({}) in {}, {}, retaining {}",
        target.section,
        owner_and_crate(target),
        short_object(&target.object),
        bytes(target.size),
        bytes(target.retained)
    );
    for (i, step) in steps.iter().enumerate() {
        let s = &r.sections[step.row];
        let root = match (&s.root, i) {
            (Some(root), 0) => format!(" is a root ({root})"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}:({}) `{}`{root}",
            short_object(&s.object),
            s.section,
            s.display_name()
        );
        if let Some(via) = &step.via {
            let _ = writeln!(out, "    references `{}`", pretty(via));
        }
    }
    let dominators = r.dominators(last.row);
    if let Some(&d) = dominators.first() {
        let _ = writeln!(
            out,
            "  every path from the roots passes through `{}` ({})",
            r.sections[d].display_name(),
            r.sections[d].section
        );
    }
    let dominated = r.dominated_by(last.row);
    if !dominated.is_empty() {
        let names: Vec<String> = dominated
            .iter()
            .map(|&d| format!("`{}`", r.sections[d].display_name()))
            .collect();
        let _ = writeln!(out, "  it alone keeps {} in the image", names.join(", "));
    }
    out
}

/// Sections listed when `why` finds several, before the rest are summed up.
const LISTED: usize = 20;

/// Chains listed into a crate or owner `why` found.
const ENTRIES: usize = 10;

/// `why` for a name that found several sections, or a whole crate or owner: what it found and
/// how to name one section. `found` finds more than one row.
pub fn found(r: &SizeReport, query: &str, found: &Found) -> String {
    let mut out = String::new();
    let rows = found.rows();
    let total: u64 = rows.iter().map(|&row| r.sections[row].size).sum();
    let listed: Vec<(usize, String)> = match found {
        Found::Sections(matches) => {
            let _ = writeln!(
                out,
                "`{query}` matches {} kept sections, {}:",
                rows.len(),
                bytes(total)
            );
            matches
                .iter()
                .map(|Match { row, name }| (*row, name.clone()))
                .collect()
        }
        Found::Group {
            name,
            by_crate,
            rows,
        } => {
            let (by, groups) = if *by_crate {
                ("crate", &r.crates)
            } else {
                ("component", &r.owners)
            };
            let retained = groups
                .iter()
                .find(|g| g.owner == *name)
                .map_or_else(String::new, |g| {
                    format!(", retaining {}", bytes(g.retained))
                });
            let _ = writeln!(
                out,
                "`{name}` (a row of report --by {by}): {} kept sections, {}{retained}:",
                rows.len(),
                bytes(total)
            );
            rows.iter()
                .map(|&row| (row, r.sections[row].display_name()))
                .collect()
        }
    };
    for (row, name) in listed.iter().take(LISTED) {
        let s = &r.sections[*row];
        let _ = writeln!(
            out,
            "{:>14}  {name}  [{}]  {}:({})",
            bytes(s.size),
            owner_and_crate(s),
            short_object(&s.object),
            s.section
        );
    }
    if listed.len() > LISTED {
        let rest = &listed[LISTED..];
        let _ = writeln!(
            out,
            "{:>14}  … {} more",
            bytes(rest.iter().map(|&(row, _)| r.sections[row].size).sum()),
            rest.len()
        );
    }
    if let Found::Group { rows, .. } = found {
        let mut entries = r.entries(rows);
        entries.sort_by(|&a, &b| {
            r.sections[b]
                .retained
                .cmp(&r.sections[a].retained)
                .then(a.cmp(&b))
        });
        let _ = writeln!(out, "\nChains into it from the roots ({}):", entries.len());
        for &entry in entries.iter().take(ENTRIES) {
            let _ = writeln!(out, "  {}", chain(r, &r.why(entry)));
        }
        if entries.len() > ENTRIES {
            let _ = writeln!(out, "  … {} more", entries.len() - ENTRIES);
        }
    }
    let _ = writeln!(
        out,
        "\nName one section to see the whole chain that keeps it: a longer path (`a::b::f`), \
         with generic arguments (`f::<T>`), or as listed, OBJECT:(SECTION)."
    );
    out
}

/// `component net, crate smoltcp`; just `core` when the crate is its own owner.
fn owner_and_crate(s: &SectionRow) -> String {
    match s.krate.as_deref() {
        Some(krate) if krate != s.owner => format!("{}, crate {krate}", s.owner),
        _ => s.owner.clone(),
    }
}

/// `entry: unik_rt::start::run → hello::main → talc::Talc::malloc`: a why-chain on one line.
fn chain(r: &SizeReport, steps: &[WhyStep]) -> String {
    let names: Vec<String> = steps
        .iter()
        .map(|step| r.sections[step.row].display_name())
        .collect();
    let root = steps
        .first()
        .and_then(|step| r.sections[step.row].root.as_deref())
        .unwrap_or("kept");
    format!("{root}: {}", names.join(" → "))
}

fn diff_rows(out: &mut String, heading: &str, rows: &[DiffRow], format: Format) {
    if rows.is_empty() {
        return;
    }
    match format {
        Format::Markdown => {
            let _ = writeln!(
                out,
                "\n| {heading} | Old | New | Change |\n|---|--:|--:|--:|"
            );
            for row in rows {
                let name = if row.detail.is_empty() {
                    code(&row.name)
                } else {
                    format!("{} ({})", code(&row.name), row.detail)
                };
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} |",
                    bytes(row.old),
                    bytes(row.new),
                    signed_bytes(row.delta())
                );
            }
        }
        Format::Table => {
            let _ = writeln!(out, "\n{heading}:");
            for row in rows {
                let _ = write!(
                    out,
                    "{:>14} {:>14} {:>14}  {}",
                    signed_bytes(row.delta()),
                    bytes(row.old),
                    bytes(row.new),
                    row.name
                );
                if !row.detail.is_empty() {
                    let _ = write!(out, "  [{}]", row.detail);
                }
                out.push('\n');
            }
        }
    }
}

pub fn diff(d: &Diff, old: &str, new: &str, top: Option<usize>, format: Format) -> String {
    let mut out = String::new();
    let total = format!(
        "{} → {} ({}, sum of PT_LOAD p_memsz)",
        bytes(d.old_total),
        bytes(d.new_total),
        signed_bytes(d.delta())
    );
    match format {
        Format::Markdown => {
            let _ = writeln!(out, "### Size change: {old} → {new}\n\n**Total: {total}**");
        }
        Format::Table => {
            let _ = writeln!(out, "{old} → {new}\ntotal {total}");
        }
    }
    let sections = match top {
        Some(top) if d.sections.len() > top => &d.sections[..top],
        _ => &d.sections,
    };
    diff_rows(&mut out, "Owner", &d.owners, format);
    diff_rows(&mut out, "Section (largest symbol)", sections, format);
    if sections.len() < d.sections.len() {
        let rest = &d.sections[sections.len()..];
        let sum: i128 = rest.iter().map(DiffRow::delta).sum();
        let _ = writeln!(
            out,
            "… {} more changed sections, {} together",
            rest.len(),
            signed_bytes(sum)
        );
    }
    diff_rows(&mut out, "Not in any input section", &d.remainder, format);
    for (name, was, now) in &d.components {
        let _ = writeln!(out, "component {name}: {was} → {now}");
    }
    if d.owners.is_empty() && d.sections.is_empty() && d.remainder.is_empty() {
        out.push_str("no size changes\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn woven() -> SizeReport {
        use super::super::{ComponentRow, OwnerRow, RemainderRow};
        let component = |name: &str, kept: bool, reason: &str, size: u64| ComponentRow {
            name: name.to_owned(),
            kept,
            reason: reason.to_owned(),
            chain: if reason == "reached" {
                vec![
                    "entry".to_owned(),
                    ".text._ZN3app4main17h0123456789abcdefE".to_owned(),
                ]
            } else {
                Vec::new()
            },
            size,
            retained: size,
        };
        SizeReport {
            loadable_size: 1000,
            sections: Vec::new(),
            remainder: vec![RemainderRow {
                what: "ELF and program headers".to_owned(),
                size: 232,
            }],
            owners: vec![OwnerRow {
                owner: "component net".to_owned(),
                size: 768,
                retained: 768,
            }],
            crates: Vec::new(),
            components: vec![
                component("fs", false, "not required", 0),
                component("net", true, "reached", 768),
                component("rng", false, "forbidden", 0),
                component("time", false, "unreachable", 0),
            ],
            tls_bss: 0,
        }
    }

    #[test]
    fn components_show_kept_and_dropped_with_reasons() {
        let r = woven();
        let t = r.table(By::Component, None);
        let text = report(&r, &t, By::Component, "t", Format::Table);
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        for line in [
            "dropped fs not required",
            "kept net 768 B reached: entry → app::main",
            "dropped rng forbidden",
            "dropped time unreachable",
            "total 1,000 B loaded (sum of PT_LOAD p_memsz) = 768 B in the rows above + 232 B not in any input section",
        ] {
            assert!(lines.iter().any(|l| l == line), "{line:?} not in:\n{text}");
        }
        let markdown = report(&r, &t, By::Component, "t", Format::Markdown);
        assert!(
            markdown.contains("| `fs` | no | not required | 0 B | 0 B |"),
            "{markdown}"
        );
        assert!(markdown.contains("| `net` | yes | reached: entry → app::main | 768 B | 768 B |"));
    }

    #[test]
    fn several_matches_are_listed_with_how_to_name_one() {
        let r = super::super::tests::image();
        let query = "float_to_decimal_common_exact";
        let text = found(&r, query, &r.find(&super::super::Query::new(query)));
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let object = "libhttpd.a(httpd-1a2b.httpd.3c4d-cgu.0.rcgu.o)";
        for line in [
            "`float_to_decimal_common_exact` matches 2 kept sections, 500 B:".to_owned(),
            format!(
                "300 B core::fmt::float::float_to_decimal_common_exact::<f64> [core] {object}:(.text.f64)"
            ),
            format!(
                "200 B core::fmt::float::float_to_decimal_common_exact::<f32> [core] {object}:(.text.f32)"
            ),
        ] {
            assert!(lines.contains(&line), "{line:?} not in:\n{text}");
        }
        assert!(text.contains("OBJECT:(SECTION)"), "{text}");
    }

    #[test]
    fn a_crate_is_listed_with_the_chains_into_it() {
        let r = super::super::tests::image();
        let text = found(&r, "smoltcp", &r.find(&super::super::Query::new("smoltcp")));
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        for line in [
            "`smoltcp` (a row of report --by crate): 2 kept sections, 500 B:",
            "400 B smoltcp::iface::Interface::poll [component net, crate smoltcp] \
             libhttpd.a(httpd-1a2b.httpd.3c4d-cgu.0.rcgu.o):(.text.poll)",
            "Chains into it from the roots (1):",
            "entry: httpd::main → smoltcp::iface::Interface::poll",
        ] {
            assert!(lines.iter().any(|l| l == line), "{line:?} not in:\n{text}");
        }
    }

    #[test]
    fn crate_rows_name_the_components_they_count_for() {
        let mut r = super::super::tests::image();
        r.crates = vec![
            super::super::OwnerRow {
                owner: "smoltcp".to_owned(),
                size: 500,
                retained: 500,
            },
            super::super::OwnerRow {
                owner: "core".to_owned(),
                size: 560,
                retained: 560,
            },
        ];
        let t = r.table(By::Crate, None);
        let rows: Vec<(&str, &str, u64)> = t
            .rows
            .iter()
            .map(|row| (row.name.as_str(), row.detail.as_str(), row.size))
            .collect();
        assert_eq!(rows, [("core", "", 560), ("smoltcp", "component net", 500)]);
        let text = report(&r, &t, By::Crate, "t", Format::Table);
        assert!(text.contains("Crate\n"), "{text}");
        assert!(text.contains("smoltcp  [component net]"), "{text}");
    }

    #[test]
    fn objects_are_named_by_file() {
        assert_eq!(
            short_object("/t/libhello.a(core-1.core.2-cgu.0.rcgu.o)"),
            "libhello.a(core-1.core.2-cgu.0.rcgu.o)"
        );
        assert_eq!(short_object("./graph.o"), "graph.o");
        assert_eq!(short_object("<uniklink:glue>"), "<uniklink:glue>");
    }

    #[test]
    fn section_names_read_as_their_function() {
        assert_eq!(
            pretty(".text._ZN7unik_rt5start3run17h0d2a843af133a2b4E"),
            "unik_rt::start::run"
        );
        assert_eq!(pretty(".text.main_entry"), ".text.main_entry");
        assert_eq!(pretty("memcpy"), "memcpy");
    }

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(70312), "70,312");
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(signed_bytes(4776), "+4,776 B");
        assert_eq!(signed_bytes(-12), "-12 B");
    }
}
