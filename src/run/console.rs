//! The guest's serial console: copied to the caller's sink as it arrives, timed, and scanned
//! for the ready marker the library OS prints right before the app's `main`, and for the boot
//! timeline and the milestones (`listening`) it prints after the marker when asked.

use std::io::{self, Read, Write};
use std::time::Instant;

use super::timeline::{self, GuestTime, GuestTimeline, SeenMilestone};
use crate::symbolize::{Frame, parse_backtrace};

/// The start of the line the library OS prints once, just before the app's `main`:
/// `entry_to_main_ns=<n>`, the nanoseconds from guest entry to that point, or
/// `entry_to_main_ticks=<n>`, counter ticks where the guest does not know the counter's
/// frequency, follow.
pub const READY_MARKER: &str = "uniklink:ready ";
const ENTRY_TO_MAIN_NS: &str = "entry_to_main_ns=";
const ENTRY_TO_MAIN_TICKS: &str = "entry_to_main_ticks=";

/// Where the guest's console goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleSink {
    #[default]
    Stdout,
    /// For callers whose stdout carries something else, such as a JSON report.
    Stderr,
    Discard,
}

/// The ready marker, as the guest printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyMarker {
    pub at: Instant,
    /// `None` when the value does not parse.
    pub entry_to_main: Option<GuestTime>,
}

/// What streaming the console saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsoleReport {
    pub first_byte: Option<Instant>,
    pub ready: Option<ReadyMarker>,
    /// The first timeline line.
    pub(crate) timeline: Option<GuestTimeline>,
    /// Milestone lines after the marker, in the order they came.
    pub(crate) milestones: Vec<SeenMilestone>,
    /// The runtime's backtrace lines (a panic's or an exception's), in the order they came.
    pub(crate) backtraces: Vec<Vec<Frame>>,
    /// When the console reached end of file, which QEMU causes by exiting.
    pub closed: Option<Instant>,
}

/// A point of the boot a run can stop at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopPoint {
    /// The ready marker, right before the app's `main`.
    Ready,
    /// A milestone the library OS marks after `main` (`listening`).
    Milestone(String),
}

impl StopPoint {
    pub fn name(&self) -> &str {
        match self {
            StopPoint::Ready => "ready",
            StopPoint::Milestone(name) => name,
        }
    }
}

/// Finds the ready marker and the timeline in a byte stream that arrives in arbitrary pieces.
#[derive(Debug, Default)]
pub(crate) struct MarkerScanner {
    line: Vec<u8>,
    /// Set once the current line has grown past any line of the runtime's, so a guest
    /// printing one endless line costs no memory.
    overlong: bool,
    found: Option<ReadyMarker>,
    timeline: Option<GuestTimeline>,
    milestones: Vec<SeenMilestone>,
    /// The milestone `run --until` waits for, kept even past `MAX_MILESTONES`.
    watched: Option<String>,
    backtraces: Vec<Vec<Frame>>,
}

/// Longest line that can still be one of the runtime's: a timeline of many inits.
const MAX_RUNTIME_LINE: usize = 4096;
/// Milestones kept, the first of each name; a guest printing milestone lines forever costs no
/// more memory.
const MAX_MILESTONES: usize = 64;
/// Backtraces kept: the runtime prints one before it exits, a guest more only by mistake.
const MAX_BACKTRACES: usize = 4;

impl MarkerScanner {
    pub(crate) fn feed(&mut self, bytes: &[u8], at: Instant) {
        for &byte in bytes {
            if byte == b'\n' {
                if !self.overlong {
                    self.end_line(at);
                }
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() < MAX_RUNTIME_LINE {
                self.line.push(byte);
            } else {
                self.overlong = true;
            }
        }
    }

    fn end_line(&mut self, at: Instant) {
        if let Some(frames) = std::str::from_utf8(&self.line)
            .ok()
            .and_then(parse_backtrace)
        {
            if self.backtraces.len() < MAX_BACKTRACES {
                self.backtraces.push(frames);
            }
        } else if self.found.is_none() {
            self.found =
                parse_marker(&self.line).map(|entry_to_main| ReadyMarker { at, entry_to_main });
        } else if let Some((name, time)) = timeline::parse_milestone(&self.line) {
            let seen = self.milestones.iter().any(|m| m.name == name);
            let room = self.milestones.len() < MAX_MILESTONES
                || self.watched.as_deref() == Some(name.as_str());
            if !seen && room {
                self.milestones.push(SeenMilestone { name, time, at });
            }
        } else if self.timeline.is_none() {
            self.timeline = timeline::parse_line(&self.line);
        }
    }

    pub(crate) fn found(&self) -> Option<ReadyMarker> {
        self.found
    }

    /// Whether the console has shown `point`.
    fn reached(&self, point: &StopPoint) -> bool {
        match point {
            StopPoint::Ready => self.found.is_some(),
            StopPoint::Milestone(name) => self.milestones.iter().any(|m| m.name == *name),
        }
    }
}

/// `Some(time)` for a marker line, `Some(None)` for a marker whose value is garbled.
fn parse_marker(line: &[u8]) -> Option<Option<GuestTime>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let value = std::str::from_utf8(line.strip_prefix(READY_MARKER.as_bytes())?).ok();
    let number = |prefix: &str| value?.strip_prefix(prefix)?.parse().ok();
    Some(
        number(ENTRY_TO_MAIN_NS)
            .map(GuestTime::Ns)
            .or_else(|| number(ENTRY_TO_MAIN_TICKS).map(GuestTime::Ticks)),
    )
}

