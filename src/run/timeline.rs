//! The boot timeline: when each boot phase of the guest ended, as the library OS prints it
//! after the ready marker when the command line has `uniklink.timeline`, shown beside the
//! host's own times as a table and as an SVG chart.
//!
//! The guest's line is `uniklink:timeline <unit> entry=0 paging=<n> runtime=<n>
//! init.<component>=<n>... main=<n>`: each value counts from the guest's entry point, in
//! nanoseconds (`ns`) when the guest knows its counter's frequency, else in counter ticks
//! (`ticks`), which the runner converts at the host's TSC rate (QEMU's TCG runs the guest's
//! TSC at the host's).
//!
//! Moments after `main` that boot time is measured to come as lines of their own,
//! `uniklink:milestone <unit> <name>=<n>` (the net component's `listening`: its first
//! listening socket), each also timed by the host when it arrives.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::BootTimes;

/// The command-line word that asks the guest for its timeline.
pub const TIMELINE_WORD: &str = "uniklink.timeline";
/// The start of the guest's timeline line.
pub(crate) const TIMELINE_PREFIX: &str = "uniklink:timeline ";
/// The start of a milestone line.
pub(crate) const MILESTONE_PREFIX: &str = "uniklink:milestone ";

/// A time the guest measured, in the unit it could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestTime {
    Ns(u64),
    /// Counter ticks; the guest does not know its counter's frequency.
    Ticks(u64),
}

impl GuestTime {
    /// As a duration, converting ticks at `ticks_per_second` (`None` when unknown).
    pub fn to_duration(self, ticks_per_second: Option<f64>) -> Option<Duration> {
        match self {
            GuestTime::Ns(ns) => Some(Duration::from_nanos(ns)),
            GuestTime::Ticks(ticks) => {
                ticks_per_second.map(|rate| Duration::from_secs_f64(ticks as f64 / rate))
            }
        }
    }
}

/// The timeline line as the guest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuestTimeline {
    /// Phase names (`entry`, `paging`, `runtime`, `init.<component>`, `main`) in order, with
    /// the time from entry to each one's end.
    pub stamps: Vec<(String, GuestTime)>,
}

/// A milestone line as the console saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenMilestone {
    pub name: String,
    /// From the guest's entry point, as the guest measured it.
    pub time: GuestTime,
    /// When the host read the line.
    pub at: Instant,
}

/// `Some` for a timeline line (`None` for any other line, or a garbled one).
pub(crate) fn parse_line(line: &[u8]) -> Option<GuestTimeline> {
    let stamps = stamps(line, TIMELINE_PREFIX)?;
    (!stamps.is_empty()).then_some(GuestTimeline { stamps })
}

/// `Some((name, time))` for a milestone line, which has one stamp.
pub(crate) fn parse_milestone(line: &[u8]) -> Option<(String, GuestTime)> {
    let mut stamps = stamps(line, MILESTONE_PREFIX)?;
    (stamps.len() == 1).then(|| stamps.remove(0))
}

/// The `<name>=<n>` stamps of a line that starts with `prefix` and a unit.
fn stamps(line: &[u8], prefix: &str) -> Option<Vec<(String, GuestTime)>> {
    let line = std::str::from_utf8(line).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut words = line.strip_prefix(prefix)?.split(' ');
    let unit: fn(u64) -> GuestTime = match words.next()? {
        "ns" => GuestTime::Ns,
        "ticks" => GuestTime::Ticks,
        _ => return None,
    };
    words
        .map(|word| {
            let (name, value) = word.split_once('=')?;
            Some((name.to_owned(), unit(value.parse().ok()?)))
        })
        .collect()
}

/// One phase of the guest's boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phase {
    /// `entry`, `paging`, `runtime`, `init <component>` (an init the start routine ran) or
    /// `main`.
    pub name: String,
    /// From the guest's entry point to the end of the phase.
    #[serde(rename = "at_ns", serialize_with = "nanoseconds")]
    pub at: Duration,
}

fn nanoseconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_nanos())
}

/// A moment after `main` that boot time is measured to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Milestone {
    /// `listening`: the first socket a server listens on.
    pub name: String,
    /// From the guest's entry point, as the guest measured it.
    #[serde(rename = "at_ns", serialize_with = "nanoseconds")]
    pub at: Duration,
    /// From QEMU's launch to the host reading the milestone's line.
    #[serde(rename = "host_ns", serialize_with = "nanoseconds")]
    pub host_at: Duration,
}

/// The guest's boot phases in order, each ending where the next starts, and the milestones
/// after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub phases: Vec<Phase>,
    pub milestones: Vec<Milestone>,
}

