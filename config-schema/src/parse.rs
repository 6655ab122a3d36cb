//! Reading manifest bytes and turning YAML into typed values, with every limit explicit.
//!
//! Manifests are small hand-written files, so the limits are far tighter than
//! serde-saphyr's defaults: a file that trips them is a mistake or an attack, and either way
//! should fail fast with a position rather than use memory or time.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error as YamlError, MessageFormatter, UserMessageFormatter};

use crate::error::{Located, ManifestError, Source, line_column};

/// Largest manifest accepted, in bytes. Real manifests are a few hundred bytes.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024;

/// Deepest nesting accepted. The manifest model itself is four levels deep.
const MAX_DEPTH: usize = 16;
/// Aliases and anchors are legitimate YAML, but a manifest needs only a handful.
const MAX_ALIASES: usize = 64;
const MAX_ANCHORS: usize = 64;
/// Replaying an alias re-emits its events; this caps the total, which is what defeats
/// "billion laughs" bombs long before they expand.
const MAX_REPLAYED_EVENTS: usize = 4_096;
const MAX_EXPANSIONS_PER_ANCHOR: usize = 32;
const MAX_EVENTS: usize = 50_000;
const MAX_NODES: usize = 20_000;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_MANIFEST_BYTES as usize),
            max_depth: MAX_DEPTH,
            max_aliases: MAX_ALIASES,
            max_anchors: MAX_ANCHORS,
            max_events: MAX_EVENTS,
            max_nodes: MAX_NODES,
            max_documents: 1,
            max_total_scalar_bytes: MAX_MANIFEST_BYTES as usize,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
            max_replay_stack_depth: MAX_DEPTH,
            max_alias_expansions_per_anchor: MAX_EXPANSIONS_PER_ANCHOR,
        },
        with_snippet: false,
        // `yes`/`on` as booleans surprise people; a manifest says `true`.
        strict_booleans: true,
    }
}

/// Reads a manifest, refusing files over [`MAX_MANIFEST_BYTES`] without reading them whole and
/// text that is not UTF-8 (pointing at the first bad byte).
pub(crate) fn read_source(path: &Path) -> Result<Source, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Checked before opening: opening a FIFO for reading blocks until a writer appears.
    let kind = std::fs::metadata(path).map_err(read_error)?.file_type();
    if !kind.is_file() {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", file_kind(kind)),
        )));
    }
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        let position = line_column(&bytes, MAX_MANIFEST_BYTES as usize);
        return Err(Located::without_source(
            path,
            position,
            format!(
                "manifest is larger than the {} KiB limit (it goes on past this point)",
                MAX_MANIFEST_BYTES / 1024
            ),
        )
        .into());
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Source::new(path, text)),
        Err(error) => {
            let bad = error.utf8_error().valid_up_to();
            let bytes = error.into_bytes();
            let position = line_column(&bytes, bad);
            Err(Located::without_source(
                path,
                position,
                format!(
                    "manifest is not UTF-8 text (byte 0x{:02x} at offset {bad}); is this a binary file?",
                    bytes[bad]
                ),
            )
            .into())
        }
    }
}

/// How messages name a file type that is not a regular file.
fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "something else"
    }
}

/// Deserializes the whole source as one `T`.
pub(crate) fn from_source<T: DeserializeOwned>(source: &Source) -> Result<T, ManifestError> {
    let blank = |line: &str| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    };
    if source.text().lines().all(blank) {
        return Err(source
            .error_at_offset(0, 0, "manifest is empty")
            .with_help("a manifest needs at least `name` and `app`")
            .into());
    }
    serde_saphyr::from_str_with_options(source.text(), options())
        .map_err(|error| ManifestError::from(yaml_error(source, &error)))
}

fn yaml_error(source: &Source, error: &YamlError) -> Located {
    let mut error = error;
    while let YamlError::AliasError { error: inner, .. }
    | YamlError::WithSnippet { error: inner, .. } = error
    {
        error = inner;
    }
    let location = error.location().unwrap_or(serde_saphyr::Location::UNKNOWN);
    match error {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => source
            .error_at(
                location,
                format!("unknown key `{}`", crate::manifest::excerpt(field)),
            )
            .with_label(format!("expected one of: {}", expected.join(", ")))
            .suggest(field, expected.iter().copied()),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => source
            .error_at(
                location,
                format!("unknown value `{}`", crate::manifest::excerpt(variant)),
            )
            .with_label(format!("expected one of: {}", expected.join(", ")))
            .suggest(variant, expected.iter().copied()),
        YamlError::SerdeMissingField { field, .. } => {
            source.error_at(location, format!("missing required key `{field}`"))
        }
        YamlError::Budget { breach, .. } => source.error_at(location, budget_message(breach)),
        YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. } => source.error_at(
            location,
            format!(
                "aliases expand too far; a manifest allows {MAX_EXPANSIONS_PER_ANCHOR} uses of \
                 an anchor and {MAX_REPLAYED_EVENTS} replayed nodes in all"
            ),
        ),
        YamlError::Unexpected { expected, .. } => {
            let wanted = match *expected {
                "string scalar" => "a single value (text or number)",
                "mapping start" => "a mapping of `key: value` entries",
                "sequence start" => "a list",
                other => other,
            };
            source.error_at(location, format!("wrong type: expected {wanted} here"))
        }
        other => source.error_at(location, UserMessageFormatter.format_message(other)),
    }
}

fn budget_message(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { depth } => {
            format!("nesting is {depth} levels deep; a manifest allows at most {MAX_DEPTH}")
        }
        BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => {
            format!("too many aliases; a manifest allows at most {MAX_ALIASES}")
        }
        BudgetBreach::Anchors { .. } => {
            format!("too many anchors; a manifest allows at most {MAX_ANCHORS}")
        }
        BudgetBreach::Documents { .. } => {
            "a manifest is a single YAML document; remove the extra `---`".to_owned()
        }
        other => format!("manifest is too large or complex for a manifest ({other:?})"),
    }
}
