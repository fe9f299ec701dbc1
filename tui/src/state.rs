//! The dashboard's state, built from the profile deltas a recording or a
//! collector sends. Nothing here knows about the terminal: the widgets in
//! `view` read it, `input` changes it.

use seam_export::{summarize, BoundarySummary, Summary};
use seam_proto::delta::{DeltaError, ProfileDelta, Replay};
use seam_proto::{CrossingsMethod, Mechanism, Profile, Runtime};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};

/// Rates are taken over at least this much recorded time, so that one 250 ms
/// tick with a few samples does not make the figures jump.
pub const RATE_WINDOW_S: f64 = 1.0;
/// How many rate intervals the sparklines keep (about five minutes).
pub const HISTORY_LEN: usize = 300;
/// How many of the heaviest stacks the summaries keep.
const TOP_STACKS: usize = 200;
/// Stacks the detail view lists for its boundary.
pub const DETAIL_STACKS: usize = 50;

/// The dashboard's screens, in the order of their keys `1` to `5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Boundaries,
    Stacks,
    Threads,
    Detail,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Boundaries,
        View::Stacks,
        View::Threads,
        View::Detail,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Boundaries => "boundaries",
            View::Stacks => "hot functions",
            View::Threads => "threads",
            View::Detail => "boundary detail",
        }
    }

    pub fn index(self) -> usize {
        View::ALL.iter().position(|&v| v == self).unwrap_or(0)
    }
}

/// How the boundaries table is ordered (`s` cycles through these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundarySort {
    /// Samples whose stack passes through the boundary.
    Through,
    CrossingsPerS,
    GlueCpu,
    OffCpu,
    Switches,
}

impl BoundarySort {
    const ORDER: [BoundarySort; 5] = [
        BoundarySort::Through,
        BoundarySort::CrossingsPerS,
        BoundarySort::GlueCpu,
        BoundarySort::OffCpu,
        BoundarySort::Switches,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BoundarySort::Through => "through",
            BoundarySort::CrossingsPerS => "crossings/s",
            BoundarySort::GlueCpu => "glue CPU",
            BoundarySort::OffCpu => "off-CPU",
            BoundarySort::Switches => "switches",
        }
    }

    fn next(self) -> BoundarySort {
        let i = BoundarySort::ORDER
            .iter()
            .position(|&s| s == self)
            .unwrap_or(0);
        BoundarySort::ORDER[(i + 1) % BoundarySort::ORDER.len()]
    }
}

/// How the hot functions are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionSort {
    Own,
    Total,
}

/// The identity of a boundary: caller, callee, mechanism.
pub type BoundaryKey = (Runtime, Runtime, Mechanism);

fn key(b: &BoundarySummary) -> BoundaryKey {
    (b.caller, b.callee, b.mechanism)
}

/// One row of the boundaries table: totals since the last reset, rates over
/// the last interval.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundaryRow {
    pub key: BoundaryKey,
    /// Share of the samples whose stack passes through it (since the reset).
    pub through: f64,
    /// Share of the CPU in its glue over the last interval.
    pub glue_cpu: f64,
    /// Crossings per second over the last interval; None when not counted.
    pub crossings_per_s: Option<f64>,
    pub crossings_method: CrossingsMethod,
    /// Crossings since the reset.
    pub crossings: Option<u64>,
    /// The error of `crossings` when extrapolated (one standard deviation).
    pub crossings_error: u64,
    /// Glue CPU ns per crossing since the reset, and its error.
    pub glue_ns_per_crossing: Option<f64>,
    pub glue_ns_error: Option<f64>,
    /// Off-CPU ms per second in its glue over the last interval.
    pub off_cpu_ms_per_s: f64,
    pub switches_per_s: f64,
    /// Off-CPU ms by cause since the reset, heaviest first.
    pub causes: Vec<(String, f64)>,
}

/// A function as py-spy top shows it: its own and total share of the samples.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionRow {
    pub name: String,
    pub runtime: Runtime,
    /// The mechanism when this frame is the first of a callee reached through a crossing.
    pub seam: Option<Mechanism>,
    pub own: f64,
    pub total: f64,
}

/// A thread and its share of the samples.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadRow {
    pub tid: u32,
    pub name: String,
    /// Share of the samples since the reset.
    pub share: f64,
    pub samples_per_s: f64,
    /// Share of a core it was on CPU over the last interval (samples per
    /// second over the sampling rate).
    pub on_cpu: f64,
    /// The runtime its latest sample was in.
    pub runtime_now: Option<Runtime>,
    /// Share of the time since the reset it spent off CPU, and the cause of
    /// most of that time.
    pub off_cpu: f64,
    pub off_cpu_cause: Option<String>,
}

