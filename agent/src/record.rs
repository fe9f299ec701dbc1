//! One recording: attach or launch, sample until the duration ends, the
//! target exits or the caller asks to stop, then return the profile.

use crate::launch::Child;
use linux_perf_event_reader::{ContextSwitchRecord, EventRecord, RawEventRecord, TaskWasPreempted};
use seam_profiler::converter::{Converter, SampleEvent, SwitchOut};
use seam_profiler::memory::ProcessMemory;
use seam_profiler::modules::Mapping;
pub use seam_profiler::perf::monotonic_ns;
use seam_profiler::perf::{
    measure_sample_cost, Sampler, SamplerOptions, CALIBRATION_STACK_BYTES, REG_BP, REG_IP, REG_SP,
};
use seam_profiler::probes::{ProbeOptions, Prober, Sightings, ThreadSamples, Tick, Votes};
pub use seam_profiler::probes::{BUDGET_SPENT, DEFAULT_BUDGET};
use seam_profiler::unwind::Regs;
use seam_profiler::Error;
use seam_proto::{ChildProcesses, Profile, SamplingOverhead};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to profile.
#[derive(Clone, Debug)]
pub enum TargetSpec {
    /// A running process.
    Pid(u32),
    /// A command to launch; sampling starts at its exec.
    Command(Vec<String>),
}

/// How to record.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordOptions {
    pub target: TargetSpec,
    /// Stop after this long; None records until the target exits or `stop` is set.
    pub duration: Option<Duration>,
    /// Samples per second per running thread. Default 999.
    pub frequency_hz: u32,
    /// Lower `frequency_hz` to the highest rate whose sampling fits its part
    /// of the budget when that is lower ([`rate_fitting_budget`]): for a rate
    /// the user did not choose. Default false.
    pub rate_follows_budget: bool,
    /// Set to stop the recording early (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// How to count crossings. Default: exact, within [`DEFAULT_BUDGET`].
    pub crossings: CrossingsMode,
    /// The budget of seam's perturbation as a share of the target's CPU
    /// (0.03 = 3%): sampling's measured cost comes first, the probes get what
    /// it leaves. None: no limit.
    pub overhead_budget: Option<f64>,
    /// What one sample costs the target, ns, when the caller already
    /// measured it ([`measure_sampling`]). Default None: measured at start.
    pub ns_per_sample: Option<f64>,
    /// Record context switches for off-CPU time. Default: sampled.
    pub off_cpu: OffCpuMode,
    /// Where a launched command's standard output and error go (appended to
    /// this file, its standard input then read from /dev/null), so that a
    /// full-screen view keeps the terminal. Default None: the command shares
    /// seam's terminal.
    pub command_output: Option<PathBuf>,
    /// When the recording ends (`stop` or `duration`) before a launched
    /// command does, end the command (SIGTERM, then SIGKILL after
    /// [`END_GRACE`]), as perf does with its workload: a command seam started
    /// is not left running on its own. Default true.
    pub end_command_on_stop: bool,
}

/// How long a launched command has to exit after SIGTERM (see
/// [`RecordOptions::end_command_on_stop`]).
pub const END_GRACE: Duration = Duration::from_secs(2);

/// How context switches are recorded. Every switch is timed; the modes differ
/// in which switch-outs have their stack taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffCpuMode {
    /// No context switches, no off-CPU time.
    Off,
    /// The stack of at most about `frequency_hz` switch-outs per thread and
    /// second; the others are given their thread's latest switch-out stack.
    Sampled,
    /// The stack of every switch-out: exact, but a program that switches tens
    /// of thousands of times a second pays for a stack copy each time.
    Every,
}

/// How crossings are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossingsMode {
    /// Uprobes on the functions that carry crossings (needs the uprobe PMU).
    Exact,
    /// Boundaries and their glue time from the samples only; no counts.
    Sampled,
    /// Plain stacks: no boundaries, no seams marked.
    Off,
}

impl RecordOptions {
    pub fn new(target: TargetSpec) -> RecordOptions {
        RecordOptions {
            target,
            duration: None,
            frequency_hz: 999,
            rate_follows_budget: false,
            stop: Arc::new(AtomicBool::new(false)),
            crossings: CrossingsMode::Exact,
            overhead_budget: Some(DEFAULT_BUDGET),
            ns_per_sample: None,
            off_cpu: OffCpuMode::Sampled,
            command_output: None,
            end_command_on_stop: true,
        }
    }
}

/// Status reported about once a second while recording.
#[derive(Clone, Debug)]
pub struct Progress {
    pub elapsed: Duration,
    pub samples: u64,
    pub lost: u64,
}

/// The result of a recording.
#[derive(Debug)]
pub struct Recording {
    pub profile: Profile,
    /// The exit status of a launched command, if it ended during the recording.
    pub exit_status: Option<i32>,
    /// The target ended before the duration did.
    pub target_exited: bool,
    /// Things the user should know (an unsupported Python, unreadable files).
    pub warnings: Vec<String>,
    /// CPU time seam itself used while recording, in seconds.
    pub seam_cpu_s: f64,
}

