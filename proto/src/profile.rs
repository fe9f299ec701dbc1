use crate::{Boundary, Mechanism, ProbeOverhead, Runtime, SamplingOverhead};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One symbolized frame. Python frames carry the function, file and line;
/// native frames carry the function and, where DWARF says, the source line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    pub name: String,
    pub runtime: Runtime,
    /// The file name of the ELF module (native frames only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Set on the first frame of a callee reached through a crossing: the seam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seam: Option<Mechanism>,
}

impl Frame {
    pub fn new(name: impl Into<String>, runtime: Runtime) -> Frame {
        Frame {
            name: name.into(),
            runtime,
            module: None,
            file: None,
            line: None,
            seam: None,
        }
    }

    /// The explicit marker put where a stack could not be completed.
    pub fn truncated() -> Frame {
        Frame::new(Frame::TRUNCATED, Runtime::Unknown)
    }

    pub const TRUNCATED: &'static str = "[truncated]";

    pub fn is_truncated(&self) -> bool {
        self.runtime == Runtime::Unknown && self.name == Frame::TRUNCATED
    }
}

/// Index into [`Profile::frames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FrameHandle(pub u32);

/// Index into [`Profile::stacks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StackHandle(pub u32);

/// An interned stack, root first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stack {
    pub frames: Vec<FrameHandle>,
    /// True when the stack reaches the thread's root with no gap.
    pub complete: bool,
}

/// What was profiled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub pid: u32,
    pub command: Vec<String>,
}

/// Samples that were taken but not kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Records the kernel dropped because a ring buffer was full (PERF_RECORD_LOST).
    pub kernel: u64,
    /// Samples seam dropped itself (a record it could not parse, a thread it could not read).
    pub seam: u64,
}

impl Lost {
    pub fn total(&self) -> u64 {
        self.kernel + self.seam
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadInfo {
    pub name: String,
    pub samples: u64,
    /// The runtime on CPU (the leaf frame's) in the thread's latest sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_now: Option<Runtime>,
    /// Time off CPU in ns, by cause (as the boundaries' `causes`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub off_cpu_ns: BTreeMap<String, u64>,
}

/// Processes the target started: how many, and the first few pids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildProcesses {
    pub count: u64,
    pub pids: Vec<u32>,
}

impl ChildProcesses {
    /// Pids kept (a shell script may start thousands of processes).
    pub const PIDS_KEPT: usize = 16;

    pub fn started(&mut self, pid: u32) {
        self.count += 1;
        if self.pids.len() < Self::PIDS_KEPT {
            self.pids.push(pid);
        }
    }
}

/// A recorded profile: interned frames and stacks with their sample counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub target: Target,
    /// The sampling frequency asked for, in Hz.
    pub rate_hz: u32,
    /// Wall-clock length of the recording, in seconds.
    pub duration_s: f64,
    pub frames: Vec<Frame>,
    pub stacks: Vec<Stack>,
    /// Samples per stack, indexed by [`StackHandle`].
    pub counts: Vec<u64>,
    pub threads: BTreeMap<u32, ThreadInfo>,
    pub lost: Lost,
    /// Why samples were truncated or frames were unreadable, with counts.
    pub problems: BTreeMap<String, u64>,
    /// The boundaries the stacks crossed, in the order first seen.
    pub boundaries: Vec<Boundary>,
    /// Off-CPU time per stack in ns, indexed by [`StackHandle`] (the stack at
    /// switch-out; shorter than `stacks` when the last stacks were never off CPU).
    #[serde(default)]
    pub off_cpu_ns: Vec<u64>,
    /// Context switches per stack at switch-out, indexed like `off_cpu_ns`.
    #[serde(default)]
    pub switch_counts: Vec<u64>,
    /// When the recording started (CLOCK_MONOTONIC ns, the clock of sample timestamps).
    #[serde(default)]
    pub start_ns: u64,
    /// What seam's probes cost the target, when crossings were counted.
    #[serde(default)]
    pub probe_overhead: Option<ProbeOverhead>,
    /// CPU time seam's own process used so far (all its threads), in seconds.
    #[serde(default)]
    pub seam_cpu_s: f64,
    /// What sampling cost the target.
    #[serde(default)]
    pub sampling_overhead: Option<SamplingOverhead>,
    /// Processes the target started while recorded, which seam does not
    /// record (it records one process).
    #[serde(default)]
    pub child_processes: ChildProcesses,
    #[serde(skip)]
    frame_index: FastMap<Frame, FrameHandle>,
    #[serde(skip)]
    stack_index: FastMap<Stack, StackHandle>,
}

/// The intern indexes are hashed at every frame of every sample: with
/// foldhash (randomly seeded per process), not the default SipHash, which
/// took 9% of the recorder's CPU on `chain`.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

