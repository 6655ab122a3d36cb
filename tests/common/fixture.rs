//! A link fixture: `fixtures/link/<name>/` holds C files and an `expect.toml` saying how to
//! build them and what the GNU-ld-linked program must do. The uniklink-linked program must
//! then do exactly what the GNU ld one did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use xtask::toolchain::Target;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// C files (of this fixture) compiled into `lib<fixture>.a` instead of linked directly.
    #[serde(default)]
    pub archive: Vec<String>,
    /// Flags for every file, after `-O2 -fno-pie`.
    #[serde(default)]
    pub cflags: Vec<String>,
    /// Flags for one file, after `cflags`.
    #[serde(default)]
    pub file_cflags: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub stdin: String,
    /// Required exit status of the program; absent only for `link_error` fixtures.
    pub exit: Option<i32>,
    #[serde(default)]
    pub stdout_contains: Vec<String>,
    #[serde(default)]
    pub stderr_contains: Vec<String>,
    /// The link must fail with both linkers, and uniklink's message must contain each of
    /// these fragments (the symbol and the objects involved).
    #[serde(default)]
    pub link_error: Vec<String>,
    /// Strings that only unreachable code or data contains; see `differential.rs`.
    #[serde(default)]
    pub gc_removes: Vec<String>,
    /// Flags both linkers get, spelt alike by GNU ld and uniklink (`--eh-frame-hdr`).
    #[serde(default)]
    pub ldflags: Vec<String>,
    /// Upper bound on the size of uniklink's image file.
    pub max_image_bytes: Option<u64>,
    /// x86_64 flags (of `cflags` or `file_cflags`) replaced by their aarch64 counterparts
    /// when compiling for aarch64: `"-mcmodel=medium" = ["-mcmodel=large"]`.
    #[serde(default)]
    pub aarch64_flags: BTreeMap<String, Vec<String>>,
}

pub struct Fixture {
    pub name: String,
    pub sources: Vec<PathBuf>,
    pub expect: Expect,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/link")
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let dir = root().join(name);
        let expect_path = dir.join("expect.toml");
        let text = std::fs::read_to_string(&expect_path)
            .unwrap_or_else(|error| panic!("{}: {error}", expect_path.display()));
        let expect: Expect = toml::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", expect_path.display()));
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "c"))
            .collect();
        sources.sort();
        let fixture = Fixture {
            name: name.to_string(),
            sources,
            expect,
        };
        fixture.check_consistency(&expect_path);
        fixture
    }

    /// Catches typos in `expect.toml` that would otherwise quietly weaken the fixture.
    fn check_consistency(&self, expect_path: &Path) {
        let file_names: Vec<String> = self
            .sources
            .iter()
            .map(|p| p.file_name().expect("file").to_string_lossy().into_owned())
            .collect();
        for named in self
            .expect
            .archive
            .iter()
            .chain(self.expect.file_cflags.keys())
        {
            assert!(
                file_names.contains(named),
                "{}: names {named}, which is not a C file of the fixture",
                expect_path.display()
            );
        }
        for flag in self.expect.aarch64_flags.keys() {
            let used = self
                .expect
                .cflags
                .iter()
                .chain(self.expect.file_cflags.values().flatten())
                .any(|f| f == flag);
            assert!(
                used,
                "{}: aarch64_flags replaces {flag}, which no cflags give",
                expect_path.display()
            );
        }
        let link_error = !self.expect.link_error.is_empty();
        assert!(
            link_error != self.expect.exit.is_some(),
            "{}: give either `exit` (the program runs) or `link_error` (the link fails)",
            expect_path.display()
        );
        assert!(
            link_error || !self.expect.stdout_contains.is_empty(),
            "{}: a running fixture needs `stdout_contains`, so it cannot pass on empty output",
            expect_path.display()
        );
    }

    pub fn flags_for(&self, source: &Path, target: Target) -> Vec<String> {
        let name = source.file_name().expect("file").to_string_lossy();
        let mut flags = self.expect.cflags.clone();
        flags.extend(
            self.expect
                .file_cflags
                .get(name.as_ref())
                .into_iter()
                .flatten()
                .cloned(),
        );
        if target == Target::Aarch64 {
            flags = flags
                .into_iter()
                .flat_map(|flag| match self.expect.aarch64_flags.get(&flag) {
                    Some(replacement) => replacement.clone(),
                    None => vec![flag],
                })
                .collect();
        }
        flags
    }

    pub fn in_archive(&self, source: &Path) -> bool {
        let name = source.file_name().expect("file").to_string_lossy();
        self.expect.archive.iter().any(|member| *member == name)
    }
}
