//! uniklink: the link pipeline and the API build scripts use.
//!
//! The pipeline reads top to bottom: load → resolve → graph → weave → layout → relocate →
//! write → report. Each phase borrows the previous phase's output; none reaches back.

pub mod budget;
pub mod build;
pub mod disk;
mod image;
pub mod oci;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod symbolize;

pub use image::{Image, ImageError, Linked};
/// The manifest model, so build scripts need no second dependency to name profiles and
/// architectures.
pub use uniklink_config as config;