/// One stack through the selected boundary, shown from the caller's last frame
/// before the seam to the leaf, glue left out.
#[derive(Clone, Debug, PartialEq)]
pub struct StackRow {
    pub share: f64,
    pub frames: Vec<(Runtime, String)>,
}

/// The figures of the last rate interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rates {
    /// Recorded seconds the rates are taken over.
    pub window_s: f64,
    pub samples_per_s: f64,
    pub lost_per_s: f64,
    pub off_cpu_ms_per_s: f64,
    pub switches_per_s: f64,
    /// CPU seam's own process used, as a share of one core.
    pub seam_cpu_share: f64,
}

/// One point of the sparklines: each boundary's crossings per second and glue
/// CPU share over one interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryPoint {
    pub boundaries: HashMap<BoundaryKey, (Option<f64>, f64)>,
}

/// The whole dashboard.
#[derive(Debug)]
pub struct Dashboard {
    /// The profile rebuilt from every delta received.
    replay: Replay,
    /// The replay has deltas that the figures do not show yet.
    stale: bool,
    /// The profile the figures show: the replay's, as of the last refresh.
    latest: Profile,
    /// Where the "since" totals start (`r` moves it to the newest snapshot).
    origin: Profile,
    /// The start of the current rate interval.
    previous: Profile,
    /// Summary of `latest` since `origin`.
    totals: Summary,
    /// Summary of the last complete rate interval.
    interval: Summary,
    rates: Rates,
    history: VecDeque<HistoryPoint>,
    view: View,
    boundary_sort: BoundarySort,
    function_sort: FunctionSort,
    /// Selected row of the boundaries, functions and threads tables, and of
    /// the detail view's stacks through its boundary.
    selected: [usize; 4],
    /// The first row each of those tables showed when last drawn: drawing
    /// keeps it unless the selection left the screen (see `view::scroll_offset`).
    scroll: [Cell<usize>; 4],
    paused: bool,
    exited: Option<Option<i32>>,
    help: bool,
    quit: bool,
    status: String,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard::new()
    }
}

impl Dashboard {
    pub fn new() -> Dashboard {
        let empty = Profile::default();
        Dashboard {
            replay: Replay::default(),
            stale: false,
            totals: summarize(&empty, TOP_STACKS),
            interval: summarize(&empty, TOP_STACKS),
            latest: empty.clone(),
            origin: empty.clone(),
            previous: empty,
            rates: Rates::default(),
            history: VecDeque::new(),
            view: View::Overview,
            boundary_sort: BoundarySort::Through,
            function_sort: FunctionSort::Own,
            selected: [0; 4],
            scroll: Default::default(),
            paused: false,
            exited: None,
            help: false,
            quit: false,
            status: String::new(),
        }
    }

    /// Takes the next change to the profile, in order (the deltas an agent
    /// streams, or [`seam_proto::delta::DeltaBuilder`]'s of a local
    /// recording). The figures follow at the next [`Dashboard::refresh`].
    /// A delta that does not fit is refused whole and changes nothing.
    pub fn apply_delta(&mut self, delta: &ProfileDelta) -> Result<(), DeltaError> {
        self.replay.apply(delta)?;
        self.stale = true;
        Ok(())
    }

    /// Brings the figures up to the deltas received, unless paused (the
    /// figures then stay as they are, and catch up on resume).
    pub fn refresh(&mut self) {
        if self.stale && !self.paused {
            self.stale = false;
            self.show(self.replay.profile().clone());
        }
    }

    fn show(&mut self, profile: Profile) {
        self.latest = profile;
        self.totals = summarize(&since(&self.latest, &self.origin), TOP_STACKS);
        let window = self.latest.duration_s - self.previous.duration_s;
        if window >= RATE_WINDOW_S {
            let interval = summarize(&since(&self.latest, &self.previous), TOP_STACKS);
            self.rates = Rates {
                window_s: window,
                samples_per_s: interval.samples as f64 / window,
                lost_per_s: interval.lost as f64 / window,
                off_cpu_ms_per_s: interval.off_cpu_ms / window,
                switches_per_s: interval.context_switches as f64 / window,
                seam_cpu_share: (self.latest.seam_cpu_s - self.previous.seam_cpu_s).max(0.0)
                    / window,
            };
            let point = HistoryPoint {
                boundaries: interval
                    .boundaries
                    .iter()
                    .map(|b| (key(b), (b.crossings_per_s, b.glue_cpu_share)))
                    .collect(),
            };
            if self.history.len() == HISTORY_LEN {
                self.history.pop_front();
            }
            self.history.push_back(point);
            self.interval = interval;
            self.previous = self.latest.clone();
        }
        self.clamp_selection();
    }

