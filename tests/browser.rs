//! The SVGs a browser shows: a real recording's flamegraph.svg and offcpu.svg, and a
//! `seam diff` of it, rendered by headless Chromium; each screenshot must be a picture
//! in the flamegraph's own colours, not a blank or an error page: once in a 1200×800 window,
//! which shows the top of a tall graph (deep stacks, such as an interpreter's imports at
//! start, make it thousands of pixels tall), and once in a window as tall as the graph, which
//! must show its frames over a good part of it and the legend. The screenshots are kept in
//! `target/ci/screenshots/` to look at.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 800;
/// The tallest full-graph screenshot taken.
const MAX_HEIGHT: u32 = 6000;

/// Chromium (`SEAM_CHROMIUM`, or `chromium` on PATH); skips loudly without it, and fails
/// under SEAM_REQUIRE_PRIVILEGED=1 (CI installs it).
fn chromium(test: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SEAM_CHROMIUM") {
        return Some(p.into());
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("SEAM_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("{test}: no chromium on PATH and SEAM_REQUIRE_PRIVILEGED=1 is set (apt-get install chromium)");
        }
        eprintln!(
            "\n!!!!!! SKIPPED {test}: no chromium on PATH (apt-get install chromium) !!!!!!\n"
        );
    }
    found
}

/// Renders `svg` in headless Chromium at WIDTH×`height` and returns the screenshot's pixels
/// (RGB), keeping the PNG at `png`.
fn screenshot(chromium: &Path, svg: &Path, png: &Path, height: u32) -> Vec<[u8; 3]> {
    let profile = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(png);
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={WIDTH},{height}"))
        .arg(format!("file://{}", svg.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "chromium failed on {}: {status}",
                svg.display()
            );
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took more than 90 s on {}", svg.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let file = std::fs::File::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("an image size")];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    assert_eq!(
        (info.width, info.height),
        (WIDTH, height),
        "{}",
        png.display()
    );
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// The fills of the frames (first rect of each `#frames` group) and of the legend's swatches.
fn svg_colours(svg: &str) -> (HashSet<[u8; 3]>, HashSet<[u8; 3]>) {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(svg, options).expect("well-formed SVG");
    let parse = |fill: &str| -> Option<[u8; 3]> {
        let v: Vec<u8> = fill
            .strip_prefix("rgb(")?
            .strip_suffix(')')?
            .split(',')
            .map(|c| c.trim().parse().ok())
            .collect::<Option<_>>()?;
        v.try_into().ok()
    };
    let by_id = |id: &str| doc.descendants().find(|n| n.attribute("id") == Some(id));
    let frames = by_id("frames")
        .expect("#frames")
        .children()
        .filter(|g| g.has_tag_name("g"))
        .filter_map(|g| g.children().find(|n| n.has_tag_name("rect")))
        .filter_map(|r| parse(r.attribute("fill")?))
        .collect();
    let legend = by_id("legend")
        .expect("#legend")
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter_map(|r| parse(r.attribute("fill")?))
        .collect();
    (frames, legend)
}

/// Checks a screenshot shows the SVG: many colours, at least `min_frame_colours` of the
/// frames' own fills, covering at least `min_cover` of the image, and with `legend`, at
/// least half of the legend's swatches.
fn check_rendering(
    name: &str,
    pixels: &[[u8; 3]],
    svg: &str,
    min_frame_colours: usize,
    min_cover: f64,
    legend_shown: bool,
) {
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for p in pixels {
        *counts.entry(*p).or_default() += 1;
    }
    let (frames, legend) = svg_colours(svg);
    let background = counts.values().max().copied().unwrap_or(0);
    assert!(
        counts.len() > 20 && background < pixels.len() * 95 / 100,
        "{name}: a nearly blank image ({} colours, the commonest on {background} of {} pixels)",
        counts.len(),
        pixels.len()
    );
    let shown: Vec<&[u8; 3]> = frames.iter().filter(|c| counts.contains_key(*c)).collect();
    let covered: usize = shown.iter().map(|c| counts[*c]).sum();
    assert!(
        shown.len() >= min_frame_colours.min(frames.len()),
        "{name}: {} of the {} frame colours are in the screenshot",
        shown.len(),
        frames.len()
    );
    assert!(
        covered as f64 >= pixels.len() as f64 * min_cover,
        "{name}: frame colours cover only {covered} of {} pixels",
        pixels.len()
    );
    if legend_shown {
        let swatches = legend.iter().filter(|c| counts.contains_key(*c)).count();
        assert!(
            swatches >= 3 && swatches * 2 >= legend.len(),
            "{name}: {swatches} of the {} legend colours are in the screenshot",
            legend.len()
        );
    }
}

/// The height of the SVG's root element.
fn svg_height(svg: &str) -> u32 {
    let root = &svg[svg.find("<svg ").unwrap()..];
    let h = &root[root.find(" height=\"").unwrap() + 9..];
    h[..h.find('"').unwrap()].parse().unwrap()
}

#[test]
fn flamegraphs_render_in_chromium() {
    let test = "flamegraphs_render_in_chromium";
    if !privileged(test) {
        return;
    }
    let Some(chromium) = chromium(test) else {
        return;
    };
    samples_built();
    let dir = record_chain("svg,offcpu-svg,folded,json");
    // A diff of the recording against a copy with its heaviest stack doubled.
    let folded = dir.path().join("stacks.folded");
    let text = std::fs::read_to_string(&folded).unwrap();
    let heaviest = text
        .lines()
        .max_by_key(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .unwrap()
        .to_string();
    let (stack, count) = heaviest.rsplit_once(' ').unwrap();
    let after = text.replace(
        &heaviest,
        &format!("{stack} {}", 2 * count.parse::<u64>().unwrap()),
    );
    let after_path = dir.path().join("after.folded");
    std::fs::write(&after_path, after).unwrap();
    let out = seam()
        .arg("diff")
        .arg(&folded)
        .arg(&after_path)
        .arg("-o")
        .arg(dir.path().join("diff.svg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let shots = repo().join("target/ci/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, min_frame_colours) in [("flamegraph.svg", 10), ("offcpu.svg", 3), ("diff.svg", 2)] {
        let svg_path = dir.path().join(name);
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        let stem = name.trim_end_matches(".svg");
        let png = shots.join(format!("{stem}.png"));
        // The window a person opens it in: for a tall graph only its top, often just the
        // thin tower of a few deep stacks, so only "not blank" is asked of it.
        let pixels = screenshot(&chromium, &svg_path, &png, HEIGHT);
        check_rendering(name, &pixels, &svg, 0, 0.0, false);
        let full = svg_height(&svg).clamp(HEIGHT, MAX_HEIGHT);
        let png = shots.join(format!("{stem}-full.png"));
        let pixels = screenshot(&chromium, &svg_path, &png, full);
        let fits = svg_height(&svg) <= MAX_HEIGHT;
        check_rendering(name, &pixels, &svg, min_frame_colours, 0.02, fits);
    }
}
