//! The JSON summary of a profile (`summary.json`) and its short human form.

use crate::ExportError;
use seam_proto::{
    Boundary, ChildProcesses, CrossingsMethod, Frame, Lost, Mechanism, ProbeOverhead, Profile,
    Runtime, SamplingOverhead, Switches, Target,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;

/// How many of the heaviest stacks a summary lists unless told otherwise.
pub const DEFAULT_TOP_STACKS: usize = 50;

/// The version of the summary format, written as `format_version`.
pub const SUMMARY_FORMAT_VERSION: u32 = 1;

/// The probes' share of the target's CPU above which the end-of-run summary
/// says they went over the budget, and why (a duty cycle hovers around it).
const OVER_BUDGET: f64 = 1.5;
/// An extrapolated count with a larger relative error than this is more a
/// guess than a count: the end-of-run summary says what would count more.
const GUESSED: f64 = 0.5;

/// What a recording amounts to: sample counts, their quality, time per runtime and the
/// heaviest stacks. Serialized as `summary.json`.
///
/// Every count is a number of on-CPU samples; a sample stands for `1 / rate_hz` seconds of
/// CPU time on one thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The version of this format; bumped when a field changes meaning or goes away.
    #[serde(default)]
    pub format_version: u32,
    /// On-CPU samples kept in the profile.
    pub samples: u64,
    /// Samples taken but not kept: `lost_detail.kernel + lost_detail.seam`.
    pub lost: u64,
    /// Lost samples by who dropped them: `kernel` (perf ring buffer full, PERF_RECORD_LOST)
    /// and `seam` (a record seam could not parse, a thread it could not read).
    pub lost_detail: Lost,
    /// Samples whose stack is complete: it reaches the thread's root (`_start`,
    /// `start_thread`/`clone3`, `runtime.goexit`, `runtime.mstart`) with no gap.
    pub complete_stacks: u64,
    /// `complete_stacks / samples`, from 0 to 1; 0 when there are no samples.
    pub complete_share: f64,
    /// Wall-clock length of the recording, in seconds.
    pub duration_s: f64,
    /// The sampling frequency asked for, in samples per second per thread (Hz).
    pub rate_hz: u32,
    /// What was profiled: `pid` and `command` (the command line, one string per argument).
    pub target: Target,
    /// Samples per runtime, keyed by runtime name; all seven runtimes (`python`, `c`, `go`,
    /// `rust`, `kernel`, `glue`, `unknown`) are present, with zeros where nothing ran.
    pub runtimes: BTreeMap<Runtime, RuntimeSamples>,
    /// The heaviest stacks, most samples first (ties in first-seen order).
    pub stacks: Vec<StackSummary>,
    /// Threads that were sampled, most samples first (ties by tid).
    pub threads: Vec<ThreadSummary>,
    /// Why stacks were truncated or frames were unreadable: reason -> number of times.
    pub problems: BTreeMap<String, u64>,
    /// The boundaries the stacks crossed, most samples first.
    pub boundaries: Vec<BoundarySummary>,
    /// What seam's uprobes cost the target (exact crossing counts), or `null`.
    pub probe_overhead: Option<ProbeOverhead>,
    /// What sampling cost the target (see README), or `null`.
    pub sampling_overhead: Option<SamplingOverhead>,
    /// When the recording started, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// Off-CPU time of the target's threads over the recording, ms, and their context switches.
    pub off_cpu_ms: f64,
    pub context_switches: u64,
    /// Processes the target started while recorded (`count`, and the first
    /// `pids`), which seam did not record.
    #[serde(default)]
    pub child_processes: ChildProcesses,
}