    /// The recording ended because the target exited (with its status when known).
    pub fn target_exited(&mut self, status: Option<i32>) {
        self.exited = Some(status);
    }

    /// Forgets the profile: the deltas that follow rebuild it from nothing
    /// (the source started again). The view, sort and selection stay.
    pub fn restart(&mut self) {
        let empty = Profile::default();
        self.replay = Replay::default();
        self.stale = false;
        self.totals = summarize(&empty, TOP_STACKS);
        self.interval = self.totals.clone();
        self.latest = empty.clone();
        self.origin = empty.clone();
        self.previous = empty;
        self.rates = Rates::default();
        self.history.clear();
    }

    /// Starts the totals, rates and history afresh from the newest profile.
    pub fn reset(&mut self) {
        if self.stale {
            self.stale = false;
            self.latest = self.replay.profile().clone();
        }
        self.origin = self.latest.clone();
        self.previous = self.latest.clone();
        self.totals = summarize(&since(&self.latest, &self.origin), TOP_STACKS);
        self.interval = self.totals.clone();
        self.rates = Rates::default();
        self.history.clear();
        self.clamp_selection();
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        self.refresh();
    }

    pub fn set_status(&mut self, status: impl Into<String>) {
        self.status = status.into();
    }

    pub fn profile(&self) -> &Profile {
        &self.latest
    }

    /// The newest profile, with what was received while paused (for `f`).
    pub fn newest_profile(&self) -> &Profile {
        self.replay.profile()
    }

