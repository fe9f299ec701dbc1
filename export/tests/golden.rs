//! Golden files for every view of one polyglot profile: Python calls a Go library through
//! ctypes and libffi, and Go calls Rust through cgo. Re-bless after an intended change with
//! `SEAM_BLESS=1 cargo test -p seam-export`, then review the diff (and look at the SVG).

use seam_export::{
    flamegraph_title, frame_color, print_summary, summarize, write_flamegraph, write_folded,
    write_summary_json, DEFAULT_TOP_STACKS,
};
use seam_proto::{Frame, Lost, Profile, Runtime, Target};
use std::path::PathBuf;

/// A frame written as `runtime:name`, or `python:name@file:line`.
fn frame(spec: &str) -> Frame {
    let (runtime, name) = spec.split_once(':').unwrap();
    let runtime: Runtime = runtime.parse().unwrap();
    match name.split_once('@') {
        Some((name, at)) => {
            let (file, line) = at.rsplit_once(':').unwrap();
            Frame {
                file: Some(file.into()),
                line: Some(line.parse().unwrap()),
                ..Frame::new(name, runtime)
            }
        }
        None if name == Frame::TRUNCATED => Frame::truncated(),
        None => Frame::new(name, runtime),
    }
}

const PYTHON_MAIN: &[&str] = &[
    "c:_start",
    "c:__libc_start_main",
    "c:Py_BytesMain",
    "c:pymain_run_python",
    "python:<module>@chain.py:58",
    "python:main@chain.py:51",
];
const INTO_GO: &[&str] = &[
    "python:work@chain.py:42",
    "glue:cfunction_call",
    "glue:PyCFuncPtr_call",
    "glue:_ctypes_callproc",
    "glue:ffi_call",
    "glue:ffi_call_unix64",
    "glue:Compute",
    "glue:crosscall2",
    "glue:runtime.cgocallback",
    "glue:runtime.cgocallbackg",
    "glue:_cgoexp_3f1e_Compute",
    "go:main.Compute",
    "go:main.compute",
];
const INTO_RUST: &[&str] = &[
    "go:main.hashChunk",
    "glue:runtime.cgocall",
    "glue:runtime.asmcgocall",
    "glue:_cgo_9a2c_Cfunc_seam_hash",
    "rust:seam_hash",
    "rust:seam_sample::hash::digest",
];
const GO_GC: &[&str] = &[
    "go:runtime.goexit",
    "go:runtime.gcBgMarkWorker",
    "go:runtime.gcDrain",
];
const SYSCALL: &[&str] = &[
    "kernel:entry_SYSCALL_64",
    "kernel:do_syscall_64",
    "kernel:ksys_write",
    "kernel:vfs_write",
];

fn polyglot_profile() -> Profile {
    let stacks: Vec<(Vec<&[&str]>, bool, u32, u64)> = vec![
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                INTO_RUST,
                &["rust:sha2::sha256::compress256"],
            ],
            true,
            101,
            412,
        ),
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                INTO_RUST,
                &["rust:alloc::vec::Vec<u8>::extend_from_slice"],
            ],
            true,
            101,
            38,
        ),
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                &["go:main.compute.func1", "go:runtime.mallocgc"],
            ],
            true,
            101,
            61,
        ),
        (
            vec![PYTHON_MAIN, INTO_GO, &["go:main.compute.func1"]],
            true,
            101,
            120,
        ),
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                &["go:fmt.Fprintf", "go:syscall.write"],
                SYSCALL,
            ],
            true,
            101,
            23,
        ),
        (vec![PYTHON_MAIN, &INTO_GO[..6]], true, 101, 17),
        (
            vec![
                PYTHON_MAIN,
                &[
                    "python:prepare@chain.py:30",
                    "c:PyBytes_FromStringAndSize",
                    "c:memcpy",
                ],
            ],
            true,
            101,
            44,
        ),
        (
            vec![PYTHON_MAIN, &["python:prepare@chain.py:31"]],
            true,
            101,
            90,
        ),
        (vec![GO_GC, &["go:runtime.scanobject"]], true, 104, 35),
        (
            vec![&["unknown:[truncated]"], &INTO_GO[4..], INTO_RUST],
            false,
            101,
            29,
        ),
        (
            vec![&["unknown:[truncated]", "unknown:0x7f3a12c0"]],
            false,
            101,
            6,
        ),
    ];
    let mut p = Profile::default();
    p.target = Target {
        pid: 4242,
        command: vec!["python3".into(), "chain.py".into(), "--rounds=3".into()],
    };
    p.rate_hz = 99;
    p.duration_s = 8.75;
    p.lost = Lost {
        kernel: 12,
        seam: 3,
    };
    for (parts, complete, tid, count) in stacks {
        let frames = parts
            .concat()
            .into_iter()
            .map(|s| p.intern_frame(frame(s)))
            .collect();
        let stack = p.intern_stack(frames, complete);
        p.add_samples(stack, tid, count);
    }
    p.threads.get_mut(&101).unwrap().name = "python3".into();
    p.threads.get_mut(&104).unwrap().name = "python3".into();
    p.problems
        .insert("dwarf unwinding stopped in libffi".into(), 29);
    p.problems.insert("address in no mapping".into(), 6);
    p
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file, or rewrites it when `SEAM_BLESS=1`.
fn check_golden(name: &str, actual: &[u8]) {
    let path = golden(name);
    if std::env::var_os("SEAM_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with SEAM_BLESS=1 cargo test -p seam-export",
            path.display()
        )
    });
    if expected != actual {
        let new = path.with_extension(format!(
            "{}.new",
            path.extension().unwrap().to_str().unwrap()
        ));
        std::fs::write(&new, actual).unwrap();
        panic!(
            "{} differs from the output (written to {}); if the change is intended, re-bless with \
             SEAM_BLESS=1 cargo test -p seam-export",
            path.display(),
            new.display()
        );
    }
}

#[test]
fn folded_stacks_match_golden() {
    let mut out = Vec::new();
    write_folded(&polyglot_profile(), &mut out).unwrap();
    check_golden("polyglot.folded", &out);
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
