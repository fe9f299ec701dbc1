//! Whole screens of the dashboard, drawn with ratatui's `TestBackend` from a
//! synthetic recording (two snapshots a second apart), against golden text
//! files in `tests/golden/`. Re-bless after an intended change with
//! `SEAM_BLESS=1 cargo test -p seam-tui --test render`, then review the diff.

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use seam_proto::delta::DeltaBuilder;
use seam_proto::{
    Boundary, CrossingsMethod, Frame, Lost, Mechanism, ProbeOverhead, Profile, Runtime,
    SamplingOverhead, Target, ThreadInfo,
};
use seam_tui::{Action, Dashboard, View};
use std::path::PathBuf;

/// `runtime:name`, `python:name@file:line`, or `runtime:name|mechanism` for the
/// first frame of a callee reached through a crossing.
fn frame(spec: &str) -> Frame {
    let (spec, seam) = match spec.split_once('|') {
        Some((s, m)) => (s, Some(m)),
        None => (spec, None),
    };
    let (runtime, name) = spec.split_once(':').unwrap();
    let mut f = match name.split_once('@') {
        Some((name, at)) => {
            let (file, line) = at.rsplit_once(':').unwrap();
            Frame {
                file: Some(file.into()),
                line: Some(line.parse().unwrap()),
                ..Frame::new(name, runtime.parse().unwrap())
            }
        }
        None => Frame::new(name, runtime.parse().unwrap()),
    };
    f.seam = seam.map(|m| match m {
        "ctypes" => Mechanism::Ctypes,
        "cgo-call" => Mechanism::CgoCall,
        "callback" => Mechanism::Callback,
        other => panic!("no mechanism {other}"),
    });
    f
}

const MAIN: &[&str] = &[
    "c:_start",
    "python:main@/srv/chain.py:51",
    "python:work@/srv/chain.py:42",
];
const INTO_GO: &[&str] = &[
    "glue:PyCFuncPtr_call",
    "glue:ffi_call",
    "glue:crosscall2",
    "go:main.chainRun|ctypes",
];
const INTO_RUST: &[&str] = &[
    "glue:runtime.cgocall",
    "rust:seam_mix_work|cgo-call",
    "rust:seam_mix::mix::round",
];

/// The recording after `step` seconds: every count grows with `step`, a little
/// faster on the Rust side in the second second.
fn snapshot(step: u64) -> Profile {
    let mut p = Profile::default();
    p.target = Target {
        pid: 4242,
        command: vec!["samples/run".into(), "chain".into()],
    };
    p.rate_hz = 999;
    p.duration_s = step as f64;
    p.start_ns = 5_000_000_000;
    p.seam_cpu_s = 0.06 * step as f64;
    p.lost = Lost {
        kernel: 3 * step,
        seam: 0,
    };
    let stacks: Vec<(Vec<&[&str]>, u32, u64)> = vec![
        (vec![MAIN, INTO_GO, INTO_RUST], 101, 400 + 100 * step * step),
        (vec![MAIN, INTO_GO, &["go:main.mix"]], 101, 200 * step),
        (vec![MAIN, INTO_GO], 102, 50 * step),
        (
            vec![MAIN, &["c:PyBytes_FromStringAndSize", "c:memcpy"]],
            101,
            80 * step,
        ),
        (
            vec![&["go:runtime.goexit", "go:runtime.gcBgMarkWorker"]],
            104,
            30 * step,
        ),
    ];
    for (parts, tid, count) in stacks {
        let frames = parts
            .concat()
            .iter()
            .map(|s| p.intern_frame(frame(s)))
            .collect();
        let s = p.intern_stack(frames, true);
        p.add_samples(s, tid, count);
    }
    for (tid, name, now, off) in [
        (101, "python3", Runtime::Rust, None),
        (102, "worker", Runtime::Go, Some(("gil", 150_000_000))),
        (
            104,
            "go-gc",
            Runtime::Go,
            Some(("go-p-handoff", 20_000_000)),
        ),
    ] {
        p.threads.insert(
            tid,
            ThreadInfo {
                name: name.into(),
                samples: p.threads.get(&tid).map_or(0, |t| t.samples),
                runtime_now: Some(now),
                off_cpu_ns: off
                    .map(|(cause, ns)| (cause.to_string(), ns * step))
                    .into_iter()
                    .collect(),
            },
        );
    }
    let mut ctypes = Boundary::new(Runtime::Python, Runtime::Go, Mechanism::Ctypes);
    ctypes.samples = 850 + 250 * step;
    ctypes.glue_samples = 50 * step;
    ctypes.crossings = Some(12_000 * step);
    ctypes.crossings_method = CrossingsMethod::Exact;
    ctypes.armed_at_ns = Some(p.start_ns);
    ctypes.off_cpu_ns = 40_000_000 * step;
    ctypes.switches.voluntary = 120 * step;
    ctypes.causes.insert("gil".into(), 30_000_000 * step);
    ctypes.causes.insert("io".into(), 10_000_000 * step);
    let mut cgo = Boundary::new(Runtime::Go, Runtime::Rust, Mechanism::CgoCall);
    cgo.samples = 400 + 100 * step * step;
    cgo.glue_samples = 20 * step;
    cgo.crossings = Some(40_000 * step * step);
    cgo.crossings_method = CrossingsMethod::Extrapolated;
    cgo.crossings_error = 2_000 * step * step;
    cgo.armed_at_ns = Some(p.start_ns);
    cgo.off_cpu_ns = 5_000_000 * step;
    cgo.switches.involuntary = 40 * step;
    cgo.causes.insert("preempted".into(), 5_000_000 * step);
    p.boundaries = vec![ctypes, cgo];
    p.probe_overhead = Some(ProbeOverhead {
        hits: 52_000 * step,
        share: 0.021,
        ..ProbeOverhead::default()
    });
    p.sampling_overhead = Some(SamplingOverhead {
        ns_per_sample: 14_000.0,
        share: 0.014,
        budget: Some(0.03),
        ..SamplingOverhead::default()
    });
    p
}

