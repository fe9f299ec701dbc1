//! seam's agent: attaches to a process or launches a command, drives the
//! sampler over the recording and hands the records to the converter.
//!
//! It never prints and never exits: progress goes through a callback and
//! problems come back as [`Error`]s or as warnings in the [`Recording`].

mod launch;
mod record;

pub use record::{
    monotonic_ns, record, CrossingsMode, Progress, RecordOptions, Recording, TargetSpec,
    DEFAULT_BUDGET,
};
pub use seam_profiler::Error;
