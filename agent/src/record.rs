//! One recording: attach or launch, sample until the duration ends, the
//! target exits or the caller asks to stop, then return the profile.

use crate::launch::Child;
use linux_perf_event_reader::{EventRecord, RawEventRecord};
use seam_profiler::converter::{Converter, SampleEvent};
use seam_profiler::memory::ProcessMemory;
use seam_profiler::modules::Mapping;
use seam_profiler::perf::{Sampler, SamplerOptions, REG_BP, REG_IP, REG_SP};
use seam_profiler::unwind::Regs;
use seam_profiler::Error;
use seam_proto::Profile;
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
    /// Set to stop the recording early (Ctrl-C).
    pub stop: Arc<AtomicBool>,
}

impl RecordOptions {
    pub fn new(target: TargetSpec) -> RecordOptions {
        RecordOptions {
            target,
            duration: None,
            frequency_hz: 999,
            stop: Arc::new(AtomicBool::new(false)),
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
const READER_NICE: i32 = -10;
/// How often [`record_with_ticks`] hands out the profile so far.
pub const TICK: Duration = Duration::from_millis(250);

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
    // Frames on the far side of a stack switch are read from the live process
    // after the sample, so the reader should run as soon as samples arrive,
    // not after the target's busy threads. Best effort: needs CAP_SYS_NICE.
    // SAFETY: setpriority on our own process has no memory-safety preconditions.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, READER_NICE) };
    let mut sampler_options = SamplerOptions::default();
    sampler_options.frequency_hz = options.frequency_hz;
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
            let mut child = Child::spawn_paused(argv)?;
            let mut sampler = Sampler::new(sampler_options, true)?;
            sampler.follow(child.pid, child.pid)?;
            child.release();
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

    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_tick = Instant::now();
    let mut exit_status = None;
    let mut target_exited = false;
    loop {
        sampler.wait(POLL_MS);
        let mut exited = false;
        sampler.drain(|r| exited |= handle_record(&mut converter, pid, r));
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
        handle_record(&mut converter, pid, r);
    });
    if let Some(c) = child.take() {
        if exit_status.is_none() {
            exit_status = c.try_wait();
        }
    }
    let mut warnings: Vec<String> = converter
        .python_warning()
        .map(str::to_string)
        .into_iter()
        .collect();
    warnings.extend(converter.unreadable_files());
    let mut profile = converter.into_profile();
    profile.duration_s = start.elapsed().as_secs_f64();
    on_tick(&profile);
    Ok(Recording {
        profile,
        exit_status,
        target_exited,
        warnings,
        seam_cpu_s: process_cpu_seconds() - cpu_start,
    })
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

fn list_threads(pid: u32) -> Option<Vec<u32>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
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
fn handle_record(converter: &mut Converter, pid: u32, raw: &RawEventRecord) -> bool {
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
            let regs = s.user_regs.as_ref().and_then(|r| {
                Some(Regs {
                    ip: r.get(REG_IP)?,
                    sp: r.get(REG_SP)?,
                    bp: r.get(REG_BP)?,
                })
            });
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
            converter.handle_sample(&SampleEvent {
                pid: spid as u32,
                tid: tid as u32,
                regs,
                stack: stack_bytes.as_deref().unwrap_or(&[]),
                callchain: &callchain,
            });
        }
        EventRecord::Mmap2(m) if m.protection & libc::PROT_EXEC as u32 != 0 => {
            handle_mmap(
                converter,
                m.pid,
                m.address,
                m.length,
                m.page_offset,
                &m.path.as_slice(),
            );
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
            converter.handle_comm(
                c.pid as u32,
                c.tid as u32,
                &String::from_utf8_lossy(&c.name.as_slice()),
            );
        }
        EventRecord::Lost(l) => converter.handle_lost(l.count),
        EventRecord::Exit(e) => return e.pid as u32 == pid && e.tid as u32 == pid,
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
