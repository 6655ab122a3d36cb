//! The build report reader behind `report`, `why` and `diff` (`SavedReport`), then what those
//! commands compute from a report that passed its checks: tables by every grouping, a lookup
//! and its why-chain, the diff against itself, and their rendering.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use uniklink::report::{By, Diff, Query, SavedReport, render};

fuzz_target!(|data: &[u8]| {
    let Ok(report) = SavedReport::from_json(Path::new("/fuzz/report.json"), data) else {
        return;
    };
    let sizes = &report.sizes;
    for by in [By::Component, By::Crate, By::Section, By::Symbol] {
        let table = sizes.table(by, Some(20));
        std::hint::black_box(render::report(sizes, &table, by, "fuzz", render::Format::Markdown));
    }
    let query = Query::new(report.name.as_str());
    let found = sizes.find(&query);
    std::hint::black_box(render::found(sizes, query.as_str(), &found));
    for row in found.rows().into_iter().take(4) {
        let steps = sizes.why(row);
        std::hint::black_box(render::why(sizes, query.as_str(), &steps));
        std::hint::black_box(sizes.dominators(row));
        std::hint::black_box(sizes.dominated_by(row));
    }
    let diff = Diff::new(sizes, sizes);
    std::hint::black_box(render::diff(&diff, "old", "new", Some(20), render::Format::Table));
    std::hint::black_box(report.image_name());
});