/// One boundary (caller runtime, callee runtime, mechanism) as the samples saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundarySummary {
    pub caller: Runtime,
    /// `unknown` when glue was sampled with no callee on the stack and no other
    /// boundary with the same caller and mechanism to give it to.
    pub callee: Runtime,
    pub mechanism: Mechanism,
    /// Samples whose stack passes through this boundary.
    pub samples: u64,
    /// Samples on CPU in this boundary's glue (and in kernel code the glue called).
    pub glue_samples: u64,
    /// `glue_samples / samples` of the whole profile: the share of the target's CPU
    /// time spent in this boundary's glue.
    pub glue_cpu_share: f64,
    /// How many crossings there were while seam's probes were armed (see
    /// `armed_at_ns`), or extrapolated over the recording; `null` when not counted
    /// (`--crossings sampled`, or no probe could be placed for this boundary).
    pub crossings: Option<u64>,
    /// `exact`, `extrapolated` or `none`: how `crossings` was obtained.
    pub crossings_method: CrossingsMethod,
    /// One standard error of an extrapolated `crossings` (0 when exact).
    pub crossings_error: u64,
    /// Crossings per second over the time they were counted (from `armed_at_ns` to the end).
    pub crossings_per_s: Option<f64>,
    /// When counting began, CLOCK_MONOTONIC ns (the clock of `start_ns`).
    pub armed_at_ns: Option<u64>,
    /// Crossings by the function that carries them.
    pub functions: BTreeMap<String, u64>,
    /// On-CPU glue time per crossing, ns (samples in the probes' own breakpoint
    /// handling are not glue time: see `probe_overhead`).
    pub glue_ns_per_crossing: Option<f64>,
    /// One standard error of `glue_ns_per_crossing`: the glue samples' counting
    /// noise, and the crossings' error where they were extrapolated (in a tight
    /// loop under a budget that can be larger than the figure).
    #[serde(default)]
    pub glue_ns_error: Option<f64>,
    /// Time off CPU while in this boundary's glue, ms.
    pub off_cpu_ms: f64,
    /// Context switches while in this boundary's glue.
    pub context_switches: Switches,
    /// Off-CPU ms by cause: `gil`, `go-p-handoff`, `needm`, `runtime-start`, `lock`,
    /// `io`, `sleep`, `preempted`, `other`.
    pub causes: BTreeMap<String, f64>,
}

/// Boundaries with an unknown callee (glue on CPU with no callee on the stack) go to
/// the boundaries with the same caller and mechanism: all to the one there is, or
/// shared in proportion to their crossings (their samples when not counted).
fn merge_boundaries(boundaries: &[Boundary]) -> Vec<Boundary> {
    let mut out: Vec<Boundary> = boundaries
        .iter()
        .filter(|b| b.callee != Runtime::Unknown)
        .cloned()
        .collect();
    for pending in boundaries.iter().filter(|b| b.callee == Runtime::Unknown) {
        let same: Vec<usize> = (0..out.len())
            .filter(|&i| out[i].caller == pending.caller && out[i].mechanism == pending.mechanism)
            .collect();
        let weight = |b: &Boundary| b.crossings.unwrap_or(0) as f64;
        let counted = same.iter().all(|&i| out[i].crossings.is_some());
        let weights: Vec<f64> = same
            .iter()
            .map(|&i| {
                if counted {
                    weight(&out[i])
                } else {
                    out[i].samples as f64
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        if same.is_empty() || total <= 0.0 {
            out.push(pending.clone());
            continue;
        }
        let part = |n: u64, w: f64| (n as f64 * w / total).round() as u64;
        for (&i, &w) in same.iter().zip(&weights) {
            let b = &mut out[i];
            b.samples += part(pending.samples, w);
            b.glue_samples += part(pending.glue_samples, w);
            b.off_cpu_ns += part(pending.off_cpu_ns, w);
            b.switches.voluntary += part(pending.switches.voluntary, w);
            b.switches.involuntary += part(pending.switches.involuntary, w);
            for (cause, &ns) in &pending.causes {
                *b.causes.entry(cause.clone()).or_default() += part(ns, w);
            }
        }
    }
    out
}

/// The samples of one runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeSamples {
    /// Samples whose leaf frame (the one on CPU) belongs to the runtime: its self time.
    /// These add up to `samples` over all runtimes; a stack with no frames counts as
    /// `unknown`.
    #[serde(rename = "self")]
    pub self_samples: u64,
    /// Samples with at least one frame of the runtime anywhere on the stack: its total time.
    /// A stack counts once per runtime however many of its frames belong to it.
    pub total: u64,
}

/// One stack and its samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackSummary {
    /// Samples of this stack.
    pub count: u64,
    /// True when the stack reaches the thread's root with no gap.
    pub complete: bool,
    /// Root first. Each frame has `name` and `runtime`, and where known `module` (the ELF
    /// file name, native frames), `file` and `line` (source position; for Python frames the
    /// file as the interpreter reports it).
    pub frames: Vec<Frame>,
}

/// One sampled thread.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSummary {
    /// The thread id (as the kernel numbers it, system-wide).
    pub tid: u32,
    /// The thread's name (`comm`), empty when unknown.
    pub name: String,
    /// On-CPU samples of this thread.
    pub samples: u64,
}

impl Summary {
    /// Self time of a runtime as a share of all samples, from 0 to 1.
    pub fn self_share(&self, runtime: Runtime) -> f64 {
        share(
            self.runtimes.get(&runtime).map_or(0, |r| r.self_samples),
            self.samples,
        )
    }

