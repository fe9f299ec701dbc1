//! perf_event_open: one sampling event per (thread, CPU), inherited by the
//! threads the target creates later, all events of a CPU writing into one
//! ring buffer.
//!
//! We use `perf-event-open-sys` for the attr and the syscall and
//! `linux-perf-event-reader` for parsing records: perf-event2 cannot parse
//! context-switch records and has no uprobe event (see the README).

mod bpf;
mod ring;
pub mod uprobe;

use crate::Error;
use linux_perf_event_reader::{
    Endianness, PerfEventAttr, RawData, RawEventRecord, RecordParseInfo, RecordType,
};
use perf_event_open_sys::bindings as sys;
use ring::Ring;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Registers copied with each sample: BP, SP, IP (x86_64 perf_regs.h order).
pub const REGS_MASK: u64 = (1 << 6) | (1 << 7) | (1 << 8);
pub const REG_BP: u64 = 6;
pub const REG_SP: u64 = 7;
pub const REG_IP: u64 = 8;

/// How to sample.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SamplerOptions {
    /// Samples per second per thread on CPU (cpu-clock). Default 999.
    pub frequency_hz: u32,
    /// Bytes of user stack copied with each sample, a multiple of 8, at most 65528. Default 32768.
    pub stack_bytes: u32,
    /// Size of each CPU's ring buffer in pages (a power of two). Default: 16 MiB per
    /// CPU (about 500 samples with their stack copies, half a second of one busy
    /// CPU at 999 Hz), less on machines with many CPUs so that all rings stay within 512 MiB.
    pub ring_pages: usize,
    /// Also sample the target's context switches (the stack at switch-out, at
    /// most about `frequency_hz` per thread and second, each with its period,
    /// and a switch-in record for every switch), for off-CPU time. Default true.
    pub switches: bool,
    /// The stack of every switch-out, not only of some (see `switches`): exact
    /// attribution of off-CPU time, at a cost in programs that switch often.
    /// Default false.
    pub every_switch: bool,
    /// Bytes of user stack copied at each switch-out. Default 8192: switches
    /// can be far more frequent than samples.
    pub switch_stack_bytes: u32,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            frequency_hz: 999,
            stack_bytes: 32768,
            ring_pages: default_ring_pages(),
            switches: true,
            every_switch: false,
            switch_stack_bytes: 8192,
        }
    }
}

/// The open events of one target and their ring buffers.
pub struct Sampler {
    rings: Vec<Ring>,
    events: Vec<OwnedFd>,
    parse_info: RecordParseInfo,
    options: SamplerOptions,
    enable_on_exec: bool,
    /// Ids of the context-switch events (their samples carry them).
    switch_ids: std::collections::HashSet<u64>,
    /// Where the context-switch events are in `events`.
    switch_events: Vec<usize>,
    /// Whether the switch-outs' stacks are paused ([`Sampler::pause_switch_stacks`]).
    switch_stacks_paused: bool,
}

