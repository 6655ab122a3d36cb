//! `cargo uniklink link`: the low-level static linker, usable like `ld` for static
//! executables. Inputs are objects and archives in any order.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, WrapErr};
use serde::Serialize;
use uniklink::pipeline::{
    LinkOptions, LinkOutput, ReportWanted, SectionInfo, WeaveOptions, WhyReport, link,
};
use uniklink_analyzer::graph::RootReason;
use uniklink_analyzer::report::SizeReport;
use uniklink_config::{ComponentRegistry, Manifest, ProfileName};

/// Link objects and archives into a static executable.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
    /// Entry symbol.
    #[arg(long, short = 'e', value_name = "SYM", default_value = "_start")]
    entry: String,
    /// Image base address (hex with 0x, or decimal), a multiple of the 4 KiB page; the
    /// architecture's default otherwise.
    #[arg(long, value_name = "ADDR", value_parser = parse_base)]
    base: Option<u64>,
    /// Keep this symbol and what it references, pulling it from archives if needed.
    #[arg(long, value_name = "SYM")]
    keep: Vec<String>,
    /// Keep every section of every loaded object.
    #[arg(long)]
    no_gc: bool,
    /// List the sections garbage collection removed.
    #[arg(long)]
    print_gc_sections: bool,
    /// Print the chain of references that keeps this symbol.
    #[arg(long, value_name = "SYM")]
    why: Vec<String>,
    /// Leave out the symbol table.
    #[arg(long, short = 's')]
    strip: bool,
    /// Write `.eh_frame_hdr` and its `PT_GNU_EH_FRAME` program header, as `ld --eh-frame-hdr`
    /// does: the index an unwinder without registered frames needs (LLVM's libunwind, which
    /// Rust programs for musl link, so a panic can unwind).
    #[arg(long)]
    eh_frame_hdr: bool,
    /// Write a size report that `cargo uniklink report`, `why` and `diff` read, as `build`
    /// does; on large links computing it takes longer than the link.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Weave this library-OS component (its `component.yaml`): its init runs only if the
    /// program reaches it or the manifest requires it.
    #[arg(long, value_name = "FILE")]
    component: Vec<PathBuf>,
    /// Profile, required and forbidden components and parameter overrides for weaving.
    #[arg(long, short = 'm', value_name = "FILE", requires = "component")]
    manifest: Option<PathBuf>,
    /// Objects and archives.
    #[arg(value_name = "INPUTS", required = true)]
    inputs: Vec<PathBuf>,
}

/// The page size segments are laid out at: a base off it would give segments whose file
/// offsets and addresses disagree modulo the page, which no loader maps.
const PAGE_SIZE: u64 = 4096;

fn parse_base(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    let base = parsed.map_err(|e| format!("invalid address `{s}`: {e}"))?;
    if !base.is_multiple_of(PAGE_SIZE) {
        return Err(format!(
            "{base:#x} is not a multiple of the {PAGE_SIZE}-byte page; try {:#x}",
            base - base % PAGE_SIZE
        ));
    }
    Ok(base)
}

fn root_name(reason: RootReason) -> &'static str {
    match reason {
        RootReason::Entry => "entry symbol",
        RootReason::Keep => "--keep",
        RootReason::Retain => "SHF_GNU_RETAIN",
        RootReason::Note => "note section",
        RootReason::InitFini => ".init/.fini",
        RootReason::InitArray => "init/fini array",
        RootReason::EhFrame => ".eh_frame",
        RootReason::NoGc => "--no-gc",
    }
}

fn print_why(report: &WhyReport) {
    let Some((root, steps)) = &report.chain else {
        eprintln!("`{}` is not kept", report.symbol);
        return;
    };
    eprintln!("`{}` is kept because:", report.symbol);
    for (i, step) in steps.iter().enumerate() {
        if i == 0 {
            eprintln!(
                "  {}:({}) is a root ({})",
                step.object,
                step.section,
                root_name(*root)
            );
        } else {
            eprintln!("  {}:({})", step.object, step.section);
        }
        if let Some(via) = &step.via {
            eprintln!("    references `{via}`");
        }
    }
}

