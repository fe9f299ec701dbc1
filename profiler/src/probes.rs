//! Exact crossing counts: uprobes on the functions that carry crossings.
//!
//! Sites come from two places. When a module loads, its symbols and tables
//! name the functions that carry crossings whatever calls them: the C
//! wrappers cgo generates for `//export`ed Go functions (into Go), the
//! `_cgo_<hash>_Cfunc_*` wrappers (out of Go; they run on the system stack),
//! ctypes' and cffi's callback entries (into Python), cffi's `_cffi_f_*`
//! wrappers, PyO3's entry trampolines, the functions in a third-party C
//! extension's method tables, and libffi's `ffi_call`, which both ctypes and
//! cffi's ABI mode call with the function to call as its second argument: its
//! probe records that argument and its return address, so each hit names its
//! callee (its runtime) and its caller (ctypes or cffi). Those are armed at
//! once, so their counts start with the module. Crossings that nothing names
//! ahead of time (a stdlib or large extension's method, C calling Rust) are
//! found on the samples' stacks and their callee's entry is probed from then
//! on; the boundary's `armed_at_ns` says when.
//!
//! A site counts calls of a function; which boundary a call belongs to comes
//! from the stacks: the samples vote, tick by tick, for the boundaries whose
//! crossing passes through the site's function.
//!
//! Safety for the target: entry probes only (never a uretprobe: on a goroutine
//! stack it crashes the target), never on Go code (its prologue may restart
//! after `morestack` and the probe would count twice), one event per (site,
//! thread) and never inherited (see [`crate::perf::uprobe`]). Each hit costs
//! the target about a microsecond (ten or more when the first instruction must
//! be single-stepped); seam measures that cost on itself at start, adds it up,
//! and with a budget disarms the probes in duty cycles and extrapolates.

use crate::crossing::is_pyo3_trampoline;
use crate::gocount::CgoCounter;
use crate::memory::ProcessMemory;
use crate::modules::{AddressSpace, Language, ObjectInfo};
use crate::perf::uprobe::{
    probe_kind, probe_point, trap_return_points, CallArgs, EventId, Probe, ProbeKind, UprobeSet,
};
use crate::perf::{monotonic_ns, thread_cpu_ns, Workload};
use crate::Error;
use seam_proto::{CrossingsMethod, Mechanism, ProbeOverhead, Profile, Runtime};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::OwnedFd;

/// (caller, callee, mechanism).
pub type BoundaryKey = (Runtime, Runtime, Mechanism);

/// Votes of the samples: for each function name on a crossing, the boundaries it carried
/// (callee `unknown` where its glue was caught before the callee was known).
pub type Votes = HashMap<String, HashMap<BoundaryKey, u64>>;

/// For each probed function, the samples whose native stack held it: whether
/// or not a crossing was found through it (a callback's Python frames, read
/// from the live thread, are gone when seam's reader comes late, and with
/// them its vote), they show the function busy.
pub type Sightings = HashMap<String, u64>;

/// The on-CPU samples of each thread of the target: their times, and for
/// those in seam's probe traps, the function whose probe trapped. The time
/// a site's traps took from each thread, seen in place (see [`HitNs::seen`]).
pub type ThreadSamples = HashMap<u32, Vec<(u64, Option<String>)>>;

/// A thread's on-CPU samples in a spell, and those in the site's traps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct OnCpu {
    samples: u64,
    traps: u64,
}

/// A function seen on a crossing that could be probed: (module file name, function name, boundary).
pub type Candidate = (String, String, BoundaryKey);

/// How to count.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProbeOptions {
    /// Keep the probes' estimated cost under this share of the target's CPU
    /// time (0.03 = 3%) by disarming them in duty cycles. None: always armed.
    pub budget: Option<f64>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            budget: Some(DEFAULT_BUDGET),
        }
    }
}

pub const DEFAULT_BUDGET: f64 = 0.03;

/// The share of a budget seam spends: the budget is a ceiling, and seam's
/// estimate of what it costs the target misses by about a third either way
/// (calibrated costs, the traps' few samples, the duty cycle's arming and
/// disarming, which it does not price). On `chain` under a 3% budget, spent
/// in full, the target did 3.4-4.0% less work per CPU second (medians of
/// 5-9 rounds) where seam said 2.6-3.0% (README, *Overhead budget*).
pub const BUDGET_SPENT: f64 = 2.0 / 3.0;

/// Shortest armed or disarmed spell of a duty cycle.
const MIN_SPELL_NS: u64 = 200_000_000;
/// The budget is first checked after this much recording, so that start-up
/// (few target CPU samples yet) does not disarm everything at once.
const BUDGET_WARMUP_NS: u64 = 500_000_000;
/// What the budget may have saved up, as target CPU time: a target that ran
/// without crossing for minutes must not have saved up probe time to spend
/// on its next burst of calls (a burst waits for its sites' events to close,
/// 60-100 ms each, before it stops paying).
const MAX_SAVED_CPU_NS: f64 = 1e9;
/// Probe cost below which the budget is not enforced (1 ms of target CPU).
const MIN_COST_NS: f64 = 1e6;
/// The share of the budget the probes keep when sampling takes all of it.
pub const MIN_PROBE_SHARE: f64 = 0.1;
/// Samples in the probes' traps needed before their cost as measured in
/// place (see [`Prober::cost_ns`]) is trusted over the calibration's. With 8
/// the figure is good to about a third (1/√8), finer than how far the traps
/// are from the calibration at low rates: attached to a C extension's loop
/// at 285 Hz they took 1.8x the calibrated cost, and with 20 needed the
/// budget went by the calibration for most of a 2-second recording (the
/// probes at 2.8% of the target's CPU, seam said 1.5%).
const MIN_TRAP_SAMPLES: u64 = 8;

/// What the recording saw since the last [`Prober::tick`].
pub struct Tick<'a> {
    /// For each function on a crossing, the boundaries the samples gave it.
    pub votes: &'a Votes,
    pub sightings: &'a Sightings,
    pub space: &'a AddressSpace,
    /// The target's CPU time, ns.
    pub target_cpu_ns: u64,
    /// What sampling cost the target, ns.
    pub sampling_cost_ns: f64,
    /// Samples of the target taken in seam's probe traps, and the CPU time
    /// they stand for, ns.
    pub trap_samples: u64,
    pub trap_cpu_ns: f64,
    /// Each thread's on-CPU samples, with the function whose probe trapped
    /// for those in the traps.
    pub threads: &'a ThreadSamples,
    /// The target's CPU time one sample stands for, ns.
    pub sample_ns: f64,
    pub now_ns: u64,
}

struct Site {
    module: String,
    /// The function's name as frames show it.
    symbol: String,
    /// The name crossings are reported under (`functions` in the summary).
    function: String,
    file: String,
    offset: u64,
    kind: ProbeKind,
    /// Where the thread runs on after its probe's trap (see
    /// [`trap_return_points`]).
    resume_svmas: Vec<u64>,
    default_key: BoundaryKey,
    /// Found in the module's symbols at load (not on a sample's stack).
    is_static: bool,
    /// A dispatcher (libffi's `ffi_call`): each hit names the function it
    /// calls and its caller, which say the boundary; no votes needed.
    dispatch: bool,
    /// A dispatcher's hits not yet resolved to boundaries: (call, hits).
    pending: HashMap<CallArgs, u64>,
    /// A dispatcher's resolved hits: by boundary and callee name.
    dispatched: HashMap<(BoundaryKey, String), u64>,
    /// A dispatcher's hits that crossed no boundary seam reports here.
    skipped: u64,
    /// Hits of this site that a dispatcher saw coming (ctypes calling a Go
    /// export's wrapper), by boundary, not yet given to a boundary here.
    via_dispatch: HashMap<BoundaryKey, u64>,
    events: Vec<OwnedFd>,
    /// Events handed to the closer and not yet closed: they still count.
    closing: usize,
    /// Hits by the target, and by other processes that map the same file.
    hits: u64,
    foreign: u64,
    last_hits: u64,
    /// The spells during which the site was armed, oldest first.
    spells: Vec<Spell>,
    load_ns: Option<u64>,
    /// The module's path as mapped (the key of `load_times`).
    object_path: String,
    /// The function's entry in the module.
    entry_svma: u64,
    attributed: HashMap<BoundaryKey, u64>,
    votes: HashMap<BoundaryKey, u64>,
    /// The last tick at which samples showed this site's function.
    last_vote_ns: Option<u64>,
    /// Since when its Go runtime's own count of cgo calls counts its calls
    /// alone (it is the runtime's only `Cfunc` site): it is never armed.
    counted_since: Option<u64>,
    /// Not armed before this (see [`Prober::rest_counted_sites`]).
    rest_until_ns: u64,
}

/// One armed spell of a site: from `start` to `end` (None while armed), with
/// the hits whose timestamps fall in it, in all and by thread.
#[derive(Clone, Debug, Default)]
struct Spell {
    start: u64,
    end: Option<u64>,
    hits: u64,
    first_hit: Option<u64>,
    last_hit: Option<u64>,
    by_thread: Vec<(u32, u64)>,
    /// Hits after `end`, counted while the spell's events were closing.
    late_hits: u64,
    /// Samples that showed the site's function while the spell was armed.
    seen: u64,
    /// The first and last tick with such samples in the gap after the
    /// spell (from the start of the first tick to the end of the last).
    gap_seen: Option<(u64, u64)>,
    /// A dispatcher's samples by (caller, mechanism): while the spell was
    /// armed, and in the gap after it (see [`gap_shares`]).
    seen_by: HashMap<(Runtime, Mechanism), u64>,
    gap_by: HashMap<(Runtime, Mechanism), u64>,
    /// The latest pauses in the spell's hits (see [`Spell::recent_rate`]).
    pauses: Vec<Pause>,
    /// The on-CPU samples of the threads that hit the site, taken while the
    /// spell was armed (from its first hit on), and those in the probes'
    /// traps (see [`HitNs::seen`]).
    on_cpu: Vec<(u32, OnCpu)>,
}

/// A pause of `gap` ns in a spell's hits, before the hit at `at`, and the
/// spell's hits before it, in all and by thread.
#[derive(Clone, Debug, Default)]
struct Pause {
    at: u64,
    gap: u64,
    hits: u64,
    by_thread: Vec<(u32, u64)>,
}

/// A pause in a spell's hits at least this long may start a new run of them
/// (see [`Spell::recent_rate`]); the latest few are kept.
const PAUSE_NS: u64 = 50_000_000;
const PAUSES_KEPT: usize = 8;

impl Spell {
    fn len(&self, now: u64) -> u64 {
        self.end.unwrap_or(now).saturating_sub(self.start)
    }

    /// Counts the samples, taken while the spell was armed (from its first
    /// hit on), of the threads that hit the site (`symbol`), and those in
    /// its traps.
    fn add_samples(&mut self, threads: &ThreadSamples, symbol: &str) {
        let Some(start) = self.first_hit else {
            return;
        };
        let end = self.end.unwrap_or(u64::MAX);
        for &(tid, _) in &self.by_thread {
            let Some(samples) = threads.get(&tid) else {
                continue;
            };
            let mut c = OnCpu::default();
            for (_, trap) in samples.iter().filter(|s| s.0 >= start && s.0 < end) {
                c.samples += 1;
                c.traps += (trap.as_deref() == Some(symbol)) as u64;
            }
            match self.on_cpu.iter_mut().find(|e| e.0 == tid) {
                Some((_, sum)) => {
                    sum.samples += c.samples;
                    sum.traps += c.traps;
                }
                None if c.samples > 0 => self.on_cpu.push((tid, c)),
                None => {}
            }
        }
    }

    fn add_hit(&mut self, tid: u32, time_ns: u64) {
        // Counted while its events were still being closed (one after
        // another, up to a few hundred ms): in the gap, not in the spell's rate.
        if self.end.is_some_and(|end| time_ns > end) {
            self.late_hits += 1;
            return;
        }
        if let Some(last) = self.last_hit.filter(|&l| time_ns > l + PAUSE_NS) {
            if self.pauses.len() == PAUSES_KEPT {
                self.pauses.remove(0);
            }
            self.pauses.push(Pause {
                at: time_ns,
                gap: time_ns - last,
                hits: self.hits,
                by_thread: self.by_thread.clone(),
            });
        }
        self.hits += 1;
        self.first_hit.get_or_insert(time_ns);
        self.last_hit = Some(time_ns.max(self.last_hit.unwrap_or(0)));
        match self.by_thread.iter_mut().find(|(t, _)| *t == tid) {
            Some((_, n)) => *n += 1,
            None => self.by_thread.push((tid, 1)),
        }
    }

    /// The rate of crossings (per ns) over `len` ns of this spell as the
    /// target would have made them unprobed, with its error: each thread's
    /// calls were slower by a hit each, so a thread that crossed `h` times in
    /// `len` had `len - h * ns` of its own time for them, where `ns` is what
    /// a hit cost that thread (see [`HitNs`]; as in a loop that calls again
    /// once a call is done; never less than a twentieth of `len`). That
    /// difference is what the error of a hit's cost weighs on: in a tight
    /// loop the hits take nearly all of `len`, and a small error in their
    /// cost is a large one in the rate (all of it when clamped).
    fn unprobed_rate(&self, len: f64, hit: &HitNs) -> (f64, f64) {
        unprobed_rate(self.hits, &self.by_thread, len, hit)
    }

    /// [`Spell::unprobed_rate`] of the latest run of hits up to `end`, and
    /// those hits: from the latest pause twenty times as long as the spacing
    /// of the hits after it (a warm-up call, then a loop a second later),
    /// else from the first hit.
    fn recent_rate(&self, end: u64, hit: &HitNs) -> (f64, f64, u64) {
        let whole = (self.first_hit.unwrap_or(self.start), 0, Vec::new());
        let (from, before, by_before) = self
            .pauses
            .iter()
            .rev()
            .find(|p| {
                let after = self.hits.saturating_sub(p.hits);
                after >= 20 && p.gap >= 20 * (end.saturating_sub(p.at) / after)
            })
            .map_or(whole, |p| (p.at, p.hits, p.by_thread.clone()));
        let hits = self.hits - before;
        let by_thread: Vec<(u32, u64)> = self
            .by_thread
            .iter()
            .map(|&(t, n)| {
                let b = by_before.iter().find(|b| b.0 == t).map_or(0, |b| b.1);
                (t, n - b)
            })
            .filter(|&(_, n)| n > 0)
            .collect();
        let len = end.saturating_sub(from).max(1) as f64;
        let (rate, error) = unprobed_rate(hits, &by_thread, len, hit);
        (rate, error, hits)
    }
}

