//! pprof: the gzipped protobuf `perftools.profiles.Profile` that `go tool pprof`, Grafana
//! Pyroscope and Parca read.

mod wire;

use crate::folded::{no_frames, sampled_stacks};
use crate::{flamegraph_title, ExportError};
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;
use seam_proto::{Frame, Profile, Runtime};
use std::collections::HashMap;
use std::io::{self, Write};

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Sample label: the runtime of the sample's leaf frame.
pub const LABEL_RUNTIME: &str = "runtime";
/// Sample label: the runtime of every frame of the stack, root first, separated by `;`.
pub const LABEL_RUNTIMES: &str = "runtimes";
/// Sample label: the crossings on the stack, root first, separated by `;`, each written
/// `caller→callee mechanism`. Left out when the stack crosses no seam.
pub const LABEL_SEAMS: &str = "seams";
/// Sample label: `true` when the stack reaches the thread's root with no gap, else `false`.
pub const LABEL_COMPLETE: &str = "complete";

/// Writes the profile as a gzipped pprof protobuf (`perftools.profiles.Profile`).
///
/// - Two sample types: `samples/count` and `cpu/nanoseconds` (each sample stands for
///   `1e9 / rate_hz` ns; both are 0 ns when the rate is 0), with a period of `cpu/nanoseconds`.
///   Every stack with samples becomes one pprof sample, so the totals are the profile's.
/// - One location per distinct frame, with one line (function and line number, 0 when
///   unknown); one function per (runtime, name, file), named as the frame is named (no
///   runtime prefix) with `system_name` `<runtime>:<name>`; one mapping per native module,
///   marked as symbolized so that pprof does not look for the binaries.
/// - Labels on each sample carry what pprof has no per-frame field for: [`LABEL_RUNTIME`],
///   [`LABEL_RUNTIMES`], [`LABEL_SEAMS`] and [`LABEL_COMPLETE`]. A cut stack keeps its
///   `[truncated]` frame at the root; a stack with no frames gets one `[no frames]` frame.
/// - Comments: the command line, the totals, the lost samples and the problems.
///
/// The bytes depend only on the profile (the gzip header carries no time).
pub fn write_pprof(profile: &Profile, out: &mut impl io::Write) -> Result<(), ExportError> {
    let message = build(profile, &no_frames());
    let mut gz = GzEncoder::new(&mut *out, Compression::default());
    gz.write_all(&message.encode_to_vec())?;
    gz.finish()?;
    out.flush()?;
    Ok(())
}

fn build(profile: &Profile, no_frames: &Frame) -> wire::Profile {
    let mut b = Builder::default();
    b.string("");
    let samples_count = value_type(&mut b, "samples", "count");
    let cpu_nanos = value_type(&mut b, "cpu", "nanoseconds");
    let nanos = |count: u64| match profile.rate_hz {
        0 => 0,
        rate => i64::try_from(count as u128 * NANOS_PER_SECOND / rate as u128).unwrap_or(i64::MAX),
    };
    let keys = [LABEL_RUNTIME, LABEL_RUNTIMES, LABEL_SEAMS, LABEL_COMPLETE].map(|k| b.string(k));

    let mut samples = Vec::new();
    for (stack, count) in sampled_stacks(profile) {
        let frames: Vec<&Frame> = match stack.frames.as_slice() {
            [] => vec![no_frames],
            handles => handles.iter().map(|&h| profile.frame(h)).collect(),
        };
        // Numbered root first, as the profile's frames are; pprof wants the leaf first.
        let mut location_id: Vec<u64> = frames.iter().map(|f| b.location(f)).collect();
        location_id.reverse();
        let leaf = frames.last().map_or(Runtime::Unknown, |f| f.runtime);
        let runtimes: Vec<&str> = frames.iter().map(|f| f.runtime.as_str()).collect();
        let values = [
            Some(leaf.as_str().to_string()),
            Some(runtimes.join(";")),
            seams(&frames),
            Some(stack.complete.to_string()),
        ];
        let label = keys
            .iter()
            .zip(values)
            .filter_map(|(&key, value)| {
                value.map(|v| wire::Label {
                    key,
                    str: b.string(&v),
                })
            })
            .collect();
        samples.push(wire::Sample {
            location_id,
            value: vec![i64::try_from(count).unwrap_or(i64::MAX), nanos(count)],
            label,
        });
    }

    let comment = comments(profile).iter().map(|c| b.string(c)).collect();
    let period = match profile.rate_hz {
        0 => 0,
        rate => ((NANOS_PER_SECOND + rate as u128 / 2) / rate as u128) as i64,
    };
    wire::Profile {
        sample_type: vec![samples_count, cpu_nanos.clone()],
        sample: samples,
        mapping: b.mappings,
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        duration_nanos: (profile.duration_s * 1e9).round() as i64,
        period_type: Some(cpu_nanos),
        period,
        comment,
    }
}