    /// Total time of a runtime as a share of all samples, from 0 to 1.
    pub fn total_share(&self, runtime: Runtime) -> f64 {
        share(
            self.runtimes.get(&runtime).map_or(0, |r| r.total),
            self.samples,
        )
    }
}

/// One standard error of glue ns per crossing (`glue` samples of `ns_per_sample`
/// each over `crossings` ± `crossings_error`): Poisson noise on the samples (as
/// if one where there are none) and the crossings' relative error, added in
/// quadrature.
fn glue_ns_error(glue: u64, ns_per_sample: f64, crossings: u64, crossings_error: u64) -> f64 {
    let c = crossings.max(1) as f64;
    let value = glue as f64 * ns_per_sample / c;
    let counting = (glue.max(1) as f64).sqrt() * ns_per_sample / c;
    let extrapolating = value * crossings_error as f64 / c;
    counting.hypot(extrapolating)
}

/// Glue ns per crossing as the tables show it: `-` when not known, the figure
/// alone when its error is within 10%, `<E` when no glue was sampled, else
/// `~N ±E%`.
pub fn glue_ns_text(ns: Option<f64>, error: Option<f64>) -> String {
    match (ns, error) {
        (None, _) => "-".to_string(),
        (Some(n), Some(e)) if n <= 0.0 && e > 0.0 => format!("<{}", thousands(e.round() as u64)),
        (Some(n), Some(e)) if e > 0.1 * n => {
            let pct = if n > 0.0 { 100.0 * e / n } else { 999.0 };
            format!("~{} ±{:.0}%", thousands(n.round() as u64), pct.min(999.0))
        }
        (Some(n), _) => thousands(n.round() as u64),
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Summarizes a profile, listing its `top_stacks` heaviest stacks.
pub fn summarize(profile: &Profile, top_stacks: usize) -> Summary {
    let mut runtimes: BTreeMap<Runtime, RuntimeSamples> = Runtime::ALL
        .into_iter()
        .map(|r| (r, RuntimeSamples::default()))
        .collect();
    for (stack, &count) in profile.stacks.iter().zip(&profile.counts) {
        if count == 0 {
            continue;
        }
        let leaf = stack
            .frames
            .last()
            .map_or(Runtime::Unknown, |&h| profile.frame(h).runtime);
        runtimes.entry(leaf).or_default().self_samples += count;
        let mut seen = [false; Runtime::ALL.len()];
        if stack.frames.is_empty() {
            seen[Runtime::Unknown as usize] = true;
        }
        for &h in &stack.frames {
            seen[profile.frame(h).runtime as usize] = true;
        }
        for runtime in Runtime::ALL {
            if seen[runtime as usize] {
                runtimes.entry(runtime).or_default().total += count;
            }
        }
    }

    let stacks = profile
        .stacks_by_weight()
        .into_iter()
        .take(top_stacks)
        .map(|(h, count)| {
            let stack = profile.stack(h);
            StackSummary {
                count,
                complete: stack.complete,
                frames: stack
                    .frames
                    .iter()
                    .map(|&f| profile.frame(f).clone())
                    .collect(),
            }
        })
        .collect();

    let mut threads: Vec<ThreadSummary> = profile
        .threads
        .iter()
        .map(|(&tid, t)| ThreadSummary {
            tid,
            name: t.name.clone(),
            samples: t.samples,
        })
        .collect();
    threads.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.tid.cmp(&b.tid)));

    let samples = profile.samples();
    let complete_stacks = profile.complete_samples();
    let ns_per_sample = 1e9 / profile.rate_hz.max(1) as f64;
    let end_ns = profile.start_ns + (profile.duration_s * 1e9) as u64;
    let mut boundaries: Vec<BoundarySummary> = merge_boundaries(&profile.boundaries)
        .into_iter()
        .map(|b| {
            let counted = b.crossings.filter(|&c| c > 0);
            let window_s = match (b.crossings_method, b.armed_at_ns) {
                (CrossingsMethod::Extrapolated, Some(at)) | (CrossingsMethod::Exact, Some(at)) => {
                    end_ns.saturating_sub(at) as f64 / 1e9
                }
                _ => profile.duration_s,
            };
            BoundarySummary {
                caller: b.caller,
                callee: b.callee,
                mechanism: b.mechanism,
                samples: b.samples,
                glue_samples: b.glue_samples,
                glue_cpu_share: share(b.glue_samples, samples),
                crossings: b.crossings,
                crossings_method: b.crossings_method,
                crossings_error: b.crossings_error,
                crossings_per_s: b
                    .crossings
                    .filter(|_| window_s > 0.0)
                    .map(|c| c as f64 / window_s),
                armed_at_ns: b.armed_at_ns,
                functions: b.functions.clone(),
                glue_ns_per_crossing: counted
                    .map(|c| b.glue_samples as f64 * ns_per_sample / c as f64),
                glue_ns_error: counted
                    .map(|c| glue_ns_error(b.glue_samples, ns_per_sample, c, b.crossings_error)),
                off_cpu_ms: b.off_cpu_ns as f64 / 1e6,
                context_switches: b.switches,
                causes: b
                    .causes
                    .iter()
                    .map(|(k, ns)| (k.clone(), *ns as f64 / 1e6))
                    .collect(),
            }
        })
        .collect();
    boundaries.sort_by(|a, b| {
        b.samples
            .cmp(&a.samples)
            .then(a.mechanism.cmp(&b.mechanism))
    });
    Summary {
        format_version: SUMMARY_FORMAT_VERSION,
        samples,
        lost: profile.lost.total(),
        lost_detail: profile.lost,
        complete_stacks,
        complete_share: share(complete_stacks, samples),
        duration_s: profile.duration_s,
        rate_hz: profile.rate_hz,
        target: profile.target.clone(),
        runtimes,
        stacks,
        threads,
        problems: profile.problems.clone(),
        boundaries,
        probe_overhead: profile.probe_overhead.clone(),
        sampling_overhead: profile.sampling_overhead.clone(),
        start_ns: profile.start_ns,
        off_cpu_ms: profile.off_cpu_ns.iter().sum::<u64>() as f64 / 1e6,
        context_switches: profile.switch_counts.iter().sum(),
        child_processes: profile.child_processes.clone(),
    }
}