impl Sampler {
    /// Opens nothing yet; call [`Sampler::follow`] for each thread.
    pub fn new(options: SamplerOptions, enable_on_exec: bool) -> Result<Sampler, Error> {
        let attr = make_attr(&options, enable_on_exec);
        // SAFETY: perf_event_attr is plain old data; we view its bytes to let the
        // record parser learn the sample layout we asked for.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                &attr as *const sys::perf_event_attr as *const u8,
                std::mem::size_of::<sys::perf_event_attr>(),
            )
        };
        let (parsed, _) =
            PerfEventAttr::parse::<_, byteorder::LittleEndian>(bytes).map_err(|e| Error::Io {
                what: "parsing our own perf_event_attr".into(),
                source: e,
            })?;
        let parse_info = RecordParseInfo::new(&parsed, Endianness::LittleEndian);
        Ok(Sampler {
            rings: Vec::new(),
            events: Vec::new(),
            parse_info,
            options,
            enable_on_exec,
            switch_ids: Default::default(),
            switch_events: Vec::new(),
            switch_stacks_paused: false,
        })
    }

    /// Samples thread `tid` (and the threads it creates from now on) on every CPU.
    pub fn follow(&mut self, tid: u32, pid: u32) -> Result<(), Error> {
        let cpus = online_cpus();
        for (i, &cpu) in cpus.iter().enumerate() {
            let mut attr = make_attr(&self.options, self.enable_on_exec);
            // The switch records come with the samples, so that they go on
            // while the switch-outs' stacks are paused.
            attr.set_context_switch(self.options.switches as u64);
            let fd = match open_event(&mut attr, tid as i32, cpu as i32) {
                Ok(fd) => fd,
                // The thread exited in between: nothing to follow.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) && tid != pid => return Ok(()),
                Err(e) => {
                    return Err(Error::io(
                        format!("perf_event_open for thread {tid} on cpu {cpu}"),
                        e,
                        Some(pid),
                    ))
                }
            };
            if i >= self.rings.len() {
                let ring = Ring::new(&fd, self.options.ring_pages).map_err(|e| {
                    Error::io(
                        format!("mmap of the perf ring buffer for cpu {cpu}"),
                        e,
                        None,
                    )
                })?;
                self.rings.push(ring);
            } else {
                set_output(&fd, self.rings[i].fd())
                    .map_err(|e| Error::io("PERF_EVENT_IOC_SET_OUTPUT", e, None))?;
            }
            self.events.push(fd);
            if self.options.switches {
                self.follow_switches(tid, pid, cpu, i)?;
            }
        }
        Ok(())
    }

    /// Opens the context-switch event of `tid` on `cpu`, into ring `ring`.
    fn follow_switches(&mut self, tid: u32, pid: u32, cpu: u32, ring: usize) -> Result<(), Error> {
        let mut attr = make_attr(&self.options, self.enable_on_exec);
        attr.config = sys::PERF_COUNT_SW_CONTEXT_SWITCHES as u64;
        // The switch records (context_switch) time every switch. Stacks: of
        // every switch-out, or of at most about `frequency_hz` a second per
        // thread (a thread that blocks more often, like Go's sysmon every
        // 20 µs, then has only some of its switch-outs sampled).
        if self.options.every_switch {
            attr.set_freq(0);
            attr.__bindgen_anon_1.sample_period = 1;
        } else {
            attr.set_freq(1);
            attr.__bindgen_anon_1.sample_freq = self.options.frequency_hz as u64;
        }
        attr.sample_stack_user = self.options.switch_stack_bytes & !7;
        attr.set_mmap(0);
        attr.set_mmap2(0);
        attr.set_comm(0);
        attr.set_task(0);
        let fd = match open_event(&mut attr, tid as i32, cpu as i32) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) && tid != pid => return Ok(()),
            Err(e) => {
                return Err(Error::io(
                    format!("perf_event_open (context switches) for thread {tid} on cpu {cpu}"),
                    e,
                    Some(pid),
                ))
            }
        };
        set_output(&fd, self.rings[ring].fd())
            .map_err(|e| Error::io("PERF_EVENT_IOC_SET_OUTPUT", e, None))?;
        let mut id = 0u64;
        // SAFETY: PERF_EVENT_IOC_ID writes the event's id.
        if unsafe { perf_event_open_sys::ioctls::ID(fd.as_raw_fd(), &mut id) } >= 0 {
            self.switch_ids.insert(id);
        }
        if self.switch_stacks_paused {
            // SAFETY: fd is an open perf event.
            unsafe { perf_event_open_sys::ioctls::DISABLE(fd.as_raw_fd(), 0) };
        }
        self.switch_events.push(self.events.len());
        self.events.push(fd);
        Ok(())
    }

    /// Stops taking the switch-outs' stacks (`pause`), or takes them again:
    /// each costs the switching thread a sample's worth. The switch records,
    /// which time the target's absences, go on either way; a switch-out
    /// without its own stack is given its thread's latest one. Returns
    /// whether anything changed.
    pub fn pause_switch_stacks(&mut self, pause: bool) -> bool {
        if pause == self.switch_stacks_paused || !self.options.switches || self.options.every_switch
        {
            return false;
        }
        for &i in &self.switch_events {
            let fd = self.events[i].as_raw_fd();
            // SAFETY: fd is an open perf event; the ioctl reaches the events
            // its threads' new threads inherited too.
            unsafe {
                if pause {
                    perf_event_open_sys::ioctls::DISABLE(fd, 0);
                } else {
                    perf_event_open_sys::ioctls::ENABLE(fd, 0);
                }
            }
        }
        self.switch_stacks_paused = pause;
        true
    }

    /// The ids of the context-switch events: their samples are switch-outs.
    pub fn switch_ids(&self) -> std::collections::HashSet<u64> {
        self.switch_ids.clone()
    }

    /// Starts sampling (not needed with enable-on-exec).
    pub fn enable(&self) -> Result<(), Error> {
        for fd in &self.events {
            // SAFETY: fd is an open perf event.
            if unsafe { perf_event_open_sys::ioctls::ENABLE(fd.as_raw_fd(), 0) } < 0 {
                return Err(Error::io(
                    "PERF_EVENT_IOC_ENABLE",
                    io::Error::last_os_error(),
                    None,
                ));
            }
        }
        Ok(())
    }

    /// Stops sampling; records already in the rings can still be read.
    pub fn disable(&self) {
        for fd in &self.events {
            // SAFETY: fd is an open perf event.
            unsafe { perf_event_open_sys::ioctls::DISABLE(fd.as_raw_fd(), 0) };
        }
    }

    /// Waits up to `timeout_ms` for any ring to fill past its watermark.
    pub fn wait(&self, timeout_ms: i32) {
        let mut fds: Vec<libc::pollfd> = self
            .rings
            .iter()
            .map(|r| libc::pollfd {
                fd: r.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    }

    /// Hands every record waiting in the rings to `handle`, oldest first per CPU.
    pub fn drain(&mut self, mut handle: impl FnMut(&RawEventRecord)) {
        let parse_info = self.parse_info;
        for ring in &mut self.rings {
            ring.drain(|ty, misc, body| {
                let record =
                    RawEventRecord::new(RecordType(ty), misc, RawData::Single(body), parse_info);
                handle(&record);
            });
        }
    }
}

/// Period of the calibration event, ns of CPU: 10 kHz, so that a few
/// milliseconds show the samples' cost well above the noise.
const CALIBRATION_PERIOD_NS: u64 = 100_000;
/// Stack in use under the calibration loop: what a sample copies there.
pub const CALIBRATION_STACK_BYTES: usize = 8192;

/// What one sample costs the sampled thread, ns: the timer interrupt, the
/// registers, the kernel's callchain, the copy of [`CALIBRATION_STACK_BYTES`]
/// of stack (about what a Python or Go thread has in use: `chain`'s threads
/// copy 7 KiB), and its share of the reader's wakes. Measured on a thread of
/// seam's own with an event like the sampler's, whose ring a second thread
/// reads as seam's reader does, woken every few samples: busy work is timed
/// in the thread's CPU time with the event enabled and disabled, in
/// alternating slices, and the median of the slices' extra time per sample is
/// taken. Takes about 0.5 s.
///
/// The wakes cost more than all the rest on the 2-core VM of the benchmarks:
/// 45-55 µs a sample with them against 20-25 µs with the ring read only after
/// each slice, as this measured before. A recording pays the former: `chain`
/// sampled at 499 Hz (no probes, no switches) slowed by 2.6-5.0% per CPU
/// second of its workers. Reading on a timer instead (every 10 ms) would
/// halve that, but what is read from the live process after the sample is
/// then read late: `gomain`'s complete stacks fell from 98.7% to 96.0%, and
/// `chain`'s callbacks into Python were found in 56 of 17,485 samples
/// against 3-4% (README, *Overhead budget*).
pub fn measure_sample_cost(options: &SamplerOptions) -> Result<f64, Error> {
    let options = options.clone();
    std::thread::Builder::new()
        .name("seam-calibrate".into())
        .stack_size(1 << 20)
        .spawn(move || with_stack_in_use(&mut || sample_cost_here(&options)))
        .map_err(|e| Error::io("starting a thread", e, None))?
        .join()
        .map_err(|_| Error::Unsupported("the sampling calibration panicked".into()))?
}

#[inline(never)]
fn with_stack_in_use(f: &mut dyn FnMut() -> Result<f64, Error>) -> Result<f64, Error> {
    let pad = std::hint::black_box([1u8; CALIBRATION_STACK_BYTES]);
    let r = f();
    std::hint::black_box(&pad);
    r
}

/// Samples taken into `ring` since it was last drained, lost ones included.
fn drain_samples(ring: &mut Ring) -> u64 {
    let mut samples = 0u64;
    ring.drain(|ty, _, body| match ty {
        sys::PERF_RECORD_SAMPLE => samples += 1,
        sys::PERF_RECORD_LOST => samples += u64_at(body, 8).unwrap_or(0),
        _ => {}
    });
    samples
}

fn sample_cost_here(options: &SamplerOptions) -> Result<f64, Error> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;
    const SLICES: usize = 16;
    const STEPS: usize = 600_000;
    let mut attr = make_attr(options, false);
    attr.set_freq(0);
    attr.__bindgen_anon_1.sample_period = CALIBRATION_PERIOD_NS;
    attr.set_inherit(0);
    attr.set_inherit_thread(0);
    attr.set_mmap(0);
    attr.set_mmap2(0);
    attr.set_comm(0);
    attr.set_task(0);
    let fd = open_event(&mut attr, 0, -1)
        .map_err(|e| Error::io("perf_event_open (measuring what a sample costs)", e, None))?;
    let ring = Mutex::new(
        Ring::new(&fd, 512)
            .map_err(|e| Error::io("mmap of the calibration ring buffer", e, None))?,
    );
    // What the reader drained, added while it holds the ring, so that this
    // count and what is left in the ring are read together.
    let read = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let mut workload = Workload::new();
    let mut work = || {
        let t = thread_cpu_ns();
        std::hint::black_box(workload.run(STEPS));
        thread_cpu_ns().saturating_sub(t) as f64
    };
    let mut per_sample = Vec::with_capacity(SLICES);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut poll = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            while !done.load(Ordering::Relaxed) {
                // SAFETY: poll is one valid pollfd.
                unsafe { libc::poll(&mut poll, 1, 10) };
                let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
                read.fetch_add(drain_samples(&mut ring), Ordering::Relaxed);
            }
        });
        // The reader stops however this ends (a panic here would otherwise
        // wait for it forever).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&done);
        work();
        for _ in 0..SLICES {
            let off = work();
            // SAFETY: fd is an open perf event.
            unsafe { perf_event_open_sys::ioctls::ENABLE(fd.as_raw_fd(), 0) };
            let on = work();
            // SAFETY: as above.
            unsafe { perf_event_open_sys::ioctls::DISABLE(fd.as_raw_fd(), 0) };
            let samples = {
                let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
                drain_samples(&mut ring) + read.swap(0, Ordering::Relaxed)
            };
            if samples > 0 {
                per_sample.push((on - off) / samples as f64);
            }
        }
    });
    if per_sample.is_empty() {
        return Err(Error::Unsupported(
            "the calibration event took no samples".into(),
        ));
    }
    per_sample.sort_by(f64::total_cmp);
    Ok(per_sample[per_sample.len() / 2].max(0.0))
}

