//! The differential flamegraph of `seam diff`: two profiles' folded stacks through inferno's
//! differential mode, for "did my change make the seams cheaper?".
//!
//! The graph is the AFTER profile (frame widths are its samples); each frame is coloured by
//! how its self samples changed from BEFORE, as inferno and Brendan Gregg's
//! `difffolded.pl` do it: red for more, blue for fewer, white for no change, the stronger the
//! larger the change. When the two totals differ, BEFORE is first scaled to AFTER's total
//! (inferno's `--normalize`), so that a longer or busier recording does not paint everything
//! red. Since the fill now carries the change, the runtime moves to a stripe along the bottom
//! of each frame (and stays in the frame names, `go:main.work [seam ctypes]`); the legend
//! gives each runtime's self time before and after.

use crate::flamegraph::{with_strip_below, xml_escape, FONT_SIZE, FONT_WIDTH, SWATCH, XPAD};
use crate::folded::{folded_stacks, parse_folded_frame};
use crate::palette::runtime_color;
use crate::summary::{percent, thousands};
use crate::ExportError;
use inferno::differential;
use inferno::flamegraph::color::BackgroundColor;
use inferno::flamegraph::{self, Options};
use seam_proto::{Profile, Runtime};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead};

/// Counts above this are refused: inferno works in `isize`, and scaling goes through `f64`.
const MAX_TOTAL: u64 = 1 << 52;
/// The height of the runtime stripe at the bottom of each frame, in pixels.
const STRIPE: f64 = 3.0;
/// Three lines of legend: the colour key, then the runtimes before and after, four a line
/// (seven in one line would not fit the width).
const DIFF_LEGEND_HEIGHT: usize = 4 * FONT_SIZE + 14;

/// One side of a comparison: folded stacks and their counts, and what to call them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffInput {
    /// What the user named (a session id, a folder, a file): shown in the title.
    pub label: String,
    /// `frame;frame;...` (root first) to its count, as in `stacks.folded`.
    pub stacks: BTreeMap<String, u64>,
}

impl DiffInput {
    /// The on-CPU samples of a profile, folded as `stacks.folded` writes them.
    pub fn from_profile(label: impl Into<String>, profile: &Profile) -> DiffInput {
        DiffInput {
            label: label.into(),
            stacks: folded_stacks(profile),
        }
    }

    /// Reads folded stacks (`stacks.folded`, or any tool's `frame;frame count` lines). Empty
    /// lines are skipped and repeated stacks add up; any other line that does not end in a
    /// space and a whole count is an error that names it.
    pub fn from_folded(
        label: impl Into<String>,
        mut reader: impl BufRead,
    ) -> Result<DiffInput, ExportError> {
        let label = label.into();
        let mut stacks = BTreeMap::new();
        let mut total: u64 = 0;
        let mut bytes = Vec::new();
        for line_no in 1.. {
            bytes.clear();
            if reader.read_until(b'\n', &mut bytes)? == 0 {
                break;
            }
            let bad = |reason: &str| ExportError::Folded {
                input: label.clone(),
                line: line_no,
                reason: reason.to_string(),
            };
            let line = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8 text"))?;
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let (stack, count) = line
                .rsplit_once(' ')
                .ok_or_else(|| bad("no count: expected `frame;frame;... COUNT`"))?;
            let count: u64 = count
                .parse()
                .map_err(|_| bad("the last field is not a whole count"))?;
            if stack.trim().is_empty() {
                return Err(bad("a count with no stack"));
            }
            total = total
                .checked_add(count)
                .filter(|&t| t <= MAX_TOTAL)
                .ok_or_else(|| bad("the counts add up to more than 2^52"))?;
            *stacks.entry(stack.to_string()).or_default() += count;
        }
        Ok(DiffInput { label, stacks })
    }

    /// The sum of all counts.
    pub fn samples(&self) -> u64 {
        self.stacks.values().sum()
    }

    /// Self samples by the runtime of each stack's leaf frame (`unknown` for frames that
    /// carry no runtime prefix).
    fn self_by_runtime(&self) -> BTreeMap<Runtime, u64> {
        let mut out = BTreeMap::new();
        for (stack, &count) in &self.stacks {
            let leaf = stack.rsplit(';').next().unwrap_or(stack);
            let runtime = parse_folded_frame(leaf).map_or(Runtime::Unknown, |(r, _)| r);
            *out.entry(runtime).or_default() += count;
        }
        out
    }
}

/// How to draw a comparison.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Scale BEFORE to AFTER's total when the totals differ (default true).
    pub normalize: bool,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions { normalize: true }
    }
}

