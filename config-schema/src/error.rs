//! Manifest errors. Every problem in a manifest is a [`Located`] diagnostic: the file, a
//! 1-based line and column, the message, and (for miette) the source line with a label.
//! `Display` is `path:line:col: message`, greppable where nothing renders the snippet (e.g.
//! CI logs); the "did you mean" suggestion is the diagnostic's `help`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};
use serde_saphyr::Location;

/// The manifest text, shared by all diagnostics about it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    path: PathBuf,
    text: Arc<str>,
}

impl Source {
    pub(crate) fn new(path: &Path, text: impl Into<Arc<str>>) -> Self {
        Source {
            path: path.to_path_buf(),
            text: text.into(),
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A diagnostic at a location serde-saphyr reported. Unknown locations (line 0) fall back
    /// to the start of the file rather than inventing a position.
    pub(crate) fn error_at(&self, location: Location, message: impl Into<String>) -> Located {
        if location.line() == 0 {
            return self.error_at_offset(0, 0, message);
        }
        let span = location.span();
        let offset = span
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o <= self.text.len() && self.text.is_char_boundary(o))
            .unwrap_or_else(|| self.offset_of(location.line(), location.column()));
        let len = span
            .byte_len()
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0);
        self.error_at_offset(offset, len, message)
    }

    /// A diagnostic at a byte offset into the manifest text.
    pub(crate) fn error_at_offset(
        &self,
        offset: usize,
        len: usize,
        message: impl Into<String>,
    ) -> Located {
        let offset = offset.min(self.text.len());
        let len = len.min(self.text.len() - offset);
        let (line, column) = line_column(self.text.as_bytes(), offset);
        Located {
            path: self.path.clone(),
            line,
            column,
            message: message.into(),
            help: None,
            label: None,
            source: Some(NamedSource::new(
                self.path.display().to_string(),
                Arc::clone(&self.text),
            )),
            span: SourceSpan::new(offset.into(), len),
        }
    }

    fn offset_of(&self, line: u64, column: u64) -> usize {
        let mut offset = 0;
        for (index, text_line) in self.text.split_inclusive('\n').enumerate() {
            if index as u64 + 1 == line {
                let column = usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX);
                return offset
                    + text_line
                        .char_indices()
                        .nth(column)
                        .map_or(text_line.len(), |(i, _)| i);
            }
            offset += text_line.len();
        }
        self.text.len()
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(bytes: &[u8], offset: usize) -> (u64, u64) {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count() as u64
        + 1;
    (line, column)
}

/// One problem at one place in a manifest.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub help: Option<String>,
    label: Option<String>,
    source: Option<NamedSource<Arc<str>>>,
    span: SourceSpan,
}

impl Located {
    /// A diagnostic about a file whose text cannot be shown (too large, not UTF-8).
    pub(crate) fn without_source(
        path: &Path,
        (line, column): (u64, u64),
        message: impl Into<String>,
    ) -> Self {
        Located {
            path: path.to_path_buf(),
            line,
            column,
            message: message.into(),
            help: None,
            label: None,
            source: None,
            span: SourceSpan::new(0.into(), 0),
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// `did you mean` help when `wanted` is close to one of `candidates`.
    pub(crate) fn suggest<'a>(
        self,
        wanted: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        match crate::suggest::closest(wanted, candidates) {
            Some(close) => self.with_help(format!("did you mean `{close}`?")),
            None => self,
        }
    }
}

/// The longest source line a diagnostic quotes; a longer one (a 200,000-character name) would
/// bury the message, which already says where the problem is.
const MAX_QUOTED_LINE: usize = 300;

impl Located {
    /// The source to quote, unless a line the snippet shows (the span's, and one line of context
    /// either side, as miette prints them) is longer than [`MAX_QUOTED_LINE`].
    fn shown_source(&self) -> Option<&NamedSource<Arc<str>>> {
        let source = self.source.as_ref()?;
        let text: &str = source.inner();
        let start = self.span.offset().min(text.len());
        let end = (start + self.span.len()).min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let from = text[..line_start.saturating_sub(1)]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let lines = text[from..end].matches('\n').count() + 2;
        text[from..]
            .lines()
            .take(lines)
            .all(|line| line.len() <= MAX_QUOTED_LINE)
            .then_some(source)
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for Located {}

// No diagnostic code: miette prints it as a line of its own above the message, which
// already starts with `file:line:col`.
impl Diagnostic for Located {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.shown_source().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.shown_source()?;
        let label = self.label.clone().unwrap_or_else(|| "here".to_owned());
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(label), self.span),
        )))
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug)]
pub enum ManifestError {
    /// The file could not be read at all.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The manifest was read but is not valid; at least one diagnostic, in file order, and how
    /// many more were found than are listed (the last one listed then counts them).
    Invalid(Vec<Located>, usize),
}

