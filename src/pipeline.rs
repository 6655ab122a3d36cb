//! The link pipeline: load → resolve → graph → layout → relocate → write. Each phase borrows
//! the previous phase's output; the result carries what reports need.
//!
//! Weaving (`pipeline/weave.rs`) happens on the one resolution and graph: the glue object's
//! names are declared to resolution, the graph (without the components' init registrations
//! as roots) decides which components are live, and the glue generated from that decision
//! is attached to the symbols and the graph, which mark what it reaches from what they
//! marked already.

use std::path::{Path, PathBuf};

use uniklink_analyzer::graph::{GraphOptions, RootReason, RootRules, SectionGraph};
use uniklink_analyzer::input::Inputs;
use uniklink_analyzer::object::{self, ObjectId, SectionId};
use uniklink_analyzer::report::SizeReport;
use uniklink_analyzer::resolve::{Definition, SymbolDb};
use uniklink_linker::arch;
use uniklink_linker::glue::{GLUE_NAME, MAIN_SYMBOL};
use uniklink_linker::image::{BuildId, ImageKind};
use uniklink_linker::layout::{Layout, LayoutOptions};
use uniklink_linker::relocate;
use uniklink_linker::write::{FilePlan, OutputFile, WriteOptions, Written};

mod weave;

pub use weave::{ComponentReport, WeaveOptions, WeaveReport};

/// What to link and how, as `cargo uniklink link` takes it.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Objects and archives, in any order.
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    pub entry: String,
    /// Image base; the architecture's default when `None`.
    pub base: Option<u64>,
    /// Symbols kept (and pulled from archives) even if nothing references them.
    pub keep: Vec<String>,
    /// Garbage-collect unreferenced sections.
    pub gc: bool,
    /// Leave out the symbol table.
    pub strip: bool,
    /// Symbols whose reference chain from a root should be reported.
    pub why: Vec<String>,
    /// Weave library-OS components: their inits run only if the app reaches them (or the
    /// manifest requires them), from a generated `uniklink_start`. Weaving implies GC.
    pub weave: Option<WeaveOptions>,
    pub image: ImageKind,
    /// Hashed into the build id after the inputs: whatever else decides the image's bytes
    /// (the resolved manifest).
    pub build_id_salt: Vec<u8>,
    /// Randomize the layout with this seed ([`LayoutOptions::randomize`]); it enters the
    /// build id. `None` keeps the one deterministic layout.
    pub randomize_layout: Option<u64>,
    /// Write the inputs' DWARF, relocated, to this file beside the image when they carry any
    /// (and remove a file left there by an earlier link when they carry none).
    pub debug_file: Option<PathBuf>,
    /// What to report besides the image; on large inputs the size report costs more than
    /// the link itself, so it is computed only when asked for.
    pub report: ReportWanted,
    /// Write `.eh_frame_hdr` and `PT_GNU_EH_FRAME` (`link --eh-frame-hdr`).
    pub eh_frame_hdr: bool,
    /// Free the link's tables and unmap its inputs before returning. A process that exits
    /// right after the link leaves that to the kernel, which reclaims the whole address space
    /// at once, where freeing a large link's allocations one by one costs as much as a phase.
    /// (The tables live and die inside [`link`], so a caller's `process::exit` would come
    /// after they are freed; they are leaked here instead, once the image is written.)
    pub free_memory: bool,
}

/// The parts of [`LinkOutput`] that are computed only on request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportWanted {
    /// [`LinkOutput::kept`] and [`LinkOutput::dropped`].
    pub sections: bool,
    /// [`LinkOutput::sizes`]: sizes, retained sizes, owners and why-chains.
    pub sizes: bool,
    /// [`LinkOutput::symbols`], for callers of the library; no report prints it.
    pub symbols: bool,
}

impl ReportWanted {
    /// Everything the build report holds.
    pub const ALL: ReportWanted = ReportWanted {
        sections: true,
        sizes: true,
        symbols: false,
    };
}

