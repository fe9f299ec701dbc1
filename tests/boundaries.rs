//! Boundaries end to end: exact crossing counts against the samples' own
//! counts, the overhead budget's duty cycles and extrapolation, and off-CPU
//! time at the seams (GIL waits, Go's P hand-offs).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

type Key = (String, String, String);

/// Root (or a loud skip), built samples, and this test alone on the machine.
fn prepare(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if !privileged(test) {
        return None;
    }
    samples_built();
    Some(exclusive())
}

/// Records `sample ARGS` (with `--truth`) under `seam record SEAM_ARGS`, and
/// returns (summary.json, the sample's truth, the output folder).
fn record_with_truth(
    seam_args: &[&str],
    sample: &str,
    args: &[&str],
) -> (Value, Value, tempfile::TempDir) {
    record_with_truth_env(&[], seam_args, sample, args)
}

/// [`record_with_truth`] with these environment variables set for seam.
fn record_with_truth_env(
    env: &[(&str, &str)],
    seam_args: &[&str],
    sample: &str,
    args: &[&str],
) -> (Value, Value, tempfile::TempDir) {
    let truth_dir = tempfile::tempdir().unwrap();
    let truth_path = truth_dir.path().join("truth.json");
    let mut sample_args: Vec<&str> = args.to_vec();
    let truth_arg = truth_path.display().to_string();
    sample_args.extend(["--truth", &truth_arg]);
    let mut argv: Vec<String> = seam_args.iter().map(|s| s.to_string()).collect();
    argv.push("--".into());
    argv.extend(sample_command(sample, &sample_args));
    let (dir, summary) = record_with_env(&argv, env);
    let truth = read_json(&truth_path);
    (summary, truth, dir)
}

fn key(v: &Value) -> Key {
    (
        v["caller"].as_str().unwrap().to_string(),
        v["callee"].as_str().unwrap().to_string(),
        v["mechanism"].as_str().unwrap().to_string(),
    )
}

/// Each crossing of the sample's truth: its key, seam's count, the sample's,
/// and seam's boundary.
fn against_truth<'a>(
    found: &'a BTreeMap<Key, Value>,
    truth: &Value,
) -> Vec<(Key, f64, f64, &'a Value)> {
    truth["crossings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let k = key(c);
            let b = found
                .get(&k)
                .unwrap_or_else(|| panic!("no boundary {k:?}: {:?}", found.keys()));
            let got = b["crossings"].as_f64().unwrap();
            (k, got, c["count"].as_f64().unwrap(), b)
        })
        .collect()
}

fn boundaries(summary: &Value) -> BTreeMap<Key, Value> {
    summary["boundaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (key(b), b.clone()))
        .collect()
}

fn assert_exact(summary: &Value, truth: &Value, what: &str) {
    let found = boundaries(summary);
    for c in truth["crossings"].as_array().unwrap() {
        let k = key(c);
        let want = c["count"].as_u64().unwrap();
        let b = found
            .get(&k)
            .unwrap_or_else(|| panic!("{what}: no boundary {k:?}; found {:?}", found.keys()));
        assert_eq!(
            (b["crossings"].as_u64(), b["crossings_method"].as_str()),
            (Some(want), Some("exact")),
            "{what}: boundary {k:?}: seam counted {b}, the sample {want}; {}",
            summary["probe_overhead"]
        );
        assert!(
            b["armed_at_ns"].as_u64().is_some(),
            "{what}: {k:?} has no armed_at_ns"
        );
        assert!(b["crossings_per_s"].as_f64().unwrap() > 0.0);
    }
    let overhead = &summary["probe_overhead"];
    assert!(overhead["hits"].as_u64().unwrap() > 0, "{what}: {overhead}");
    assert!(overhead["ns_per_hit_emulated"].as_f64().unwrap() > 0.0);
}

#[test]
fn chain_crossings_are_counted_exactly_with_each_go() {
    let Some(_one) = prepare("chain_crossings_are_counted_exactly_with_each_go") else {
        return;
    };
    for go in ["debian", "current"] {
        let (summary, truth, _dir) = record_with_truth(
            &["--overhead-budget", "none"],
            "chain",
            &[
                "--go",
                go,
                "--threads",
                "2",
                "--seconds",
                "3",
                "--start-delay",
                "1",
            ],
        );
        assert_exact(&summary, &truth, &format!("chain, Go {go}"));
        // The library was probed as it loaded, before the start delay ran out.
        let latency = summary["probe_overhead"]["arm_latency_ms_max"]
            .as_f64()
            .expect("arm latency");
        assert!(
            latency < 1000.0,
            "chain, Go {go}: probes armed {latency} ms after the load"
        );
    }
}

/// Where the kernel has no BPF `uprobe_multi` links (before Linux 6.6), seam
/// probes with perf's uprobe events, one per CPU and site for all processes;
/// `SEAM_PROBES=perf` picks them here. Both count exactly, and the summary
/// says which was used.
#[test]
fn perf_uprobe_events_count_exactly_where_bpf_links_are_missing() {
    let Some(_one) = prepare("perf_uprobe_events_count_exactly_where_bpf_links_are_missing") else {
        return;
    };
    for (env, via) in [(&[][..], "bpf"), (&[("SEAM_PROBES", "perf")][..], "perf")] {
        let (summary, truth, _dir) = record_with_truth_env(
            env,
            &["--overhead-budget", "none"],
            "chain",
            // Two seconds: perf events open 10-20 ms each, and right after
            // the BPF half's links were closed the first of them once came
            // armed 16 calls late with one.
            &["--threads", "1", "--seconds", "1", "--start-delay", "2"],
        );
        if via == "bpf" && !kernel_has_uprobe_multi() {
            eprintln!(
                "\n!!!!!! this kernel predates BPF uprobe_multi links (Linux 6.6): seam used {} !!!!!!\n",
                summary["probe_overhead"]["via"]
            );
        } else {
            assert_eq!(summary["probe_overhead"]["via"], via, "{env:?}");
        }
        assert_exact(&summary, &truth, &format!("chain, probes by {via}"));
    }
}

/// Linux 6.6 or later, which has BPF `uprobe_multi` links.
fn kernel_has_uprobe_multi() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 6)
}

#[test]
fn gomain_cgo_calls_and_callbacks_are_counted_exactly() {
    let Some(_one) = prepare("gomain_cgo_calls_and_callbacks_are_counted_exactly") else {
        return;
    };
    let (summary, truth, _dir) = record_with_truth(
        &["--overhead-budget", "none"],
        "gomain",
        &["--threads", "2", "--seconds", "3", "--start-delay", "1"],
    );
    let found = boundaries(&summary);
    for c in truth["crossings"].as_array().unwrap() {
        let k = key(c);
        let want = c["count"].as_u64().unwrap();
        let got = found.get(&k).and_then(|b| b["crossings"].as_u64());
        if k.2 == "c-abi" {
            // C calling Rust has no symbol that says so: it is probed once a
            // sample shows it, so its count starts late, and never overshoots.
            let got = got.expect("c -> rust counted once seen");
            assert!(got <= want && got * 2 >= want, "c -> rust: {got} of {want}");
            assert!(
                found[&k]["armed_at_ns"].as_u64().unwrap() > summary["start_ns"].as_u64().unwrap()
            );
        } else {
            assert_eq!(got, Some(want), "gomain {k:?}: {:?}", found.get(&k));
        }
    }
}

/// Exact mode on Go code whose goroutine stacks grow (are copied) under the
/// probes: every cgo call and callback is made from a fresh goroutine 300
/// frames deep. seam puts no uretprobe on Go code, so the target runs to its
/// end with every frame's locals intact, and the counts stay exact.
#[test]
fn exact_mode_leaves_growing_goroutine_stacks_unharmed() {
    let Some(_one) = prepare("exact_mode_leaves_growing_goroutine_stacks_unharmed") else {
        return;
    };
    for go in ["debian", "current"] {
        // The truth is written only if the sample reached its end.
        let (summary, truth, _dir) = record_with_truth(
            &["--crossings", "exact", "--overhead-budget", "none"],
            "gomain",
            &[
                "--go",
                go,
                "--grow",
                "300",
                "--threads",
                "2",
                "--seconds",
                "2",
                "--start-delay",
                "0.5",
            ],
        );
        let grown = truth["grown_goroutines"].as_u64().unwrap();
        assert!(grown > 100, "Go {go}: only {grown} goroutines grew");
        assert_eq!(truth["corrupt_frames"], 0, "Go {go}: {truth}");
        let found = boundaries(&summary);
        for c in truth["crossings"].as_array().unwrap() {
            let k = key(c);
            if k.2 == "c-abi" {
                continue; // probed only once sampled (see the gomain test)
            }
            assert_eq!(
                found.get(&k).and_then(|b| b["crossings"].as_u64()),
                c["count"].as_u64(),
                "Go {go}, {k:?}"
            );
        }
    }
}