/// See [`Spell::unprobed_rate`].
fn unprobed_rate(hits: u64, by_thread: &[(u32, u64)], len: f64, hit: &HitNs) -> (f64, f64) {
    let at = |h: u64, ns: f64| h as f64 / (len - h as f64 * ns).max(len / 20.0);
    let rate = |h: u64, (ns, error): (f64, f64)| {
        let error = error.max(HIT_COST_UNKNOWN * ns);
        let r = at(h, ns);
        if len - h as f64 * ns < len / 20.0 {
            return (r, r);
        }
        // The rate bends up steeply as the hits fill the spell: the error
        // is the wider side of the interval the cost's error spans.
        let (hi, lo) = (at(h, ns + error), at(h, (ns - error).max(0.0)));
        (r, (hi - r).max(r - lo))
    };
    if by_thread.is_empty() {
        rate(hits, (hit.ns, hit.error))
    } else {
        by_thread
            .iter()
            .map(|&(t, h)| rate(h, hit.of(t)))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}

/// The least relative error of a hit's cost in a spell's rate: the traps'
/// samples show the trap, not what the code after it loses to cold caches
/// and branch predictors (10-120 ns a hit on ffibench's loops, which the
/// calibration's warm loop hardly pays), and the calibration moves by up to
/// 3x between runs. In a loop of calls that cost less than a hit, this is
/// most of the count's error: jiter's `from_json` under the budget read
/// 1,597,279 ± 47,505 calls where it made 4,018,976.
const HIT_COST_UNKNOWN: f64 = 0.3;

/// What a probe hit costs the target, ns, and the error of that figure:
/// calibrated, and for each thread whose samples in the spells showed it,
/// as they did (see [`HitNs::seen`]).
#[derive(Clone, Debug, Default)]
struct HitNs {
    ns: f64,
    error: f64,
    by_thread: Vec<(u32, (f64, f64))>,
}

/// A thread's on-CPU samples in a site's spells needed before the time its
/// traps took is measured from them rather than from the calibration.
const MIN_THREAD_SAMPLES: u64 = 10;

impl HitNs {
    /// The calibrated cost, with the cost each thread's own samples show
    /// in `spells` where they are enough: its samples in the traps while it
    /// was hitting the site, over its hits, in CPU time (`sample_ns` a
    /// sample). That is what the traps took from that thread in that code,
    /// which the calibration's small warm loop only approximates (on
    /// ffibench's tight loops of calls the traps took 1.1-2.9 times the
    /// calibrated cost; the calibration itself moves by 3x from one run to
    /// the next). Its error is the binomial error of the traps' share of
    /// the thread's samples, and the two are weighed by their errors. The
    /// samples in its traps are those whose user stack ends in the site's
    /// function (a thread that loops over calls to two probed functions has
    /// its time in the traps of each).
    fn seen(ns: f64, error: f64, spells: &[Spell], sample_ns: f64) -> HitNs {
        let mut hits: Vec<(u32, u64, OnCpu)> = Vec::new();
        for spell in spells {
            for &(t, h) in &spell.by_thread {
                let c = spell
                    .on_cpu
                    .iter()
                    .find(|e| e.0 == t)
                    .map_or(OnCpu::default(), |e| e.1);
                match hits.iter_mut().find(|e| e.0 == t) {
                    Some(e) => {
                        e.1 += h;
                        e.2.samples += c.samples;
                        e.2.traps += c.traps;
                    }
                    None => hits.push((t, h, c)),
                }
            }
        }
        let by_thread = hits
            .into_iter()
            .filter(|&(_, h, c)| h > 0 && c.samples >= MIN_THREAD_SAMPLES && sample_ns > 0.0)
            .map(|(t, h, c)| {
                let (traps, rest) = (c.traps as f64, (c.samples - c.traps) as f64);
                let sd = (traps.max(1.0) * rest.max(1.0) / c.samples as f64).sqrt();
                let per_hit = sample_ns / h as f64;
                let (seen, seen_error) = (traps * per_hit, sd * per_hit);
                // Weighed with the calibration by their errors: a few
                // samples in the traps say little yet.
                let (w, ws) = (error.max(1.0).powi(-2), seen_error.max(1.0).powi(-2));
                (t, ((ns * w + seen * ws) / (w + ws), (w + ws).powf(-0.5)))
            })
            .collect();
        HitNs {
            ns,
            error,
            by_thread,
        }
    }

    /// The cost of a hit to thread `tid`, and its error.
    fn of(&self, tid: u32) -> (f64, f64) {
        self.by_thread
            .iter()
            .find(|e| e.0 == tid)
            .map_or((self.ns, self.error), |e| e.1)
    }
}

/// The crossings a site missed between its armed spells, estimated from the
/// rates of the spells on either side of each gap, with one standard error:
/// counting noise, the change of rate across the gap, and the error of a
/// hit's cost (the same in every spell, so those add up). After the last
/// spell, up to `active_until` (the last time the samples showed the site's
/// function), the last spell's rate goes on. The rates are the spells' own
/// with the probes' cost (`hit.ns` a hit) taken out: unprobed, in the gaps,
/// the calls are that much quicker.
fn extrapolate_gaps(
    spells: &[Spell],
    now: u64,
    active_until: Option<u64>,
    hit: &HitNs,
) -> (f64, f64) {
    let mut missed = 0.0;
    let mut var = 0.0;
    let mut cost_error = 0.0;
    if let (Some(last), Some(until)) = (spells.last(), active_until) {
        let end = last.end.unwrap_or(now);
        let tail = until.min(now).saturating_sub(end) as f64;
        if tail > 0.0 {
            let (rate, rate_error, hits) = last.recent_rate(end, hit);
            missed += (tail * rate - last.late_hits as f64).max(0.0);
            var += (tail * rate).powi(2) / hits.max(1) as f64;
            cost_error += tail * rate_error;
        }
    }
    for pair in spells.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // The rates next to the gap: the spell before from its latest run of
        // hits (not the idle time before the target started crossing), the
        // spell after up to its last hit.
        let lb = b.last_hit.unwrap_or(b.start).saturating_sub(b.start);
        let lb = lb.max(1) as f64;
        let gap = b.start.saturating_sub(a.end.unwrap_or(b.start)) as f64;
        if gap <= 0.0 {
            continue;
        }
        let (ra, ea, a_hits) = a.recent_rate(a.end.unwrap_or(now), hit);
        let (rb, eb) = b.unprobed_rate(lb, hit);
        let (gap, ra, rb) = busy_part(a, b, now, gap, ra, rb);
        // The gap's hits counted while the events were closing are counted already.
        missed += (gap * (ra + rb) / 2.0 - a.late_hits as f64).max(0.0);
        let counting =
            gap * gap * (ra * ra / a_hits.max(1) as f64 + rb * rb / b.hits.max(1) as f64) / 4.0;
        let drift = (gap * (ra - rb) / 2.0).powi(2);
        var += counting + drift;
        cost_error += gap * (ea + eb) / 2.0;
    }
    (missed, (var + cost_error * cost_error).sqrt())
}

/// Samples expected in a gap, at the pace the spells on either side showed
/// the function, for their absence to say it was idle.
const SEEN_IN_GAP: f64 = 3.0;
/// An edge of a gap counts as busy where the samples last showed the
/// function within this many of its mean spacings of it (the spells' pace):
/// a stretch without a sighting that long happens by chance one time in 20.
const IDLE_SPACINGS: f64 = 3.0;

/// The part of the gap between spells `a` and `b` (`gap` ns) in which the
/// samples showed the site's function busy, and the rates it went on at
/// there: a program that stops calling during a gap (a phase of a script
/// ends) is not extrapolated as if it had gone on until the next spell.
/// Where the spells' own samples are too few for an idle gap to show, all
/// of it, at the spells' rates (`ra`, `rb`).
fn busy_part(a: &Spell, b: &Spell, now: u64, gap: f64, ra: f64, rb: f64) -> (f64, f64, f64) {
    let Some(a_end) = a.end else {
        return (gap, ra, rb);
    };
    let armed = (a.len(now) + b.len(now)) as f64;
    let expected = gap * (a.seen + b.seen) as f64 / armed.max(1.0);
    if expected < SEEN_IN_GAP {
        return (gap, ra, rb);
    }
    let Some((first, last)) = a.gap_seen else {
        log::trace!(
            "gap of {:.0} ms: idle ({expected:.1} sightings expected, none seen)",
            gap / 1e6
        );
        return (0.0, ra, rb);
    };
    // The sightings nearest the edges are some way in by chance: with 4
    // expected in a 200 ms gap (`gomain`'s callback, 9% of its samples, at
    // 190 Hz), the last came 107 ms before its end, and cutting the gap
    // there made every such gap half as busy (the count 10-20% low, with
    // an error of 2-5%).
    let slack = (IDLE_SPACINGS * armed / (a.seen + b.seen) as f64) as u64;
    let from = if first <= a_end + slack { a_end } else { first };
    let to = if last + slack >= b.start {
        b.start
    } else {
        last
    };
    let busy = to.saturating_sub(from) as f64;
    log::trace!(
        "gap of {:.0} ms: busy {:.0} ms (seen {:.0} to {:.0} ms into it)",
        gap / 1e6,
        busy / 1e6,
        first as f64 / 1e6 - a_end as f64 / 1e6,
        last as f64 / 1e6 - a_end as f64 / 1e6
    );
    // Busy from the gap's start on: at `a`'s pace; up to its end: `b`'s.
    match (from <= a_end, to >= b.start) {
        (true, false) => (busy, ra, ra),
        (false, true) => (busy, rb, rb),
        _ => (busy, ra, rb),
    }
}

impl Site {
    fn key(&self) -> String {
        format!("{}:{}", self.module, self.symbol)
    }
}

/// Measured cost of one probe hit on this machine, ns.
#[derive(Clone, Copy, Debug)]
pub struct HitCost {
    pub emulated_ns: f64,
    pub single_step_ns: f64,
}

impl HitCost {
    fn of(&self, kind: ProbeKind) -> f64 {
        match kind {
            ProbeKind::Emulated => self.emulated_ns,
            ProbeKind::SingleStep => self.single_step_ns,
        }
    }
}

/// The uprobes on one target.
pub struct Prober {
    pid: u32,
    /// The target runs with a shadow stack (Intel CET's): its probes stay
    /// at functions' entries or pushes (see [`probed_svma`]).
    shadow_stack: bool,
    set: UprobeSet,
    options: ProbeOptions,
    cost: HitCost,
    sites: Vec<Site>,
    by_event: HashMap<EventId, usize>,
    /// Each site's index by (module path, file offset).
    site_keys: HashMap<(String, u64), usize>,
    scanned: HashSet<String>,
    candidates_seen: HashSet<(String, String)>,
    /// Closing a uprobe event takes tens of ms: a thread does it, and says
    /// when each site's events are closed.
    closer: Closer,
    armed: bool,
    spell_start_ns: u64,
    /// How long the probes have been disarmed in a row.
    spell_len_ns: u64,
    /// When the probes were disarmed for good (the end of the recording).
    finished_ns: Option<u64>,
    start_ns: u64,
    /// What the hits cost the target at the calibrated cost of a hit, ns.
    cost_ns: f64,
    /// The target's samples in the probes' traps, and their CPU time (ns):
    /// the trap's cost measured in place.
    trap_samples: u64,
    trap_ns: f64,
    /// The target's CPU time one sample stands for, ns (from the ticks).
    sample_ns: f64,
    /// What sampling cost the target so far (it shares the budget).
    sampling_cost_ns: f64,
    target_cpu_ns: u64,
    /// Allowance the budget gave up, ns: what it saved beyond
    /// [`MAX_SAVED_CPU_NS`] of the budget.
    forgone_ns: f64,
    /// The probes' room at the last tick, for the check between ticks (see
    /// [`Prober::keep_budget_between_ticks`]): what they may still cost (ns),
    /// the target's CPU per wall-clock ns over that tick, and when it was.
    room: Option<Room>,
    events_opened: u64,
    lost_hits: u64,
    load_times: HashMap<String, u64>,
    failed: BTreeMap<String, String>,
    /// The mechanisms whose calls a dispatcher counts: samples need not find
    /// their callees (a probe there would count each call twice).
    dispatch_covers: HashSet<Mechanism>,
    /// The Go runtimes in the target whose cgo call counts seam reads (see
    /// [`crate::gocount`]), and why others' cannot be read, by module path.
    go_runtimes: Vec<GoRuntime>,
    go_uncounted: BTreeMap<String, String>,
}

/// A Go runtime whose own count of its calls into C seam reads: the exact
/// total of its `Cfunc` sites' calls, armed or not.
struct GoRuntime {
    object_path: String,
    counter: CgoCounter,
    bias: u64,
    /// The reading once the runtime had started (see
    /// [`CgoCounter::started`]), the latest, and the one before.
    base: Option<CgoReading>,
    last: CgoReading,
    previous: Option<CgoReading>,
    before_previous: Option<CgoReading>,
}

/// Under a budget, the hits a Go runtime's `Cfunc` sites take in a spell
/// before they rest for [`REST_NS`] (see [`Prober::rest_counted_sites`]).
const COUNTED_SPELL_HITS: u64 = 2_000;
const REST_NS: u64 = 1_000_000_000;

/// How often the Go runtimes' counts are read: the calls after the latest
/// reading of a target that exits are extrapolated at the pace of the last
/// two (a tight loop of cgo calls makes 150,000 in 10 ms).
const GO_READ_NS: u64 = 5_000_000;

/// The runtime's count of cgo calls, and the hits its sites had counted, at `at_ns`.
#[derive(Clone, Copy, Debug)]
struct CgoReading {
    calls: u64,
    hits: u64,
    at_ns: u64,
}

/// Closes uprobe events on a thread of its own, one at a time, and says when
/// each is closed: the kernel closes them one after another anyway (each
/// waits for grace periods, 60-100 ms here), and a site's breakpoints stay
/// in the target, trapping every call uncounted, until its last event (one
/// per CPU) is closed. Events are closed in the order given, except that a
/// site still taking hits goes first ([`Closer::hurry`]): side by side, or
/// in a fixed order, the busiest site's could be the last of a long queue.
struct Closer {
    queue: std::sync::Arc<(std::sync::Mutex<CloseQueue>, std::sync::Condvar)>,
    /// (site, when its event was closed), for each event closed.
    closed: std::sync::mpsc::Receiver<(usize, u64)>,
    together: bool,
}

#[derive(Default)]
struct CloseQueue {
    fds: std::collections::VecDeque<(usize, OwnedFd)>,
    /// No more events will come: close what is queued, then stop.
    done: bool,
}

