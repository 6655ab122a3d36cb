//! `cargo uniklink pkg`: build the manifest's images and write them as an OCI image layout.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use miette::{IntoDiagnostic, miette};
use uniklink::build::{self, BuildOptions};
use uniklink::oci;

use super::cargo_args::{CargoBuildArgs, ManifestArgs, OutputArgs};

/// Build the manifest's images and write them as an OCI image layout: an image index with one
/// manifest per architecture, each with the image as a layer and a config recording how it
/// runs.
#[derive(Debug, clap::Args)]
pub struct PkgArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    /// The layout's directory; by default `<name>.oci` beside the images.
    #[arg(long, short = 'o', value_name = "DIR")]
    output: Option<PathBuf>,
    /// The tag the layout's index names the image by.
    #[arg(long, default_value = oci::DEFAULT_TAG)]
    tag: String,
    /// Attach a CycloneDX SBOM to each image (an OCI 1.1 referrer): the packages `cargo
    /// metadata` resolved for it, each marked by whether its code is in the image.
    #[arg(long)]
    sbom: bool,
    /// Print the layout's digests as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cargo: CargoBuildArgs,
    #[command(flatten)]
    pub output_args: OutputArgs,
    /// Arguments for the inner `cargo build`, after `--`.
    #[arg(last = true, value_name = "CARGO-ARGS")]
    cargo_args: Vec<OsString>,
}

pub fn run(args: PkgArgs) -> miette::Result<ExitCode> {
    oci::check_tag(&args.tag).map_err(|e| miette!("--tag: {e}"))?;
    if let Some(out) = &args.output {
        oci::check_output(out).map_err(|e| miette!("{}", super::build::chain(&e)))?;
    }
    let manifest = args.manifest.load()?;
    let mut cargo_args = args.cargo.to_cargo(&args.output_args);
    cargo_args.extend(args.cargo_args);
    let mut built = Vec::new();
    for target in &manifest.targets {
        let opts = BuildOptions {
            arch: Some(target.arch),
            profile: args.cargo.cargo_profile(),
            cargo_args: cargo_args.clone(),
            target_dir: args.manifest.target_dir.clone(),
            objects: Vec::new(),
            conventional: false,
            strip: false,
            randomize_layout: None,
        };
        built.push(
            build::build(&manifest, &opts).map_err(|e| miette!("{}", super::build::chain(&e)))?,
        );
    }
    let out = match &args.output {
        Some(out) => out.clone(),
        None => built[0]
            .paths
            .image
            .with_file_name(format!("{}.oci", manifest.name)),
    };
    let opts = oci::PackageOptions {
        tag: args.tag.clone(),
        sbom: args.sbom,
    };
    let packaged = oci::package(&manifest.resolve(), &built, &out, &opts)
        .map_err(|e| miette!("{}", super::build::chain(&e)))?;
    if args.json {
        println!("{}", serde_json::to_string(&packaged).into_diagnostic()?);
    } else if !args.output_args.quiet {
        eprintln!(
            "uniklink: packaged {} ({}) as {}:{} (index {})",
            manifest.name,
            packaged
                .manifests
                .iter()
                .map(|m| m.arch.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            out.display(),
            packaged.tag,
            packaged.index_digest
        );
    }
    Ok(ExitCode::SUCCESS)
}