/// A Rust extension with no symbol table, as wheels ship them: its frames are
/// named by the entry of their function (from the unwind tables), each a real
/// function's start, and its calls are still counted exactly.
#[test]
fn a_stripped_extension_is_named_by_function_and_counted() {
    let Some(_one) = prepare("a_stripped_extension_is_named_by_function_and_counted") else {
        return;
    };
    let (summary, truth, dir) = record_with_truth(
        &["--overhead-budget", "none"],
        "ffibench",
        &[
            "--stripped",
            "--mechanisms",
            "pyo3",
            "--calls",
            "200000",
            "--repeat",
            "1",
            "--start-delay",
            "0.5",
        ],
    );
    let want = truth["crossings"][0]["count"].as_u64().unwrap();
    let into_rust: Vec<&Value> = summary["boundaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["caller"] == "python" && b["callee"] == "rust")
        .collect();
    assert_eq!(into_rust.len(), 1, "{into_rust:?}");
    // The warm-up call, right after the module loaded and before the ready
    // line: BPF links are armed quickly enough to count it, or not.
    let warm: u64 = truth["warmup_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["caller"] == "python" && w["callee"] == "rust")
        .map(|w| w["count"].as_u64().unwrap_or(1))
        .sum();
    let got = into_rust[0]["crossings"].as_u64().unwrap();
    assert!(
        got >= want && got <= want + warm,
        "seam counted {got}, the sample {want} (+{warm} warm-up): {}",
        into_rust[0]
    );

    // The function entries the unstripped build's symbol table holds.
    let unstripped = repo().join("samples/build/ffibench/pyo3/ffib_pyo3.abi3.so");
    let nm = std::process::Command::new("nm")
        .arg("--defined-only")
        .arg(&unstripped)
        .output()
        .expect("nm (binutils)");
    let entries: std::collections::HashSet<u64> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok())
        .collect();
    let folded = std::fs::read_to_string(dir.path().join("stacks.folded")).unwrap();
    let named: std::collections::BTreeSet<u64> = folded
        .split(';')
        .filter_map(|f| {
            let hex = f.split("[ffib_pyo3.abi3.so+0x").nth(1)?;
            u64::from_str_radix(hex.split(']').next()?, 16).ok()
        })
        .collect();
    assert!(!named.is_empty(), "no frame in the stripped module");
    for at in &named {
        assert!(entries.contains(at), "{at:#x} is not a function's entry");
    }
}

#[test]
fn ffibench_every_mechanism_is_counted_exactly() {
    let Some(_one) = prepare("ffibench_every_mechanism_is_counted_exactly") else {
        return;
    };
    for go in ["debian", "current"] {
        let (summary, truth, dir) = record_with_truth(
            &["--overhead-budget", "none"],
            "ffibench",
            &[
                "--go",
                go,
                "--calls",
                "20000",
                "--repeat",
                "1",
                "--start-delay",
                "0.5",
            ],
        );
        let mut want: BTreeMap<Key, u64> = BTreeMap::new();
        for c in truth["crossings"].as_array().unwrap() {
            *want.entry(key(c)).or_default() += c["count"].as_u64().unwrap();
        }
        // Warm-up calls happen before the ready line, right after the library
        // loaded: the probes may see them or not.
        let mut warm: BTreeMap<Key, u64> = BTreeMap::new();
        for w in truth["warmup_calls"].as_array().unwrap() {
            *warm.entry(key(w)).or_default() += w["count"].as_u64().unwrap_or(1);
        }
        assert_eq!(want.len(), 8, "ffibench crossed {want:?}");
        let found = boundaries(&summary);
        for (k, &n) in &want {
            let b = found
                .get(k)
                .unwrap_or_else(|| panic!("Go {go}: no boundary {k:?}"));
            let got = b["crossings"].as_u64().unwrap_or(0);
            let w = warm.get(k).copied().unwrap_or(0);
            assert!(
                got >= n && got <= n + w,
                "ffibench, Go {go}, {k:?}: seam counted {got}, the sample {n} (+{w} warm-up): {b}"
            );
            assert_eq!(b["crossings_method"], "exact", "{k:?}: {b}");
        }
        // Nothing counted twice: ctypes' calls into a Go export (its wrapper
        // starts with `endbr64` in the current Go's build) are not counted at
        // `c -> go` too.
        for (k, b) in &found {
            let got = b["crossings"].as_u64().unwrap_or(0);
            assert!(
                want.contains_key(k) || got == 0,
                "Go {go}: seam counted {got} crossings at {k:?}, which ffibench does not make: {b}"
            );
        }
        // Calls into Go from a thread Go did not create spend most of their
        // glue in needm and dropm (Go 1.19 keeps a frame pointer in
        // crosscall2): those stacks reach the thread's root.
        let folded = std::fs::read_to_string(dir.path().join("stacks.folded")).unwrap();
        let (mut into_go, mut rooted, mut needm) = (0u64, 0u64, 0u64);
        for line in folded.lines().filter(|l| l.contains(";glue:crosscall2")) {
            let (stack, n) = line.rsplit_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            into_go += n;
            if stack.starts_with("python:_start;") {
                rooted += n;
            }
            if stack.contains(";glue:runtime.needm") {
                needm += n;
            }
        }
        assert!(
            into_go > 0 && rooted * 10 >= into_go * 8,
            "Go {go}: {rooted} of {into_go} samples through crosscall2 reach the root"
        );
        // Before Go 1.21 each call from a foreign thread takes an M (needm)
        // and gives it back; since 1.21 the thread keeps it after its first
        // call, so needm is gone from the figures but for that first call,
        // which a sample can catch (a CI run: 1 of 17 samples through
        // crosscall2, the current Go's calls being cheap).
        let share = needm as f64 / into_go as f64;
        eprintln!("Go {go}: needm in {needm} of {into_go} samples through crosscall2");
        if go == "debian" {
            assert!(share >= 0.2, "Go 1.19: needm in only {needm} of {into_go}");
        } else {
            assert!(
                share <= 0.05 || needm <= 1,
                "current Go: needm in {needm} of {into_go}"
            );
        }
    }
}

/// Calls per mechanism under seam: enough for about 100 samples or more of
/// each one's glue at 999 Hz (pyo3's glue is ~50 ns a call, so 2 million
/// calls), while each probe hit (~1 µs, paid by every call) keeps the run
/// under half a minute.
const GLUE_CALLS: &[&str] = &[
    "--calls",
    "300000",
    "--calls-for",
    "cffi-api=1000000",
    "--calls-for",
    "cext=100000",
    "--calls-for",
    "pyo3=2000000",
    "--calls-for",
    "go-c=2000000",
];

/// ffibench's own figures, ffibench alone (200,000 calls, median of 5
/// repeats): its truth file.
fn ffibench_alone(args: &[&str]) -> Value {
    let truth_dir = tempfile::tempdir().unwrap();
    let truth_path = truth_dir.path().join("truth.json");
    let truth_arg = truth_path.display().to_string();
    let mut all = vec!["--calls", "200000", "--repeat", "5", "--truth", &truth_arg];
    all.extend(args);
    let argv = sample_command("ffibench", &all);
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("running ffibench");
    assert!(status.success(), "ffibench {args:?}: {status}");
    read_json(&truth_path)
}

/// Below this, ffibench's figure is noise around zero (a C extension's call
/// costs what the interpreter's own builtin call does; there is no glue):
/// seam must then read below it too.
const NO_GLUE_NS: f64 = 10.0;

/// Glue ns per crossing, seam's against ffibench's own figure (ffibench
/// alone, median of 5 repeats, just before), for every mechanism and both Go
/// toolchains, with exact counts from the first call.
///
/// Ignored until seam's figure holds the 25%: each probe hit leaves the glue
/// that follows it slower (cold caches and branch predictors after the trap
/// returns), which seam cannot tell from the glue's own time (it leaves out
/// the samples in the trap and at the three instructions where it returns;
/// on 2026-11-28 cffi API read 102 ns against 73, a C extension 10 against
/// none from one sample, Go -> C probed 92 against 61 and 55 against 36, the
/// rest within 25%);
/// without probes (`--crossings sampled`) seam reads 0.76-1.04 of ffibench
/// for cffi ABI and API, PyO3 and Go -> C. ffibench's own figures also move
/// by up to 2x between runs, even on a quiet machine. README, "What is not
/// yet supported", has the figures. Run it with `-- --ignored` (about 35 s).
#[test]
#[ignore = "seam's figure is not yet within 25% for every mechanism (probe after-effects, noisy truth): see the comment above"]
fn ffibench_glue_ns_per_crossing_is_within_25_percent() {
    let Some(_one) = prepare("ffibench_glue_ns_per_crossing_is_within_25_percent") else {
        return;
    };
    let all = "ctypes-c,ctypes-rust,cffi-abi,cffi-api,cext,pyo3,ctypes-go,go-c";
    // ctypes into Go 1.19 pays needm/dropm (~5 µs a call); the current Go does not.
    let runs = [
        ("debian", all, "ctypes-go=40000"),
        ("current", "ctypes-go,go-c", "ctypes-go=300000"),
    ];
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (go, mechanisms, go_calls) in runs {
        // The truth: ffibench on its own, median of 5 repeats, just before.
        let truth = ffibench_alone(&[
            "--go",
            go,
            "--mechanisms",
            mechanisms,
            "--calls-for",
            "ctypes-go=20000",
        ]);

        let mut args = vec![
            "--go",
            go,
            "--mechanisms",
            mechanisms,
            "--repeat",
            "1",
            "--start-delay",
            "1.5",
        ];
        args.extend(GLUE_CALLS);
        args.extend(["--calls-for", go_calls]);
        let (summary, profiled, _dir) =
            record_with_truth(&["--overhead-budget", "none"], "ffibench", &args);
        let found = boundaries(&summary);
        let calls: BTreeMap<&str, u64> = profiled["mechanisms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap(), m["calls"].as_u64().unwrap()))
            .collect();
        for m in truth["mechanisms"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let k = key(m);
            let want = m["ns_per_crossing"].as_f64().unwrap();
            let b = found
                .get(&k)
                .unwrap_or_else(|| panic!("Go {go}: no boundary {k:?} in {:?}", found.keys()));
            // Counted from the first call: the figure is per crossing.
            let counted = b["crossings"].as_u64().unwrap_or(0);
            assert!(
                counted >= calls[name],
                "Go {go}, {name}: seam counted {counted} of {} calls: {b}",
                calls[name]
            );
            let got = b["glue_ns_per_crossing"].as_f64().unwrap();
            let samples = b["glue_samples"].as_u64().unwrap();
            let ok = if want.abs() < NO_GLUE_NS {
                got < NO_GLUE_NS
            } else {
                (got - want).abs() <= 0.25 * want
            };
            table.push(format!(
                "{name:<12} Go {go:<8} ffibench {want:>8.1} ns   seam {got:>8.1} ns ({samples} samples){}",
                if ok { "" } else { "   <- off" }
            ));
            if !ok {
                wrong.push(name.to_string());
            }
        }
    }
    eprintln!("glue ns per crossing:\n{}", table.join("\n"));
    assert!(
        wrong.is_empty(),
        "glue ns per crossing off for {wrong:?}:\n{}",
        table.join("\n")
    );
}

/// What the probes cost, as `summary` says, is at least the calibrated cost
/// of their hits, and at least what the target's samples found in their
/// traps once there are 8 of them.
fn assert_cost_covers_the_traps(summary: &Value) {
    let overhead = &summary["probe_overhead"];
    let traps = overhead["trap_samples"].as_u64().unwrap();
    let in_traps_ns = traps as f64 * 1e9 / summary["rate_hz"].as_f64().unwrap();
    let cost_ns = overhead["cost_ns"].as_f64().unwrap();
    assert!(traps > 0, "no samples in the probes' traps: {overhead}");
    assert!(
        cost_ns >= overhead["calibrated_cost_ns"].as_f64().unwrap()
            && (traps < 8 || cost_ns >= 0.99 * in_traps_ns),
        "probe cost {cost_ns} ns under the {in_traps_ns} ns its {traps} trap samples show: {overhead}"
    );
}

/// The budget, 3%: on `chain` the probes are armed about a quarter
/// of the time, and the extrapolated counts are within 10% of the truth (2-4%
/// in practice). Under a 1% budget sampling takes all of it, the probes get
/// a tenth, and the counts read 3-17% low (README, *Overhead budget*).
/// Under the default budget, on `gomain` (two goroutines looping over a
/// cgo call whose C calls Rust four times and Go once): every count within
/// 10% of the truth, the median of three recordings. Its callback is 9% of
/// the samples, a few in each spell at the rate the budget leaves (about
/// 190 Hz), and the gaps were cut short where the last sighting in them
/// happened to come early: the callback read 1-23% low (11 runs, 7 of them
/// more than 3% low) with a stated error of 1-5%. Since the sightings
/// (2026-11-29), one run's extrapolated counts spread by about ±5% (six runs:
/// the callback -5.1 to +5.0%, C -> Rust -2.1 to +6.2%, with stated errors
/// of 1-2%), and one CI run of eight read the callback 10.6% low (± 1.4%):
/// the rates of the spells move more than their errors say. The median of
/// three holds the target without hiding a run that is typically off.
#[test]
fn gomain_counts_under_the_budget_are_within_10_percent() {
    let Some(_one) = prepare("gomain_counts_under_the_budget_are_within_10_percent") else {
        return;
    };
    let mut errors: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for _ in 0..3 {
        let (summary, truth, _dir) =
            record_with_truth(&[], "gomain", &["--seconds", "4", "--start-delay", "0.8"]);
        let found = boundaries(&summary);
        let mut extrapolated = 0;
        for (k, got, want, b) in against_truth(&found, &truth) {
            extrapolated += (b["crossings_method"] == "extrapolated") as usize;
            eprintln!(
                "{k:?}: seam {got} ± {} ({}), gomain {want}",
                b["crossings_error"], b["crossings_method"]
            );
            errors.entry(k).or_default().push((got - want) / want);
        }
        assert!(extrapolated >= 2, "{:?}", found.values());
    }
    for (k, mut e) in errors {
        e.sort_by(f64::total_cmp);
        assert!(
            e[1].abs() <= 0.10,
            "{k:?}: the median error of three recordings is {:+.1}% (all: {:?})",
            100.0 * e[1],
            e.iter()
                .map(|x| format!("{:+.1}%", 100.0 * x))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_budget_duty_cycles_the_probes_and_extrapolates() {
    let Some(_one) = prepare("a_budget_duty_cycles_the_probes_and_extrapolates") else {
        return;
    };
    let (summary, truth, _dir) = record_with_truth(
        &["--overhead-budget", "3"],
        "chain",
        &["--threads", "2", "--seconds", "6", "--start-delay", "1"],
    );
    let overhead = &summary["probe_overhead"];
    let share = overhead["share"].as_f64().unwrap();
    assert!(
        share <= 0.045,
        "probe cost {share} over a 3% budget: {overhead}"
    );
    assert!(
        overhead["armed_share"].as_f64().unwrap() < 1.0,
        "{overhead}"
    );
    // Under a duty cycle the traps take several times the calibrated cost
    // of the hits, and the budget holds that too.
    assert_cost_covers_the_traps(&summary);
    let found = boundaries(&summary);
    let mut extrapolated = 0;
    for (k, got, want, b) in against_truth(&found, &truth) {
        if b["crossings_method"] == "extrapolated" {
            extrapolated += 1;
            assert!(b["crossings_error"].as_u64().unwrap() > 0, "{b}");
        }
        assert!(
            (got - want).abs() <= 0.10 * want,
            "{k:?}: seam {got} ({}), the sample {want}",
            b["crossings_method"]
        );
        // Go → C and Go → Rust: the Go runtime's own count makes their
        // total exact, and their rates share it out (they read 2.3% low,
        // 13 errors off, when extrapolated from the rates alone).
        if k.2 == "cgo-call" {
            let error = b["crossings_error"].as_f64().unwrap();
            assert!(
                (got - want).abs() <= (0.01 * want).max(3.0 * error),
                "{k:?}: seam {got} ± {error}, the sample {want}"
            );
        }
    }
    assert!(extrapolated > 0, "nothing was extrapolated: {:?}", found);
}

/// A process attached to in the middle of a tight loop of calls: its site is
/// armed at once and hit from the first moment. The budget was first checked
/// after a warm-up of half a second, and until then nothing stopped the
/// probes: every call trapped (polars attached mid-loop: the probes took 5.0-6.7%
/// of its CPU over 3 s against the 3% budget; now 0.3-0.4%).
///
/// At 285 Hz (the rate that fits the budget on the benchmarks' VM), the
/// traps' samples stayed under the 20 once needed before their figure counted,
/// and the budget went by the calibration all along: the probes took 2.8% of
/// the target's CPU by their samples, and seam said 1.5% (6 runs).
#[test]
fn attaching_mid_loop_keeps_the_budget_from_the_start() {
    let Some(_one) = prepare("attaching_mid_loop_keeps_the_budget_from_the_start") else {
        return;
    };
    // Reference loops and loops of calls into a C extension, 0.1-0.2 s each.
    let sample = Sample::start(
        "ffibench",
        &[
            "--mechanisms",
            "cext",
            "--repeat",
            "100",
            "--calls-for",
            "cext=3000000",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_dir, summary) = record(&[
        "--pid".into(),
        sample.pid.to_string(),
        "--duration".into(),
        "2".into(),
        "--rate".into(),
        "285".into(),
    ]);
    let overhead = &summary["probe_overhead"];
    let share = overhead["share"].as_f64().unwrap();
    assert!(overhead["hits"].as_u64().unwrap() > 0, "{overhead}");
    assert!(
        share <= 0.03,
        "probe cost {share} against a 3% budget: {overhead}"
    );
    assert_cost_covers_the_traps(&summary);
}

/// Threads that poll with short sleeps (or hand work to each other) switch
/// out thousands of times a second, and each switch-out's stack is a
/// sample's cost on top of the on-CPU samples that the rate was fitted to:
/// sampling took 11.6% and 26.9% of this script's CPU against the 3% budget
/// (two runs); now 2.7-3.0%.
/// The switch-outs' stacks now pause while sampling is over the budget; the
/// switch records, which time every absence, go on, and a thread started
/// while they are paused has its absences timed too (they went uncounted).
#[test]
fn switch_outs_keep_sampling_within_the_budget() {
    let Some(_one) = prepare("switch_outs_keep_sampling_within_the_budget") else {
        return;
    };
    let truth_dir = tempfile::tempdir().unwrap();
    let truth = truth_dir.path().join("truth.json");
    let script = "import json, sys, threading, time\n\
                  slept = [0.0] * 8\n\
                  def sleeper(i, seconds):\n    end = time.monotonic() + seconds\n    \
                  while time.monotonic() < end:\n        t = time.monotonic()\n        \
                  time.sleep(0.001)\n        slept[i] += time.monotonic() - t\n\
                  first = [threading.Thread(target=sleeper, args=(i, 3)) for i in range(4)]\n\
                  for t in first: t.start()\n\
                  time.sleep(1)\n\
                  later = [threading.Thread(target=sleeper, args=(i, 2)) for i in range(4, 8)]\n\
                  for t in later: t.start()\n\
                  for t in first + later: t.join()\n\
                  json.dump({'slept_s': sum(slept)}, open(sys.argv[1], 'w'))\n";
    let (_dir, summary) = record(
        &[
            "--format",
            "json",
            "--",
            "python3",
            "-c",
            script,
            &truth.display().to_string(),
        ]
        .map(String::from),
    );
    let slept_ms = read_json(&truth)["slept_s"].as_f64().unwrap() * 1e3;
    let sampling = &summary["sampling_overhead"];
    let share = sampling["share"].as_f64().unwrap();
    // The 3% budget; the first 0.1 s of the target's CPU passes before a pause.
    assert!(
        share <= 0.03 * 1.5,
        "sampling took {:.1}% of the target's CPU: {sampling}",
        100.0 * share
    );
    assert!(
        sampling["switch_stacks_paused"].as_f64().unwrap() > 0.0,
        "{sampling}"
    );
    // Every sleep is off CPU, the later threads' too (the main thread's
    // waits come on top).
    let off_cpu_ms = summary["off_cpu_ms"].as_f64().unwrap();
    assert!(
        off_cpu_ms >= 0.95 * slept_ms,
        "{off_cpu_ms:.0} ms off CPU for {slept_ms:.0} ms of sleeps: {sampling}"
    );
}

/// A program in short phases (ffibench: 120-230 ms of calls each, a new
/// function each) under the default budget: its first burst of calls, and
/// each phase that starts calling a site left armed in a gap of the duty
/// cycle, trapped until the next tick (100 ms), not until the next drain
/// (10 ms), and a busy site's link could wait behind others' closes: the
/// probes took 25-30% of its CPU against a 3% budget. Each of these phases
/// costs up to a drain of trapped calls before the check between ticks
/// closes its site, so the bound here is 10%, not 3% (1.1-8.0% in 40
/// runs). Each count but Go → C's is extrapolated and has an error. That error is
/// wide (a tight loop's rate is as uncertain as the cost of its hits), and
/// not yet honest in every run: within 3.4 errors of the truth at worst in
/// 15 runs here, but one CI run read each count at 9-18% of the truth with
/// errors of 16-45% (README, *Overhead budget*). Not `cext`:
/// its probe is single-stepped (20 µs a hit here) on a 22 ns call, and its
/// count under a budget is not yet honest; nor the mechanisms through
/// libffi's `ffi_call`, whose gaps are split by the counted calls'
/// boundaries (README, *What is not yet supported*).
#[test]
fn short_phases_keep_the_budget() {
    let Some(_one) = prepare("short_phases_keep_the_budget") else {
        return;
    };
    let (summary, truth, _dir) = record_with_truth(
        &[],
        "ffibench",
        &[
            "--mechanisms",
            "cffi-api,pyo3,go-c",
            "--repeat",
            "1",
            "--start-delay",
            "1.5",
            "--calls-for",
            "cffi-api=1000000",
            "--calls-for",
            "pyo3=2000000",
            "--calls-for",
            "go-c=2000000",
        ],
    );
    let overhead = &summary["probe_overhead"];
    let share = overhead["share"].as_f64().unwrap();
    assert!(
        share <= 0.10,
        "probe cost {share} against a 3% budget: {overhead}"
    );
    let found = boundaries(&summary);
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for m in truth["mechanisms"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let want = m["calls"].as_f64().unwrap();
        let b = found
            .get(&key(m))
            .unwrap_or_else(|| panic!("{name}: no boundary {:?} in {:?}", key(m), found.keys()));
        let got = b["crossings"].as_f64().unwrap_or(0.0);
        let error = b["crossings_error"].as_f64().unwrap();
        // Not yet within its error in every run (see the comment above);
        // Go → C is counted by the Go runtime itself (see
        // `go_c_calls_are_counted_from_the_go_runtime_under_a_budget`).
        let ok = if name == "go-c" {
            (got - want).abs() <= (0.005 * want).max(3.0 * error)
        } else {
            b["crossings_method"] == "extrapolated" && error > 0.0
        };
        table.push(format!(
            "{name:<9} truth {want:>9}  seam {got:>9} ± {error:>9} ({}){}",
            b["crossings_method"],
            if ok { "" } else { "   <- off" }
        ));
        if !ok {
            wrong.push(name);
        }
    }
    eprintln!(
        "probes: {:.1}% of the target's CPU\n{}",
        share * 100.0,
        table.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "counts not extrapolated, or with no error, for {wrong:?}:\n{}",
        table.join("\n")
    );
}

/// Go → C calls under the default budget: the probe on the `Cfunc` wrapper
/// is closed by the budget within milliseconds (a hit costs ten of these
/// calls), and the rest of ffibench's go-c calls (two million) were
/// extrapolated from that first moment: 1.6-1.8 million ± 2.3-2.6 million.
/// The Go runtime counts its own cgo calls; seam reads that count and the
/// total is exact, with each Go toolchain. A stripped build has no DWARF to
/// say where the count is, and the summary says so.
///
/// Its only `Cfunc` wrapper is then not probed at all, and its glue is timed
/// with no trap's after-effect: glue ns per crossing within 25% of the
/// figure ffibench measures in the same run. Not against ffibench run alone
/// just before: the cost of a call moves between processes (the current
/// Go's read 35-46 ns from one run to the next, bimodally), and seam follows
/// the process it records (66.1/69.4, 70.3/75.8, 70.9/73.6 ns with Go 1.19;
/// 36.0/38.1, 34.4/38.0, 44.8/46.0 with the current Go). Probed, it read
/// 86 ns where ffibench alone read 65.6 (Go 1.19).
#[test]
fn go_c_calls_are_counted_from_the_go_runtime_under_a_budget() {
    let Some(_one) = prepare("go_c_calls_are_counted_from_the_go_runtime_under_a_budget") else {
        return;
    };
    let go_c = |go: &str, stripped: bool| {
        let mut args = vec![
            "--go",
            go,
            "--mechanisms",
            "go-c",
            "--repeat",
            "1",
            "--start-delay",
            "1",
            "--calls-for",
            "go-c=5000000",
        ];
        if stripped {
            args.push("--stripped");
        }
        let (summary, truth, _dir) = record_with_truth(&[], "ffibench", &args);
        (summary, truth)
    };
    for go in ["debian", "current"] {
        let (summary, truth) = go_c(go, false);
        let overhead = &summary["probe_overhead"];
        assert_eq!(
            overhead["go_counted"],
            serde_json::json!(["libffibgo.so"]),
            "Go {go}: {overhead}"
        );
        let m = &truth["mechanisms"][0];
        let want = m["calls"].as_f64().unwrap();
        let b = &boundaries(&summary)[&key(m)];
        let (got, error) = (
            b["crossings"].as_f64().unwrap(),
            b["crossings_error"].as_f64().unwrap(),
        );
        eprintln!(
            "Go {go}: truth {want}, seam {got} ± {error} ({}), {} probe hits",
            b["crossings_method"], overhead["hits"]
        );
        // The probes were closed early: the count is not theirs.
        assert!(
            overhead["hits"].as_f64().unwrap() < 0.1 * want,
            "Go {go}: {overhead}"
        );
        // Exact up to the last reading of the count, 5 ms or less before
        // the target exits; the calls after it are estimated, with an
        // error that covers them.
        assert!(
            (got - want).abs() <= (0.005 * want).max(error) && error <= 0.05 * want,
            "Go {go}: seam {got} ± {error} ({}), ffibench {want}",
            b["crossings_method"]
        );
        let glue = b["glue_ns_per_crossing"].as_f64().unwrap();
        let glue_want = m["ns_per_crossing"].as_f64().unwrap();
        eprintln!(
            "Go {go}: glue {glue:.1} ns per crossing ({} samples), ffibench {glue_want:.1}",
            b["glue_samples"]
        );
        assert!(
            (glue - glue_want).abs() <= 0.25 * glue_want,
            "Go {go}: glue {glue:.1} ns per crossing, ffibench {glue_want:.1}: {b}"
        );
    }
    let (summary, _) = go_c("debian", true);
    let uncounted = &summary["probe_overhead"]["go_uncounted"];
    assert!(
        uncounted["libffibgo.so"]
            .as_str()
            .is_some_and(|why| why.contains("stripped")),
        "a stripped Go library: {}",
        summary["probe_overhead"]
    );
}

/// The last phase of a program, closed by the budget in its first
/// millisecond, is extrapolated to its end, however near the end of the
/// recording that comes: seam took a close within 100 ms of the end for its
/// own final disarm, so ffibench's last phase (300,000 cffi ABI calls in
/// about 70 ms) read the 2,000-3,000 calls of its first millisecond, ± 0
/// (7 of 8 runs); now 178,000-301,000 ± 30,000-66,000 (9 runs).
///
/// A phase this short is a guess, though (the summary names it): its rate
/// comes from a spell of a few milliseconds in which the traps take most of
/// the time, and about one run in six reads it far over the truth with an
/// error as large (a CI run: 1,775,119 ± 1,773,523; the previous main, 6
/// local runs: 127,155 ± 5,491 to 1,780,497 ± 1,780,270). Such a read passes
/// when its error covers it; a read stopped at the phase's first
/// millisecond never does. Some reads are low with an error that does not
/// cover the truth (README, *Overhead budget*): a CI run at the 280 Hz the
/// default budget chose read 87,204 ± 4,520, under this test's floor, where 6
/// local runs at that rate read 208,000-470,000 and 4 at 999 Hz
/// 118,000-723,000. The rate is not shown to be the cause; the test keeps
/// 999 Hz, at which its figures above were measured.
#[test]
fn the_last_phase_is_extrapolated_to_its_end() {
    let Some(_one) = prepare("the_last_phase_is_extrapolated_to_its_end") else {
        return;
    };
    let (summary, truth, _dir) = record_with_truth(
        &["--rate", "999"],
        "ffibench",
        &[
            "--mechanisms",
            "ctypes-c,cffi-abi",
            "--calls",
            "300000",
            "--repeat",
            "1",
            "--start-delay",
            "1.5",
        ],
    );
    let found = boundaries(&summary);
    let m = truth["mechanisms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "cffi-abi")
        .unwrap();
    let b = &found[&key(m)];
    let want = m["calls"].as_f64().unwrap();
    let got = b["crossings"].as_f64().unwrap();
    eprintln!(
        "cffi-abi: truth {want}, seam {got} ± {}",
        b["crossings_error"]
    );
    let error = b["crossings_error"].as_f64().unwrap();
    assert!(
        b["crossings_method"] == "extrapolated"
            && got >= 0.3 * want
            && (got <= 3.0 * want || got - 2.0 * error <= want),
        "the last phase's {want} calls read {got} ± {error}: {b}"
    );
}

/// Code built for Intel CET (Ubuntu's and Fedora's default) starts each
/// function with `endbr64`, which the kernel single-steps under a uprobe:
/// about 20 µs a hit on the test VM, against 0.7 µs for the `push` after it,
/// which it emulates. ffibench's cffi API-mode module built so is probed at
/// its `push`: every call counted, at the emulated cost (21.1 µs a call under
/// the probe at the entry, 0.8 µs past it).
#[test]
fn a_cet_built_function_is_probed_past_its_endbr64() {
    let Some(_one) = prepare("a_cet_built_function_is_probed_past_its_endbr64") else {
        return;
    };
    let (summary, truth, _dir) = record_with_truth(
        &["--overhead-budget", "none"],
        "ffibench",
        &[
            "--cet",
            "--mechanisms",
            "cffi-api",
            "--calls",
            "100000",
            "--repeat",
            "1",
            "--start-delay",
            "1",
        ],
    );
    let m = &truth["mechanisms"][0];
    let found = boundaries(&summary);
    let b = &found[&key(m)];
    let calls = m["calls"].as_u64().unwrap();
    let counted = b["crossings"].as_u64().unwrap();
    // The warm-up call is counted too.
    assert!(
        b["crossings_method"] == "exact" && (calls..=calls + 1).contains(&counted),
        "seam counted {counted} of {calls}: {b}"
    );
    let overhead = &summary["probe_overhead"];
    let per_hit = overhead["ns_per_hit"].as_f64().unwrap();
    let emulated = overhead["ns_per_hit_emulated"].as_f64().unwrap();
    let stepped = overhead["ns_per_hit_single_step"].as_f64().unwrap();
    eprintln!(
        "a hit: {per_hit:.0} ns (calibrated: emulated {emulated:.0}, single-stepped {stepped:.0})"
    );
    assert!(
        per_hit < (emulated + stepped) / 2.0,
        "hits cost {per_hit:.0} ns: single-stepped at endbr64? {overhead}"
    );
}

/// Asserts that samples caught the script in Rust called through PyO3.
fn sampled_into_rust_through_pyo3(summary: &Value) {
    let found = boundaries(summary);
    let into_rust = found
        .get(&("python".into(), "rust".into(), "pyo3".into()))
        .unwrap_or_else(|| panic!("no python -> rust pyo3 boundary: {:?}", found.keys()));
    assert!(into_rust["samples"].as_u64().unwrap() > 0, "{into_rust}");
}

/// A script over real PyPI packages (samples/pypkgs): pydantic-core,
/// orjson, numpy and cryptography, a phase each, with the default budget.
/// cryptography's Rust module has over a thousand wrappers seam could probe
/// (386 cffi, 634 PyO3): probed from its load, they took 0.7 s to open, and
/// closing their events (80-90 ms each, one at a time) kept seam from ending
/// for three minutes after the script did. Such a module's wrappers are now
/// probed only once samples show them, the events of sites never called are
/// closed after seam has ended, and the script's calls still show.
#[test]
fn a_script_over_real_pypi_packages_records_and_ends_promptly() {
    let Some(_one) = prepare("a_script_over_real_pypi_packages_records_and_ends_promptly") else {
        return;
    };
    needs_packages(&["pydantic", "orjson", "numpy", "cryptography"]);
    let summary = record_pypkgs("python3", &[], 20_000);
    // This cryptography's entry trampolines are generic, one name for many.
    let overhead = &summary["probe_overhead"];
    let failed = overhead["failed"].as_object().unwrap();
    assert!(
        failed
            .iter()
            .any(|(k, v)| k.contains("pyo3::impl_::trampoline::")
                && v.as_str().unwrap().contains("several functions have this name")),
        "cryptography's PyO3 trampolines, seen in the samples, say why they are not probed: {overhead}"
    );
}

/// The same script under Debian's CPython 3.14 (stripped, libpython linked
/// in, read through its debug offsets), with the packages' cp314 wheels
/// (`.ci/run` installs them under `target/ci/debian-python/site-3.14`):
/// numpy's calls (a C extension's methods) and cryptography's (PyO3) are
/// found there too.
#[test]
fn real_pypi_packages_under_debians_python_3_14() {
    let Some(_one) = prepare("real_pypi_packages_under_debians_python_3_14") else {
        return;
    };
    let site = repo().join("target/ci/debian-python/site-3.14");
    let site = site.display().to_string();
    let found = std::process::Command::new("python3.14")
        .env("PYTHONPATH", &site)
        .args(["-c", "import pydantic, orjson, numpy, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip_loudly(&format!(
            "python3.14 with pydantic, orjson, numpy and cryptography under {site} (see .ci/run)"
        ));
        return;
    }
    // Phases of 0.2-0.5 s, long enough to be sampled at the default rate.
    let summary = record_pypkgs("python3.14", &[("PYTHONPATH", &site)], 200_000);
    let found = boundaries(&summary);
    // Sampled, not checked for counts: on phases this short under the default
    // budget the counts are not yet honest (README, "What is not yet supported").
    for (callee, mechanism, what) in [("c", "cext", "numpy"), ("rust", "pyo3", "cryptography")] {
        let b = found
            .get(&("python".into(), callee.into(), mechanism.into()))
            .unwrap_or_else(|| {
                panic!(
                    "no python -> {callee} {mechanism} boundary ({what}): {:?}",
                    found.keys()
                )
            });
        assert!(
            b["samples"].as_u64().unwrap() > 0,
            "{what}'s calls were not sampled: {b}"
        );
    }
}

/// Records `samples/pypkgs/pypkgs.py --calls CALLS` under `python` (with
/// `env`), and checks that seam ended promptly, left cryptography's wrappers
/// to the samples, and caught the script in Rust through PyO3.
fn record_pypkgs(python: &str, env: &[(&str, &str)], calls: u32) -> Value {
    let script = repo().join("samples/pypkgs/pypkgs.py");
    let truth_dir = tempfile::tempdir().unwrap();
    let truth_path = truth_dir.path().join("truth.json");
    let started = std::time::Instant::now();
    let (_dir, summary) = record_with_env(
        &[
            "--".into(),
            python.into(),
            script.display().to_string(),
            "--calls".into(),
            calls.to_string(),
            "--start-delay".into(),
            "0.5".into(),
            "--truth".into(),
            truth_path.display().to_string(),
        ],
        env,
    );
    let took = started.elapsed();
    let truth = read_json(&truth_path);
    assert_eq!(truth["calls_per_phase"], calls, "{truth}");
    let overhead = &summary["probe_overhead"];
    // Not a speed target: before, this took three minutes, nearly all of it
    // after the script had ended.
    assert!(
        took < std::time::Duration::from_secs(60),
        "seam took {took:?} over a script of a few seconds: {overhead}"
    );
    let opened = overhead["events_opened"].as_u64().unwrap();
    assert!(
        opened < 400,
        "{opened} probe events opened: cryptography's wrappers were probed from its load? {overhead}"
    );
    sampled_into_rust_through_pyo3(&summary);
    summary
}

/// Records `samples/pypkgs/SCRIPT --seconds SECONDS` at 999 Hz, once the
/// `packages` it needs are there.
fn record_pypkgs_loop(
    script: &str,
    packages: &[&str],
    seconds: &str,
) -> (tempfile::TempDir, Value) {
    needs_packages(packages);
    let script = repo().join("samples/pypkgs").join(script);
    record(&[
        "--rate".into(),
        "999".into(),
        "--".into(),
        "python3".into(),
        script.display().to_string(),
        "--seconds".into(),
        seconds.into(),
    ])
}

/// Records `python3 samples/pypkgs/SCRIPT SCRIPT_ARGS --truth FILE` with
/// `seam record SEAM_ARGS`, once the `packages` it needs are there: the
/// summary and the truth.
fn record_pypkgs_with_truth(
    script: &str,
    packages: &[&str],
    seam_args: &[&str],
    script_args: &[&str],
) -> (Value, Value) {
    needs_packages(packages);
    let truth_dir = tempfile::tempdir().unwrap();
    let truth_path = truth_dir.path().join("truth.json");
    let script = repo().join("samples/pypkgs").join(script);
    let mut args: Vec<String> = seam_args.iter().map(|a| a.to_string()).collect();
    args.extend(["--".into(), "python3".into(), script.display().to_string()]);
    args.extend(script_args.iter().map(|a| a.to_string()));
    args.extend(["--truth".into(), truth_path.display().to_string()]);
    let (_dir, summary) = record(&args);
    (summary, read_json(&truth_path))
}

/// Records a loop of `samples/pypkgs` (`script`, needing `packages`) with
/// every call counted (`--overhead-budget none`), after half a second of
/// calls for the samples to show the function probed and a second's wait;
/// returns its summary, its truth and the boundary (caller, callee,
/// mechanism).
fn record_pypkgs_counted(
    script: &str,
    packages: &[&str],
    (caller, callee, mechanism): (&str, &str, &str),
) -> (Value, Value, Value) {
    let (summary, truth) = record_pypkgs_with_truth(
        script,
        packages,
        &["--overhead-budget", "none"],
        &["--warmup", "0.5", "--start-delay", "1", "--seconds", "1.5"],
    );
    let key = (
        caller.to_string(),
        callee.to_string(),
        mechanism.to_string(),
    );
    let b = boundaries(&summary)[&key].clone();
    (summary, truth, b)
}

/// tokenizers (samples/pypkgs/tokenizersloop.py): its PyO3's entry
/// trampolines are generic functions of PyO3's own, one copy per method of
/// a class, all named `pyo3::impl_::trampoline::..::<<..PyTokenizer..>>::
/// py_methods::ITEMS::Def>`. seam took the name for PyO3's shared body and
/// counted nothing (`several functions have this name`); all copies are
/// probed together now, and count `Tokenizer.encode`'s calls.
#[test]
fn a_pyo3_class_with_generic_trampolines_is_counted() {
    let Some(_one) = prepare("a_pyo3_class_with_generic_trampolines_is_counted") else {
        return;
    };
    let (_, truth, b) = record_pypkgs_counted(
        "tokenizersloop.py",
        &["tokenizers"],
        ("python", "rust", "pyo3"),
    );
    let want = truth["crossings"][0]["count"].as_u64().unwrap();
    let warmup = truth["warmup_encodes"].as_u64().unwrap();
    let counted: u64 = b["functions"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(f, _)| f.contains("PyTokenizer") && f.contains("py_methods::ITEMS::Def"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    eprintln!("tokenizers: {counted} encodes counted, {want} after the warm-up: {b}");
    // Counted from when a sample showed the trampoline, during the warm-up, on.
    assert!(
        b["crossings_method"] == "exact"
            && (want..=want + warmup + warmup / 100).contains(&counted),
        "{counted} encodes counted of {want} (and {warmup} in the warm-up): {b}"
    );
}

/// regex (samples/pypkgs/regexloop.py): `Pattern.search` is probed from the
/// module's method table, and ends by jumping to `pattern_search_or_match`,
/// which the samples then show called by the interpreter: probed too, it
/// counted every search a second time (1,764,363 crossings for 611,433
/// searches, with `match_dealloc`'s). Counted once, at the method.
#[test]
fn a_method_that_tail_calls_is_counted_once() {
    let Some(_one) = prepare("a_method_that_tail_calls_is_counted_once") else {
        return;
    };
    let (_, truth, b) = record_pypkgs_counted("regexloop.py", &["regex"], ("python", "c", "cext"));
    let want = truth["crossings"][0]["count"].as_u64().unwrap();
    let warmup = truth["warmup_searches"].as_u64().unwrap();
    let got = b["crossings"].as_u64().unwrap();
    eprintln!("regex: {got} crossings counted, {want} searches after the warm-up: {b}");
    assert!(
        b["crossings_method"] == "exact" && got >= want && got <= want + warmup + warmup / 100,
        "{got} crossings counted for {want} searches (and {warmup} in the warm-up): {b}"
    );
    assert!(
        b["functions"].get("pattern_search_or_match").is_none(),
        "the tail call's target counted too: {b}"
    );
}

/// rpds-py (samples/pypkgs/rpdsloop.py): PyO3's macros generate each
/// method's trampoline in the crate (`rpds::<impl pyo3::..PyMethods<..> for
/// ..>::py_methods::ITEMS::trampoline`), the first frame below the
/// interpreter on every call. seam took it for the crate's own Rust, and the
/// calls for a C extension's with no glue: 115 of 122 samples of a script's
/// `python -> rust cext` boundary were rpds-py's `insert`. They are PyO3
/// crossings, their trampolines glue.
#[test]
fn a_pyo3_class_method_is_a_pyo3_crossing_through_its_glue() {
    let Some(_one) = prepare("a_pyo3_class_method_is_a_pyo3_crossing_through_its_glue") else {
        return;
    };
    let (dir, summary) = record_pypkgs_loop("rpdsloop.py", &["rpds"], "2");
    let found = boundaries(&summary);
    let samples = |mechanism: &str| {
        found
            .get(&("python".into(), "rust".into(), mechanism.into()))
            .map_or(0, |b| b["samples"].as_u64().unwrap())
    };
    let (pyo3, cext) = (samples("pyo3"), samples("cext"));
    assert!(
        pyo3 > 200 && cext * 50 <= pyo3,
        "python -> rust: {pyo3} samples through pyo3, {cext} as a C extension: {:?}",
        found.keys()
    );
    let b = &found[&("python".into(), "rust".into(), "pyo3".into())];
    let glue = b["glue_samples"].as_u64().unwrap();
    // 135 of 1,931 (the method's own work, its hashing and allocating, is
    // the rest); none before, as a C extension's call.
    assert!(glue >= 20, "{glue} of {pyo3} samples in PyO3's glue: {b}");
    let folded = std::fs::read_to_string(dir.path().join("stacks.folded")).unwrap();
    let (mut glue_frames, mut other) = (0, Vec::new());
    for frame in folded
        .lines()
        .flat_map(|l| l.split(';'))
        .filter(|f| f.contains("py_methods::ITEMS::trampoline"))
    {
        if frame.starts_with("glue:") {
            glue_frames += 1;
        } else {
            other.push(frame.to_string());
        }
    }
    assert!(
        glue_frames > 0 && other.is_empty(),
        "the method trampolines: {glue_frames} as glue, and {other:?}"
    );
}

/// rpds-py's method trampolines all have one name (the class's
/// `..::py_methods::ITEMS::trampoline`), so a sample cannot say which copy to
/// probe, and its calls went uncounted: the boundary read only the maps
/// released, half the truth. All copies of a class's trampoline are entries
/// from Python, and are now probed together once a sample shows one: with
/// every call counted (`--overhead-budget none`), the count after the
/// warm-up is the truth's.
#[test]
fn a_pyo3_class_methods_calls_are_counted_exactly() {
    let Some(_one) = prepare("a_pyo3_class_methods_calls_are_counted_exactly") else {
        return;
    };
    let (summary, truth, b) =
        record_pypkgs_counted("rpdsloop.py", &["rpds"], ("python", "rust", "pyo3"));
    let inserts = truth["inserts"].as_u64().unwrap();
    let warmup = truth["warmup_inserts"].as_u64().unwrap();
    let (methods, counted) = b["functions"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(f, _)| f.contains("py_methods::ITEMS::trampoline"))
        .fold((0, 0), |(n, c), (_, v)| (n + 1, c + v.as_u64().unwrap()));
    // Counted from when a sample showed a method, during the warm-up, on.
    assert!(
        methods > 0 && (inserts..=inserts + warmup + warmup / 1000).contains(&counted),
        "{counted} method calls counted of {inserts} (and {warmup} in the warm-up): {b}"
    );
    let want = truth["crossings"][0]["count"].as_u64().unwrap();
    let got = b["crossings"].as_u64().unwrap();
    eprintln!("rpds: {got} crossings counted, {want} after the warm-up, {counted} method calls");
    assert!(
        // The new maps (one a round, 0.05% of the truth) are counted only
        // where their constructor's trampoline is a method's.
        b["crossings_method"] == "exact"
            && got + want / 1000 >= want
            && got <= want + 2 * warmup + warmup / 500,
        "{got} crossings counted of {want} (and {} in the warm-up): {b}",
        2 * warmup
    );
    // `insert`'s trampoline starts with `sub $0x58,%rsp`, which the kernel
    // single-steps (about 20 µs a hit here): it is probed at its `call`,
    // which the kernel emulates, as every other site here is.
    let overhead = &summary["probe_overhead"];
    let per_hit = overhead["calibrated_cost_ns"].as_f64().unwrap()
        / overhead["hits"].as_f64().unwrap().max(1.0);
    let emulated = overhead["ns_per_hit_emulated"].as_f64().unwrap();
    assert!(
        per_hit <= 1.01 * emulated,
        "{per_hit:.0} ns a hit by the calibration, an emulated hit {emulated:.0}: \
         some of the method calls single-stepped: {overhead}"
    );
}

/// polars (samples/pypkgs/polarsloop.py): a 177 MB Rust module with 300,000
/// symbols, imported while seam records, and a thread pool sampled on every
/// core. seam demangled every symbol of a module it scanned for probe sites,
/// half a second in which the sampler's reader read nothing: the kernel
/// dropped 3,100-5,600 samples of 6,000-8,000.
#[test]
fn a_large_rust_module_loads_without_losing_samples() {
    let Some(_one) = prepare("a_large_rust_module_loads_without_losing_samples") else {
        return;
    };
    // At 999 Hz, the rate at which the rings overflowed while polars loaded.
    let (_dir, summary) = record_pypkgs_loop("polarsloop.py", &["polars"], "2.5");
    let samples = summary["samples"].as_f64().unwrap();
    let lost = summary["lost_detail"]["kernel"].as_f64().unwrap();
    assert!(samples > 1000.0, "{samples} samples");
    assert!(
        lost <= 0.02 * samples,
        "the kernel dropped {lost} samples beside {samples} kept"
    );
    sampled_into_rust_through_pyo3(&summary);
}

/// tls_client (PyPI): Python calls a Go library built elsewhere (a current
/// Go, by Ubuntu's gcc) through ctypes, while the HTTP server the script
/// started answers each request on a new thread.
///
/// Two faults it found: while the sampling events were inherited by the
/// server too, the kernel took 12 samples of the script at 99 Hz where its
/// CPU time called for 160 (1,101 of 1,675 at 999 Hz); and a call into an
/// export whose wrapper starts with `endbr64` was counted again at
/// `c -> go`.
#[test]
fn a_go_library_from_pypi_is_sampled_and_counted_exactly() {
    let Some(_one) = prepare("a_go_library_from_pypi_is_sampled_and_counted_exactly") else {
        return;
    };
    let rate = 99.0;
    let (summary, truth) = record_pypkgs_with_truth(
        "tlsloop.py",
        &["tls_client"],
        &["--rate", "99", "--overhead-budget", "none"],
        &["--seconds", "2", "--start-delay", "0.5"],
    );
    // Its own CPU time, all its threads (not the server's), in the loop: seam
    // takes more samples, with the script's start and the library's load.
    let cpu_s = truth["cpu_s"].as_f64().unwrap();
    let samples = summary["samples"].as_f64().unwrap();
    assert!(
        samples >= 0.8 * cpu_s * rate,
        "{samples} samples at {rate} Hz of a script that ran {cpu_s:.2} s on CPU"
    );
    assert_exact(&summary, &truth, "tlsloop");
    let found = boundaries(&summary);
    let into_go: Vec<_> = found
        .iter()
        .filter(|(k, b)| k.1 == "go" && k.0 != "python" && b["crossings"].as_u64() > Some(0))
        .collect();
    assert!(into_go.is_empty(), "counted twice: {into_go:?}");
}

#[test]
fn gil_waits_after_ctypes_calls_are_off_cpu_time_at_that_boundary() {
    let Some(_one) = prepare("gil_waits_after_ctypes_calls_are_off_cpu_time_at_that_boundary")
    else {
        return;
    };
    let (summary, truth, dir) = record_with_truth(
        &["--off-cpu", "every"],
        "gilwait",
        &["--seconds", "3", "--start-delay", "0.5"],
    );
    let found = boundaries(&summary);
    let k = ("python".to_string(), "c".to_string(), "ctypes".to_string());
    let b = &found[&k];
    let gil_ms = b["causes"]["gil"].as_f64().unwrap_or(0.0);
    let share = gil_ms * 1e6 / truth["wall_ns"].as_f64().unwrap();
    let want = truth["gil_wait_share"].as_f64().unwrap();
    assert!(
        (share - want).abs() <= 0.10,
        "GIL wait share at python -> c ctypes: seam {share:.3}, the sample {want:.3}; {b}"
    );
    assert!(b["context_switches"]["voluntary"].as_u64().unwrap() > 0);
    // The main thread waits for the others in `threading`'s lock, the
    // interpreter's own C called through its generic call glue: that crossed
    // nothing (it read as a `python -> unknown` cext boundary, 468 ms, and
    // 4,447 ms under `--off-cpu every`). A stray switch caught in glue before
    // its callee may still go there, and one such switch can be a whole GIL
    // wait: 0-0.4 ms in local runs, 51.1 ms in one CI run.
    let unknown_ms: f64 = found
        .iter()
        .filter(|(k, _)| k.1 == "unknown")
        .map(|(_, b)| b["off_cpu_ms"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        unknown_ms < 250.0,
        "{unknown_ms:.1} ms off CPU at boundaries into nothing known: {:?}",
        found
            .keys()
            .filter(|k| k.1 == "unknown")
            .collect::<Vec<_>>()
    );
    let svg = std::fs::read_to_string(dir.path().join("offcpu.svg")).unwrap();
    assert!(
        svg.contains("µs off CPU") && svg.contains("take_gil"),
        "offcpu.svg"
    );
}

#[test]
fn long_cgo_calls_show_their_switches_at_the_cgo_call_boundary() {
    let Some(_one) = prepare("long_cgo_calls_show_their_switches_at_the_cgo_call_boundary") else {
        return;
    };
    let (summary, truth, _dir) =
        record_with_truth(&[], "cgolong", &["--seconds", "3", "--start-delay", "0.5"]);
    let found = boundaries(&summary);
    let k = ("go".to_string(), "c".to_string(), "cgo-call".to_string());
    let b = &found[&k];
    assert_eq!(
        b["crossings"].as_u64(),
        truth["crossings"][0]["count"].as_u64(),
        "{b}"
    );
    let switches = b["context_switches"]["voluntary"].as_u64().unwrap()
        + b["context_switches"]["involuntary"].as_u64().unwrap();
    assert!(
        switches > 0 && b["off_cpu_ms"].as_f64().unwrap() > 0.0,
        "{b}"
    );
    assert!(summary["context_switches"].as_u64().unwrap() >= switches);
}

#[test]
fn crossings_off_records_plain_stacks_and_sampled_adds_no_probes() {
    let Some(_one) = prepare("crossings_off_records_plain_stacks_and_sampled_adds_no_probes")
    else {
        return;
    };
    for mode in ["off", "sampled"] {
        let (summary, _truth, dir) = record_with_truth(
            &["--crossings", mode, "--duration", "4"],
            "chain",
            &["--threads", "1", "--seconds", "1.5"],
        );
        assert!(summary["samples"].as_u64().unwrap() > 100, "{mode}");
        assert!(summary["probe_overhead"].is_null(), "{mode}: probes armed");
        let found = boundaries(&summary);
        let python_go = ("python".to_string(), "go".to_string(), "ctypes".to_string());
        let folded = std::fs::read_to_string(dir.path().join("stacks.folded")).unwrap();
        if mode == "off" {
            assert!(
                found.is_empty(),
                "boundaries with --crossings off: {found:?}"
            );
        } else {
            let b = &found[&python_go];
            assert!(b["samples"].as_u64().unwrap() > 0, "{b}");
            assert!(b["crossings"].is_null(), "{b}");
        }
        // The chain still shows every runtime either way.
        for frame in ["ChainWork", "seam_mix_work"] {
            assert!(
                folded.contains(frame),
                "{mode}: no {frame} in stacks.folded"
            );
        }
    }
}

/// Sampling's figure is what the target pays, wake-ups of seam's reader
/// included: `chain` on one thread, sampled at 4999 Hz with nothing else
/// (no probes, no switches), against unprofiled runs in turns, per CPU
/// second of its worker. Here it slows by 27-31% and seam says 28%; before
/// the calibration counted the wake-ups (which the sampled thread pays) seam
/// said 11%.
#[test]
fn sampling_costs_the_target_what_seam_says_it_does() {
    let Some(_one) = prepare("sampling_costs_the_target_what_seam_says_it_does") else {
        return;
    };
    const ROUNDS: usize = 3;
    let chain = ["--threads", "1", "--seconds", "2"];
    let unprofiled = || chain_rates(&chain_unprofiled(&chain)).1;
    let sampled = || {
        let seam = ["--rate", "4999", "--crossings", "off", "--off-cpu", "off"];
        let (summary, truth, _dir) = record_with_truth(&seam, "chain", &chain);
        let share = summary["sampling_overhead"]["share"].as_f64().unwrap();
        (chain_rates(&truth).1, share)
    };
    let (mut slowdowns, mut said) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (bare, (profiled, share)) = if round % 2 == 0 {
            (unprofiled(), sampled())
        } else {
            let p = sampled();
            (unprofiled(), p)
        };
        slowdowns.push(1.0 - profiled / bare);
        said.push(share);
    }
    let (slowdown, share) = (median(slowdowns.clone()), median(said.clone()));
    assert!(
        (share - slowdown).abs() <= (0.35 * slowdown).max(0.03),
        "sampling at 4999 Hz slowed chain by {:.1}% per CPU second ({slowdowns:.3?}); \
         seam said {:.1}% ({said:.3?})",
        100.0 * slowdown,
        100.0 * share
    );
}

/// `chain ARGS` run alone; its truth.
fn chain_unprofiled(chain: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    let truth_arg = truth.display().to_string();
    let mut args = chain.to_vec();
    args.extend(["--truth", &truth_arg]);
    let argv = sample_command("chain", &args);
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chain unprofiled: {status}");
    read_json(&truth)
}

/// `chain`'s work rates from its truth: ChainWork calls per second of its
/// workers' time, and per CPU second of its worker threads over that time
/// (each call's Go and Rust run on the calling thread; Go's idle threads
/// spinning for work are left out, which moved the process's CPU time by up
/// to 20% between two identical runs side by side).
fn chain_rates(truth: &Value) -> (f64, f64) {
    let calls = truth["crossings"][0]["count"].as_f64().unwrap();
    (
        calls / truth["seconds"].as_f64().unwrap(),
        calls / truth["worker_cpu_s"].as_f64().unwrap(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CLOCK_MONOTONIC now, in seconds: the clock of Python's `time.monotonic()`.
fn monotonic_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: t is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The budget's promise, measured as precisely as this VM allows: `chain`
/// (one worker) profiled under a 3% budget and `chain` unprofiled, side by
/// side on one CPU, starting their work at the same instant, seam on a CPU
/// of its own; the slowdown is read in calls per CPU second of the workers.
///
/// Side by side because the VM's speed drifts: one unprofiled run's calls
/// per CPU second differ from the next's by 3-4% (standard deviation), and
/// from one 3 s stretch to the next of a single 40 s run by 4.6%, however
/// long the stretches; two runs side by side on one CPU differ by 0.45% (8
/// pairs). Run one after the other, a median of 9 rounds was good to about
/// 1.5%, and the test failed one run in five with seam below the budget.
/// One worker, as a pool of them on one CPU trades the GIL differently from
/// run to run (side by side, 4 workers each differed by 0.6%, and their CPU
/// shares by up to 8%). seam's own CPU is the summary's (`seam_cpu_s`): on
/// a CPU of its own, as on any machine with a core to spare.
///
/// Figures of 2026-11-29 (5 rounds): 1.4-2.5% slower, median 2.3%, where
/// seam said 1.6-2.2% (sampling and probes); sampling alone at 270 Hz, 1.7-2.8%
/// where it said 1.7-2.0%.
///
/// The counts under the same budget are held within 10% of the truth by
/// `a_budget_duty_cycles_the_probes_and_extrapolates` (`chain` with a CPU to
/// each worker). Here, with the target on half a CPU, the callbacks into
/// Python read 19-37% low in 4 rounds of 7 (since they are sighted by their
/// native frames, 0-3.8% low in 5), and Go -> C up to 10.9% low (README,
/// *What is not yet supported*).
#[test]
fn a_3_percent_budget_slows_chain_by_at_most_3_percent() {
    let Some(_one) = prepare("a_3_percent_budget_slows_chain_by_at_most_3_percent") else {
        return;
    };
    const ROUNDS: usize = 7;
    /// Time for seam to measure its costs and launch the command.
    const LEAD_S: f64 = 4.0;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seam_cpu = (cpus - 1).to_string();
    let mut slowdowns = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let start_at = format!("{:.6}", monotonic_s() + LEAD_S);
        let chain = |truth: &str| {
            let path = dir.path().join(truth).display().to_string();
            let args = ["--threads", "1", "--seconds", "3", "--start-at", &start_at];
            let mut argv = vec!["taskset".to_string(), "-c".into(), "0".into()];
            argv.extend(sample_command("chain", &args));
            argv.extend(["--truth".into(), path]);
            argv
        };
        let out = dir.path().join("recording");
        let profiled = std::process::Command::new("taskset")
            .args(["-c", &seam_cpu])
            .arg(seam().get_program())
            .args(["record", "--overhead-budget", "3", "--format", "json", "-o"])
            .arg(&out)
            .arg("--")
            .args(chain("profiled.json"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running taskset seam record");
        let bare = std::process::Command::new(&chain("bare.json")[0])
            .args(&chain("bare.json")[1..])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("running taskset chain");
        let seam_run = profiled.wait_with_output().unwrap();
        assert!(
            seam_run.status.success() && bare.success(),
            "round {round}: seam record {}, chain unprofiled {bare}:\n{}",
            seam_run.status,
            String::from_utf8_lossy(&seam_run.stderr)
        );
        let summary = read_json(&out.join("summary.json"));
        let truth = read_json(&dir.path().join("profiled.json"));
        let bare = read_json(&dir.path().join("bare.json"));
        for t in [&truth, &bare] {
            let late = t["started_at"].as_f64().unwrap() - start_at.parse::<f64>().unwrap();
            assert!(
                late.abs() < 0.2,
                "round {round}: a run started {late:.3} s after the agreed instant \
                 (seam took over {LEAD_S} s to launch it?)"
            );
        }
        let per_cpu = |t: &Value| {
            t["crossings"][0]["count"].as_f64().unwrap() / t["worker_cpu_s"].as_f64().unwrap()
        };
        let slowdown = 1.0 - per_cpu(&truth) / per_cpu(&bare);
        slowdowns.push(slowdown);
        eprintln!(
            "round {round}: {:.0} calls per CPU s unprofiled, {:.0} profiled ({:+.2}%); \
             CPU s {}, {}; seam says sampling {}, probes {}",
            per_cpu(&bare),
            per_cpu(&truth),
            -100.0 * slowdown,
            bare["worker_cpu_s"],
            truth["worker_cpu_s"],
            summary["sampling_overhead"]["share"],
            summary["probe_overhead"]["share"],
        );
    }
    let slowdown = median(slowdowns.clone());
    assert!(
        slowdown <= 0.03,
        "chain slowed by {:.2}% per CPU second under a 3% budget (median): {slowdowns:.4?}",
        100.0 * slowdown
    );
}