/// The dashboard after two snapshots, handed over as deltas as `seam top` does.
fn dashboard_of(snapshots: &[Profile]) -> Dashboard {
    let mut d = Dashboard::new();
    let mut deltas = DeltaBuilder::default();
    for p in snapshots {
        d.apply_delta(&deltas.next(p)).unwrap();
        d.refresh();
    }
    d
}

fn dashboard() -> Dashboard {
    dashboard_of(&[snapshot(1), snapshot(2)])
}

/// The screen as text, one line per row, trailing blanks cut.
fn text(buffer: &Buffer) -> String {
    let width = buffer.area.width as usize;
    let mut out = String::new();
    for row in buffer.content().chunks(width) {
        let line: String = row.iter().map(|c| c.symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("SEAM_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with SEAM_BLESS=1 cargo test -p seam-tui --test render",
            path.display()
        )
    });
    if expected != actual {
        let new = path.with_extension("txt.new");
        std::fs::write(&new, actual).unwrap();
        panic!(
            "{} differs from the screen (written to {}); if the change is intended, re-bless with \
             SEAM_BLESS=1 cargo test -p seam-tui --test render",
            path.display(),
            new.display()
        );
    }
}

fn draw(d: &Dashboard, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| f.render_widget(d, f.area()))
        .unwrap()
        .buffer
        .clone()
}

fn check_view(view: View, name: &str) {
    let mut d = dashboard();
    d.apply(Action::Show(view));
    for (w, h) in [(80, 24), (160, 48)] {
        check_golden(&format!("{name}-{w}x{h}.txt"), &text(&draw(&d, w, h)));
    }
}

#[test]
fn overview() {
    check_view(View::Overview, "overview");
}

#[test]
fn boundaries() {
    check_view(View::Boundaries, "boundaries");
}

#[test]
fn hot_functions() {
    check_view(View::Stacks, "functions");
}

#[test]
fn threads() {
    check_view(View::Threads, "threads");
}

#[test]
fn boundary_detail() {
    check_view(View::Detail, "detail");
}

/// In the detail, j/k select among the boundary's stacks (the boundary
/// stays), and the selected one shows in full; enter from the boundaries
/// table starts again at the heaviest.
#[test]
fn the_detail_selects_a_stack_and_shows_it_in_full() {
    let mut d = dashboard();
    d.apply(Action::Show(View::Boundaries));
    d.apply(Action::Open);
    let boundary = d.selected_boundary().unwrap().key;
    d.apply(Action::Down);
    d.apply(Action::Down);
    d.apply(Action::Down);
    assert_eq!(d.selected_boundary().unwrap().key, boundary);
    let screen = text(&draw(&d, 80, 24));
    assert!(screen.contains("stack 3 of 3, in full"), "{screen}");
    let full = screen.split("in full").nth(1).unwrap();
    assert!(
        full.lines()
            .nth(1)
            .unwrap()
            .trim_end()
            .ends_with("main.chainRun"),
        "{screen}"
    );
    d.apply(Action::Back);
    d.apply(Action::Open);
    assert!(text(&draw(&d, 80, 24)).contains("stack 1 of 3, in full"));
}

#[test]
fn help_and_flags() {
    let mut d = dashboard();
    d.apply(Action::TogglePause);
    d.target_exited(Some(0));
    d.apply(Action::ToggleHelp);
    check_golden("help-80x24.txt", &text(&draw(&d, 80, 24)));
}

/// The switch-outs' stacks paused over the budget are said in the header
/// where there is room, and leave out nothing else where there is not.
#[test]
fn paused_switch_stacks_show_where_there_is_room() {
    let paused = |mut p: Profile| {
        if let Some(s) = p.sampling_overhead.as_mut() {
            s.switch_stacks_paused = 0.42;
        }
        p
    };
    let d = dashboard_of(&[paused(snapshot(1)), paused(snapshot(2))]);
    let wide = text(&draw(&d, 160, 48));
    let header = wide.lines().next().unwrap();
    assert!(
        header.contains("sampling ≥1.4%  probes ≥2.1%  switch stacks paused 42.0%"),
        "{header}"
    );
    // Where it would cut the target's command line short, not said.
    let narrow = text(&draw(&d, 100, 24));
    let header = narrow.lines().next().unwrap();
    assert!(
        header.contains("samples/run chain")
            && header.contains("sampling ≥1.4%  probes ≥2.1%")
            && !header.contains("paused"),
        "{header}"
    );
    // Not paused: not said.
    let header = text(&draw(&dashboard(), 160, 48));
    assert!(!header.contains("switch stacks"), "{header}");
}

