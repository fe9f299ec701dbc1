//! seam's plain-data layer: the vocabulary (runtime, frame, stack) and the
//! [`Profile`] that every view is drawn from.
//!
//! This crate has no perf, unwinding or terminal dependency, so that the
//! exporters, the collector and the dashboard can use it without linking the
//! sampler. Frames and stacks are interned: a [`FrameHandle`] or
//! [`StackHandle`] is an index into the profile's tables.
//!
//! The agent → collector protocol lives here too: [`delta`] turns a growing
//! profile into the changes to send and back, [`wire`] holds the messages and
//! their framing, with no I/O of its own; [`viewer`] the messages between a
//! collector and `seam top --collector`.
//!
//! ```
//! use seam_proto::{Frame, Profile, Runtime};
//! let mut profile = Profile::default();
//! let root = profile.intern_frame(Frame::new("_start", Runtime::C));
//! let leaf = profile.intern_frame(Frame::new("main.work", Runtime::Go));
//! let stack = profile.intern_stack(vec![root, leaf], true);
//! profile.add_samples(stack, 1, 3);
//! assert_eq!(profile.samples(), 3);
//! ```

mod boundary;
pub mod delta;
mod profile;
mod runtime;
pub mod synthetic;
pub mod viewer;
pub mod wire;

pub use boundary::{
    Boundary, CrossingsMethod, Mechanism, ProbeOverhead, SamplingOverhead, Switches,
};
pub use profile::{
    ChildProcesses, Frame, FrameHandle, Lost, Profile, Stack, StackHandle, Target, ThreadInfo,
};
pub use runtime::Runtime;