/// What [`write_diff_flamegraph`] compared, for the caller to report.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffReport {
    pub before_samples: u64,
    pub after_samples: u64,
    /// The factor BEFORE's counts were multiplied by, when they were normalised.
    pub scale: Option<f64>,
}

/// The title of a differential flamegraph: `seam diff: BEFORE → AFTER`.
pub fn diff_title(before: &DiffInput, after: &DiffInput) -> String {
    format!("seam diff: {} → {}", before.label, after.label)
}

/// Writes the differential flamegraph of `before` and `after` (see the module doc). A side
/// with no samples is an error, since there is nothing to compare it with.
pub fn write_diff_flamegraph(
    before: &DiffInput,
    after: &DiffInput,
    options: &DiffOptions,
    out: &mut impl io::Write,
) -> Result<DiffReport, ExportError> {
    for side in [before, after] {
        if side.samples() == 0 {
            return Err(ExportError::NothingToCompare(side.label.clone()));
        }
    }
    let (b, a) = (before.samples(), after.samples());
    let normalize = options.normalize && b != a;
    let report = DiffReport {
        before_samples: b,
        after_samples: a,
        scale: normalize.then(|| a as f64 / b as f64),
    };
    let title = diff_title(before, after);
    let subtitle = diff_subtitle(&report);

    let folded = |side: &DiffInput| {
        let mut text = String::new();
        for (stack, count) in &side.stacks {
            let _ = writeln!(text, "{stack} {count}");
        }
        text
    };
    let mut pairs = Vec::new();
    let diff_options = differential::Options {
        normalize,
        ..Default::default()
    };
    differential::from_readers(
        diff_options,
        folded(before).as_bytes(),
        folded(after).as_bytes(),
        &mut pairs,
    )?;
    let pairs = String::from_utf8(pairs)
        .map_err(|e| ExportError::Flamegraph(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let mut flame = Options::default();
    flame.title = title;
    flame.subtitle = Some(subtitle);
    flame.bgcolors = Some(BackgroundColor::Grey);
    flame.font_size = FONT_SIZE;
    flame.font_width = FONT_WIDTH;
    flame.name_type = "Frame:".to_string();
    flame.count_name = "samples".to_string();
    flame.deterministic = true;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut flame, pairs.lines(), &mut svg).map_err(ExportError::Flamegraph)?;
    let svg = String::from_utf8(svg)
        .map_err(|e| ExportError::Flamegraph(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let svg = with_runtime_stripes(svg);
    let (before_rt, after_rt) = (before.self_by_runtime(), after.self_by_runtime());
    let svg = with_strip_below(svg, DIFF_LEGEND_HEIGHT, |top| {
        diff_legend(&before_rt, b, &after_rt, a, top)
    });
    out.write_all(svg.as_bytes())?;
    out.flush()?;
    Ok(report)
}

fn diff_subtitle(report: &DiffReport) -> String {
    let (b, a) = (report.before_samples, report.after_samples);
    let totals = match report.scale {
        Some(k) => format!(
            "before: {} samples, normalised (×{k:.3}) to after: {} samples",
            thousands(b),
            thousands(a)
        ),
        None if b == a => format!("before and after: {} samples each", thousands(a)),
        None => format!(
            "before: {} samples, after: {} (not normalised)",
            thousands(b),
            thousands(a)
        ),
    };
    format!("{totals}; frame width: after; colour: change in self samples")
}

/// Adds a stripe in the frame's runtime colour along the bottom of every frame whose name
/// carries a runtime. The stripe is a second `<rect>` in the frame's `<g>` with the same
/// `fg:x`/`fg:w`, so inferno's zoom moves it with the frame, and it comes before the
/// label, which stays on top. Output of an unexpected shape is returned unchanged.
fn with_runtime_stripes(svg: String) -> String {
    const OPEN: &str = "<g><title>";
    let mut out = String::with_capacity(svg.len() + svg.len() / 3);
    let mut rest = svg.as_str();
    while let Some(at) = rest.find(OPEN) {
        let frame = &rest[at..];
        let Some(stripe) = stripe_for(frame) else {
            out.push_str(&rest[..at + OPEN.len()]);
            rest = &rest[at + OPEN.len()..];
            continue;
        };
        let rect_end = frame
            .find("/>")
            .map(|i| at + i + 2)
            .expect("stripe_for found the rect");
        out.push_str(&rest[..rect_end]);
        out.push_str(&stripe);
        rest = &rest[rect_end..];
    }
    out.push_str(rest);
    out
}

/// The stripe for the frame `<g>` that `frame` starts with, or None for a frame with no
/// runtime (`all`) or a shape this does not know.
fn stripe_for(frame: &str) -> Option<String> {
    let title = &frame["<g><title>".len()..frame.find("</title>")?];
    let (runtime, _) = parse_folded_frame(title)?;
    let rect = &frame[frame.find("<rect ")?..];
    let rect = &rect[..rect.find("/>")?];
    let attr = |name: &str| {
        let key = format!(" {name}=\"");
        let v = &rect[rect.find(&key)? + key.len()..];
        Some(&v[..v.find('"')?])
    };
    let y: f64 = attr("y")?.parse().ok()?;
    let height: f64 = attr("height")?.parse().ok()?;
    let stripe = STRIPE.min(height);
    Some(format!(
        "<rect class=\"runtime-stripe\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{stripe}\" fill=\"{}\" fg:x=\"{}\" fg:w=\"{}\"/>",
        attr("x")?,
        y + height - stripe,
        attr("width")?,
        runtime_color(runtime),
        attr("fg:x")?,
        attr("fg:w")?,
    ))
}

/// The colour key, then each runtime's share of the self samples before → after.
fn diff_legend(
    before: &BTreeMap<Runtime, u64>,
    before_total: u64,
    after: &BTreeMap<Runtime, u64>,
    after_total: u64,
    top: usize,
) -> String {
    let char_width = FONT_SIZE as f64 * FONT_WIDTH;
    let mut s = String::from("<g id=\"legend\">");
    let line = |s: &mut String, text_y: usize, label: &str, entries: Vec<(String, String)>| {
        let swatch_y = text_y - SWATCH + 2;
        let mut x = XPAD as f64;
        if !label.is_empty() {
            let _ = write!(s, "<text x=\"{XPAD}\" y=\"{text_y}\">{label}</text>");
            x += (label.chars().count() as f64 + 2.0) * char_width;
        }
        for (color, text) in entries {
            let _ = write!(
                s,
                "<rect x=\"{x:.0}\" y=\"{swatch_y}\" width=\"{SWATCH}\" height=\"{SWATCH}\" fill=\"{color}\" \
                 stroke=\"rgb(90,90,90)\" stroke-width=\"0.5\"/>\
                 <text x=\"{text_x:.0}\" y=\"{text_y}\">{text}</text>",
                text_x = x + SWATCH as f64 + 4.0,
                text = xml_escape(&text),
            );
            x += SWATCH as f64 + 4.0 + (text.chars().count() as f64 + 3.0) * char_width;
        }
    };
    let key = vec![
        (
            "rgb(255,100,100)".to_string(),
            "more self samples after".to_string(),
        ),
        ("rgb(100,100,255)".to_string(), "fewer".to_string()),
        ("rgb(250,250,250)".to_string(), "no change".to_string()),
        (
            runtime_color(Runtime::Go).to_string(),
            "stripe: runtime, with its self time before→after (below)".to_string(),
        ),
    ];
    line(&mut s, top + FONT_SIZE + 3, "frame colour:", key);
    let share = |n: u64, total: u64| percent(n as f64 / total as f64);
    let runtimes: Vec<(String, String)> = Runtime::ALL
        .into_iter()
        .filter(|r| before.contains_key(r) || after.contains_key(r))
        .map(|r| {
            let (b, a) = (
                before.get(&r).copied().unwrap_or(0),
                after.get(&r).copied().unwrap_or(0),
            );
            (
                runtime_color(r).to_string(),
                format!(
                    "{r} {:.1}→{}",
                    100.0 * b as f64 / before_total as f64,
                    share(a, after_total)
                ),
            )
        })
        .collect();
    for (i, row) in runtimes.chunks(4).enumerate() {
        line(
            &mut s,
            top + (2 + i) * FONT_SIZE + 9 + 4 * i,
            "",
            row.to_vec(),
        );
    }
    s.push_str("</g>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(label: &str, text: &str) -> DiffInput {
        DiffInput::from_folded(label, text.as_bytes()).unwrap()
    }

    fn render(before: &DiffInput, after: &DiffInput) -> (String, DiffReport) {
        let mut out = Vec::new();
        let report =
            write_diff_flamegraph(before, after, &DiffOptions::default(), &mut out).unwrap();
        (String::from_utf8(out).unwrap(), report)
    }

    /// (title, fill) of every frame, and the stripes' fills by the frame they belong to.
    fn frames(svg: &str) -> Vec<(String, String, Option<String>)> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(svg, options).unwrap();
        let frames = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("frames"))
            .unwrap();
        frames
            .children()
            .filter(|n| n.has_tag_name("g"))
            .map(|g| {
                let title = g.children().find(|n| n.has_tag_name("title")).unwrap();
                let mut rects = g.children().filter(|n| n.has_tag_name("rect"));
                let fill = rects.next().unwrap().attribute("fill").unwrap();
                let stripe = rects
                    .next()
                    .map(|r| r.attribute("fill").unwrap().to_string());
                (title.text().unwrap().to_string(), fill.to_string(), stripe)
            })
            .collect()
    }

    fn frame<'a>(
        frames: &'a [(String, String, Option<String>)],
        name: &str,
    ) -> &'a (String, String, Option<String>) {
        frames
            .iter()
            .find(|f| f.0.starts_with(&format!("{name} (")))
            .unwrap_or_else(|| panic!("no frame {name} in {frames:?}"))
    }

    #[test]
    fn frames_carry_the_change_in_self_samples_and_their_runtime() {
        let before = input(
            "before",
            "c:main;glue:ffi_call;go:work [seam ctypes] 60\nc:main;python:f (a.py:1) 40\n",
        );
        let after = input(
            "after",
            "c:main;glue:ffi_call;go:work [seam ctypes] 30\nc:main;python:f (a.py:1) 70\n",
        );
        let (svg, report) = render(&before, &after);
        assert_eq!(
            report,
            DiffReport {
                before_samples: 100,
                after_samples: 100,
                scale: None
            }
        );
        let f = frames(&svg);
        let work = frame(&f, "go:work [seam ctypes]");
        assert!(
            work.0.ends_with("(30 samples, 30.00%; -30.00%)"),
            "{work:?}"
        );
        assert!(
            work.1.starts_with("rgb(100,100,255"),
            "fewer is blue: {work:?}"
        );
        assert_eq!(work.2, Some(runtime_color(Runtime::Go).to_string()));
        let py = frame(&f, "python:f (a.py:1)");
        assert!(py.0.ends_with("(70 samples, 70.00%; +30.00%)"), "{py:?}");
        assert_eq!(py.1, "rgb(255,100,100)", "more is red");
        assert_eq!(py.2, Some(runtime_color(Runtime::Python).to_string()));
        let main = frame(&f, "c:main");
        assert_eq!(main.1, "rgb(250,250,250)", "no self samples, no change");
        assert_eq!(frame(&f, "all").2, None, "the root has no runtime");
        assert!(svg.contains("seam diff: before → after"));
        assert!(svg.contains("before and after: 100 samples each"));
        assert!(svg.contains("go 60.0→30.0%"), "legend");
        assert!(svg.contains("python 40.0→70.0%"), "legend");
    }

    #[test]
    fn different_totals_are_normalised_and_say_so() {
        // The same profile recorded twice as long: no change once normalised.
        let before = input("short", "c:main;rust:mix 30\nc:main;go:work 10\n");
        let after = input("long", "c:main;rust:mix 60\nc:main;go:work 20\n");
        let (svg, report) = render(&before, &after);
        assert_eq!(report.scale, Some(2.0));
        assert!(svg.contains("before: 40 samples, normalised (×2.000) to after: 80 samples"));
        for (title, fill, _) in frames(&svg) {
            assert_eq!(fill, "rgb(250,250,250)", "{title}");
        }

        let mut out = Vec::new();
        let report =
            write_diff_flamegraph(&before, &after, &DiffOptions { normalize: false }, &mut out)
                .unwrap();
        assert_eq!(report.scale, None);
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.contains("(not normalised)"));
        let f = frames(&svg);
        assert!(frame(&f, "rust:mix").0.ends_with("; +37.50%)"));
    }

    #[test]
    fn folded_input_is_checked_line_by_line() {
        let ok = input("x", "a;b 3\n\na;b 2\r\nc 1\n");
        assert_eq!(ok.samples(), 6);
        assert_eq!(ok.stacks["a;b"], 5);
        let cases: [(&[u8], &str); 5] = [
            (b"a;b\n", "x:1: no count"),
            (b"a 1\na;b x\n", "x:2: the last field is not a whole count"),
            (b"a 1.5\n", "x:1: the last field is not a whole count"),
            (b" 4\n", "x:1: a count with no stack"),
            (b"a \xff 1\n", "x:1: not UTF-8 text"),
        ];
        for (text, want) in cases {
            let err = DiffInput::from_folded("x", text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
        let huge = format!("a {}\nb {}\n", MAX_TOTAL, 1);
        assert!(DiffInput::from_folded("x", huge.as_bytes()).is_err());
    }

    #[test]
    fn an_empty_side_is_an_error_and_a_vanished_profile_draws_no_frames() {
        let some = input("some", "a 1\n");
        let none = input("none", "");
        let mut out = Vec::new();
        let err = write_diff_flamegraph(&none, &some, &DiffOptions::default(), &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none holds no samples"), "{err}");
        // Nothing of BEFORE is left in AFTER: every frame is zero wide.
        let (svg, _) = render(&some, &input("other", "b 1\n"));
        assert!(svg.contains("b (1 samples"));
        assert!(!svg.contains("a (0 samples"));
    }
}