/// Where most stacks are incomplete, the header says the commonest reason
/// (here a Python seam cannot read); where they are complete, nothing.
#[test]
fn the_commonest_problem_shows_where_stacks_are_incomplete() {
    let unreadable = "python frames unreadable: CPython 3.7 is not supported";
    let incomplete = |step: u64| {
        let mut p = Profile::default();
        p.target = Target {
            pid: 4242,
            command: vec!["python3.7".into(), "app.py".into()],
        };
        p.rate_hz = 999;
        p.duration_s = step as f64;
        let f = p.intern_frame(frame("python:_PyEval_EvalFrameDefault"));
        let s = p.intern_stack(vec![f], false);
        p.add_samples(s, 101, 90 * step);
        let f = p.intern_frame(frame("c:main"));
        let s = p.intern_stack(vec![f], true);
        p.add_samples(s, 101, 10 * step);
        p.problems.insert(unreadable.into(), 90 * step);
        p.problems.insert("unwinding failed".into(), step);
        // A recovery, counted with the problems: not why stacks are incomplete.
        p.problems.insert(
            "frames past a stack switch taken from an earlier walk (the thread had moved on)"
                .into(),
            200 * step,
        );
        p
    };
    let d = dashboard_of(&[incomplete(1), incomplete(2)]);
    let screen = text(&draw(&d, 160, 24));
    let second = screen.lines().nth(1).unwrap();
    assert!(
        second.contains("complete 10.0%") && second.contains(&format!("mostly: {unreadable}")),
        "{second}"
    );
    let screen = text(&draw(&dashboard(), 160, 24));
    assert!(!screen.contains("mostly:"), "{screen}");
}

#[test]
fn empty_dashboard_draws_at_every_size() {
    let d = Dashboard::new();
    for view in View::ALL {
        let mut d2 = Dashboard::new();
        d2.apply(Action::Show(view));
        for (w, h) in [(80, 24), (40, 10), (1, 1), (200, 60)] {
            draw(&d2, w, h);
        }
    }
    let screen = text(&draw(&d, 80, 24));
    assert!(screen.contains("no crossing seen yet"), "{screen}");
}

#[test]
fn lost_samples_are_red_and_the_selection_is_highlighted() {
    let mut d = dashboard();
    d.apply(Action::Show(View::Boundaries));
    d.apply(Action::Down);
    let buffer = draw(&d, 80, 24);
    let screen = text(&buffer);
    let at = |what: &str| -> (u16, u16) {
        let (row, line) = screen
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} on the screen:\n{screen}"));
        (line.find(what).unwrap() as u16, row as u16)
    };
    assert_eq!(buffer[at("lost 6")].fg, ratatui::style::Color::Red);
    let (_, row) = at("go -> rust");
    assert!(buffer[(0, row)]
        .modifier
        .contains(ratatui::style::Modifier::REVERSED));
}

#[test]
fn long_tables_scroll_with_the_selection() {
    let mut busy = snapshot(2);
    let leaf = busy.intern_frame(frame("go:main.spin"));
    let stack = busy.intern_stack(vec![leaf], true);
    for tid in 200..240 {
        busy.add_samples(stack, tid, 1 + tid as u64);
        busy.threads.get_mut(&tid).unwrap().name = format!("spinner-{tid}");
    }
    let mut d = dashboard_of(&[snapshot(1), busy]);
    d.apply(Action::Show(View::Threads));
    let title = |d: &Dashboard| {
        let screen = text(&draw(d, 80, 24));
        let line = screen
            .lines()
            .find(|l| l.contains(" threads ("))
            .unwrap_or_else(|| panic!("no title:\n{screen}"))
            .to_string();
        (line, screen)
    };
    let (line, _) = title(&d);
    assert!(line.contains("rows 1-18 of 43"), "{line}");
    for _ in 0..25 {
        d.apply(Action::Down);
    }
    let (line, screen) = title(&d);
    assert!(line.contains("rows 9-26 of 43"), "{line}");
    let selected = d.thread_rows()[25].tid.to_string();
    let last = screen.lines().nth(22).unwrap();
    assert!(last.trim_start().starts_with(&selected), "{screen}");
    // Back up within the screen: it stays where it is.
    for _ in 0..5 {
        d.apply(Action::Up);
    }
    assert!(title(&d).0.contains("rows 9-26 of 43"));
    d.apply(Action::PageDown);
    d.apply(Action::PageDown);
    d.apply(Action::PageDown);
    assert!(title(&d).0.contains("rows 26-43 of 43"));
}