/// Copies `reader` to `sink` until end of file, noting when the first byte and the ready
/// marker arrived, and calling `on_stop` once when the console shows `stop`.
///
/// A sink that fails (a closed stdout, say) stops being written to but the console is still
/// read to its end: QEMU blocks once the pipe fills, and the exit status is still wanted.
pub(crate) fn stream(
    mut reader: impl Read,
    sink: ConsoleSink,
    mut stop: Option<&StopPoint>,
    mut on_stop: impl FnMut(),
) -> io::Result<ConsoleReport> {
    let mut report = ConsoleReport::default();
    let mut scanner = MarkerScanner {
        watched: match stop {
            Some(StopPoint::Milestone(name)) => Some(name.clone()),
            _ => None,
        },
        ..MarkerScanner::default()
    };
    let mut out: Option<Box<dyn Write>> = match sink {
        ConsoleSink::Stdout => Some(Box::new(io::stdout())),
        ConsoleSink::Stderr => Some(Box::new(io::stderr())),
        ConsoleSink::Discard => None,
    };
    let mut buf = [0u8; 4096];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        report.first_byte.get_or_insert(now);
        scanner.feed(&buf[..n], now);
        if let Some(w) = out.as_mut()
            && w.write_all(&buf[..n]).and_then(|()| w.flush()).is_err()
        {
            out = None;
        }
        if stop.take_if(|point| scanner.reached(point)).is_some() {
            on_stop();
        }
    }
    report.ready = scanner.found();
    report.timeline = scanner.timeline;
    report.milestones = scanner.milestones;
    report.backtraces = scanner.backtraces;
    report.closed = Some(Instant::now());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(pieces: &[&[u8]]) -> Option<Option<GuestTime>> {
        let mut scanner = MarkerScanner::default();
        let at = Instant::now();
        for piece in pieces {
            scanner.feed(piece, at);
        }
        scanner.found().map(|m| m.entry_to_main)
    }

    /// The first of each milestone name is kept, up to `MAX_MILESTONES`, and the one `run
    /// --until` waits for even past that: no number of other milestones hides it.
    #[test]
    fn the_milestone_waited_for_is_seen_past_the_cap() {
        let until = StopPoint::Milestone("listening".to_owned());
        let mut scanner = MarkerScanner {
            watched: Some("listening".to_owned()),
            ..MarkerScanner::default()
        };
        let at = Instant::now();
        scanner.feed(b"uniklink:ready entry_to_main_ns=9\n", at);
        for i in 0..MAX_MILESTONES + 10 {
            scanner.feed(format!("uniklink:milestone ns m{i}=1\n").as_bytes(), at);
            scanner.feed(b"uniklink:milestone ns m0=2\n", at);
        }
        assert_eq!(scanner.milestones.len(), MAX_MILESTONES);
        assert!(!scanner.reached(&until));
        scanner.feed(b"uniklink:milestone ns listening=3\n", at);
        scanner.feed(b"uniklink:milestone ns listening=4\n", at);
        assert!(scanner.reached(&until));
        let listening: Vec<_> = scanner
            .milestones
            .iter()
            .filter(|m| m.name == "listening")
            .collect();
        assert_eq!(listening.len(), 1);
        assert_eq!(listening[0].time, GuestTime::Ns(3));
        let m0 = scanner.milestones.iter().find(|m| m.name == "m0").unwrap();
        assert_eq!(m0.time, GuestTime::Ns(1), "the first of a name is kept");
    }

    #[test]
    fn marker_on_its_own_line() {
        assert_eq!(
            scan(&[b"hello\nuniklink:ready entry_to_main_ns=41250\n"]),
            Some(Some(GuestTime::Ns(41250)))
        );
    }

    #[test]
    fn marker_in_counter_ticks() {
        assert_eq!(
            scan(&[b"uniklink:ready entry_to_main_ticks=530000\n"]),
            Some(Some(GuestTime::Ticks(530_000)))
        );
    }

    #[test]
    fn marker_split_across_reads_and_crlf() {
        assert_eq!(
            scan(&[b"uniklink:rea", b"dy entry_to_m", b"ain_ns=7\r", b"\n"]),
            Some(Some(GuestTime::Ns(7)))
        );
    }

    #[test]
    fn first_marker_wins() {
        assert_eq!(
            scan(&[b"uniklink:ready entry_to_main_ns=1\nuniklink:ready entry_to_main_ns=2\n"]),
            Some(Some(GuestTime::Ns(1)))
        );
    }

    #[test]
    fn garbled_number_still_marks_ready() {
        assert_eq!(
            scan(&[b"uniklink:ready entry_to_main_ns=12x\n"]),
            Some(None)
        );
        assert_eq!(scan(&[b"uniklink:ready soon\n"]), Some(None));
    }

    #[test]
    fn unterminated_or_embedded_marker_is_not_ready() {
        assert_eq!(scan(&[b"uniklink:ready entry_to_main_ns=5"]), None);
        assert_eq!(scan(&[b"say uniklink:ready entry_to_main_ns=5\n"]), None);
    }

    #[test]
    fn overlong_line_is_not_a_marker() {
        let mut line = READY_MARKER.as_bytes().to_vec();
        line.extend(std::iter::repeat_n(b'9', MAX_RUNTIME_LINE));
        line.push(b'\n');
        assert_eq!(scan(&[&line]), None);
        assert_eq!(
            scan(&[&line, b"uniklink:ready entry_to_main_ns=3\n"]),
            Some(Some(GuestTime::Ns(3)))
        );
    }

    #[test]
    fn the_timeline_follows_the_marker() {
        let input: &[u8] = b"uniklink:timeline ns entry=0 main=1\nuniklink:ready entry_to_main_ns=9\nuniklink:timeline ns entry=0 paging=4 main=9\nuniklink:timeline ns entry=0 main=2\n";
        let report = stream(input, ConsoleSink::Discard, None, || {}).unwrap();
        let timeline = report
            .timeline
            .unwrap()
            .convert(None, &[], Instant::now())
            .unwrap();
        assert_eq!(timeline.phases.len(), 3, "the first line after the marker");
    }

    #[test]
    fn stream_notes_first_byte_and_marker() {
        let input: &[u8] = b"boot\nuniklink:ready entry_to_main_ns=99\nbye\n";
        let report = stream(input, ConsoleSink::Discard, None, || {}).unwrap();
        let first = report.first_byte.unwrap();
        let ready = report.ready.unwrap();
        assert!(ready.at >= first);
        assert!(report.closed.unwrap() >= ready.at);
        assert_eq!(ready.entry_to_main, Some(GuestTime::Ns(99)));
        assert_eq!(report.timeline, None);
    }

    #[test]
    fn milestones_follow_the_marker_and_stop_the_run_once() {
        let input: &[u8] = b"uniklink:milestone ns early=1\nuniklink:ready entry_to_main_ns=9\nuniklink:timeline ns entry=0 main=9\nuniklink:milestone ns listening=50\nuniklink:milestone ticks listening=70\n";
        let mut stops = 0;
        let point = StopPoint::Milestone("listening".to_owned());
        let report = stream(input, ConsoleSink::Discard, Some(&point), || stops += 1).unwrap();
        assert_eq!(stops, 1);
        let seen: Vec<(&str, GuestTime)> = report
            .milestones
            .iter()
            .map(|m| (m.name.as_str(), m.time))
            .collect();
        assert_eq!(
            seen,
            [("listening", GuestTime::Ns(50))],
            "the first of a name"
        );
        assert!(report.timeline.is_some(), "a milestone is no timeline line");
    }

    #[test]
    fn backtraces_are_kept_wherever_they_come() {
        let input: &[u8] = b"uniklink:backtrace pc=0x10 0x20\nuniklink:ready entry_to_main_ns=9\nuniklink:backtrace 0x30\n";
        let report = stream(input, ConsoleSink::Discard, None, || {}).unwrap();
        assert_eq!(
            report.backtraces,
            [
                vec![Frame::Pc(0x10), Frame::Return(0x20)],
                vec![Frame::Return(0x30)]
            ]
        );
        assert!(
            report.ready.is_some(),
            "a backtrace before the marker hides nothing"
        );
    }

    #[test]
    fn a_stop_point_never_shown_never_stops() {
        let input: &[u8] = b"uniklink:ready entry_to_main_ns=9\n";
        let mut stopped = false;
        let point = StopPoint::Milestone("listening".to_owned());
        stream(input, ConsoleSink::Discard, Some(&point), || stopped = true).unwrap();
        assert!(!stopped);
        stream(input, ConsoleSink::Discard, Some(&StopPoint::Ready), || {
            stopped = true
        })
        .unwrap();
        assert!(stopped);
    }

    #[test]
    fn silent_console_has_no_times() {
        let report = stream(&b""[..], ConsoleSink::Discard, None, || {}).unwrap();
        assert_eq!(report.first_byte, None);
        assert_eq!(report.ready, None);
        assert!(report.closed.is_some());
    }
}
