//! seam's views of a [`Profile`](seam_proto::Profile): folded stacks, a flamegraph SVG
//! coloured by runtime, the JSON summary (`summary.json`) with its short human form, pprof
//! (gzipped protobuf, for `go tool pprof`, Pyroscope and Parca) and speedscope's JSON. A
//! [`Format`] names each file view, as `seam record --format` does. [`write_diff_flamegraph`]
//! compares two profiles (`seam diff`).
//!
//! Every view is a function from a `&Profile` to a writer: nothing here prints, reads the
//! clock or picks anything at random, so the same profile always gives the same bytes and the
//! outputs can be checked against golden files. Frames are named the same way everywhere:
//! `<runtime>:<name>` (see [`folded_frame`]), so a frame's runtime can be read back from any
//! view with [`parse_folded_frame`].
//!
//! ```
//! use seam_export::{summarize, write_folded, DEFAULT_TOP_STACKS};
//! use seam_proto::{Frame, Profile, Runtime};
//!
//! let mut profile = Profile::default();
//! let root = profile.intern_frame(Frame::new("_start", Runtime::C));
//! let leaf = profile.intern_frame(Frame::new("main.work", Runtime::Go));
//! let stack = profile.intern_stack(vec![root, leaf], true);
//! profile.add_samples(stack, 1, 3);
//!
//! let mut folded = Vec::new();
//! write_folded(&profile, &mut folded).unwrap();
//! assert_eq!(folded, b"c:_start;go:main.work 3\n");
//!
//! let summary = summarize(&profile, DEFAULT_TOP_STACKS);
//! assert_eq!(summary.runtimes[&Runtime::Go].self_samples, 3);
//! assert_eq!(summary.complete_share, 1.0);
//! ```

mod diff;
mod error;
mod flamegraph;
mod folded;
mod format;
mod palette;
mod pprof;
mod speedscope;
mod summary;

pub use diff::{diff_title, write_diff_flamegraph, DiffInput, DiffOptions, DiffReport};
pub use error::ExportError;
pub use flamegraph::{flamegraph_title, off_cpu_view, write_flamegraph, write_off_cpu_flamegraph};
pub use folded::{folded_frame, parse_folded_frame, write_folded};
pub use format::{Format, DEFAULT_FORMATS};
pub use palette::{frame_color, runtime_color, Rgb};
pub use pprof::{write_pprof, LABEL_COMPLETE, LABEL_RUNTIME, LABEL_RUNTIMES, LABEL_SEAMS};
pub use speedscope::{speedscope_frame_name, write_speedscope, SPEEDSCOPE_SCHEMA};
pub use summary::{
    glue_ns_text, percent, print_summary, summarize, thousands, write_summary_json,
    BoundarySummary, RuntimeSamples, StackSummary, Summary, ThreadSummary, DEFAULT_TOP_STACKS,
    SUMMARY_FORMAT_VERSION,
};