/// Writes the summary as pretty-printed JSON, ending with a newline.
pub fn write_summary_json(summary: &Summary, out: &mut impl io::Write) -> Result<(), ExportError> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Writes a short human summary, the kind `seam record` ends with: samples, losses,
/// complete-stack share, and self and total time per runtime.
pub fn print_summary(summary: &Summary, out: &mut impl io::Write) -> Result<(), ExportError> {
    let command = summary.target.command.join(" ");
    write!(
        out,
        "{} samples in {:.1} s at {} Hz",
        thousands(summary.samples),
        summary.duration_s,
        summary.rate_hz
    )?;
    match (summary.target.pid, command.is_empty()) {
        (0, true) => writeln!(out)?,
        (0, false) => writeln!(out, " from {command}")?,
        (pid, true) => writeln!(out, " from pid {pid}")?,
        (pid, false) => writeln!(out, " from pid {pid} ({command})")?,
    }
    writeln!(
        out,
        "lost:            {} (kernel {}, seam {})",
        thousands(summary.lost),
        thousands(summary.lost_detail.kernel),
        thousands(summary.lost_detail.seam)
    )?;
    writeln!(out, "complete stacks: {}", percent(summary.complete_share))?;
    writeln!(out, "{:<9}{:>8}{:>8}", "runtime", "self", "total")?;
    for runtime in Runtime::ALL {
        writeln!(
            out,
            "{:<9}{:>8}{:>8}",
            runtime.as_str(),
            percent(summary.self_share(runtime)),
            percent(summary.total_share(runtime))
        )?;
    }
    if !summary.boundaries.is_empty() {
        writeln!(
            out,
            "{:<20}{:<11}{:>8}{:>9}{:>18}{:>16}{:>10}{:>9}",
            "boundary",
            "mechanism",
            "through",
            "glue CPU",
            "crossings/s",
            "glue ns/x",
            "off-CPU",
            "switches"
        )?;
        for b in &summary.boundaries {
            let rate = match (b.crossings_per_s, b.crossings_method) {
                // Extrapolated over the budget's gaps: with its error, which
                // in a tight loop of calls can be larger than the figure.
                (Some(r), CrossingsMethod::Extrapolated) => {
                    let error = b
                        .crossings
                        .filter(|&c| c > 0)
                        .map_or(0.0, |c| b.crossings_error as f64 / c as f64);
                    format!(
                        "~{} ±{:.0}%",
                        thousands(r.round() as u64),
                        (error * 100.0).min(999.0)
                    )
                }
                (Some(r), _) => thousands(r.round() as u64),
                (None, _) => "-".to_string(),
            };
            writeln!(
                out,
                "{:<20}{:<11}{:>8}{:>9}{:>18}{:>16}{:>10}{:>9}",
                format!("{} -> {}", b.caller, b.callee),
                b.mechanism.as_str(),
                percent(share(b.samples, summary.samples)),
                percent(b.glue_cpu_share),
                rate,
                glue_ns_text(b.glue_ns_per_crossing, b.glue_ns_error),
                format!("{:.0} ms", b.off_cpu_ms),
                thousands(b.context_switches.total()),
            )?;
        }
        let guessed: Vec<String> = summary
            .boundaries
            .iter()
            .filter(|b| b.crossings_method == CrossingsMethod::Extrapolated)
            .filter(|b| {
                b.crossings
                    .is_some_and(|c| b.crossings_error as f64 > GUESSED * c as f64)
            })
            .map(|b| format!("{} -> {} {}", b.caller, b.callee, b.mechanism.as_str()))
            .collect();
        if !guessed.is_empty() {
            writeln!(
                out,
                "guessed counts:  {} (±{:.0}% or more)",
                guessed.join(", "),
                GUESSED * 100.0
            )?;
            writeln!(
                out,
                "                 too few of their calls were counted to know the rest (loops of calls \
                 cheaper than a probe's trap): a larger --overhead-budget counts more, none every one"
            )?;
        }
        if let Some(p) = &summary.probe_overhead {
            writeln!(
                out,
                "probes:          {} hits, {} of the target's CPU or more ({:.1} µs a hit{}), armed {} of the time{}",
                thousands(p.hits),
                percent(p.share),
                p.ns_per_hit / 1e3,
                if p.cost_ns > p.calibrated_cost_ns {
                    format!(
                        " as its samples in the traps show; {:.1} µs calibrated",
                        p.calibrated_cost_ns as f64 / p.hits.max(1) as f64 / 1e3
                    )
                } else {
                    String::new()
                },
                percent(p.armed_share),
                p.budget.map_or(String::new(), |b| format!(", budget {}", percent(b)))
            )?;
            if p.budget.is_some_and(|b| p.share > OVER_BUDGET * b) {
                let why = if p.via == "perf" {
                    "a probe traps until the kernel has closed its events (60-100 ms each, one at a \
                     time), and the calls came faster than that"
                } else {
                    "the calls came in a burst quicker than seam's check of the budget (every 10 ms \
                     or so)"
                };
                writeln!(
                    out,
                    "                 over the budget: {why}; --crossings sampled adds nothing to the \
                     target"
                )?;
            }
            if !p.go_counted.is_empty() {
                writeln!(
                    out,
                    "                 go -> c counted by the Go runtime itself in {}",
                    p.go_counted.join(", ")
                )?;
            }
            for (module, why) in &p.go_uncounted {
                writeln!(
                    out,
                    "                 go -> c in {module} counted by probes only: {why}"
                )?;
            }
        }
    }
    if let Some(s) = &summary.sampling_overhead {
        writeln!(
            out,
            "sampling:        {} of the target's CPU or more ({:.1} µs a sample, calibrated){}",
            percent(s.share),
            s.ns_per_sample / 1e3,
            match (s.over_budget, s.rate_fits_hz) {
                (true, Some(r)) => format!(", over the budget on its own: --rate {r} fits"),
                _ => String::new(),
            }
        )?;
        if s.switch_stacks_paused > 0.0 {
            writeln!(
                out,
                "                 switch-outs' stacks not taken {} of the time, to keep sampling within \
                 the budget (each switch-out given its thread's latest stack; \
                 --off-cpu every takes them all)",
                percent(s.switch_stacks_paused)
            )?;
        }
    }
    if summary.sampling_overhead.is_some() || summary.probe_overhead.is_some() {
        // Measured against unprofiled runs, the target slows by 1.5-3x these
        // (README, *Overhead budget*): what its own code loses afterwards is
        // in no figure seam has.
        writeln!(
            out,
            "                 (not counted: what the target's code loses refilling its caches after each)"
        )?;
    }
    if !summary.problems.is_empty() {
        let mut problems: Vec<_> = summary.problems.iter().collect();
        problems.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = problems
            .iter()
            .take(3)
            .map(|(what, n)| format!("{what} ({})", thousands(**n)))
            .collect();
        let more = problems.len().saturating_sub(3);
        write!(out, "problems:        {}", shown.join(", "))?;
        if more > 0 {
            write!(out, ", and {more} more in summary.json")?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// `0.1234` -> `"12.3%"`.
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// `1234567` -> `"1,234,567"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::ThreadInfo;

    /// A stack as (frames as (name, runtime), complete, count).
    type StackSpec<'a> = (&'a [(&'a str, Runtime)], bool, u64);

    /// Thread 1 gets all the samples.
    fn profile(stacks: &[StackSpec]) -> Profile {
        let mut p = Profile::default();
        for (frames, complete, count) in stacks {
            let frames = frames
                .iter()
                .map(|&(n, r)| p.intern_frame(Frame::new(n, r)))
                .collect();
            let s = p.intern_stack(frames, *complete);
            p.add_samples(s, 1, *count);
        }
        p
    }

    fn self_total(s: &Summary) -> Vec<(Runtime, u64, u64)> {
        s.runtimes
            .iter()
            .map(|(&r, x)| (r, x.self_samples, x.total))
            .collect()
    }

    #[test]
    fn runtimes_count_self_at_the_leaf_and_total_once_per_stack() {
        use Runtime::*;
        // python -> glue -> go -> glue -> rust, with glue and python each twice on one stack.
        let crossing: &[(&str, Runtime)] = &[
            ("_start", C),
            ("main", Python),
            ("ffi_call", Glue),
            ("main.work", Go),
            ("crosscall2", Glue),
            ("rs_hash", Rust),
        ];
        let callback: &[(&str, Runtime)] = &[
            ("_start", C),
            ("main", Python),
            ("ffi_call", Glue),
            ("cb", Python),
            ("do_syscall_64", Kernel),
        ];
        let p = profile(&[
            (crossing, true, 5),
            (callback, false, 3),
            (&[("[truncated]", Unknown)], false, 2),
            (&[], false, 1),
        ]);
        let s = summarize(&p, DEFAULT_TOP_STACKS);
        assert_eq!(
            self_total(&s),
            vec![
                (Python, 0, 8),
                (C, 0, 8),
                (Go, 0, 5),
                (Rust, 5, 5),
                (Kernel, 3, 3),
                (Glue, 0, 8),
                (Unknown, 3, 3),
            ]
        );
        assert_eq!(
            s.runtimes.values().map(|r| r.self_samples).sum::<u64>(),
            s.samples
        );
        assert_eq!((s.samples, s.complete_stacks), (11, 5));
        assert!((s.complete_share - 5.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn top_stacks_are_heaviest_first_and_capped() {
        use Runtime::*;
        let p = profile(&[
            (&[("a", C)], true, 1),
            (&[("b", Go)], true, 9),
            (&[("c", Rust)], false, 4),
            (&[("d", Rust)], false, 4),
            (&[("e", Rust)], false, 0),
        ]);
        let cases: [(usize, &[(&str, u64)]); 4] = [
            (0, &[]),
            (1, &[("b", 9)]),
            (3, &[("b", 9), ("c", 4), ("d", 4)]),
            (50, &[("b", 9), ("c", 4), ("d", 4), ("a", 1)]),
        ];
        for (top, want) in cases {
            let s = summarize(&p, top);
            let got: Vec<(&str, u64)> = s
                .stacks
                .iter()
                .map(|st| (st.frames[0].name.as_str(), st.count))
                .collect();
            assert_eq!(got, want, "top {top}");
        }
        assert!(!summarize(&p, 2).stacks[1].complete);
    }

    #[test]
    fn empty_profile_summarizes_to_zeros() {
        let s = summarize(&Profile::default(), DEFAULT_TOP_STACKS);
        assert_eq!(
            (s.samples, s.lost, s.complete_stacks, s.complete_share),
            (0, 0, 0, 0.0)
        );
        assert_eq!(s.runtimes.len(), Runtime::ALL.len());
        assert!(s.runtimes.values().all(|r| *r == RuntimeSamples::default()));
        assert!(s.stacks.is_empty() && s.threads.is_empty() && s.problems.is_empty());
        assert_eq!(s.self_share(Runtime::Go), 0.0);
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let mut p = profile(&[(
            &[("_start", Runtime::C), ("main.main", Runtime::Go)],
            true,
            3,
        )]);
        p.target = Target {
            pid: 42,
            command: vec!["./app".into(), "-n".into()],
        };
        p.rate_hz = 99;
        p.duration_s = 2.5;
        p.lost = Lost { kernel: 2, seam: 1 };
        p.threads.insert(
            7,
            ThreadInfo {
                name: "worker".into(),
                ..ThreadInfo::default()
            },
        );
        p.threads.get_mut(&1).unwrap().name = "main".into();
        p.note_problem("python frames unreadable");
        let s = summarize(&p, 1);
        let mut out = Vec::new();
        write_summary_json(&s, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["lost"], 3);
        assert_eq!(
            v["lost_detail"],
            serde_json::json!({"kernel": 2, "seam": 1})
        );
        assert_eq!(v["complete_share"], 1.0);
        assert_eq!(
            v["target"],
            serde_json::json!({"pid": 42, "command": ["./app", "-n"]})
        );
        let keys: Vec<&str> = v["runtimes"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["c", "glue", "go", "kernel", "python", "rust", "unknown"]
        );
        assert_eq!(
            v["runtimes"]["go"],
            serde_json::json!({"self": 3, "total": 3})
        );
        assert_eq!(
            v["stacks"][0],
            serde_json::json!({"count": 3, "complete": true, "frames": [
                {"name": "_start", "runtime": "c"}, {"name": "main.main", "runtime": "go"}]})
        );
        assert_eq!(
            v["threads"],
            serde_json::json!([{"tid": 1, "name": "main", "samples": 3}, {"tid": 7, "name": "worker", "samples": 0}])
        );
        assert_eq!(
            v["problems"],
            serde_json::json!({"python frames unreadable": 1})
        );
        let back: Summary = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn human_summary_is_a_compact_table() {
        use Runtime::*;
        let mut p = profile(&[
            (
                &[("_start", C), ("main", Python), ("ffi_call", Glue)],
                true,
                3,
            ),
            (&[("_start", C), ("main", Python)], false, 1),
        ]);
        p.target = Target {
            pid: 42,
            command: vec!["python3".into(), "chain.py".into()],
        };
        p.rate_hz = 99;
        p.duration_s = 1.25;
        p.lost = Lost {
            kernel: 1200,
            seam: 3,
        };
        for (what, n) in [("a", 1), ("b", 5), ("c", 2), ("d", 2)] {
            p.problems.insert(what.into(), n);
        }
        let mut out = Vec::new();
        print_summary(&summarize(&p, 0), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
4 samples in 1.2 s at 99 Hz from pid 42 (python3 chain.py)
lost:            1,203 (kernel 1,200, seam 3)
complete stacks: 75.0%
runtime      self   total
python      25.0%  100.0%
c            0.0%  100.0%
go           0.0%    0.0%
rust         0.0%    0.0%
kernel       0.0%    0.0%
glue        75.0%   75.0%
unknown      0.0%    0.0%
problems:        b (5), c (2), d (2), and 1 more in summary.json
"
        );
    }

    /// A count extrapolated over the budget's gaps shows as such, with its
    /// error; an exact one plainly.
    #[test]
    fn extrapolated_crossings_print_with_their_error() {
        use Runtime::*;
        let mut p = profile(&[(
            &[("main", Python), ("ffi_call", Glue), ("work", C)],
            true,
            4,
        )]);
        p.duration_s = 2.0;
        let b = p.boundary_mut(Python, C, Mechanism::Ctypes);
        (b.samples, b.glue_samples) = (4, 1);
        (b.crossings, b.crossings_error) = (Some(20_000), 5_000);
        b.crossings_method = CrossingsMethod::Extrapolated;
        let b = p.boundary_mut(Python, Go, Mechanism::Ctypes);
        b.crossings = Some(3_000);
        b.crossings_method = CrossingsMethod::Exact;
        let mut out = Vec::new();
        print_summary(&summarize(&p, 0), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
                .to_string()
        };
        assert!(row("python -> c ").contains("~10,000 ±25%"), "{text}");
        let go = row("python -> go ");
        assert!(go.contains(" 1,500") && !go.contains('±'), "{text}");
    }

    /// Glue ns per crossing carries the glue samples' noise and the
    /// crossings' error, and the tables show it where it is over 10%.
    #[test]
    fn glue_ns_per_crossing_has_its_error() {
        // 100 samples of 1 ms over 1,000,000 exact crossings: 100 ns ± 10%.
        let e = glue_ns_error(100, 1e6, 1_000_000, 0);
        assert!((e - 10.0).abs() < 1e-9, "{e}");
        // Extrapolated ± 100%: the error is the figure's own size, and more.
        let e = glue_ns_error(100, 1e6, 1_000_000, 1_000_000);
        assert!((e - 10.0f64.hypot(100.0)).abs() < 1e-9, "{e}");
        // No glue sampled: under one sample's worth.
        assert_eq!(glue_ns_error(0, 1e6, 1_000, 0), 1_000.0);
        assert_eq!(glue_ns_text(Some(100.0), Some(10.0)), "100");
        assert_eq!(glue_ns_text(Some(100.0), Some(100.5)), "~100 ±100%");
        assert_eq!(glue_ns_text(Some(0.0), Some(1_000.0)), "<1,000");
        assert_eq!(
            glue_ns_text(Some(52_052_052.0), Some(1e9)),
            "~52,052,052 ±999%"
        );
        assert_eq!(glue_ns_text(None, None), "-");
    }

    /// seam's figures for its own cost are what it can measure, a floor: the
    /// summary says so, and what they leave out.
    #[test]
    fn seams_own_cost_prints_as_a_floor() {
        let mut p = profile(&[(&[("main", Runtime::C)], true, 4)]);
        p.sampling_overhead = Some(SamplingOverhead {
            ns_per_sample: 12_300.0,
            share: 0.01,
            ..Default::default()
        });
        let mut out = Vec::new();
        print_summary(&summarize(&p, 0), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "sampling:        1.0% of the target's CPU or more (12.3 µs a sample, calibrated)"
            ),
            "{text}"
        );
        assert!(
            text.contains("not counted: what the target's code loses"),
            "{text}"
        );
        // Without figures of its own cost, no note about them.
        let mut out = Vec::new();
        let p = profile(&[(&[("main", Runtime::C)], true, 4)]);
        print_summary(&summarize(&p, 0), &mut out).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("not counted"));
    }

    #[test]
    fn the_go_modules_counted_by_their_runtime_are_named() {
        let mut p = profile(&[(&[("main", Runtime::C)], true, 4)]);
        p.boundary_mut(Runtime::Go, Runtime::C, Mechanism::CgoCall)
            .samples = 4;
        p.probe_overhead = Some(ProbeOverhead {
            hits: 10,
            go_counted: vec!["libffibgo.so".into()],
            go_uncounted: [(
                "libstripped.so".to_string(),
                "no symbol runtime.allm (stripped?)".to_string(),
            )]
            .into(),
            ..Default::default()
        });
        let mut out = Vec::new();
        print_summary(&summarize(&p, 0), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("go -> c counted by the Go runtime itself in libffibgo.so"),
            "{text}"
        );
        assert!(
            text.contains("go -> c in libstripped.so counted by probes only: no symbol runtime.allm (stripped?)"),
            "{text}"
        );
    }

    /// A count whose error is more than half of it says what would count
    /// more of its calls; one known better says nothing.
    #[test]
    fn guessed_counts_say_what_would_count_more() {
        let text = |crossings: u64, error: u64| {
            let mut p = profile(&[(&[("main", Runtime::C)], true, 4)]);
            let b = p.boundary_mut(Runtime::Python, Runtime::C, Mechanism::Ctypes);
            b.samples = 4;
            b.crossings = Some(crossings);
            b.crossings_error = error;
            b.crossings_method = CrossingsMethod::Extrapolated;
            let mut out = Vec::new();
            print_summary(&summarize(&p, 0), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let guessed = text(1_000_000, 7_000_000);
        assert!(
            guessed.contains("guessed counts:  python -> c ctypes (±50% or more)")
                && guessed.contains("a larger --overhead-budget counts more, none every one"),
            "{guessed}"
        );
        assert!(!text(1_000_000, 300_000).contains("guessed counts"));
    }

    #[test]
    fn probes_far_over_the_budget_say_why() {
        let text = |share: f64, via: &str| {
            let mut p = profile(&[(&[("main", Runtime::C)], true, 4)]);
            p.boundary_mut(Runtime::Python, Runtime::Rust, Mechanism::Pyo3)
                .samples = 4;
            p.probe_overhead = Some(ProbeOverhead {
                hits: 64_000,
                share,
                budget: Some(0.03),
                armed_share: 0.7,
                via: via.to_string(),
                ..Default::default()
            });
            let mut out = Vec::new();
            print_summary(&summarize(&p, 0), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        // A duty cycle hovers around its budget: nothing to explain.
        assert!(!text(0.035, "bpf").contains("over the budget"));
        let over = text(0.417, "perf");
        assert!(over.contains("41.7% of the target's CPU or more"), "{over}");
        assert!(
            over.contains("over the budget: a probe traps until the kernel has closed its events"),
            "{over}"
        );
        // BPF links leave the target as they are closed: only a burst
        // between two checks of the budget goes over it.
        let over = text(0.09, "bpf");
        assert!(
            over.contains("over the budget: the calls came in a burst quicker than"),
            "{over}"
        );
    }

    #[test]
    fn thousands_separators() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (123456, "123,456"),
            (1234567, "1,234,567"),
        ];
        for (n, want) in cases {
            assert_eq!(thousands(n), want);
        }
    }
}
