//! Loading objects and archives, resolving symbols, the section graph and what it keeps.
//!
//! Phases, each borrowing the previous one's output: [`input`] maps files and enumerates
//! archive members, [`object`] parses them, [`resolve`] builds the [`resolve::SymbolDb`],
//! [`graph`] builds the [`graph::SectionGraph`] and decides what is kept.

pub mod component;
pub mod debug;
pub mod eh_frame;
pub mod error;
pub mod graph;
pub mod id;
pub mod input;
pub mod object;
pub mod report;
pub mod resolve;
pub mod weave;

#[cfg(test)]
mod test_objects;

pub use error::{Error, Result};
