//! The cargo flags `build` and `run` take after the subcommand name. Cargo does not forward
//! its own flags to an external subcommand (`cargo --locked uniklink build` keeps
//! `--locked` to itself), so they are accepted here and handed to the inner `cargo build`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::ColorChoice;
use miette::{IntoDiagnostic, miette};
use uniklink::build::{self, CargoProfile, ImagePaths};
use uniklink_config::{App, Arch, Manifest};

/// The file `-m` defaults to, searched from the current directory upwards.
pub const MANIFEST_FILE: &str = "uniklink.yaml";

/// Which manifest, which app package and where the artifacts go.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ManifestArgs {
    /// The uniklink manifest [default: uniklink.yaml in the current directory or the nearest
    /// parent directory that has one]
    #[arg(short = 'm', long = "manifest", value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The app's Cargo.toml, instead of the manifest's `app.path`; without -m, uniklink.yaml is
    /// searched from its directory upwards.
    // Not clap_cargo::Manifest: it claims `-m`, which is the uniklink manifest here.
    #[arg(long, value_name = "PATH", help_heading = "Cargo options")]
    pub manifest_path: Option<PathBuf>,
    /// The app package, instead of the manifest's `app.package`.
    // Not clap_cargo::Workspace: one image is one package, so `--workspace` and `--exclude`
    // would have nothing to mean.
    #[arg(short = 'p', long, value_name = "SPEC", help_heading = "Cargo options")]
    pub package: Option<String>,
    /// Directory for all generated artifacts [default: the app's cargo target directory]
    #[arg(long, value_name = "DIRECTORY", help_heading = "Cargo options")]
    pub target_dir: Option<PathBuf>,
}

impl ManifestArgs {
    /// The manifest file: `-m`, else the nearest `uniklink.yaml` upwards from the app's
    /// `--manifest-path` directory or the current directory.
    pub fn manifest_file(&self) -> miette::Result<PathBuf> {
        if let Some(path) = &self.manifest {
            return Ok(path.clone());
        }
        let start = match self.manifest_path.as_deref().and_then(Path::parent) {
            Some(dir) if !dir.as_os_str().is_empty() => std::path::absolute(dir),
            _ => std::env::current_dir(),
        }
        .into_diagnostic()?;
        find_manifest(&start).ok_or_else(|| {
            miette!(
                help = "name one with -m FILE, or create one with `cargo uniklink init`",
                "could not find `{MANIFEST_FILE}` in `{}` or any parent directory",
                start.display()
            )
        })
    }

    /// The manifest with `--manifest-path` and `-p` applied to its app.
    pub fn load(&self) -> miette::Result<Manifest> {
        let mut manifest = Manifest::load(&self.manifest_file()?)?;
        if self.manifest_path.is_none() && self.package.is_none() {
            return Ok(manifest);
        }
        let App::Cargo { package, path, .. } = &mut manifest.app else {
            return Err(miette!(
                "{}: the app is prebuilt objects; --manifest-path and -p name a cargo package",
                manifest.path.display()
            ));
        };
        if let Some(manifest_path) = &self.manifest_path {
            if manifest_path.file_name() != Some("Cargo.toml".as_ref()) {
                return Err(miette!(
                    "the manifest path must be a path to a Cargo.toml file: {}",
                    manifest_path.display()
                ));
            }
            let dir = std::path::absolute(manifest_path).into_diagnostic()?;
            *path = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        }
        if let Some(spec) = &self.package {
            package.clone_from(spec);
        }
        Ok(manifest)
    }

    /// Where `build` puts the image and report of `manifest` for `arch` with `profile`; without
    /// one, those of the profile built last (dev when none is).
    pub fn image_paths(
        &self,
        manifest: &Manifest,
        arch: Arch,
        profile: Option<&CargoProfile>,
    ) -> miette::Result<ImagePaths> {
        let target_dir = match &self.target_dir {
            Some(dir) => dir.clone(),
            None => build::target_dir(manifest, arch).map_err(|e| miette!("{e}"))?,
        };
        let newest = || {
            build::built_profiles(manifest, arch, &target_dir)
                .into_iter()
                .next()
        };
        let profile = match profile {
            Some(profile) => profile.clone(),
            None => newest().unwrap_or_default(),
        };
        Ok(build::image_paths_under(
            manifest,
            arch,
            &target_dir,
            &profile,
        ))
    }
}

