//! The `alloc` fixture app under the `memory: 4MiB` that `cargo uniklink new` writes, booted
//! from one manifest on each architecture: a 1 MiB block must fit in one piece, and asking
//! for more than the guest has must panic with the out-of-memory report.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::apps::{app_dir, assert_success, uniklink};
use crate::boot::Suite;

/// What `cargo uniklink new` gives a new app.
const TEMPLATE_MEMORY: &str = "4MiB";

/// What one boot printed and how it ended.
pub struct Boot {
    pub console: Vec<String>,
    pub guest_exit_code: Option<i64>,
}

/// Builds `alloc` for `suite`'s architecture once per test binary.
fn built(suite: &Suite) -> PathBuf {
    static MANIFEST: OnceLock<PathBuf> = OnceLock::new();
    MANIFEST
        .get_or_init(|| {
            let manifest = suite.dir().join("alloc-4mib.yaml");
            std::fs::create_dir_all(suite.dir()).unwrap();
            let text = format!(
                "name: {}-alloc-4mib\napp:\n  package: alloc\n  path: {}\narch: [{}]\nmemory: {TEMPLATE_MEMORY}\n",
                suite.prefix,
                app_dir("alloc").display(),
                suite.arches,
            );
            std::fs::write(&manifest, text).unwrap();
            assert_success(
                &suite.build(&manifest),
                &format!("building alloc for {}", suite.arch),
            );
            manifest
        })
        .clone()
}

/// Boots `alloc` asking for `bytes` in one block (`alloc.bytes` on the command line).
pub fn boot(suite: &Suite, bytes: u64) -> Boot {
    let manifest = built(suite);
    let out = uniklink()
        .args(["run", "--release", "--no-build"])
        .args(suite.arch_args)
        .args(["--accel", "tcg", "--json", "--timeout", "120", "--append"])
        .arg(format!("alloc.bytes={bytes}"))
        .arg("-m")
        .arg(&manifest)
        .output()
        .expect("cargo-uniklink run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run --json printed no JSON ({e}):\n{stderr}"));
    assert_eq!(
        report["timed_out"].as_bool(),
        Some(false),
        "{report}\n{stderr}"
    );
    // With --json the console goes to stderr, beside the runner's own `uniklink: ` lines.
    let console = stderr
        .lines()
        .filter(|line| !line.starts_with("uniklink: ") && !line.starts_with("qemu-system"))
        .map(str::to_owned)
        .collect();
    Boot {
        console,
        guest_exit_code: report["guest_exit_code"].as_i64(),
    }
}

/// The `cargo uniklink new` template's memory holds a 1 MiB block.
pub fn assert_one_mib_fits(suite: &Suite) {
    let boot = boot(suite, 1 << 20);
    assert_eq!(boot.guest_exit_code, Some(0), "{:#?}", boot.console);
    assert_eq!(boot.console.len(), 2, "{:#?}", boot.console);
    assert!(boot.console[0].starts_with("uniklink:ready entry_to_main_"));
    assert_eq!(boot.console[1], "allocated 1048576 bytes");
}

/// Asking for more than the guest has is a panic that says what was asked and what there is.
pub fn assert_too_much_is_reported(suite: &Suite) {
    let boot = boot(suite, 8 << 20);
    assert_eq!(boot.guest_exit_code, Some(101), "{:#?}", boot.console);
    let panic = boot
        .console
        .iter()
        .find(|line| line.starts_with("uniklink:panic at "))
        .unwrap_or_else(|| panic!("no panic line: {:#?}", boot.console));
    let report = panic
        .split_once(": out of memory: ")
        .map(|(_, report)| report)
        .unwrap_or_else(|| panic!("not an out-of-memory report: {panic}"));
    let (heap, rest) = report
        .strip_prefix("asked for 8388608 bytes (align 1); the heap has ")
        .and_then(|rest| rest.split_once(", largest free "))
        .unwrap_or_else(|| panic!("the request, then the heap: {panic}"));
    let (largest, rest) = rest
        .split_once("; ")
        .unwrap_or_else(|| panic!("the largest free block: {panic}"));
    assert_eq!(
        rest, "guest RAM 4 MiB (raise `memory:` in the manifest)",
        "{panic}"
    );
    let (total, spans) = heap
        .split_once(" in ")
        .unwrap_or_else(|| panic!("the heap's size and spans: {panic}"));
    let total = mib(total).unwrap_or_else(|| panic!("the heap's size: {panic}"));
    let largest = mib(largest).unwrap_or_else(|| panic!("the largest free block: {panic}"));
    assert!(spans == "1 span" || spans == "2 spans", "{panic}");
    // Most of the 4 MiB is heap, and most of the heap is one block; a randomized layout
    // (UNIKLINK_RANDOMIZE_LAYOUT, as CI runs the suite) moves the image up by as much as 1 MiB,
    // which the heap below it loses.
    let floor = match std::env::var_os("UNIKLINK_RANDOMIZE_LAYOUT") {
        Some(_) => 1.5,
        None => 2.5,
    };
    assert!((floor..4.0).contains(&total), "{panic}");
    assert!((1.9..=total).contains(&largest), "{panic}");
}

/// `<n> MiB` or `<n.n> MiB` as MiB.
fn mib(size: &str) -> Option<f64> {
    size.strip_suffix(" MiB")?.parse().ok()
}