impl ManifestError {
    /// All diagnostics, for callers that list them one per line.
    pub fn diagnostics(&self) -> &[Located] {
        match self {
            ManifestError::Read { .. } => &[],
            ManifestError::Invalid(all, _) => all,
        }
    }

    /// How many problems were found, counting those past [`Self::MAX_REPORTED`].
    fn count(&self) -> usize {
        match self {
            ManifestError::Read { .. } => 0,
            ManifestError::Invalid(all, 0) => all.len(),
            ManifestError::Invalid(all, unshown) => all.len() - 1 + unshown,
        }
    }

    /// The most diagnostics one manifest reports: past this many, the rest are usually one
    /// mistake repeated, and the first ones are what to fix.
    pub const MAX_REPORTED: usize = 20;

    pub(crate) fn invalid(mut errors: Vec<Located>) -> Self {
        errors.sort_by_key(|e| (e.line, e.column));
        let unshown = errors.len().saturating_sub(Self::MAX_REPORTED);
        if unshown > 0 {
            let next = &errors[Self::MAX_REPORTED];
            let summary = Located::without_source(
                &next.path,
                (next.line, next.column),
                format!("and {unshown} more errors from here on"),
            );
            errors.truncate(Self::MAX_REPORTED);
            errors.push(summary);
        }
        ManifestError::Invalid(errors, unshown)
    }
}

impl From<Located> for ManifestError {
    fn from(error: Located) -> Self {
        ManifestError::Invalid(vec![error], 0)
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Read { path, source } => {
                write!(f, "{}: cannot read manifest: {source}", path.display())
            }
            ManifestError::Invalid(errors, _) => match errors.as_slice() {
                [] => f.write_str("invalid manifest"),
                [only] => only.fmt(f),
                [first, ..] => write!(f, "{first} (and {} more)", self.count() - 1),
            },
        }
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ManifestError::Read { source, .. } => Some(source),
            ManifestError::Invalid(..) => None,
        }
    }
}

impl Diagnostic for ManifestError {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostics().first()?.help()
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.diagnostics().first()?.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.diagnostics().first()?.labels()
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self.diagnostics() {
            [_, rest @ ..] if !rest.is_empty() => {
                Some(Box::new(rest.iter().map(|e| e as &dyn Diagnostic)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_diagnostic_starts_with_its_location() {
        let source = Source::new(Path::new("app/uniklink.yaml"), "name: t\narhc: [x86_64]\n");
        let error = ManifestError::from(
            source
                .error_at_offset(8, 4, "unknown key `arhc`")
                .with_help("did you mean `arch`?"),
        );
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &error)
            .unwrap();
        let first = out.lines().find(|l| !l.trim().is_empty()).unwrap();
        assert_eq!(
            first.trim_start_matches([' ', '×']),
            "app/uniklink.yaml:2:1: unknown key `arhc`",
            "{out}"
        );
        assert!(out.contains("did you mean `arch`?"), "{out}");
    }
}