/// The nearest `uniklink.yaml` in `dir` or a parent of it.
pub fn find_manifest(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(MANIFEST_FILE))
        .find(|f| f.is_file())
}

/// How the inner `cargo build` compiles the app.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Cargo options")]
pub struct CargoBuildArgs {
    /// Build the app with the release profile.
    #[arg(short = 'r', long, conflicts_with = "profile")]
    pub release: bool,
    /// Build the app with the given cargo profile.
    #[arg(long, value_name = "PROFILE-NAME")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub features: clap_cargo::Features,
    /// Assert that `Cargo.lock` will remain unchanged.
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network.
    #[arg(long)]
    pub offline: bool,
    /// Equivalent to specifying both --locked and --offline.
    #[arg(long)]
    pub frozen: bool,
}

impl CargoBuildArgs {
    pub fn cargo_profile(&self) -> CargoProfile {
        CargoProfile::from_flags(self.release, self.profile.as_deref())
    }

    /// The flags for the inner `cargo build`, except the profile, which `cargo_profile`
    /// carries.
    pub fn to_cargo(&self, output: &OutputArgs) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let features = &self.features;
        if !features.features.is_empty() {
            args.extend(["--features".into(), features.features.join(",").into()]);
        }
        for (set, flag) in [
            (features.all_features, "--all-features"),
            (features.no_default_features, "--no-default-features"),
            (self.locked, "--locked"),
            (self.offline, "--offline"),
            (self.frozen, "--frozen"),
            (output.quiet, "--quiet"),
        ] {
            if set {
                args.push(flag.into());
            }
        }
        args.extend((0..output.verbose).map(|_| OsString::from("--verbose")));
        args.push(format!("--color={}", output.color).into());
        args
    }
}

/// How much `cargo uniklink` says and how.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Use verbose output: each step is logged (-vv: debug logs); passed on to cargo.
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print neither progress nor summaries, only errors; passed on to cargo.
    #[arg(short = 'q', long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Coloring: auto, always, never.
    #[arg(long, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// The form of what `build` and `run` print on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    /// Sentences on stderr.
    #[default]
    Human,
    /// One JSON object per line on stdout, each with a `reason`.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        cargo: CargoBuildArgs,
        #[command(flatten)]
        output: OutputArgs,
    }

    fn forwarded(args: &[&str]) -> Vec<String> {
        let flags =
            Flags::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
        flags
            .cargo
            .to_cargo(&flags.output)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn cargo_flags_reach_the_inner_build_as_cargo_spells_them() {
        assert_eq!(forwarded(&[]), ["--color=auto"]);
        assert_eq!(
            forwarded(&[
                "--profile",
                "small",
                "-F",
                "a b",
                "--features",
                "c",
                "--no-default-features",
                "--locked",
                "--offline",
                "-vv",
                "--color",
                "never",
            ]),
            [
                "--features",
                "a,b,c",
                "--no-default-features",
                "--locked",
                "--offline",
                "--verbose",
                "--verbose",
                "--color=never",
            ]
        );
        assert_eq!(
            forwarded(&["--all-features", "--frozen", "-q"]),
            ["--all-features", "--frozen", "--quiet", "--color=auto"]
        );
    }

    #[test]
    fn release_and_profile_exclude_each_other() {
        assert!(Flags::try_parse_from(["t", "--release", "--profile", "x"]).is_err());
        let flags = Flags::try_parse_from(["t", "-r"]).unwrap();
        assert_eq!(flags.cargo.cargo_profile(), CargoProfile::Release);
        let flags = Flags::try_parse_from(["t", "--profile", "small"]).unwrap();
        assert_eq!(
            flags.cargo.cargo_profile(),
            CargoProfile::Named("small".to_owned())
        );
        let flags = Flags::try_parse_from(["t", "--profile", "dev"]).unwrap();
        assert_eq!(flags.cargo.cargo_profile(), CargoProfile::Dev);
    }

    #[test]
    fn the_manifest_is_found_in_the_nearest_parent() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("app/src/bin");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_manifest(&deep), None);
        std::fs::write(root.path().join(MANIFEST_FILE), "").unwrap();
        assert_eq!(find_manifest(&deep), Some(root.path().join(MANIFEST_FILE)));
        std::fs::write(root.path().join("app").join(MANIFEST_FILE), "").unwrap();
        assert_eq!(
            find_manifest(&deep),
            Some(root.path().join("app").join(MANIFEST_FILE))
        );
    }
}
