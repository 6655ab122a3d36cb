//! `cargo uniklink link`: the low-level static linker, usable like `ld` for static
//! executables. Inputs are objects and archives in any order.

use std::path::PathBuf;
use std::process::ExitCode;

use uniklink::pipeline::{LinkOptions, WeaveOptions, WhyReport, link};
use uniklink_analyzer::graph::RootReason;
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
    /// Image base address (hex with 0x, or decimal); the architecture's default otherwise.
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
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

fn parse_address(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    parsed.map_err(|e| format!("invalid address `{s}`: {e}"))
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

pub fn run(args: LinkArgs) -> miette::Result<ExitCode> {
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
        why: args.why,
        ..LinkOptions::new(args.inputs, args.output)
    };
    let out = link(&opts).map_err(|e| miette::miette!("{e}"))?;
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