impl LinkOptions {
    /// Defaults of the `link` command: entry `_start`, GC on, symbols kept, nothing reported
    /// but the image's sections and symbols.
    pub fn new(inputs: Vec<PathBuf>, output: PathBuf) -> Self {
        Self {
            inputs,
            output,
            entry: "_start".to_owned(),
            base: None,
            keep: Vec::new(),
            gc: true,
            strip: false,
            why: Vec::new(),
            weave: None,
            image: ImageKind::Elf,
            build_id_salt: Vec::new(),
            randomize_layout: None,
            debug_file: None,
            report: ReportWanted::default(),
            eh_frame_hdr: false,
            free_memory: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Analyze(uniklink_analyzer::Error),
    #[error(transparent)]
    Link(#[from] uniklink_linker::Error),
    #[error(transparent)]
    Component(#[from] uniklink_analyzer::component::ComponentError),
    #[error(transparent)]
    Weave(#[from] uniklink_analyzer::weave::WeaveError),
    #[error(transparent)]
    Glue(#[from] uniklink_linker::glue::GlueError),
    #[error(
        "component `{component}` is required by {by}, but the library OS has no such component \
         (it has: {available})"
    )]
    MissingComponent {
        component: String,
        /// Who requires it: the manifest, a manifest key the component owns or the profile.
        by: String,
        available: String,
    },
    #[error(
        "output {} is the input {}; writing it would destroy the input",
        output.display(),
        input.display()
    )]
    OutputIsInput { output: PathBuf, input: PathBuf },
    #[error("component `{component}` parameter `{param}`: {message}")]
    Param {
        component: String,
        param: String,
        message: String,
    },
}

impl From<uniklink_analyzer::Error> for LinkError {
    /// An undefined symbol the library OS expects the app to define says how to define it.
    fn from(error: uniklink_analyzer::Error) -> Self {
        let error = match error {
            uniklink_analyzer::Error::Undefined {
                mut symbols,
                more_symbols,
            } => {
                for symbol in &mut symbols {
                    if symbol.name == MAIN_SYMBOL {
                        symbol.help = Some(
                            "add `unik::entry!(main)` to the app: it names the function the \
                             library OS calls once booted"
                                .to_owned(),
                        );
                    }
                }
                uniklink_analyzer::Error::Undefined {
                    symbols,
                    more_symbols,
                }
            }
            other => other,
        };
        LinkError::Analyze(error)
    }
}

/// An input section and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub object: String,
    pub section: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSectionInfo {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

/// One step of a why-chain: `object`'s `section` references the next step through `via`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhyStep {
    pub object: String,
    pub section: String,
    pub via: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhyReport {
    pub symbol: String,
    /// `None` when the symbol is not kept (or not defined).
    pub chain: Option<(RootReason, Vec<WhyStep>)>,
}

/// What a finished link reports.
#[derive(Debug, Clone)]
pub struct LinkOutput {
    /// Empty unless [`ReportWanted::sections`].
    pub kept: Vec<SectionInfo>,
    /// Empty unless [`ReportWanted::sections`].
    pub dropped: Vec<SectionInfo>,
    pub output_sections: Vec<OutputSectionInfo>,
    /// Global symbols in the image and their addresses, sorted by name; empty unless
    /// [`ReportWanted::symbols`].
    pub symbols: Vec<(String, u64)>,
    pub entry: u64,
    /// The architecture's name: `x86_64`, `aarch64`.
    pub arch: &'static str,
    pub why: Vec<WhyReport>,
    /// Set for image kinds that carry one (PVH).
    pub build_id: Option<BuildId>,
    /// Which components are in the image and why, when weaving.
    pub weave: Option<WeaveReport>,
    /// Sizes, retained sizes and why-chains of the kept sections; `None` unless
    /// [`ReportWanted::sizes`].
    pub sizes: Option<SizeReport>,
    /// The image file's size, and what it would be stripped.
    pub written: Written,
    /// The debug file written beside the image and its size, when the inputs had DWARF.
    pub debug_file: Option<(PathBuf, u64)>,
}

/// Compares files by device and inode, so a symlink or hard link to an input is caught too.
fn refuse_output_among_inputs(output: &Path, inputs: &[PathBuf]) -> Result<(), LinkError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(out) = std::fs::metadata(output) else {
        return Ok(());
    };
    let same = |input: &&PathBuf| {
        std::fs::metadata(input).is_ok_and(|m| (m.dev(), m.ino()) == (out.dev(), out.ino()))
    };
    match inputs.iter().find(same) {
        Some(input) => Err(LinkError::OutputIsInput {
            output: output.to_path_buf(),
            input: input.clone(),
        }),
        None => Ok(()),
    }
}

/// Removes a debug file an earlier link left where this link writes none, so that it never
/// describes another image.
fn remove_stale(path: &Path) -> Result<(), LinkError> {
    match std::fs::remove_file(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
            Err(uniklink_linker::Error::Io {
                path: path.to_path_buf(),
                source,
            }
            .into())
        }
        _ => Ok(()),
    }
}

/// Links `opts.inputs` into a static executable at `opts.output`. On error nothing is written.
pub fn link(opts: &LinkOptions) -> Result<LinkOutput, LinkError> {
    refuse_output_among_inputs(&opts.output, &opts.inputs)?;
    let mut inputs = Inputs::load(&opts.inputs)?;
    let build_id = (opts.image != ImageKind::Elf).then(|| {
        let seed = opts.randomize_layout.map(u64::to_le_bytes);
        BuildId::of(
            inputs
                .command_line_data()
                .chain(std::iter::once(&opts.build_id_salt[..]))
                .chain(seed.as_ref().map(|seed| &seed[..])),
        )
    });
    if let Some(id) = &build_id {
        let machine = machine_of(inputs.command_line_data().next().unwrap_or_default());
        for generated in opts
            .image
            .generated_objects(machine, &opts.entry, id)
            .map_err(uniklink_linker::Error::from)?
        {
            inputs.add_generated(generated)?;
        }
    }
    let setup = opts.weave.as_ref().map(weave::Setup::new).transpose()?;
    // Reserved after every other input: its object id follows theirs.
    let glue_unit = setup
        .as_ref()
        .map(|_| inputs.reserve_generated(GLUE_NAME.to_owned()));
    let objects = object::parse_all(&inputs)?;
    let machine = objects
        .first()
        .ok_or(uniklink_analyzer::Error::NoInputs)?
        .machine;

    let required: Vec<&[u8]> = std::iter::once(opts.entry.as_str())
        .chain(opts.keep.iter().map(String::as_str))
        .chain(setup.iter().flat_map(|s| s.required()))
        .map(str::as_bytes)
        .collect();
    let declared = opts.weave.as_ref().map(weave::declared).unwrap_or_default();
    let declared: Vec<&[u8]> = declared.iter().map(String::as_bytes).collect();
    // Declared before the symbols, which borrow it once it is attached.
    let glue;
    let mut db = SymbolDb::resolve_declaring(&objects, &required, &declared)?;

    let (graph, woven) = match (&setup, glue_unit, &opts.weave) {
        (Some(setup), Some(glue_unit), Some(w)) => {
            let components = &setup.components;
            let graph = weave::graph(&db, components, opts)?;
            let mut decision = weave::decide(setup, &inputs, &graph, machine, w)?;
            let marks = graph.detach();
            let unit = inputs.fill_generated(glue_unit, std::mem::take(&mut decision.glue))?;
            glue = object::parse_unit(&inputs, ObjectId(objects.len() as u32), unit)?;
            db.attach(&glue)?;
            let graph = SectionGraph::attach(
                &db,
                marks,
                glue.id,
                &GraphOptions {
                    entry: &opts.entry,
                    keep: &weave::glue_roots(),
                    rules: RootRules { init_arrays: false },
                    extra_roots: &[],
                    gc: true,
                },
            )?;
            let report = weave::finish(decision, setup, &inputs, &graph, glue.id, &w.crates)?;
            (graph, Some(report))
        }
        _ => {
            let graph = SectionGraph::build(
                &db,
                &GraphOptions {
                    entry: &opts.entry,
                    keep: &opts.keep,
                    rules: RootRules::CONVENTIONAL,
                    extra_roots: &[],
                    gc: opts.gc,
                },
            )?;
            (graph, None)
        }
    };

    let arch =
        arch::for_machine(machine).ok_or(uniklink_linker::Error::UnsupportedMachine(machine))?;
    let layout = Layout::build(
        &graph,
        arch,
        &LayoutOptions {
            entry: &opts.entry,
            base: opts.base.or(opts.image.base()),
            randomize: opts.randomize_layout,
            eh_frame_hdr: opts.eh_frame_hdr,
            page_tables: opts.image.page_tables(),
        },
    )?;
    opts.image
        .check(&layout, &opts.entry)
        .map_err(uniklink_linker::Error::from)?;

    let sizes = if opts.report.sizes {
        Some(crate::report::sizes(
            &inputs,
            &layout,
            setup.as_ref().map(|s| &s.components),
            opts.weave.as_ref().map(|w| &w.crates),
            woven.as_ref(),
        )?)
    } else {
        None
    };
    let debug = match &opts.debug_file {
        Some(_) => Some(uniklink_linker::debug::collect(&layout)?),
        None => None,
    };
    relocate::check_size(&layout)?;
    let file = FilePlan::new(&layout, &WriteOptions { strip: opts.strip })?;
    let mut output = OutputFile::reserve(&opts.output, file.size())?;
    relocate::relocate(&layout, output.bytes_mut())?;
    let written = file.write(&layout, output)?;
    let debug_file = match (&opts.debug_file, debug) {
        (Some(path), Some(debug)) if !debug.sections.is_empty() => {
            let size = uniklink_linker::write::write_debug_file(&layout, &debug, path)?;
            Some((path.clone(), size))
        }
        (Some(path), _) => {
            remove_stale(path)?;
            None
        }
        (None, _) => None,
    };

    let mut output = report(&layout, opts, written, build_id, woven, sizes);
    output.debug_file = debug_file;
    if !opts.free_memory {
        std::mem::forget(layout);
        std::mem::forget(graph);
        std::mem::forget(db);
        std::mem::forget(objects);
        std::mem::forget(inputs);
    }
    Ok(output)
}

/// `e_machine` of an ELF object, or of the first ELF member of an archive; 0 when neither.
fn machine_of(data: &[u8]) -> u16 {
    use ::object::read::archive::ArchiveFile;
    let elf_machine = |d: &[u8]| {
        (d.len() >= 20 && d.starts_with(b"\x7fELF")).then(|| u16::from_le_bytes([d[18], d[19]]))
    };
    if let Some(m) = elf_machine(data) {
        return m;
    }
    ArchiveFile::parse(data)
        .ok()
        .and_then(|archive| {
            archive
                .members()
                .filter_map(Result::ok)
                .find_map(|m| m.data(data).ok().and_then(elf_machine))
        })
        .unwrap_or(0)
}

fn section_info(db: &SymbolDb<'_>, id: SectionId) -> SectionInfo {
    let o = db.object(id.object);
    SectionInfo {
        object: o.name.clone(),
        section: o.section_name(id.index),
        size: o.section(id.index).size,
    }
}

fn report(
    layout: &Layout<'_>,
    opts: &LinkOptions,
    written: Written,
    build_id: Option<BuildId>,
    weave: Option<WeaveReport>,
    sizes: Option<SizeReport>,
) -> LinkOutput {
    let graph = layout.graph;
    let db = graph.db;
    // A list of every global by name costs as much memory as the link's symbol table:
    // only when asked.
    let mut symbols: Vec<(String, u64)> = if opts.report.symbols {
        db.globals
            .iter()
            .zip(&layout.global_addr)
            .filter(|(g, _)| match g.def {
                Definition::Undefined => false,
                // Symbols of garbage-collected sections have no address.
                Definition::Defined { object, index } => {
                    layout.symbol_address(object, index).is_some()
                }
                Definition::Common { .. } | Definition::Linker => true,
            })
            .map(|(g, &a)| (String::from_utf8_lossy(g.name).into_owned(), a))
            .collect()
    } else {
        Vec::new()
    };
    symbols.sort();
    let why = opts
        .why
        .iter()
        .map(|symbol| WhyReport {
            symbol: symbol.clone(),
            chain: graph.why(symbol).map(|chain| {
                let steps = chain
                    .steps
                    .into_iter()
                    .map(|s| {
                        let info = section_info(db, s.section);
                        WhyStep {
                            object: info.object,
                            section: info.section,
                            via: s.via,
                        }
                    })
                    .collect();
                (chain.root, steps)
            }),
        })
        .collect();
    let (kept, dropped) = if opts.report.sections {
        (
            graph
                .kept_sections()
                .map(|id| section_info(db, id))
                .collect(),
            graph
                .dropped_sections()
                .map(|id| section_info(db, id))
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    LinkOutput {
        kept,
        dropped,
        output_sections: layout
            .sections
            .iter()
            .map(|s| OutputSectionInfo {
                name: s.name_str(),
                addr: s.addr,
                size: s.size,
            })
            .collect(),
        symbols,
        entry: layout.entry,
        arch: layout.arch.name(),
        why,
        build_id,
        weave,
        sizes,
        written,
        debug_file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
    use ::object::{
        Architecture, BinaryFormat, Endianness, RelocationFlags, SymbolFlags, SymbolKind,
        SymbolScope, elf,
    };

    /// `_start` calling `callee`, which nothing defines.
    fn calling(callee: &str) -> Vec<u8> {
        let mut o = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = o.section_id(StandardSection::Text);
        // call rel32; ret
        let at = o.append_section_data(text, &[0xe8, 0, 0, 0, 0, 0xc3], 16);
        o.add_symbol(Symbol {
            name: b"_start".to_vec(),
            value: at,
            size: 6,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
        let target = o.add_symbol(Symbol {
            name: callee.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        o.add_relocation(
            text,
            Relocation {
                offset: at + 1,
                symbol: target,
                addend: -4,
                flags: RelocationFlags::Elf {
                    r_type: elf::R_X86_64_PLT32,
                },
            },
        )
        .unwrap();
        o.write().unwrap()
    }

    fn link_error(callee: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("app.o");
        std::fs::write(&input, calling(callee)).unwrap();
        let opts = LinkOptions::new(vec![input], dir.path().join("image"));
        link(&opts).unwrap_err().to_string()
    }

    #[test]
    fn an_app_without_its_entry_is_told_to_declare_one() {
        let error = link_error(MAIN_SYMBOL);
        assert!(
            error.starts_with("undefined symbol `__unik_main`, referenced by ")
                && error.contains("app.o (section .text+0x1)"),
            "{error}"
        );
        assert!(
            error.ends_with("\n  help: add `unik::entry!(main)` to the app: it names the function the library OS calls once booted"),
            "{error}"
        );
        let other = link_error("elsewhere");
        assert!(!other.contains("help:"), "{other}");
    }
}