impl Closer {
    /// `together`: close what is queued side by side (see
    /// [`UprobeSet::closes_together`]), else one at a time in queue order.
    fn start(together: bool) -> Result<Closer, Error> {
        let queue = std::sync::Arc::new((
            std::sync::Mutex::new(CloseQueue::default()),
            std::sync::Condvar::new(),
        ));
        let (closed_tx, closed) = std::sync::mpsc::channel();
        let shared = queue.clone();
        std::thread::Builder::new()
            .name("seam-probe-closer".into())
            .spawn(move || {
                let (lock, ready) = &*shared;
                loop {
                    let next: Vec<(usize, OwnedFd)> = {
                        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
                        while q.fds.is_empty() && !q.done {
                            q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                        let n = if together { q.fds.len() } else { 1 };
                        let n = n.min(q.fds.len());
                        q.fds.drain(..n).collect()
                    };
                    if next.is_empty() {
                        break;
                    }
                    let sites: Vec<usize> = next.iter().map(|(i, _)| *i).collect();
                    let tell = closed_tx.clone();
                    let which = sites.clone();
                    let close = move || {
                        close_together(next);
                        for site in which {
                            let _ = tell.send((site, monotonic_ns()));
                        }
                    };
                    if !together {
                        close();
                        continue;
                    }
                    // Links queued now must not wait for the grace periods of
                    // those closed before: behind them, a busy site of
                    // ffibench's trapped 108,000 calls (about 0.1 s) before
                    // its own close began.
                    let spawned = std::thread::Builder::new()
                        .name("seam-probe-close".into())
                        .spawn(close);
                    if let Err(e) = spawned {
                        // The failed spawn dropped the closure, and the links
                        // with it: closed here.
                        log::debug!("closing probe events on the closer's thread: {e}");
                        for site in sites {
                            let _ = closed_tx.send((site, monotonic_ns()));
                        }
                    }
                }
            })
            .map_err(|e| Error::io("starting a thread", e, None))?;
        Ok(Closer {
            queue,
            closed,
            together,
        })
    }

    /// Queues events to close, after those already queued.
    fn close(&self, fds: Vec<(usize, OwnedFd)>) {
        if fds.is_empty() {
            return;
        }
        let (lock, ready) = &*self.queue;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .fds
            .extend(fds);
        ready.notify_one();
    }

    /// Hands the events still queued to a child process that closes them in
    /// order and exits, so that seam itself can exit now: the kernel closes
    /// them one after another, 60-100 ms each, and seam would otherwise wait
    /// for all of them as it exits (three minutes for a module with a
    /// thousand probed functions). Until its close the breakpoint of each
    /// stays in the target, as it would have while seam waited.
    fn hand_off(&self) {
        let (lock, _) = &*self.queue;
        let left: Vec<(usize, OwnedFd)> = lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fds
            .drain(..)
            .collect();
        if self.together {
            // A thousand BPF links close side by side in about a second.
            close_together(left);
            return;
        }
        if left.len() <= CLOSE_HERE {
            // Five seconds at most: closed in the background, they would
            // make the next recording's probes wait behind them (the kernel
            // opens and closes one at a time).
            drop(left);
            return;
        }
        let order: Vec<std::os::fd::RawFd> = left
            .iter()
            .map(|(_, fd)| std::os::fd::AsRawFd::as_raw_fd(fd))
            .collect();
        // The child waits for the end of this pipe: the last of two copies
        // of an event to be closed pays for the close, and that must be it.
        let mut pipe = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `pipe`.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            log::warn!(
                "cannot close {} probe events in the background: {}",
                left.len(),
                std::io::Error::last_os_error()
            );
            return;
        }
        let [wait_for, release] = pipe;
        let mut keep = order.clone();
        keep.push(wait_for);
        keep.sort_unstable();
        // SAFETY: the child calls only close_range(2), read(2), close(2) and
        // _exit(2), which are async-signal-safe, on memory allocated before
        // the fork.
        match unsafe { libc::fork() } {
            0 => unsafe {
                // Everything but the probes' events first: seam's sampling
                // events (which would go on sampling the target) and its
                // stdout and stderr (which a reader waits on to see the end).
                let mut from = 0u32;
                for &fd in &keep {
                    if fd as u32 > from {
                        libc::syscall(libc::SYS_close_range, from, fd as u32 - 1, 0);
                    }
                    from = fd as u32 + 1;
                }
                libc::syscall(libc::SYS_close_range, from, u32::MAX, 0);
                let mut byte = 0u8;
                while libc::read(wait_for, (&mut byte as *mut u8).cast(), 1) < 0 {}
                libc::close(wait_for);
                for &fd in &order {
                    libc::close(fd);
                }
                libc::_exit(0)
            },
            -1 => log::warn!(
                "cannot fork to close {} probe events in the background ({}): seam exits once the kernel has closed them",
                left.len(),
                std::io::Error::last_os_error()
            ),
            child => log::info!(
                "closing {} probe events in the background (pid {child}, about {} s)",
                left.len(),
                left.len() * 85 / 1000
            ),
        }
        // SAFETY: this process's copy of the pipe, closed once.
        unsafe { libc::close(wait_for) };
        // The child holds them now: these closes return at once. Then the
        // child may start.
        drop(left);
        // SAFETY: as above.
        unsafe { libc::close(release) };
    }

    /// Moves these sites' queued events to the front, in queue order.
    fn hurry(&self, sites: &[usize]) {
        let (lock, _) = &*self.queue;
        front_first(
            &mut lock.lock().unwrap_or_else(|e| e.into_inner()).fds,
            sites,
        );
    }
}

/// What the probes may have cost the target so far (ns): their share of the
/// budget over the target's CPU time, what sampling leaves of it (at least
/// [`MIN_PROBE_SHARE`] of it), less what the budget gave up (`forgone`),
/// which grows so that no more than [`MAX_SAVED_CPU_NS`] of the budget is
/// ever saved up beyond what the probes cost (`cost`).
fn probe_allowance(
    budget: f64,
    cpu_ns: f64,
    sampling_ns: f64,
    cost: f64,
    forgone: &mut f64,
) -> f64 {
    let whole = budget * cpu_ns;
    let allowance = (whole - sampling_ns).max(whole * MIN_PROBE_SHARE) - *forgone;
    let most = cost + budget * MAX_SAVED_CPU_NS;
    if allowance > most {
        *forgone += allowance - most;
        return most;
    }
    allowance
}

/// Events left at the end that seam closes itself before it exits (80-90 ms
/// each); more are closed in the background (see `Closer::hand_off`).
const CLOSE_HERE: usize = 64;

/// What the probes may still cost after a tick: see
/// [`Prober::keep_budget_between_ticks`].
#[derive(Clone, Copy, Debug)]
struct Room {
    ns: f64,
    cpu_per_ns: f64,
    at_ns: u64,
}

/// Closes these events on up to [`CLOSE_THREADS`] threads at once, each
/// closing its share in turn (on this thread where one cannot be started).
fn close_together(fds: Vec<(usize, OwnedFd)>) {
    if fds.len() <= 1 {
        return;
    }
    let per = fds.len().div_ceil(CLOSE_THREADS);
    let mut fds = fds.into_iter();
    std::thread::scope(|scope| loop {
        let share: Vec<_> = fds.by_ref().take(per).collect();
        if share.is_empty() {
            break;
        }
        let spawned = std::thread::Builder::new()
            .name("seam-probe-close".into())
            .spawn_scoped(scope, move || drop(share));
        if let Err(e) = spawned {
            log::debug!("closing probe events on this thread: {e}");
        }
    });
}

const CLOSE_THREADS: usize = 32;

/// Moves the entries of these sites to the front of `queue`, each part in
/// the order it had.
fn front_first<T>(queue: &mut std::collections::VecDeque<(usize, T)>, sites: &[usize]) {
    let (mut front, back): (Vec<_>, Vec<_>) = queue.drain(..).partition(|(i, _)| sites.contains(i));
    front.extend(back);
    *queue = front.into();
}

impl Drop for Closer {
    fn drop(&mut self) {
        let (lock, ready) = &*self.queue;
        lock.lock().unwrap_or_else(|e| e.into_inner()).done = true;
        ready.notify_one();
    }
}

impl Prober {
    /// Prepares probes on `pid` (nothing is armed until a module is scanned).
    /// Measures what a probe hit costs, which takes about a tenth of a second.
    pub fn new(pid: u32, options: ProbeOptions, now_ns: u64) -> Result<Prober, Error> {
        raise_fd_limit();
        let set = open_probes(pid)?;
        let closer = Closer::start(set.closes_together())?;
        let cost = hit_cost()?;
        // Until the first check of the budget (after the warm-up), the check
        // between ticks allows the probes the budget of one busy thread's
        // time since the start: with none, a site called from the start (a
        // process attached to mid-loop) trapped every call for the warm-up's
        // half second, a third of the target's CPU.
        let room = options.budget.map(|_| Room {
            ns: 0.0,
            cpu_per_ns: 1.0,
            at_ns: now_ns,
        });
        Ok(Prober {
            pid,
            shadow_stack: uses_shadow_stack(pid),
            set,
            options,
            cost,
            sites: Vec::new(),
            by_event: HashMap::new(),
            site_keys: HashMap::new(),
            scanned: HashSet::new(),
            candidates_seen: HashSet::new(),
            closer,
            armed: true,
            spell_start_ns: now_ns,
            spell_len_ns: 0,
            finished_ns: None,
            start_ns: now_ns,
            cost_ns: 0.0,
            trap_samples: 0,
            sample_ns: 0.0,
            trap_ns: 0.0,
            sampling_cost_ns: 0.0,
            target_cpu_ns: 0,
            forgone_ns: 0.0,
            room,
            events_opened: 0,
            lost_hits: 0,
            load_times: HashMap::new(),
            failed: BTreeMap::new(),
            dispatch_covers: HashSet::new(),
            go_runtimes: Vec::new(),
            go_uncounted: BTreeMap::new(),
        })
    }

    pub fn hit_cost(&self) -> HitCost {
        self.cost
    }

    /// The relative error of the calibrated cost of a hit as the target pays
    /// it: how far the traps' samples put it from the calibration (at most
    /// 100%), and at least 10% (the calibration's spread from one run of seam
    /// to the next on the benchmarks' VM: 1944-2636 ns for an emulated hit).
    fn hit_cost_error(&self) -> f64 {
        let seen = if self.trap_samples >= MIN_TRAP_SAMPLES && self.cost_ns > 0.0 {
            (self.trap_ns / self.cost_ns - 1.0).abs()
        } else {
            0.0
        };
        seen.clamp(0.1, 1.0)
    }

    /// What the probes cost the target so far, ns: the calibrated cost of
    /// their hits, or the time its samples found in the traps when that is
    /// more (the calibration's loop is small and warm: on `chain` the traps
    /// take 1.1-1.8x the calibrated cost when always armed, 1.2-2x under a
    /// duty cycle, where the breakpoints of events still being closed trap
    /// uncounted calls). The traps' after-effects (cold caches once the target
    /// resumes) are in neither.
    fn cost_ns(&self) -> f64 {
        if self.trap_samples >= MIN_TRAP_SAMPLES {
            self.cost_ns.max(self.trap_ns)
        } else {
            self.cost_ns
        }
    }

    /// How many sites seam knows (armed or not); it grows as modules load.
    pub fn site_count(&self) -> usize {
        self.sites.len()
    }

    /// The probed functions' names, as frames show them.
    pub fn probed_symbols(&self) -> Vec<String> {
        self.sites.iter().map(|s| s.symbol.clone()).collect()
    }

    /// Where a thread runs on after each site's breakpoint trap: (module path
    /// as mapped, svma). A timer interrupt that came due during the trap is
    /// often taken right there, so a sample at those addresses is the probe's
    /// cost, not the function's.
    pub fn resume_points(&self) -> Vec<(String, u64)> {
        self.sites
            .iter()
            .flat_map(|s| s.resume_svmas.iter().map(|&a| (s.object_path.clone(), a)))
            .collect()
    }

    /// Notes when a file was mapped executable (for the load-to-armed latency).
    pub fn module_loaded(&mut self, path: &str, time_ns: u64) {
        self.load_times.entry(path.to_string()).or_insert(time_ns);
    }

    /// Finds the static sites of modules loaded since the last call and arms them.
    pub fn scan_modules(&mut self, space: &AddressSpace, now_ns: u64) {
        let mut new = Vec::new();
        for m in space.modules() {
            if !self.scanned.contains(&m.object.path) {
                self.scanned.insert(m.object.path.clone());
                new.push((m.object.clone(), space.file_path(&m.object.path), m.bias));
            }
        }
        let first = self.sites.len();
        let t = std::time::Instant::now();
        for (object, file, bias) in new {
            for site in static_sites(&object) {
                self.add_site(&object, &file, site, true);
            }
            if object.go.is_some() {
                self.add_go_runtime(&object, bias, now_ns);
            }
        }
        let found = t.elapsed();
        self.arm_from(first, now_ns);
        if self.sites.len() > first {
            log::debug!(
                "{} sites found in {:?}, armed in {:?}",
                self.sites.len() - first,
                found,
                t.elapsed() - found
            );
        }
    }

