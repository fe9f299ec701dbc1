//! The flamegraph SVG: inferno draws the folded stacks; seam picks every frame's colour by
//! its runtime and adds a legend below the graph.

use crate::folded::{folded_stacks, parse_folded_frame};
use crate::palette::{frame_color, runtime_color, Rgb};
use crate::summary::{percent, summarize, thousands, Summary};
use crate::ExportError;
use inferno::flamegraph::color::{BackgroundColor, Color, PaletteMap};
use inferno::flamegraph::{self, Options};
use seam_proto::{Profile, Runtime};
use std::fmt::Write as _;
use std::io;

pub(crate) const IMAGE_WIDTH: usize = 1200;
pub(crate) const FONT_SIZE: usize = 12;
/// inferno's default, used to estimate text widths.
pub(crate) const FONT_WIDTH: f64 = 0.59;
/// inferno's left padding, which the legend lines up with.
pub(crate) const XPAD: usize = 10;
const LEGEND_HEIGHT: usize = 2 * FONT_SIZE + 4;
pub(crate) const SWATCH: usize = 12;
/// The colour of inferno's root frame, `all`.
const ROOT_COLOR: Rgb = Rgb(214, 214, 214);

/// The title seam gives a flamegraph: `seam: <target command>`.
pub fn flamegraph_title(profile: &Profile) -> String {
    match (profile.target.command.is_empty(), profile.target.pid) {
        (false, _) => format!("seam: {}", profile.target.command.join(" ")),
        (true, 0) => "seam".to_string(),
        (true, pid) => format!("seam: pid {pid}"),
    }
}

/// Writes the profile as an interactive flamegraph SVG (inferno's, with its search and zoom).
///
/// Each frame's colour comes from its runtime (see [`runtime_color`]), a legend below the
/// graph gives each runtime's colour and self time, and clicking a legend entry highlights
/// that runtime's frames with inferno's search. The subtitle gives samples, losses, the
/// complete-stack share and the duration. A profile with no samples gives a small SVG that
/// says so.
pub fn write_flamegraph(
    profile: &Profile,
    title: &str,
    out: &mut impl io::Write,
) -> Result<(), ExportError> {
    let summary = summarize(profile, 0);
    let subtitle = subtitle(&summary);
    write_graph(profile, &summary, title, subtitle, "samples", out)
}

/// Writes the off-CPU flamegraph: the stacks at which the target's threads left the
/// CPU, each weighted by the microseconds until it came back, coloured by runtime like
/// [`write_flamegraph`].
pub fn write_off_cpu_flamegraph(
    profile: &Profile,
    title: &str,
    out: &mut impl io::Write,
) -> Result<(), ExportError> {
    let view = off_cpu_view(profile);
    let summary = summarize(&view, 0);
    let subtitle = format!(
        "{:.1} ms off CPU in {} context switches, {:.1} s recorded (weights: µs off CPU)",
        profile.off_cpu_ns.iter().sum::<u64>() as f64 / 1e6,
        thousands(profile.switch_counts.iter().sum()),
        profile.duration_s
    );
    write_graph(&view, &summary, title, subtitle, "µs off CPU", out)
}

/// The profile with each stack weighted by its off-CPU time in µs instead of samples.
pub fn off_cpu_view(profile: &Profile) -> Profile {
    let mut view = profile.clone();
    view.counts = (0..profile.stacks.len())
        .map(|i| {
            profile
                .off_cpu_ns
                .get(i)
                .copied()
                .unwrap_or(0)
                .div_ceil(1000)
        })
        .collect();
    view.rate_hz = 1_000_000;
    view
}