impl GuestTimeline {
    /// In time, converting ticks at `ticks_per_second`, with the `milestones` seen after it
    /// (host times from `launch`); `None` when the line is in ticks and the rate is unknown.
    /// A milestone in ticks without a rate is left out.
    pub(crate) fn convert(
        &self,
        ticks_per_second: Option<f64>,
        milestones: &[SeenMilestone],
        launch: Instant,
    ) -> Option<Timeline> {
        let phases = self
            .stamps
            .iter()
            .map(|(name, time)| {
                Some(Phase {
                    name: match name.strip_prefix("init.") {
                        Some(component) => format!("init {component}"),
                        None => name.clone(),
                    },
                    at: time.to_duration(ticks_per_second)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let milestones = milestones
            .iter()
            .filter_map(|seen| {
                Some(Milestone {
                    name: seen.name.clone(),
                    at: seen.time.to_duration(ticks_per_second)?,
                    host_at: seen.at.saturating_duration_since(launch),
                })
            })
            .collect();
        Some(Timeline { phases, milestones })
    }
}

impl Timeline {
    /// Each phase with how long it took: from the end of the one before (0 for the first).
    pub fn spans(&self) -> impl Iterator<Item = (&Phase, Duration)> {
        let mut previous = Duration::ZERO;
        self.phases.iter().map(move |phase| {
            let took = phase.at.saturating_sub(previous);
            previous = phase.at;
            (phase, took)
        })
    }

    /// From entry to `main`: the last phase's end.
    pub fn entry_to_main(&self) -> Duration {
        self.phases.last().map_or(Duration::ZERO, |phase| phase.at)
    }
}

/// `41.2 µs`, with one decimal in the unit that keeps the number readable.
fn short(d: Duration) -> String {
    super::human_duration(d)
}

/// The timeline as a table, for a terminal:
///
/// ```text
/// phase            since entry       took
/// entry                   0 ns
/// paging               93.1 µs    93.1 µs
/// ...
/// host: launch → first byte 31.2 ms → ready 31.3 ms → exit 33.0 ms
/// ```
pub fn table(timeline: &Timeline, times: &BootTimes) -> String {
    let width = timeline
        .phases
        .iter()
        .map(|p| &p.name)
        .chain(timeline.milestones.iter().map(|m| &m.name))
        .map(|name| name.chars().count())
        .max()
        .unwrap_or(0)
        .max("phase".len());
    let mut text = format!(
        "{:width$}  {:>12}  {:>10}\n",
        "phase", "since entry", "took"
    );
    for (phase, took) in timeline.spans() {
        let line = if phase.at.is_zero() {
            format!("{:width$}  {:>12}", phase.name, short(phase.at))
        } else {
            format!(
                "{:width$}  {:>12}  {:>10}",
                phase.name,
                short(phase.at),
                short(took)
            )
        };
        text.push_str(&line);
        text.push('\n');
    }
    for milestone in &timeline.milestones {
        text.push_str(&format!(
            "{:width$}  {:>12}  {:>10}\n",
            milestone.name,
            short(milestone.at),
            format!(
                "+{}",
                short(milestone.at.saturating_sub(timeline.entry_to_main()))
            ),
        ));
    }
    text.push_str(&host_line(timeline, times));
    text.push('\n');
    text
}

/// `host: launch → first byte 31.2 ms → ready 31.3 ms → listening 32.0 ms → exit 33.0 ms`
fn host_line(timeline: &Timeline, times: &BootTimes) -> String {
    let mut line = "host: launch".to_owned();
    for (label, at) in host_marks(timeline, times) {
        let _ = write!(line, " → {label} {}", short(at));
    }
    line
}

/// What the host saw when, from QEMU's launch: first byte, ready, each milestone, exit.
fn host_marks<'a>(timeline: &'a Timeline, times: &BootTimes) -> Vec<(&'a str, Duration)> {
    let mut marks = Vec::new();
    marks.extend(times.first_byte.map(|at| ("first byte", at)));
    marks.extend(times.ready.map(|at| ("ready", at)));
    marks.extend(
        timeline
            .milestones
            .iter()
            .map(|m| (m.name.as_str(), m.host_at)),
    );
    marks.push(("exit", times.total));
    marks
}

const CHART_WIDTH: f64 = 960.0;
const MARGIN: f64 = 20.0;
const LABEL_WIDTH: f64 = 150.0;
const ROW: f64 = 22.0;
const BAR: f64 = 14.0;
const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
];

/// Escapes text for SVG. Characters XML cannot hold even as references (control characters
/// other than tab and line breaks, which a guest may print in a name) become U+FFFD.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A self-contained SVG chart of a boot, like `systemd-analyze plot`: the host's view (QEMU's
/// launch, the guest's first console byte, the ready marker, exit) on a millisecond scale,
/// the guest's phases below it as a waterfall on their own scale from entry to `main`. The
/// guest's clock is not the host's, so the guest's boot is placed to end where the host saw
/// the ready marker, which the guest prints right after `main`'s stamp.
pub fn svg(timeline: &Timeline, times: &BootTimes, title: &str) -> String {
    let plot = CHART_WIDTH - 2.0 * MARGIN - LABEL_WIDTH;
    let x0 = MARGIN + LABEL_WIDTH;
    let rows = timeline.phases.len();
    let host_top = MARGIN + 40.0;
    let guest_top = host_top + (2 + timeline.milestones.len()) as f64 * ROW;
    let height = guest_top + (rows as f64 + 2.0) * ROW + MARGIN;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{height}" viewBox="0 0 {CHART_WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{MARGIN}" y="{}" font-size="15" font-weight="bold">{}</text>"##,
        MARGIN + 12.0,
        escape(title)
    );

    // The host's view, in ms from QEMU's launch.
    let host_end = times.total.as_secs_f64().max(1e-9);
    let hx = |d: Duration| x0 + plot * d.as_secs_f64() / host_end;
    let _ = writeln!(
        svg,
        r#"<text x="{MARGIN}" y="{}" font-weight="bold">host (QEMU)</text>"#,
        host_top - 6.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{host_top}" width="{plot}" height="{BAR}" fill="#d9d9d9"/><text x="{MARGIN}" y="{}">launch → exit</text>"##,
        host_top + BAR - 3.0
    );
    let guest_window = times
        .ready
        .map(|ready| (ready.saturating_sub(timeline.entry_to_main()), ready));
    if let Some((start, end)) = guest_window {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.2}" y="{host_top}" width="{:.2}" height="{BAR}" fill="#4e79a7"><title>guest entry → main</title></rect>"##,
            hx(start),
            (hx(end) - hx(start)).max(1.0)
        );
    }
    let marks = host_marks(timeline, times);
    for (i, (label, at)) in marks.iter().enumerate() {
        let x = hx(*at);
        let y = host_top + BAR + 12.0 + i as f64 * 13.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.2}" y1="{host_top}" x2="{x:.2}" y2="{:.2}" stroke="#333333"/><text x="{:.2}" y="{y:.2}" text-anchor="end">{} {}</text>"##,
            y - 9.0,
            x - 3.0,
            escape(label),
            short(*at)
        );
    }

    // The guest's phases, from entry to main.
    let guest_end = timeline.entry_to_main().as_secs_f64().max(1e-12);
    let gx = |d: Duration| x0 + plot * d.as_secs_f64() / guest_end;
    let _ = writeln!(
        svg,
        r#"<text x="{MARGIN}" y="{}" font-weight="bold">guest (entry → main {})</text>"#,
        guest_top - 6.0,
        short(timeline.entry_to_main())
    );
    for (row, (phase, took)) in timeline.spans().enumerate() {
        let y = guest_top + row as f64 * ROW;
        let start = phase.at.saturating_sub(took);
        let colour = COLOURS[row % COLOURS.len()];
        let _ = writeln!(
            svg,
            r#"<text x="{MARGIN}" y="{:.2}">{}</text><rect x="{:.2}" y="{y:.2}" width="{:.2}" height="{BAR}" fill="{colour}"><title>{} ends at {} ({} long)</title></rect><text x="{:.2}" y="{:.2}">{}</text>"#,
            y + BAR - 3.0,
            escape(&phase.name),
            gx(start),
            (gx(phase.at) - gx(start)).max(1.0),
            escape(&phase.name),
            short(phase.at),
            short(took),
            (gx(phase.at) + 4.0).min(CHART_WIDTH - MARGIN - 60.0),
            y + BAR - 3.0,
            short(took)
        );
    }
    let axis = guest_top + rows as f64 * ROW + 4.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{axis}" x2="{:.2}" y2="{axis}" stroke="#333333"/><text x="{x0}" y="{:.2}">0</text><text x="{:.2}" y="{:.2}" text-anchor="end">{}</text>"##,
        x0 + plot,
        axis + 14.0,
        x0 + plot,
        axis + 14.0,
        short(timeline.entry_to_main())
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_in_nanoseconds() {
        let raw = parse_line(
            b"uniklink:timeline ns entry=0 paging=21034 runtime=40112 init.console=41020 main=41577\r",
        )
        .unwrap();
        let timeline = raw.convert(None, &[], Instant::now()).unwrap();
        let names: Vec<&str> = timeline.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["entry", "paging", "runtime", "init console", "main"]
        );
        assert_eq!(timeline.entry_to_main(), Duration::from_nanos(41577));
        let took: Vec<u128> = timeline.spans().map(|(_, d)| d.as_nanos()).collect();
        assert_eq!(took, [0, 21034, 19078, 908, 557]);
    }

    #[test]
    fn a_milestone_line_has_one_stamp() {
        assert_eq!(
            parse_milestone(b"uniklink:milestone ns listening=83412\r"),
            Some(("listening".to_owned(), GuestTime::Ns(83412)))
        );
        for line in [
            &b"uniklink:milestone ns"[..],
            b"uniklink:milestone ns a=1 b=2",
            b"uniklink:milestone parsecs a=1",
            b"uniklink:timeline ns entry=0",
        ] {
            assert_eq!(
                parse_milestone(line),
                None,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn milestones_show_after_main_with_the_hosts_time() {
        let launch = Instant::now();
        let seen = [SeenMilestone {
            name: "listening".to_owned(),
            time: GuestTime::Ns(141_577),
            at: launch + Duration::from_micros(32_000),
        }];
        let timeline = parse_line(b"uniklink:timeline ns entry=0 main=41577")
            .unwrap()
            .convert(None, &seen, launch)
            .unwrap();
        let table = table(&timeline, &times());
        assert!(
            table.contains("listening      141.6 µs   +100.0 µs\n"),
            "{table}"
        );
        assert!(
            table.contains("→ ready 31.3 ms → listening 32.0 ms → exit 33.0 ms"),
            "{table}"
        );
        assert!(svg(&timeline, &times(), "t").contains("listening 32.0 ms"));
    }

    #[test]
    fn ticks_need_a_rate() {
        let raw = parse_line(b"uniklink:timeline ticks entry=0 paging=2000 main=5000").unwrap();
        assert_eq!(raw.convert(None, &[], Instant::now()), None);
        let timeline = raw.convert(Some(1e9), &[], Instant::now()).unwrap();
        assert_eq!(timeline.entry_to_main(), Duration::from_nanos(5000));
    }

    #[test]
    fn other_and_garbled_lines_are_no_timeline() {
        for line in [
            &b"uniklink:ready entry_to_main_ns=5"[..],
            b"uniklink:timeline",
            b"uniklink:timeline ns",
            b"uniklink:timeline furlongs entry=0",
            b"uniklink:timeline ns entry=0 paging",
            b"uniklink:timeline ns entry=x",
            b"say uniklink:timeline ns entry=0",
        ] {
            assert_eq!(parse_line(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    fn times() -> BootTimes {
        BootTimes {
            first_byte: Some(Duration::from_micros(31_200)),
            ready: Some(Duration::from_micros(31_300)),
            entry_to_main: Some(Duration::from_nanos(41577)),
            total: Duration::from_micros(33_000),
        }
    }

    fn sample() -> Timeline {
        parse_line(b"uniklink:timeline ns entry=0 paging=21034 init.a<b=40112 main=41577")
            .unwrap()
            .convert(None, &[], Instant::now())
            .unwrap()
    }

    #[test]
    fn the_table_lists_phases_and_host_times() {
        let table = table(&sample(), &times());
        assert!(table.starts_with("phase"), "{table}");
        assert!(table.contains("paging  "), "{table}");
        assert!(table.contains("21.0 µs"), "{table}");
        assert!(
            table.ends_with("host: launch → first byte 31.2 ms → ready 31.3 ms → exit 33.0 ms\n"),
            "{table}"
        );
    }

    /// Names come from the guest: a milestone's is escaped as a phase's is, and characters
    /// XML cannot hold at all become U+FFFD, so the chart stays one well-formed document.
    #[test]
    fn names_from_the_guest_are_escaped_in_the_chart() {
        let launch = Instant::now();
        let seen = [SeenMilestone {
            name: "a<b&c".to_owned(),
            time: GuestTime::Ns(50_000),
            at: launch + Duration::from_micros(32_000),
        }];
        let timeline = parse_line(b"uniklink:timeline ns entry=0 init.x\x01y=40000 main=41577")
            .unwrap()
            .convert(None, &seen, launch)
            .unwrap();
        let svg = svg(&timeline, &times(), "t");
        assert!(svg.contains(">a&lt;b&amp;c 32.0 ms</text>"), "{svg}");
        assert!(svg.contains("init x\u{fffd}y ends at"), "{svg}");
        assert!(!svg.contains('\u{1}'), "{svg}");
    }

    #[test]
    fn the_chart_is_one_svg_document_with_a_bar_per_phase() {
        let svg = svg(&sample(), &times(), "hello & co");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("hello &amp; co"));
        assert!(svg.contains("init a&lt;b ends at"));
        assert_eq!(svg.matches("ends at").count(), 4);
        assert!(svg.contains("guest entry → main"));
    }
}
