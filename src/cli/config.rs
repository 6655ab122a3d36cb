//! `cargo uniklink config`: print the resolved configuration, marking each value that came
//! from the manifest rather than the profile.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use miette::IntoDiagnostic;
use uniklink_config::{App, Manifest, Origin, Requirement, ResolvedConfig};

/// Print the resolved configuration (profile defaults with manifest overrides).
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The manifest.
    #[arg(
        short = 'm',
        long = "manifest",
        value_name = "FILE",
        default_value = "uniklink.yaml"
    )]
    manifest: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ConfigArgs) -> miette::Result<ExitCode> {
    let config = Manifest::load(&args.manifest)?.resolve();
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&config).into_diagnostic()?;
        json.push('\n');
        json
    } else {
        table(&config)
    };
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`| head`) is the reader's choice, not an error.
pub(super) fn write_stdout(text: &str) -> miette::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).into_diagnostic(),
        _ => Ok(()),
    }
}

fn mark(origin: Origin) -> &'static str {
    match origin {
        Origin::Manifest => "manifest",
        Origin::Profile => "profile",
        Origin::Build => "build",
    }
}

/// Where a requirement came from, in the column `mark` fills for values.
fn requirement_mark(requirement: Requirement) -> String {
    match requirement {
        Requirement::Manifest => "manifest".to_owned(),
        Requirement::Key(key) => format!("manifest ({key})"),
        Requirement::Profile => "profile".to_owned(),
    }
}

/// One row per value; the last column says where a profile-supplied value came from.
fn table(config: &ResolvedConfig) -> String {
    let mut out = String::new();
    let mut row = |key: &str, value: &str, origin: &str| {
        let line = format!("{key:<28} {value:<24} {origin}");
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row("name", &config.name, "");
    let targets: Vec<String> = config
        .targets
        .iter()
        .map(|t| format!("{}/{}", t.arch, t.platform))
        .collect();
    row("targets", &targets.join(", "), "");
    row("profile", config.profile.name(), "");
    match &config.app {
        App::Cargo {
            package,
            bin,
            path,
            entry,
        } => {
            row("app.package", package, "");
            if let Some(bin) = bin {
                row("app.bin", bin, "");
            }
            row("app.path", &path.display().to_string(), "");
            row(
                "app.entry",
                entry.as_deref().unwrap_or("(library OS boot entry)"),
                "",
            );
        }
        App::Prebuilt { objects, entry } => {
            for object in objects {
                row("app.objects", &object.display().to_string(), "");
            }
            row("app.entry", entry, "");
        }
    }
    for symbol in &config.keep {
        row("keep", symbol, "");
    }
    row(
        "memory",
        &config.memory.value.to_string(),
        mark(config.memory.origin),
    );
    if !config.cmdline.is_empty() {
        row("cmdline", &config.cmdline, "");
    }
    for port in &config.ports {
        row("ports", &port.to_string(), "");
    }
    for file in &config.files {
        row(
            "files",
            &format!("{} -> {}", file.from.display(), file.to),
            "",
        );
    }
    for volume in &config.volumes {
        let access = if volume.readonly { ", read-only" } else { "" };
        row(
            &format!("volumes.{}", volume.name),
            &format!(
                "{} ({}{access}) at {}",
                volume.image.display(),
                volume.size,
                volume.mount
            ),
            "",
        );
    }
    if let Some(size) = config.budgets.image_size {
        row("budgets.image_size", &size.to_string(), "");
    }
    if let Some(time) = config.budgets.boot_time {
        row("budgets.boot_time", &time.to_string(), "");
    }
    for component in &config.components {
        let (state, why) = match (component.required, component.forbidden) {
            (Some(requirement), _) => ("required", requirement_mark(requirement)),
            (None, true) => ("forbidden", String::new()),
            (None, false) => ("if reached", String::new()),
        };
        row(&component.name, state, &why);
        // Unprefixed, unlike parameters, so that no parameter name can look like them.
        if !component.devices.is_empty() {
            let devices: Vec<&str> = component.devices.iter().map(|d| d.name()).collect();
            row("  devices", &devices.join(", "), "");
        }
        if !component.owns.is_empty() {
            let owns: Vec<&str> = component.owns.iter().map(|k| k.name()).collect();
            row("  owns", &owns.join(", "), "");
        }
        for (name, param) in &component.params {
            row(
                &format!("  {}.{name}", component.name),
                &param.value.to_string(),
                mark(param.origin),
            );
        }
    }
    out
}