    /// Starts reading the cgo call count of the Go runtime in `object`, if
    /// its DWARF says where it is.
    fn add_go_runtime(&mut self, object: &ObjectInfo, bias: u64, now_ns: u64) {
        let counter = match CgoCounter::locate(object.bytes()) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("{}: Go → C counted by probes only: {e}", object.path);
                self.go_uncounted.insert(object.path.clone(), e);
                return;
            }
        };
        let memory = ProcessMemory { pid: self.pid };
        let started = counter.started(&memory, bias);
        match started.and_then(|s| Ok((s, counter.read(&memory, bias)?))) {
            Ok((started, calls)) => {
                let reading = CgoReading {
                    calls,
                    hits: 0,
                    at_ns: now_ns,
                };
                log::debug!(
                    "{}: {calls} cgo calls before seam, started: {started}",
                    object.path
                );
                let runtime = GoRuntime {
                    object_path: object.path.clone(),
                    counter,
                    bias,
                    base: started.then_some(reading),
                    last: reading,
                    previous: None,
                    before_previous: None,
                };
                // Under a budget, its only `Cfunc` site needs no probe: the
                // count is its calls (up to the last reading, 5 ms or less
                // before a target's exit). Without one, the probe counts
                // every call to the end.
                let group: Vec<usize> = self.cfunc_sites(&runtime).collect();
                if let ([only], Some(_)) = (&group[..], self.options.budget) {
                    let only = *only;
                    self.sites[only].counted_since = Some(now_ns);
                    log::debug!("{}: counted by its Go runtime", self.sites[only].key());
                }
                self.go_runtimes.push(runtime);
            }
            Err(e) => {
                let e = format!("reading runtime.ncgocall: {e}");
                log::debug!("{}: Go → C counted by probes only: {e}", object.path);
                self.go_uncounted.insert(object.path.clone(), e);
            }
        }
    }

    /// The runtime's `Cfunc` sites, whose calls its cgo count includes.
    fn cfunc_sites<'a>(&'a self, runtime: &'a GoRuntime) -> impl Iterator<Item = usize> + 'a {
        (0..self.sites.len()).filter(move |&i| {
            let site = &self.sites[i];
            site.object_path == runtime.object_path && site.default_key.2 == Mechanism::CgoCall
        })
    }

    /// Reads each Go runtime's cgo call count, with its sites' hits so far,
    /// every [`GO_READ_NS`]. A target that has exited keeps its last reading.
    fn read_go_runtimes(&mut self, now_ns: u64) {
        let memory = ProcessMemory { pid: self.pid };
        for r in 0..self.go_runtimes.len() {
            let runtime = &self.go_runtimes[r];
            if now_ns < runtime.last.at_ns + GO_READ_NS {
                continue;
            }
            let started = runtime.base.is_some()
                || matches!(runtime.counter.started(&memory, runtime.bias), Ok(true));
            let Ok(calls) = runtime.counter.read(&memory, runtime.bias) else {
                continue;
            };
            let hits = self.cfunc_sites(runtime).map(|i| self.sites[i].hits).sum();
            let runtime = &mut self.go_runtimes[r];
            runtime.before_previous = runtime.previous;
            runtime.previous = Some(runtime.last);
            runtime.last = CgoReading {
                calls,
                hits,
                at_ns: now_ns,
            };
            if started && runtime.base.is_none() {
                log::debug!("{}: started, {calls} cgo calls", runtime.object_path);
                runtime.base = Some(runtime.last);
            }
        }
    }

    /// Under a budget, closes the `Cfunc` sites of a Go runtime whose count
    /// seam reads once they have taken [`COUNTED_SPELL_HITS`] in their spells,
    /// for [`REST_NS`]: the count says how many calls they had, their hits
    /// need only say how the sites share it (on `chain`, 21 of its 24
    /// crossings a round are such calls).
    fn rest_counted_sites(&mut self) {
        if self.options.budget.is_none() {
            return;
        }
        let now = monotonic_ns();
        for r in 0..self.go_runtimes.len() {
            let runtime = &self.go_runtimes[r];
            if runtime.base.is_none() {
                continue;
            }
            let armed: Vec<usize> = self
                .cfunc_sites(runtime)
                .filter(|&i| !self.sites[i].events.is_empty())
                .collect();
            let hits: u64 = armed
                .iter()
                .filter_map(|&i| self.sites[i].spells.last())
                .map(|s| s.hits)
                .sum();
            if hits >= COUNTED_SPELL_HITS {
                log::trace!("{}: {hits} hits, resting", runtime.object_path);
                for &i in &armed {
                    self.sites[i].rest_until_ns = now + REST_NS;
                }
                self.close_sites(armed);
            }
        }
    }

    /// Probes the functions that samples showed carrying crossings no symbol
    /// named ahead of time.
    pub fn add_candidates(&mut self, space: &AddressSpace, candidates: &[Candidate], now_ns: u64) {
        let first = self.sites.len();
        // A call through a dispatcher (ctypes' and cffi's `ffi_call`) can be
        // sampled before the dispatcher's first hits are read, when nothing
        // says yet that it covers the mechanism: a site on the callee then
        // counted such calls a second time (ffibench, cffi API at 1.6x).
        let dispatcher_armed = self
            .sites
            .iter()
            .any(|s| s.dispatch && (!s.events.is_empty() || s.closing > 0));
        for (module, name, key) in candidates {
            let dispatched = DISPATCHERS.iter().any(|&(_, m)| m == key.2);
            if self.dispatch_covers.contains(&key.2)
                || (dispatched && dispatcher_armed)
                || !self.candidates_seen.insert((module.clone(), name.clone()))
            {
                continue;
            }
            let Some(m) = space.modules().find(|m| {
                m.object.path.rsplit('/').next() == Some(module.as_str())
                    && m.object.language != Language::Go
            }) else {
                continue;
            };
            let object = m.object.clone();
            let file = space.file_path(&object.path);
            let t = std::time::Instant::now();
            let named = object.functions_named(name);
            log::trace!(
                "{module}:{name}: {} found in {:?}",
                named.len(),
                t.elapsed()
            );
            let found = named.first().copied();
            if named.len() > 1 {
                // PyO3's trampolines: one copy per method, all of one name,
                // and the frame does not say which. A class's method
                // trampolines (`..::py_methods::ITEMS::trampoline`) are all
                // entries from Python into the crate: probed together, they
                // count every call of the class's methods, under its name. A
                // module with hundreds of them (cryptography's generic entry
                // trampolines) is left to the samples.
                // Not PyO3's own shared bodies (`pyo3::impl_::trampoline::
                // trampoline`, which every entry calls), and not where PyO3's
                // entry trampolines are out of line (a debug build): probed
                // from the load, they count these calls already.
                let entries_probed = self.sites.iter().any(|s| {
                    s.is_static
                        && s.object_path == object.path
                        && s.symbol.starts_with("pyo3::impl_::trampoline::")
                });
                // PyO3 0.2x's entries are its generic trampolines, one copy per
                // method of a class (`pyo3::impl_::trampoline::
                // fastcall_cfunction_with_keywords::<<.. as PyMethods<..>>::
                // py_methods::ITEMS::Def>`: 26 copies for tokenizers'
                // `Tokenizer`), whose names start with PyO3's own.
                let per_method =
                    !name.starts_with("pyo3::") || name.contains("::py_methods::ITEMS::");
                if is_pyo3_trampoline(name)
                    && per_method
                    && !entries_probed
                    && named.len() <= MAX_EXTENSION_METHODS
                {
                    for svma in named {
                        let site = StaticSite {
                            symbol: name.clone(),
                            function: name.clone(),
                            svma,
                            key: *key,
                            dispatch: false,
                        };
                        self.add_site(&object, &file, site, false);
                    }
                    continue;
                }
                self.failed.insert(
                    format!("{module}:{name}"),
                    "several functions have this name; counted from the samples only".into(),
                );
                continue;
            }
            let found = found.or_else(|| unnamed_entry(&object, module, name));
            // A function one of the module's probed functions tail-calls
            // (regex's `pattern_search` jumps to `pattern_search_or_match`,
            // which the samples then show called by the interpreter), or one
            // that tail-calls a probed function: each call would count twice.
            if let Some(other) = found.and_then(|svma| self.tail_call_partner(&object, svma)) {
                log::debug!("{module}:{name}: tail call with {other}, counted there");
                continue;
            }
            match found {
                Some(svma) => self.add_site(
                    &object,
                    &file,
                    StaticSite {
                        symbol: name.clone(),
                        function: name.clone(),
                        svma,
                        key: *key,
                        dispatch: false,
                    },
                    false,
                ),
                None => {
                    self.failed.insert(
                        format!("{module}:{name}"),
                        "no symbol of that name (inlined?)".into(),
                    );
                }
            }
        }
        self.arm_from(first, now_ns);
    }

    /// A site of `object`'s whose function jumps to the function at `svma`
    /// as its tail call, or to which that function jumps: its name.
    fn tail_call_partner(&self, object: &ObjectInfo, svma: u64) -> Option<&str> {
        self.sites
            .iter()
            .filter(|s| s.object_path == object.path && !s.dispatch)
            .find(|s| {
                tail_calls(object, s.entry_svma, svma) || tail_calls(object, svma, s.entry_svma)
            })
            .map(|s| s.symbol.as_str())
    }

    fn add_site(&mut self, object: &ObjectInfo, file: &str, found: StaticSite, is_static: bool) {
        let StaticSite {
            symbol,
            function,
            svma,
            key,
            dispatch,
        } = found;
        let entry_svma = svma;
        let svma = probed_svma(object, svma, dispatch || self.shadow_stack);
        let Some(offset) = object.file_offset_of_svma(svma) else {
            return;
        };
        let index = self.sites.len();
        match self.site_keys.entry((object.path.clone(), offset)) {
            std::collections::hash_map::Entry::Occupied(_) => return,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(index);
            }
        }
        self.sites.push(Site {
            module: file_name(&object.path).to_string(),
            symbol,
            function,
            file: file.to_string(),
            offset,
            kind: probe_kind(object.bytes_at_svma(svma, 2)),
            resume_svmas: trap_return_points(object.bytes_at_svma(svma, 32), svma),
            default_key: key,
            is_static,
            dispatch,
            pending: HashMap::new(),
            dispatched: HashMap::new(),
            skipped: 0,
            via_dispatch: HashMap::new(),
            events: Vec::new(),
            closing: 0,
            hits: 0,
            foreign: 0,
            last_hits: 0,
            spells: Vec::new(),
            load_ns: self.load_times.get(&object.path).copied(),
            object_path: object.path.clone(),
            entry_svma,
            attributed: HashMap::new(),
            votes: HashMap::new(),
            last_vote_ns: None,
            counted_since: None,
            rest_until_ns: 0,
        });
    }

    /// Arms sites `first..` that are not armed (nor still closing) if the
    /// probes are armed now.
    fn arm_from(&mut self, first: usize, now_ns: u64) {
        if !self.armed || first >= self.sites.len() {
            return;
        }
        // Opening a uprobe event waits while others are being closed (each
        // close waits for the kernel's grace periods, hundreds of ms at worst),
        // and this runs on the reader's thread, whose rings overflow if it
        // stalls: sites armed before are re-armed only once nothing is closing.
        let closing = self.sites.iter().any(|s| s.closing > 0);
        let todo: Vec<usize> = (first..self.sites.len())
            .filter(|&i| self.sites[i].events.is_empty() && self.sites[i].closing == 0)
            .filter(|&i| self.sites[i].counted_since.is_none())
            .filter(|&i| self.sites[i].rest_until_ns <= now_ns)
            .filter(|&i| !closing || self.sites[i].spells.is_empty())
            .filter(|&i| !self.failed.contains_key(&self.sites[i].key()))
            .collect();
        if todo.is_empty() {
            return;
        }
        let probes: Vec<Probe> = todo
            .iter()
            .map(|&i| Probe {
                path: self.sites[i].file.clone(),
                file_offset: self.sites[i].offset,
                capture: self.sites[i].dispatch,
            })
            .collect();
        let results = self.set.arm(&probes);
        let armed_at = monotonic_ns().max(now_ns);
        for (&i, result) in todo.iter().zip(results) {
            let site = &mut self.sites[i];
            match result {
                Ok(events) => {
                    for (id, fd) in events {
                        self.by_event.insert(id, i);
                        site.events.push(fd);
                        self.events_opened += 1;
                    }
                    site.spells.push(Spell {
                        start: armed_at,
                        ..Spell::default()
                    });
                    log::debug!(
                        "armed {} at {} ns ({} ms after its load)",
                        site.key(),
                        armed_at,
                        site.load_ns
                            .map_or(-1.0, |l| armed_at.saturating_sub(l) as f64 / 1e6)
                    );
                }
                // A target that exited as its sites were armed again: its
                // files (under /proc/PID/root) are gone, which says nothing
                // of the site; nothing is armed from now on.
                Err(_) if !target_alive(self.pid) => self.armed = false,
                Err(e) => {
                    self.failed.insert(site.key(), e.to_string());
                }
            }
        }
    }

    /// Hands these sites' events to the closer, the busiest first. A site's
    /// breakpoints trap every call, uncounted, until its last event is closed
    /// (tens of ms each); the site counts as disarmed from now, and is not
    /// re-armed until it is closed (two live events on one site would count
    /// each hit twice).
    fn close_sites(&mut self, mut which: Vec<usize>) {
        let now = monotonic_ns();
        which.sort_by_key(|&i| {
            let site = &self.sites[i];
            std::cmp::Reverse((site.spells.last().map_or(0, |sp| sp.hits), site.hits))
        });
        let mut fds = Vec::new();
        for i in which {
            let site = &mut self.sites[i];
            if site.events.is_empty() {
                continue;
            }
            site.closing += site.events.len();
            fds.extend(site.events.drain(..).map(|fd| (i, fd)));
            if let Some(spell) = site.spells.last_mut() {
                spell.end = Some(now);
            }
        }
        self.closer.close(fds);
    }

    /// Closes every armed site (the end of the recording).
    fn disarm_all(&mut self) {
        self.drain();
        self.finished_ns = Some(monotonic_ns());
        let all = (0..self.sites.len()).collect();
        self.close_sites(all);
        self.armed = false;
    }

    /// Starts a gap of the duty cycle: closes the sites taking hits now
    /// (`busy`). The others cost the target nothing and stay armed, exact
    /// (closing one takes the kernel 60-100 ms, one after another: a module
    /// with a thousand methods took minutes, trapping meanwhile); one that
    /// takes hits during the gap is closed then (see
    /// [`Prober::keep_budget_between_ticks`]). A site whose only hits were
    /// long ago (a warm-up call) is not busy: closed with the rest, it was
    /// extrapolated at the warm-up's pace when a later phase of the target
    /// called it in the gap (two million of ffibench's go-c calls read 1);
    /// left armed, that phase's first calls give it a pace of its own.
    fn disarm_busy(&mut self, busy: Vec<usize>) {
        self.drain();
        self.close_sites(busy);
        self.armed = false;
    }

    /// Notes the events the closer has closed.
    fn reap_closed(&mut self) {
        while let Ok((i, _)) = self.closer.closed.try_recv() {
            self.closed(i);
        }
    }

    /// Notes that the closer closed one of site `i`'s events.
    fn closed(&mut self, i: usize) {
        if let Some(site) = self.sites.get_mut(i) {
            site.closing -= 1;
        }
    }

    /// Reads the hits waiting in the rings.
    pub fn drain(&mut self) {
        self.reap_closed();
        let (pid, by_event, sites) = (self.pid, &self.by_event, &mut self.sites);
        let mut lost = 0;
        // Sites being closed that still take hits: the closer takes them first.
        let mut hurry = Vec::new();
        self.set.drain(
            |hit| {
                if let Some(&i) = by_event.get(&hit.id) {
                    let site = &mut sites[i];
                    if hit.pid != pid {
                        site.foreign += 1;
                        return;
                    }
                    site.hits += 1;
                    if site.events.is_empty() && site.closing > 0 && !hurry.contains(&i) {
                        hurry.push(i);
                    }
                    if site.dispatch {
                        if let Some(call) = hit.call {
                            *site.pending.entry(call).or_default() += 1;
                        }
                    }
                    // The spell the hit fell in (a closing event may fire after its spell ended).
                    let k = site.spells.partition_point(|s| s.start <= hit.time_ns);
                    if let Some(spell) = site.spells.get_mut(k.saturating_sub(1)) {
                        spell.add_hit(hit.tid, hit.time_ns);
                    }
                }
            },
            |n| lost += n,
        );
        self.lost_hits += lost;
        if !hurry.is_empty() {
            self.closer.hurry(&hurry);
        }
        self.read_go_runtimes(monotonic_ns());
        self.rest_counted_sites();
        self.keep_budget_between_ticks(monotonic_ns());
    }

    /// Disarms the busy sites before the next tick when their hits since the
    /// last one already cost more than the room the budget left then (with
    /// what the target's CPU since then adds to it). A burst of calls is
    /// otherwise probed for up to a whole tick (100 ms): 20,000 calls into
    /// pydantic-core in 50 ms trapped every one of them, 9% of the target's
    /// CPU against a 3% budget. seam drains the probes every 10 ms or so.
    /// In a gap of the duty cycle, the sites left armed (not hit in the tick
    /// before it) are closed the same way once a new phase of the target
    /// starts calling them; they were left to the next tick.
    fn keep_budget_between_ticks(&mut self, now_ns: u64) {
        let (Some(room), Some(budget)) = (self.room, self.options.budget) else {
            return;
        };
        let since: f64 = self
            .sites
            .iter()
            .map(|s| (s.hits - s.last_hits) as f64 * self.cost.of(s.kind))
            .sum();
        // What the traps' samples show beyond the calibrated cost (both
        // change only at ticks; none before the first tick with hits, when
        // a scale of 0 let the first burst trap until the next tick).
        let scale = if self.cost_ns > 0.0 {
            (self.cost_ns() / self.cost_ns).max(1.0)
        } else {
            1.0
        };
        let grown =
            budget * BUDGET_SPENT * room.cpu_per_ns * now_ns.saturating_sub(room.at_ns) as f64;
        if since * scale > room.ns + grown && since > MIN_COST_NS {
            log::trace!(
                "budget: {:.1} ms of hits since the tick, room {:.1} ms: disarmed early",
                since * scale / 1e6,
                (room.ns + grown) / 1e6
            );
            if self.armed {
                self.spell_len_ns = 0;
            }
            let busy = (0..self.sites.len())
                .filter(|&i| self.sites[i].hits > self.sites[i].last_hits)
                .collect();
            self.close_sites(busy);
            self.armed = false;
        }
    }

    /// Gives each site's new hits to boundaries by the samples' votes of this
    /// tick, and keeps the budget: the probes get what sampling leaves of it
    /// (and at least [`MIN_PROBE_SHARE`] of it, so that counts can still be
    /// extrapolated when sampling takes it all).
    pub fn tick(&mut self, t: &Tick) {
        let Tick {
            votes,
            space,
            target_cpu_ns,
            sampling_cost_ns,
            now_ns,
            ..
        } = *t;
        self.drain();
        self.resolve_dispatch(space);
        // The dispatchers explain every call they cover only when they were
        // armed for the whole tick (in a duty cycle, a site may be re-armed
        // before another that is still closing).
        let tick_start = self.spell_start_ns;
        let dispatch_steady = self.sites.iter().filter(|s| s.dispatch).all(|s| {
            !s.events.is_empty()
                && s.spells
                    .last()
                    .is_some_and(|sp| sp.end.is_none() && sp.start <= tick_start)
        });
        let covers = &self.dispatch_covers;
        let mut cost = 0.0;
        let mut hit_armed = Vec::new();
        for (i, site) in self.sites.iter_mut().enumerate() {
            let delta = site.hits - site.last_hits;
            site.last_hits = site.hits;
            if delta > 0 && !site.events.is_empty() {
                hit_armed.push(i);
            }
            // The samples show when the site's function is busy, for the
            // extrapolation over its gaps and past its last spell.
            // The spells' pace of votes sets how long a gap may go unseen
            // (counting sightings there too shrank it: `gomain`'s callbacks
            // then read 11% low in 2 runs of 4); a sighting shows the
            // function busy in a gap and past the last spell.
            let seen: u64 = votes.get(&site.symbol).map_or(0, |v| v.values().sum());
            let sighted = seen.max(t.sightings.get(&site.symbol).copied().unwrap_or(0));
            if sighted > 0 {
                site.last_vote_ns = Some(now_ns);
                if let Some(spell) = site.spells.last_mut() {
                    if site.events.is_empty() {
                        let (first, last) = spell.gap_seen.unwrap_or((tick_start, now_ns));
                        spell.gap_seen = Some((first.min(tick_start), last.max(now_ns)));
                    } else {
                        spell.seen += seen;
                    }
                }
            }
            // The time its threads' hits took in the traps, seen in place.
            if let Some(spell) = site.spells.last_mut() {
                spell.add_samples(t.threads, &site.symbol);
            }
            if site.dispatch {
                if let (Some(v), Some(spell)) = (votes.get(&site.symbol), site.spells.last_mut()) {
                    let by = if site.events.is_empty() {
                        &mut spell.gap_by
                    } else {
                        &mut spell.seen_by
                    };
                    for (k, &n) in v {
                        *by.entry((k.0, k.2)).or_default() += n;
                    }
                }
                cost += delta as f64 * self.cost.of(site.kind);
                continue;
            }
            // Stray votes (a stack caught mid-call, classified differently) would
            // split the hits; keep the boundaries with a real share of the tick,
            // and a callee.
            let tick_votes: Option<HashMap<BoundaryKey, u64>> = votes.get(&site.symbol).map(|v| {
                let known = |k: &BoundaryKey| k.1 != Runtime::Unknown;
                let total: u64 = v.iter().filter(|(k, _)| known(k)).map(|(_, n)| n).sum();
                v.iter()
                    .filter(|(k, &n)| known(k) && n * 20 >= total)
                    .map(|(k, n)| (*k, *n))
                    .collect()
            });
            if let Some(v) = &tick_votes {
                for (k, n) in v {
                    *site.votes.entry(*k).or_default() += n;
                }
            }
            cost += delta as f64 * self.cost.of(site.kind);
            if delta == 0 {
                continue;
            }
            // Calls a dispatcher saw coming have their boundary; the samples
            // vote on the rest, without the boundaries the dispatcher covers.
            let mut rest = delta;
            for (k, n) in site.via_dispatch.iter_mut() {
                let take = (*n).min(rest);
                *n -= take;
                rest -= take;
                *site.attributed.entry(*k).or_default() += take;
            }
            site.via_dispatch.retain(|_, n| *n > 0);
            let covered = |k: &BoundaryKey| {
                dispatch_steady && k.0 == Runtime::Python && covers.contains(&k.2)
            };
            let mut by = match tick_votes {
                Some(v) if !v.is_empty() => v,
                _ if !site.votes.is_empty() => site.votes.clone(),
                _ => HashMap::new(),
            };
            by.retain(|k, _| !covered(k));
            if by.is_empty() {
                by.insert(site.default_key, 1);
            }
            if rest == 0 {
                continue;
            }
            for (k, n) in split(rest, &by) {
                *site.attributed.entry(k).or_default() += n;
            }
        }
        self.cost_ns += cost;
        self.trap_samples += t.trap_samples;
        self.sample_ns = t.sample_ns;
        self.trap_ns += t.trap_cpu_ns;
        self.sampling_cost_ns += sampling_cost_ns;
        self.target_cpu_ns += target_cpu_ns;
        let spell = now_ns.saturating_sub(self.spell_start_ns);
        self.spell_start_ns = now_ns;
        let Some(budget) = self.options.budget else {
            return;
        };
        if now_ns.saturating_sub(self.start_ns) < BUDGET_WARMUP_NS {
            return;
        }
        let cost = self.cost_ns();
        let allowance = probe_allowance(
            budget * BUDGET_SPENT,
            self.target_cpu_ns as f64,
            self.sampling_cost_ns,
            cost,
            &mut self.forgone_ns,
        );
        // A few hits while the target idles are not worth a duty cycle.
        let over = cost > allowance && cost > MIN_COST_NS;
        self.room = Some(Room {
            ns: (allowance - cost).max(0.0),
            cpu_per_ns: target_cpu_ns as f64 / spell.max(1) as f64,
            at_ns: now_ns,
        });
        log::trace!(
            "budget: probes {:.1} ms, sampling {:.1} ms, allowance {:.1} ms of {:.1} ms target CPU; armed {}",
            cost / 1e6,
            self.sampling_cost_ns / 1e6,
            allowance / 1e6,
            self.target_cpu_ns as f64 / 1e6,
            self.armed
        );
        if self.armed && over {
            self.disarm_busy(hit_armed);
            self.spell_len_ns = 0;
        } else if !self.armed {
            // Sites left armed for the gap that take hits now are closed too.
            self.close_sites(hit_armed);
            self.spell_len_ns += spell;
            if !over && self.spell_len_ns >= MIN_SPELL_NS {
                self.armed = true;
            }
        }
        // Sites whose events were still closing when the probes were re-armed.
        self.arm_from(0, now_ns);
    }

    /// Disarms the probes and waits for their last hits; [`Prober::publish`]
    /// then writes the final counts.
    pub fn finish(&mut self, t: &Tick) {
        self.tick(t);
        self.disarm_all();
        // The counts are final once every event of a site that was called is
        // closed (they go first, 60-100 ms each); the rest are closed in the
        // background (see `Closer::hand_off`).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.sites.iter().any(|s| s.closing > 0 && s.hits > 0)
            && std::time::Instant::now() < deadline
        {
            if let Ok((i, _)) = self
                .closer
                .closed
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                self.closed(i);
            }
        }
        self.drain();
        self.resolve_dispatch(t.space);
        self.closer.hand_off();
    }

    /// Turns the dispatchers' hits into boundaries: the callee's module says
    /// the runtime called, the caller's (where `ffi_call` returns to) the
    /// mechanism. A callee with a site of its own (a Go export's wrapper)
    /// counts there, not twice.
    fn resolve_dispatch(&mut self, space: &AddressSpace) {
        let mut covers = Vec::new();
        for i in 0..self.sites.len() {
            if self.sites[i].pending.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut self.sites[i].pending);
            for (call, n) in pending {
                match self.dispatch_boundary(space, call) {
                    Dispatched::Cross(key, callee) => {
                        covers.push(key.2);
                        *self.sites[i].dispatched.entry((key, callee)).or_default() += n;
                    }
                    Dispatched::Via(site, key) => {
                        covers.push(key.2);
                        *self.sites[site].via_dispatch.entry(key).or_default() += n;
                        self.sites[i].skipped += n;
                    }
                    Dispatched::Nothing => {
                        self.sites[i].skipped += n;
                    }
                }
            }
        }
        self.dispatch_covers.extend(covers);
    }

    /// What one dispatched call crossed.
    fn dispatch_boundary(&self, space: &AddressSpace, call: CallArgs) -> Dispatched {
        let Some(caller) = space.module_at(call.ret) else {
            return Dispatched::Nothing;
        };
        let caller_file = file_name(&caller.object.path);
        let Some(mechanism) = dispatch_mechanism(caller_file) else {
            return Dispatched::Nothing;
        };
        let Some(callee) = space.module_at(call.arg1) else {
            return Dispatched::Nothing;
        };
        let object = &callee.object;
        let svma = callee.svma(call.arg1);
        let runtime = match object.language {
            Language::C => Runtime::C,
            Language::Rust => Runtime::Rust,
            Language::Go => Runtime::Go,
            // ctypes.pythonapi: the interpreter's own C API.
            Language::Python => return Dispatched::Nothing,
        };
        let key = (Runtime::Python, runtime, mechanism);
        // Sites are keyed where they are probed: past an `endbr64` (a Go
        // export's wrapper built by Ubuntu's gcc), else the call counted twice.
        for at_entry in [false, true] {
            let at = probed_svma(object, svma, at_entry);
            if let Some(offset) = object.file_offset_of_svma(at) {
                if let Some(&site) = self.site_keys.get(&(object.path.clone(), offset)) {
                    return Dispatched::Via(site, key);
                }
            }
        }
        let symbols = object.text_symbols();
        let name = symbols
            .binary_search_by_key(&svma, |s| s.svma)
            .ok()
            .map(|i| symbols[i].display())
            .unwrap_or_else(|| format!("{:#x}", call.arg1));
        Dispatched::Cross(key, name)
    }

    /// The end of a site's last spell if the budget closed it (the final
    /// disarm, ours, at the end, is no gap; a close by the budget is, however
    /// near the end: the 100 ms this allowed before left the last phase of
    /// ffibench, 300,000 cffi ABI calls in 72 ms, at the 2,500 of its first
    /// millisecond, ± 0).
    fn tail_from(&self, spells: &[Spell]) -> Option<u64> {
        spells
            .last()
            .and_then(|s| s.end)
            .filter(|&e| self.finished_ns.is_none_or(|f| e < f))
    }

    /// The calls `site` missed in its gaps up to `until` (at most `now_ns`),
    /// with their error (see [`extrapolate_gaps`]).
    fn missed(&self, site: &Site, until: u64, now_ns: u64) -> (f64, f64) {
        let until = until.min(now_ns);
        // The spells begun by then; one that ended after it was armed then
        // (no tail past its end, which is later).
        let begun = site.spells.partition_point(|s| s.start < until);
        let spells = &site.spells[..begun];
        let active_until = self
            .tail_from(spells)
            .and(site.last_vote_ns)
            .map(|t| t.min(until));
        // What a hit cost each thread, as its samples in the spells show
        // (not the traps' time in all: that has the uncounted calls that
        // trap while events close, and taking it out of the spells' rates
        // overestimated them by 39% on chain, when it was 4x). Else the
        // calibrated cost, whose error is how far the traps' time in all
        // is from it.
        let ns = self.cost.of(site.kind);
        let error = ns * self.hit_cost_error();
        let hit = HitNs::seen(ns, error, spells, self.sample_ns);
        log::trace!("the gaps of {} (hit {:?})", site.key(), hit);
        extrapolate_gaps(spells, until, active_until, &hit)
    }

    /// Each site's missed calls, their error, and whether they are exact:
    /// extrapolated from the spells' rates, except where a Go runtime counts
    /// its calls into C (see [`crate::gocount`]). Up to its latest reading,
    /// those of its `Cfunc` sites' calls the probes did not count are known
    /// exactly, and shared among the sites as their rates would have them
    /// (exactly, where one site has them all); after it, extrapolated.
    fn missed_by_site(&self, now_ns: u64) -> Vec<(f64, f64, bool)> {
        let mut out: Vec<(f64, f64, bool)> = self
            .sites
            .iter()
            .map(|site| {
                let (missed, error) = self.missed(site, now_ns, now_ns);
                (missed, error, false)
            })
            .collect();
        for runtime in &self.go_runtimes {
            let group: Vec<usize> = self
                .cfunc_sites(runtime)
                .filter(|&i| {
                    let site = &self.sites[i];
                    !site.spells.is_empty() || site.counted_since.is_some()
                })
                .collect();
            let Some(base) = runtime.base else {
                continue;
            };
            let last = runtime.last;
            let calls = last.calls.saturating_sub(base.calls) as f64;
            let counted = last.hits.saturating_sub(base.hits) as f64;
            let uncounted = (calls - counted).max(0.0);
            // After the latest reading (a target that exited): the calls
            // at the pace of the last two readings (none if it was slower
            // than the pace before), up to the last tick whose samples showed
            // a site busy, less those the probes counted, are the most there
            // can have been; half of them ± half.
            let busy_until = group
                .iter()
                .filter_map(|&i| self.sites[i].last_vote_ns)
                .max()
                .unwrap_or(0)
                .min(now_ns);
            let pace = |a: Option<CgoReading>, b: CgoReading| {
                a.map_or(0.0, |a| {
                    b.calls.saturating_sub(a.calls) as f64
                        / b.at_ns.saturating_sub(a.at_ns).max(1) as f64
                })
            };
            // Slower than the pace before it: the calls were ending.
            let pace = match runtime.previous {
                Some(p) if pace(runtime.before_previous, p) * 0.8 > pace(Some(p), last) => 0.0,
                p => pace(p, last),
            };
            let hits_after: u64 = group.iter().map(|&i| self.sites[i].hits).sum();
            let hits_after = hits_after.saturating_sub(last.hits) as f64;
            let after = busy_until.saturating_sub(last.at_ns) as f64 * pace;
            let after = (after - hits_after).max(0.0) / 2.0;
            let upto: Vec<(f64, f64)> = group
                .iter()
                .map(|&i| self.missed(&self.sites[i], last.at_ns, now_ns))
                .collect();
            let sum: f64 = upto.iter().map(|u| u.0).sum();
            log::debug!(
                "{}: {calls} cgo calls, {counted} counted by probes, {after:.0} after the last reading \
                 ({} ms before the last busy tick, {} ms before now); the sites' rates say {sum:.0} missed",
                runtime.object_path,
                busy_until.saturating_sub(last.at_ns) / 1_000_000,
                now_ns.saturating_sub(last.at_ns) / 1_000_000,
            );
            if let [only] = group[..] {
                if self.sites[only].counted_since.is_some() {
                    out[only] = (uncounted + after, after, after < 0.5);
                    continue;
                }
            }
            // No site missed a call by its rates: the uncounted are the
            // runtime's own (its start), or made while the sites closed.
            if sum <= 0.0 {
                continue;
            }
            for (&i, &(missed, error)) in group.iter().zip(&upto) {
                let share = missed / sum;
                let split_error = (uncounted + after) * error / sum * (1.0 - share);
                let after_error = after * share;
                out[i] = (
                    (uncounted + after) * share,
                    split_error.hypot(after_error),
                    split_error < 0.5 && after < 0.5,
                );
            }
        }
        out
    }

    /// Writes the counts so far into the profile's boundaries, and the probes'
    /// cost, replacing what an earlier call wrote: while recording, for live
    /// views (gaps in the duty cycle extrapolated as at the end), and at the end.
    pub fn publish(&self, now_ns: u64, profile: &mut Profile) {
        for b in &mut profile.boundaries {
            b.crossings = None;
            b.crossings_method = CrossingsMethod::None;
            b.crossings_error = 0;
            b.functions.clear();
            b.armed_at_ns = None;
            b.armed_s = 0.0;
        }
        let mut hits = 0;
        let mut foreign = 0;
        let mut latency_ms: Option<f64> = None;
        let missed_by_site = self.missed_by_site(now_ns);
        for (i, site) in self.sites.iter().enumerate() {
            hits += site.hits;
            foreign += site.foreign;
            let Some(first) = site.spells.first().map(|s| s.start).or(site.counted_since) else {
                continue;
            };
            // The load record may have been read after the module was found in
            // /proc/PID/maps.
            let load_ns = site
                .load_ns
                .or_else(|| self.load_times.get(&site.object_path).copied());
            if let (Some(load), true) = (load_ns, site.is_static) {
                let ms = first.saturating_sub(load) as f64 / 1e6;
                latency_ms = Some(latency_ms.map_or(ms, |m: f64| m.max(ms)));
            }
            let armed_ns: u64 = match site.counted_since {
                Some(since) => now_ns.saturating_sub(since),
                None => site.spells.iter().map(|s| s.len(now_ns)).sum(),
            };
            let (missed, missed_error, counted_exactly) = missed_by_site[i];
            let tail_from = self.tail_from(&site.spells);
            // Closed before the end (by the budget), or never probed: not
            // counted to the end, unless its Go runtime counted it.
            let duty_cycled =
                (site.spells.len() > 1 || tail_from.is_some() || site.counted_since.is_some())
                    && !counted_exactly;
            // (boundary, function, hits) of this site.
            // A `Cfunc` wrapper calls one function: one boundary.
            let wrapper = site.is_static && site.default_key.2 == Mechanism::CgoCall;
            let counted: Vec<(BoundaryKey, &str, u64)> = if site.dispatch {
                site.dispatched
                    .iter()
                    .map(|((k, f), &n)| (*k, f.as_str(), n))
                    .collect()
            } else if wrapper {
                let n = site.attributed.values().sum();
                vec![(wrapper_boundary(site), site.function.as_str(), n)]
            } else {
                site.attributed
                    .iter()
                    .map(|(k, &n)| (*k, site.function.as_str(), n))
                    .collect()
            };
            let total: u64 = counted.iter().map(|c| c.2).sum::<u64>() + site.skipped;
            log::trace!("spells of {}: {:?}", site.key(), site.spells);
            log::debug!(
                "site {}: {} hits in {} spells, armed {} ms, missed about {missed:.0} ± {missed_error:.0}",
                site.key(),
                site.hits,
                site.spells.len(),
                armed_ns / 1_000_000,
            );
            let shares = if site.dispatch {
                gap_shares(&site.spells, &counted, total)
            } else if wrapper {
                vec![(1.0, 0.0)]
            } else {
                counted
                    .iter()
                    .map(|c| (c.2 as f64 / total.max(1) as f64, 0.0))
                    .collect()
            };
            for ((key, function, n), (share, split_error)) in counted.into_iter().zip(shares) {
                let b = profile.boundary_mut(key.0, key.1, key.2);
                let count = n + (missed * share).round() as u64;
                let error = (missed_error * share).hypot(missed * share * split_error);
                let error = error.round() as u64;
                b.crossings = Some(b.crossings.unwrap_or(0) + count);
                b.crossings_error += error;
                *b.functions.entry(function.to_string()).or_default() += count;
                b.crossings_method = match (b.crossings_method, duty_cycled) {
                    (CrossingsMethod::Extrapolated, _) | (_, true) => CrossingsMethod::Extrapolated,
                    _ => CrossingsMethod::Exact,
                };
                b.armed_at_ns = Some(b.armed_at_ns.map_or(first, |a| a.min(first)));
                b.armed_s = b.armed_s.max(armed_ns as f64 / 1e9);
            }
        }
        // The share of time armed, from the busiest site's first spell on.
        let armed_share = self
            .sites
            .iter()
            .max_by_key(|s| s.hits)
            .and_then(|s| {
                let first = s.spells.first()?.start;
                let armed: u64 = s.spells.iter().map(|sp| sp.len(now_ns)).sum();
                Some(armed as f64 / now_ns.saturating_sub(first).max(1) as f64)
            })
            .unwrap_or(0.0);
        profile.probe_overhead = Some(ProbeOverhead {
            hits,
            foreign_hits: foreign,
            lost_hits: self.lost_hits,
            ns_per_hit_emulated: self.cost.emulated_ns,
            ns_per_hit_single_step: self.cost.single_step_ns,
            cost_ns: self.cost_ns() as u64,
            trap_samples: self.trap_samples,
            calibrated_cost_ns: self.cost_ns as u64,
            ns_per_hit: if hits > 0 {
                self.cost_ns() / hits as f64
            } else {
                self.cost.emulated_ns
            },
            share: if self.target_cpu_ns > 0 {
                self.cost_ns() / self.target_cpu_ns as f64
            } else {
                0.0
            },
            budget: self.options.budget,
            armed_share: armed_share.min(1.0),
            sites: self.sites.len() as u64,
            events_opened: self.events_opened,
            via: self.set.kind().to_string(),
            failed: self.failed.clone(),
            arm_latency_ms_max: latency_ms,
            go_counted: self
                .go_runtimes
                .iter()
                .map(|r| file_name(&r.object_path).to_string())
                .collect(),
            go_uncounted: self
                .go_uncounted
                .iter()
                .map(|(p, e)| (file_name(p).to_string(), e.clone()))
                .collect(),
        });
    }
}

