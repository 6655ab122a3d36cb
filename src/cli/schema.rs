//! `cargo uniklink schema`: print the manifest's JSON Schema.

use std::process::ExitCode;

/// Print the JSON Schema of uniklink.yaml (the same text as config-schema/uniklink.schema.json).
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

pub fn run(_: SchemaArgs) -> miette::Result<ExitCode> {
    super::config::write_stdout(&uniklink_config::schema_json())?;
    Ok(ExitCode::SUCCESS)
}
