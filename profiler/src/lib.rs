//! seam's core library: it samples a process with perf_event_open, unwinds
//! each sample into one stack across Python, C, Go and Rust, symbolizes and
//! classifies the frames, and aggregates them into a [`seam_proto::Profile`].
//!
//! Design constraints: no printing, no exiting, no terminal. Errors are one
//! [`Error`] type whose messages tell the user what to do; lossy input (an
//! unreadable frame, an unknown symbol) is counted in the profile, not failed.
//!
//! The pipeline: [`perf::Sampler`] (records) -> [`converter::Converter`]
//! ([`unwind`], [`python`], [`symbolize`], [`classify`]) -> `Profile`.

pub mod classify;
pub mod converter;
pub mod crossing;
pub mod fixture;
pub mod gocount;
pub mod memory;
pub mod modules;
pub mod perf;
pub mod probes;
pub mod python;
pub mod symbolize;
pub mod unwind;

mod error;
pub use error::Error;
