//! The size report of a finished link: the linker's layout described as a
//! [`Placement`] for the analyzer's report model, with the weave's component decisions.

use std::path::{Path, PathBuf};

use uniklink_analyzer::component::{Attribution, ComponentError, Components, CrateOwners};
use uniklink_analyzer::input::Inputs;
use uniklink_analyzer::report::{
    Content, Decision, PlacedChunk, PlacedSection, PlacedSegment, Placement, ReportInputs,
    SizeReport,
};
use uniklink_linker::layout::{ChunkKind, Layout, Rank, SegmentKind};

pub use uniklink_analyzer::report::{By, Diff, Query, Table, render};

use crate::pipeline::WeaveReport;

/// Where `layout` put every loaded byte, segment by segment.
pub fn placement(layout: &Layout<'_>) -> Placement {
    let segments = layout
        .segments
        .iter()
        .map(|segment| PlacedSegment {
            mem_size: segment.mem_size,
            headers: if segment.kind == SegmentKind::Headers {
                layout.headers_size
            } else {
                0
            },
            sections: layout
                .sections
                .iter()
                .filter(|s| s.rank.segment() == segment.kind)
                .map(|s| PlacedSection {
                    name: s.name_str(),
                    size: s.size,
                    loaded: s.rank != Rank::Tbss,
                    chunks: s
                        .chunks
                        .iter()
                        .map(|c| PlacedChunk {
                            content: match c.kind {
                                ChunkKind::Input(id) | ChunkKind::EhFrame(id) => Content::Input(id),
                                ChunkKind::Strings(_) => Content::MergedStrings,
                                ChunkKind::Got => Content::Got,
                                ChunkKind::EhFrameHdr(_) => Content::EhFrameHdr,
                                ChunkKind::Commons => Content::Commons,
                                ChunkKind::Thunks(_) => Content::Thunks,
                                ChunkKind::PageTables(_) => Content::PageTables,
                            },
                            size: c.size,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Placement { segments }
}

/// The size report of `layout`. Without weaving there are no components, and sections are
/// attributed to the app, the sysroot crates and the C archives they came from.
pub fn sizes(
    inputs: &Inputs,
    layout: &Layout<'_>,
    components: Option<&Components>,
    crates: Option<&CrateOwners>,
    woven: Option<&WeaveReport>,
) -> Result<SizeReport, ComponentError> {
    let none;
    let components = match components {
        Some(c) => c,
        None => {
            none = Components::new(Vec::new())?;
            &none
        }
    };
    let no_crates = CrateOwners::default();
    let attribution =
        Attribution::compute(inputs, layout.db, components, crates.unwrap_or(&no_crates));
    let decisions: Vec<Decision> = woven
        .map(|w| {
            w.components
                .iter()
                .map(|c| Decision {
                    name: c.name.clone(),
                    kept: c.live,
                    reason: c.reason.clone(),
                    chain: c.chain.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(SizeReport::compute(&ReportInputs {
        inputs,
        graph: layout.graph,
        attribution: &attribution,
        components,
        components_decided: &decisions,
        placement: &placement(layout),
    }))
}

/// A kept or dropped section as the build report lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SavedSection {
    pub object: String,
    pub section: String,
    pub size: u64,
}

/// The parts of a build report (`<name>-<arch>.json`) that `report`, `why` and `diff` read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SavedReport {
    pub name: String,
    pub arch: String,
    pub image: PathBuf,
    /// Size of the image file.
    pub image_size: u64,
    /// What `strip` would leave of it; reports written before they had it lack it.
    #[serde(default)]
    pub stripped_size: Option<u64>,
    pub dropped_sections: Vec<SavedSection>,
    pub sizes: SizeReport,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the build report {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not a uniklink build report, or one written before reports had sizes \
         (rebuild the image): {source}",
        path.display()
    )]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is inconsistent: {reason}", path.display())]
    Inconsistent { path: PathBuf, reason: String },
}

impl SavedReport {
    pub fn load(path: &Path) -> Result<SavedReport, ReportError> {
        let text = std::fs::read(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        SavedReport::from_json(path, &text)
    }

    /// Parses and checks a report's JSON text; `path` names it in errors.
    pub fn from_json(path: &Path, text: &[u8]) -> Result<SavedReport, ReportError> {
        let report: SavedReport =
            serde_json::from_slice(text).map_err(|source| ReportError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        report
            .sizes
            .check()
            .map_err(|reason| ReportError::Inconsistent {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(report)
    }

    /// `hello-x86_64.elf`, for titles.
    pub fn image_name(&self) -> String {
        self.image.file_name().map_or_else(
            || format!("{}-{}", self.name, self.arch),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}