const POLL_MS: i32 = 10;
/// A switch-out sample and a switch-out record this close belong to one switch.
const SAME_SWITCH_NS: u64 = 100_000;
const PROBE_TICK: Duration = Duration::from_millis(100);
const READER_NICE: i32 = -10;
/// How often [`record_with_ticks`] hands out the profile so far.
pub const TICK: Duration = Duration::from_millis(250);

fn sampler_options(options: &RecordOptions) -> SamplerOptions {
    let mut sampler_options = SamplerOptions::default();
    sampler_options.frequency_hz = options.frequency_hz;
    sampler_options.switches = options.off_cpu != OffCpuMode::Off;
    sampler_options.every_switch = options.off_cpu == OffCpuMode::Every;
    sampler_options
}

/// Measures what one sample costs a thread of the target (about 0.5 s), and
/// what that makes at the rate and within the budget of `options`: see
/// [`sampling_overhead`]. For a caller that wants to say so before recording.
/// Meanwhile it starts what else a recording needs first, on a thread of its
/// own: the kernel's symbols, and the probes' calibration when crossings are
/// counted ([`seam_profiler::probes::hit_cost`]).
pub fn measure_sampling(options: &RecordOptions) -> Result<SamplingOverhead, Error> {
    // Meanwhile, on other cores: the probes' calibration and the kernel's symbols.
    let probes = options.crossings == CrossingsMode::Exact;
    std::thread::spawn(move || {
        seam_profiler::symbolize::KernelSymbols::shared();
        if probes {
            let _ = seam_profiler::probes::hit_cost();
        }
    });
    let ns = measure_sample_cost(&sampler_options(options))?;
    Ok(sampling_overhead(options, ns, None))
}

/// Sampling's cost at `ns_per_sample`: over the recording when `taken`
/// (samples on CPU, switch-outs with their stack) is given, else as expected
/// from the rate (each thread on CPU takes `frequency_hz` samples a second).
pub fn sampling_overhead(
    options: &RecordOptions,
    ns_per_sample: f64,
    taken: Option<(u64, u64)>,
) -> SamplingOverhead {
    let rate = options.frequency_hz.max(1) as f64;
    // A share of the target's CPU needs some CPU to be a share of: below a
    // tenth of a second of it, the estimate from the rate stands.
    let estimate = rate * ns_per_sample / 1e9;
    let (samples, cost_ns, share) = match taken {
        Some((on_cpu, switch_outs)) => {
            let n = on_cpu + switch_outs;
            let cost = n as f64 * ns_per_sample;
            let cpu = on_cpu as f64 * 1e9 / rate;
            (
                n,
                cost as u64,
                if cpu >= 1e8 { cost / cpu } else { estimate },
            )
        }
        None => (0, 0, estimate),
    };
    let fit = sampling_part(options);
    SamplingOverhead {
        ns_per_sample,
        calibration_stack_bytes: CALIBRATION_STACK_BYTES as u64,
        samples,
        cost_ns,
        share,
        budget: options.overhead_budget,
        // The share grows with the rate (switch-outs' stacks too are taken
        // at most `rate` a second per thread).
        rate_fits_hz: fit.map(|f| (rate * f / share.max(1e-9)).floor().min(1e6) as u32),
        over_budget: options.overhead_budget.is_some_and(|b| share > b),
        switch_stacks_paused: 0.0,
    }
}

/// The part of the budget the on-CPU samples' rate is fitted to: half of
/// what seam spends of it ([`BUDGET_SPENT`]) when crossings are counted or
/// switch-outs take their stack (the probes and the switch-outs' stacks
/// share the rest), all of that otherwise. None without a budget.
pub fn sampling_part(options: &RecordOptions) -> Option<f64> {
    let shared = options.crossings == CrossingsMode::Exact || options.off_cpu != OffCpuMode::Off;
    options
        .overhead_budget
        .map(|b| b * BUDGET_SPENT)
        .map(|b| if shared { b / 2.0 } else { b })
}

/// Takes the switch-outs' stacks only while sampling keeps within the
/// budget: a program that switches often (a thread pool waking its workers,
/// threads polling with short sleeps) pays a sample at each switch-out, up
/// to `frequency_hz` a second per thread on top of the on-CPU samples, which
/// the rate chosen at start cannot know of. Paused above the budget, taken
/// again below 90% of it (the on-CPU samples alone take about half).
#[derive(Default)]
struct SwitchStackValve {
    paused_since: Option<Instant>,
    paused: Duration,
}

impl SwitchStackValve {
    /// `taken`: samples so far on CPU and at switch-outs. The share is read
    /// from the first samples on (a program that mostly waits takes a second
    /// to use the tenth of a second of CPU that [`sampling_overhead`] waits for).
    fn update(
        &mut self,
        sampler: &mut Sampler,
        options: &RecordOptions,
        ns_per_sample: f64,
        (on_cpu, switch_outs): (u64, u64),
    ) {
        let Some(budget) = options.overhead_budget.map(|b| b * BUDGET_SPENT) else {
            return;
        };
        let cpu_ns = on_cpu.max(1) as f64 * 1e9 / options.frequency_hz.max(1) as f64;
        let share = (on_cpu + switch_outs) as f64 * ns_per_sample / cpu_ns;
        if share > budget && self.paused_since.is_none() {
            if sampler.pause_switch_stacks(true) {
                self.paused_since = Some(Instant::now());
            }
        } else if share < 0.9 * budget {
            if let Some(since) = self.paused_since.take() {
                sampler.pause_switch_stacks(false);
                self.paused += since.elapsed();
            }
        }
    }

