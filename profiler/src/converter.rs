//! From perf records to a [`Profile`]: unwinding, the Python merge,
//! symbolization and classification of each sample. The live recorder and
//! recorded fixtures both feed this converter.

use crate::crossing::{
    find_crossings, glue_mask, is_pyo3_trampoline, is_system, pending_callee, pending_mechanism,
    Crossing,
};
use crate::fixture::FixtureCapture;
use crate::memory::{ProcessMemory, ReadMemory, WithStackCopy};
use crate::modules::{AddressSpace, FrameKind, Mapping};
use crate::probes::{Candidate, Sightings, ThreadSamples, Votes};
use crate::python::{PyFrame, PythonProcess};
use crate::symbolize::{KernelSymbols, Symbolizer};
use crate::unwind::{NativeStack, Regs, StackAddress, StackEnd, StackMemory, Unwinder};
use seam_proto::{Frame, Mechanism, Profile, Runtime};
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// perf's callchain context markers (PERF_CONTEXT_*), all above this value.
const PERF_CONTEXT_MAX: u64 = u64::MAX - 4095;
const PERF_CONTEXT_USER: u64 = (-512i64) as u64;
const PYTHON_RETRY: Duration = Duration::from_millis(100);
const MAPS_RETRY: Duration = Duration::from_millis(100);

/// Where a thread was when it left the CPU (see [`Converter::handle_switch_out`]).
#[derive(Clone, Copy, Debug)]
pub struct SwitchOut {
    pub stack: seam_proto::StackHandle,
    pub boundary: Option<(Runtime, Runtime, Mechanism)>,
    pub cause: &'static str,
}

/// One on-CPU sample, as the converter needs it.
#[derive(Clone, Debug)]
pub struct SampleEvent<'a> {
    pub pid: u32,
    pub tid: u32,
    /// When it was taken (CLOCK_MONOTONIC, ns).
    pub time_ns: u64,
    /// User registers at the sample; None for a kernel thread.
    pub regs: Option<Regs>,
    /// The user stack copied from `regs.sp` upward.
    pub stack: &'a [u8],
    /// The kernel's callchain with its context markers, leaf first.
    pub callchain: &'a [u64],
}

/// What the converter knows about the Python interpreter in the target.
enum PythonState {
    NotYetFound {
        last_try: Option<Instant>,
    },
    Found(Box<PythonProcess>),
    /// A version seam cannot read; the message says which.
    Unsupported(String),
}

pub struct Converter {
    pid: u32,
    memory: Option<ProcessMemory>,
    space: AddressSpace,
    unwinder: Unwinder,
    symbolizer: Symbolizer,
    kernel: std::sync::Arc<KernelSymbols>,
    python: PythonState,
    profile: Profile,
    last_maps_read: Option<Instant>,
    capture: Option<FixtureCapture>,
    /// Since the last [`Converter::take_votes`]: for each function on a crossing, its boundaries.
    votes: Votes,
    /// Since the last [`Converter::take_sightings`]: the samples whose
    /// stack held each probed function.
    sightings: Sightings,
    probed: std::collections::HashSet<String>,
    /// Since the last [`Converter::take_thread_samples`]: each thread's
    /// on-CPU samples, with the function whose probe trapped for those in
    /// seam's probe traps (None: not kept, see
    /// [`Converter::keep_thread_samples`]).
    thread_samples: Option<ThreadSamples>,
    /// Functions seen carrying a crossing that no symbol names ahead of time.
    candidates: Vec<Candidate>,
    candidates_seen: std::collections::HashSet<(String, String)>,
    /// Threads whose last sample ran Python code: their Python frames are
    /// read before their native stack is unwound.
    python_threads: std::collections::HashSet<u32>,
    /// Find crossings on the stacks (`--crossings off` turns it off).
    boundaries: bool,
    /// For each Go module (by file name), the names of its cgo export wrappers.
    export_wrappers: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// Where threads return from seam's probe traps: (module path, svma).
    /// By module path: the addresses (svma) where threads return from seam's probe traps.
    probe_resumes: std::collections::HashMap<String, std::collections::HashSet<u64>>,
    /// Samples taken in seam's probe traps so far: the probes' cost, seen in place.
    trap_samples: u64,
    /// On-CPU samples counted so far (the profile's total, kept as it grows
    /// rather than summed over its stacks).
    samples: u64,
    /// 3.8 to 3.10: where each eval loop's frame object is on the C stack.
    frame_slots: FrameSlots,
}

impl Converter {
    /// A converter for process `pid`. `memory` reads the live process (None for fixtures).
    pub fn new(pid: u32, memory: Option<ProcessMemory>) -> Converter {
        let mut profile = Profile::default();
        profile.target.pid = pid;
        Converter {
            pid,
            memory,
            space: AddressSpace::new(pid),
            unwinder: Unwinder::default(),
            symbolizer: Symbolizer::default(),
            kernel: KernelSymbols::shared(),
            python: PythonState::NotYetFound { last_try: None },
            profile,
            last_maps_read: None,
            capture: None,
            votes: Votes::new(),
            sightings: Sightings::new(),
            probed: Default::default(),
            thread_samples: None,
            candidates: Vec::new(),
            candidates_seen: Default::default(),
            python_threads: Default::default(),
            boundaries: true,
            export_wrappers: Default::default(),
            probe_resumes: Default::default(),
            trap_samples: 0,
            samples: 0,
            frame_slots: FrameSlots::default(),
        }
    }

    /// Learns the target's current mappings from a /proc/PID/maps text.
    pub fn add_maps_text(&mut self, maps: &str) {
        for m in self.space.add_maps_text(maps) {
            self.unwinder.add_module(&m);
        }
    }

