//! What the boot suites of both architectures share: each fixture app built once per test
//! binary, booted by `cargo uniklink run` on QEMU with TCG and held to its `expect.json` (or
//! `expect.<arch>.json` where the console differs), and the checks every image must pass.
//! A suite is a [`Suite`] value naming what differs between the architectures.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, OnceLock};

use goblin::elf::Elf;
use goblin::elf::note::Note;
use goblin::elf::program_header::{PT_LOAD, ProgramHeader};
use serde::Deserialize;
use uniklink_config::Arch;

use crate::apps::{ROOT, app_dir, assert_success, build_release, uniklink, write_manifest};
use crate::image_check;

/// `fixtures/apps/NAME/expect.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    guest_exit_code: Option<i32>,
    timed_out: bool,
    console_line_prefixes: Vec<String>,
    /// Words some console lines must contain, by line (its index in `console_line_prefixes`).
    #[serde(default)]
    console_line_contains: Vec<(usize, String)>,
    /// Functions the symbolized backtrace names, innermost first (others may come between).
    #[serde(default)]
    backtrace: Vec<String>,
}

/// A guard against a guest that never stops, not a measurement. The hanging app is expected
/// to run into it, so it is as short as lets a loaded machine print the ready marker first.
fn timeout_for(expect: &Expect) -> &'static str {
    if expect.timed_out { "5" } else { "120" }
}

/// One architecture's boot suite.
pub struct Suite {
    pub arch: Arch,
    /// Where the suite writes its manifests, below the workspace root.
    pub dir: &'static str,
    /// The manifests are named `<prefix>-<app>`, the suite's own.
    pub prefix: &'static str,
    /// The manifests' `arch:` list.
    pub arches: &'static str,
    /// What `build` and `run` need to pick `arch` from that list.
    pub arch_args: &'static [&'static str],
}

/// An app built by `cargo uniklink build`.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: PathBuf,
    pub image: PathBuf,
}

impl Suite {
    pub fn dir(&self) -> PathBuf {
        Path::new(ROOT).join(self.dir)
    }

    pub fn manifest_for(&self, app: &str) -> PathBuf {
        let path = self.dir().join(format!("{app}.yaml"));
        let name = format!("{}-{app}", self.prefix);
        write_manifest(&path, &name, app, self.arches, "");
        path
    }

    pub fn build(&self, manifest: &Path) -> Output {
        build_release(manifest, self.arch_args)
    }

    /// Builds `app` once for the whole test binary.
    pub fn built(&self, app: &str) -> Built {
        static BUILT: OnceLock<Mutex<HashMap<String, &'static OnceLock<Built>>>> = OnceLock::new();
        let name = format!("{}-{app}", self.prefix);
        let cell = *BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
        cell.get_or_init(|| {
            let manifest = self.manifest_for(app);
            assert_success(
                &self.build(&manifest),
                &format!("building {app} for {}", self.arch),
            );
            let loaded = uniklink_config::Manifest::load(&manifest).unwrap();
            let paths = uniklink::build::image_paths(
                &loaded,
                self.arch,
                &uniklink::build::CargoProfile::Release,
            )
            .unwrap();
            assert_eq!(
                paths.image,
                app_dir(app).join(format!("target/uniklink/release/{name}-{}.elf", self.arch)),
                "images go to <target-dir>/uniklink/<profile>/<name>-<arch>.elf"
            );
            assert!(paths.report.is_file(), "build writes its report");
            Built {
                manifest,
                image: paths.image,
            }
        })
        .clone()
    }