    /// The share of `elapsed` spent paused.
    fn paused_share(&self, elapsed: Duration) -> f64 {
        let paused = self.paused + self.paused_since.map_or(Duration::ZERO, |s| s.elapsed());
        (paused.as_secs_f64() / elapsed.as_secs_f64().max(1e-9)).min(1.0)
    }
}

/// The rate to sample at instead of `options.frequency_hz`, when the
/// options let the budget choose it ([`RecordOptions::rate_follows_budget`])
/// and sampling at `frequency_hz` would not fit its part of the budget
/// ([`sampling_part`]): the highest rate that does, at least 1 Hz.
pub fn rate_fitting_budget(options: &RecordOptions, ns_per_sample: f64) -> Option<u32> {
    if !options.rate_follows_budget {
        return None;
    }
    let fits = sampling_overhead(options, ns_per_sample, None).rate_fits_hz?;
    (fits < options.frequency_hz).then_some(fits.max(1))
}

/// The converter's running counts at the prober's last tick, to hand it
/// what happened since.
#[derive(Default)]
struct TickCounters {
    /// The target's CPU time one sample stands for, and what one costs it.
    cpu_ns_per_sample: f64,
    ns_per_sample: f64,
    samples: u64,
    switch_outs: u64,
    traps: u64,
}

impl TickCounters {
    /// What happened since the last tick, for [`Prober::tick`].
    fn next<'a>(
        &mut self,
        votes: &'a Votes,
        sightings: &'a Sightings,
        threads: &'a ThreadSamples,
        converter: &'a Converter,
        switches: &Switches,
        now_ns: u64,
    ) -> Tick<'a> {
        let samples = converter.profile().samples() - self.samples;
        let switch_outs = switches.taken - self.switch_outs;
        let traps = converter.trap_samples() - self.traps;
        self.samples += samples;
        self.switch_outs += switch_outs;
        self.traps += traps;
        Tick {
            votes,
            sightings,
            space: converter.address_space(),
            target_cpu_ns: (samples as f64 * self.cpu_ns_per_sample) as u64,
            sampling_cost_ns: (samples + switch_outs) as f64 * self.ns_per_sample,
            trap_samples: traps,
            trap_cpu_ns: traps as f64 * self.cpu_ns_per_sample,
            threads,
            sample_ns: self.cpu_ns_per_sample,
            now_ns,
        }
    }
}

pub fn record(
    options: &RecordOptions,
    progress: impl FnMut(&Progress),
) -> Result<Recording, Error> {
    record_with_ticks(options, progress, |_| {})
}

