//! Layout, relocation per architecture, glue generation and image writers.
//!
//! Phases, each borrowing the previous one's output: [`layout`] assigns output sections,
//! segments and symbol addresses; [`relocate`] builds the image bytes through the
//! [`arch::Arch`] table; [`write`] serialises and atomically writes the file.

pub mod arch;
pub mod debug;
pub mod eh_frame_hdr;
pub mod error;
pub mod glue;
pub mod image;
pub mod layout;
pub mod relocate;
pub mod thunks;
pub mod write;

pub use error::{Error, Result};
