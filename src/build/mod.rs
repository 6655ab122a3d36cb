//! `cargo uniklink build`: from a manifest to a bootable image and its build report.
//!
//! A cargo app is built as a static library for the target's `*-unknown-none` triple (see
//! [`cargo`]), a prebuilt app contributes its objects as they are; either way the inputs go
//! through [`crate::pipeline::link`] with the image kind the architecture boots
//! ([`image_kind`]). The image lands in `<target-dir>/uniklink/<name>-<arch>.elf` beside
//! `<name>-<arch>.json`, where `<target-dir>` is cargo's target directory for the app.

pub mod cargo;
mod components;
pub mod data;
mod report;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use uniklink_config::{App, Arch, Manifest, ResolvedConfig, Target};
use uniklink_linker::image::ImageKind;

use crate::pipeline::{self, LinkError, LinkOptions, LinkOutput, ReportWanted, WeaveOptions};
pub use cargo::CargoProfile;
pub use report::BuildReport;

/// What `build` is asked for besides the manifest.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The manifest target to build; the manifest's first target when `None`.
    pub arch: Option<Arch>,
    pub profile: CargoProfile,
    /// Passed to the inner `cargo build` as given (`--locked`, `--features`, ...).
    pub cargo_args: Vec<OsString>,
    /// Replaces the target directory `cargo metadata` reports for the app, as cargo's own
    /// `--target-dir` does.
    pub target_dir: Option<PathBuf>,
    /// Objects and archives linked beside the app's static library, such as the C archive a
    /// build script compiled.
    pub objects: Vec<PathBuf>,
    /// Link as GNU ld would: every component's `.init_array` registration is a root, so every
    /// component in the library OS's archive stays. For measuring what weaving saves.
    pub conventional: bool,
    /// Write the image without its symbol table, as `strip` would.
    pub strip: bool,
    /// Randomize the layout with this seed, over the manifest's `randomize_layout`.
    pub randomize_layout: Option<u64>,
}

/// `<image>.debug`: where `build` writes the image's DWARF when the app was built with debug
/// info (cargo's `dev` profile), for gdb, addr2line and `run`'s backtraces.
pub fn debug_file_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".debug");
    PathBuf::from(name)
}

/// Where `build` writes for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePaths {
    pub image: PathBuf,
    pub report: PathBuf,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub target: Target,
    pub paths: ImagePaths,
    pub report: BuildReport,
    pub link: LinkOutput,
    /// The app's `cargo metadata` for the target, as the build resolved it (`pkg --sbom`
    /// lists its packages); `None` for prebuilt objects.
    pub metadata: Option<cargo_metadata::Metadata>,
    pub timings: BuildTimings,
}

