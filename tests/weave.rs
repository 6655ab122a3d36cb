//! Weaving with a C library OS on musl (`fixtures/weave/`): every component registers its
//! init in `.init_array`. GNU ld keeps all of them; uniklink keeps exactly the components an
//! app reaches or its manifest requires, runs their inits in dependency order from the glue
//! object, and bakes the profile's parameters into the image.

#[path = "common/image_check.rs"]
mod image_check;
#[path = "common/run.rs"]
mod run;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use uniklink::pipeline::{LinkError, LinkOptions, LinkOutput, WeaveOptions, link};
use uniklink_config::{ComponentRegistry, Manifest, ProfileName};
use xtask::toolchain::{Toolchain, run as run_tool};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/weave")
}

fn toolchain() -> &'static Toolchain {
    static TOOLCHAIN: OnceLock<Toolchain> = OnceLock::new();
    TOOLCHAIN.get_or_init(|| Toolchain::discover().unwrap_or_else(|error| panic!("{error}")))
}

/// Separate sections per function and object, as Rust emits them, so section GC has
/// something to work with in both linkers.
const CFLAGS: [&str; 2] = ["-ffunction-sections", "-fdata-sections"];

fn compile(source: &Path, object: &Path) {
    let flags: Vec<String> = CFLAGS.iter().map(|f| (*f).to_owned()).collect();
    toolchain()
        .compile(source, object, &flags)
        .unwrap_or_else(|error| panic!("{error}"));
}

/// Copies a component directory into `work` and builds the archive its `component.yaml`
/// names from its C files. Returns the copied `component.yaml` and the archive.
fn build_component(dir: &Path, work: &Path) -> (PathBuf, PathBuf) {
    let name = dir.file_name().expect("directory name");
    let out = work.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let mut objects = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap();
        std::fs::copy(&path, out.join(file)).unwrap();
        if path.extension().is_some_and(|e| e == "c") && file != "app.c" {
            let object = out.join(file).with_extension("o");
            compile(&path, &object);
            objects.push(object);
        }
    }
    let yaml = out.join(uniklink_config::COMPONENT_FILE);
    let spec = uniklink_config::load_component(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let archive = spec.archive.expect("fixture components name their archive");
    let mut ar = Command::new("ar");
    ar.arg("rcs").arg(&archive).args(&objects);
    run_tool(&mut ar).unwrap_or_else(|error| panic!("{error}"));
    (yaml, archive)
}

/// The fixture library OS built once per test: component files, archives and the runtime.
struct LibOs {
    _dir: tempfile::TempDir,
    work: PathBuf,
    components: Vec<PathBuf>,
    archives: Vec<PathBuf>,
    rt: PathBuf,
}

impl LibOs {
    fn build(component_dirs: &[PathBuf]) -> LibOs {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().to_path_buf();
        let (components, archives) = component_dirs
            .iter()
            .map(|d| build_component(d, &work.join("components")))
            .unzip();
        let rt = work.join("rt.o");
        compile(&fixture_dir().join("rt/rt.c"), &rt);
        LibOs {
            _dir: dir,
            work,
            components,
            archives,
            rt,
        }
    }

