//! Size reports, `why`, `diff` and budgets, checked against programs whose answers are known:
//! the C call graphs in `fixtures/report/` (see its README for `expect.json`), and the real
//! `hello` and `httpd` fixture apps, whose report rows must add up to their loadable size.

#[path = "common/apps.rs"]
mod apps;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use apps::{ROOT, app_dir, run_built, uniklink};
use goblin::elf::Elf;
use goblin::elf::program_header::PT_LOAD;
use serde::Deserialize;
use uniklink::report::{By, Query, SavedReport};
use uniklink_analyzer::report::{Found, SizeReport};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    entry: String,
    kept: Vec<String>,
    dropped: Vec<String>,
    idom: BTreeMap<String, String>,
    retained: BTreeMap<String, Vec<String>>,
    why: BTreeMap<String, Vec<String>>,
    grown: String,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(ROOT).join("fixtures/report").join(name)
}

fn expect(name: &str) -> Expect {
    let text = std::fs::read(fixture(name).join("expect.json")).expect("expect.json");
    serde_json::from_slice(&text).expect("expect.json parses")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// miette wraps long messages and draws a margin; this puts them back on one line.
fn unwrapped(text: &str) -> String {
    text.replace(['│', '×'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fresh directory for one test.
fn work_dir(test: &str) -> PathBuf {
    let dir = Path::new(ROOT).join("target/report-tests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The C compiler for an architecture of the manifest.
fn cc(arch: &str) -> &'static str {
    match arch {
        "x86_64" => "gcc",
        "aarch64" => "aarch64-linux-gnu-gcc",
        _ => panic!("no C compiler for {arch}"),
    }
}

/// Compiles `fixtures/report/<name>/<name>.c` into `dir/<name>.o`.
fn compile(name: &str, dir: &Path, defines: &[&str]) -> PathBuf {
    compile_for("x86_64", name, dir, defines)
}

fn compile_for(arch: &str, name: &str, dir: &Path, defines: &[&str]) -> PathBuf {
    let object = dir.join(format!("{name}.o"));
    let status = Command::new(cc(arch))
        .args([
            "-c",
            "-O1",
            "-ffunction-sections",
            "-fdata-sections",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-fno-pic",
            "-fno-stack-protector",
        ])
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg(fixture(name).join(format!("{name}.c")))
        .arg("-o")
        .arg(&object)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc failed on {name}.c");
    object
}

/// A manifest linking `dir/<name>.o` as a prebuilt app, with `extra` appended.
fn manifest(name: &str, dir: &Path, entry: &str, extra: &str) -> PathBuf {
    manifest_on("x86_64", name, dir, entry, extra)
}

fn manifest_on(arch: &str, name: &str, dir: &Path, entry: &str, extra: &str) -> PathBuf {
    let path = dir.join("uniklink.yaml");
    let text = format!(
        "name: {name}\napp:\n  objects: [{name}.o]\n  entry: {entry}\narch: [{arch}]\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn build(manifest: &Path) -> Output {
    uniklink()
        .args(["build", "-m"])
        .arg(manifest)
        .output()
        .expect("cargo-uniklink build runs")
}

fn build_ok(manifest: &Path) {
    let out = build(manifest);
    assert!(out.status.success(), "build failed:\n{}", stderr(&out));
}

/// Where `build` put the image and report of a prebuilt app in `dir`.
fn outputs(name: &str, dir: &Path) -> (PathBuf, PathBuf) {
    outputs_on("x86_64", name, dir)
}

fn outputs_on(arch: &str, name: &str, dir: &Path) -> (PathBuf, PathBuf) {
    // `build` without --release: the dev profile's directory.
    let out = dir.join("target/uniklink/debug");
    (
        out.join(format!("{name}-{arch}.elf")),
        out.join(format!("{name}-{arch}.json")),
    )
}

/// Section sizes of an object, by the symbol each `.text.<sym>`/`.bss.<sym>`/... section
/// is named after.
fn object_sizes(object: &Path) -> HashMap<String, u64> {
    let data = std::fs::read(object).unwrap();
    let elf = Elf::parse(&data).unwrap();
    elf.section_headers
        .iter()
        .filter_map(|sh| {
            let name = elf.shdr_strtab.get_at(sh.sh_name)?;
            let (_, symbol) = name.strip_prefix('.')?.split_once('.')?;
            (!name.starts_with(".rela")).then(|| (symbol.to_owned(), sh.sh_size))
        })
        .collect()
}

fn sum_of_load_memsz(image: &Path) -> u64 {
    let data = std::fs::read(image).unwrap();
    let elf = Elf::parse(&data).unwrap();
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| p.p_memsz)
        .sum()
}

/// Row index of the section defining `symbol`.
fn row(sizes: &SizeReport, symbol: &str) -> usize {
    match sizes.find(&Query::new(symbol)).rows()[..] {
        [row] => row,
        ref rows => panic!("`{symbol}` is defined by rows {rows:?}"),
    }
}

fn symbol_of(sizes: &SizeReport, row: usize) -> String {
    sizes.sections[row].display_name()
}

/// Every view's rows and the remainder add up to the image's PT_LOAD memory sizes.
fn assert_adds_up(sizes: &SizeReport, image: &Path) {
    let loadable = sum_of_load_memsz(image);
    assert_eq!(sizes.loadable_size, loadable, "sum of PT_LOAD p_memsz");
    assert_eq!(sizes.attributed() + sizes.unattributed(), loadable);
    for groups in [&sizes.owners, &sizes.crates] {
        assert_eq!(
            groups.iter().map(|o| o.size).sum::<u64>(),
            sizes.attributed()
        );
    }
    for by in [By::Component, By::Crate, By::Section, By::Symbol] {
        for top in [None, Some(3)] {
            let table = sizes.table(by, top);
            assert_eq!(
                table.rows_total + table.remainder_total,
                loadable,
                "{by:?} top {top:?}"
            );
        }
    }
}

/// Builds the graph fixture in `dir` and returns its report and object.
fn graph_build(dir: &Path, defines: &[&str], extra: &str) -> (SavedReport, PathBuf) {
    graph_build_on("x86_64", dir, defines, extra)
}

fn graph_build_on(arch: &str, dir: &Path, defines: &[&str], extra: &str) -> (SavedReport, PathBuf) {
    let expect = expect("graph");
    let object = compile_for(arch, "graph", dir, defines);
    build_ok(&manifest_on(arch, "graph", dir, &expect.entry, extra));
    let (_, report) = outputs_on(arch, "graph", dir);
    (SavedReport::load(&report).unwrap(), object)
}

#[test]
fn retained_sizes_and_dominators_match_the_known_graph() {
    known_graph("x86_64");
}

#[test]
fn retained_sizes_and_dominators_match_the_known_graph_on_aarch64() {
    known_graph("aarch64");
}

fn known_graph(arch: &str) {
    let expect = expect("graph");
    let dir = work_dir(&format!("dominators-{arch}"));
    let (saved, object) = graph_build_on(arch, &dir, &[], "");
    let sizes = &saved.sizes;
    let shallow = object_sizes(&object);

    for symbol in &expect.kept {
        let r = row(sizes, symbol);
        assert_eq!(
            sizes.sections[r].size, shallow[symbol],
            "shallow size of {symbol}"
        );
        assert_eq!(sizes.sections[r].owner, "app", "{symbol}");
    }
    for symbol in &expect.dropped {
        assert_eq!(
            sizes.find(&Query::new(symbol)),
            Found::Sections(Vec::new()),
            "{symbol} is dropped"
        );
        assert!(
            saved
                .dropped_sections
                .iter()
                .any(|s| s.section == format!(".text.{symbol}")),
            "{symbol} is listed as dropped"
        );
    }
    for (symbol, dominator) in &expect.idom {
        let idom = sizes.sections[row(sizes, symbol)].idom.expect("an idom");
        assert_eq!(&symbol_of(sizes, idom), dominator, "idom({symbol})");
    }
    assert_eq!(
        sizes.sections[row(sizes, &expect.entry)].idom,
        None,
        "the entry is dominated by the roots only"
    );
    for (symbol, members) in &expect.retained {
        let sum: u64 = members.iter().map(|m| shallow[m]).sum();
        assert_eq!(
            sizes.sections[row(sizes, symbol)].retained,
            sum,
            "retained({symbol}) = {members:?}"
        );
    }
    let app = sizes.owners.iter().find(|o| o.owner == "app").unwrap();
    let all: u64 = expect.kept.iter().map(|k| shallow[k]).sum();
    assert_eq!((app.size, app.retained), (all, all));
    assert!(sizes.components.is_empty(), "no weaving, no components");
    assert_adds_up(sizes, &outputs_on(arch, "graph", &dir).0);
}

#[test]
fn why_follows_the_shortest_chain_from_the_entry() {
    let expect = expect("graph");
    let dir = work_dir("why");
    let (saved, _) = graph_build(&dir, &[], "");
    let sizes = &saved.sizes;
    for (symbol, chain) in &expect.why {
        let steps = sizes.why(row(sizes, symbol));
        let names: Vec<String> = steps.iter().map(|s| symbol_of(sizes, s.row)).collect();
        assert_eq!(&names, chain, "why {symbol}");
        let vias: Vec<Option<&str>> = steps.iter().map(|s| s.via.as_deref()).collect();
        let expected: Vec<Option<&str>> = chain[1..]
            .iter()
            .map(|s| Some(s.as_str()))
            .chain([None])
            .collect();
        assert_eq!(vias, expected, "each step references the next");
        assert_eq!(sizes.sections[steps[0].row].root.as_deref(), Some("entry"));
    }

    let (_, report) = outputs("graph", &dir);
    let out = uniklink()
        .args(["why", "d", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
    };
    assert!(at("(.text.main_entry) `main_entry` is a root (entry)") < at("references `b`"));
    assert!(at("references `b`") < at("(.text.b) `b`"));
    assert!(at("(.text.b) `b`") < at("references `d`"));
    assert!(at("references `d`") < at("(.text.d) `d`"));
    assert!(lines[0].starts_with("`d` is kept: .text.d (app)"), "{text}");
    assert!(
        text.contains("every path from the roots passes through `b`"),
        "{text}"
    );

    let manifest = dir.join("uniklink.yaml");
    let out = uniklink()
        .args(["why", "e", "-m"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = unwrapped(&stderr(&out));
    assert!(
        message.starts_with("`e` is not in graph-x86_64.elf: nothing kept references")
            && message.contains("graph.o:(.text.e), so it was garbage-collected"),
        "{message}"
    );
    let out = uniklink()
        .args(["why", "nowhere", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(unwrapped(&stderr(&out)).contains("no kept section defines it"));
}

#[test]
fn diff_shows_the_function_that_grew() {
    let expect = expect("graph");
    let old_dir = work_dir("diff-old");
    let new_dir = work_dir("diff-new");
    let (old, old_object) = graph_build(&old_dir, &[], "");
    let (new, new_object) = graph_build(&new_dir, &["GROW"], "");
    let (old_size, new_size) = (
        object_sizes(&old_object)[&expect.grown],
        object_sizes(&new_object)[&expect.grown],
    );
    assert!(new_size > old_size, "GROW makes {} larger", expect.grown);

    let out = uniklink()
        .args(["diff", "--format", "json"])
        .arg(outputs("graph", &old_dir).1)
        .arg(outputs("graph", &new_dir).1)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sections = diff["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 1, "only {} changed: {diff:#}", expect.grown);
    assert_eq!(sections[0]["name"], expect.grown.as_str());
    assert_eq!(sections[0]["old"], old_size);
    assert_eq!(sections[0]["new"], new_size);
    assert_eq!(diff["owners"][0]["name"], "app");
    assert_eq!(
        diff["owners"][0]["new"].as_u64().unwrap() - diff["owners"][0]["old"].as_u64().unwrap(),
        new_size - old_size
    );
    assert_eq!(diff["old_total"], old.sizes.loadable_size);
    assert_eq!(diff["new_total"], new.sizes.loadable_size);

    let out = uniklink()
        .args(["diff", "--format", "markdown"])
        .arg(outputs("graph", &old_dir).1)
        .arg(outputs("graph", &new_dir).1)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "| `{}` (app) | {old_size} B | {new_size} B | +{} B |",
            expect.grown,
            new_size - old_size
        )),
        "{text}"
    );
}

#[test]
fn image_size_budget_fails_the_build_and_keeps_the_outputs() {
    let expect = expect("graph");
    let dir = work_dir("budget");
    compile("graph", &dir, &[]);
    let manifest = manifest(
        "graph",
        &dir,
        &expect.entry,
        // This is a dev build, and budgets gate release images unless told otherwise.
        "budgets:\n  image_size: 1KiB\n  profile: any\n",
    );
    let out = build(&manifest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (image, report) = outputs("graph", &dir);
    let size = std::fs::metadata(&image).unwrap().len();
    assert!(size > 1024);
    let message = format!(
        "image size budget exceeded: graph-x86_64.elf is {} B, budget 1 KiB (1,024 B), over by {} B",
        uniklink_analyzer::report::render::group_digits(size),
        uniklink_analyzer::report::render::group_digits(size - 1024)
    );
    assert!(
        unwrapped(&stderr(&out)).contains(&message),
        "{message}\nnot in:\n{}",
        stderr(&out)
    );
    assert!(report.is_file(), "the report stays for `report` to explain");

    let roomy = self::manifest(
        "graph",
        &dir,
        &expect.entry,
        "budgets:\n  image_size: 1MiB\n",
    );
    build_ok(&roomy);
    let unlimited = self::manifest("graph", &dir, &expect.entry, "");
    build_ok(&unlimited);

    // The same budget gating the release profile (the default) lets this dev build through,
    // and says so.
    let release_only = self::manifest(
        "graph",
        &dir,
        &expect.entry,
        "budgets:\n  image_size: 1KiB\n",
    );
    let out = build(&release_only);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        unwrapped(&stderr(&out))
            .contains("budgets gate the `release` profile; this `dev` image is not checked"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn markdown_report_states_the_totals() {
    let dir = work_dir("markdown");
    let (saved, _) = graph_build(&dir, &[], "");
    let (image, _) = outputs("graph", &dir);
    let loadable = sum_of_load_memsz(&image);
    for by in ["component", "crate", "section", "symbol"] {
        let out = uniklink()
            .args(["report", "--format", "markdown", "--by", by, "-m"])
            .arg(dir.join("uniklink.yaml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let totals = format!(
            "**Total: {loadable} B** loaded (sum of PT_LOAD p_memsz) = {} B in the rows above + {} B not in any input section",
            saved.sizes.attributed(),
            saved.sizes.unattributed()
        );
        assert!(text.contains(&totals), "{totals}\nnot in:\n{text}");
        assert!(text.contains("| ELF and program headers |"), "{text}");
    }
    let out = uniklink()
        .args([
            "report", "--format", "json", "--by", "section", "--top", "2",
        ])
        .arg(outputs("graph", &dir).1)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["rows"].as_array().unwrap().len(),
        3,
        "two rows and the rest"
    );
    assert_eq!(
        json["rows_total"].as_u64().unwrap() + json["remainder_total"].as_u64().unwrap(),
        loadable
    );
}

/// Writes a manifest for the `hello` fixture app named `hello-report`, with `extra` appended;
/// every such manifest names the same image.
fn hello_manifest(file: &str, extra: &str) -> PathBuf {
    let path = Path::new(ROOT).join("target/report-tests").join(file);
    apps::write_manifest(&path, "hello-report", "hello", "x86_64", extra);
    path
}

/// Builds `hello` once for this test binary and returns its manifest and image.
fn hello() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let manifest = hello_manifest("hello.yaml", "");
        apps::assert_success(&apps::build_release(&manifest, &[]), "building hello");
        let image = app_dir("hello").join("target/uniklink/release/hello-report-x86_64.elf");
        (manifest, image)
    })
}

#[test]
fn hello_report_rows_add_up_to_the_loadable_size() {
    let (manifest, image) = hello();
    let saved = SavedReport::load(&image.with_extension("json")).unwrap();
    assert_eq!(saved.image_size, std::fs::metadata(image).unwrap().len());
    assert_adds_up(&saved.sizes, image);
    let owners: Vec<&str> = saved
        .sizes
        .owners
        .iter()
        .map(|o| o.owner.as_str())
        .collect();
    assert!(owners.contains(&"core"), "{owners:?}");
    // hello reaches the runtime's console, clock and heap; each kept component's row is its
    // owner row, and a component's chain leads from the entry.
    assert!(!saved.sizes.components.is_empty(), "the build weaves");
    for c in &saved.sizes.components {
        let owner = saved
            .sizes
            .owners
            .iter()
            .find(|o| o.owner == format!("component {}", c.name));
        match owner {
            Some(o) => assert_eq!((c.size, c.retained), (o.size, o.retained), "{}", c.name),
            None => assert_eq!((c.kept, c.size), (false, 0), "{}", c.name),
        }
        if c.reason == "reached" {
            assert_eq!(c.chain.first().map(String::as_str), Some("entry"), "{c:?}");
        }
    }

    let out = uniklink()
        .args(["report", "--by", "section", "--top", "5", "-m"])
        .arg(manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "total {} B loaded",
            uniklink_analyzer::report::render::group_digits(sum_of_load_memsz(image))
        )),
        "{}",
        stdout(&out)
    );
}

/// The runtime core (boot, paging, exceptions, start, panic, exit) is the library OS's `rt`
/// component, not the app: the app row holds only what the hello crate itself compiled to,
/// even though LTO merged every crate into one object.
#[test]
fn hello_report_separates_the_runtime_core_from_the_app() {
    let (_, image) = hello();
    let saved = SavedReport::load(&image.with_extension("json")).unwrap();
    let owner = |name: &str| {
        saved
            .sizes
            .owners
            .iter()
            .find(|o| o.owner == name)
            .unwrap_or_else(|| panic!("no `{name}` row in {:?}", saved.sizes.owners))
    };
    let rt = owner("component rt");
    let app = owner("app");
    assert!(app.size < 1024, "app row is {} B", app.size);
    assert!(
        rt.size > 50 * app.size,
        "rt {} B, app {} B",
        rt.size,
        app.size
    );
    let rt_decision = saved
        .sizes
        .components
        .iter()
        .find(|c| c.name == "rt")
        .expect("rt is a component");
    assert!(rt_decision.kept, "{rt_decision:?}");
    assert_eq!(rt_decision.reason, "reached");
    for (symbol, expected) in [
        ("_pvh_start", "component rt"),
        ("__unik_exception_stubs", "component rt"),
        ("__unik_main", "app"),
    ] {
        let row = row(&saved.sizes, symbol);
        assert_eq!(saved.sizes.sections[row].owner, expected, "{symbol}");
    }
}

/// Builds `httpd`, whose net component brings smoltcp, once for this test binary and returns
/// its manifest, image and build report.
fn httpd() -> &'static (PathBuf, PathBuf, SavedReport) {
    static BUILT: OnceLock<(PathBuf, PathBuf, SavedReport)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let manifest = Path::new(ROOT).join("target/report-tests/httpd.yaml");
        apps::write_manifest(
            &manifest,
            "httpd-report",
            "httpd",
            "x86_64",
            "profile: network\ncomponents:\n  require: [net]\n",
        );
        apps::assert_success(&apps::build_release(&manifest, &[]), "building httpd");
        let image = app_dir("httpd").join("target/uniklink/release/httpd-report-x86_64.elf");
        let saved = SavedReport::load(&image.with_extension("json")).unwrap();
        (manifest, image, saved)
    })
}

/// The component view counts smoltcp as `net`'s and every crate of the app as `app`; the
/// crate view has a row per crate, and the rows still add up.
#[test]
fn httpd_report_by_crate_has_a_row_per_crate() {
    let (manifest, image, saved) = httpd();
    let sizes = &saved.sizes;
    assert_adds_up(sizes, image);
    let owners: Vec<&str> = sizes.owners.iter().map(|o| o.owner.as_str()).collect();
    assert!(owners.contains(&"component net"), "{owners:?}");
    assert!(!owners.contains(&"smoltcp"), "{owners:?}");
    let smoltcp: Vec<_> = sizes
        .sections
        .iter()
        .filter(|s| s.krate.as_deref() == Some("smoltcp"))
        .collect();
    assert!(!smoltcp.is_empty(), "no section of smoltcp");
    for s in &smoltcp {
        assert_eq!(s.owner, "component net", "{s:?}");
    }

    let out = uniklink()
        .args(["report", "--by", "crate", "--format", "json", "-m"])
        .arg(manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["by"], "crate");
    let rows: BTreeMap<&str, (&str, u64)> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                (r["detail"].as_str().unwrap(), r["size"].as_u64().unwrap()),
            )
        })
        .collect();
    let expected = [
        ("smoltcp", "component net"),
        ("unik_net", "component net"),
        ("talc", "component heap"),
        ("httpd", "app"),
        ("core", ""),
    ];
    for (krate, owners) in expected {
        let (detail, size) = rows
            .get(krate)
            .unwrap_or_else(|| panic!("no `{krate}` row in {rows:?}"));
        assert!(detail.starts_with(owners), "{krate}: {detail}");
        assert!(*size > 0, "{krate}");
    }
    assert_eq!(
        rows["smoltcp"].1,
        smoltcp.iter().map(|s| s.size).sum::<u64>()
    );
    assert_eq!(
        json["rows_total"].as_u64().unwrap() + json["remainder_total"].as_u64().unwrap(),
        sum_of_load_memsz(image)
    );
}

/// Every name `report --by section` and `--by symbol` print finds its section, and a name
/// several sections answer to lists them.
#[test]
fn why_finds_what_the_report_shows() {
    let (manifest, _, saved) = httpd();
    let sizes = &saved.sizes;
    for (row, s) in sizes.sections.iter().enumerate() {
        let (shares, _) = s.symbol_shares();
        for name in [s.display_name()]
            .into_iter()
            .chain(shares.into_iter().map(|(name, _)| name))
        {
            let found = sizes.find(&Query::new(&name)).rows();
            assert!(found.contains(&row), "`{name}` finds {found:?}, not {row}");
        }
    }

    let why = |name: &str| {
        let out = uniklink()
            .args(["why", name, "-m"])
            .arg(manifest)
            .output()
            .unwrap();
        assert!(out.status.success(), "why {name}: {}", stderr(&out));
        stdout(&out)
    };
    let smoltcp = sizes
        .sections
        .iter()
        .filter(|s| s.krate.as_deref() == Some("smoltcp"))
        .count();
    let text = why("smoltcp");
    assert!(
        text.starts_with(&format!(
            "`smoltcp` (a row of report --by crate): {smoltcp} kept sections"
        )),
        "{text}"
    );
    assert!(
        text.contains("[component net, crate smoltcp]")
            && text.contains("Chains into it from the roots")
            && text.contains("OBJECT:(SECTION)"),
        "{text}"
    );

    // Two instances of one generic function: the bare name lists both, the generic
    // arguments pick one, as does its symbol-table name.
    for name in ["assert_failed", "core::panicking::assert_failed"] {
        let text = why(name);
        assert!(text.starts_with(&format!("`{name}` matches ")), "{text}");
        for instance in ["assert_failed::<usize, usize>", "assert_failed::<u64, u64>"] {
            assert!(text.contains(instance), "{instance} not in:\n{text}");
        }
    }
    let text = why("assert_failed::<u64, u64>");
    assert!(
        text.starts_with("`assert_failed::<u64, u64>` is kept: "),
        "{text}"
    );
    let mangled = sizes.sections[row(sizes, "assert_failed::<u64, u64>")]
        .symbols
        .iter()
        .find(|s| s.name.contains("assert_failed"))
        .map(|s| s.name.clone())
        .expect("a mangled name");
    assert!(why(&mangled).contains(" is kept: "), "{mangled}");
}

fn run_hello(manifest: &Path) -> Output {
    run_built(manifest, "120")
        .output()
        .expect("cargo-uniklink run runs")
}

#[test]
fn boot_time_budget_fails_the_run() {
    hello();
    let tight = hello_manifest("hello-tight.yaml", "budgets:\n  boot_time: 1ns\n");
    let out = run_hello(&tight);
    let message = unwrapped(&stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("boot time budget exceeded: hello-report-x86_64.elf was ready after")
            && message.contains("budget 1 ns, over by"),
        "{message}"
    );
    let roomy = hello_manifest("hello-roomy.yaml", "budgets:\n  boot_time: 120s\n");
    let out = run_hello(&roomy);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn broken_reports_are_errors_not_panics() {
    let dir = work_dir("broken");
    graph_build(&dir, &[], "");
    let (_, report) = outputs("graph", &dir);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    json["sizes"]["sections"][0]["parent"] = serde_json::json!([999, "x"]);
    let tampered = dir.join("tampered.json");
    std::fs::write(&tampered, json.to_string()).unwrap();
    let out = uniklink()
        .args(["why", "d", "--report"])
        .arg(&tampered)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        unwrapped(&stderr(&out))
            .contains("is inconsistent: section row 0 has parent row 999, past the"),
        "{}",
        stderr(&out)
    );

    let not_a_report = dir.join("uniklink.yaml");
    let out = uniklink()
        .arg("report")
        .arg(&not_a_report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(unwrapped(&stderr(&out)).contains("is not a uniklink build report"));
    let out = uniklink()
        .args(["diff"])
        .arg(&report)
        .arg(dir.join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(unwrapped(&stderr(&out)).contains("cannot read the build report"));
}
