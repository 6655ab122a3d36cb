//! `cargo uniklink push` and `pull`: OCI image layouts to and from a registry.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::miette;
use uniklink::oci::{self, registry::Reference};

/// Push an OCI image layout that `pkg` wrote to a registry.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Where to: `host[:port]/name[:tag]` (the tag defaults to `latest`).
    reference: String,
    /// The layout to push.
    #[arg(long, value_name = "DIR")]
    layout: PathBuf,
    /// The tag of the layout's image to push.
    #[arg(long, default_value = oci::DEFAULT_TAG)]
    tag: String,
    /// Talk plain HTTP (a registry on loopback).
    #[arg(long)]
    insecure: bool,
}

/// Pull an image from a registry into an OCI image layout, every blob checked against its
/// digest.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// What: `host[:port]/name[:tag]` or `host[:port]/name@sha256:<hex>`.
    reference: String,
    /// The layout's directory; `<name>.oci` in the current directory by default.
    #[arg(long, short = 'o', value_name = "DIR")]
    output: Option<PathBuf>,
    /// Talk plain HTTP (a registry on loopback).
    #[arg(long)]
    insecure: bool,
}

fn reference(text: &str) -> miette::Result<Reference> {
    text.parse().map_err(|e| miette!("{e}"))
}

pub fn push(args: PushArgs) -> miette::Result<ExitCode> {
    let reference = reference(&args.reference)?;
    let digest = oci::registry::push(&args.layout, &args.tag, &reference, args.insecure)
        .map_err(|e| miette!("{}", super::build::chain(&e)))?;
    eprintln!("uniklink: pushed {reference} ({digest})");
    Ok(ExitCode::SUCCESS)
}

pub fn pull(args: PullArgs) -> miette::Result<ExitCode> {
    let reference = reference(&args.reference)?;
    let out = args.output.unwrap_or_else(|| {
        let name = reference.repository.rsplit('/').next().unwrap_or("image");
        PathBuf::from(format!("{name}.oci"))
    });
    oci::check_output(&out).map_err(|e| miette!("{}", super::build::chain(&e)))?;
    let digest = oci::registry::pull(&reference, &out, oci::DEFAULT_TAG, args.insecure)
        .map_err(|e| miette!("{}", super::build::chain(&e)))?;
    eprintln!(
        "uniklink: pulled {reference} ({digest}) into {}:{}",
        out.display(),
        oci::DEFAULT_TAG
    );
    Ok(ExitCode::SUCCESS)
}