impl Profile {
    pub fn intern_frame(&mut self, frame: Frame) -> FrameHandle {
        if let Some(&h) = self.frame_index.get(&frame) {
            return h;
        }
        let h = FrameHandle(self.frames.len() as u32);
        self.frames.push(frame.clone());
        self.frame_index.insert(frame, h);
        h
    }

    pub fn intern_stack(&mut self, frames: Vec<FrameHandle>, complete: bool) -> StackHandle {
        let stack = Stack { frames, complete };
        if let Some(&h) = self.stack_index.get(&stack) {
            return h;
        }
        let h = StackHandle(self.stacks.len() as u32);
        self.stacks.push(stack.clone());
        self.counts.push(0);
        self.stack_index.insert(stack, h);
        h
    }

    /// Counts `n` samples of `stack` on thread `tid`.
    pub fn add_samples(&mut self, stack: StackHandle, tid: u32, n: u64) {
        self.counts[stack.0 as usize] += n;
        self.threads.entry(tid).or_default().samples += n;
    }

    /// Adds off-CPU time and `switches` context switches to the stack at switch-out.
    pub fn add_off_cpu(&mut self, stack: StackHandle, ns: u64, switches: u64) {
        let i = stack.0 as usize;
        if self.off_cpu_ns.len() <= i {
            self.off_cpu_ns.resize(i + 1, 0);
            self.switch_counts.resize(i + 1, 0);
        }
        self.off_cpu_ns[i] += ns;
        self.switch_counts[i] += switches;
    }

    pub fn frame(&self, h: FrameHandle) -> &Frame {
        &self.frames[h.0 as usize]
    }

    pub fn stack(&self, h: StackHandle) -> &Stack {
        &self.stacks[h.0 as usize]
    }

    /// Kept on-CPU samples.
    pub fn samples(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn complete_samples(&self) -> u64 {
        self.stacks
            .iter()
            .zip(&self.counts)
            .filter(|(s, _)| s.complete)
            .map(|(_, c)| c)
            .sum()
    }

    /// Stacks with at least one sample, heaviest first.
    pub fn stacks_by_weight(&self) -> Vec<(StackHandle, u64)> {
        let mut v: Vec<_> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (StackHandle(i as u32), c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// The counts of a boundary, created at zero when new.
    pub fn boundary_mut(
        &mut self,
        caller: Runtime,
        callee: Runtime,
        mechanism: Mechanism,
    ) -> &mut Boundary {
        let i = match self
            .boundaries
            .iter()
            .position(|b| b.caller == caller && b.callee == callee && b.mechanism == mechanism)
        {
            Some(i) => i,
            None => {
                self.boundaries
                    .push(Boundary::new(caller, callee, mechanism));
                self.boundaries.len() - 1
            }
        };
        &mut self.boundaries[i]
    }

    /// Counts one occurrence of a named problem (see [`Profile::problems`]).
    pub fn note_problem(&mut self, what: &str) {
        *self.problems.entry(what.to_string()).or_default() += 1;
    }

    /// Rebuilds the intern indexes after deserialization.
    pub fn reindex(&mut self) {
        self.frame_index = self
            .frames
            .iter()
            .cloned()
            .zip((0..).map(FrameHandle))
            .collect();
        self.stack_index = self
            .stacks
            .iter()
            .cloned()
            .zip((0..).map(StackHandle))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_counts_add_up() {
        let mut p = Profile::default();
        let a = p.intern_frame(Frame::new("a", Runtime::C));
        let b = p.intern_frame(Frame::new("b", Runtime::Go));
        assert_eq!(p.intern_frame(Frame::new("a", Runtime::C)), a);
        assert_ne!(p.intern_frame(Frame::new("a", Runtime::Rust)), a);
        let s1 = p.intern_stack(vec![a, b], true);
        let s2 = p.intern_stack(vec![a], false);
        assert_eq!(p.intern_stack(vec![a, b], true), s1);
        p.add_samples(s1, 7, 5);
        p.add_samples(s2, 8, 2);
        p.add_samples(s1, 8, 1);
        assert_eq!(p.samples(), 8);
        assert_eq!(p.complete_samples(), 6);
        assert_eq!(p.stacks_by_weight(), vec![(s1, 6), (s2, 2)]);
        assert_eq!(p.threads[&8].samples, 3);
    }

    #[test]
    fn survives_json_round_trip() {
        let mut p = Profile::default();
        let a = p.intern_frame(Frame::truncated());
        let s = p.intern_stack(vec![a], false);
        p.add_samples(s, 1, 1);
        let mut q: Profile = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        q.reindex();
        assert_eq!(q.intern_frame(Frame::truncated()), a);
        assert!(q.frame(a).is_truncated());
    }
}