    pub fn totals(&self) -> &Summary {
        &self.totals
    }

    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    pub fn history(&self) -> &VecDeque<HistoryPoint> {
        &self.history
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn boundary_sort(&self) -> BoundarySort {
        self.boundary_sort
    }

    pub fn function_sort(&self) -> FunctionSort {
        self.function_sort
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn exited(&self) -> Option<Option<i32>> {
        self.exited
    }

    pub fn help(&self) -> bool {
        self.help
    }

    pub fn quit_requested(&self) -> bool {
        self.quit
    }

    pub fn status(&self) -> &str {
        &self.status
    }

    /// Threads seen in the newest snapshot.
    pub fn thread_count(&self) -> usize {
        self.latest.threads.len()
    }

    /// The boundaries, in the table's order.
    pub fn boundary_rows(&self) -> Vec<BoundaryRow> {
        let samples = self.totals.samples;
        let window = self.rates.window_s;
        let per_s = |x: f64| if window > 0.0 { x / window } else { 0.0 };
        let mut rows: Vec<BoundaryRow> = self
            .totals
            .boundaries
            .iter()
            .map(|b| {
                let recent = self.interval.boundaries.iter().find(|r| key(r) == key(b));
                let mut causes: Vec<(String, f64)> =
                    b.causes.iter().map(|(k, &v)| (k.clone(), v)).collect();
                causes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                BoundaryRow {
                    key: key(b),
                    through: share(b.samples, samples),
                    glue_cpu: recent.map_or(0.0, |r| r.glue_cpu_share),
                    crossings_per_s: b
                        .crossings
                        .map(|_| recent.and_then(|r| r.crossings_per_s).unwrap_or(0.0)),
                    crossings_method: b.crossings_method,
                    crossings: b.crossings,
                    crossings_error: b.crossings_error,
                    glue_ns_per_crossing: b.glue_ns_per_crossing,
                    glue_ns_error: b.glue_ns_error,
                    off_cpu_ms_per_s: recent.map_or(0.0, |r| per_s(r.off_cpu_ms)),
                    switches_per_s: recent
                        .map_or(0.0, |r| per_s(r.context_switches.total() as f64)),
                    causes,
                }
            })
            .collect();
        let by = |r: &BoundaryRow| match self.boundary_sort {
            BoundarySort::Through => r.through,
            BoundarySort::CrossingsPerS => r.crossings_per_s.unwrap_or(-1.0),
            BoundarySort::GlueCpu => r.glue_cpu,
            BoundarySort::OffCpu => r.off_cpu_ms_per_s,
            BoundarySort::Switches => r.switches_per_s,
        };
        rows.sort_by(|a, b| by(b).total_cmp(&by(a)).then(a.key.cmp(&b.key)));
        rows
    }

    /// Functions by own or total share of the samples since the reset.
    pub fn function_rows(&self) -> Vec<FunctionRow> {
        let profile = &self.latest;
        let base = &self.origin.counts;
        let mut by_frame: HashMap<u32, (u64, u64)> = HashMap::new();
        let mut samples = 0;
        for (i, stack) in profile.stacks.iter().enumerate() {
            let count = profile.counts[i].saturating_sub(base.get(i).copied().unwrap_or(0));
            if count == 0 {
                continue;
            }
            samples += count;
            if let Some(leaf) = stack.frames.last() {
                by_frame.entry(leaf.0).or_default().0 += count;
            }
            let mut seen: Vec<u32> = stack.frames.iter().map(|f| f.0).collect();
            seen.sort_unstable();
            seen.dedup();
            for f in seen {
                by_frame.entry(f).or_default().1 += count;
            }
        }
        let mut rows: Vec<FunctionRow> = by_frame
            .into_iter()
            .map(|(f, (own, total))| {
                let frame = &profile.frames[f as usize];
                FunctionRow {
                    name: frame_label(frame),
                    runtime: frame.runtime,
                    seam: frame.seam,
                    own: share(own, samples),
                    total: share(total, samples),
                }
            })
            .collect();
        let by = |r: &FunctionRow| match self.function_sort {
            FunctionSort::Own => (r.own, r.total),
            FunctionSort::Total => (r.total, r.own),
        };
        rows.sort_by(|a, b| {
            let (a1, a2) = by(a);
            let (b1, b2) = by(b);
            b1.total_cmp(&a1)
                .then(b2.total_cmp(&a2))
                .then(a.name.cmp(&b.name))
        });
        rows
    }

    /// Threads, busiest first since the reset.
    pub fn thread_rows(&self) -> Vec<ThreadRow> {
        let window = self.rates.window_s;
        self.totals
            .threads
            .iter()
            .map(|t| {
                let recent = self
                    .interval
                    .threads
                    .iter()
                    .find(|r| r.tid == t.tid)
                    .map_or(0, |r| r.samples);
                let samples_per_s = if window > 0.0 {
                    recent as f64 / window
                } else {
                    0.0
                };
                let info = self.latest.threads.get(&t.tid);
                let before = self.origin.threads.get(&t.tid);
                let mut off: Vec<(&String, u64)> = info
                    .map(|i| {
                        i.off_cpu_ns
                            .iter()
                            .map(|(cause, &ns)| {
                                let was = before.and_then(|b| b.off_cpu_ns.get(cause)).copied();
                                (cause, ns.saturating_sub(was.unwrap_or(0)))
                            })
                            .filter(|&(_, ns)| ns > 0)
                            .collect()
                    })
                    .unwrap_or_default();
                off.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                let off_ns: u64 = off.iter().map(|&(_, ns)| ns).sum();
                let span_ns = (self.latest.duration_s - self.origin.duration_s) * 1e9;
                ThreadRow {
                    tid: t.tid,
                    name: t.name.clone(),
                    share: share(t.samples, self.totals.samples),
                    samples_per_s,
                    on_cpu: if self.latest.rate_hz > 0 {
                        (samples_per_s / self.latest.rate_hz as f64).min(1.0)
                    } else {
                        0.0
                    },
                    runtime_now: info.and_then(|i| i.runtime_now),
                    off_cpu: if span_ns > 0.0 {
                        (off_ns as f64 / span_ns).min(1.0)
                    } else {
                        0.0
                    },
                    off_cpu_cause: off.first().map(|(cause, _)| cause.to_string()),
                }
            })
            .collect()
    }

    /// The boundary the detail view shows: the selected row of the boundaries table.
    pub fn selected_boundary(&self) -> Option<BoundaryRow> {
        let rows = self.boundary_rows();
        rows.get(self.selected[0].min(rows.len().saturating_sub(1)))
            .cloned()
    }

    /// The heaviest stacks (since the reset) that pass through a boundary.
    pub fn stacks_through(&self, boundary: BoundaryKey, top: usize) -> Vec<StackRow> {
        let (caller, callee, mechanism) = boundary;
        let profile = &self.latest;
        let base = &self.origin.counts;
        // Stacks that differ only in glue or in lines the path does not show
        // are one row, in first-seen order before the sort.
        let mut paths: Vec<(Vec<(Runtime, String)>, u64)> = Vec::new();
        let mut index: HashMap<Vec<(Runtime, String)>, usize> = HashMap::new();
        let mut samples = 0;
        for (i, stack) in profile.stacks.iter().enumerate() {
            let count = profile.counts[i].saturating_sub(base.get(i).copied().unwrap_or(0));
            samples += count;
            if count == 0 {
                continue;
            }
            let frames: Vec<_> = stack.frames.iter().map(|&f| profile.frame(f)).collect();
            let at = frames.iter().enumerate().find_map(|(j, f)| {
                let callee_ok = f.seam == Some(mechanism) && f.runtime == callee;
                let caller_at = frames[..j].iter().rposition(|c| is_owner(c.runtime))?;
                (callee_ok && frames[caller_at].runtime == caller).then_some(caller_at)
            });
            let Some(at) = at else { continue };
            let path: Vec<(Runtime, String)> = frames[at..]
                .iter()
                .filter(|f| f.runtime != Runtime::Glue)
                .map(|f| (f.runtime, frame_label(f)))
                .collect();
            match index.get(&path) {
                Some(&k) => paths[k].1 += count,
                None => {
                    index.insert(path.clone(), paths.len());
                    paths.push((path, count));
                }
            }
        }
        // A stable sort: equal weights keep their first-seen order.
        paths.sort_by_key(|p| std::cmp::Reverse(p.1));
        paths
            .into_iter()
            .take(top)
            .map(|(frames, count)| StackRow {
                share: share(count, samples),
                frames,
            })
            .collect()
    }

    /// Crossings per second of a boundary over the history, oldest first (0 when not counted).
    pub fn crossings_history(&self, boundary: BoundaryKey) -> Vec<u64> {
        self.history
            .iter()
            .map(|p| {
                p.boundaries
                    .get(&boundary)
                    .and_then(|b| b.0)
                    .map_or(0, |r| r.round() as u64)
            })
            .collect()
    }

    /// Glue CPU share of a boundary over the history, in tenths of a percent.
    pub fn glue_history(&self, boundary: BoundaryKey) -> Vec<u64> {
        self.history
            .iter()
            .map(|p| {
                p.boundaries
                    .get(&boundary)
                    .map_or(0, |b| (b.1 * 1000.0).round() as u64)
            })
            .collect()
    }

    /// The selected row of the table shown by `view`, if it has one.
    pub fn selected_row(&self, view: View) -> usize {
        match view {
            View::Overview | View::Boundaries => self.selected[0],
            View::Stacks => self.selected[1],
            View::Threads => self.selected[2],
            View::Detail => self.selected[3],
        }
    }

    /// The first row the table of `view` showed when last drawn.
    pub fn scroll(&self, view: View) -> &Cell<usize> {
        &self.scroll[self.slot(view)]
    }

    fn table_len(&self, view: View) -> usize {
        match view {
            View::Overview | View::Boundaries => self.totals.boundaries.len(),
            View::Stacks => self.function_rows().len(),
            View::Threads => self.totals.threads.len(),
            View::Detail => self
                .selected_boundary()
                .map_or(0, |b| self.stacks_through(b.key, DETAIL_STACKS).len()),
        }
    }

    fn clamp_selection(&mut self) {
        for view in [View::Boundaries, View::Stacks, View::Threads, View::Detail] {
            let len = self.table_len(view);
            let slot = self.slot(view);
            self.selected[slot] = self.selected[slot].min(len.saturating_sub(1));
        }
    }

    fn slot(&self, view: View) -> usize {
        match view {
            View::Overview | View::Boundaries => 0,
            View::Stacks => 1,
            View::Threads => 2,
            View::Detail => 3,
        }
    }

    pub(crate) fn set_view(&mut self, view: View) {
        self.view = view;
        self.help = false;
    }

    /// The detail of the selected boundary, from its heaviest stack.
    pub(crate) fn open_detail(&mut self) {
        self.selected[3] = 0;
        self.scroll[3].set(0);
        self.set_view(View::Detail);
    }

    pub(crate) fn move_selection(&mut self, delta: isize) {
        let len = self.table_len(self.view);
        let slot = self.slot(self.view);
        let at = self.selected[slot] as isize + delta;
        self.selected[slot] = at.clamp(0, len.saturating_sub(1) as isize) as usize;
    }

    pub(crate) fn cycle_sort(&mut self) {
        match self.view {
            View::Stacks => {
                self.function_sort = match self.function_sort {
                    FunctionSort::Own => FunctionSort::Total,
                    FunctionSort::Total => FunctionSort::Own,
                }
            }
            _ => self.boundary_sort = self.boundary_sort.next(),
        }
    }

    pub(crate) fn toggle_help(&mut self) {
        self.help = !self.help;
    }

    pub(crate) fn request_quit(&mut self) {
        self.quit = true;
    }
}

fn is_owner(runtime: Runtime) -> bool {
    matches!(
        runtime,
        Runtime::Python | Runtime::C | Runtime::Go | Runtime::Rust
    )
}

/// A frame's name as the tables show it: Python frames with their line.
fn frame_label(frame: &seam_proto::Frame) -> String {
    match (frame.runtime, &frame.file, frame.line) {
        (Runtime::Python, Some(file), Some(line)) => {
            let file = file.rsplit('/').next().unwrap_or(file);
            format!("{} ({file}:{line})", frame.name)
        }
        _ => frame.name.clone(),
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// What happened in `newer` after `older`, as a profile of its own: a profile
/// only grows (frames and stacks are appended, counts go up), so the difference
/// of every counter is the activity in between. Crossing counts are
/// extrapolated over the probes' gaps and can shrink a little: they saturate at
/// zero.
pub fn since(newer: &Profile, older: &Profile) -> Profile {
    let mut p = newer.clone();
    let before = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    for (i, c) in p.counts.iter_mut().enumerate() {
        *c = c.saturating_sub(before(&older.counts, i));
    }
    for (i, c) in p.off_cpu_ns.iter_mut().enumerate() {
        *c = c.saturating_sub(before(&older.off_cpu_ns, i));
    }
    for (i, c) in p.switch_counts.iter_mut().enumerate() {
        *c = c.saturating_sub(before(&older.switch_counts, i));
    }
    for (tid, t) in p.threads.iter_mut() {
        t.samples = t
            .samples
            .saturating_sub(older.threads.get(tid).map_or(0, |o| o.samples));
    }
    p.lost.kernel = p.lost.kernel.saturating_sub(older.lost.kernel);
    p.lost.seam = p.lost.seam.saturating_sub(older.lost.seam);
    for (what, n) in p.problems.iter_mut() {
        *n = n.saturating_sub(older.problems.get(what).copied().unwrap_or(0));
    }
    p.problems.retain(|_, n| *n > 0);
    let shift_ns = (older.duration_s * 1e9) as u64;
    p.start_ns = newer.start_ns + shift_ns;
    p.duration_s = (newer.duration_s - older.duration_s).max(0.0);
    for b in &mut p.boundaries {
        let Some(o) = older
            .boundaries
            .iter()
            .find(|o| (o.caller, o.callee, o.mechanism) == (b.caller, b.callee, b.mechanism))
        else {
            continue;
        };
        b.samples = b.samples.saturating_sub(o.samples);
        b.glue_samples = b.glue_samples.saturating_sub(o.glue_samples);
        b.crossings = b
            .crossings
            .map(|c| c.saturating_sub(o.crossings.unwrap_or(0)));
        // The window's part of the count's error. An extrapolation's error
        // grows by sums (the hits' cost) and in quadrature (the rates); taken
        // out in quadrature, the window keeps the larger part, so its error
        // is not understated.
        b.crossings_error = ((b.crossings_error as f64).powi(2)
            - (o.crossings_error as f64).powi(2))
        .max(0.0)
        .sqrt()
        .round() as u64;
        b.off_cpu_ns = b.off_cpu_ns.saturating_sub(o.off_cpu_ns);
        b.switches.voluntary = b.switches.voluntary.saturating_sub(o.switches.voluntary);
        b.switches.involuntary = b
            .switches
            .involuntary
            .saturating_sub(o.switches.involuntary);
        for (cause, ns) in b.causes.iter_mut() {
            *ns = ns.saturating_sub(o.causes.get(cause).copied().unwrap_or(0));
        }
        for (f, n) in b.functions.iter_mut() {
            *n = n.saturating_sub(o.functions.get(f).copied().unwrap_or(0));
        }
    }
    for b in &mut p.boundaries {
        // Counting began before this window: the window's start is when it counts from.
        if let Some(at) = b.armed_at_ns {
            b.armed_at_ns = Some(at.max(p.start_ns));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::delta::DeltaBuilder;
    use seam_proto::{Boundary, Frame};

    /// Hands snapshots of a growing profile to a dashboard as deltas, as
    /// `run_top` does.
    #[derive(Default)]
    struct Feed(DeltaBuilder);

    impl Feed {
        fn show(&mut self, d: &mut Dashboard, profile: Profile) {
            d.apply_delta(&self.0.next(&profile)).unwrap();
            d.refresh();
        }
    }

    /// A profile at `t` seconds: `n` samples on one stack through python→go
    /// (ctypes), `crossings` counted, `off_ms` off CPU in its glue.
    fn snapshot(t: f64, n: u64, crossings: u64, off_ms: u64) -> Profile {
        let mut p = Profile::default();
        p.rate_hz = 100;
        p.start_ns = 1_000_000_000;
        p.duration_s = t;
        let root = p.intern_frame(Frame::new("main", Runtime::Python));
        let glue = p.intern_frame(Frame::new("ffi_call", Runtime::Glue));
        let mut callee = Frame::new("main.work", Runtime::Go);
        callee.seam = Some(Mechanism::Ctypes);
        let callee = p.intern_frame(callee);
        let s = p.intern_stack(vec![root, glue, callee], true);
        p.add_samples(s, 7, n);
        let mut b = Boundary::new(Runtime::Python, Runtime::Go, Mechanism::Ctypes);
        b.samples = n;
        b.glue_samples = n / 10;
        b.crossings = Some(crossings);
        b.crossings_method = CrossingsMethod::Exact;
        b.armed_at_ns = Some(p.start_ns);
        b.off_cpu_ns = off_ms * 1_000_000;
        b.switches.voluntary = off_ms;
        b.causes.insert("gil".into(), off_ms * 1_000_000);
        p.boundaries.push(b);
        p
    }

    #[test]
    fn rates_come_from_the_last_interval() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 100, 1000, 10));
        feed.show(&mut d, snapshot(2.0, 300, 5000, 40));
        let rows = d.boundary_rows();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.crossings_per_s, Some(4000.0));
        assert!((r.off_cpu_ms_per_s - 30.0).abs() < 1e-9);
        assert!((r.switches_per_s - 30.0).abs() < 1e-9);
        assert!((d.rates().samples_per_s - 200.0).abs() < 1e-9);
        assert!((r.glue_cpu - 20.0 / 200.0).abs() < 1e-9);
        assert_eq!(r.crossings, Some(5000));
        assert_eq!(d.history().len(), 2);
        assert_eq!(d.crossings_history(r.key), vec![1000, 4000]);
    }

    #[test]
    fn a_short_interval_keeps_the_previous_rates() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 100, 1000, 0));
        feed.show(&mut d, snapshot(1.25, 200, 9000, 0));
        assert_eq!(d.boundary_rows()[0].crossings_per_s, Some(1000.0));
        assert_eq!(d.totals().samples, 200);
        assert_eq!(d.history().len(), 1);
    }

    #[test]
    fn reset_starts_totals_and_rates_afresh() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 100, 1000, 10));
        d.reset();
        assert_eq!(d.totals().samples, 0);
        assert!(d.history().is_empty());
        feed.show(&mut d, snapshot(2.5, 250, 4000, 10));
        assert_eq!(d.totals().samples, 150);
        let r = &d.boundary_rows()[0];
        assert_eq!(r.crossings, Some(3000));
        assert_eq!(r.crossings_per_s, Some(2000.0));
        assert_eq!(r.off_cpu_ms_per_s, 0.0);
    }

    /// After a reset, an extrapolated count's error is the window's part of
    /// it, not the whole recording's.
    #[test]
    fn an_extrapolated_counts_error_starts_afresh_too() {
        let extrapolated = |t, n, crossings, error| {
            let mut p = snapshot(t, n, crossings, 0);
            p.boundaries[0].crossings_method = CrossingsMethod::Extrapolated;
            p.boundaries[0].crossings_error = error;
            p
        };
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, extrapolated(1.0, 100, 1000, 300));
        assert_eq!(d.boundary_rows()[0].crossings_error, 300);
        d.reset();
        feed.show(&mut d, extrapolated(2.5, 250, 4000, 500));
        let r = &d.boundary_rows()[0];
        assert_eq!((r.crossings, r.crossings_error), (Some(3000), 400));
    }

    #[test]
    fn pause_freezes_the_figures_and_resume_catches_up() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 100, 1000, 0));
        d.set_paused(true);
        feed.show(&mut d, snapshot(2.0, 300, 3000, 0));
        assert_eq!(d.totals().samples, 100);
        assert_eq!(d.newest_profile().samples(), 300);
        d.set_paused(false);
        assert_eq!(d.totals().samples, 300);
        assert_eq!(d.boundary_rows()[0].crossings_per_s, Some(2000.0));
    }

    #[test]
    fn selection_stays_within_the_table() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        d.set_view(View::Stacks);
        d.move_selection(5);
        assert_eq!(d.selected_row(View::Stacks), 0);
        feed.show(&mut d, snapshot(1.0, 100, 1000, 0));
        // Three functions: main, ffi_call, main.work.
        d.move_selection(1);
        d.move_selection(10);
        assert_eq!(d.selected_row(View::Stacks), 2);
        d.move_selection(-10);
        assert_eq!(d.selected_row(View::Stacks), 0);
        assert_eq!(d.selected_row(View::Boundaries), 0);
    }

    #[test]
    fn sort_cycles_and_orders_rows() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        let mut p = snapshot(1.0, 100, 1000, 0);
        let mut other = Boundary::new(Runtime::Go, Runtime::Rust, Mechanism::CgoCall);
        other.samples = 10;
        other.crossings = Some(50_000);
        other.crossings_method = CrossingsMethod::Exact;
        other.armed_at_ns = Some(p.start_ns);
        p.boundaries.push(other);
        feed.show(&mut d, p);
        let callers =
            |d: &Dashboard| -> Vec<Runtime> { d.boundary_rows().iter().map(|r| r.key.0).collect() };
        assert_eq!(callers(&d), [Runtime::Python, Runtime::Go]);
        d.set_view(View::Boundaries);
        d.cycle_sort();
        assert_eq!(d.boundary_sort(), BoundarySort::CrossingsPerS);
        assert_eq!(callers(&d), [Runtime::Go, Runtime::Python]);
        for _ in 0..4 {
            d.cycle_sort();
        }
        assert_eq!(d.boundary_sort(), BoundarySort::Through);
        d.set_view(View::Stacks);
        d.cycle_sort();
        assert_eq!(d.function_sort(), FunctionSort::Total);
        assert_eq!(d.function_rows()[0].total, 1.0);
    }

    #[test]
    fn functions_count_own_at_the_leaf_and_total_once() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 40, 0, 0));
        let rows = d.function_rows();
        assert_eq!(rows[0].name, "main.work");
        assert_eq!((rows[0].own, rows[0].total), (1.0, 1.0));
        assert_eq!(rows[0].seam, Some(Mechanism::Ctypes));
        assert!(rows[1..].iter().all(|r| r.own == 0.0 && r.total == 1.0));
    }

    #[test]
    fn stacks_through_a_boundary_start_at_the_caller() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 40, 0, 0));
        let key = (Runtime::Python, Runtime::Go, Mechanism::Ctypes);
        let stacks = d.stacks_through(key, 5);
        assert_eq!(stacks.len(), 1);
        assert_eq!(
            stacks[0].frames,
            [
                (Runtime::Python, "main".to_string()),
                (Runtime::Go, "main.work".to_string())
            ]
        );
        let other = (Runtime::Go, Runtime::Rust, Mechanism::CgoCall);
        assert!(d.stacks_through(other, 5).is_empty());
    }

    #[test]
    fn stacks_that_differ_only_in_glue_are_one_row() {
        let mut p = snapshot(1.0, 30, 0, 0);
        let root = p.intern_frame(Frame::new("main", Runtime::Python));
        let glue = p.intern_frame(Frame::new("PyCFuncPtr_call", Runtime::Glue));
        let callee = p.frames.iter().position(|f| f.name == "main.work").unwrap();
        let callee = seam_proto::FrameHandle(callee as u32);
        let s = p.intern_stack(vec![root, glue, callee], true);
        p.add_samples(s, 7, 10);
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, p);
        let stacks = d.stacks_through((Runtime::Python, Runtime::Go, Mechanism::Ctypes), 5);
        assert_eq!(stacks.len(), 1);
        assert_eq!(stacks[0].share, 1.0);
    }

    #[test]
    fn a_delta_that_does_not_follow_is_refused_and_changes_nothing() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 100, 1000, 0));
        // The first delta of another recording repeats frames the profile has.
        let stray = DeltaBuilder::default().next(&snapshot(2.0, 300, 3000, 0));
        assert!(d.apply_delta(&stray).is_err());
        d.refresh();
        assert_eq!(d.totals().samples, 100);
        assert_eq!(d.newest_profile().samples(), 100);
        feed.show(&mut d, snapshot(2.0, 300, 3000, 0));
        assert_eq!(d.totals().samples, 300);
    }

    #[test]
    fn deltas_between_two_refreshes_are_shown_once() {
        let mut d = Dashboard::new();
        let mut builder = DeltaBuilder::default();
        for (t, n) in [(1.0, 100), (2.0, 300), (3.0, 600)] {
            d.apply_delta(&builder.next(&snapshot(t, n, 10 * n, 0)))
                .unwrap();
        }
        assert_eq!(d.totals().samples, 0, "nothing shown before a refresh");
        d.refresh();
        assert_eq!(d.totals().samples, 600);
        assert_eq!(d.history().len(), 1);
        assert!((d.rates().samples_per_s - 200.0).abs() < 1e-9);
    }

    #[test]
    fn a_restart_rebuilds_the_profile_from_the_first_delta() {
        let mut d = Dashboard::new();
        let mut feed = Feed::default();
        feed.show(&mut d, snapshot(1.0, 100, 1000, 0));
        feed.show(&mut d, snapshot(2.0, 300, 3000, 0));
        d.set_view(View::Boundaries);
        d.restart();
        assert_eq!(d.totals().samples, 0);
        assert!(d.history().is_empty());
        assert_eq!(d.view(), View::Boundaries);
        let mut again = Feed::default();
        again.show(&mut d, snapshot(3.0, 600, 6000, 0));
        assert_eq!(d.totals().samples, 600);
        assert_eq!(d.newest_profile().samples(), 600);
    }

    #[test]
    fn exit_is_remembered() {
        let mut d = Dashboard::new();
        assert_eq!(d.exited(), None);
        d.target_exited(Some(0));
        assert_eq!(d.exited(), Some(Some(0)));
    }
}
