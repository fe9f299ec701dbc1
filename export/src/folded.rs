//! Folded stacks: the text format flamegraph tools read, one line per stack.

use crate::ExportError;
use seam_proto::{Frame, Profile, Runtime, Stack};
use std::collections::BTreeMap;
use std::io;

/// What a `;` inside a frame name becomes, since `;` separates frames.
const SEMICOLON_STANDIN: char = ',';

/// The frame that stands for a stack with no frames at all, so that its samples still show
/// in every view.
pub(crate) fn no_frames() -> Frame {
    Frame::new("[no frames]", Runtime::Unknown)
}

/// The stacks that have samples, in the order they were interned, with their counts.
pub(crate) fn sampled_stacks(profile: &Profile) -> impl Iterator<Item = (&Stack, u64)> {
    profile
        .stacks
        .iter()
        .zip(&profile.counts)
        .filter(|(_, &count)| count > 0)
        .map(|(stack, &count)| (stack, count))
}

/// A frame as it appears in folded stacks and in the flamegraph: `<runtime>:<name>`,
/// and for Python frames `python:<function> (<file>:<line>)`.
///
/// `;` in names becomes `,` and control characters (newlines, tabs) become spaces, so a
/// folded line always splits back into the same frames.
pub fn folded_frame(frame: &Frame) -> String {
    let mut s = String::with_capacity(frame.name.len() + 24);
    s.push_str(frame.runtime.as_str());
    s.push(':');
    push_escaped(&mut s, &frame.name);
    if frame.runtime == Runtime::Python && (frame.file.is_some() || frame.line.is_some()) {
        s.push_str(" (");
        push_escaped(&mut s, frame.file.as_deref().unwrap_or("?"));
        if let Some(line) = frame.line {
            s.push(':');
            s.push_str(&line.to_string());
        }
        s.push(')');
    }
    if let Some(m) = frame.seam {
        s.push_str(" [seam ");
        s.push_str(m.as_str());
        s.push(']');
    }
    s
}

fn push_escaped(out: &mut String, name: &str) {
    out.extend(name.chars().map(|c| match c {
        ';' => SEMICOLON_STANDIN,
        c if c.is_control() => ' ',
        c => c,
    }));
}

/// Splits a folded frame back into its runtime and the rest (`"go:main.compute"` gives
/// `(Runtime::Go, "main.compute")`). `None` when the text before the first `:` is not a
/// runtime name.
pub fn parse_folded_frame(s: &str) -> Option<(Runtime, &str)> {
    let (runtime, rest) = s.split_once(':')?;
    Some((runtime.parse().ok()?, rest))
}

/// The folded stacks of a profile with their sample counts, sorted by text. Stacks that fold
/// to the same text (frames that differ only in module, or a complete and an incomplete
/// copy of one stack) are merged; stacks with no samples are left out.
pub(crate) fn folded_stacks(profile: &Profile) -> BTreeMap<String, u64> {
    let names: Vec<String> = profile.frames.iter().map(folded_frame).collect();
    let mut lines = BTreeMap::new();
    for (stack, count) in sampled_stacks(profile) {
        let mut line = String::new();
        for (i, h) in stack.frames.iter().enumerate() {
            if i > 0 {
                line.push(';');
            }
            line.push_str(&names[h.0 as usize]);
        }
        if line.is_empty() {
            line.push_str(&folded_frame(&no_frames()));
        }
        *lines.entry(line).or_default() += count;
    }
    lines
}

