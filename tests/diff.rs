//! `seam diff`: a differential flamegraph of two real recordings' folded stacks carries the
//! expected change on each frame; bad inputs give a clear error, never a panic. (Stored
//! sessions as inputs are tested in tests/collector.rs.)

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Runs `seam ARGS`; returns (success, stderr).
fn seam_run(args: &[&str]) -> (bool, String) {
    let out = seam().args(args).output().expect("running seam");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "seam panicked:\n{stderr}");
    (out.status.success(), stderr)
}

fn read_folded(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let (stack, count) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), count.parse().unwrap())
        })
        .collect()
}

fn write_folded(path: &Path, stacks: &BTreeMap<String, u64>) {
    let text: String = stacks.iter().map(|(s, c)| format!("{s} {c}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Every frame of the graph: (title, fill, runtime stripe fill).
fn frames(svg: &str) -> Vec<(String, String, Option<String>)> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(svg, options).expect("well-formed SVG");
    let frames = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("frames"))
        .expect("a #frames element");
    frames
        .children()
        .filter(|n| n.has_tag_name("g"))
        .map(|g| {
            let title = g.children().find(|n| n.has_tag_name("title")).unwrap();
            let mut rects = g.children().filter(|n| n.has_tag_name("rect"));
            let fill = rects.next().unwrap().attribute("fill").unwrap().to_string();
            let stripe = rects
                .next()
                .map(|r| r.attribute("fill").unwrap().to_string());
            (title.text().unwrap().to_string(), fill, stripe)
        })
        .collect()
}

const NO_CHANGE: &str = "rgb(250,250,250)";

/// A real recording against a copy of it with K samples moved from its second heaviest stack
/// to its heaviest: exactly those two stacks' leaf frames change, by +K and -K; the same
/// recording against itself scaled ×3 shows no change once normalised.
#[test]
fn diff_of_real_recordings_shows_the_change_on_each_frame() {
    if !privileged("diff_of_real_recordings_shows_the_change_on_each_frame") {
        return;
    }
    samples_built();
    let before_dir = record_chain("folded,json");
    let work = tempfile::tempdir().unwrap();
    let before = read_folded(&before_dir.path().join("stacks.folded"));
    let total: u64 = before.values().sum();
    let mut by_count: Vec<(&String, &u64)> = before.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    assert!(by_count.len() >= 2, "a chain recording has many stacks");
    let (grown, shrunk) = (by_count[0].0.clone(), by_count[1].0.clone());
    let k = (before[&shrunk] / 2).max(1);
    let mut after = before.clone();
    *after.get_mut(&grown).unwrap() += k;
    *after.get_mut(&shrunk).unwrap() -= k;
    let after_path = work.path().join("after.folded");
    write_folded(&after_path, &after);

    let svg_path = work.path().join("diff.svg");
    let b = before_dir.path().to_str().unwrap();
    let (ok, err) = seam_run(&[
        "diff",
        b,
        after_path.to_str().unwrap(),
        "-o",
        svg_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("{total} samples before, {total} after")),
        "{err}"
    );
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.contains(&format!("seam diff: {b} → {}", after_path.display())));
    assert!(svg.contains("samples each"), "same totals: not normalised");

    let leaf = |stack: &str| stack.rsplit(';').next().unwrap().to_string();
    let pct = 100.0 * k as f64 / total as f64;
    let mut changed: Vec<(String, String, Option<String>)> = frames(&svg)
        .into_iter()
        .filter(|f| f.1 != NO_CHANGE)
        .collect();
    changed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        changed.len(),
        2,
        "only the two leaves changed: {changed:#?}"
    );
    let (blue, red) = (&changed[0], &changed[1]);
    assert!(
        red.0.starts_with(&format!("{} (", leaf(&grown)))
            && red.0.ends_with(&format!("; +{pct:.2}%)")),
        "{red:?} is the heaviest stack's leaf, +{k} samples"
    );
    assert_eq!(red.1, "rgb(255,100,100)");
    assert!(
        blue.0.starts_with(&format!("{} (", leaf(&shrunk)))
            && blue.0.ends_with(&format!("; -{pct:.2}%)")),
        "{blue:?} is the second heaviest stack's leaf, -{k} samples"
    );
    assert_eq!(blue.1, "rgb(100,100,255)");
    for (stack, f) in [(&grown, red), (&shrunk, blue)] {
        let leaf = leaf(stack);
        let (runtime, _) = seam_export::parse_folded_frame(&leaf).expect("a runtime prefix");
        assert_eq!(f.2, Some(seam_export::runtime_color(runtime).to_string()));
    }
    assert!(
        frames(&svg).iter().any(|f| f.0.contains("[seam ")),
        "the seam marks stay in the frame names"
    );

    // Three times as many samples, spread the same way: no change once normalised.
    let tripled: BTreeMap<String, u64> = before.iter().map(|(s, c)| (s.clone(), 3 * c)).collect();
    let tripled_path = work.path().join("tripled.folded");
    write_folded(&tripled_path, &tripled);
    let (ok, err) = seam_run(&[
        "diff",
        before_dir.path().join("stacks.folded").to_str().unwrap(),
        tripled_path.to_str().unwrap(),
        "-o",
        svg_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("normalised (×3.000)"), "{err}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.contains(&format!(
        "normalised (×3.000) to after: {} samples",
        seam_export::thousands(3 * total)
    )));
    let frames = frames(&svg);
    assert!(frames.len() > 10);
    for f in &frames {
        assert_eq!(f.1, NO_CHANGE, "{f:?}");
    }
}