fn value_type(b: &mut Builder, kind: &str, unit: &str) -> wire::ValueType {
    wire::ValueType {
        r#type: b.string(kind),
        unit: b.string(unit),
    }
}

/// The crossings on a root-first stack as `caller→callee mechanism`, joined with `;`: each
/// frame marked with a seam is a callee, and its caller is the nearest frame above it owned
/// by a runtime (glue, kernel and unknown frames own nothing).
fn seams(frames: &[&Frame]) -> Option<String> {
    let mut caller = Runtime::Unknown;
    let mut found = Vec::new();
    for f in frames {
        if let Some(mechanism) = f.seam {
            found.push(format!("{caller}→{} {}", f.runtime, mechanism.as_str()));
        }
        if matches!(
            f.runtime,
            Runtime::Python | Runtime::C | Runtime::Go | Runtime::Rust
        ) {
            caller = f.runtime;
        }
    }
    (!found.is_empty()).then(|| found.join(";"))
}

fn comments(profile: &Profile) -> Vec<String> {
    let samples = profile.samples();
    let mut out = vec![
        flamegraph_title(profile),
        format!(
            "pid {}: {samples} samples at {} Hz, {} with complete stacks; {} lost (kernel {}, seam {})",
            profile.target.pid,
            profile.rate_hz,
            profile.complete_samples(),
            profile.lost.total(),
            profile.lost.kernel,
            profile.lost.seam,
        ),
    ];
    out.extend(
        profile
            .problems
            .iter()
            .map(|(reason, n)| format!("problem: {reason}: {n}")),
    );
    out
}

/// The tables of a pprof profile, each entry added once and numbered from 1 (strings from 0).
#[derive(Default)]
struct Builder<'a> {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    mappings: Vec<wire::Mapping>,
    mapping_ids: HashMap<&'a str, usize>,
    functions: Vec<wire::Function>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<wire::Location>,
    location_ids: HashMap<&'a Frame, u64>,
}

impl<'a> Builder<'a> {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn location(&mut self, frame: &'a Frame) -> u64 {
        if let Some(&id) = self.location_ids.get(frame) {
            return id;
        }
        let mapping_id = frame
            .module
            .as_deref()
            .map_or(0, |m| self.mapping(m, frame));
        let function_id = self.function(frame);
        let id = self.locations.len() as u64 + 1;
        self.locations.push(wire::Location {
            id,
            mapping_id,
            line: vec![wire::Line {
                function_id,
                line: frame.line.map_or(0, i64::from),
            }],
        });
        self.location_ids.insert(frame, id);
        id
    }

    /// The mapping of a native module. Every frame already has its function, so pprof must
    /// not try to symbolize it from a binary that is not on the reader's machine.
    fn mapping(&mut self, module: &'a str, frame: &Frame) -> u64 {
        let i = match self.mapping_ids.get(module) {
            Some(&i) => i,
            None => {
                let filename = self.string(module);
                self.mappings.push(wire::Mapping {
                    id: self.mappings.len() as u64 + 1,
                    filename,
                    has_functions: true,
                    has_filenames: false,
                    has_line_numbers: false,
                });
                self.mapping_ids.insert(module, self.mappings.len() - 1);
                self.mappings.len() - 1
            }
        };
        let mapping = &mut self.mappings[i];
        mapping.has_filenames |= frame.file.is_some();
        mapping.has_line_numbers |= frame.line.is_some();
        mapping.id
    }