/// The boundary of a cgo `Cfunc` wrapper's calls, from the samples' votes.
/// The wrapper is C, so a sample caught in it reads as a call into C
/// whatever it wraps (with one thread on `chain`, such a vote in a tick of
/// few samples gave 50 of its Go → Rust calls to Go → C, one run in six):
/// another callee wins with a fifth of the votes.
fn wrapper_boundary(site: &Site) -> BoundaryKey {
    let total: u64 = site.votes.values().sum();
    let most = |not_c: bool| {
        site.votes
            .iter()
            .filter(|(k, _)| !not_c || (k.1 != Runtime::C && k.1 != Runtime::Unknown))
            .max_by_key(|(k, &n)| (n, k.1 as u8))
            .map(|(k, &n)| (*k, n))
    };
    match most(true) {
        Some((k, n)) if n * 5 >= total => k,
        _ => most(false).map_or(site.default_key, |(k, _)| k),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How a dispatcher's missed calls (those of its gaps) are shared among the
/// boundaries it counted (`counted`, of `total` hits), with each share's
/// relative error. By the calls counted, a phase of the target that ran
/// only in gaps was given to the boundaries of the phases the spells saw:
/// 300,000 of ffibench's cffi ABI calls read 1. The samples in the gaps say
/// how the dispatcher was called there, by (caller, mechanism): each such
/// group gets its gap samples at the calls per sample its spells showed (the
/// dispatcher's overall where they showed none), and within a group the
/// calls counted share it as before (ctypes into C and into Rust look alike
/// in the samples). The split's error is each group's counting noise in
/// its gap samples. Without gap samples, the counted calls share it all.
fn gap_shares(
    spells: &[Spell],
    counted: &[(BoundaryKey, &str, u64)],
    total: u64,
) -> Vec<(f64, f64)> {
    let by_count: Vec<(f64, f64)> = counted
        .iter()
        .map(|c| (c.2 as f64 / total.max(1) as f64, 0.0))
        .collect();
    let group = |k: &BoundaryKey| (k.0, k.2);
    let mut calls: HashMap<(Runtime, Mechanism), f64> = HashMap::new();
    for c in counted {
        *calls.entry(group(&c.0)).or_default() += c.2 as f64;
    }
    let summed = |g: (Runtime, Mechanism), gap: bool| -> u64 {
        spells
            .iter()
            .map(|s| if gap { &s.gap_by } else { &s.seen_by })
            .filter_map(|by| by.get(&g))
            .sum()
    };
    let seen_all: u64 = spells.iter().flat_map(|s| s.seen_by.values()).sum();
    let calls_all: f64 = calls.values().sum();
    let mut gap_calls: HashMap<(Runtime, Mechanism), (f64, u64)> = HashMap::new();
    for (&g, &n) in &calls {
        let (seen, gap) = (summed(g, false), summed(g, true));
        let per_sample = match (seen, seen_all) {
            (0, 0) => return by_count,
            (0, all) => calls_all / all as f64,
            (seen, _) => n / seen as f64,
        };
        gap_calls.insert(g, (gap as f64 * per_sample, gap));
    }
    let in_gaps: f64 = gap_calls.values().map(|e| e.0).sum();
    if in_gaps <= 0.0 {
        return by_count;
    }
    // Hits that crossed no boundary seam reports keep their part.
    let reported = calls_all / total.max(1) as f64;
    counted
        .iter()
        .map(|(k, _, n)| {
            let g = group(k);
            let (e, gap) = gap_calls[&g];
            let share = reported * e / in_gaps * *n as f64 / calls[&g].max(1.0);
            (share, 1.0 / (gap.max(1) as f64).sqrt())
        })
        .collect()
}

/// What a dispatcher's hit crossed.
enum Dispatched {
    /// This boundary, into this function.
    Cross(BoundaryKey, String),
    /// This boundary, into a function with a site of its own (a Go export's
    /// wrapper), which counts the call; the dispatcher names its boundary.
    Via(usize, BoundaryKey),
    /// No boundary seam reports (the interpreter's C API, an unknown caller).
    Nothing,
}

/// The mechanism of a libffi call by the module that made it.
fn dispatch_mechanism(caller_file: &str) -> Option<Mechanism> {
    DISPATCHERS
        .iter()
        .find(|(prefix, _)| caller_file.starts_with(prefix))
        .map(|&(_, m)| m)
}

/// The callers of libffi's `ffi_call` whose calls seam counts there, by the
/// start of their module's file name, and the mechanism of their calls.
const DISPATCHERS: [(&str, Mechanism); 2] = [
    ("_ctypes", Mechanism::Ctypes),
    ("_cffi_backend", Mechanism::CffiAbi),
];

/// Splits `n` in proportion to `weights`, exactly (largest remainders).
fn split(n: u64, weights: &HashMap<BoundaryKey, u64>) -> Vec<(BoundaryKey, u64)> {
    let total: u64 = weights.values().sum();
    let mut keys: Vec<(&BoundaryKey, &u64)> = weights.iter().collect();
    keys.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if total == 0 {
        return vec![(*keys[0].0, n)];
    }
    let mut out: Vec<(BoundaryKey, u64)> = keys
        .iter()
        .map(|(k, w)| (**k, (n as u128 * **w as u128 / total as u128) as u64))
        .collect();
    let mut rest = n - out.iter().map(|(_, v)| v).sum::<u64>();
    for o in out.iter_mut() {
        if rest == 0 {
            break;
        }
        o.1 += 1;
        rest -= 1;
    }
    out.retain(|(_, v)| *v > 0);
    out
}

/// A function found in a module's symbols that carries crossings.
struct StaticSite {
    /// Its name as frames show it.
    symbol: String,
    /// The name its crossings are reported under.
    function: String,
    svma: u64,
    /// The boundary its calls belong to when no sample says otherwise.
    key: BoundaryKey,
    /// A dispatcher whose hits say their own boundary.
    dispatch: bool,
}

/// Whether process `pid` is still there to probe (not exited, not a zombie).
fn target_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Whether the process's threads run with a shadow stack (`shstk` among
/// `x86_Thread_features` in its status, Linux 6.6+, opted into by glibc's
/// tunable): a probe on a `call` that the kernel emulates must push the
/// return address on the shadow stack too, which kernels did not always do.
fn uses_shadow_stack(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("x86_Thread_features:"))
            .is_some_and(|f| f.split_whitespace().any(|w| w == "shstk"))
    })
}