fn write_graph(
    profile: &Profile,
    summary: &Summary,
    title: &str,
    subtitle: String,
    count_name: &str,
    out: &mut impl io::Write,
) -> Result<(), ExportError> {
    let stacks = folded_stacks(profile);
    if stacks.is_empty() {
        out.write_all(no_samples_svg(title, &subtitle).as_bytes())?;
        out.flush()?;
        return Ok(());
    }

    let mut palette = PaletteMap::default();
    let Rgb(r, g, b) = ROOT_COLOR;
    palette.insert("", Color { r, g, b });
    for frame in stacks.keys().flat_map(|line| line.split(';')) {
        if palette.get(frame).is_none() {
            let (runtime, name) = parse_folded_frame(frame).unwrap_or((Runtime::Unknown, frame));
            let Rgb(r, g, b) = frame_color(runtime, name);
            palette.insert(frame, Color { r, g, b });
        }
    }

    let mut options = Options::default();
    options.title = title.to_string();
    options.subtitle = Some(subtitle);
    options.bgcolors = Some(BackgroundColor::Grey);
    options.font_size = FONT_SIZE;
    options.font_width = FONT_WIDTH;
    options.name_type = "Frame:".to_string();
    options.count_name = count_name.to_string();
    options.hash = true;
    options.deterministic = true;
    options.palette_map = Some(&mut palette);

    let lines: Vec<String> = stacks
        .iter()
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect();
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(ExportError::Flamegraph)?;
    let svg = String::from_utf8(svg)
        .map_err(|e| ExportError::Flamegraph(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let svg = with_strip_below(svg, LEGEND_HEIGHT, |top| legend(summary, top));
    out.write_all(svg.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn subtitle(summary: &Summary) -> String {
    format!(
        "{} samples, {} lost (kernel {}, seam {}), {} complete stacks, {:.1} s at {} Hz",
        thousands(summary.samples),
        thousands(summary.lost),
        thousands(summary.lost_detail.kernel),
        thousands(summary.lost_detail.seam),
        percent(summary.complete_share),
        summary.duration_s,
        summary.rate_hz
    )
}

/// Adds a strip of `strip_height` below inferno's graph, drawn by `strip` from its top: the
/// root `<svg>` and its background grow, and the strip goes last, outside `#frames`, where
/// inferno's script does not look. If inferno's output does not have the expected shape (a
/// newer inferno), the graph is returned without the strip rather than broken; a test
/// catches that.
pub(crate) fn with_strip_below(
    svg: String,
    strip_height: usize,
    strip: impl FnOnce(usize) -> String,
) -> String {
    let Some(height) = root_height(&svg) else {
        return svg;
    };
    let grown = height + strip_height;
    let replacements = [
        (
            format!(" height=\"{height}\" "),
            format!(" height=\"{grown}\" "),
        ),
        (
            format!(" viewBox=\"0 0 {IMAGE_WIDTH} {height}\""),
            format!(" viewBox=\"0 0 {IMAGE_WIDTH} {grown}\""),
        ),
        (
            format!(" height=\"{height}\" fill=\"url(#background)\""),
            format!(" height=\"{grown}\" fill=\"url(#background)\""),
        ),
    ];
    let Some(end) = svg.rfind("</svg>") else {
        return svg;
    };
    if replacements
        .iter()
        .any(|(from, _)| !svg.contains(from.as_str()))
    {
        return svg;
    }
    let mut out = String::with_capacity(svg.len() + 2048);
    let (body, tail) = svg.split_at(end);
    let mut body = body.to_string();
    for (from, to) in &replacements {
        body = body.replacen(from.as_str(), to, 1);
    }
    out.push_str(&body);
    out.push_str(&strip(height));
    out.push_str(tail);
    out
}

/// The `height` of the root `<svg>` element.
fn root_height(svg: &str) -> Option<usize> {
    let root = &svg[svg.find("<svg ")?..];
    let root = &root[..root.find('>')?];
    let rest = &root[root.find(" height=\"")? + " height=\"".len()..];
    rest[..rest.find('"')?].parse().ok()
}

/// The legend: "self time by runtime:" then a swatch and a share per runtime that has
/// samples, in [`Runtime::ALL`] order, starting at `top`.
fn legend(summary: &Summary, top: usize) -> String {
    let char_width = FONT_SIZE as f64 * FONT_WIDTH;
    let text_y = top + FONT_SIZE + 3;
    let swatch_y = text_y - SWATCH + 2;
    let label = "self time by runtime:";
    let mut s = String::new();
    let _ = write!(
        s,
        "<g id=\"legend\"><text x=\"{XPAD}\" y=\"{text_y}\">{label}</text>"
    );
    let mut x = XPAD as f64 + (label.len() as f64 + 2.0) * char_width;
    for runtime in Runtime::ALL {
        if summary.runtimes.get(&runtime).is_none_or(|r| r.total == 0) {
            continue;
        }
        let text = format!("{runtime} {}", percent(summary.self_share(runtime)));
        let _ = write!(
            s,
            "<g class=\"legend-entry\" id=\"legend-{runtime}\" style=\"cursor:pointer\" \
             onclick=\"reset_search(); search('^{runtime}:')\">\
             <title>{runtime}: self {self_share} of samples, on the stack in {total_share}; \
             click to highlight its frames</title>\
             <rect x=\"{x:.0}\" y=\"{swatch_y}\" width=\"{SWATCH}\" height=\"{SWATCH}\" fill=\"{color}\" \
             stroke=\"rgb(90,90,90)\" stroke-width=\"0.5\"/>\
             <text x=\"{text_x:.0}\" y=\"{text_y}\">{text}</text></g>",
            self_share = percent(summary.self_share(runtime)),
            total_share = percent(summary.total_share(runtime)),
            color = runtime_color(runtime),
            text_x = x + SWATCH as f64 + 4.0,
        );
        x += SWATCH as f64 + 4.0 + (text.len() as f64 + 3.0) * char_width;
    }
    s.push_str("</g>");
    s
}

/// A flamegraph for a profile with no samples: title, subtitle (which still shows what was
/// lost) and the words "no samples".
pub(crate) fn no_samples_svg(title: &str, subtitle: &str) -> String {
    let height = 7 * FONT_SIZE;
    let middle = IMAGE_WIDTH / 2;
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"{IMAGE_WIDTH}\" height=\"{height}\" viewBox=\"0 0 {IMAGE_WIDTH} {height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\
         <rect x=\"0\" y=\"0\" width=\"100%\" height=\"{height}\" fill=\"rgb(240,240,240)\"/>\
         <g font-family=\"Verdana\" text-anchor=\"middle\">\
         <text x=\"{middle}\" y=\"{y1}\" font-size=\"{title_size}\">{title}</text>\
         <text x=\"{middle}\" y=\"{y2}\" font-size=\"{FONT_SIZE}\" fill=\"rgb(100,100,100)\">{subtitle}</text>\
         <text id=\"no-samples\" x=\"{middle}\" y=\"{y3}\" font-size=\"{FONT_SIZE}\">no samples</text>\
         </g></svg>\n",
        y1 = 2 * FONT_SIZE,
        y2 = 4 * FONT_SIZE,
        y3 = 6 * FONT_SIZE,
        title_size = FONT_SIZE + 5,
        title = xml_escape(title),
        subtitle = xml_escape(subtitle),
    )
}

pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::{Frame, Lost, Target};

    fn small_profile() -> Profile {
        let mut p = Profile::default();
        p.target = Target {
            pid: 7,
            command: vec!["python3".into(), "a&b.py".into()],
        };
        let start = p.intern_frame(Frame::new("_start", Runtime::C));
        let main = p.intern_frame(Frame {
            file: Some("a.py".into()),
            line: Some(3),
            ..Frame::new("main", Runtime::Python)
        });
        let ffi = p.intern_frame(Frame::new("ffi_call", Runtime::Glue));
        let work = p.intern_frame(Frame::new("main.work", Runtime::Go));
        let s1 = p.intern_stack(vec![start, main, ffi, work], true);
        let s2 = p.intern_stack(vec![start, main], true);
        p.add_samples(s1, 1, 3);
        p.add_samples(s2, 1, 1);
        p
    }

    /// Parses as XML, allowing the SVG 1.1 DOCTYPE inferno writes.
    fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(svg, options).expect("the SVG is well-formed XML")
    }

    fn render(p: &Profile) -> String {
        let mut out = Vec::new();
        write_flamegraph(p, &flamegraph_title(p), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn titles_name_the_target() {
        let cases = [
            (
                Target {
                    pid: 0,
                    command: vec![],
                },
                "seam",
            ),
            (
                Target {
                    pid: 12,
                    command: vec![],
                },
                "seam: pid 12",
            ),
            (
                Target {
                    pid: 12,
                    command: vec!["go-app".into(), "-x".into()],
                },
                "seam: go-app -x",
            ),
        ];
        for (target, want) in cases {
            let mut p = Profile::default();
            p.target = target;
            assert_eq!(flamegraph_title(&p), want);
        }
    }

    #[test]
    fn every_frame_gets_its_runtime_colour_and_the_legend_fits_below() {
        let svg = render(&small_profile());
        let doc = parse_svg(&svg);
        let root = doc.root_element();
        let height: usize = root.attribute("height").unwrap().parse().unwrap();
        assert_eq!(
            root.attribute("viewBox"),
            Some(format!("0 0 1200 {height}").as_str())
        );
        let frames = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("frames"))
            .unwrap();
        let mut seen = 0;
        for g in frames.children().filter(|n| n.has_tag_name("g")) {
            let title = g
                .children()
                .find(|n| n.has_tag_name("title"))
                .unwrap()
                .text()
                .unwrap();
            let rect = g.children().find(|n| n.has_tag_name("rect")).unwrap();
            let name = title.rsplit_once(" (").unwrap().0;
            let want = match parse_folded_frame(name) {
                Some((runtime, rest)) => frame_color(runtime, rest),
                None => ROOT_COLOR,
            };
            assert_eq!(
                rect.attribute("fill"),
                Some(want.to_string().as_str()),
                "{title}"
            );
            seen += 1;
        }
        assert_eq!(seen, 5, "all + four frames");

        let legend = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("legend"))
            .unwrap();
        let entries: Vec<&str> = legend
            .children()
            .filter_map(|n| n.attribute("id"))
            .collect();
        assert_eq!(
            entries,
            ["legend-python", "legend-c", "legend-go", "legend-glue"]
        );
        for rect in legend.descendants().filter(|n| n.has_tag_name("rect")) {
            let bottom: f64 = rect.attribute("y").unwrap().parse::<f64>().unwrap() + SWATCH as f64;
            assert!(bottom <= height as f64, "legend swatch below the image");
        }
        let background = doc
            .descendants()
            .find(|n| n.attribute("fill") == Some("url(#background)"))
            .unwrap();
        assert_eq!(background.attribute("height"), root.attribute("height"));
        assert!(svg.contains("seam: python3 a&amp;b.py"));
        assert!(svg.contains("4 samples, 0 lost (kernel 0, seam 0), 100.0% complete stacks"));
    }

    #[test]
    fn empty_profile_draws_a_valid_no_samples_image() {
        let mut p = Profile::default();
        p.lost = Lost { kernel: 5, seam: 0 };
        p.target.command = vec!["<odd>".into()];
        let svg = render(&p);
        let doc = parse_svg(&svg);
        let texts: Vec<&str> = doc
            .descendants()
            .filter_map(|n| if n.is_text() { n.text() } else { None })
            .collect();
        assert_eq!(
            texts,
            [
                "seam: <odd>",
                "0 samples, 5 lost (kernel 5, seam 0), 0.0% complete stacks, 0.0 s at 0 Hz",
                "no samples"
            ]
        );
    }

    #[test]
    fn root_height_reads_the_root_element_only() {
        let cases = [
            (
                r#"<?xml?><svg version="1.1" width="1200" height="86" onload="x"><rect height="3"/>"#,
                Some(86),
            ),
            (r#"<svg width="1" ><rect height="3"/>"#, None),
            ("no svg", None),
        ];
        for (svg, want) in cases {
            assert_eq!(root_height(svg), want, "{svg}");
        }
    }
}