#[test]
fn bad_diff_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(p("good.folded"), "c:main;go:work 3\n").unwrap();
    std::fs::write(p("garbage.folded"), b"\x7fELF\x02\x01\x01\x00\xff\xfe\n").unwrap();
    std::fs::write(p("no-count.folded"), "c:main;go:work\n").unwrap();
    std::fs::write(p("empty.folded"), "").unwrap();
    std::fs::create_dir(p("record-out")).unwrap();
    std::fs::create_dir(p("sessions")).unwrap();
    let out = p("diff.svg");
    let good = p("good.folded");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![p("missing.folded"), good.clone()],
            format!(
                "{}: no such file or folder; to compare stored sessions by id, pass --data DIR",
                p("missing.folded")
            ),
        ),
        (
            vec![
                "abc123".into(),
                good.clone(),
                "--data".into(),
                p("sessions"),
            ],
            "no session \"abc123\" in".into(),
        ),
        (
            vec![good.clone(), p("garbage.folded")],
            format!("{}:1: not UTF-8 text", p("garbage.folded")),
        ),
        (
            vec![good.clone(), p("no-count.folded")],
            format!("{}:1: no count", p("no-count.folded")),
        ),
        (
            vec![p("empty.folded"), good.clone()],
            format!("{} holds no samples", p("empty.folded")),
        ),
        (
            vec![p("record-out"), good.clone()],
            format!("{} holds no stacks.folded", p("record-out")),
        ),
        (
            vec![
                good.clone(),
                good.clone(),
                "-o".into(),
                p("no-such-dir/diff.svg"),
            ],
            format!("creating {}", p("no-such-dir/diff.svg")),
        ),
    ];
    for (args, want) in cases {
        let mut argv = vec!["diff".to_string()];
        argv.extend(args.iter().cloned());
        if !args.iter().any(|a| a == "-o") {
            argv.extend(["-o".to_string(), out.clone()]);
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (ok, err) = seam_run(&argv);
        assert!(!ok, "{argv:?} succeeded");
        assert!(err.contains(&want), "{argv:?}: wanted {want:?} in:\n{err}");
    }
    let (ok, err) = seam_run(&["diff", &good, &good, "-o", &out]);
    assert!(ok, "{err}");
    assert!(err.contains("3 samples before, 3 after"), "{err}");
}