/// Where seam probes the function at `svma` (see [`ObjectInfo::probe_point`]).
/// `at_entry`: at its entry, or past an `endbr64` at its `push`: where a
/// dispatcher's probe reads its call's arguments and return address as the
/// call left them, and where a target with a shadow stack is probed.
fn probed_svma(object: &ObjectInfo, svma: u64, at_entry: bool) -> u64 {
    let point = if at_entry {
        probe_point(object.bytes_at_svma(svma, 16), false)
    } else {
        object.probe_point(svma)
    };
    svma + point.offset as u64
}

/// Functions of `object` that carry crossings whatever calls them.
fn static_sites(object: &ObjectInfo) -> Vec<StaticSite> {
    let symbols = object.text_symbols();
    let file = file_name(&object.path);
    let by_name: HashMap<&str, u64> = symbols.iter().map(|s| (s.name.as_str(), s.svma)).collect();
    let site = |symbol: &str, function: &str, svma, key, dispatch| StaticSite {
        symbol: symbol.to_string(),
        function: function.to_string(),
        svma,
        key,
        dispatch,
    };
    let mut out = Vec::new();
    for s in symbols {
        let name = s.name.as_str();
        if object.go.is_some() {
            if let Some(export) = name.strip_prefix("_cgoexp_").and_then(after_hash) {
                if let Some(&svma) = by_name.get(export) {
                    let key = (Runtime::C, Runtime::Go, Mechanism::CgoExport);
                    out.push(site(export, export, svma, key, false));
                }
                continue;
            }
            // `C2func_` where the Go code takes errno too (`r, err := C.f()`).
            if let Some(f) = name
                .strip_prefix("_cgo_")
                .and_then(after_hash)
                .and_then(|r| {
                    r.strip_prefix("Cfunc_")
                        .or_else(|| r.strip_prefix("C2func_"))
                })
            {
                let key = (Runtime::Go, Runtime::C, Mechanism::CgoCall);
                out.push(site(name, f, s.svma, key, false));
                continue;
            }
            continue;
        }
        // PyO3's trampolines (demangled only where the mangled name can be one).
        const TRAMPOLINE: &str = "pyo3::impl_::trampoline::";
        let trampoline = (name.contains("pyo3") && name.contains("trampoline"))
            .then(|| s.display())
            .filter(|d| d.starts_with(TRAMPOLINE));
        if let Some(display) = trampoline {
            let kind = &display[TRAMPOLINE.len()..];
            // PyO3's entry trampolines, one per calling convention; not the
            // generic body they share, nor module initialisation.
            let inner = [
                "trampoline",
                "trampoline_unraisable",
                "module_init",
                "module_exec",
            ];
            if !kind.contains("::") && !inner.contains(&kind) {
                let key = (Runtime::Python, Runtime::Rust, Mechanism::Pyo3);
                out.push(site(&display, &display, s.svma, key, false));
            }
            continue;
        }
        let key = match name {
            "_CallPythonObject" if file.starts_with("_ctypes") => {
                (Runtime::C, Runtime::Python, Mechanism::Callback)
            }
            "general_invoke_callback" if file.starts_with("_cffi_backend") => {
                (Runtime::C, Runtime::Python, Mechanism::Callback)
            }
            _ if name.starts_with("_cffi_f_") => (Runtime::Python, Runtime::C, Mechanism::CffiApi),
            // libffi's entry, also under a prefix where it is linked in
            // (cffi's wheels: `cffistatic_ffi_call`); not `ffi_call_go`,
            // `ffi_call_int` nor `ffi_call_unix64`, which it calls.
            _ if is_ffi_call(name) => {
                let key = (Runtime::Python, Runtime::C, Mechanism::Ctypes);
                out.push(site(name, name, s.svma, key, true));
                continue;
            }
            _ => continue,
        };
        let function = name.strip_prefix("_cffi_f_").unwrap_or(name);
        out.push(site(name, function, s.svma, key, false));
    }
    // A module with hundreds of wrappers (cryptography's: 386 cffi, 634
    // PyO3) calls few of them: probed from load, each costs an event per CPU
    // to open, and to close (60-100 ms each, one at a time: three minutes for
    // that module on two CPUs). Its wrappers are probed once samples show them.
    for mechanism in [Mechanism::CffiApi, Mechanism::Pyo3] {
        let n = out.iter().filter(|s| s.key.2 == mechanism).count();
        if n > MAX_EXTENSION_METHODS {
            log::debug!(
                "{}: {n} {} wrappers, probed when samples show them",
                object.path,
                mechanism.as_str()
            );
            out.retain(|s| s.key.2 != mechanism);
        }
    }
    out.extend(extension_methods(object));
    out
}