    fn standard() -> LibOs {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixture_dir().join("components"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        LibOs::build(&dirs)
    }

    fn registry(&self) -> ComponentRegistry {
        ComponentRegistry::from_component_files(&self.components).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Compiles the app beside a copy of its manifest and returns the manifest's path.
    fn app(&self, app_dir: &Path, manifest: &str) -> PathBuf {
        let out = self.work.join("apps").join(app_dir.file_name().unwrap());
        std::fs::create_dir_all(&out).unwrap();
        compile(&app_dir.join("app.c"), &out.join("app.o"));
        let path = out.join("uniklink.yaml");
        std::fs::write(&path, manifest).unwrap();
        path
    }

    /// The conventional link: every component archive whole, as a library OS archive whose
    /// components register themselves is meant to be linked.
    fn gnu_ld(&self, app: &Path, out: &Path) {
        let mut objects = vec![self.rt.clone(), app.to_path_buf(), "--whole-archive".into()];
        objects.extend(self.archives.iter().cloned());
        objects.push("--no-whole-archive".into());
        let mut cmd = toolchain().gnu_ld("ld", &objects, out, &["--gc-sections"]);
        run_tool(&mut cmd).unwrap_or_else(|error| panic!("{error}"));
    }

    fn weave(&self, app: &Path, manifest: &Manifest, out: &Path) -> Result<LinkOutput, LinkError> {
        let tc = toolchain();
        let mut inputs: Vec<PathBuf> = tc.start_files().map(Path::to_path_buf).to_vec();
        inputs.push(self.rt.clone());
        inputs.push(app.to_path_buf());
        inputs.extend(self.archives.iter().cloned());
        inputs.extend(tc.libraries().map(Path::to_path_buf));
        inputs.extend(tc.end_files().map(Path::to_path_buf));
        let mut opts = LinkOptions::new(inputs, out.to_path_buf());
        opts.weave = Some(WeaveOptions::new(self.registry(), manifest.resolve()));
        // The tests look symbols up in the output's list.
        opts.report.symbols = true;
        link(&opts)
    }
}

#[derive(serde::Deserialize)]
struct Expect {
    live: Vec<String>,
    init_order: Vec<String>,
    stdout: String,
    absent: Vec<String>,
    reasons: std::collections::BTreeMap<String, String>,
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn run_ok(exe: &Path) -> String {
    let ran = run::run(exe, b"");
    assert_eq!(ran.status, "exit 0", "{}: {ran:?}", exe.display());
    ran.stdout
}

#[test]
fn each_app_gets_exactly_the_components_it_reaches() {
    let libos = LibOs::standard();
    let all: Vec<String> = libos.registry().names().map(str::to_owned).collect();
    assert_eq!(all, ["clock", "console", "fs", "heap", "net"]);
    let mut sizes = Vec::new();
    for app in ["hello", "netapp", "required"] {
        let dir = fixture_dir().join("apps").join(app);
        let expect: Expect =
            toml::from_str(&std::fs::read_to_string(dir.join("expect.toml")).unwrap()).unwrap();
        let manifest_text = std::fs::read_to_string(dir.join("uniklink.yaml")).unwrap();
        let manifest_path = libos.app(&dir, &manifest_text);
        let app_o = manifest_path.with_file_name("app.o");
        let manifest = Manifest::load_with(&manifest_path, &libos.registry())
            .unwrap_or_else(|e| panic!("{e}"));

        let gnu = manifest_path.with_file_name("gnu-ld.out");
        libos.gnu_ld(&app_o, &gnu);
        let conventional = run_ok(&gnu);
        for component in &all {
            assert!(
                conventional.contains(&format!("init {component} ")),
                "{app}: GNU ld's image should run every registered init:\n{conventional}"
            );
        }

        let woven = manifest_path.with_file_name("uniklink.out");
        let output = libos
            .weave(&app_o, &manifest, &woven)
            .unwrap_or_else(|e| panic!("{app}: {e}"));
        let problems = image_check::problems(&woven);
        assert!(problems.is_empty(), "{app}: {problems:#?}");
        assert_eq!(
            run_ok(&woven),
            expect.stdout.trim_start(),
            "{app}: boot log"
        );

        let report = output.weave.expect("weaving reports");
        let live: Vec<&str> = report
            .components
            .iter()
            .filter(|c| c.live)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(live, expect.live, "{app}: live components");
        assert_eq!(report.init_order, expect.init_order, "{app}: init order");
        for c in &report.components {
            assert_eq!(
                Some(&c.reason),
                expect.reasons.get(&c.name),
                "{app}: why {} is {}",
                c.name,
                if c.live { "live" } else { "dropped" }
            );
            assert_eq!(c.live, c.size > 0, "{app}: {} has {} bytes", c.name, c.size);
            if c.reason == "reached" {
                assert_eq!(c.chain.first().map(String::as_str), Some("entry"), "{app}");
            }
        }

        // Dead components leave nothing behind: no init symbol, no code, no data.
        let gnu_image = std::fs::read(&gnu).unwrap();
        let woven_image = std::fs::read(&woven).unwrap();
        let gnu_symbols = symbol_names(&gnu_image);
        let woven_symbols = symbol_names(&woven_image);
        for c in &report.components {
            let init = c.init.clone().unwrap();
            assert!(gnu_symbols.contains(&init), "{app}: GNU ld dropped {init}");
            assert_eq!(woven_symbols.contains(&init), c.live, "{app}: {init}");
        }
        for marker in &expect.absent {
            assert!(contains(&gnu_image, marker), "{app}: GNU ld lacks {marker}");
            assert!(!contains(&woven_image, marker), "{app}: {marker} survived");
        }
        sizes.push((app, gnu_image.len(), woven_image.len()));
    }
    eprintln!("image sizes (bytes): app, GNU ld with every component registered, uniklink woven");
    for (app, gnu, woven) in &sizes {
        eprintln!("  {app:10} {gnu:8} {woven:8}");
        assert!(woven < gnu, "{app}: the woven image is not smaller");
    }
}

/// The same app and objects under each profile: the parameter bytes in the image, the
/// report and the boot log all follow the profile.
#[test]
fn profiles_change_parameters_in_the_image() {
    let libos = LibOs::standard();
    let dir = fixture_dir().join("apps/netapp");
    let mut seen = Vec::new();
    // The network profile requires net, which netapp reaches anyway; no profile requires fs
    // (uniklink's own library OS has none), which netapp never calls.
    for (profile, rx_ring, promisc, fs) in [
        (ProfileName::Minimal, 16u32, 0u8, "dropped (unreachable)"),
        (ProfileName::Network, 256, 1, "dropped (unreachable)"),
        (ProfileName::Filesystem, 16, 0, "dropped (unreachable)"),
    ] {
        let manifest_path = libos.app(
            &dir,
            &format!("name: netapp\napp:\n  objects: [app.o]\nprofile: {profile}\n"),
        );
        let manifest = Manifest::load_with(&manifest_path, &libos.registry()).unwrap();
        let out = manifest_path.with_file_name(format!("{profile}.out"));
        let output = libos
            .weave(&manifest_path.with_file_name("app.o"), &manifest, &out)
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        let report = output.weave.unwrap();
        let net = report.components.iter().find(|c| c.name == "net").unwrap();
        assert_eq!(net.params["rx_ring"], u64::from(rx_ring), "{profile}");
        assert_eq!(net.params["promisc"], u64::from(promisc), "{profile}");

        let image = std::fs::read(&out).unwrap();
        let bytes = |symbol: &str, len: usize| {
            let addr = output
                .symbols
                .iter()
                .find(|(n, _)| n == symbol)
                .unwrap_or_else(|| panic!("{symbol} missing"))
                .1;
            image_bytes(&image, addr, len)
        };
        assert_eq!(
            bytes("__uniklink_param_net_rx_ring", 4),
            rx_ring.to_le_bytes()
        );
        assert_eq!(bytes("__uniklink_param_net_promisc", 1), [promisc]);
        // The text the library OS prints in verbose mode travels in the image too.
        let len = u64::from_le_bytes(bytes("__uniklink_report_len", 8).try_into().unwrap());
        let text = String::from_utf8(bytes("__uniklink_report", len as usize)).unwrap();
        assert!(
            text.contains(&format!("param net.rx_ring={rx_ring}\n"))
                && text.contains(&format!("component fs {fs}\n")),
            "{profile}: {text}"
        );
        let log = run_ok(&out);
        assert!(
            log.contains(&format!("init net rx_ring={rx_ring} promisc={promisc} ")),
            "{profile}: {log}"
        );
        seen.push(image);
    }
    assert_ne!(seen[0], seen[1], "minimal and network images are identical");
    assert_ne!(
        seen[0], seen[2],
        "minimal and filesystem images are identical"
    );
}

fn symbol_names(image: &[u8]) -> Vec<String> {
    let elf = goblin::elf::Elf::parse(image).unwrap();
    elf.syms
        .iter()
        .filter(|sym| sym.st_shndx != 0)
        .filter_map(|sym| elf.strtab.get_at(sym.st_name).map(str::to_owned))
        .collect()
}

/// A profile that requires a component changes the component set of the same app: the
/// network profile brings net (and its dependencies) into `hello`, which never calls it.
#[test]
fn a_profile_requirement_changes_the_component_set() {
    let libos = LibOs::standard();
    let dir = fixture_dir().join("apps/hello");
    let mut live_sets = Vec::new();
    for profile in ["minimal", "network"] {
        let manifest_path = libos.app(
            &dir,
            &format!("name: hello\napp:\n  objects: [app.o]\nprofile: {profile}\n"),
        );
        let manifest = Manifest::load_with(&manifest_path, &libos.registry()).unwrap();
        let out = manifest_path.with_file_name(format!("hello-{profile}.out"));
        let report = libos
            .weave(&manifest_path.with_file_name("app.o"), &manifest, &out)
            .unwrap()
            .weave
            .unwrap();
        let image = std::fs::read(&out).unwrap();
        let net = report.components.iter().find(|c| c.name == "net").unwrap();
        assert_eq!(net.live, contains(&image, "NET-STACK-TABLES"), "{profile}");
        live_sets.push((
            report
                .components
                .iter()
                .filter(|c| c.live)
                .map(|c| format!("{} ({})", c.name, c.reason))
                .collect::<Vec<_>>(),
            run_ok(&out),
        ));
    }
    assert_eq!(live_sets[0].0, ["console (reached)"]);
    assert_eq!(
        live_sets[1].0,
        [
            "clock (dependency of net)",
            "console (reached)",
            "heap (dependency of net)",
            "net (required)"
        ]
    );
    assert!(
        live_sets[1].1.contains("init net rx_ring=256 promisc=1"),
        "{}",
        live_sets[1].1
    );
}

/// The file bytes at virtual address `addr`, found through the program headers with goblin.
fn image_bytes(image: &[u8], addr: u64, len: usize) -> Vec<u8> {
    let elf = goblin::elf::Elf::parse(image).unwrap();
    let ph = elf
        .program_headers
        .iter()
        .find(|ph| {
            ph.p_type == goblin::elf::program_header::PT_LOAD
                && (ph.p_vaddr..ph.p_vaddr + ph.p_filesz).contains(&addr)
        })
        .unwrap_or_else(|| panic!("{addr:#x} is not in a loaded segment"));
    let at = (addr - ph.p_vaddr + ph.p_offset) as usize;
    image[at..at + len].to_vec()
}

fn weave_error(libos: &LibOs, app_dir: &Path, manifest: &str) -> String {
    let manifest_path = libos.app(app_dir, manifest);
    let manifest =
        Manifest::load_with(&manifest_path, &libos.registry()).unwrap_or_else(|e| panic!("{e}"));
    let out = manifest_path.with_file_name("failed.out");
    let err = libos
        .weave(&manifest_path.with_file_name("app.o"), &manifest, &out)
        .expect_err("the link must fail");
    assert!(!out.exists(), "a failed link left {}", out.display());
    err.to_string()
}

#[test]
fn dependency_cycle_names_the_components() {
    let bad = fixture_dir().join("bad/cycle");
    let libos = LibOs {
        components: vec![bad.join("a/component.yaml"), bad.join("b/component.yaml")],
        ..LibOs::build(&[])
    };
    let err = weave_error(
        &libos,
        &fixture_dir().join("apps/hello"),
        "name: hello\napp:\n  objects: [app.o]\n",
    );
    assert_eq!(
        err,
        "components depend on each other in a cycle: alpha → beta → alpha"
    );
}

#[test]
fn parameter_of_the_wrong_type_names_component_and_parameter() {
    let libos = LibOs::build(&[fixture_dir().join("bad/param_type")]);
    let err = weave_error(
        &libos,
        &fixture_dir().join("bad/param_type"),
        "name: wide\napp:\n  objects: [app.o]\n",
    );
    assert!(
        err.starts_with(
            "component `wide` parameter `limit`: component.yaml gives it 8 bytes, but "
        ) && err.contains("libwide.a(wide.o) defines `__uniklink_param_wide_limit` with 4"),
        "{err}"
    );

    // A manifest value the declared type cannot hold.
    let libos = LibOs::standard();
    let err = weave_error(
        &libos,
        &fixture_dir().join("apps/netapp"),
        "name: netapp\napp:\n  objects: [app.o]\ncomponents:\n  params:\n    net:\n      rx_ring: 5000000000\n",
    );
    assert_eq!(
        err,
        "component `net` parameter `rx_ring`: 5000000000 does not fit in a u32 (type u32)"
    );
}

#[test]
fn init_reaching_an_undeclared_component_is_an_error() {
    let libos = LibOs::build(&[
        fixture_dir().join("components/console"),
        fixture_dir().join("bad/undeclared"),
    ]);
    let err = weave_error(
        &libos,
        &fixture_dir().join("bad/undeclared"),
        "name: logger\napp:\n  objects: [app.o]\n",
    );
    assert!(
        err.starts_with(
            "component `console` is reached only through the init of `logger`, which does not \
             list it in `depends`"
        ),
        "{err}"
    );
}

/// Manifests are validated against uniklink's own library OS, which has components another
/// library OS may lack: requiring one is an error, overriding a parameter it lacks is reported.
#[test]
fn manifest_selection_against_the_library_os() {
    let libos = LibOs::standard();
    let dir = fixture_dir().join("apps/hello");
    let builtin = ComponentRegistry::builtin();
    let manifest_path = libos.app(
        &dir,
        "name: hello\napp:\n  objects: [app.o]\ncomponents:\n  require: [rt]\n",
    );
    let manifest = Manifest::load_with(&manifest_path, &builtin).unwrap();
    let err = libos
        .weave(
            &manifest_path.with_file_name("app.o"),
            &manifest,
            &dir.join("never"),
        )
        .expect_err("the fixture library OS has no rt");
    assert_eq!(
        err.to_string(),
        "component `rt` is required by the manifest, but the library OS has no such component \
         (it has: clock, console, fs, heap, net)"
    );

    let manifest_path = libos.app(
        &dir,
        "name: hello\napp:\n  objects: [app.o]\ncomponents:\n  params:\n    net:\n      max_sockets: 3\n",
    );
    let manifest = Manifest::load_with(&manifest_path, &builtin).unwrap();
    let output = libos
        .weave(
            &manifest_path.with_file_name("app.o"),
            &manifest,
            &manifest_path.with_file_name("hello.out"),
        )
        .unwrap();
    assert_eq!(output.weave.unwrap().unused_overrides, ["net.max_sockets"]);

    // uniklink's `net` owns `ports`, so forwarding one requires the fixture's `net`, which the
    // app never reaches.
    let manifest_path = libos.app(
        &dir,
        "name: hello\napp:\n  objects: [app.o]\nports: [8080]\n",
    );
    let manifest = Manifest::load_with(&manifest_path, &builtin).unwrap();
    let output = libos
        .weave(
            &manifest_path.with_file_name("app.o"),
            &manifest,
            &manifest_path.with_file_name("hello-ports.out"),
        )
        .unwrap();
    let report = output.weave.unwrap();
    let net = report.components.iter().find(|c| c.name == "net").unwrap();
    assert!(net.live);
    assert_eq!(net.reason, "required by the manifest's `ports`");
}

#[test]
fn forbidden_component_that_is_reached_is_an_error() {
    let libos = LibOs::standard();
    let err = weave_error(
        &libos,
        &fixture_dir().join("apps/netapp"),
        "name: netapp\napp:\n  objects: [app.o]\ncomponents:\n  forbid: [net]\n",
    );
    assert!(
        err.starts_with("component `net` is forbidden, but ") && err.contains("net_send"),
        "{err}"
    );
    let err = weave_error(
        &libos,
        &fixture_dir().join("apps/hello"),
        "name: hello\napp:\n  objects: [app.o]\ncomponents:\n  require: [fs]\n  forbid: [heap]\n",
    );
    assert_eq!(
        err,
        "component `heap` is forbidden, but live component `fs` depends on it"
    );
}

/// `cargo uniklink build --release -m MANIFEST`; returns the JSON build report.
fn cargo_uniklink_build(manifest: &Path) -> serde_json::Value {
    let built = Command::new(env!("CARGO_BIN_EXE_cargo-uniklink"))
        .args(["build", "--release", "-m"])
        .arg(manifest)
        .args(["--", "--locked"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "build failed:\n{stderr}");
    let report_path = stderr
        .lines()
        .find_map(|l| l.strip_prefix("uniklink: report "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no report path in:\n{stderr}"));
    serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap()
}

fn component<'r>(weave: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    weave["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {weave}"))
}

fn weave_tests_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/weave-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The real library OS's net component under two profiles (and a manifest override): the
/// values in the report and the bytes in the image follow them.
#[test]
fn real_libos_profiles_change_net_parameters() {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/apps/httpd");
    for (profile, rx_ring, max_sockets, override_) in [
        ("minimal", 16u32, 2u32, ""),
        (
            "network",
            256,
            8,
            "components:\n  params:\n    net:\n      max_sockets: 8\n",
        ),
    ] {
        let manifest = weave_tests_dir().join(format!("httpd-{profile}.yaml"));
        std::fs::write(
            &manifest,
            format!(
                "name: weave-httpd-{profile}\napp:\n  package: httpd\n  path: {}\n\
                 arch: [x86_64]\nprofile: {profile}\n{override_}",
                app.display()
            ),
        )
        .unwrap();
        let report = cargo_uniklink_build(&manifest);
        let net = component(&report["weave"], "net");
        assert_eq!(net["live"], true, "{profile}: {net}");
        assert_eq!(net["params"]["rx_ring_size"], rx_ring, "{profile}");
        assert_eq!(net["params"]["max_sockets"], max_sockets, "{profile}");
        assert_eq!(
            report["weave"]["init_order"],
            serde_json::json!(["unik_net_init"])
        );

        let image = std::fs::read(report["image"].as_str().unwrap()).unwrap();
        let elf = goblin::elf::Elf::parse(&image).unwrap();
        let addr = |name: &str| {
            elf.syms
                .iter()
                .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
                .unwrap_or_else(|| panic!("{profile}: no {name}"))
                .st_value
        };
        for (symbol, value) in [
            ("__uniklink_param_net_rx_ring_size", rx_ring),
            ("__uniklink_param_net_max_sockets", max_sockets),
        ] {
            assert_eq!(
                image_bytes(&image, addr(symbol), 4),
                value.to_le_bytes(),
                "{profile}: {symbol}"
            );
        }
    }
}

/// With the real library OS: an app that links the socket API (`unik`'s `net` feature, whose
/// init is registered in `.init_array`) but never opens a socket. Built by `cargo uniklink
/// build`, its image has no net code (by the report and by its symbols), prints the weave
/// decisions in verbose mode and still boots; linked conventionally, the same archive keeps
/// all of net.
#[test]
fn real_libos_app_without_sockets_boots_without_net() {
    let dir = weave_tests_dir();
    let manifest = dir.join("unused_net.yaml");
    std::fs::write(
        &manifest,
        format!(
            "name: weave-unused-net\napp:\n  package: unused_net\n  path: {}\narch: [x86_64]\n\
             memory: 64MiB\ncmdline: uniklink.verbose\n",
            fixture_dir().join("unused_net").display()
        ),
    )
    .unwrap();
    let report = cargo_uniklink_build(&manifest);
    let weave = &report["weave"];
    let state = |name: &str| {
        let c = component(weave, name);
        (
            c["live"].as_bool().unwrap(),
            c["reason"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(state("net"), (false, "unreachable".to_owned()), "{weave}");
    assert_eq!(state("console"), (true, "reached".to_owned()), "{weave}");
    // The runtime stamps boot with raw counter values and works out the heap at the first
    // allocation, so an app that neither reads the clock nor allocates keeps neither.
    for runtime in ["clock", "heap"] {
        assert!(!state(runtime).0, "{runtime}: {weave}");
    }

    let image_path = PathBuf::from(report["image"].as_str().unwrap());
    let image = std::fs::read(&image_path).unwrap();
    let net_symbols = |image: &[u8]| -> Vec<String> {
        symbol_names(image)
            .into_iter()
            .filter(|name| {
                name == "unik_net_init"
                    || uniklink_analyzer::component::symbol_crate(name.as_bytes())
                        .is_some_and(|c| c == "unik_net" || c == "smoltcp")
            })
            .collect()
    };
    assert_eq!(net_symbols(&image), Vec::<String>::new());
    assert!(symbol_names(&image).contains(&"uniklink_start".to_owned()));

    // The same archive, linked the conventional way (every .init_array entry a root).
    let inputs: Vec<PathBuf> = report["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    let conventional = dir.join("unused_net-conventional.elf");
    let opts = LinkOptions {
        entry: report["entry"].as_str().unwrap().to_owned(),
        ..LinkOptions::new(inputs, conventional.clone())
    };
    link(&opts).unwrap_or_else(|e| panic!("conventional link: {e}"));
    let conventional_image = std::fs::read(&conventional).unwrap();
    assert!(net_symbols(&conventional_image).contains(&"unik_net_init".to_owned()));
    eprintln!(
        "unused_net image sizes (bytes): conventional {}, woven {}",
        conventional_image.len(),
        image.len()
    );
    assert!(image.len() < conventional_image.len());

    let ran = Command::new(env!("CARGO_BIN_EXE_cargo-uniklink"))
        .args([
            "run",
            "--release",
            "--no-build",
            "--accel",
            "tcg",
            "--json",
            "--timeout",
            "120",
            "-m",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{console}");
    for line in [
        "uniklink:verbose component net dropped (unreachable)",
        "uniklink:verbose component console live (reached)",
        "no sockets here",
    ] {
        assert!(
            console.lines().any(|l| l == line),
            "`{line}` missing:\n{console}"
        );
    }
}

/// `cargo uniklink link --component FILE -m MANIFEST` weaves like the library API, and a bad
/// component set fails with exit status 1, a message naming the components and no output.
#[test]
fn link_command_weaves() {
    let libos = LibOs::standard();
    let dir = fixture_dir().join("apps/required");
    let manifest = libos.app(
        &dir,
        &std::fs::read_to_string(dir.join("uniklink.yaml")).unwrap(),
    );
    let tc = toolchain();
    let out = manifest.with_file_name("cli.out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-uniklink"));
    cmd.args(["link", "-o"]).arg(&out).arg("-m").arg(&manifest);
    for component in &libos.components {
        cmd.arg("--component").arg(component);
    }
    cmd.args(tc.start_files())
        .arg(&libos.rt)
        .arg(manifest.with_file_name("app.o"))
        .args(&libos.archives)
        .args(tc.libraries())
        .args(tc.end_files());
    let ran = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{stderr}");
    for line in [
        "component fs live (required)",
        "component heap live (dependency of fs)",
        "component net dropped (unreachable)",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "`{line}` missing:\n{stderr}"
        );
    }
    assert!(run_ok(&out).starts_with("init console buffer=256\ninit heap "));

    let bad = fixture_dir().join("bad/cycle");
    let failed = manifest.with_file_name("cycle.out");
    let ran = Command::new(env!("CARGO_BIN_EXE_cargo-uniklink"))
        .args(["link", "-o"])
        .arg(&failed)
        .arg("--component")
        .arg(bad.join("a/component.yaml"))
        .arg("--component")
        .arg(bad.join("b/component.yaml"))
        .arg(manifest.with_file_name("app.o"))
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(stderr.contains("alpha → beta → alpha"), "{stderr}");
    assert!(!failed.exists());
}