/// [`record`], also handing the profile so far to `on_tick` about every
/// [`TICK`] (its duration set to the time recorded so far) and once at the
/// end, for streaming.
pub fn record_with_ticks(
    options: &RecordOptions,
    mut progress: impl FnMut(&Progress),
    mut on_tick: impl FnMut(&Profile),
) -> Result<Recording, Error> {
    let cpu_start = process_cpu_seconds();
    let own_nice = raise_reader_priority();
    let ns_per_sample = match options.ns_per_sample {
        Some(ns) => ns,
        None => measure_sampling(options)?.ns_per_sample,
    };
    let fitted;
    let options = match rate_fitting_budget(options, ns_per_sample) {
        Some(rate) => {
            fitted = RecordOptions {
                frequency_hz: rate,
                ..options.clone()
            };
            &fitted
        }
        None => options,
    };
    let sampler_options = sampler_options(options);
    let (pid, mut child, mut sampler, command) = match &options.target {
        TargetSpec::Pid(pid) => {
            let pid = *pid;
            let command = read_cmdline(pid).ok_or(Error::NoSuchProcess(pid))?;
            let mut sampler = Sampler::new(sampler_options, false)?;
            follow_all_threads(&mut sampler, pid)?;
            sampler.enable()?;
            (pid, None, sampler, command)
        }
        TargetSpec::Command(argv) => {
            let child = Child::spawn_paused(argv, options.command_output.as_deref(), own_nice)?;
            let mut sampler = Sampler::new(sampler_options, true)?;
            sampler.follow(child.pid, child.pid)?;
            (child.pid, Some(child), sampler, argv.clone())
        }
    };

    let mut converter = Converter::new(pid, Some(ProcessMemory { pid }));
    // A launched command has not exec'd yet: its mappings arrive as records, and
    // the converter reads /proc/PID/maps itself when a sample lands outside them.
    if child.is_none() {
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            converter.add_maps_text(&maps);
        }
    }
    // For seam's own tests: keep samples that cross Go's stack switches as fixtures.
    if let Some(dir) = std::env::var_os("SEAM_CAPTURE_FIXTURES") {
        converter.capture_fixtures(dir.into());
    }
    converter.profile_mut().target.command = command;
    converter.profile_mut().rate_hz = options.frequency_hz;
    let start_ns = monotonic_ns();
    converter.profile_mut().start_ns = start_ns;
    let mut warnings = Vec::new();
    // The prober measures its cost before a launched command runs, so that the
    // command's first libraries are probed as soon as they load.
    let mut prober = match options.crossings {
        CrossingsMode::Exact => {
            let mut probe_options = ProbeOptions::default();
            probe_options.budget = options.overhead_budget;
            match Prober::new(pid, probe_options, monotonic_ns()) {
                Ok(p) => Some(p),
                Err(e) => {
                    warnings.push(format!("crossings are not counted: {e}"));
                    None
                }
            }
        }
        CrossingsMode::Sampled => None,
        CrossingsMode::Off => {
            converter.without_boundaries();
            None
        }
    };
    if prober.is_some() {
        converter.keep_thread_samples();
    }
    if let Some(c) = &mut child {
        c.release();
    }
    let mut switches = Switches {
        ids: sampler.switch_ids(),
        ..Switches::default()
    };
    let mut last_probe_tick = Instant::now();
    let mut counters = TickCounters {
        cpu_ns_per_sample: 1e9 / options.frequency_hz.max(1) as f64,
        ns_per_sample,
        ..TickCounters::default()
    };

    let start = Instant::now();
    let mut valve = SwitchStackValve::default();
    let mut last_progress = Instant::now();
    let mut last_tick = Instant::now();
    let mut sites_known = 0;
    let mut exit_status = None;
    let mut target_exited = false;
    loop {
        sampler.wait(POLL_MS);
        let mut exited = false;
        sampler
            .drain(|r| exited |= handle_record(&mut converter, &mut prober, &mut switches, pid, r));
        switches.drained(&mut converter);
        if let Some(p) = &mut prober {
            let now = monotonic_ns();
            p.scan_modules(converter.address_space(), now);
            p.drain();
            let candidates = converter.take_candidates();
            if !candidates.is_empty() {
                p.add_candidates(converter.address_space(), &candidates, now);
            }
            if p.site_count() != sites_known {
                sites_known = p.site_count();
                converter.set_probe_resumes(p.resume_points());
                converter.set_probed_symbols(p.probed_symbols());
            }
            if last_probe_tick.elapsed() >= PROBE_TICK {
                last_probe_tick = Instant::now();
                let votes = converter.take_votes();
                let sightings = converter.take_sightings();
                let threads = converter.take_thread_samples();
                let tick = counters.next(&votes, &sightings, &threads, &converter, &switches, now);
                p.tick(&tick);
            }
        }
        let taken = (converter.samples(), switches.taken);
        valve.update(&mut sampler, options, ns_per_sample, taken);
        if let Some(c) = &mut child {
            if let Some(status) = c.try_wait() {
                exit_status = Some(status);
                exited = true;
            }
        } else if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            exited = true;
        }
        if exited {
            target_exited = true;
            break;
        }
        if options.stop.load(Ordering::Relaxed)
            || options.duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            converter.profile_mut().duration_s = start.elapsed().as_secs_f64();
            converter.profile_mut().seam_cpu_s = process_cpu_seconds() - cpu_start;
            let taken = Some((converter.profile().samples(), switches.taken));
            let mut sampling = sampling_overhead(options, ns_per_sample, taken);
            sampling.switch_stacks_paused = valve.paused_share(start.elapsed());
            converter.profile_mut().sampling_overhead = Some(sampling);
            if let Some(p) = &prober {
                p.publish(monotonic_ns(), converter.profile_mut());
            }
            on_tick(converter.profile());
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let p = converter.profile();
            progress(&Progress {
                elapsed: start.elapsed(),
                samples: p.samples(),
                lost: p.lost.total(),
            });
        }
    }
    sampler.disable();
    sampler.drain(|r| {
        handle_record(&mut converter, &mut prober, &mut switches, pid, r);
    });
    log::debug!(
        "context switches: {} with their own stack, {} given the thread's latest",
        switches.sampled,
        switches.proxied
    );
    if let Some(mut p) = prober.take() {
        let votes = converter.take_votes();
        let sightings = converter.take_sightings();
        let threads = converter.take_thread_samples();
        let now = monotonic_ns();
        p.finish(&counters.next(&votes, &sightings, &threads, &converter, &switches, now));
        p.publish(now, converter.profile_mut());
    }
    if let Some(c) = child.take() {
        if exit_status.is_none() {
            exit_status = c.try_wait();
        }
        if exit_status.is_none() && options.end_command_on_stop {
            exit_status = c.end(END_GRACE);
        }
    }
    let mut sampling = sampling_overhead(
        options,
        ns_per_sample,
        Some((converter.profile().samples(), switches.taken)),
    );
    sampling.switch_stacks_paused = valve.paused_share(start.elapsed());
    if sampling.over_budget {
        warnings.push(over_budget_warning(&sampling, options.frequency_hz));
    }
    converter.profile_mut().sampling_overhead = Some(sampling);
    warnings.extend(child_processes_warning(
        &converter.profile().child_processes,
    ));
    warnings.extend(converter.python_warning().map(str::to_string));
    warnings.extend(converter.unreadable_files());
    let mut profile = converter.into_profile();
    profile.duration_s = start.elapsed().as_secs_f64();
    profile.seam_cpu_s = process_cpu_seconds() - cpu_start;
    on_tick(&profile);
    Ok(Recording {
        profile,
        exit_status,
        target_exited,
        warnings,
        seam_cpu_s: process_cpu_seconds() - cpu_start,
    })
}

