//! Real C programs nobody on this project wrote: the sources that crates.io packages vendor
//! (SQLite's amalgamation, Lua, zlib), each compiled with musl together with a driver of ours
//! from `fixtures/real/`. `cargo metadata` on `fixtures/real/Cargo.toml` downloads the packages
//! without building them, which is all that is needed to reach their C files.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Error;
use crate::toolchain::{BASE_CFLAGS, Toolchain};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Sqlite,
    Lua,
    Zlib,
}

impl Program {
    pub const ALL: [Program; 3] = [Program::Sqlite, Program::Lua, Program::Zlib];

    pub fn name(self) -> &'static str {
        match self {
            Program::Sqlite => "sqlite",
            Program::Lua => "lua",
            Program::Zlib => "zlib",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Program::Sqlite => "libsqlite3-sys",
            Program::Lua => "lua-src",
            Program::Zlib => "libz-sys",
        }
    }

    fn cflags(self) -> &'static [&'static str] {
        match self {
            // No threads and no dlopen: neither exists in a static musl executable.
            Program::Sqlite => &["-DSQLITE_THREADSAFE=0", "-DSQLITE_OMIT_LOAD_EXTENSION"],
            Program::Lua => &["-DLUA_USE_POSIX"],
            Program::Zlib => &[],
        }
    }

    /// The directory holding the vendored C, inside the package's directory.
    fn source_dir(self, package_dir: &Path) -> Result<PathBuf, Error> {
        match self {
            Program::Sqlite => Ok(package_dir.join("sqlite3")),
            Program::Zlib => Ok(package_dir.join("src/zlib")),
            // lua-src carries several Lua releases side by side; take the newest 5.4.
            Program::Lua => fs::read_dir(package_dir)
                .map_err(Error::io(package_dir))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with("lua-5.4."))
                })
                .max_by_key(|path| lua_patch_level(path))
                .ok_or_else(|| Error::NoSources {
                    dir: package_dir.join("lua-5.4.*"),
                }),
        }
    }

    fn is_library_source(self, file_name: &str) -> bool {
        match self {
            // The amalgamation is one file; the directory also holds a WASI-only VFS.
            Program::Sqlite => file_name == "sqlite3.c",
            // lua.c and luac.c are the stand-alone programs, each with its own main.
            Program::Lua => file_name.ends_with(".c") && !matches!(file_name, "lua.c" | "luac.c"),
            Program::Zlib => file_name.ends_with(".c"),
        }
    }

    /// Our driver, which exercises the library and prints what it got.
    pub fn driver(self) -> PathBuf {
        fixtures_dir().join(format!("{}_driver.c", self.name()))
    }
}

fn lua_patch_level(path: &Path) -> u32 {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.rsplit('.').next())
        .and_then(|patch| patch.parse().ok())
        .unwrap_or(0)
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/real")
}

/// The compiled objects of one program: its driver first, then the library's objects.
#[derive(Debug, Clone)]
pub struct Built {
    pub driver: PathBuf,
    pub library: Vec<PathBuf>,
}

impl Built {
    pub fn objects(&self) -> Vec<PathBuf> {
        std::iter::once(self.driver.clone())
            .chain(self.library.iter().cloned())
            .collect()
    }
}

/// Compiles `program` and its driver, or returns the objects a previous run left in
/// `cache_root` for exactly the same sources and flags.
pub fn build(program: Program, toolchain: &Toolchain, cache_root: &Path) -> Result<Built, Error> {
    let manifest = fixtures_dir().join("Cargo.toml");
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(&manifest)
        .exec()
        .map_err(|source| Error::Metadata {
            manifest: manifest.clone(),
            source,
        })?;
    let package = metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == program.package())
        .ok_or_else(|| Error::MissingPackage {
            package: program.package().into(),
            manifest: manifest.clone(),
        })?;
    let package_dir = package
        .manifest_path
        .parent()
        .expect("a manifest path names a file in a directory")
        .as_std_path();
    let source_dir = program.source_dir(package_dir)?;

    let mut sources: Vec<PathBuf> = fs::read_dir(&source_dir)
        .map_err(Error::io(&source_dir))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| program.is_library_source(name))
        })
        .collect();
    sources.sort();
    if sources.is_empty() {
        return Err(Error::NoSources { dir: source_dir });
    }

    let mut flags: Vec<String> = program.cflags().iter().map(|f| f.to_string()).collect();
    flags.push(format!("-I{}", source_dir.display()));
    let driver = program.driver();

    let key = cache_key(program, &source_dir, &driver, &flags, toolchain)?;
    let dir = cache_root.join(format!("{}-{key:016x}", program.name()));
    let object_in = |dir: &Path, source: &Path| {
        dir.join(source.file_stem().expect("source files have names"))
            .with_extension("o")
    };
    let built = |dir: &Path| Built {
        driver: object_in(dir, &driver),
        library: sources.iter().map(|s| object_in(dir, s)).collect(),
    };
    if dir.is_dir() {
        return Ok(built(&dir));
    }

    fs::create_dir_all(cache_root).map_err(Error::io(cache_root))?;
    // Compile into a private directory and rename it into place, so an interrupted or
    // concurrent build never leaves a half-filled cache entry behind.
    let scratch = cache_root.join(format!(
        ".{}-{key:016x}.{}",
        program.name(),
        std::process::id()
    ));
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(Error::io(&scratch))?;
    }
    fs::create_dir_all(&scratch).map_err(Error::io(&scratch))?;
    let jobs: Vec<&PathBuf> = std::iter::once(&driver).chain(&sources).collect();
    compile_all(toolchain, &jobs, &flags, |source| {
        object_in(&scratch, source)
    })?;
    match fs::rename(&scratch, &dir) {
        Ok(()) => {}
        // Another process finished the same entry first; its objects are identical.
        Err(_) if dir.is_dir() => {
            fs::remove_dir_all(&scratch).map_err(Error::io(&scratch))?;
        }
        Err(source) => return Err(Error::Io { path: dir, source }),
    }
    Ok(built(&dir))
}

fn compile_all(
    toolchain: &Toolchain,
    sources: &[&PathBuf],
    flags: &[String],
    object_for: impl Fn(&Path) -> PathBuf + Sync,
) -> Result<(), Error> {
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(sources.len()) {
            scope.spawn(|| {
                while let Some(source) = sources.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(error) = toolchain.compile(source, &object_for(source), flags) {
                        first_error
                            .lock()
                            .expect("no compile worker panics")
                            .get_or_insert(error);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("no compile worker panics") {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Hashes everything that decides the objects' contents: every C file and header in the
/// source directory, the driver, the flags and the compiler. std's SipHash is not stable
/// across Rust releases, which costs at worst one rebuild.
fn cache_key(
    program: Program,
    source_dir: &Path,
    driver: &Path,
    flags: &[String],
    toolchain: &Toolchain,
) -> Result<u64, Error> {
    let mut hasher = DefaultHasher::new();
    program.name().hash(&mut hasher);
    BASE_CFLAGS.hash(&mut hasher);
    flags.hash(&mut hasher);
    toolchain.cc.hash(&mut hasher);
    toolchain.libc.hash(&mut hasher);
    let mut files: Vec<PathBuf> = fs::read_dir(source_dir)
        .map_err(Error::io(source_dir))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "c" || ext == "h"))
        .collect();
    files.sort();
    files.push(driver.to_path_buf());
    for file in files {
        file.file_name().hash(&mut hasher);
        fs::read(&file).map_err(Error::io(&file))?.hash(&mut hasher);
    }
    Ok(hasher.finish())
}