/// Where a build's time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildTimings {
    /// Resolving the app's dependencies and the inner `cargo build`; zero for a prebuilt app.
    pub cargo: std::time::Duration,
    /// Linking (weaving included) and writing the image, its debug file and its report.
    pub link: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}: the manifest has no {arch} target (it lists: {listed})", manifest.display())]
    NoSuchTarget {
        manifest: PathBuf,
        arch: Arch,
        listed: String,
    },
    #[error(
        "{}: `app.bin` names a binary target; uniklink links apps built as a `staticlib` library",
        manifest.display()
    )]
    BinApp { manifest: PathBuf },
    #[error("cannot run `{command}`: {source}")]
    CargoSpawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`cargo metadata` failed for {}:\n{stderr}", manifest.display())]
    Metadata { manifest: PathBuf, stderr: String },
    #[error("cannot read `cargo metadata` output for {}: {source}", manifest.display())]
    MetadataJson {
        manifest: PathBuf,
        #[source]
        source: cargo_metadata::Error,
    },
    #[error("{}: no package `{package}` (the workspace has: {found})", manifest.display())]
    NoPackage {
        manifest: PathBuf,
        package: String,
        found: String,
    },
    #[error(
        "`{command}` failed ({status}){}",
        help.as_ref().map_or_else(String::new, |help| format!("\n  help: {help}"))
    )]
    CargoFailed {
        command: String,
        status: std::process::ExitStatus,
        /// What to do, when cargo's output says (a dependency needs `std`).
        help: Option<String>,
    },
    #[error("cannot read cargo's JSON messages: {source}")]
    CargoOutput {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cargo built no static library for package `{package}` of {}; its Cargo.toml needs `[lib] crate-type = [\"staticlib\"]`",
        manifest.display()
    )]
    NoStaticlib { manifest: PathBuf, package: String },
    #[error("cannot link {name}-{arch}: {source}")]
    Link {
        name: String,
        arch: Arch,
        #[source]
        source: Box<LinkError>,
    },
    #[error("library-OS components: {source}")]
    Components {
        #[source]
        source: uniklink_config::ComponentSetError,
    },
    #[error("{}: the manifest's `files`: {source}", manifest.display())]
    Data {
        manifest: PathBuf,
        #[source]
        source: data::DataError,
    },
    #[error("{}: cannot create the image of volume `{volume}`: {source}", manifest.display())]
    Volume {
        manifest: PathBuf,
        volume: String,
        /// Boxed: a disk error is several times larger than every other build error.
        #[source]
        source: Box<crate::disk::DiskError>,
    },
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The image kind each architecture boots as.
pub fn image_kind(arch: Arch) -> ImageKind {
    match arch {
        Arch::X86_64 => ImageKind::Pvh,
        Arch::Aarch64 => ImageKind::Virt,
    }
}

/// The manifest target `arch` selects, or its first target.
pub fn select_target(manifest: &Manifest, arch: Option<Arch>) -> Result<Target, BuildError> {
    let found = match arch {
        Some(arch) => manifest.targets.iter().find(|t| t.arch == arch),
        None => manifest.targets.first(),
    };
    found.copied().ok_or_else(|| BuildError::NoSuchTarget {
        manifest: manifest.path.clone(),
        arch: arch.unwrap_or(Arch::X86_64),
        listed: manifest
            .targets
            .iter()
            .map(|t| t.arch.name())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Where `build` puts the image and report of `manifest` for `arch` with `profile`.
pub fn image_paths(
    manifest: &Manifest,
    arch: Arch,
    profile: &CargoProfile,
) -> Result<ImagePaths, BuildError> {
    Ok(image_paths_under(
        manifest,
        arch,
        &target_dir(manifest, arch)?,
        profile,
    ))
}

/// Where they go when the target directory is `target_dir` (`--target-dir`).
pub fn image_paths_under(
    manifest: &Manifest,
    arch: Arch,
    target_dir: &Path,
    profile: &CargoProfile,
) -> ImagePaths {
    paths_in(
        &uniklink_dir(target_dir).join(profile.dir_name()),
        &manifest.name,
        arch,
    )
}

/// The profiles that have an image of `manifest` for `arch` under `target_dir`, newest first:
/// what `report` and `why` read when not told which.
pub fn built_profiles(manifest: &Manifest, arch: Arch, target_dir: &Path) -> Vec<CargoProfile> {
    let Ok(entries) = std::fs::read_dir(uniklink_dir(target_dir)) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, CargoProfile)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            // The inner cargo build's own directory holds no images.
            if name == "cargo" {
                return None;
            }
            let profile = match name.as_str() {
                "debug" => CargoProfile::Dev,
                "release" => CargoProfile::Release,
                _ => CargoProfile::Named(name),
            };
            let report = image_paths_under(manifest, arch, target_dir, &profile).report;
            Some((std::fs::metadata(report).ok()?.modified().ok()?, profile))
        })
        .collect();
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    found.into_iter().map(|(_, profile)| profile).collect()
}

/// uniklink's own directory in the target directory: a directory of images and reports per
/// profile, and the inner cargo build's target directory.
fn uniklink_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("uniklink")
}