/// What to tell a user whose target started processes: they were not recorded.
pub fn child_processes_warning(children: &ChildProcesses) -> Option<String> {
    let first = *children.pids.first()?;
    let pids: Vec<String> = children.pids.iter().map(u32::to_string).collect();
    let more = if children.count > children.pids.len() as u64 {
        ", ..."
    } else {
        ""
    };
    Some(format!(
        "the target started {} process{} (pid {}{more}), not recorded: seam records one process \
         (`seam record --pid {first}` records one of them while it runs)",
        children.count,
        if children.count == 1 { "" } else { "es" },
        pids.join(", "),
    ))
}

/// What to tell a user whose budget sampling alone exceeds.
pub fn over_budget_warning(s: &SamplingOverhead, rate_hz: u32) -> String {
    format!(
        "sampling at {rate_hz} Hz costs the target about {:.1}% of its CPU ({:.0} µs a sample), \
         over the {:.1}% budget on its own{}",
        s.share * 100.0,
        s.ns_per_sample / 1e3,
        s.budget.unwrap_or(0.0) * 100.0,
        s.rate_fits_hz
            .map_or(String::new(), |r| format!("; --rate {r} or less fits it"))
    )
}

/// Opens events on every current thread of `pid`, again until no new thread
/// appears (threads created by followed threads are inherited from then on).
fn follow_all_threads(sampler: &mut Sampler, pid: u32) -> Result<(), Error> {
    let mut followed = std::collections::HashSet::new();
    loop {
        let tids = list_threads(pid).ok_or(Error::NoSuchProcess(pid))?;
        let new: Vec<u32> = tids.into_iter().filter(|t| !followed.contains(t)).collect();
        if new.is_empty() {
            return Ok(());
        }
        for tid in new {
            sampler.follow(tid, pid)?;
            followed.insert(tid);
        }
    }
}

/// Frames on the far side of a stack switch are read from the live process
/// after the sample, so the reader should run as soon as samples arrive, not
/// after the target's busy threads: seam takes [`READER_NICE`]. Best effort
/// (it needs CAP_SYS_NICE). Returns the niceness seam had, for a launched
/// command to run at: inheriting seam's, it took CPU from everything else
/// on the machine (beside an unprofiled run of itself on one CPU, over 80% of it).
fn raise_reader_priority() -> Option<i32> {
    // getpriority returns -1 for a niceness of -1 too: errno tells them apart.
    // SAFETY: errno is this thread's; getpriority and setpriority on our own
    // process have no memory-safety preconditions.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        if nice == -1 && *libc::__errno_location() != 0 {
            return None;
        }
        libc::setpriority(libc::PRIO_PROCESS, 0, READER_NICE);
        Some(nice)
    }
}

fn list_threads(pid: u32) -> Option<Vec<u32>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

/// Whether `pid` is a process seam can record, said before anything is
/// measured or opened: it exists, it is not a kernel thread (which has no
/// user space to sample), it has not exited, and it is not seam itself.
pub fn check_target_pid(pid: u32) -> Result<(), Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|_| Error::NoSuchProcess(pid))?;
    // `pid (comm) state ppid pgrp session tty_nr tpgid flags ...`; the comm
    // may hold spaces and parentheses.
    let (head, rest) = stat.rsplit_once(')').ok_or(Error::NoSuchProcess(pid))?;
    let comm = head.split_once('(').map_or("", |(_, c)| c);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    const PF_KTHREAD: u64 = 0x0020_0000;
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    if flags & PF_KTHREAD != 0 {
        return Err(Error::Unsupported(format!(
            "pid {pid} ({comm}) is a kernel thread: seam records user-space processes \
             (`perf record -g -p {pid}` samples a kernel thread)"
        )));
    }
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        // A leader that called `pthread_exit` is a zombie while its other
        // threads run on; the kernel refuses events on it.
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
        return Err(Error::Unsupported(if threads > 1 {
            format!(
                "pid {pid} ({comm}): its main thread has exited while its other threads run \
                 on, and seam cannot attach to such a process yet"
            )
        } else {
            format!(
                "pid {pid} ({comm}) has exited (its parent has not yet reaped it): nothing to record"
            )
        }));
    }
    if pid == std::process::id() {
        return Err(Error::Unsupported("seam cannot record itself".into()));
    }
    Ok(())
}