    /// Re-reads /proc/PID/maps, at most every [`MAPS_RETRY`]: a sample in code
    /// we have no mapping for (mapped before the recording started or before
    /// an exec) means our view is behind.
    fn refresh_maps(&mut self) {
        if self.memory.is_none()
            || self
                .last_maps_read
                .is_some_and(|t| t.elapsed() < MAPS_RETRY)
        {
            return;
        }
        self.last_maps_read = Some(Instant::now());
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{}/maps", self.pid)) {
            self.add_maps_text(&maps);
        }
    }

    pub fn handle_mmap(&mut self, pid: u32, mapping: Mapping) {
        if pid != self.pid {
            return;
        }
        if let Some(m) = self.space.add_mapping(mapping) {
            self.unwinder.add_module(&m);
            if matches!(self.python, PythonState::NotYetFound { .. }) {
                self.python = PythonState::NotYetFound { last_try: None };
            }
        }
    }

    pub fn handle_comm(&mut self, pid: u32, tid: u32, name: &str) {
        if pid == self.pid {
            self.profile.threads.entry(tid).or_default().name = name.to_string();
        }
    }

    /// Forgets what was kept about thread `tid`, which exited (its figures
    /// in the profile stay).
    pub fn thread_exited(&mut self, tid: u32) {
        self.python_threads.remove(&tid);
    }

    pub fn handle_lost(&mut self, count: u64) {
        self.profile.lost.kernel += count;
    }

    /// Counts a sample seam had to drop, with the reason.
    pub fn drop_sample(&mut self, why: &str) {
        self.profile.lost.seam += 1;
        self.profile.note_problem(why);
    }

    /// Saves the first samples that cross Go's stack switches as test fixtures in `dir`.
    /// Plain stacks: no crossings found, no seams marked, no boundaries.
    pub fn without_boundaries(&mut self) {
        self.boundaries = false;
    }

    pub fn capture_fixtures(&mut self, dir: std::path::PathBuf) {
        self.capture = Some(FixtureCapture::new(dir));
    }

    /// Files the target maps that seam could not read, with why.
    pub fn unreadable_files(&self) -> Vec<String> {
        self.space
            .unreadable
            .iter()
            .map(|(path, why)| format!("cannot read {path}: {why}"))
            .collect()
    }

    /// A message when the target runs a Python seam cannot read.
    pub fn python_warning(&self) -> Option<&str> {
        match &self.python {
            PythonState::Unsupported(msg) => Some(msg),
            _ => None,
        }
    }

    pub fn handle_sample(&mut self, s: &SampleEvent) {
        if let Some((leaf_first, complete)) = self.stack_of(s) {
            let in_probe = self.at_probe_resume(s);
            let trap = self.count(leaf_first, complete, s.tid, in_probe);
            if let Some(threads) = &mut self.thread_samples {
                threads.entry(s.tid).or_default().push((s.time_ns, trap));
            }
        }
    }

    /// Tells where threads return from seam's probe traps (see
    /// [`crate::probes::Prober::resume_points`]).
    pub fn set_probe_resumes(&mut self, points: Vec<(String, u64)>) {
        self.probe_resumes.clear();
        for (path, svma) in points {
            self.probe_resumes.entry(path).or_default().insert(svma);
        }
    }

    /// A sample taken in user space right where a probe's trap returns: the
    /// timer came due during the trap, so it is the probe's cost.
    fn at_probe_resume(&self, s: &SampleEvent) -> bool {
        let Some(regs) = s.regs else {
            return false;
        };
        if self.probe_resumes.is_empty() || !split_callchain(s.callchain).0.is_empty() {
            return false;
        }
        self.space.module_at(regs.ip).is_some_and(|m| {
            self.probe_resumes
                .get(&m.object.path)
                .is_some_and(|points| points.contains(&m.svma(regs.ip)))
        })
    }

    /// A thread of the target was switched out (a context-switch sample): its
    /// stack is interned, and the boundary whose glue it was in is found, with
    /// the cause the stack shows. The caller adds the time off CPU when the
    /// thread comes back ([`Converter::add_off_cpu`]).
    pub fn handle_switch_out(&mut self, s: &SampleEvent) -> Option<SwitchOut> {
        let (leaf_first, complete) = self.stack_of(s)?;
        let mut root_first = leaf_first;
        root_first.reverse();
        let crossings = if self.boundaries {
            find_crossings(&root_first)
        } else {
            Vec::new()
        };
        for c in &crossings {
            root_first[c.callee_at].seam = Some(c.mechanism);
        }
        // The thread waits in the kernel, usually under libc (a futex, a read)
        // or the interpreter's own C that glue called (its condition
        // variables): the glue that called them is the boundary's. The
        // interpreter's own C called through its generic call glue (a
        // `threading` lock) is no glue's support code ([`glue_mask`]), and
        // crossed nothing.
        let glue = glue_mask(&root_first);
        let native_python = |f: &Frame| f.runtime == Runtime::Python && f.module.is_some();
        let waiting_in = root_first
            .iter()
            .enumerate()
            .rposition(|(i, f)| {
                f.runtime != Runtime::Kernel && !is_system(f) && !(native_python(f) && glue[i])
            })
            .unwrap_or(0);
        let boundary = self
            .pending_boundary(&root_first[..=waiting_in.min(root_first.len().saturating_sub(1))])
            .or_else(|| crossings.last().map(|c| (c.caller, c.callee, c.mechanism)))
            .filter(|_| self.boundaries);
        let cause = off_cpu_cause(&root_first);
        let handles = root_first
            .into_iter()
            .map(|f| self.profile.intern_frame(f))
            .collect();
        let stack = self.profile.intern_stack(handles, complete);
        Some(SwitchOut {
            stack,
            boundary,
            cause,
        })
    }

    /// Where a switch-out goes when its thread has no stack taken at any
    /// switch-out yet (the switch-outs' stacks paused for the budget): a
    /// single frame that says so, with no boundary.
    pub fn switch_out_without_stack(&mut self) -> SwitchOut {
        let frame = self.profile.intern_frame(Frame::new(
            "[no stack taken at switch-out]",
            Runtime::Unknown,
        ));
        SwitchOut {
            stack: self.profile.intern_stack(vec![frame], false),
            boundary: None,
            cause: "other",
        }
    }

    /// Adds one context switch and the `ns` off CPU that followed it, at the
    /// switch-out stack `out`; `preempted` when the thread was still runnable
    /// (an involuntary switch).
    pub fn add_off_cpu(&mut self, tid: u32, out: &SwitchOut, ns: u64, preempted: bool) {
        self.profile.add_off_cpu(out.stack, ns, 1);
        // The stack names the cause (a thread preempted in take_gil is still
        // held up at the GIL); `preempted` only when it names nothing.
        let cause = match (out.cause, preempted) {
            ("other", true) => "preempted",
            (cause, _) => cause,
        };
        let thread = self.profile.threads.entry(tid).or_default();
        *thread.off_cpu_ns.entry(cause.to_string()).or_default() += ns;
        if let Some((caller, callee, mechanism)) = out.boundary {
            let b = self.profile.boundary_mut(caller, callee, mechanism);
            b.off_cpu_ns += ns;
            if preempted {
                b.switches.involuntary += 1;
            } else {
                b.switches.voluntary += 1;
            }
            *b.causes.entry(cause.to_string()).or_default() += ns;
        }
    }

    /// The stack of a sample, leaf first, and whether it is complete.
    fn stack_of(&mut self, s: &SampleEvent) -> Option<(Vec<Frame>, bool)> {
        if s.pid != self.pid {
            return None;
        }
        let mut leaf_first: Vec<Frame> = Vec::new();
        let mut complete = true;

        let (kernel_chain, user_chain) = split_callchain(s.callchain);
        for &addr in kernel_chain {
            leaf_first.push(Frame::new(self.kernel.name(addr), Runtime::Kernel));
        }

        let Some(mut regs) = s.regs else {
            // A kernel thread (or a sample with no user context): the kernel part is all there is.
            if leaf_first.is_empty() {
                self.drop_sample("sample with no stack");
                return None;
            }
            return Some((leaf_first, true));
        };
        // In a breakpoint trap (a uprobe's, at a function's entry or at the
        // instruction it is probed at, see `perf::uprobe::probe_point`), the
        // user instruction pointer is one past the int3 that replaced the
        // first byte of the probed instruction, until the kernel moves it
        // back to the probed address before it runs the probe's handlers:
        // unwind from the probed address. Once the kernel has emulated the
        // instruction, the instruction pointer is right as it is: past a
        // longer instruction, or at a branch's target; past a one-byte `push`
        // too, which then moved the stack pointer by 8, so the stack
        // pointer's place modulo 16 tells (see
        // `AddressSpace::trapped_before_probe`).
        if leaf_first.iter().any(|f| f.name == "asm_exc_int3")
            && !self.space.is_function_entry(regs.ip)
            && self
                .space
                .trapped_before_probe(regs.ip.saturating_sub(1), regs.sp)
        {
            regs.ip -= 1;
        }
        if self.space.module_at(regs.ip).is_none() {
            self.refresh_maps();
        }
        // The Python frames are read from the live thread, which runs on
        // after the sample: read them first, for a thread that ran Python
        // code at its last sample, before the unwinding (which may read the
        // process too) lets it move further.
        let early_python = self
            .python_threads
            .contains(&s.tid)
            .then(|| self.python_stack(s.tid, regs.sp, s.stack));
        let process = self.memory;
        let mut mem = StackMemory::new(
            regs.sp,
            s.stack,
            process.as_ref().map(|p| p as &dyn ReadMemory),
        );
        let native = self
            .unwinder
            .unwind(&self.space, regs, user_chain, &mut mem);
        if let Some(capture) = &mut self.capture {
            // A second walk without the kernel's callchain, so that the fixture also
            // holds what the process-memory path reads.
            let mut mem2 = StackMemory::new(
                regs.sp,
                s.stack,
                process.as_ref().map(|p| p as &dyn ReadMemory),
            );
            let native2 = self.unwinder.unwind(&self.space, regs, &[], &mut mem2);
            capture.offer(
                &self.space,
                &mut self.symbolizer,
                regs,
                s.stack,
                user_chain,
                [(&mem, &native), (&mem2, &native2)],
            );
        }
        if mem.reused_other_side {
            self.profile.note_problem(
                "frames past a stack switch taken from an earlier walk (the thread had moved on)",
            );
        }
        if let StackEnd::Truncated(why) = native.end {
            complete = false;
            self.profile.note_problem(why);
        }
        let eval_frames = native
            .frames
            .iter()
            .filter(|a| self.is_eval_loop(**a))
            .count();
        let mut python = Vec::new();
        if eval_frames > 0 {
            self.python_threads.insert(s.tid);
            match early_python.unwrap_or_else(|| self.python_stack(s.tid, regs.sp, s.stack)) {
                Ok(frames) => python = frames,
                Err(why) => {
                    complete = false;
                    self.profile.note_problem(&why);
                }
            }
        } else {
            self.python_threads.remove(&s.tid);
        }
        if eval_frames > 0 && !python.is_empty() {
            self.python_from_the_sample(&native, &mut python, eval_frames, regs.sp, s.stack);
        }
        let mut runs = split_runs(&python);
        // The Python stack is read a moment after the sample. Calls made since then
        // add runs at the leaf end: those runs were not on the sampled stack.
        if runs.len() > eval_frames {
            runs.drain(..runs.len() - eval_frames);
            self.profile
                .note_problem("python frames newer than the sample dropped");
        }
        // py-spy's rule: the native stack may hold one more eval frame than the
        // interpreter (a frame being entered or left); the leafmost one then has no Python frames.
        let skip_leaf_eval = eval_frames == runs.len() + 1;
        if !python.is_empty() && eval_frames != runs.len() && !skip_leaf_eval {
            complete = false;
            self.profile
                .note_problem("python and native stacks disagree");
        }
        if !complete && log::log_enabled!(log::Level::Debug) {
            let names: Vec<String> = native
                .frames
                .iter()
                .map(|a| {
                    self.symbolizer.symbolize(&self.space, a.lookup()).frames[0]
                        .name
                        .clone()
                })
                .collect();
            let py: Vec<(&str, bool)> = python
                .iter()
                .map(|f| (f.function.as_str(), f.ends_eval_run))
                .collect();
            log::debug!("incomplete sample tid {}: {:?}; eval {eval_frames}; native {names:?}; python {py:?}", s.tid, native.end);
        }
        self.push_native(&native, &runs, skip_leaf_eval, &mut leaf_first);
        mark_export_wrappers(&mut leaf_first);
        self.mark_known_export_wrappers(&mut leaf_first);
        drop_interpreter_internals(&mut leaf_first);
        if native.end != StackEnd::Root {
            leaf_first.push(Frame::truncated());
        }
        Some((leaf_first, complete))
    }

    /// 3.8 to 3.10: the Python stack as it was at the sample, where the
    /// live one read after it (`python`) is not, from the leaf eval loop's
    /// frame object found on the sample's copy of the stack (see
    /// [`FrameSlots`]); and what agreeing samples teach of where it is.
    fn python_from_the_sample(
        &mut self,
        native: &NativeStack,
        python: &mut Vec<PyFrame>,
        eval_frames: usize,
        sp: u64,
        stack: &[u8],
    ) {
        if !matches!(&self.python, PythonState::Found(p) if p.frame_objects()) {
            return;
        }
        // Each eval loop: (the call site it returns to, its CFA).
        let evals: Vec<(u64, u64)> = native
            .frames
            .iter()
            .enumerate()
            .filter(|(_, a)| self.is_eval_loop(**a))
            .filter_map(|(k, _)| {
                let site = native.frames.get(k + 1)?.raw();
                Some((site, native.cfas.get(k).copied().filter(|&c| c != 0)?))
            })
            .collect();
        let (PythonState::Found(p), Some(live)) = (&mut self.python, self.memory) else {
            return;
        };
        let copy = StackMemory::new(sp, stack, None);
        let word = |addr: u64| copy.read_u64_in_copy(addr);
        let Some(&(leaf_site, leaf_cfa)) = evals.first() else {
            return;
        };
        let at_sample = self
            .frame_slots
            .slot(leaf_site)
            .and_then(|off| word(leaf_cfa.wrapping_add_signed(off)))
            .filter(|&f| f != 0);
        match at_sample {
            Some(f) if f != python[0].addr => {
                let memory = WithStackCopy {
                    base: sp,
                    copy: stack,
                    live: &live,
                };
                // Each eval loop's own frame where every place is learned,
                // as at the sample: a frame freed since is given to the next
                // call of its code (from any thread) and keeps naming its
                // function. The root's must be the live stack's (the same
                // thread, the places right).
                let root = python.last().map(|f| f.addr);
                let slots: Option<Vec<u64>> = evals
                    .iter()
                    .map(|&(site, cfa)| {
                        let off = self.frame_slots.slot(site)?;
                        word(cfa.wrapping_add_signed(off)).filter(|&f| f != 0)
                    })
                    .collect();
                let found = match slots {
                    Some(frames)
                        if frames.len() == eval_frames && frames.last() == root.as_ref() =>
                    {
                        p.frames_at(&memory, &frames).ok()
                    }
                    // Else walked from the leaf's, by `f_back`: taken only
                    // where it ends at the live stack's root (a freed frame's
                    // `f_back` may lead into another thread's stack).
                    _ => p
                        .stack_from_frame(&memory, f)
                        .ok()
                        .filter(|frames| frames.last().map(|f| f.addr) == root),
                };
                match found {
                    Some(frames) if frames.len() == eval_frames => {
                        *python = frames;
                        self.profile
                            .note_problem("python frames found from the sample's stack");
                    }
                    // Not where it was learned to be: a miss for that place.
                    _ => self.frame_slots.miss(leaf_site),
                }
            }
            _ if python.len() == eval_frames && evals.len() == eval_frames => {
                let frames: Vec<u64> = python.iter().map(|f| f.addr).collect();
                self.frame_slots.learn(&evals, &frames, word);
            }
            _ => {}
        }
    }

    fn is_eval_loop(&self, a: StackAddress) -> bool {
        self.space
            .module_at(a.lookup())
            .is_some_and(|m| m.object.kind_at(m.svma(a.lookup())) == Some(FrameKind::EvalLoop))
    }

    fn push_native(
        &mut self,
        native: &NativeStack,
        runs: &[&[PyFrame]],
        skip_leaf_eval: bool,
        out: &mut Vec<Frame>,
    ) {
        let mut runs = runs.iter();
        let mut skipped = !skip_leaf_eval;
        for &addr in &native.frames {
            if self.is_eval_loop(addr) {
                if !skipped {
                    skipped = true;
                    continue;
                }
                match runs.next() {
                    Some(run) => {
                        out.extend(run.iter().map(python_frame));
                        continue;
                    }
                    None if self.python_found() => {
                        // An eval loop whose Python frames we could not read: keep the native frame.
                    }
                    None => {}
                }
            }
            let sym = self.symbolizer.symbolize(&self.space, addr.lookup());
            for (nf, &runtime) in sym.frames.iter().zip(&sym.runtimes) {
                out.push(Frame {
                    name: nf.name.clone(),
                    runtime,
                    module: sym.module.as_deref().map(str::to_string),
                    file: nf.file.clone(),
                    line: nf.line,
                    seam: None,
                });
            }
        }
    }

    fn python_found(&self) -> bool {
        matches!(self.python, PythonState::Found(_))
    }

    /// The Python frames of thread `tid`, read through the sample's stack
    /// copy (`stack`, from `sp`) where it holds them (see [`WithStackCopy`]),
    /// or why they could not be read, as the problem to note.
    fn python_stack(
        &mut self,
        tid: u32,
        sp: u64,
        stack: &[u8],
    ) -> Result<Vec<PyFrame>, Cow<'static, str>> {
        const NO_INTERPRETER: &str =
            "python frames unreadable: no interpreter found in the process";
        let live = self.memory.ok_or(Cow::Borrowed(NO_INTERPRETER))?;
        let memory = WithStackCopy {
            base: sp,
            copy: stack,
            live: &live,
        };
        if let PythonState::NotYetFound { last_try } = &self.python {
            if last_try.is_some_and(|t| t.elapsed() < PYTHON_RETRY) {
                return Err(NO_INTERPRETER.into());
            }
            let maps =
                std::fs::read_to_string(format!("/proc/{}/maps", self.pid)).unwrap_or_default();
            self.python = match PythonProcess::find(self.pid, &maps) {
                Ok(Some(p)) => PythonState::Found(Box::new(p)),
                Ok(None) => PythonState::NotYetFound {
                    last_try: Some(Instant::now()),
                },
                Err(e) => PythonState::Unsupported(e.to_string()),
            };
        }
        let p = match &mut self.python {
            PythonState::Found(p) => p,
            // Why, in the problem's name: `seam top` shows it.
            PythonState::Unsupported(why) => {
                return Err(format!("python frames unreadable: {why}").into())
            }
            PythonState::NotYetFound { .. } => return Err(NO_INTERPRETER.into()),
        };
        match p.stack(&memory, tid) {
            Ok(Some(frames)) => Ok(frames),
            Ok(None) => Err("python frames unreadable: no thread state for this thread".into()),
            Err(e) => Err(unreadable_python(&e).into()),
        }
    }

    /// Counts a sample's stack; in seam's probe handling, the function whose
    /// probe trapped.
    fn count(
        &mut self,
        mut leaf_first: Vec<Frame>,
        complete: bool,
        tid: u32,
        in_probe: bool,
    ) -> Option<String> {
        let runtime_now = leaf_first.first().map_or(Runtime::Unknown, |f| f.runtime);
        leaf_first.reverse();
        let mut root_first = leaf_first;
        if !self.probed.is_empty() {
            let mut seen: Vec<&str> = Vec::new();
            for f in &root_first {
                let name = f.name.as_str();
                if self.probed.contains(name) && !seen.contains(&name) {
                    seen.push(name);
                    match self.sightings.get_mut(name) {
                        Some(n) => *n += 1,
                        None => {
                            self.sightings.insert(name.to_string(), 1);
                        }
                    }
                }
            }
        }
        let trap = self.count_boundaries(&mut root_first, in_probe);
        let leaf_first = root_first;
        let handles = leaf_first
            .into_iter()
            .map(|f| self.profile.intern_frame(f))
            .collect();
        let stack = self.profile.intern_stack(handles, complete);
        self.profile.add_samples(stack, tid, 1);
        self.samples += 1;
        self.profile.threads.entry(tid).or_default().runtime_now = Some(runtime_now);
        trap
    }

    /// Marks the seams on a root-first stack and counts its boundaries: each
    /// boundary once per sample, and the sample as glue time of the boundary
    /// whose glue is on CPU (kernel frames called from glue included).
    /// In seam's probe handling, the function whose probe trapped.
    fn count_boundaries(
        &mut self,
        root_first: &mut [Frame],
        at_probe_resume: bool,
    ) -> Option<String> {
        if !self.boundaries {
            return None;
        }
        let crossings = find_crossings(root_first);
        // A sample in seam's own breakpoint handling: probe overhead, not glue
        // time (see `probe_overhead` in the summary), and no function to probe.
        let in_probe = at_probe_resume || root_first.iter().any(is_probe_handler);
        let mut seen = Vec::new();
        for c in &crossings {
            root_first[c.callee_at].seam = Some(c.mechanism);
            let key = (c.caller, c.callee, c.mechanism);
            for f in &root_first[c.glue.start..=c.callee_at] {
                // Looked up by &str first: the name is cloned once per function, not per sample.
                let by_key = match self.votes.get_mut(f.name.as_str()) {
                    Some(v) => v,
                    None => self.votes.entry(f.name.clone()).or_default(),
                };
                *by_key.entry(key).or_default() += 1;
            }
            if let Some(site) = probe_candidate(root_first, c).filter(|_| !in_probe) {
                if self.candidates_seen.insert(site.clone()) {
                    self.candidates.push((site.0, site.1, key));
                }
            }
            if !seen.contains(&key) {
                seen.push(key);
                self.profile
                    .boundary_mut(c.caller, c.callee, c.mechanism)
                    .samples += 1;
            }
        }
        if in_probe {
            self.trap_samples += 1;
            self.profile.note_problem("samples in seam's probe handler");
            let probed = root_first
                .iter()
                .rev()
                .find(|f| f.runtime != Runtime::Kernel);
            return Some(probed.map_or_else(String::new, |f| f.name.clone()));
        }
        if let Some((caller, callee, mechanism)) = self.pending_boundary(root_first) {
            let b = self.profile.boundary_mut(caller, callee, mechanism);
            b.samples += 1;
            b.glue_samples += 1;
            // A call caught in its glue votes too: for its boundary when the glue
            // says where it goes, for an unknown callee otherwise (which shows
            // the glue busy, as a dispatcher's tight loop of calls to a function
            // too quick to be sampled does; see `Prober::tick`).
            let owner = root_first
                .iter()
                .rposition(|f| f.runtime == caller)
                .unwrap_or(0);
            for f in &root_first[owner + 1..] {
                if f.runtime == Runtime::Glue {
                    *self
                        .votes
                        .entry(f.name.clone())
                        .or_default()
                        .entry((caller, callee, mechanism))
                        .or_default() += 1;
                }
            }
        }
        None
    }

    /// The boundary of a call whose glue is on CPU (kernel code called from the
    /// glue included) and whose callee is not on the stack (yet, or any more):
    /// the glue names the mechanism, and the callee where the glue only leads
    /// one way; otherwise the callee stays unknown until the summary matches it
    /// to the boundaries with the same caller and mechanism.
    fn pending_boundary(&self, root_first: &[Frame]) -> Option<(Runtime, Runtime, Mechanism)> {
        let leaf = root_first
            .iter()
            .rposition(|f| f.runtime != Runtime::Kernel)?;
        // Glue, or support code the glue called (converting an argument in
        // the interpreter, a lock in libc, Go's runtime on the cgo path).
        let glue = glue_mask(root_first);
        if !glue[leaf] {
            return None;
        }
        let owner = (0..leaf).rev().find(|&i| {
            !glue[i]
                && matches!(
                    root_first[i].runtime,
                    Runtime::Python | Runtime::C | Runtime::Go | Runtime::Rust
                )
        })?;
        let mechanism = pending_mechanism(&root_first[owner], &root_first[owner + 1..=leaf])?;
        Some((
            root_first[owner].runtime,
            pending_callee(&root_first[owner + 1..=leaf]),
            mechanism,
        ))
    }

    /// The wrappers cgo generates for `//export`ed functions are glue even when
    /// the sample caught them before they reached `crosscall2`: a Go module's
    /// symbols name them (`_cgoexp_<hash>_NAME` beside `NAME`).
    fn mark_known_export_wrappers(&mut self, frames: &mut [Frame]) {
        for f in frames.iter_mut().filter(|f| f.runtime == Runtime::C) {
            let Some(module) = f.module.as_deref() else {
                continue;
            };
            if !self.export_wrappers.contains_key(module) {
                let names = self
                    .space
                    .modules()
                    .find(|m| m.object.path.rsplit('/').next() == Some(module))
                    .filter(|m| m.object.go.is_some())
                    .map(|m| {
                        m.object
                            .text_symbols()
                            .iter()
                            .filter_map(|s| s.name.strip_prefix("_cgoexp_"))
                            .filter_map(|rest| {
                                rest.split_once('_').map(|(_, name)| name.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.export_wrappers.insert(module.to_string(), names);
            }
            if self.export_wrappers[module].contains(&f.name) {
                f.runtime = Runtime::Glue;
            }
        }
    }

    /// The probed functions' sightings since the last call (see
    /// [`crate::probes::Sightings`]).
    pub fn take_sightings(&mut self) -> Sightings {
        std::mem::take(&mut self.sightings)
    }

    /// Tells which functions are probed, for their sightings.
    pub fn set_probed_symbols(&mut self, symbols: Vec<String>) {
        self.probed = symbols.into_iter().collect();
    }

    /// The samples' votes since the last call (see [`crate::probes`]).
    pub fn take_votes(&mut self) -> Votes {
        std::mem::take(&mut self.votes)
    }

    /// Each thread's on-CPU samples since the last call, with the function
    /// whose probe trapped for those in seam's probe traps (see
    /// [`crate::probes`]); nothing until [`Converter::keep_thread_samples`].
    pub fn take_thread_samples(&mut self) -> ThreadSamples {
        self.thread_samples
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Keeps each sample's thread, time and probe trap (if any), for
    /// [`Converter::take_thread_samples`] (which must then be called every
    /// so often).
    pub fn keep_thread_samples(&mut self) {
        self.thread_samples.get_or_insert_with(ThreadSamples::new);
    }

    /// On-CPU samples counted so far: the profile's [`Profile::samples`],
    /// without summing its stacks (for checks at every drain).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples of the target taken in seam's probe traps (the handler, or
    /// the instruction a trap returns to) so far.
    pub fn trap_samples(&self) -> u64 {
        self.trap_samples
    }

    /// Functions newly seen carrying a crossing that could be probed.
    pub fn take_candidates(&mut self) -> Vec<Candidate> {
        std::mem::take(&mut self.candidates)
    }

    pub fn address_space(&self) -> &AddressSpace {
        &self.space
    }

    /// The profile so far.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    pub fn into_profile(self) -> Profile {
        self.profile
    }
}

/// Where each eval loop's frame object is on the C stack, in 3.8 to 3.10,
/// which keep a thread's current frame only in its thread state (read from
/// the live process after the sample, when the thread may have moved on).
/// The frame object is its eval loop's argument, which the caller keeps
/// across the call (it releases the frame after): in a callee-saved
/// register that the eval loop's prologue saves, or in its own frame; at a
/// fixed distance from the eval loop's CFA for each call site (the address
/// the eval loop returns to). Learned from samples whose live Python stack
/// fits the native one, where the i-th eval loop from the leaf runs the
/// i-th frame: an offset is learned once it held its frame in 60% of at
/// least [`SLOT_MIN_SAMPLES`] of a call site's samples (a live stack read
/// late can fit the native one and still be another: 80% is usual).
#[derive(Default)]
struct FrameSlots {
    /// By call site: its samples, and the offsets from the CFA that held the frame.
    sites: HashMap<u64, (u64, HashMap<i64, u64>)>,
}

/// A call site's counts are halved past this many samples: what it learned
/// long ago weighs no more than what it learns now.
const SLOT_HALVE_AT: u64 = 1 << 16;

/// Where a frame object is looked for around its eval loop's CFA.
const SLOT_WINDOW: std::ops::Range<i64> = -256..256;
const SLOT_MIN_SAMPLES: u64 = 16;
/// Call sites remembered (an interpreter has a handful).
const MAX_SLOT_SITES: usize = 4096;

impl FrameSlots {
    /// `evals`: (call site, CFA) of each eval loop, leaf first; `frames`:
    /// the frame object each runs; `word`: the sample's stack.
    fn learn(&mut self, evals: &[(u64, u64)], frames: &[u64], word: impl Fn(u64) -> Option<u64>) {
        if self.sites.len() > MAX_SLOT_SITES {
            self.sites.clear();
        }
        for (&(site, cfa), &frame) in evals.iter().zip(frames) {
            let (samples, offsets) = self.sites.entry(site).or_default();
            if *samples >= SLOT_HALVE_AT {
                *samples /= 2;
                offsets.values_mut().for_each(|n| *n /= 2);
            }
            *samples += 1;
            for off in SLOT_WINDOW.step_by(8) {
                if word(cfa.wrapping_add_signed(off)) == Some(frame) {
                    *offsets.entry(off).or_default() += 1;
                }
            }
        }
    }

    /// A sample in which `site`'s learned place held no frame that fits.
    fn miss(&mut self, site: u64) {
        if let Some((samples, _)) = self.sites.get_mut(&site) {
            *samples += 1;
        }
    }

    /// The learned offset from the CFA of the frame object of an eval loop
    /// that returns to `site`.
    fn slot(&self, site: u64) -> Option<i64> {
        let (samples, offsets) = self.sites.get(&site)?;
        if *samples < SLOT_MIN_SAMPLES {
            return None;
        }
        offsets
            .iter()
            .filter(|&(_, &n)| n * 5 >= samples * 3)
            .max_by_key(|&(&off, &n)| (n, std::cmp::Reverse(off.abs())))
            .map(|(&off, _)| off)
    }
}

/// Kernel frames of uprobe handling: a sample there is the probes' own cost.
/// The breakpoint trap itself counts (`asm_exc_int3` from its entry to its
/// return to user space), and so does the single-step trap of a probed
/// instruction the kernel cannot emulate.
fn is_probe_handler(f: &Frame) -> bool {
    f.runtime == Runtime::Kernel
        && (f.name.contains("uprobe")
            || f.name == "handle_swbp"
            || f.name.starts_with("arch_uprobe")
            || matches!(
                f.name.as_str(),
                "asm_exc_int3" | "exc_int3" | "asm_exc_debug" | "exc_debug_user"
            ))
}

/// Why a thread left the CPU, from the names on its stack at switch-out: the
/// first rule (most specific first) with a frame on the stack names the cause,
/// then kernel I/O paths, then plain locks and futexes.
fn off_cpu_cause(root_first: &[Frame]) -> &'static str {
    const RULES: &[(&str, &str)] = &[
        ("_cgo_wait_runtime_init_done", "runtime-start"),
        ("take_gil", "gil"),
        ("PyEval_RestoreThread", "gil"),
        ("PyEval_AcquireThread", "gil"),
        ("PyGILState_Ensure", "gil"),
        ("runtime.needm", "needm"),
        ("runtime.needAndBindM", "needm"),
        ("runtime.dropm", "needm"),
        ("runtime.exitsyscall0", "go-p-handoff"),
        ("runtime.stopm", "go-p-handoff"),
        ("runtime.handoffp", "go-p-handoff"),
        ("runtime.exitsyscall", "go-p-handoff"),
        ("runtime.usleep", "sleep"),
        ("nanosleep", "sleep"),
        ("runtime.lock", "lock"),
        ("runtime.notesleep", "lock"),
    ];
    const IO: &[&str] = &[
        "read", "write", "recv", "send", "poll", "epoll", "accept", "connect", "select", "tcp_",
        "sock_", "pipe_", "vfs_",
    ];
    let named = |p: &str| root_first.iter().any(|f| f.name.contains(p));
    if let Some(&(_, cause)) = RULES.iter().find(|(p, _)| named(p)) {
        return cause;
    }
    if root_first
        .iter()
        .any(|f| f.runtime == Runtime::Kernel && IO.iter().any(|p| f.name.contains(p)))
    {
        return "io";
    }
    if [
        "futex",
        "pthread_mutex_lock",
        "__lll_lock_wait",
        "pthread_cond_",
    ]
    .iter()
    .any(|p| named(p))
    {
        return "lock";
    }
    "other"
}

/// The function to probe to count a crossing that no symbol names ahead of
/// time: (module file name, function name). A PyO3 call is counted at its
/// trampoline; ctypes, cffi's ABI mode, C extensions and plain C calls at the
/// callee's first frame; a callback into Python through a stripped `_ctypes`
/// or `_cffi_backend` (Debian's and Ubuntu's CPython strip `_ctypes`, whose
/// `_CallPythonObject` is then known by its entry only) at the last of
/// their unnamed frames. Go code is never probed, nor is the interpreter.
fn probe_candidate(root_first: &[Frame], c: &Crossing) -> Option<(String, String)> {
    let frame = match c.mechanism {
        // The entry from Python: the rootmost trampoline, not the generic
        // `pyo3::impl_::trampoline::trampoline` that every entry calls.
        Mechanism::Pyo3 => root_first[c.glue.clone()]
            .iter()
            .find(|f| is_pyo3_trampoline(&f.name))?,
        Mechanism::CffiApi => root_first[c.glue.clone()]
            .iter()
            .find(|f| f.name.starts_with("_cffi_f_"))?,
        Mechanism::Ctypes | Mechanism::CffiAbi | Mechanism::Cext | Mechanism::CAbi => {
            &root_first[c.callee_at]
        }
        Mechanism::Callback => root_first[c.glue.clone()].iter().rev().find(|f| {
            f.name.starts_with('[')
                && f.module
                    .as_deref()
                    .and_then(crate::crossing::mechanism_of_module)
                    .is_some()
        })?,
        _ => return None,
    };
    if !matches!(frame.runtime, Runtime::C | Runtime::Rust | Runtime::Glue) {
        return None;
    }
    let module = frame.module.clone()?;
    if module.starts_with("libpython") || module.starts_with("python3") {
        return None;
    }
    Some((module, frame.name.clone()))
}

/// Why a thread's Python frames could not be read, as the problem to note.
fn unreadable_python(e: &crate::Error) -> &'static str {
    match e {
        // What the walk found inconsistent: the frames it read from the live
        // thread changed under it.
        crate::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData => {
            "python frames unreadable: they changed while being read"
        }
        crate::Error::PermissionDenied { .. } => {
            "python frames unreadable: no permission to read the process's memory"
        }
        // Memory no longer mapped: the thread had returned from them.
        _ => "python frames unreadable: their memory was gone (the thread had moved on)",
    }
}

/// The C function that calls `crosscall2` is the wrapper cgo generates for an
/// `//export`ed Go function: glue, whatever its name (DESIGN.md).
fn mark_export_wrappers(leaf_first: &mut [Frame]) {
    for i in 1..leaf_first.len() {
        if leaf_first[i - 1].name == "crosscall2" && leaf_first[i].runtime == Runtime::C {
            leaf_first[i].runtime = Runtime::Glue;
        }
    }
}

/// A Python function frame read from the interpreter (not a native frame of it).
fn is_python_function(f: &Frame) -> bool {
    f.runtime == Runtime::Python && f.module.is_none()
}

/// Drops the interpreter's own C frames that sit between two Python function
/// frames (`_PyEval_Vector`, `method_vectorcall`, ...): the Python frames
/// already say who called whom, as py-spy shows them. Interpreter frames
/// leafward of the last Python frame (where the time is spent) and rootward
/// of the first (how the thread started) stay, and glue always stays.
fn drop_interpreter_internals(leaf_first: &mut Vec<Frame>) {
    let (Some(leafmost), Some(rootmost)) = (
        leaf_first.iter().position(is_python_function),
        leaf_first.iter().rposition(is_python_function),
    ) else {
        return;
    };
    let mut i = 0;
    leaf_first.retain(|f| {
        let keep =
            i <= leafmost || i >= rootmost || f.runtime != Runtime::Python || f.module.is_none();
        i += 1;
        keep
    });
}

fn python_frame(f: &PyFrame) -> Frame {
    Frame {
        name: f.function.clone(),
        runtime: Runtime::Python,
        module: None,
        file: Some(f.file.clone()),
        line: f.line,
        seam: None,
    }
}

/// Splits a Python stack (leaf first) into the runs that each native eval-loop frame executes.
fn split_runs(frames: &[PyFrame]) -> Vec<&[PyFrame]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for (i, f) in frames.iter().enumerate() {
        if f.ends_eval_run {
            runs.push(&frames[start..=i]);
            start = i + 1;
        }
    }
    if start < frames.len() {
        runs.push(&frames[start..]);
    }
    runs
}

/// The kernel part (leaf first) and the user part of a perf callchain.
fn split_callchain(chain: &[u64]) -> (&[u64], &[u64]) {
    let user_at = chain
        .iter()
        .position(|&a| a == PERF_CONTEXT_USER)
        .unwrap_or(chain.len());
    let kernel = &chain[..user_at];
    let kernel = match kernel.first() {
        Some(&a) if a >= PERF_CONTEXT_MAX => &kernel[1..],
        _ => kernel,
    };
    let user = chain.get(user_at + 1..).unwrap_or(&[]);
    (kernel, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A callback's sample whose Python frames were gone when seam read them
    /// (its reader came late): no crossing into Python is found on its
    /// stack, so it votes for nothing, but the probed function on its native
    /// stack is sighted, once a sample, and the budget's gaps are judged
    /// busy by that (`chain` sharing a CPU read its callbacks 19-37% low in
    /// 4 rounds of 7 when only votes showed them).
    #[test]
    fn a_probed_function_is_sighted_without_a_crossing() {
        let mut c = Converter::new(1, None);
        let native = |name: &str, runtime, module: &str| Frame {
            module: Some(module.to_string()),
            ..Frame::new(name, runtime)
        };
        let stack = || {
            vec![
                native("PyObject_Call", Runtime::Python, "python3.11"),
                native("_CallPythonObject", Runtime::Glue, "_ctypes.so"),
                native("_CallPythonObject", Runtime::Glue, "_ctypes.so"),
                native("ffi_closure_unix64", Runtime::Glue, "libffi.so.8"),
                native("chain_invoke_cb", Runtime::C, "libseamchain.so"),
            ]
        };
        c.count(stack(), false, 7, false);
        assert!(c.take_sightings().is_empty(), "nothing is probed yet");
        c.set_probed_symbols(vec!["_CallPythonObject".into(), "ChainWork".into()]);
        c.count(stack(), false, 7, false);
        c.count(stack(), false, 7, false);
        assert!(!c.take_votes().contains_key("_CallPythonObject"));
        let sighted = c.take_sightings();
        assert_eq!(sighted.get("_CallPythonObject"), Some(&2), "{sighted:?}");
        assert_eq!(sighted.get("ChainWork"), None);
        assert!(c.take_sightings().is_empty(), "taken");
    }

    /// An eval loop's frame object, 56 bytes below its CFA in 4 samples of
    /// 5 (the fifth's live stack fit the native one but was another), is
    /// found there once 16 samples say so; not before, nor where it moves.
    #[test]
    fn frame_slots_are_learned_per_call_site() {
        let (site, other) = (0x5000_1234u64, 0x5000_9999u64);
        let mut slots = FrameSlots::default();
        let stack = |cfa: u64, frame: u64| move |addr: u64| (addr == cfa - 56).then_some(frame);
        for i in 0..15u64 {
            let frame = if i % 5 == 4 { 0xdead } else { 0x7f00_0000 + i };
            slots.learn(
                &[(site, 0x1000 + i * 64)],
                &[0x7f00_0000 + i],
                stack(0x1000 + i * 64, frame),
            );
        }
        assert_eq!(slots.slot(site), None, "15 samples are too few");
        slots.learn(
            &[(site, 0x9000)],
            &[0x7f00_0100],
            stack(0x9000, 0x7f00_0100),
        );
        assert_eq!(slots.slot(site), Some(-56));
        assert_eq!(slots.slot(other), None);
        // A place that stops holding a frame that fits is unlearned.
        let mut stale = FrameSlots {
            sites: slots.sites.clone(),
        };
        for _ in 0..10 {
            stale.miss(site);
        }
        assert_eq!(stale.slot(site), None);
        // A call site whose frame is nowhere in particular learns nothing.
        for i in 0..40u64 {
            let cfa = 0x2000 + i * 64;
            let moving = move |addr: u64| (addr == cfa - 8 * (i % 7 + 1)).then_some(0x7f00_0000);
            slots.learn(&[(other, cfa)], &[0x7f00_0000], moving);
        }
        assert_eq!(slots.slot(other), None);
    }

    fn py(name: &str, ends: bool) -> PyFrame {
        PyFrame {
            function: name.into(),
            file: "x.py".into(),
            line: Some(1),
            ends_eval_run: ends,
            addr: 0,
        }
    }

    /// The problem says why: a frame that changed while being read, memory
    /// unmapped since the sample, or no permission.
    #[test]
    fn unreadable_python_frames_say_why() {
        let changed = crate::Error::io(
            "reading",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "f_code is not a code object",
            ),
            Some(1),
        );
        assert!(unreadable_python(&changed).ends_with("they changed while being read"));
        let gone = crate::Error::io(
            "reading",
            std::io::Error::from_raw_os_error(libc::EFAULT),
            Some(1),
        );
        assert!(unreadable_python(&gone).contains("memory was gone"));
        let denied = crate::Error::io(
            "reading",
            std::io::Error::from_raw_os_error(libc::EPERM),
            Some(1),
        );
        assert!(unreadable_python(&denied).contains("no permission"));
    }

    #[test]
    fn runs_split_at_entry_frames() {
        let frames = [
            py("leaf", false),
            py("cb", true),
            py("work", false),
            py("<module>", true),
        ];
        let runs = split_runs(&frames);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].len(), 2);
        assert_eq!(runs[1][1].function, "<module>");
        assert!(split_runs(&[]).is_empty());
        assert_eq!(split_runs(&[py("a", false)]).len(), 1);
    }

    #[test]
    fn interpreter_internals_between_python_frames_go() {
        let native = |name: &str, rt| Frame {
            module: Some("libpython3.12.so".into()),
            ..Frame::new(name, rt)
        };
        let py = |name: &str| Frame {
            file: Some("x.py".into()),
            ..Frame::new(name, Runtime::Python)
        };
        let mut leaf_first = vec![
            native("PyLong_FromLong", Runtime::Python),
            py("leaf"),
            native("_PyEval_Vector", Runtime::Python),
            native("PyCFuncPtr_call", Runtime::Glue),
            py("caller"),
            native("pythread_wrapper", Runtime::Python),
        ];
        drop_interpreter_internals(&mut leaf_first);
        let names: Vec<&str> = leaf_first.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "PyLong_FromLong",
                "leaf",
                "PyCFuncPtr_call",
                "caller",
                "pythread_wrapper"
            ]
        );
    }

    #[test]
    fn off_cpu_causes_from_the_stack() {
        let f = |name: &str, runtime: Runtime| Frame::new(name, runtime);
        let futex = [
            f("syscall", Runtime::C),
            f("futex_wait", Runtime::Kernel),
            f("schedule", Runtime::Kernel),
        ];
        for (path, want) in [
            (
                vec![
                    f("_ctypes_callproc", Runtime::Glue),
                    f("take_gil", Runtime::Glue),
                ],
                "gil",
            ),
            (
                vec![
                    f("runtime.exitsyscall0", Runtime::Go),
                    f("runtime.stopm", Runtime::Go),
                ],
                "go-p-handoff",
            ),
            (
                vec![
                    f("GoNoop", Runtime::Glue),
                    f("_cgo_wait_runtime_init_done", Runtime::Glue),
                ],
                "runtime-start",
            ),
            (vec![f("runtime.needm", Runtime::Glue)], "needm"),
            (vec![f("pthread_mutex_lock", Runtime::C)], "lock"),
            (vec![f("main", Runtime::C)], "lock"),
        ] {
            let stack: Vec<Frame> = path.into_iter().chain(futex.iter().cloned()).collect();
            assert_eq!(off_cpu_cause(&stack), want, "{stack:?}");
        }
        let read = [
            f("main", Runtime::C),
            f("vfs_read", Runtime::Kernel),
            f("schedule", Runtime::Kernel),
        ];
        assert_eq!(off_cpu_cause(&read), "io");
        assert_eq!(off_cpu_cause(&[f("main", Runtime::C)]), "other");
    }

    #[test]
    fn export_wrappers_are_glue() {
        let mut frames = vec![
            Frame::new("crosscall2", Runtime::Glue),
            Frame::new("ChainWork", Runtime::C),
            Frame::new("main", Runtime::C),
        ];
        mark_export_wrappers(&mut frames);
        assert_eq!(frames[1].runtime, Runtime::Glue);
        assert_eq!(frames[2].runtime, Runtime::C);
    }

    #[test]
    fn callchain_contexts() {
        let k = (-128i64) as u64;
        let chain = [k, 0xffff1, 0xffff2, PERF_CONTEXT_USER, 0x401000, 0x402000];
        assert_eq!(split_callchain(&chain), (&chain[1..3], &chain[4..]));
        assert_eq!(
            split_callchain(&[PERF_CONTEXT_USER, 1]),
            (&[][..], &[1u64][..])
        );
        assert_eq!(split_callchain(&[]), (&[][..], &[][..]));
    }
}