/// Writes the profile as folded stacks: one line per stack, root first,
/// `frame;frame;... count`, each frame as [`folded_frame`] writes it, lines sorted.
pub fn write_folded(profile: &Profile, out: &mut impl io::Write) -> Result<(), ExportError> {
    for (line, count) in folded_stacks(profile) {
        writeln!(out, "{line} {count}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str, runtime: Runtime, file: Option<&str>, line: Option<u32>) -> Frame {
        Frame {
            name: name.into(),
            runtime,
            module: Some("libx.so".into()),
            file: file.map(Into::into),
            line,
            seam: None,
        }
    }

    #[test]
    fn frames_fold_with_runtime_prefix_and_escaping() {
        use Runtime::*;
        let cases = [
            (
                frame("work", Python, Some("chain.py"), Some(42)),
                "python:work (chain.py:42)",
            ),
            (
                frame("work", Python, Some("/srv/app/chain.py"), None),
                "python:work (/srv/app/chain.py)",
            ),
            (
                frame("<module>", Python, None, Some(7)),
                "python:<module> (?:7)",
            ),
            (frame("lambda", Python, None, None), "python:lambda"),
            (
                frame("main.compute", Go, Some("main.go"), Some(3)),
                "go:main.compute",
            ),
            (
                frame("PyCFuncPtr_call", Glue, None, None),
                "glue:PyCFuncPtr_call",
            ),
            (
                frame("do_syscall_64", Kernel, None, None),
                "kernel:do_syscall_64",
            ),
            (Frame::truncated(), "unknown:[truncated]"),
            (
                frame("<[u8; 8] as Debug>::fmt", Rust, None, None),
                "rust:<[u8, 8] as Debug>::fmt",
            ),
            (
                frame("two\nlines\tand\r", C, None, None),
                "c:two lines and ",
            ),
            (
                frame("f;g", Python, Some("a;b.py"), Some(1)),
                "python:f,g (a,b.py:1)",
            ),
            (frame("", C, None, None), "c:"),
        ];
        for (frame, want) in cases {
            assert_eq!(folded_frame(&frame), want, "{frame:?}");
        }
    }

    #[test]
    fn seams_are_marked() {
        let mut f = frame("main.chainRun", Runtime::Go, None, None);
        f.seam = Some(seam_proto::Mechanism::Ctypes);
        assert_eq!(folded_frame(&f), "go:main.chainRun [seam ctypes]");
        assert_eq!(
            parse_folded_frame(&folded_frame(&f)),
            Some((Runtime::Go, "main.chainRun [seam ctypes]"))
        );
    }

    #[test]
    fn folded_frames_round_trip_through_parse() {
        let cases = [
            (
                "python:work (chain.py:42)",
                Some((Runtime::Python, "work (chain.py:42)")),
            ),
            ("go:main.compute", Some((Runtime::Go, "main.compute"))),
            (
                "rust:core::ptr::drop_in_place",
                Some((Runtime::Rust, "core::ptr::drop_in_place")),
            ),
            (
                "unknown:[truncated]",
                Some((Runtime::Unknown, "[truncated]")),
            ),
            ("c:", Some((Runtime::C, ""))),
            ("perl:main", None),
            ("no_prefix", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_folded_frame(s), want, "{s}");
        }
        for runtime in Runtime::ALL {
            let f = Frame::new("a::b;c", runtime);
            let folded = folded_frame(&f);
            assert_eq!(parse_folded_frame(&folded), Some((runtime, "a::b,c")));
        }
    }

    #[test]
    fn lines_are_sorted_merged_and_skip_empty_counts() {
        let mut p = Profile::default();
        let start = p.intern_frame(Frame::new("_start", Runtime::C));
        let z = p.intern_frame(Frame::new("z", Runtime::Go));
        let a = p.intern_frame(Frame::new("a", Runtime::Go));
        let a_elsewhere = p.intern_frame(Frame {
            module: Some("other.so".into()),
            ..Frame::new("a", Runtime::Go)
        });
        let s1 = p.intern_stack(vec![start, z], true);
        let s2 = p.intern_stack(vec![start, a], true);
        let s3 = p.intern_stack(vec![start, a_elsewhere], false);
        let s4 = p.intern_stack(vec![], false);
        p.intern_stack(vec![z], true);
        p.add_samples(s1, 1, 2);
        p.add_samples(s2, 1, 3);
        p.add_samples(s3, 1, 4);
        p.add_samples(s4, 1, 1);
        let mut out = Vec::new();
        write_folded(&p, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "c:_start;go:a 7\nc:_start;go:z 2\nunknown:[no frames] 1\n"
        );
    }
}