fn read_cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Feeds one record to the converter; true when it says the target exited.
/// Context switches in flight. The context-switch event samples a thread's
/// stack at some of its switch-outs (at most about the sampling rate); switch
/// records time every switch. Each time off CPU, from a switch-out record to
/// the next switch-in record, goes to the thread's latest sampled stack. The
/// rings are read one CPU after another, so a switch-in can be read before its
/// switch-out: either waits for the other.
#[derive(Default)]
struct Switches {
    ids: HashSet<u64>,
    /// The latest sampled switch-out stack of each thread, with its time and
    /// where it was (instruction, stack pointer, callchain length).
    #[allow(clippy::type_complexity)]
    stack: HashMap<u32, (SwitchOut, u64, Option<(u64, u64, usize)>)>,
    /// Switch-out samples taken (each copied a stack in the target).
    taken: u64,
    /// Switches whose own stack was sampled, and the others (given the latest sampled stack).
    sampled: u64,
    proxied: u64,
    /// A switch-out record waiting for its switch-in: (time, preempted).
    out: HashMap<u32, (u64, bool)>,
    /// A switch-in record read before its switch-out.
    early_in: HashMap<u32, u64>,
    /// Threads that exited, and the drain in which their exit was read: their
    /// state is forgotten once every ring has been read past it
    /// ([`Switches::drained`]).
    exited: Vec<(u32, u64)>,
    /// Full drains of the rings so far.
    drains: u64,
    /// Threads sampled so far, named from /proc if they had no name (see
    /// [`Switches::name_thread`]).
    named: HashSet<u32>,
    children: ChildForks,
}

/// The processes the target started since its latest exec, as their fork
/// records say: those the program before the exec started belong to a program
/// no longer there (pyenv's `python3` shim starts seven before it runs the
/// interpreter). Rings are read one CPU after another, so an exec can be read
/// before a fork that came first: each is kept with its time.
#[derive(Default)]
struct ChildForks {
    forks: Vec<(u32, u64)>,
    exec_ns: u64,
    /// Forks after the first [`ChildForks::KEPT`], counted without a time.
    beyond: u64,
}

impl ChildForks {
    const KEPT: usize = 4096;

    fn forked(&mut self, pid: u32, time_ns: u64, profile: &mut Profile) {
        if self.forks.len() < Self::KEPT {
            self.forks.push((pid, time_ns));
            if time_ns >= self.exec_ns {
                profile.child_processes.started(pid);
            }
        } else {
            self.beyond += 1;
            profile.child_processes.count += 1;
        }
    }

    /// An exec: the forks kept are counted again from it.
    fn exec(&mut self, time_ns: u64, profile: &mut Profile) {
        self.exec_ns = self.exec_ns.max(time_ns);
        let mut children = ChildProcesses::default();
        for &(pid, t) in &self.forks {
            if t >= self.exec_ns {
                children.started(pid);
            }
        }
        children.count += self.beyond;
        profile.child_processes = children;
    }
}

impl Switches {
    /// After each full drain of the rings: forgets the threads whose exit was
    /// read in the drain before this one, here and in `converter`. A record
    /// of theirs written before the exit, on another CPU's ring, may be read
    /// after it in the same drain or in the next, which reads every ring up to
    /// where the kernel had written when it began; none comes later. A
    /// program that starts a thread per request would otherwise grow seam's
    /// state by a thread's worth for each.
    fn drained(&mut self, converter: &mut Converter) {
        self.drains += 1;
        let drains = self.drains;
        self.exited.retain(|&(tid, read_in)| {
            if drains < read_in + 2 {
                return true;
            }
            self.stack.remove(&tid);
            self.out.remove(&tid);
            self.early_in.remove(&tid);
            self.named.remove(&tid);
            converter.thread_exited(tid);
            false
        });
    }

    /// Names a sampled thread that has no name yet, from /proc, once: the
    /// kernel says a thread's name only when it sets it (a comm record), not
    /// when it inherits it at its creation nor for the threads already there
    /// when seam attached, which were all shown unnamed.
    fn name_thread(&mut self, converter: &mut Converter, pid: u32, tid: u32) {
        // At every sample: one set lookup, and the rest at a thread's first.
        if !self.named.insert(tid) {
            return;
        }
        let unnamed = converter
            .profile()
            .threads
            .get(&tid)
            .is_some_and(|t| t.name.is_empty());
        if !unnamed {
            return;
        }
        if let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")) {
            converter.handle_comm(pid, tid, name.trim_end_matches('\n'));
        }
    }

    fn switched_out(&mut self, converter: &mut Converter, tid: u32, t: u64, preempted: bool) {
        match self.early_in.remove(&tid) {
            Some(t_in) if t_in >= t => self.off_cpu(converter, tid, t, t_in - t, preempted),
            _ => {
                self.out.insert(tid, (t, preempted));
            }
        }
    }

    fn switched_in(&mut self, converter: &mut Converter, tid: u32, t: u64) {
        match self.out.remove(&tid) {
            Some((t_out, preempted)) if t >= t_out => {
                self.off_cpu(converter, tid, t_out, t - t_out, preempted)
            }
            _ => {
                self.early_in.insert(tid, t);
            }
        }
    }

    fn off_cpu(
        &mut self,
        converter: &mut Converter,
        tid: u32,
        t_out: u64,
        ns: u64,
        preempted: bool,
    ) {
        let out = match self.stack.get(&tid) {
            Some((out, t_sample, _)) => {
                // The sample is taken just before its switch-out record, on the same CPU.
                if t_out.abs_diff(*t_sample) <= SAME_SWITCH_NS {
                    self.sampled += 1;
                } else {
                    self.proxied += 1;
                }
                *out
            }
            // No stack taken at any of its switch-outs yet: timed all the same.
            None => {
                self.proxied += 1;
                converter.switch_out_without_stack()
            }
        };
        converter.add_off_cpu(tid, &out, ns, preempted);
    }
}

