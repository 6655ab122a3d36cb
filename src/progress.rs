//! What `cargo uniklink` shows while it works: a spinner for each long step while stderr is a
//! terminal, and tracing logs with `-v` (info), `-vv` (debug) or a `UNIKLINK_LOG` filter.
//!
//! The library marks its long steps with `step` spans (`tracing::info_span!("step", name =
//! "linking")`); it never draws anything itself. Cargo draws its own progress while it builds
//! the app, so that step has no spinner.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use clap::ColorChoice;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable with a log filter (`uniklink=debug`, `info`, ...), which wins over
/// `-v`.
pub const LOG_ENV: &str = "UNIKLINK_LOG";

/// The crates whose logs `-v` shows.
const OWN_TARGETS: [&str; 5] = [
    "uniklink",
    "cargo_uniklink",
    "uniklink_config",
    "uniklink_analyzer",
    "uniklink_linker",
];

/// The name of the spans that mark a step.
const STEP: &str = "step";

/// Installs the logger and, when nobody reads logs on a terminal, the spinner.
pub fn install(verbose: u8, quiet: bool, color: ColorChoice) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, 2) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let env_set = std::env::var_os(LOG_ENV).is_some_and(|v| !v.is_empty());
    let builder = EnvFilter::builder().with_env_var(LOG_ENV);
    // -v is about uniklink's own steps; what cranelift logs at info is for its developers.
    let filter = if env_set {
        builder.from_env_lossy()
    } else {
        let ours = OWN_TARGETS
            .map(|target| format!("{target}={level}"))
            .join(",");
        builder.parse_lossy(format!("{},{ours}", LevelFilter::WARN.min(level)))
    };
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let ansi = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stderr_is_terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .without_time()
        .with_target(verbose >= 2 || env_set)
        .with_filter(filter);
    // A spinner between log lines would garble both.
    let spinner = (stderr_is_terminal && !quiet && verbose == 0 && !env_set).then(|| {
        Steps::default().with_filter(filter_fn(|meta: &Metadata<'_>| meta.name() == STEP))
    });
    // Only fails when a subscriber is already set, which nothing else in the binary does.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spinner)
        .try_init();
}

/// Draws a spinner with the step's name while a step span is entered.
#[derive(Default)]
struct Steps {
    bar: Mutex<Option<ProgressBar>>,
}

/// The `name` field of a step span, kept in the span's extensions until it is entered.
struct StepName(String);

#[derive(Default)]
struct NameField(Option<String>);

impl Visit for NameField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for Steps
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut name = NameField::default();
        attrs.record(&mut name);
        if let (Some(name), Some(span)) = (name.0, ctx.span(id)) {
            span.extensions_mut().insert(StepName(name));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(StepName(name)) = extensions.get::<StepName>() else {
            return;
        };
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} uniklink: {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(name.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut current) = self.bar.lock()
            && let Some(previous) = current.replace(bar)
        {
            previous.finish_and_clear();
        }
    }

    fn on_exit(&self, _id: &Id, _ctx: Context<'_, S>) {
        if let Ok(mut current) = self.bar.lock()
            && let Some(bar) = current.take()
        {
            bar.finish_and_clear();
        }
    }
}