    /// The function of a frame, named as the frame is. Its `system_name` is
    /// `<runtime>:<name>`, which `-raw` shows beside the name; being different from the
    /// name, it also keeps pprof from "demangling" names such as `<module>` or
    /// `Vec<u8>::push` (it strips anything between `<` and `>` from names equal to their
    /// system name).
    fn function(&mut self, frame: &Frame) -> u64 {
        let name = self.string(&frame.name);
        let system_name = self.string(&format!("{}:{}", frame.runtime, frame.name));
        let filename = self.string(frame.file.as_deref().unwrap_or(""));
        let key = (system_name, filename);
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        self.functions.push(wire::Function {
            id,
            name,
            system_name,
            filename,
        });
        self.function_ids.insert(key, id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::Mechanism;
    use std::io::Read;

    fn decode(bytes: &[u8]) -> wire::Profile {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .expect("gzip");
        wire::Profile::decode(raw.as_slice()).expect("protobuf")
    }

    fn pprof(profile: &Profile) -> wire::Profile {
        let mut out = Vec::new();
        write_pprof(profile, &mut out).unwrap();
        decode(&out)
    }

    fn seamed(name: &str, runtime: Runtime, mechanism: Mechanism) -> Frame {
        Frame {
            seam: Some(mechanism),
            ..Frame::new(name, runtime)
        }
    }

    #[test]
    fn seams_name_caller_callee_and_mechanism_root_first() {
        use Runtime::*;
        let py = Frame::new("work", Python);
        let glue = Frame::new("ffi_call", Glue);
        let go = seamed("main.run", Go, Mechanism::Ctypes);
        let cgocall = Frame::new("runtime.cgocall", Glue);
        let rust = seamed("seam_work", Rust, Mechanism::CgoCall);
        let kernel = Frame::new("do_syscall_64", Kernel);
        let orphan = seamed("callback", Python, Mechanism::Callback);
        let cases: [(Vec<&Frame>, Option<&str>); 5] = [
            (vec![], None),
            (vec![&py, &glue], None),
            (vec![&py, &glue, &go], Some("python→go ctypes")),
            (
                vec![&py, &glue, &go, &cgocall, &rust, &kernel],
                Some("python→go ctypes;go→rust cgo-call"),
            ),
            (vec![&glue, &orphan], Some("unknown→python callback")),
        ];
        for (frames, want) in cases {
            assert_eq!(seams(&frames).as_deref(), want, "{frames:?}");
        }
    }

    #[test]
    fn tables_are_interned_and_totals_kept() {
        let mut p = Profile::default();
        p.rate_hz = 250;
        p.duration_s = 1.5;
        let start = p.intern_frame(Frame {
            module: Some("app".into()),
            ..Frame::new("_start", Runtime::C)
        });
        let work_a = p.intern_frame(Frame {
            file: Some("w.py".into()),
            line: Some(3),
            ..Frame::new("work", Runtime::Python)
        });
        let work_b = p.intern_frame(Frame {
            file: Some("w.py".into()),
            line: Some(4),
            ..Frame::new("work", Runtime::Python)
        });
        let s1 = p.intern_stack(vec![start, work_a], true);
        let s2 = p.intern_stack(vec![start, work_b], false);
        let s3 = p.intern_stack(vec![], false);
        p.intern_stack(vec![work_b], true);
        p.add_samples(s1, 1, 5);
        p.add_samples(s2, 1, 2);
        p.add_samples(s3, 2, 1);

        let pb = pprof(&p);
        let s = |i: i64| pb.string_table[i as usize].as_str();
        assert_eq!(s(0), "");
        assert_eq!(pb.sample.len(), 3, "the stack with no samples is left out");
        let totals = pb
            .sample
            .iter()
            .fold([0, 0], |t, x| [t[0] + x.value[0], t[1] + x.value[1]]);
        assert_eq!(totals, [8, 8 * 4_000_000]);
        assert_eq!(pb.period, 4_000_000);
        assert_eq!(pb.duration_nanos, 1_500_000_000);
        assert_eq!(pb.location.len(), 4, "_start, work:3, work:4, [no frames]");
        assert_eq!(pb.function.len(), 3, "_start, work, [no frames]");
        assert_eq!(pb.mapping.len(), 1);
        assert_eq!(s(pb.mapping[0].filename), "app");
        assert!(pb.mapping[0].has_functions && !pb.mapping[0].has_filenames);
        // Leaf first.
        assert_eq!(pb.sample[0].location_id, vec![2, 1]);
        assert_eq!(pb.sample[1].location_id, vec![3, 1]);
        let labels = |i: usize| -> Vec<(&str, &str)> {
            pb.sample[i]
                .label
                .iter()
                .map(|l| (s(l.key), s(l.str)))
                .collect()
        };
        assert_eq!(
            labels(1),
            [
                ("runtime", "python"),
                ("runtimes", "c;python"),
                ("complete", "false")
            ]
        );
        let empty = &pb.sample[2];
        let loc = &pb.location[empty.location_id[0] as usize - 1];
        assert_eq!(loc.mapping_id, 0);
        let f = &pb.function[loc.line[0].function_id as usize - 1];
        assert_eq!(s(f.name), "[no frames]");
        assert_eq!(s(f.system_name), "unknown:[no frames]");
        assert_eq!(labels(2)[0], ("runtime", "unknown"));
    }

    #[test]
    fn an_empty_profile_is_still_a_profile() {
        let pb = pprof(&Profile::default());
        assert!(pb.sample.is_empty());
        assert_eq!(pb.period, 0);
        assert_eq!(pb.sample_type.len(), 2);
    }
}
