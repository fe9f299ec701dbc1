//! A deterministic stand-in for a recording: a profile that grows the way a
//! real one does (new frames and stacks early, then mostly counts), with every
//! kind of metadata. Used by the protocol and storage tests and benchmarks,
//! which must run without perf events.

use crate::{Frame, FrameHandle, Mechanism, Profile, Runtime, StackHandle};

const RUNTIMES: [Runtime; 5] = [
    Runtime::Python,
    Runtime::C,
    Runtime::Go,
    Runtime::Rust,
    Runtime::Glue,
];

/// A profile fed with pseudo-random samples from a seed.
#[derive(Debug)]
pub struct SyntheticRecording {
    profile: Profile,
    state: u64,
    stacks: Vec<StackHandle>,
}

impl SyntheticRecording {
    pub fn new(seed: u64) -> SyntheticRecording {
        let mut profile = Profile::default();
        profile.target.pid = 4242;
        profile.target.command = vec!["python3".into(), "work.py".into()];
        profile.rate_hz = 999;
        SyntheticRecording {
            profile,
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            stacks: Vec::new(),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Adds `samples` samples: mostly on stacks seen before, sometimes on new
    /// ones made of known and new frames; now and then a loss or a problem.
    pub fn advance(&mut self, samples: u32) {
        for _ in 0..samples {
            let reuse = !self.stacks.is_empty() && self.next(100) < 97;
            let stack = if reuse {
                // Skewed towards the first stacks, like real programs' hot paths.
                let i = self
                    .next(self.stacks.len() as u64)
                    .min(self.next(self.stacks.len() as u64));
                self.stacks[i as usize]
            } else {
                self.new_stack()
            };
            let tid = 100 + self.next(4) as u32;
            self.profile.add_samples(stack, tid, 1);
            self.profile.threads.entry(tid).or_default().name = format!("worker-{tid}");
            let in_glue = self.next(10) == 0;
            let b = self
                .profile
                .boundary_mut(Runtime::Python, Runtime::Go, Mechanism::Ctypes);
            b.samples += 1;
            b.glue_samples += in_glue as u64;
            match self.next(500) {
                0 => self.profile.lost.kernel += 1,
                1 => self
                    .profile
                    .note_problem("frames past a stack switch taken from an earlier walk"),
                _ => {}
            }
        }
    }

    /// Ends the recording as the agent does: sets its duration.
    pub fn finish(&mut self, duration_s: f64) {
        self.profile.duration_s = duration_s;
    }

    fn new_stack(&mut self) -> StackHandle {
        let depth = 1 + self.next(40) as usize;
        let mut frames: Vec<FrameHandle> = Vec::with_capacity(depth);
        for level in 0..depth {
            let known = self.profile.frames.len() as u64;
            let handle = if known > 0 && self.next(10) < 8 {
                FrameHandle(self.next(known) as u32)
            } else {
                let runtime = RUNTIMES[self.next(RUNTIMES.len() as u64) as usize];
                let mut frame = Frame::new(format!("fn_{}_{level}", self.next(1 << 20)), runtime);
                if runtime == Runtime::Python {
                    frame.file = Some("/srv/app/work.py".into());
                    frame.line = Some(self.next(900) as u32 + 1);
                } else {
                    frame.module = Some(format!("lib{}.so", runtime.as_str()));
                }
                if self.next(8) == 0 {
                    frame.seam = Some(Mechanism::CgoCall);
                }
                self.profile.intern_frame(frame)
            };
            frames.push(handle);
        }
        let complete = self.next(10) > 0;
        let stack = self.profile.intern_stack(frames, complete);
        if !self.stacks.contains(&stack) {
            self.stacks.push(stack);
        }
        stack
    }

    /// xorshift64*: a number below `n`.
    fn next(&mut self, n: u64) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