fn paths_in(dir: &Path, name: &str, arch: Arch) -> ImagePaths {
    ImagePaths {
        image: dir.join(format!("{name}-{arch}.elf")),
        report: dir.join(format!("{name}-{arch}.json")),
    }
}

/// The app's cargo target directory, as `cargo metadata` reports it for the app's package
/// (so `CARGO_TARGET_DIR` and `build.target-dir` count); `target/` beside the manifest for
/// prebuilt objects, which have no cargo package.
pub fn target_dir(manifest: &Manifest, arch: Arch) -> Result<PathBuf, BuildError> {
    Ok(match &manifest.app {
        App::Cargo { path, .. } => cargo::metadata(&path.join("Cargo.toml"), arch.target_triple())?
            .target_directory
            .into_std_path_buf(),
        App::Prebuilt { .. } => prebuilt_target_dir(manifest),
    })
}

/// Prebuilt objects have no cargo package, so their target directory is beside the manifest.
fn prebuilt_target_dir(manifest: &Manifest) -> PathBuf {
    let dir = match manifest.path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    dir.join("target")
}

/// How many times the profile's boot stack an unoptimized (`dev`) build reserves.
const UNOPTIMIZED_STACK_FACTOR: u64 = 4;

/// Code built without optimization keeps every temporary in its own stack slot: virtio-drivers
/// setting up a network card alone takes some 110 KiB of stack in a `dev` build, which
/// overflows the network profile's 256 KiB boot stack before `main`. So a `dev` build reserves
/// [`UNOPTIMIZED_STACK_FACTOR`] times the profile's `rt.stack_size`; a size the manifest sets
/// is kept as it is.
fn deepen_stack_for_unoptimized_code(config: &mut uniklink_config::ResolvedConfig) {
    let stack = config
        .components
        .iter_mut()
        .filter(|c| c.name == "rt")
        .filter_map(|c| c.params.get_mut("stack_size"))
        .find(|p| p.origin == uniklink_config::Origin::Profile);
    if let Some(stack) = stack
        && let uniklink_config::ParamValue::Size(size) = stack.value
    {
        stack.value = uniklink_config::ParamValue::Size(uniklink_config::ByteSize(
            size.0 * UNOPTIMIZED_STACK_FACTOR,
        ));
        stack.origin = uniklink_config::Origin::Build;
    }
}

