//! Differences between two size reports. Sections are matched by owner and demangled name
//! (without hashes), which stay stable across rebuilds where object and member names do not.

use std::collections::BTreeMap;

use serde::Serialize;

use super::SizeReport;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffRow {
    pub name: String,
    pub detail: String,
    pub old: u64,
    pub new: u64,
}

impl DiffRow {
    pub fn delta(&self) -> i128 {
        i128::from(self.new) - i128::from(self.old)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub old_total: u64,
    pub new_total: u64,
    /// Owners whose size changed, largest change first.
    pub owners: Vec<DiffRow>,
    /// Sections whose size changed, appeared (`old` 0) or went away (`new` 0), largest change
    /// first.
    pub sections: Vec<DiffRow>,
    pub remainder: Vec<DiffRow>,
    /// Components kept in one report and not in the other, as (name, old reason, new reason).
    pub components: Vec<(String, String, String)>,
}

fn changed(
    old: BTreeMap<(String, String), u64>,
    new: BTreeMap<(String, String), u64>,
) -> Vec<DiffRow> {
    let mut keys: Vec<&(String, String)> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut rows: Vec<DiffRow> = keys
        .into_iter()
        .map(|key| DiffRow {
            name: key.0.clone(),
            detail: key.1.clone(),
            old: old.get(key).copied().unwrap_or(0),
            new: new.get(key).copied().unwrap_or(0),
        })
        .filter(|r| r.old != r.new)
        .collect();
    rows.sort_by(|a, b| {
        b.delta()
            .abs()
            .cmp(&a.delta().abs())
            .then_with(|| a.name.cmp(&b.name))
    });
    rows
}

fn sections(r: &SizeReport) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for s in &r.sections {
        *out.entry((s.display_name(), s.owner.clone())).or_default() += s.size;
    }
    out
}

impl Diff {
    pub fn new(old: &SizeReport, new: &SizeReport) -> Diff {
        let owners = |r: &SizeReport| {
            r.owners
                .iter()
                .map(|o| ((o.owner.clone(), String::new()), o.size))
                .collect()
        };
        let remainder = |r: &SizeReport| {
            r.remainder
                .iter()
                .map(|o| ((o.what.clone(), String::new()), o.size))
                .collect()
        };
        let mut components = Vec::new();
        for c in &new.components {
            let before = old.components.iter().find(|o| o.name == c.name);
            match before {
                Some(o) if o.kept == c.kept => {}
                Some(o) => components.push((c.name.clone(), o.reason.clone(), c.reason.clone())),
                None => components.push((c.name.clone(), "absent".to_owned(), c.reason.clone())),
            }
        }
        for o in &old.components {
            if !new.components.iter().any(|c| c.name == o.name) {
                components.push((o.name.clone(), o.reason.clone(), "absent".to_owned()));
            }
        }
        Diff {
            old_total: old.loadable_size,
            new_total: new.loadable_size,
            owners: changed(owners(old), owners(new)),
            sections: changed(sections(old), sections(new)),
            remainder: changed(remainder(old), remainder(new)),
            components,
        }
    }

    pub fn delta(&self) -> i128 {
        i128::from(self.new_total) - i128::from(self.old_total)
    }
}
