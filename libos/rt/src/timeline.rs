//! When each boot phase ended: raw counter values, stamped as boot goes (entry, paging, the
//! runtime's own set-up, each component init the start routine runs, main) and converted only
//! when printed, so that stamping needs no clock frequency. With `uniklink.timeline` on the
//! command line the runtime prints them in one line after the ready marker:
//!
//! `uniklink:timeline ns entry=0 paging=21034 runtime=40112 init.rng=41020 main=41577`
//!
//! Values count from entry, in nanoseconds (`ns`) when the platform states the counter's
//! frequency, else in counter ticks (`ticks`). Inits are named by the glue object's list of
//! live components in init order, or numbered from 1 in an image linked without it.
//!
//! After `main` has started, components mark [`milestone`]s, each a line of its own when
//! the timeline was asked for: `uniklink:milestone ns listening=83412` (the net component's
//! first listening socket).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use unik_platform::clock::TscScale;
use unik_platform::decimal::{MAX_DIGITS, decimal};

use crate::arch;
use crate::arch::serial::write_bytes;

/// A phase the runtime itself stamps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// The entry point's first instruction.
    Entry,
    /// Paging on: the first instruction after the page tables took effect.
    Paging,
    /// The runtime's own set-up done (exceptions, loader data, unmapped pages), right
    /// before the start routine runs the component inits.
    Runtime,
    /// Right before the app's `main`.
    Main,
}

const PHASES: usize = 4;
/// Inits past this many still run, unstamped.
const MAX_INITS: usize = 32;

/// Indexed by [`Phase`]; the entry code writes the entry stamp itself, before any Rust code
/// runs.
pub(crate) static PHASE_TICKS: [AtomicU64; PHASES] = [const { AtomicU64::new(0) }; PHASES];
/// One more than `MAX_INITS`: the stamps of inits past the limit all go to the last slot, so
/// that stamping needs no branch.
static INIT_TICKS: [AtomicU64; MAX_INITS + 1] = [const { AtomicU64::new(0) }; MAX_INITS + 1];
static INITS: AtomicUsize = AtomicUsize::new(0);
/// Whether the command line asked for the timeline; set before `main`.
static ASKED: AtomicBool = AtomicBool::new(false);

pub(crate) fn stamp(phase: Phase) {
    PHASE_TICKS[phase as usize].store(arch::stamp_ticks(), Ordering::Relaxed);
}

/// Marks the end of the next component init.
pub(crate) fn stamp_init() {
    let ticks = arch::stamp_ticks();
    // A plain load and store: the runtime is single-threaded, and an atomic read-modify-write
    // is a slow path of the emulator.
    let count = INITS.load(Ordering::Relaxed);
    INITS.store(count + 1, Ordering::Relaxed);
    INIT_TICKS[count.min(MAX_INITS)].store(ticks, Ordering::Relaxed);
}

fn since_entry(ticks: u64) -> u64 {
    ticks.saturating_sub(PHASE_TICKS[Phase::Entry as usize].load(Ordering::Relaxed))
}

/// Counter ticks from entry to `phase`.
pub(crate) fn ticks_to(phase: Phase) -> u64 {
    since_entry(PHASE_TICKS[phase as usize].load(Ordering::Relaxed))
}

/// Writes `value` in decimal to the console.
pub(crate) fn write_number(value: u64) {
    let mut digits = [0; MAX_DIGITS];
    write_bytes(decimal(value, &mut digits));
}

/// Prints the timeline line; `scale` converts ticks to nanoseconds where the frequency is
/// known. `names` are the inits' components, separated by spaces. Milestones print from now
/// on.
pub(crate) fn print(scale: Option<TscScale>, names: &str) {
    ASKED.store(true, Ordering::Relaxed);
    let value = |ticks: u64| scale.map_or(ticks, |scale| scale.ticks_to_ns(ticks));
    write_bytes(b"uniklink:timeline ");
    write_unit(scale);
    let runtime_phases = [
        (&b"entry"[..], Phase::Entry),
        (b"paging", Phase::Paging),
        (b"runtime", Phase::Runtime),
    ];
    for (name, phase) in runtime_phases {
        write_stamp(&[name], value(ticks_to(phase)));
    }
    let mut names = names.split_ascii_whitespace();
    let inits = INITS.load(Ordering::Relaxed).min(MAX_INITS);
    for (index, slot) in INIT_TICKS[..inits].iter().enumerate() {
        let at = value(since_entry(slot.load(Ordering::Relaxed)));
        match names.next() {
            Some(name) => write_stamp(&[b"init.", name.as_bytes()], at),
            None => {
                let mut digits = [0; MAX_DIGITS];
                write_stamp(&[b"init.", decimal(index as u64 + 1, &mut digits)], at);
            }
        }
    }
    write_stamp(&[b"main"], value(ticks_to(Phase::Main)));
    write_bytes(b"\n");
}

/// Marks a moment after `main` started that boot time is measured to (`listening`: the first
/// socket a server listens on), printed as a line of its own when the command line asks for
/// the timeline, counted from entry like the timeline's phases. `name` is one word.
pub fn milestone(name: &str) {
    if !ASKED.load(Ordering::Relaxed) {
        return;
    }
    let since = since_entry(arch::ticks());
    let scale = arch::stated_frequency().and_then(|(hz, _)| TscScale::from_hz(hz));
    write_bytes(b"uniklink:milestone ");
    write_unit(scale);
    write_stamp(
        &[name.as_bytes()],
        scale.map_or(since, |scale| scale.ticks_to_ns(since)),
    );
    write_bytes(b"\n");
}

fn write_unit(scale: Option<TscScale>) {
    write_bytes(if scale.is_some() { b"ns" } else { b"ticks" });
}

/// ` <name>=<value>`, the name in pieces.
fn write_stamp(name: &[&[u8]], value: u64) {
    write_bytes(b" ");
    for piece in name {
        write_bytes(piece);
    }
    write_bytes(b"=");
    write_number(value);
}