    fn expectation(&self, app: &str) -> Expect {
        let dir = app_dir(app);
        let specific = dir.join(format!("expect.{}.json", self.arch));
        let path = if specific.is_file() {
            specific
        } else {
            dir.join("expect.json")
        };
        serde_json::from_slice(&std::fs::read(&path).expect("expect.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn boot_as_expected(&self, app: &str) {
        let expect = self.expectation(app);
        // `run -m` finds the image where `build -m` put it and boots it as the manifest says.
        let manifest = self.built(app).manifest;
        let out = uniklink()
            .args(["run", "--release", "--no-build"])
            .args(self.arch_args)
            .args([
                "--accel",
                "tcg",
                "--json",
                "--timeout",
                timeout_for(&expect),
                "-m",
            ])
            .arg(&manifest)
            .output()
            .expect("cargo-uniklink run runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{app}: run --json printed no JSON ({e}):\n{stderr}"));
        assert_eq!(report["arch"].as_str(), Some(self.arch.name()), "{report}");

        // With --json the console goes to stderr, beside the runner's own `uniklink: ` lines.
        let console: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.starts_with("uniklink: ") && !line.starts_with("qemu-system"))
            .collect();
        assert_eq!(
            console.len(),
            expect.console_line_prefixes.len(),
            "{app}: console lines {console:#?}\nstderr:\n{stderr}"
        );
        for (line, prefix) in console.iter().zip(&expect.console_line_prefixes) {
            assert!(
                line.starts_with(prefix.as_str()),
                "{app}: `{line}` should start with `{prefix}`\nstderr:\n{stderr}"
            );
        }
        for (index, words) in &expect.console_line_contains {
            let line = console.get(*index).copied().unwrap_or_default();
            assert!(
                line.contains(words.as_str()),
                "{app}: console line {index} `{line}` should contain `{words}`\nstderr:\n{stderr}"
            );
        }
        assert_eq!(
            report["guest_exit_code"].as_i64(),
            expect.guest_exit_code.map(i64::from),
            "{app}: {report}\n{stderr}"
        );
        if !expect.backtrace.is_empty() {
            let named: Vec<&str> = report["backtraces"][0]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|frame| frame["function"].as_str())
                .collect();
            let mut rest = named.iter();
            for function in &expect.backtrace {
                assert!(
                    rest.any(|named| named == function),
                    "{app}: the backtrace names `{function}` after those before it: {named:?}\n{stderr}"
                );
            }
        }
        assert_eq!(
            report["timed_out"].as_bool(),
            Some(expect.timed_out),
            "{app}: {report}"
        );
        match expect.guest_exit_code {
            Some(code) => assert_eq!(out.status.code(), Some(code), "{app}: exit status"),
            None => {
                assert_eq!(out.status.code(), Some(124), "{app}: a timeout exits 124");
                assert!(
                    stderr.contains("uniklink: timeout after"),
                    "{app}: the timeout is reported:\n{stderr}"
                );
            }
        }
    }

    /// Boots `app` with `run --timeline --json` and checks the timeline: entry, paging and
    /// the runtime's set-up, then one phase per init in the order the build report says the
    /// start routine runs them, then main, each ending no earlier than the one before; the
    /// SVG chart beside the image, and the table beside the host's times.
    pub fn assert_timeline_in_woven_order(&self, app: &str) {
        let Built { manifest, image } = self.built(app);
        let out = uniklink()
            .args(["run", "--release", "--no-build"])
            .args(self.arch_args)
            .args([
                "--accel",
                "tcg",
                "--json",
                "--timeline",
                "--timeout",
                "120",
                "-m",
            ])
            .arg(&manifest)
            .output()
            .expect("cargo-uniklink run runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{app}:\n{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{app}: run --json printed no JSON ({e}):\n{stderr}"));

        let build: serde_json::Value =
            serde_json::from_slice(&std::fs::read(image.with_extension("json")).unwrap()).unwrap();
        let component_of = |init: &str| {
            build["weave"]["components"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["init"].as_str() == Some(init))
                .and_then(|c| c["name"].as_str())
                .unwrap_or_else(|| panic!("no component has the init {init}"))
                .to_owned()
        };
        let woven: Vec<String> = build["weave"]["init_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|init| format!("init {}", component_of(init.as_str().unwrap())))
            .collect();
        assert!(
            !woven.is_empty(),
            "{app} runs at least one component's init"
        );
        let expected: Vec<String> = ["entry", "paging", "runtime"]
            .into_iter()
            .map(str::to_owned)
            .chain(woven)
            .chain(["main".to_owned()])
            .collect();

        let phases = report["timeline"]["phases"]
            .as_array()
            .unwrap_or_else(|| panic!("{app}: no timeline in {report}\n{stderr}"));
        let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, expected, "{app}: {report}");
        let ends: Vec<u64> = phases
            .iter()
            .map(|p| p["at_ns"].as_u64().unwrap())
            .collect();
        assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{app}: {ends:?}");
        assert_eq!(
            ends.last().copied(),
            report["entry_to_main_ns"].as_u64(),
            "{app}: main's stamp is what the ready marker reports"
        );

        let chart = report["timeline"]["chart"].as_str().expect("a chart path");
        assert_eq!(Path::new(chart), image.with_extension("timeline.svg"));
        let svg = std::fs::read_to_string(chart).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("init "), "{svg}");
        assert!(
            stderr.contains("since entry") && stderr.contains("host: launch → first byte"),
            "{app}: the table\n{stderr}"
        );
    }

    /// Five layout seeds give five layouts of the panic fixture (its functions at different
    /// addresses, and different build ids), each boots and panics as expected with a
    /// backtrace that names its functions, and building one seed again gives the same bytes.
    pub fn assert_randomized_layouts_differ_and_boot(&self) {
        const SEEDS: [u64; 5] = [1, 2, 3, 0xdead_beef, u64::MAX];
        let expect = self.expectation("panic");
        let mut seen = Vec::new();
        for seed in SEEDS {
            let name = format!("{}-panic-seed{seed}", self.prefix);
            let manifest = self.dir().join(format!("{name}.yaml"));
            write_manifest(&manifest, &name, "panic", self.arches, "");
            let seed_arg = seed.to_string();
            let mut args = self.arch_args.to_vec();
            args.extend(["--randomize-layout", &seed_arg]);
            assert_success(&build_release(&manifest, &args), &format!("seed {seed}"));
            let image =
                app_dir("panic").join(format!("target/uniklink/release/{name}-{}.elf", self.arch));
            let bytes = std::fs::read(&image).unwrap();
            let report: serde_json::Value =
                serde_json::from_slice(&std::fs::read(image.with_extension("json")).unwrap())
                    .unwrap();
            assert_eq!(report["layout_seed"].as_u64(), Some(seed), "{report:#}");
            let elf = Elf::parse(&bytes).unwrap();
            let address = ["check_invariant", "__unik_main", "unik_rt_enter_main"].map(|part| {
                elf.syms
                    .iter()
                    .find(|sym| {
                        elf.strtab
                            .get_at(sym.st_name)
                            .is_some_and(|name| name.contains(part))
                    })
                    .map(|sym| sym.st_value)
                    .unwrap_or_else(|| panic!("seed {seed}: no symbol with {part}"))
            });
            let build_id = report["build_id"].as_str().map(str::to_owned);
            assert!(
                seen.iter().all(|(a, id)| *a != address && *id != build_id),
                "seed {seed} gives a layout and build id of its own: {address:x?}"
            );
            seen.push((address, build_id));

            let out = uniklink()
                .args(["run", "--accel", "tcg", "--json", "--timeout", "120"])
                .arg(&image)
                .output()
                .expect("cargo-uniklink run runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let boot: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("seed {seed}: no JSON ({e}): {stderr}"));
            assert_eq!(
                boot["guest_exit_code"].as_i64(),
                expect.guest_exit_code.map(i64::from),
                "seed {seed}: {stderr}"
            );
            let named: Vec<&str> = boot["backtraces"][0]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|frame| frame["function"].as_str())
                .collect();
            assert!(
                named.contains(&"panic::check_invariant"),
                "seed {seed}: {named:?}"
            );

            if seed == SEEDS[2] {
                assert_success(&build_release(&manifest, &args), "the same seed again");
                assert!(
                    std::fs::read(&image).unwrap() == bytes,
                    "seed {seed} rebuilds byte for byte"
                );
            }
        }
    }

    /// A debug build writes the app's DWARF, relocated, beside the image (`<image>.debug`),
    /// which stays without debug sections; both rebuild byte for byte; binutils' addr2line reads
    /// the same source lines from it as `run`'s own symbolization; and gdb, attached through
    /// `run --gdb`, shows `main`'s source file.
    pub fn assert_debug_file_beside_the_image(&self) {
        let addr2line = match self.arch {
            Arch::X86_64 => "addr2line",
            Arch::Aarch64 => "aarch64-linux-gnu-addr2line",
        };
        let build = |app: &str| {
            let name = format!("{}-debug-{app}", self.prefix);
            let manifest = self.dir().join(format!("{name}.yaml"));
            write_manifest(&manifest, &name, app, self.arches, "");
            let out = uniklink()
                .arg("build")
                .args(self.arch_args)
                .arg("-m")
                .arg(&manifest)
                .args(["--", "--locked"])
                .output()
                .expect("cargo-uniklink build runs");
            assert_success(&out, &format!("the debug build of {app}"));
            app_dir(app).join(format!("target/uniklink/debug/{name}-{}.elf", self.arch))
        };
        let image = build("panic");
        let debug = PathBuf::from(format!("{}.debug", image.display()));
        let (image_bytes, debug_bytes) = (
            std::fs::read(&image).unwrap(),
            std::fs::read(&debug).unwrap(),
        );
        let elf = Elf::parse(&image_bytes).unwrap();
        assert!(
            !elf.section_headers.iter().any(|sh| elf
                .shdr_strtab
                .get_at(sh.sh_name)
                .is_some_and(|n| n.starts_with(".debug_"))),
            "the image has no debug sections"
        );
        let debug_elf = Elf::parse(&debug_bytes).unwrap();
        assert!(
            debug_elf
                .section_headers
                .iter()
                .any(|sh| debug_elf.shdr_strtab.get_at(sh.sh_name) == Some(".debug_info")),
            "the debug file has .debug_info"
        );
        // By section: a debug file has no program headers.
        let build_id = |elf: &Elf<'_>, bytes: &[u8]| {
            elf.iter_note_sections(bytes, Some(".note.gnu.build-id"))?
                .filter_map(Result::ok)
                .find(|n| n.name == "GNU" && n.n_type == goblin::elf::note::NT_GNU_BUILD_ID)
                .map(|n| n.desc.to_vec())
        };
        let image_id = build_id(&elf, &image_bytes).expect("the image has a build id");
        assert_eq!(
            build_id(&debug_elf, &debug_bytes),
            Some(image_id),
            "the debug file carries the image's build id, by which gdb and debuginfod pair them"
        );
        assert_eq!(build("panic"), image);
        assert!(
            std::fs::read(&image).unwrap() == image_bytes,
            "the image rebuilds alike"
        );
        assert!(
            std::fs::read(&debug).unwrap() == debug_bytes,
            "the debug file rebuilds alike"
        );

        let out = uniklink()
            .args(["run", "--accel", "tcg", "--json", "--timeout", "120"])
            .arg(&image)
            .output()
            .expect("cargo-uniklink run runs");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let frames = report["backtraces"][0]
            .as_array()
            .expect("a backtrace")
            .clone();
        let mut compared = 0;
        for (index, frame) in frames.iter().enumerate() {
            let Some(ours) = frame["source"].as_array().and_then(|s| s.first()) else {
                continue;
            };
            let Some(location) = ours["location"].as_str() else {
                continue;
            };
            // A panic's backtrace is all return addresses, which the runner looks up one byte
            // back, inside their calls; addr2line looks up what it is given.
            let address = frame["address"].as_u64().unwrap() - 1;
            let theirs = std::process::Command::new(addr2line)
                .arg("-e")
                .arg(&debug)
                .arg(format!("{address:#x}"))
                .output()
                .expect("binutils' addr2line runs");
            let theirs = String::from_utf8_lossy(&theirs.stdout);
            let file_line = location
                .rsplit_once(':')
                .map_or(location, |(file_line, _)| file_line);
            let theirs_line = theirs.trim().split(" (discriminator").next().unwrap();
            assert_eq!(theirs_line, file_line, "frame {index}: {frame}");
            compared += 1;
        }
        assert!(
            compared >= 3,
            "source lines for the app's frames: {frames:#?}"
        );
        let named: Vec<&str> = frames
            .iter()
            .flat_map(|f| f["source"].as_array().into_iter().flatten())
            .filter_map(|s| s["location"].as_str())
            .collect();
        assert!(
            named
                .iter()
                .any(|l| l.starts_with("panic-0.1.0/src/lib.rs:12:")),
            "the panic's own line: {named:?}"
        );

        let gdb = self.gdb_to_main("hello", &build("hello"));
        assert!(gdb.contains("src/lib.rs"), "gdb shows main's file:\n{gdb}");
    }

    /// `run --gdb` stops `app` before its first instruction and prints a gdb command; that
    /// command, run in batch mode with a backtrace and a `continue` added, stops at the app's
    /// `main`, and the guest then runs to a clean exit.
    pub fn assert_gdb_stops_at_main(&self, app: &str) {
        let Built { image, .. } = self.built(app);
        let gdb_out = self.gdb_to_main(app, &image);
        assert!(gdb_out.contains("in __unik_main"), "{app}:\n{gdb_out}");
    }

    /// Boots `image` with `run --gdb`, runs the printed gdb command in batch mode to `main`
    /// with a backtrace, lets the guest finish, and returns what gdb printed.
    pub fn gdb_to_main(&self, app: &str, image: &Path) -> String {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let mut runner = uniklink()
            .args(["run", "--accel", "tcg", "--timeout", "120", "--gdb"])
            .arg(image)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cargo-uniklink run starts");
        let stderr = BufReader::new(runner.stderr.take().expect("stderr is piped"));
        let mut said = Vec::new();
        let command = stderr
            .lines()
            .map_while(Result::ok)
            .inspect(|line| said.push(line.clone()))
            .find_map(|line| {
                let line = line.trim_start();
                (line.starts_with("gdb ") || line.starts_with("gdb-multiarch "))
                    .then(|| shell_words(line))
            })
            .unwrap_or_else(|| panic!("{app}: no gdb command in {said:#?}"));
        let gdb = Command::new(&command[0])
            .arg("-batch")
            .args(&command[1..])
            .args(["-ex", "bt", "-ex", "continue"])
            .current_dir(ROOT)
            .output()
            .unwrap_or_else(|e| panic!("{app}: running {}: {e}", command[0]));
        let gdb_out = String::from_utf8_lossy(&gdb.stdout);
        let out = runner.wait_with_output().expect("the runner ends");
        let console = String::from_utf8_lossy(&out.stdout);
        assert!(
            gdb_out.contains("Breakpoint 1, ") && gdb_out.contains("\n#0  "),
            "{app}: gdb stopped at main with a backtrace:\n{gdb_out}\n{}",
            String::from_utf8_lossy(&gdb.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{app}: {console}");
        assert!(console.contains("uniklink:ready "), "{app}: {console}");
        gdb_out.into_owned()
    }

    /// Builds `hello` again over its image and compares the bytes.
    pub fn assert_rebuild_gives_the_same_bytes(&self) {
        let Built { manifest, image } = self.built("hello");
        let first = std::fs::read(&image).unwrap();
        assert_success(&self.build(&manifest), "rebuilding hello");
        let second = std::fs::read(&image).unwrap();
        assert!(first == second, "two {} builds of hello differ", self.arch);
    }
}

/// Checks what every booting image must be, whatever its architecture: sound by goblin's
/// checks, with a 20-byte GNU build id, and naming no path of this checkout. Returns the
/// image's bytes for the architecture's own checks.
pub fn assert_sound_image(image: &Path) -> Vec<u8> {
    let problems = image_check::problems(image);
    assert!(problems.is_empty(), "{problems:#?}");
    let bytes = std::fs::read(image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let build_id = notes(&elf, &bytes)
        .into_iter()
        .find(|n| n.name == "GNU" && n.n_type == 3)
        .expect("an NT_GNU_BUILD_ID note");
    assert_eq!(build_id.desc.len(), 20);
    assert!(
        !bytes.windows(ROOT.len()).any(|w| w == ROOT.as_bytes()),
        "the image names no host path"
    );
    bytes
}

/// The image's PT_LOAD segments, in program header order.
pub fn loads<'e>(elf: &'e Elf<'_>) -> Vec<&'e ProgramHeader> {
    elf.program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .collect()
}

pub fn notes<'a>(elf: &Elf<'a>, bytes: &'a [u8]) -> Vec<Note<'a>> {
    elf.iter_note_headers(bytes)
        .expect("notes")
        .collect::<Result<_, _>>()
        .expect("notes parse")
}

/// Whether the symbol table has a symbol whose (mangled) name contains `part`.
pub fn has_symbol_containing(image: &Path, part: &str) -> bool {
    let bytes = std::fs::read(image).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    elf.syms
        .iter()
        .filter_map(|s| elf.strtab.get_at(s.st_name))
        .any(|name| name.contains(part))
}

/// The value of the symbol table's `name`.
pub fn symbol(elf: &Elf<'_>, name: &str) -> u64 {
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .unwrap_or_else(|| panic!("{name} in the symbol table"))
        .st_value
}

/// A command line split into words as a POSIX shell would split one with single quotes
/// (`'it'\''s'` included) and no other quoting.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}