fn handle_record(
    converter: &mut Converter,
    prober: &mut Option<Prober>,
    switches: &mut Switches,
    pid: u32,
    raw: &RawEventRecord,
) -> bool {
    let record = match raw.parse() {
        Ok(r) => r,
        Err(_) => {
            converter.drop_sample("unparseable perf record");
            return false;
        }
    };
    match record {
        EventRecord::Sample(s) => {
            let (Some(spid), Some(tid)) = (s.pid, s.tid) else {
                return false;
            };
            let is_switch = s.id.is_some_and(|id| switches.ids.contains(&id));
            let regs = s.user_regs.as_ref().and_then(|r| {
                Some(Regs {
                    ip: r.get(REG_IP)?,
                    sp: r.get(REG_SP)?,
                    bp: r.get(REG_BP)?,
                })
            });
            let chain_len = s.callchain.as_ref().map_or(0, |c| c.len());
            // A thread that blocks again where it blocked last time (same
            // instruction, stack pointer and kernel path length) has the same
            // stack: no need to copy or unwind it again (Go's sysmon blocks
            // every 20 µs at the same place).
            let place = regs.map(|r| (r.ip, r.sp, chain_len));
            if is_switch {
                switches.taken += 1;
                let (Some(t), Some(place)) = (s.timestamp, place) else {
                    return false;
                };
                let known = switches.stack.get(&(tid as u32));
                if let Some((out, _, Some(p))) = known {
                    if *p == place {
                        let out = *out;
                        switches.stack.insert(tid as u32, (out, t, Some(place)));
                        return false;
                    }
                }
            }
            let stack_bytes = s.user_stack.as_ref().map(|(data, dyn_size)| {
                let bytes = data.as_slice();
                let n = (*dyn_size as usize).min(bytes.len());
                bytes[..n].to_vec()
            });
            let callchain: Vec<u64> = s
                .callchain
                .as_ref()
                .map(|c| (0..c.len()).filter_map(|i| c.get(i)).collect())
                .unwrap_or_default();
            let event = SampleEvent {
                pid: spid as u32,
                tid: tid as u32,
                time_ns: s.timestamp.unwrap_or(0),
                regs,
                stack: stack_bytes.as_deref().unwrap_or(&[]),
                callchain: &callchain,
            };
            if !is_switch {
                converter.handle_sample(&event);
                switches.name_thread(converter, pid, tid as u32);
            } else if let (Some(t), Some(out)) = (s.timestamp, converter.handle_switch_out(&event))
            {
                switches.stack.insert(tid as u32, (out, t, place));
            }
        }
        EventRecord::Mmap2(m) if m.protection & libc::PROT_EXEC as u32 != 0 => {
            if let (Some(p), Ok(Some(t))) =
                (prober.as_mut(), raw.common_data().map(|c| c.timestamp))
            {
                p.module_loaded(&String::from_utf8_lossy(&m.path.as_slice()), t);
            }
            handle_mmap(
                converter,
                m.pid,
                m.address,
                m.length,
                m.page_offset,
                &m.path.as_slice(),
            );
            // Arm the new module's sites now, not after the rest of the batch
            // of records: its first calls may follow at once.
            if let Some(p) = prober.as_mut() {
                p.scan_modules(converter.address_space(), monotonic_ns());
            }
        }
        EventRecord::Mmap(m) if m.is_executable => {
            handle_mmap(
                converter,
                m.pid,
                m.address,
                m.length,
                m.page_offset,
                &m.path.as_slice(),
            );
        }
        EventRecord::Comm(c) => {
            if c.is_execve && c.pid as u32 == pid {
                let t = raw.common_data().ok().and_then(|d| d.timestamp);
                switches
                    .children
                    .exec(t.unwrap_or(0), converter.profile_mut());
            }
            converter.handle_comm(
                c.pid as u32,
                c.tid as u32,
                &String::from_utf8_lossy(&c.name.as_slice()),
            );
        }
        EventRecord::Lost(l) => converter.handle_lost(l.count),
        EventRecord::ContextSwitch(c) => {
            let Ok(common) = raw.common_data() else {
                return false;
            };
            let (Some(tid), Some(t)) = (common.tid, common.timestamp) else {
                return false;
            };
            let tid = tid as u32;
            match c {
                ContextSwitchRecord::Out { preempted, .. } => switches.switched_out(
                    converter,
                    tid,
                    t,
                    matches!(preempted, TaskWasPreempted::Yes),
                ),
                ContextSwitchRecord::In { .. } => switches.switched_in(converter, tid, t),
            }
        }
        // A new process, not a thread of one (a kernel without
        // `inherit_thread` lets a child's threads report their forks too).
        EventRecord::Fork(f) if f.ppid as u32 == pid && f.pid as u32 != pid && f.pid == f.tid => {
            switches
                .children
                .forked(f.pid as u32, f.timestamp, converter.profile_mut());
        }
        EventRecord::Exit(e) => {
            if e.pid as u32 == pid && e.tid as u32 != pid {
                switches.exited.push((e.tid as u32, switches.drains));
            }
            return e.pid as u32 == pid && e.tid as u32 == pid;
        }
        _ => {}
    }
    false
}