/// Builds the image of `manifest` for the selected target and writes it with its report.
pub fn build(manifest: &Manifest, opts: &BuildOptions) -> Result<Built, BuildError> {
    let target = select_target(manifest, opts.arch)?;
    let arch = target.arch;
    let started = std::time::Instant::now();
    let mut config = manifest.resolve();
    if opts.profile == CargoProfile::Dev {
        deepen_stack_for_unoptimized_code(&mut config);
    }

    let (target_dir, inputs, entry, weave, metadata) = match &manifest.app {
        App::Cargo {
            package,
            bin,
            path,
            entry,
        } => {
            if bin.is_some() {
                return Err(BuildError::BinApp {
                    manifest: manifest.path.clone(),
                });
            }
            let entry = match entry {
                Some(entry) => entry.clone(),
                None => arch.libos_entry().to_owned(),
            };
            let cargo_toml = path.join("Cargo.toml");
            let metadata = {
                let _step = tracing::info_span!("step", name = "resolving the app's dependencies")
                    .entered();
                cargo::metadata_with(
                    &cargo_toml,
                    arch.target_triple(),
                    &cargo::lock_flags(&opts.cargo_args),
                )?
            };
            if !metadata.packages.iter().any(|p| *p.name == **package) {
                return Err(BuildError::NoPackage {
                    manifest: cargo_toml,
                    package: package.clone(),
                    found: metadata
                        .workspace_packages()
                        .iter()
                        .map(|p| p.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let target_dir = opts
                .target_dir
                .clone()
                .unwrap_or_else(|| metadata.target_directory.clone().into_std_path_buf());
            // Our own target directory: the flags we force would otherwise invalidate the
            // user's `cargo build` artifacts and theirs ours, rebuilding at every switch.
            let inner_target_dir = uniklink_dir(&target_dir).join("cargo");
            let staticlibs = cargo::build_staticlib(
                &cargo::CargoRequest {
                    manifest_path: &cargo_toml,
                    package,
                    target_triple: arch.target_triple(),
                    profile: &opts.profile,
                    target_dir: &inner_target_dir,
                    passthrough: &opts.cargo_args,
                },
                &metadata,
            )?;
            let weave = if opts.conventional {
                None
            } else {
                components::weave_options(&metadata, &config)?.map(|weave| WeaveOptions {
                    platform: Some(target.platform),
                    ..weave
                })
            };
            (target_dir, staticlibs, entry, weave, Some(metadata))
        }
        App::Prebuilt { objects, entry } => (
            opts.target_dir
                .clone()
                .unwrap_or_else(|| prebuilt_target_dir(manifest)),
            objects.clone(),
            entry.clone(),
            None,
            None,
        ),
    };

    let cargo_done = std::time::Instant::now();
    let paths = image_paths_under(manifest, arch, &target_dir, &opts.profile);
    if let Some(dir) = paths.image.parent() {
        std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    create_missing_volumes(manifest, &config)?;
    let data = data_object(manifest, &config, arch, &paths)?;
    let inputs = inputs
        .into_iter()
        .chain(opts.objects.iter().cloned())
        .chain(data)
        .collect();
    let link_opts = LinkOptions {
        entry,
        keep: config.keep.clone(),
        image: image_kind(arch),
        build_id_salt: build_id_salt(&config, target),
        randomize_layout: opts.randomize_layout.or(config.randomize_layout),
        debug_file: Some(debug_file_path(&paths.image)),
        weave,
        strip: opts.strip,
        report: ReportWanted::ALL,
        ..LinkOptions::new(inputs, paths.image.clone())
    };
    let link_step = tracing::info_span!("step", name = "linking").entered();
    let link = pipeline::link(&link_opts).map_err(|source| BuildError::Link {
        name: manifest.name.clone(),
        arch,
        source: Box::new(source),
    })?;
    let report = BuildReport::new(&config, target, &link_opts, &link);
    report.write(&paths.report)?;
    drop(link_step);
    Ok(Built {
        target,
        paths,
        report,
        link,
        metadata,
        timings: BuildTimings {
            cargo: cargo_done - started,
            link: cargo_done.elapsed(),
        },
    })
}

/// Creates the image of every volume that has none yet, formatted with the guest's file
/// system; an existing image is the volume's data and stays as it is.
fn create_missing_volumes(manifest: &Manifest, config: &ResolvedConfig) -> Result<(), BuildError> {
    for volume in &config.volumes {
        if volume.image.exists() {
            continue;
        }
        if let Some(dir) = volume.image.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        match crate::disk::create(&volume.image, volume.size.bytes()) {
            Ok(()) => {}
            // Another build of the same manifest made it meanwhile; `create` never replaces.
            Err(_) if volume.image.exists() => continue,
            Err(source) => {
                return Err(BuildError::Volume {
                    manifest: manifest.path.clone(),
                    volume: volume.name.clone(),
                    source: Box::new(source),
                });
            }
        }
        tracing::info!(
            "created volume image {} ({})",
            volume.image.display(),
            volume.size
        );
    }
    Ok(())
}

/// Writes the object holding the manifest's baked files and volume table beside the image
/// (`<name>-<arch>.data.o`) and returns its path, or removes a stale one and returns `None`
/// when the manifest bakes nothing.
fn data_object(
    manifest: &Manifest,
    config: &ResolvedConfig,
    arch: Arch,
    paths: &ImagePaths,
) -> Result<Option<PathBuf>, BuildError> {
    let path = paths.image.with_extension("data.o");
    let bytes = data::object(config, arch).map_err(|source| BuildError::Data {
        manifest: manifest.path.clone(),
        source,
    })?;
    let io = |source| BuildError::Io {
        path: path.clone(),
        source,
    };
    match bytes {
        Some(bytes) => {
            uniklink_linker::write::replace_file(&path, &bytes, false).map_err(io)?;
            Ok(Some(path))
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(None),
        },
    }
}

/// The resolved manifest as it decides the image, without the paths of this checkout, so
/// that the same sources give the same build id wherever they are built.
fn build_id_salt(config: &ResolvedConfig, target: Target) -> Vec<u8> {
    let mut value = serde_json::json!({ "config": config, "target": target });
    if let Some(config) = value.get_mut("config").and_then(|c| c.as_object_mut()) {
        config.remove("manifest");
        if let Some(app) = config.get_mut("app").and_then(|a| a.as_object_mut()) {
            app.remove("path");
            app.remove("objects");
        }
        // Host paths: the baked files' bytes enter the build id through the data object.
        for (list, key) in [("files", "from"), ("volumes", "image")] {
            if let Some(entries) = config.get_mut(list).and_then(|l| l.as_array_mut()) {
                for entry in entries.iter_mut().filter_map(|e| e.as_object_mut()) {
                    entry.remove(key);
                }
            }
        }
    }
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniklink_config::ComponentRegistry;

    fn manifest(text: &str) -> Manifest {
        Manifest::from_text(
            Path::new("/somewhere/uniklink.yaml"),
            text,
            &ComponentRegistry::builtin(),
        )
        .unwrap()
    }

    #[test]
    fn the_first_target_is_built_unless_one_is_named() {
        let m = manifest("name: t\napp: {package: t}\narch: [x86_64, aarch64]\n");
        assert_eq!(select_target(&m, None).unwrap().arch, Arch::X86_64);
        assert_eq!(
            select_target(&m, Some(Arch::Aarch64)).unwrap().arch,
            Arch::Aarch64
        );
        let only = manifest("name: t\napp: {package: t}\narch: [x86_64]\n");
        let error = select_target(&only, Some(Arch::Aarch64)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no aarch64 target (it lists: x86_64)"),
            "{error}"
        );
    }

    #[test]
    fn the_build_id_ignores_where_the_checkout_is() {
        let here = manifest("name: t\napp: {package: t, path: a}\n");
        let there = Manifest::from_text(
            Path::new("/elsewhere/deeper/uniklink.yaml"),
            "name: t\napp: {package: t, path: a}\n",
            &ComponentRegistry::builtin(),
        )
        .unwrap();
        let target = here.targets[0];
        assert_eq!(
            build_id_salt(&here.resolve(), target),
            build_id_salt(&there.resolve(), target)
        );
        let bigger = manifest("name: t\napp: {package: t, path: a}\nmemory: 64MiB\n");
        assert_ne!(
            build_id_salt(&here.resolve(), target),
            build_id_salt(&bigger.resolve(), target)
        );
    }

    #[test]
    fn images_are_named_after_the_manifest_and_arch() {
        let m = manifest("name: hello\napp: {objects: [a.o]}\n");
        let release = image_paths_under(&m, Arch::X86_64, Path::new("/t"), &CargoProfile::Release);
        assert_eq!(
            release.image,
            Path::new("/t/uniklink/release/hello-x86_64.elf")
        );
        assert_eq!(
            release.report,
            Path::new("/t/uniklink/release/hello-x86_64.json")
        );
        let dev = image_paths_under(&m, Arch::X86_64, Path::new("/t"), &CargoProfile::Dev);
        assert_eq!(dev.image, Path::new("/t/uniklink/debug/hello-x86_64.elf"));
        let named = CargoProfile::from_flags(false, Some("bench"));
        let named = image_paths_under(&m, Arch::Aarch64, Path::new("/t"), &named);
        assert_eq!(
            named.image,
            Path::new("/t/uniklink/bench/hello-aarch64.elf")
        );
    }
}
