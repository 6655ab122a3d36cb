//! The API build scripts and other host programs link images with: what `cargo uniklink build`
//! does, as a builder.
//!
//! ```no_run
//! # fn main() -> Result<(), uniklink::ImageError> {
//! let linked = uniklink::Image::from_manifest("uniklink.yaml")?
//!     .profile(uniklink::config::ProfileName::Minimal)
//!     .arch(uniklink::config::Arch::X86_64)
//!     .release(true)
//!     .link()?;
//! println!("{} ({} bytes)", linked.image.display(), linked.report.image_size);
//! # Ok(())
//! # }
//! ```
//!
//! A build script runs before the crate it belongs to is compiled, so it cannot link its own
//! crate: it links another one, the app the manifest names, which cargo builds in a nested
//! `cargo build` for the bare-metal target (see `fixtures/apps/cc-app`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use uniklink_config::{Arch, Manifest, ManifestError, ProfileName};

use crate::budget::BudgetError;
use crate::build::{self, BuildError, BuildOptions, BuildReport, CargoProfile};

/// An image to link from a manifest, with what the caller changes of it.
#[derive(Debug, Clone)]
pub struct Image {
    manifest: Manifest,
    options: BuildOptions,
}

/// A linked image: the files `cargo uniklink build` would have written, and its report.
#[derive(Debug, Clone)]
pub struct Linked {
    pub arch: Arch,
    /// The bootable image, `<target-dir>/uniklink/<name>-<arch>.elf`.
    pub image: PathBuf,
    /// The JSON build report beside it, which `cargo uniklink report` reads.
    pub report_path: PathBuf,
    pub report: BuildReport,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The image was written (so its report can explain the overrun) but is over budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

impl Image {
    /// Loads and validates the manifest; relative paths in it are relative to its directory.
    pub fn from_manifest(path: impl AsRef<Path>) -> Result<Image, ImageError> {
        Ok(Image::new(Manifest::load(path.as_ref())?))
    }

    /// Links an already loaded manifest.
    pub fn new(manifest: Manifest) -> Image {
        Image {
            manifest,
            options: BuildOptions::default(),
        }
    }

    /// The component parameter profile, instead of the manifest's `profile`.
    pub fn profile(mut self, profile: ProfileName) -> Image {
        self.manifest.profile = profile;
        self
    }

    /// Which of the manifest's architectures to link (default: the first listed).
    pub fn arch(mut self, arch: Arch) -> Image {
        self.options.arch = Some(arch);
        self
    }

    /// Builds the app with cargo's release profile instead of the dev profile.
    pub fn release(mut self, release: bool) -> Image {
        self.options.profile = if release {
            CargoProfile::Release
        } else {
            CargoProfile::Dev
        };
        self
    }

    /// An argument for the inner `cargo build` of the app (`--features`, `--locked`, ...).
    pub fn cargo_arg(mut self, arg: impl Into<OsString>) -> Image {
        self.options.cargo_args.push(arg.into());
        self
    }

    /// An object or archive linked beside the app, such as a C archive built with `cc`.
    pub fn object(mut self, path: impl Into<PathBuf>) -> Image {
        self.options.objects.push(path.into());
        self
    }

    /// Where the image goes instead of the app's cargo target directory: the image and its
    /// report land in `<dir>/uniklink/`.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Image {
        self.options.target_dir = Some(dir.into());
        self
    }

    /// The manifest as it will be linked.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Builds the app, links the image, writes it with its report and checks the manifest's
    /// image size budget.
    pub fn link(self) -> Result<Linked, ImageError> {
        let built = build::build(&self.manifest, &self.options)?;
        if crate::budget::gate(&self.manifest.budgets, self.options.profile.name()).is_ok() {
            crate::budget::check_image_size(
                &self.manifest.budgets,
                &built.paths.image,
                built.report.image_size,
            )?;
        }
        Ok(Linked {
            arch: built.target.arch,
            image: built.paths.image,
            report_path: built.paths.report,
            report: built.report,
        })
    }
}
