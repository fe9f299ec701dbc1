//! Golden files for every view of one polyglot profile: Python calls a Go library through
//! ctypes and libffi, and Go calls Rust through cgo. Re-bless after an intended change with
//! `SEAM_BLESS=1 cargo test -p seam-export`, then review the diff (and look at the SVG).

mod common;

use common::*;
use seam_export::{
    flamegraph_title, frame_color, print_summary, summarize, write_flamegraph, write_folded,
    write_pprof, write_speedscope, write_summary_json, DEFAULT_TOP_STACKS,
};
use seam_proto::Runtime;

#[test]
fn folded_stacks_match_golden() {
    let mut out = Vec::new();
    write_folded(&polyglot_profile(), &mut out).unwrap();
    check_golden("polyglot.folded", &out);
}

#[test]
fn pprof_matches_golden() {
    let mut out = Vec::new();
    write_pprof(&polyglot_profile_with_modules(), &mut out).unwrap();
    check_golden("polyglot.pb.gz", &out);
}

#[test]
fn speedscope_matches_golden() {
    let mut out = Vec::new();
    write_speedscope(&polyglot_profile_with_modules(), &mut out).unwrap();
    check_golden("polyglot.speedscope.json", &out);
}

#[test]
fn summary_json_and_text_match_golden() {
    let summary = summarize(&polyglot_profile(), 5);
    let mut json = Vec::new();
    write_summary_json(&summary, &mut json).unwrap();
    check_golden("polyglot.summary.json", &json);
    let mut text = Vec::new();
    print_summary(&summary, &mut text).unwrap();
    check_golden("polyglot.summary.txt", &text);
    assert_eq!(
        summarize(&polyglot_profile(), DEFAULT_TOP_STACKS)
            .stacks
            .len(),
        11
    );
}

#[test]
fn flamegraph_matches_golden_and_is_coloured_by_runtime() {
    let profile = polyglot_profile();
    let mut out = Vec::new();
    write_flamegraph(&profile, &flamegraph_title(&profile), &mut out).unwrap();
    check_golden("polyglot.svg", &out);

    let svg = String::from_utf8(out).unwrap();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc =
        roxmltree::Document::parse_with_options(&svg, options).expect("the SVG is well-formed XML");
    let by_id = |id: &str| doc.descendants().find(|n| n.attribute("id") == Some(id));

    let legend = by_id("legend").expect("a legend");
    for runtime in Runtime::ALL {
        let entry = by_id(&format!("legend-{runtime}"))
            .unwrap_or_else(|| panic!("no legend entry for {runtime}"));
        assert_eq!(entry.parent(), Some(legend));
        let text = entry
            .descendants()
            .find(|n| n.has_tag_name("text"))
            .unwrap()
            .text()
            .unwrap();
        assert!(text.starts_with(&format!("{runtime} ")), "{text}");
    }
    assert!(by_id("frames")
        .unwrap()
        .descendants()
        .all(|n| n.attribute("id") != Some("legend")));

    let ffi_call = by_id("frames")
        .unwrap()
        .children()
        .find(|g| {
            g.descendants().any(|n| {
                n.has_tag_name("title") && n.text().unwrap().starts_with("glue:ffi_call (")
            })
        })
        .expect("a glue:ffi_call frame");
    let fill = ffi_call
        .children()
        .find(|n| n.has_tag_name("rect"))
        .unwrap()
        .attribute("fill")
        .unwrap();
    assert_eq!(fill, frame_color(Runtime::Glue, "ffi_call").to_string());
    assert_eq!(fill, "rgb(240,99,220)", "glue is magenta");

    assert!(svg.contains("seam: python3 chain.py --rounds=3"));
    assert!(svg.contains(
        "875 samples, 15 lost (kernel 12, seam 3), 96.0% complete stacks, 8.8 s at 99 Hz"
    ));
}