/// An executable mapping, from a PERF_RECORD_MMAP or MMAP2.
fn handle_mmap(converter: &mut Converter, pid: i32, start: u64, len: u64, pgoff: u64, path: &[u8]) {
    let path = String::from_utf8_lossy(path).into_owned();
    converter.handle_mmap(
        pid as u32,
        Mapping {
            start,
            end: start + len,
            pgoff,
            path,
        },
    );
}

fn process_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we pass.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(budget: Option<f64>, crossings: CrossingsMode, follows: bool) -> RecordOptions {
        let mut o = RecordOptions::new(TargetSpec::Pid(1));
        if crossings != CrossingsMode::Exact {
            o.off_cpu = OffCpuMode::Off;
        }
        o.overhead_budget = budget;
        o.crossings = crossings;
        o.rate_follows_budget = follows;
        o
    }

    /// The processes started before the target's latest exec are its
    /// former program's, read before or after that exec.
    #[test]
    fn processes_started_before_the_exec_are_not_the_targets() {
        let mut profile = Profile::default();
        let mut children = ChildForks::default();
        children.forked(10, 100, &mut profile);
        children.exec(200, &mut profile);
        // Read after the exec, from another CPU's ring, but forked before it.
        children.forked(11, 150, &mut profile);
        children.forked(12, 300, &mut profile);
        assert_eq!(profile.child_processes.count, 1);
        assert_eq!(profile.child_processes.pids, [12]);
    }

    #[test]
    fn an_exited_threads_switch_state_is_forgotten_once_the_rings_are_read_past_it() {
        let mut converter = Converter::new(1, None);
        let mut switches = Switches::default();
        // Thread 7 switched out and exited; thread 8's switch-in came first.
        switches.switched_out(&mut converter, 7, 1_000, false);
        switches.switched_in(&mut converter, 8, 2_000);
        // Their exits read in the first drain; thread 9's in the second.
        switches.exited = vec![(7, 0), (8, 0)];
        switches.drained(&mut converter);
        // A ring read before theirs in that drain may hold more of theirs.
        assert_eq!(switches.out.len(), 1);
        assert_eq!(switches.early_in.len(), 1);
        switches.exited.push((9, 1));
        switches.drained(&mut converter);
        assert!(switches.out.is_empty() && switches.early_in.is_empty());
        // Read in the drain just ended: the next may still hold a record of thread 9.
        assert_eq!(switches.exited, vec![(9, 1)]);
        switches.drained(&mut converter);
        assert!(switches.exited.is_empty());
    }

    #[test]
    fn a_rate_left_to_the_budget_is_lowered_to_what_fits_samplings_part() {
        let exact = CrossingsMode::Exact;
        // 999 Hz at 45 µs is 4.5%: seam spends 2% of a 3% budget, half of
        // which fits 222 Hz, all of it 444.
        assert_eq!(
            rate_fitting_budget(&options(Some(0.03), exact, true), 45_000.0),
            Some(222)
        );
        // With neither probes nor switch-outs' stacks to share it with, all of it.
        let sampled = options(Some(0.03), CrossingsMode::Sampled, true);
        assert_eq!(rate_fitting_budget(&sampled, 45_000.0), Some(444));
        let mut with_switches = sampled.clone();
        with_switches.off_cpu = OffCpuMode::Sampled;
        assert_eq!(rate_fitting_budget(&with_switches, 45_000.0), Some(222));
        // Cheap samples: 999 Hz fits; never raised above the rate.
        assert_eq!(
            rate_fitting_budget(&options(Some(0.03), exact, true), 10_000.0),
            None
        );
        // A rate the user chose, or no budget: left alone.
        assert_eq!(
            rate_fitting_budget(&options(Some(0.03), exact, false), 50_000.0),
            None
        );
        assert_eq!(
            rate_fitting_budget(&options(None, exact, true), 50_000.0),
            None
        );
        // A budget too small for even 1 Hz still samples.
        let tiny = options(Some(1e-9), exact, true);
        assert_eq!(rate_fitting_budget(&tiny, 50_000.0), Some(1));
    }
}
