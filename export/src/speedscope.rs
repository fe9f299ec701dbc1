//! speedscope: the JSON file format that <https://www.speedscope.app> opens, with one
//! `sampled` profile.

use crate::folded::{no_frames, sampled_stacks};
use crate::{flamegraph_title, ExportError};
use seam_proto::{Frame, Profile, Runtime};
use serde::Serialize;
use std::collections::HashMap;
use std::io;

/// The `$schema` of a speedscope file: the URL of the file format's JSON schema.
pub const SPEEDSCOPE_SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    name: &'a str,
    exporter: &'static str,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    shared: Shared,
    profiles: [SampledProfile<'a>; 1],
}

#[derive(Serialize)]
struct Shared {
    frames: Vec<SpeedscopeFrame>,
}

#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
struct SpeedscopeFrame {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampledProfile<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    unit: &'static str,
    start_value: u64,
    end_value: u64,
    /// Indexes into `shared.frames`, root first.
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
}

/// A frame's name in speedscope: `<name> [<runtime>]`, or `<name> [<runtime>, seam
/// <mechanism>]` for the first frame of a callee reached through a crossing. The
/// `[truncated]` and `[no frames]` markers keep their bare names.
pub fn speedscope_frame_name(frame: &Frame) -> String {
    if frame.is_truncated() || *frame == no_frames() {
        return frame.name.clone();
    }
    match frame.seam {
        Some(m) => format!("{} [{}, seam {}]", frame.name, frame.runtime, m.as_str()),
        None => format!("{} [{}]", frame.name, frame.runtime),
    }
}

/// speedscope merges nothing by name, so frames are made as coarse as folded stacks make
/// them: a native function is one frame whatever line was sampled (its file is kept), a
/// Python frame keeps its line, which tells the call sites of one function apart.
fn speedscope_frame(frame: &Frame) -> SpeedscopeFrame {
    SpeedscopeFrame {
        name: speedscope_frame_name(frame),
        file: frame.file.clone(),
        line: frame.line.filter(|_| frame.runtime == Runtime::Python),
    }
}

/// Writes the profile in speedscope's file format: one `sampled` profile (the profile counts
/// samples per stack, not per thread), whose weights are numbers of samples (`unit` `none`),
/// one sample per stack, root first; frames as [`speedscope_frame_name`] names them, with
/// their source file and, for Python frames, line. The profile's name gives the rate, so a
/// weight can be read as time: one sample is `1 / rate_hz` seconds of CPU.
pub fn write_speedscope(profile: &Profile, out: &mut impl io::Write) -> Result<(), ExportError> {
    let mut frames: Vec<SpeedscopeFrame> = Vec::new();
    let mut frame_ids: HashMap<SpeedscopeFrame, usize> = HashMap::new();
    let mut by_handle: Vec<Option<usize>> = vec![None; profile.frames.len()];
    let mut intern = |frame: &Frame| {
        let f = speedscope_frame(frame);
        *frame_ids.entry(f.clone()).or_insert_with(|| {
            frames.push(f);
            frames.len() - 1
        })
    };
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for (stack, count) in sampled_stacks(profile) {
        let sample = match stack.frames.as_slice() {
            [] => vec![intern(&no_frames())],
            handles => handles
                .iter()
                .map(|h| *by_handle[h.0 as usize].get_or_insert_with(|| intern(profile.frame(*h))))
                .collect(),
        };
        samples.push(sample);
        weights.push(count);
    }
    let name = format!(
        "{} ({} samples at {} Hz)",
        flamegraph_title(profile),
        profile.samples(),
        profile.rate_hz
    );
    let file = File {
        schema: SPEEDSCOPE_SCHEMA,
        name: &name,
        exporter: concat!("seam ", env!("CARGO_PKG_VERSION")),
        active_profile_index: 0,
        shared: Shared { frames },
        profiles: [SampledProfile {
            kind: "sampled",
            name: &name,
            unit: "none",
            start_value: 0,
            end_value: weights.iter().sum(),
            samples,
            weights,
        }],
    };
    serde_json::to_writer(&mut *out, &file)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::Mechanism;
    use serde_json::{json, Value};

    #[test]
    fn frame_names_carry_the_runtime_and_the_seam() {
        let mut seamed = Frame::new("main.run", Runtime::Go);
        seamed.seam = Some(Mechanism::Ctypes);
        let cases = [
            (Frame::new("main.work", Runtime::Go), "main.work [go]"),
            (seamed, "main.run [go, seam ctypes]"),
            (
                Frame::new("0x7f3a12c0", Runtime::Unknown),
                "0x7f3a12c0 [unknown]",
            ),
            (Frame::truncated(), "[truncated]"),
            (no_frames(), "[no frames]"),
        ];
        for (frame, want) in cases {
            assert_eq!(speedscope_frame_name(&frame), want);
        }
    }

    #[test]
    fn native_lines_merge_python_lines_do_not_and_weights_add_up() {
        let mut p = Profile::default();
        p.rate_hz = 99;
        let at = |name: &str, runtime, line| Frame {
            file: Some("f".into()),
            line: Some(line),
            ..Frame::new(name, runtime)
        };
        let c1 = p.intern_frame(at("work", Runtime::C, 1));
        let c2 = p.intern_frame(at("work", Runtime::C, 2));
        let py1 = p.intern_frame(at("run", Runtime::Python, 1));
        let py2 = p.intern_frame(at("run", Runtime::Python, 2));
        let s1 = p.intern_stack(vec![py1, c1], true);
        let s2 = p.intern_stack(vec![py2, c2], true);
        let s3 = p.intern_stack(vec![], false);
        p.intern_stack(vec![c1], true);
        p.add_samples(s1, 1, 3);
        p.add_samples(s2, 1, 4);
        p.add_samples(s3, 1, 1);
        let mut out = Vec::new();
        write_speedscope(&p, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["$schema"], SPEEDSCOPE_SCHEMA);
        assert_eq!(
            v["shared"]["frames"],
            json!([
                {"name": "run [python]", "file": "f", "line": 1},
                {"name": "work [c]", "file": "f"},
                {"name": "run [python]", "file": "f", "line": 2},
                {"name": "[no frames]"},
            ])
        );
        let profile = &v["profiles"][0];
        assert_eq!(profile["samples"], json!([[0, 1], [2, 1], [3]]));
        assert_eq!(profile["weights"], json!([3, 4, 1]));
        assert_eq!(profile["endValue"], 8);
        assert_eq!(profile["name"], "seam (8 samples at 99 Hz)");
    }
}
