//! Wall-clock time and randomness end to end on QEMU (TCG), x86_64 and aarch64: the rtc
//! component against the host's clock, the rng component from the CPU's generator and from
//! virtio-rng (which `run` attaches because the component is live), a machine with neither,
//! the getrandom crate and rand on top, and what weaving keeps of both.
//!
//! The guests are `fixtures/apps/clock` (prints `unix_time <s>.<ms>`), `fixtures/apps/random`
//! (prints 16 bytes from each of unik::random, getrandom 0.3 and 0.2, then a u64 from rand;
//! exit 3 with `<source> failed: <error>` when one fails) and `fixtures/weave/unused_rtc_rng`.

#[path = "common/apps.rs"]
mod apps;
#[path = "common/woven.rs"]
mod woven;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use apps::{ROOT, uniklink, write_manifest};
use woven::component;

const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(ROOT).join("target/rtc-rng-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds `manifest` for every architecture it lists; the build reports, by architecture.
fn build(manifest: &Path) -> Vec<(String, serde_json::Value)> {
    woven::built_reports(manifest, &[])
        .into_iter()
        .map(|report| (report["arch"].as_str().unwrap().to_owned(), report))
        .collect()
}

fn report_for<'a>(reports: &'a [(String, serde_json::Value)], arch: &str) -> &'a serde_json::Value {
    &reports
        .iter()
        .find(|(a, _)| a == arch)
        .unwrap_or_else(|| panic!("no {arch} report"))
        .1
}

