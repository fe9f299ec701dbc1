//! seam's agent: attaches to a process or launches a command, drives the
//! sampler over the recording and hands the records to the converter.
//!
//! It never prints and never exits: progress goes through a callback and
//! problems come back as [`Error`]s or as warnings in the [`Recording`].
//! [`stream`] sends the recording to a collector as it grows instead.

mod launch;
mod record;
pub mod stream;

pub use record::{
    check_target_pid, measure_sampling, monotonic_ns, over_budget_warning, rate_fitting_budget,
    record, record_with_ticks, sampling_overhead, sampling_part, CrossingsMode, OffCpuMode,
    Progress, RecordOptions, Recording, TargetSpec, BUDGET_SPENT, DEFAULT_BUDGET, END_GRACE, TICK,
};
pub use seam_profiler::Error;
