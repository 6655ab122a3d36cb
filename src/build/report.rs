//! The JSON build report written beside each image: what went in, what was kept and dropped,
//! and how large each output section is.

use std::path::{Path, PathBuf};

use serde::Serialize;
use uniklink_analyzer::report::SizeReport;
use uniklink_config::{ResolvedConfig, Target};

use super::BuildError;
use crate::pipeline::{LinkOptions, LinkOutput};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSection {
    pub object: String,
    pub section: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportOutputSection {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildReport {
    pub name: String,
    pub arch: String,
    pub platform: String,
    pub image: PathBuf,
    pub image_size: u64,
    /// What `strip` would leave of the image: without the symbol table.
    pub stripped_size: u64,
    pub build_id: Option<String>,
    /// The layout randomization seed the image was linked with; `null` for the one
    /// deterministic layout.
    pub layout_seed: Option<u64>,
    /// The DWARF beside the image (`<image>.debug`) and its size, when the app had debug info;
    /// not part of `image_size`.
    pub debug_file: Option<PathBuf>,
    pub debug_file_size: Option<u64>,
    pub entry: String,
    pub entry_addr: u64,
    pub inputs: Vec<PathBuf>,
    pub keep: Vec<String>,
    pub output_sections: Vec<ReportOutputSection>,
    pub kept_sections: Vec<ReportSection>,
    pub dropped_sections: Vec<ReportSection>,
    /// Library-OS components: live or dropped and why, init order, parameter values.
    pub weave: Option<crate::pipeline::WeaveReport>,
    /// What `report`, `why` and `diff` read: sizes, retained sizes, owners, why-chains.
    pub sizes: SizeReport,
}

impl BuildReport {
    pub fn new(
        config: &ResolvedConfig,
        target: Target,
        opts: &LinkOptions,
        link: &LinkOutput,
    ) -> BuildReport {
        let sections = |list: &[crate::pipeline::SectionInfo]| {
            list.iter()
                .map(|s| ReportSection {
                    object: s.object.clone(),
                    section: s.section.clone(),
                    size: s.size,
                })
                .collect()
        };
        BuildReport {
            name: config.name.clone(),
            arch: target.arch.name().to_owned(),
            platform: target.platform.name().to_owned(),
            image: opts.output.clone(),
            image_size: link.written.size,
            stripped_size: link.written.stripped_size,
            build_id: link.build_id.map(|id| id.to_hex()),
            layout_seed: opts.randomize_layout,
            debug_file: link.debug_file.as_ref().map(|(path, _)| path.clone()),
            debug_file_size: link.debug_file.as_ref().map(|&(_, size)| size),
            entry: opts.entry.clone(),
            entry_addr: link.entry,
            inputs: opts.inputs.clone(),
            keep: opts.keep.clone(),
            output_sections: link
                .output_sections
                .iter()
                .map(|s| ReportOutputSection {
                    name: s.name.clone(),
                    addr: s.addr,
                    size: s.size,
                })
                .collect(),
            kept_sections: sections(&link.kept),
            dropped_sections: sections(&link.dropped),
            weave: link.weave.clone(),
            sizes: link
                .sizes
                .clone()
                .expect("build links with ReportWanted::ALL"),
        }
    }

    /// Writes the report atomically, like the image.
    pub fn write(&self, path: &Path) -> Result<(), BuildError> {
        let io = |source| BuildError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| io(e.into()))?;
        json.push(b'\n');
        uniklink_linker::write::replace_file(path, &json, false).map_err(io)
    }
}