/// perf_event_open on `pid` (-1: every process) and `cpu` (-1: any), close-on-exec.
pub(crate) fn open_event(
    attr: &mut sys::perf_event_attr,
    pid: i32,
    cpu: i32,
) -> io::Result<OwnedFd> {
    // SAFETY: attr is a valid perf_event_attr; any pointers in it live across the call.
    let open = |attr: &mut sys::perf_event_attr| unsafe {
        perf_event_open_sys::perf_event_open(attr, pid, cpu, -1, sys::PERF_FLAG_FD_CLOEXEC as u64)
    };
    let mut fd = open(attr);
    if fd < 0
        && attr.inherit_thread() == 1
        && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
    {
        // A kernel before 5.13 has no `inherit_thread`.
        attr.set_inherit_thread(0);
        fd = open(attr);
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by perf_event_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `fd`'s records into the ring of `ring_fd` (same CPU, same clock).
pub(crate) fn set_output(fd: &OwnedFd, ring_fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: both fds are perf events; the kernel checks that they can share a ring.
    if unsafe { perf_event_open_sys::ioctls::SET_OUTPUT(fd.as_raw_fd(), ring_fd) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CLOCK_MONOTONIC now, in ns: the clock of the samples' timestamps.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// This thread's CPU time, ns.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Work like a real target's, for the calibrations: an interpreter-style
/// loop (an indirect branch per step, whose target the branch predictor
/// learns from history) over a working set in the caches. A kernel entry (a
/// sample, a probe's trap) costs such code more than its own time: the
/// predictor and cache state it disturbs, which a tight loop does not need.
pub(crate) struct Workload {
    program: Vec<u8>,
    data: Vec<u64>,
    pc: usize,
    at: usize,
    x: u64,
}

impl Workload {
    pub(crate) fn new() -> Workload {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let program = (0..4096)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 59) as u8
            })
            .collect();
        Workload {
            program,
            data: vec![1; (512 << 10) / 8],
            pc: 0,
            at: 0,
            x: 1,
        }
    }

    /// Runs `steps` steps of the program.
    pub(crate) fn run(&mut self, steps: usize) -> u64 {
        let (mut pc, mut at, mut x) = (self.pc, self.at, self.x);
        let n = self.data.len();
        for _ in 0..steps {
            let d = self.data[at];
            x = match self.program[pc] & 7 {
                0 => x.wrapping_add(d),
                1 => x ^ d.rotate_left(7),
                2 => x.wrapping_mul(3).wrapping_add(d),
                3 => x.wrapping_sub(d >> 3),
                4 => (x << 1) ^ d,
                5 => x.wrapping_add(d.wrapping_mul(5)),
                6 => x ^ (d >> 11),
                _ => x.rotate_right(3).wrapping_add(d),
            };
            self.data[at] = x;
            at = (at + 8 + (x as usize & 8)) % n;
            pc = (pc + 1) % self.program.len();
        }
        (self.pc, self.at, self.x) = (pc, at, x);
        x
    }
}

fn make_attr(options: &SamplerOptions, enable_on_exec: bool) -> sys::perf_event_attr {
    let mut attr = sys::perf_event_attr {
        type_: sys::PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<sys::perf_event_attr>() as u32,
        config: sys::PERF_COUNT_SW_CPU_CLOCK as u64,
        ..Default::default()
    };
    attr.__bindgen_anon_1.sample_freq = options.frequency_hz as u64;
    attr.sample_type = (sys::PERF_SAMPLE_IDENTIFIER
        | sys::PERF_SAMPLE_IP
        | sys::PERF_SAMPLE_TID
        | sys::PERF_SAMPLE_TIME
        | sys::PERF_SAMPLE_CPU
        | sys::PERF_SAMPLE_PERIOD
        | sys::PERF_SAMPLE_CALLCHAIN
        | sys::PERF_SAMPLE_REGS_USER
        | sys::PERF_SAMPLE_STACK_USER) as u64;
    attr.sample_regs_user = REGS_MASK;
    attr.sample_stack_user = options.stack_bytes & !7;
    attr.sample_max_stack = 127;
    attr.set_freq(1);
    attr.set_disabled(1);
    attr.set_inherit(1);
    // New threads only, not child processes: seam drops their samples, and
    // with a child process inheriting the events, and its threads coming and
    // going, the kernel (6.18 here; `perf record` too) all but stopped
    // sampling the target (a script calling a server it started, which
    // answers each request on a new thread: 12 samples at 99 Hz where its
    // CPU time called for 160). Kernels before 5.13 refuse it; `open_event`
    // then inherits into both.
    attr.set_inherit_thread(1);
    attr.set_enable_on_exec(enable_on_exec as u64);
    attr.set_mmap(1);
    attr.set_mmap2(1);
    attr.set_comm(1);
    attr.set_task(1);
    attr.set_sample_id_all(1);
    attr.set_use_clockid(1);
    attr.clockid = libc::CLOCK_MONOTONIC;
    attr.set_watermark(1);
    // Wake the reader every few samples: frames on the other side of a stack
    // switch are read from the live process, and the sooner the better.
    // Each wake is the sampled thread's to pay: see `measure_sample_cost`.
    attr.__bindgen_anon_2.wakeup_watermark = options.stack_bytes + 1024;
    attr
}

fn default_ring_pages() -> usize {
    ring_pages_sharing(512 << 20)
}

/// Pages for one ring per CPU that share about `total` bytes: between 1 MiB
/// and 16 MiB each (4 KiB pages), a power of two.
pub(crate) fn ring_pages_sharing(total: usize) -> usize {
    let per_cpu = total / page_size() / online_cpus().len().max(1);
    per_cpu.clamp(256, 4096).next_power_of_two().min(4096)
}

/// The little-endian u64 at byte `at` of a record's body, if the body is
/// long enough.
pub(crate) fn u64_at(body: &[u8], at: usize) -> Option<u64> {
    body.get(at..at.checked_add(8)?)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

pub(crate) fn online_cpus() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            (0..n as u32).collect()
        })
}

/// Parses the kernel's CPU list format ("0-3,8,10-11").
fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().ok()?..=b.parse::<u32>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        for (text, want) in [
            ("0", Some(vec![0])),
            ("0-3", Some(vec![0, 1, 2, 3])),
            ("0,2-3", Some(vec![0, 2, 3])),
            ("x", None),
        ] {
            assert_eq!(parse_cpu_list(text), want, "{text}");
        }
    }
}