/// (guest exit code, console) of `cargo uniklink run ARGS`, under TCG with a guard.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = uniklink()
        .args(["run", "--accel", "tcg", "--timeout", "120"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `run -m MANIFEST --arch ARCH` of what `build` made, with the devices its live components
/// drive; `extra` goes before `--` and `qemu` after it.
fn run_manifest(
    manifest: &Path,
    arch: &str,
    extra: &[&str],
    qemu: &[&str],
) -> (Option<i32>, String) {
    let out = apps::run_built(manifest, "120")
        .args(["--arch", arch])
        .args(extra)
        .arg("--")
        .args(qemu)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `run IMAGE`: the image alone, without the devices its build report names.
fn run_image(report: &serde_json::Value, qemu: &[&str]) -> (Option<i32>, String) {
    let mut args = vec![report["image"].as_str().unwrap(), "--"];
    args.extend(qemu);
    run(&args)
}

fn host_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn wall_clock_matches_the_host() {
    let dir = work_dir("clock");
    let manifest = dir.join("clock.yaml");
    write_manifest(&manifest, "rtc-clock", "clock", "x86_64, aarch64", "");
    build(&manifest);
    let boots = [
        ("x86_64", "qemu-microvm"),
        ("x86_64", "qemu-q35"),
        ("aarch64", "qemu-virt"),
    ];
    for (arch, platform) in boots {
        let before = host_seconds();
        let (code, console) = run_manifest(&manifest, arch, &["--platform", platform], &[]);
        let after = host_seconds();
        assert_eq!(code, Some(0), "{platform}:\n{console}");
        let guest: f64 = console
            .lines()
            .find_map(|line| line.strip_prefix("unix_time "))
            .unwrap_or_else(|| panic!("{platform}: no time in:\n{console}"))
            .parse()
            .unwrap();
        // The guest read its clock between `before` and `after`; the clocks count whole seconds.
        assert!(
            before - 2.0 <= guest && guest <= after + 2.0,
            "{platform}: guest {guest}, host {before}..{after}"
        );
    }
}

/// The hex and decimal values the random app printed, after its source names.
fn random_values(console: &str) -> Vec<String> {
    let sources = ["random ", "getrandom03 ", "getrandom02 ", "rand "];
    let values: Vec<String> = sources
        .iter()
        .filter_map(|source| {
            console
                .lines()
                .find_map(|line| line.strip_prefix(source))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(values.len(), sources.len(), "{console}");
    values
}

/// A manifest for the random app named `name`, so that tests running at once build images of
/// their own.
fn random_manifest(dir: &Path, name: &str) -> PathBuf {
    let manifest = dir.join("random.yaml");
    write_manifest(&manifest, name, "random", "x86_64, aarch64", "");
    manifest
}

const NO_SOURCE: &str = "uniklink:warning rng: no entropy source (no RDRAND, RDSEED or RNDR, no \
                         virtio-rng); random bytes fail";

/// Fails the test unless the guest said once that it has no entropy source and exited 3.
fn assert_no_source(what: &str, (code, console): (Option<i32>, String)) {
    assert_eq!(code, Some(3), "{what}:\n{console}");
    assert_eq!(
        console.lines().filter(|line| *line == NO_SOURCE).count(),
        1,
        "{what}:\n{console}"
    );
    assert!(
        console.lines().any(|line| line
            == "random failed: no entropy source (no RDRAND, RDSEED or RNDR, no virtio-rng)"),
        "{what}:\n{console}"
    );
}

/// Two boots give different bytes, from every API; rand and both getrandom versions build
/// and run on the component. x86_64's TCG CPU has RDRAND; the cortex-a57 has no RNDR, so
/// aarch64 draws from the virtio-rng device `run` attaches.
#[test]
fn two_boots_draw_different_bytes() {
    let dir = work_dir("random");
    let manifest = random_manifest(&dir, "rng-boots");
    let reports = build(&manifest);
    for arch in ARCHES {
        assert_eq!(
            report_for(&reports, arch)["weave"]["components"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "rng")
                .map(|c| (c["live"].clone(), c["devices"].clone())),
            Some((serde_json::json!(true), serde_json::json!(["virtio-rng"]))),
            "{arch}"
        );
        let boots: Vec<Vec<String>> = (0..2)
            .map(|_| {
                let (code, console) = run_manifest(&manifest, arch, &[], &[]);
                assert_eq!(code, Some(0), "{arch}:\n{console}");
                random_values(&console)
            })
            .collect();
        for (first, second) in boots[0].iter().zip(&boots[1]) {
            assert_ne!(first, second, "{arch}: the same bytes twice");
        }
        let all: std::collections::BTreeSet<&String> = boots.iter().flatten().collect();
        assert_eq!(all.len(), 8, "{arch}: a value repeats: {boots:?}");
    }
}

/// Without the CPU's generator the device serves (x86_64 microvm and q35); without the device
/// the CPU's serves (aarch64 `-cpu max` has RNDR); without either the call fails, saying so
/// once, on both architectures.
#[test]
fn each_source_alone_and_none() {
    let dir = work_dir("sources");
    let manifest = random_manifest(&dir, "rng-sources");
    let reports = build(&manifest);
    let hidden = ["-cpu", "max,-rdrand,-rdseed"];

    for platform in ["qemu-microvm", "qemu-q35"] {
        let (code, console) = run_manifest(&manifest, "x86_64", &["--platform", platform], &hidden);
        assert_eq!(code, Some(0), "virtio-rng on {platform}:\n{console}");
        random_values(&console);
    }
    let (code, console) = run_image(report_for(&reports, "x86_64"), &[]);
    assert_eq!(code, Some(0), "RDRAND alone:\n{console}");
    random_values(&console);
    let (code, console) = run_image(report_for(&reports, "aarch64"), &["-cpu", "max"]);
    assert_eq!(code, Some(0), "RNDR alone:\n{console}");
    random_values(&console);

    assert_no_source("x86_64", run_image(report_for(&reports, "x86_64"), &hidden));
    assert_no_source("aarch64", run_image(report_for(&reports, "aarch64"), &[]));
}

/// The image's symbols that belong to the rtc or rng component or to getrandom.
fn rtc_rng_symbols(report: &serde_json::Value) -> Vec<String> {
    woven::symbols(
        report,
        &["unik_rtc_", "unik_rng_", "__getrandom"],
        &["unik_rtc", "unik_rng", "getrandom"],
    )
}

#[test]
fn weaving_keeps_only_the_clock_and_randomness_an_app_reaches() {
    let dir = work_dir("weave");

    let hello = dir.join("hello.yaml");
    write_manifest(&hello, "rtc-rng-weave-hello", "hello", "x86_64", "");
    let hello = build(&hello);
    let hello = report_for(&hello, "x86_64");
    for name in ["rtc", "rng"] {
        assert_eq!(component(hello, name), None, "hello has {name}");
    }
    assert_eq!(rtc_rng_symbols(hello), Vec::<String>::new());

    // Both linked, neither asked for: none of it stays.
    let unused = dir.join("unused.yaml");
    std::fs::write(
        &unused,
        format!(
            "name: rtc-rng-weave-unused\napp:\n  package: unused_rtc_rng\n  path: {}\narch: [x86_64, aarch64]\n",
            Path::new(ROOT).join("fixtures/weave/unused_rtc_rng").display()
        ),
    )
    .unwrap();
    let unused = build(&unused);
    for arch in ARCHES {
        let report = report_for(&unused, arch);
        for name in ["rtc", "rng", "virtio"] {
            assert_eq!(
                component(report, name),
                Some((false, "unreachable".to_owned())),
                "{arch}: unused_rtc_rng keeps {name}"
            );
        }
        assert_eq!(rtc_rng_symbols(report), Vec::<String>::new(), "{arch}");
    }

    // The clock alone: rtc, nothing of rng.
    let clock = dir.join("clock.yaml");
    write_manifest(&clock, "rtc-rng-weave-clock", "clock", "x86_64", "");
    let clock = build(&clock);
    let clock = report_for(&clock, "x86_64");
    assert_eq!(component(clock, "rtc"), Some((true, "reached".to_owned())));
    assert_eq!(component(clock, "rng"), None);
    assert!(
        rtc_rng_symbols(clock).iter().all(|s| !s.contains("rng")),
        "{:?}",
        rtc_rng_symbols(clock)
    );
}