/// Whether the function at `from` jumps to `to` (a tail call: `jmp` or a
/// conditional jump, relative, to its entry), as its bytes say, within the
/// length its unwind tables give it. A byte scan, not a decoding: five bytes
/// that happen to read as a jump to exactly `to` are rare enough.
fn tail_calls(object: &ObjectInfo, from: u64, to: u64) -> bool {
    let Some(len) = object.function_len(from) else {
        return false;
    };
    let code = object.bytes_at_svma(from, len as usize);
    let lands = |at: usize, size: usize, rel: i64| {
        (from + (at + size) as u64).wrapping_add_signed(rel) == to
    };
    let rel32 = |at: usize| {
        code.get(at..at + 4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
    };
    (0..code.len()).any(|i| match code[i] {
        0xe9 => rel32(i + 1).is_some_and(|r| lands(i, 5, r)),
        0xeb => code
            .get(i + 1)
            .is_some_and(|&r| lands(i, 2, r as i8 as i64)),
        0x0f => {
            code.get(i + 1)
                .is_some_and(|&op| (0x80..=0x8f).contains(&op))
                && rel32(i + 2).is_some_and(|r| lands(i, 6, r))
        }
        _ => false,
    })
}

/// Most methods (or cffi or PyO3 wrappers) of one module probed from its
/// load; a bigger module (numpy, cryptography) has them probed when the
/// samples show them called.
const MAX_EXTENSION_METHODS: usize = 64;

/// The C functions of a third-party extension module's method tables. The
/// interpreter's own extension modules (`lib-dynload`) are left to the
/// samples: they are many, and most are never called.
fn extension_methods(object: &ObjectInfo) -> Vec<StaticSite> {
    let callee = match object.language {
        Language::C => Runtime::C,
        Language::Rust => Runtime::Rust,
        Language::Go | Language::Python => return Vec::new(),
    };
    if object.path.contains("/lib-dynload/") {
        return Vec::new();
    }
    let methods = object.python_methods();
    if methods.len() > MAX_EXTENSION_METHODS {
        log::debug!(
            "{}: {} methods, probed when samples show them",
            object.path,
            methods.len()
        );
        return Vec::new();
    }
    let symbols = object.text_symbols();
    methods
        .into_iter()
        .map(|(method, svma)| {
            let name = symbols
                .binary_search_by_key(&svma, |s| s.svma)
                .map_or(method, |i| symbols[i].display());
            // A PyO3 module's functions are its trampolines (jiter's
            // `from_json`), which the samples call PyO3 crossings too.
            let mechanism = if is_pyo3_trampoline(&name) {
                Mechanism::Pyo3
            } else {
                Mechanism::Cext
            };
            StaticSite {
                symbol: name.clone(),
                function: name,
                svma,
                key: (Runtime::Python, callee, mechanism),
                dispatch: false,
            }
        })
        .collect()
}

fn is_ffi_call(name: &str) -> bool {
    name == "ffi_call" || name.ends_with("_ffi_call")
}

/// `<hex hash>_<rest>` -> rest.
fn after_hash(s: &str) -> Option<&str> {
    let (hash, rest) = s.split_once('_')?;
    (!hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !rest.is_empty())
        .then_some(rest)
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

// Two functions to measure probe hits on: one whose first instruction the
// kernel emulates (push) and one it must single-step (sub).
std::arch::global_asm!(
    ".text",
    ".globl seam_probe_calibrate_push",
    ".type seam_probe_calibrate_push,@function",
    "seam_probe_calibrate_push:",
    "push rbp",
    "pop rbp",
    "ret",
    ".size seam_probe_calibrate_push, .-seam_probe_calibrate_push",
    ".globl seam_probe_calibrate_step",
    ".type seam_probe_calibrate_step,@function",
    "seam_probe_calibrate_step:",
    "sub rsp, 8",
    "add rsp, 8",
    "ret",
    ".size seam_probe_calibrate_step, .-seam_probe_calibrate_step",
);

extern "C" {
    fn seam_probe_calibrate_push();
    fn seam_probe_calibrate_step();
}

/// Steps of the calibration's workload between two calls.
const STEPS_PER_CALL: usize = 200;

/// Measures one probe hit of each kind on seam's own thread, with events
/// exactly like the sites' (per CPU for every process, a record per hit into
/// `set`'s rings), timed in the thread's own CPU time (a preemption on a
/// busy machine is not a probe's cost), the median of five runs: the hits
/// in a busy target pay for the record and for cold caches too, and the
/// fastest run would understate them.
fn calibrate(set: &mut UprobeSet, closer: &Closer) -> Result<HitCost, Error> {
    let mut measure = |f: unsafe extern "C" fn(), calls: u32| -> Result<f64, Error> {
        let (file, offset) = own_file_offset(f as usize).ok_or_else(|| {
            Error::Unsupported(
                "cannot find seam's own executable mapping to measure probe costs".into(),
            )
        })?;
        // Between calls, work as a target does (see `Workload`): what the
        // trap disturbs is part of a hit's cost.
        let mut workload = Workload::new();
        let mut run = || {
            let t = thread_cpu_ns();
            for _ in 0..calls {
                std::hint::black_box(workload.run(STEPS_PER_CALL));
                // SAFETY: the calibration functions take nothing and return nothing.
                unsafe { std::hint::black_box(f)() };
            }
            thread_cpu_ns().saturating_sub(t) as f64 / calls as f64
        };
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let before = median((0..5).map(|_| run()).collect());
        let probe = Probe {
            path: file,
            file_offset: offset,
            capture: false,
        };
        let events = set
            .arm(std::slice::from_ref(&probe))
            .pop()
            .unwrap_or_else(|| Err(std::io::Error::other("no result")));
        let events = events.map_err(|e| {
            Error::io(
                "opening a uprobe to measure its cost (exact crossing counts need root, or CAP_PERFMON and CAP_BPF)",
                e,
                None,
            )
        })?;
        // A thread preempted during its runs can read the probed calls as
        // cheaper than the bare ones (once in about thirty recordings of the
        // test suite, which then took the probes for free): measured again.
        let mut probed = 0.0;
        for _ in 0..3 {
            probed = median((0..5).map(|_| run()).collect());
            if probed > before {
                break;
            }
        }
        let ids: HashSet<EventId> = events.iter().map(|(id, _)| *id).collect();
        closer.close(events.into_iter().map(|(_, fd)| (usize::MAX, fd)).collect());
        let (mut fired, mut lost) = (0u64, 0u64);
        set.drain(|hit| fired += ids.contains(&hit.id) as u64, |n| lost += n);
        if fired + lost < calls as u64 {
            return Err(Error::Unsupported("uprobes on seam itself did not fire; exact crossing counts are unavailable here (use --crossings sampled)".into()));
        }
        if probed <= before {
            log::warn!(
                "a probe hit measured at {:.0} ns on a busy machine; counting it as {MIN_HIT_NS} ns",
                probed - before
            );
        }
        Ok((probed - before).max(MIN_HIT_NS))
    };
    Ok(HitCost {
        emulated_ns: measure(seam_probe_calibrate_push, 5_000)?,
        single_step_ns: measure(seam_probe_calibrate_step, 1_000)?,
    })
}

/// Less than any breakpoint trap costs (0.6-20 µs measured on the VMs here):
/// what a hit that measured as free is taken to cost.
const MIN_HIT_NS: f64 = 100.0;

/// What a probe hit costs on this machine, measured once per process (about
/// half a second, see [`calibrate`]) and shared. `seam record` starts it on a
/// thread of its own while it measures what a sample costs, so that the two
/// calibrations overlap; [`Prober::new`] waits for it.
pub fn hit_cost() -> Result<HitCost, Error> {
    static COST: std::sync::OnceLock<Result<HitCost, String>> = std::sync::OnceLock::new();
    COST.get_or_init(|| measure_hit_cost().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Unsupported)
}

/// The probes of process `pid`: BPF links where the kernel allows them, else
/// perf uprobe events (see [`UprobeSet::new`]).
fn open_probes(pid: u32) -> Result<UprobeSet, Error> {
    let (set, why_not_bpf) = UprobeSet::new(pid).map_err(|e| {
        Error::Unsupported(format!(
            "exact crossing counts need BPF uprobe_multi links (Linux 6.6+) or the uprobe PMU \
             (/sys/bus/event_source/devices/uprobe), as root or with CAP_BPF and CAP_PERFMON: \
             {e}; use --crossings sampled"
        ))
    })?;
    if let Some(why) = why_not_bpf {
        log::info!("probes: perf uprobe events, one per CPU and site: {why}");
    }
    Ok(set)
}

fn measure_hit_cost() -> Result<HitCost, Error> {
    let mut set = open_probes(std::process::id())?;
    // Each close waits for the kernel's grace periods: not on this thread
    // (the closer's thread closes what is left once it is dropped).
    let closer = Closer::start(set.closes_together())?;
    calibrate(&mut set, &closer)
}

/// The file and file offset of an address in this process's own code.
pub(crate) fn own_file_offset(addr: usize) -> Option<(String, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        let Some(m) = crate::modules::parse_maps_line(line) else {
            continue;
        };
        if (m.start..m.end).contains(&(addr as u64)) {
            return Some((m.path, addr as u64 - m.start + m.pgoff));
        }
    }
    None
}

/// The entry of a function that has no name, named `[MODULE+0xENTRY]` as the
/// symbolizer names it from the unwind tables: probed only if the unwind
/// tables still say a function starts there.
fn unnamed_entry(object: &ObjectInfo, module: &str, name: &str) -> Option<u64> {
    let hex = name
        .strip_prefix('[')?
        .strip_suffix(']')?
        .strip_prefix(module)?
        .strip_prefix("+0x")?;
    let svma = u64::from_str_radix(hex, 16).ok()?;
    (object.function_start(svma) == Some(svma)).then_some(svma)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site that fails to arm as the target exits is no failed site: the
    /// target is told gone by its state, a zombie's too.
    #[test]
    fn an_exited_target_is_not_alive() {
        assert!(target_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited, not reaped: a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while target_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!target_alive(pid));
        child.wait().unwrap();
        assert!(!target_alive(pid));
    }

    #[test]
    fn a_gap_is_extrapolated_only_while_the_samples_show_the_function() {
        let second = 1_000_000_000;
        let spell = |start: u64, end: u64, hits: u64, seen: u64| Spell {
            start,
            end: Some(end),
            hits,
            first_hit: Some(start),
            last_hit: Some(end),
            seen,
            ..Spell::default()
        };
        // 1000 calls a second on both sides of a two-second gap, and 50
        // samples a second showing the function while armed.
        let (a, b) = (
            spell(0, second, 1000, 50),
            spell(3 * second, 4 * second, 1000, 50),
        );
        let missed = |a: &Spell| {
            extrapolate_gaps(&[a.clone(), b.clone()], 4 * second, None, &HitNs::default()).0
        };
        // No sample showed it in the gap: the program did not call it then.
        assert_eq!(missed(&a), 0.0);
        // Shown in the gap's first 300 ms: busy at the pace before the gap.
        let mut early = a.clone();
        early.gap_seen = Some((second - 50_000_000, second + 300_000_000));
        assert!((missed(&early) - 300.0).abs() < 1.0, "{}", missed(&early));
        // Shown all through it: all of it, as before.
        let mut all = a.clone();
        all.gap_seen = Some((second - 50_000_000, 3 * second + 50_000_000));
        assert!((missed(&all) - 2000.0).abs() < 1.0, "{}", missed(&all));
        // A function the samples hardly catch says nothing by its absence.
        let (rare, rare_b) = (
            spell(0, second, 1000, 1),
            spell(3 * second, 4 * second, 1000, 0),
        );
        let (m, _) = extrapolate_gaps(&[rare, rare_b], 4 * second, None, &HitNs::default());
        assert!((m - 2000.0).abs() < 1.0, "{m}");
        // Sparse sightings (2 in each 100 ms spell, one every 50 ms): the
        // last in a 200 ms gap 107 ms before its end is chance, not idling
        // (cut there, the gap was half as busy: `gomain`'s callback read
        // 10-20% low). Cut where no sighting came for 3 spacings.
        let ms = 1_000_000;
        let (a, b) = (
            spell(0, 100 * ms, 100, 2),
            spell(300 * ms, 400 * ms, 100, 2),
        );
        let mut sparse = a.clone();
        sparse.gap_seen = Some((99 * ms, 193 * ms));
        let (m, _) = extrapolate_gaps(
            &[sparse.clone(), b.clone()],
            400 * ms,
            None,
            &HitNs::default(),
        );
        assert!((m - 200.0).abs() < 1.0, "{m}");
        sparse.gap_seen = Some((99 * ms, 140 * ms));
        let (m, _) = extrapolate_gaps(&[sparse, b], 400 * ms, None, &HitNs::default());
        assert!((m - 40.0).abs() < 1.0, "{m}");
    }

    #[test]
    fn a_site_still_trapping_is_closed_first() {
        let mut q: std::collections::VecDeque<(usize, char)> =
            [(3, 'a'), (7, 'b'), (3, 'c'), (9, 'd'), (7, 'e')].into();
        front_first(&mut q, &[7]);
        let order: Vec<char> = q.iter().map(|(_, c)| *c).collect();
        assert_eq!(order, ['b', 'e', 'a', 'c', 'd']);
        front_first(&mut q, &[]);
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn the_budget_saves_up_at_most_a_second_of_it() {
        let budget = 0.03;
        let mut forgone = 0.0;
        // A minute of the target's CPU without a crossing, sampling taking 1%.
        let mut cpu = 0.0;
        for _ in 0..600 {
            cpu += 1e8;
            probe_allowance(budget, cpu, 0.01 * cpu, 0.0, &mut forgone);
        }
        // Then a burst: the probes may spend what a second of CPU allows, not
        // the minute's savings (1.2 s of the target's time).
        let saved = probe_allowance(budget, cpu, 0.01 * cpu, 0.0, &mut forgone);
        assert!((saved - budget * MAX_SAVED_CPU_NS).abs() < 1.0, "{saved}");
        let cost = 40e6;
        assert!(cost > probe_allowance(budget, cpu + 1e8, 0.01 * (cpu + 1e8), cost, &mut forgone));
        // In a steady duty cycle, the allowance grows with the target's CPU.
        let mut f = 0.0;
        let a = probe_allowance(budget, 10e9, 0.1e9, 0.19e9, &mut f);
        assert!((a - 0.2e9).abs() < 1.0 && f == 0.0, "{a} {f}");
    }

    #[test]
    fn a_dispatchers_gaps_are_shared_as_their_samples_show() {
        use Mechanism::{CffiAbi, Ctypes};
        use Runtime::{Python, Rust, C};
        let to_c = (Python, C, Ctypes);
        let to_rust = (Python, Rust, Ctypes);
        let abi = (Python, C, CffiAbi);
        let counted = [(to_c, "f", 900), (to_rust, "g", 100), (abi, "h", 1)];
        let mut spell = Spell::default();
        spell.seen_by.insert((Python, Ctypes), 10);
        // No samples in the gaps: the calls counted share them.
        let shares = gap_shares(std::slice::from_ref(&spell), &counted, 1001);
        let plain: Vec<f64> = shares.iter().map(|s| s.0).collect();
        assert_eq!(plain, vec![900.0 / 1001.0, 100.0 / 1001.0, 1.0 / 1001.0]);
        // The gap's samples all showed cffi ABI calls: the missed calls are
        // theirs, at the dispatcher's calls per sample (cffi ABI had none
        // while armed), with the noise of 25 samples.
        spell.gap_by.insert((Python, CffiAbi), 25);
        let shares = gap_shares(&[spell.clone()], &counted, 1001);
        assert_eq!(shares[0].0, 0.0);
        assert_eq!(shares[1].0, 0.0);
        assert!((shares[2].0 - 1.0).abs() < 1e-12, "{shares:?}");
        assert!((shares[2].1 - 0.2).abs() < 1e-12);
        // Both, by their samples times calls per sample; ctypes within
        // itself by the calls counted; hits with no boundary keep theirs.
        spell.gap_by.insert((Python, Ctypes), 10);
        let shares = gap_shares(&[spell], &counted, 2002);
        let ctypes = 10.0 * 100.0;
        let cffi = 25.0 * 1001.0 / 10.0;
        let reported = 1001.0 / 2002.0;
        let want_c = reported * ctypes / (ctypes + cffi) * 0.9;
        assert!((shares[0].0 - want_c).abs() < 1e-12, "{shares:?}");
        assert!((shares[2].0 - reported * cffi / (ctypes + cffi)).abs() < 1e-12);
    }

    #[test]
    fn split_is_exact_and_proportional() {
        let a = (Runtime::Python, Runtime::C, Mechanism::Ctypes);
        let b = (Runtime::Python, Runtime::C, Mechanism::CffiAbi);
        let w = HashMap::from([(a, 3), (b, 1)]);
        let s: HashMap<_, _> = split(10, &w).into_iter().collect();
        assert_eq!(s[&a] + s[&b], 10);
        assert_eq!(s[&a], 8);
        let one = HashMap::from([(a, 0)]);
        assert_eq!(split(5, &one), vec![(a, 5)]);
    }

    #[test]
    fn gaps_are_filled_from_the_rates_around_them() {
        let spell = |start: u64, end: u64, hits: u64| Spell {
            start,
            end: Some(end),
            hits,
            first_hit: Some(start),
            last_hit: Some(end),
            by_thread: Vec::new(),
            late_hits: 0,
            seen: 0,
            gap_seen: None,
            pauses: Vec::new(),
            ..Spell::default()
        };
        // 1000 hits a second on both sides of a one-second gap.
        let spells = [
            spell(0, 1_000_000_000, 1000),
            spell(2_000_000_000, 3_000_000_000, 1000),
        ];
        let (missed, error) = extrapolate_gaps(&spells, 3_000_000_000, None, &HitNs::default());
        assert!((missed - 1000.0).abs() < 1.0, "{missed}");
        assert!(error > 0.0 && error < 100.0, "{error}");
        // A change of rate across the gap widens the error.
        let spells = [
            spell(0, 1_000_000_000, 500),
            spell(2_000_000_000, 3_000_000_000, 1500),
        ];
        let (missed, wide) = extrapolate_gaps(&spells, 3_000_000_000, None, &HitNs::default());
        assert!(
            (missed - 1000.0).abs() < 1.0 && wide > error * 5.0,
            "{missed} {wide}"
        );
        // After the last spell, up to the last sign of activity.
        let spells = [spell(0, 1_000_000_000, 1000)];
        let (missed, _) = extrapolate_gaps(
            &spells,
            5_000_000_000,
            Some(1_500_000_000),
            &HitNs::default(),
        );
        assert!((missed - 500.0).abs() < 1.0, "{missed}");
        // One spell, nothing after it: nothing missed.
        assert_eq!(
            extrapolate_gaps(&spells, 5_000_000_000, None, &HitNs::default()),
            (0.0, 0.0)
        );
        // A thread that spent a fifth of its armed time in the probes' hits
        // crosses a quarter faster unprobed.
        let mut a = spell(0, 1_000_000_000, 1000);
        a.by_thread = vec![(7, 1000)];
        let mut b = spell(2_000_000_000, 3_000_000_000, 1000);
        b.by_thread = vec![(7, 1000)];
        let (missed, _) = extrapolate_gaps(
            &[a, b],
            3_000_000_000,
            None,
            &HitNs {
                ns: 200_000.0,
                error: 0.0,
                by_thread: Vec::new(),
            },
        );
        assert!((missed - 1250.0).abs() < 1.0, "{missed}");
    }

    /// The error of a hit's cost weighs on the rate as much as the hits fill
    /// the spell: little when they took a twentieth of it, all of the rate
    /// when they took nearly all (a tight loop of calls, where the unprobed
    /// pace is the small difference of two large times).
    #[test]
    fn a_tight_loops_rate_is_as_uncertain_as_the_cost_of_its_hits() {
        let spell = |hits: u64| Spell {
            start: 0,
            end: Some(1_000_000_000),
            hits,
            first_hit: Some(0),
            last_hit: Some(1_000_000_000),
            by_thread: vec![(7, hits)],
            late_hits: 0,
            seen: 0,
            gap_seen: None,
            pauses: Vec::new(),
            ..Spell::default()
        };
        let hit = HitNs {
            ns: 2_500.0,
            error: 250.0,
            by_thread: Vec::new(),
        };
        // 20,000 hits of 2.5 µs: 5% of the second. The cost is known to
        // 30% at best (HIT_COST_UNKNOWN), not the 10% given: 1.6%.
        let (rate, error) = spell(20_000).unprobed_rate(1e9, &hit);
        assert!((rate * 1e9 - 20_000.0 / 0.95).abs() < 1.0, "{rate}");
        assert!(
            error / rate > 0.015 && error / rate < 0.02,
            "{error} {rate}"
        );
        // 360,000 hits: 90% of it; 10% more on each would leave it 1% of
        // its own time: the rate may be twice as high (or more, past the clamp).
        let (rate, error) = spell(360_000).unprobed_rate(1e9, &hit);
        assert!((rate * 1e9 - 360_000.0 / 0.1).abs() < 10.0, "{rate}");
        assert!(error / rate >= 1.0, "{error} {rate}");
        // Past that the rate is a guess (at most 20 times the probed one).
        let (rate, error) = spell(399_000).unprobed_rate(1e9, &hit);
        assert_eq!((rate * 1e9).round(), 399_000.0 * 20.0);
        assert_eq!(error, rate);
        // And the gaps' error carries it.
        let a = spell(360_000);
        let mut b = spell(360_000);
        (b.start, b.end, b.first_hit, b.last_hit) = (
            2_000_000_000,
            Some(3_000_000_000),
            Some(2_000_000_000),
            Some(3_000_000_000),
        );
        let (missed, error) = extrapolate_gaps(&[a, b], 3_000_000_000, None, &hit);
        assert!(error > missed, "{missed} ± {error}");
    }

    /// Where a thread's samples in the spells show what its hits cost it,
    /// that cost counts, weighed with the calibration's by their errors: 900
    /// of its 1,000 samples in the traps over 360,000 hits is 2.5 µs a hit,
    /// ± 26 ns (the binomial error of that share, 9.5 samples), against a
    /// calibrated 1.25 ± 0.5 µs.
    #[test]
    fn a_threads_hits_cost_what_its_samples_show() {
        let spell = |on_cpu: OnCpu| Spell {
            start: 0,
            end: Some(1_000_000_000),
            hits: 360_000,
            first_hit: Some(0),
            last_hit: Some(1_000_000_000),
            by_thread: vec![(7, 360_000)],
            on_cpu: vec![(7, on_cpu)],
            ..Spell::default()
        };
        let seen = spell(OnCpu {
            samples: 1000,
            traps: 900,
        });
        let weighed = |sd: f64| {
            let (w, ws) = (500.0f64.powi(-2), sd.powi(-2));
            ((1_250.0 * w + 2_500.0 * ws) / (w + ws), (w + ws).powf(-0.5))
        };
        let hit = HitNs::seen(1_250.0, 500.0, std::slice::from_ref(&seen), 1e6);
        let sd = (900.0f64 * 100.0 / 1000.0).sqrt() * 1e6 / 360_000.0;
        let (ns, error) = hit.of(7);
        let (want, want_error) = weighed(sd);
        assert!((ns - want).abs() < 1e-6 && ns > 2_490.0, "{ns} {want}");
        assert!((error - want_error).abs() < 1e-6 && error < sd, "{error}");
        // So the thread had about 100 ms of its own for its calls.
        let (rate, _) = seen.unprobed_rate(1e9, &hit);
        let own = 1e9 - 360_000.0 * ns;
        assert!((rate - 360_000.0 / own).abs() < 1e-9, "{rate}");
        assert!((rate * 1e9 / 3_600_000.0 - 1.0).abs() < 0.05, "{rate}");
        // Other threads, and a thread with too few samples: the calibration's.
        assert_eq!(hit.of(8), (1_250.0, 500.0));
        let few = spell(OnCpu {
            samples: 9,
            traps: 8,
        });
        let hit = HitNs::seen(1_250.0, 500.0, &[few], 1e6);
        assert_eq!(hit.of(7), (1_250.0, 500.0));
        // Two spells pool their samples and hits.
        let hit = HitNs::seen(1_250.0, 500.0, &[seen.clone(), seen], 1e6);
        let (want, want_error) = weighed(sd / 2f64.sqrt());
        assert!((hit.of(7).0 - want).abs() < 1e-6);
        assert!((hit.of(7).1 - want_error).abs() < 1e-6);
    }

    /// A call at start-up, then a loop of them a second later: the gap after
    /// the spell goes on at the loop's pace, not at the spell's average.
    #[test]
    fn the_gap_goes_on_at_the_latest_runs_pace() {
        let mut a = Spell {
            start: 0,
            ..Spell::default()
        };
        a.add_hit(7, 1_000_000);
        // 10,000 calls in the last tenth of a second of the spell.
        for k in 0..10_000u64 {
            a.add_hit(7, 900_000_000 + k * 10_000);
        }
        a.end = Some(1_000_000_000);
        let (_, _, recent) = a.recent_rate(1_000_000_000, &HitNs::default());
        assert_eq!((a.hits, recent), (10_001, 10_000));
        let (missed, _) =
            extrapolate_gaps(&[a], 2_000_000_000, Some(1_100_000_000), &HitNs::default());
        assert!((missed - 10_000.0).abs() < 200.0, "{missed}");
        // Hits a tenth of a second apart all along are one run.
        let mut b = Spell::default();
        for k in 0..10u64 {
            b.add_hit(7, k * 100_000_000);
        }
        b.end = Some(1_000_000_000);
        let (_, _, recent) = b.recent_rate(1_000_000_000, &HitNs::default());
        assert_eq!(recent, 10);
    }

    /// Hits counted after a spell's end (its events were still being closed)
    /// are in the gap that follows: counted already, so not extrapolated
    /// again, and not in the spell's rate.
    #[test]
    fn hits_while_closing_belong_to_the_gap() {
        let mut a = Spell {
            start: 0,
            ..Spell::default()
        };
        for k in 0..1000 {
            a.add_hit(7, k * 1_000_000);
        }
        a.end = Some(1_000_000_000);
        // The events close over the next 0.3 s and count on meanwhile.
        for k in 0..300 {
            a.add_hit(7, 1_000_000_000 + (k + 1) * 1_000_000);
        }
        assert_eq!((a.hits, a.late_hits), (1000, 300));
        let mut b = Spell {
            start: 2_000_000_000,
            ..Spell::default()
        };
        for k in 0..1000 {
            b.add_hit(7, 2_000_000_000 + k * 1_000_000);
        }
        b.end = Some(3_000_000_000);
        let (missed, _) = extrapolate_gaps(&[a, b], 3_000_000_000, None, &HitNs::default());
        assert!((missed - 700.0).abs() < 5.0, "{missed}");
    }

    #[test]
    fn libffi_entries_and_their_callers() {
        assert!(is_ffi_call("ffi_call"));
        assert!(is_ffi_call("cffistatic_ffi_call"));
        for inner in [
            "ffi_call_go",
            "ffi_call_int",
            "ffi_call_unix64",
            "my_ffi_caller",
        ] {
            assert!(!is_ffi_call(inner), "{inner}");
        }
        assert_eq!(
            dispatch_mechanism("_ctypes.cpython-312-x86_64-linux-gnu.so"),
            Some(Mechanism::Ctypes)
        );
        assert_eq!(
            dispatch_mechanism("_cffi_backend.cpython-311-x86_64-linux-gnu.so"),
            Some(Mechanism::CffiAbi)
        );
        assert_eq!(dispatch_mechanism("libgobject-2.0.so.0"), None);
    }

    #[test]
    fn cgo_names() {
        assert_eq!(after_hash("516a0f779a83_GoSpin"), Some("GoSpin"));
        assert_eq!(
            after_hash("516a0f779a83_Cfunc_c_spin"),
            Some("Cfunc_c_spin")
        );
        assert_eq!(after_hash("thread_start"), None);
        assert_eq!(after_hash("_x"), None);
    }
}