/// The fields of a build report that `report`, `why` and `diff` read, named after the output.
#[derive(Serialize)]
struct LinkReport<'a> {
    name: String,
    arch: &'a str,
    image: &'a Path,
    image_size: u64,
    stripped_size: u64,
    kept_sections: Vec<Section<'a>>,
    dropped_sections: Vec<Section<'a>>,
    sizes: &'a SizeReport,
}

#[derive(Serialize)]
struct Section<'a> {
    object: &'a str,
    section: &'a str,
    size: u64,
}

fn sections(list: &[SectionInfo]) -> Vec<Section<'_>> {
    list.iter()
        .map(|s| Section {
            object: &s.object,
            section: &s.section,
            size: s.size,
        })
        .collect()
}

fn write_report(path: &Path, opts: &LinkOptions, out: &LinkOutput) -> miette::Result<()> {
    let report = LinkReport {
        name: opts
            .output
            .file_stem()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        arch: out.arch,
        image: &opts.output,
        image_size: out.written.size,
        stripped_size: out.written.stripped_size,
        kept_sections: sections(&out.kept),
        dropped_sections: sections(&out.dropped),
        sizes: out.sizes.as_ref().expect("linked with ReportWanted::sizes"),
    };
    let mut json = serde_json::to_vec_pretty(&report).into_diagnostic()?;
    json.push(b'\n');
    uniklink_linker::write::replace_file(path, &json, false)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write the report {}", path.display()))
}

pub fn run(args: LinkArgs) -> miette::Result<ExitCode> {
    // Refused before the link, so that a bad report path leaves no image behind either.
    for (what, path) in [
        ("image", Some(&args.output)),
        ("report", args.report.as_ref()),
    ] {
        if let Some(path) = path.filter(|path| path.is_dir()) {
            return Err(miette::miette!(
                "cannot write the {what} {}: Is a directory",
                path.display()
            ));
        }
    }
    let weave = if args.component.is_empty() {
        None
    } else {
        let registry = ComponentRegistry::from_component_files(&args.component)
            .map_err(|e| miette::miette!("{e}"))?;
        Some(match &args.manifest {
            Some(path) => {
                let manifest = Manifest::load_with(path, &registry)?;
                WeaveOptions::new(registry, manifest.resolve())
            }
            None => WeaveOptions {
                registry,
                profile: ProfileName::Minimal,
                config: None,
                crates: Default::default(),
                platform: None,
            },
        })
    };
    let opts = LinkOptions {
        weave,
        entry: args.entry,
        base: args.base,
        keep: args.keep,
        gc: !args.no_gc,
        strip: args.strip,
        eh_frame_hdr: args.eh_frame_hdr,
        why: args.why,
        report: ReportWanted {
            sections: args.print_gc_sections || args.report.is_some(),
            sizes: args.report.is_some(),
            symbols: false,
        },
        // The process ends after printing what was asked; the kernel takes the link's memory
        // back faster than freeing it would.
        free_memory: false,
        ..LinkOptions::new(args.inputs, args.output)
    };
    let out = link(&opts).map_err(|e| miette::miette!("{e}"))?;
    if let Some(path) = &args.report {
        write_report(path, &opts, &out)?;
    }
    if args.print_gc_sections {
        for s in &out.dropped {
            eprintln!(
                "removing unused section '{}' in file '{}' ({} bytes)",
                s.section, s.object, s.size
            );
        }
    }
    out.why.iter().for_each(print_why);
    if let Some(weave) = &out.weave {
        for c in &weave.components {
            let state = if c.live { "live" } else { "dropped" };
            eprintln!("component {} {state} ({})", c.name, c.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}
