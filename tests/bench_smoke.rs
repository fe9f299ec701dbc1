//! `bench/run.sh --smoke`: the comparison benchmark run at a tiny size, so that it cannot
//! rot. It checks that the JSON it writes is well-formed and has rows for seam and for
//! every peer that is installed; it asserts nothing about the figures (they are
//! meaningless at this size, and timed assertions have no place in tests).

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

/// True when `tool` is on the PATH that bench/run.sh uses (it adds ~/.cargo/bin).
fn installed(tool: &str) -> bool {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "PATH=\"$HOME/.cargo/bin:$PATH\" command -v {tool} >/dev/null"
        ))
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn bench_smoke_writes_a_row_for_every_installed_tool() {
    let test = "bench_smoke_writes_a_row_for_every_installed_tool";
    if !privileged(test) {
        return;
    }
    samples_built();
    let _one_at_a_time = exclusive();
    let out = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(repo().join("bench/run.sh"))
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .env("SEAM_BIN", env!("CARGO_BIN_EXE_seam"))
        .output()
        .expect("running bench/run.sh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench/run.sh --smoke failed:\n{stderr}"
    );
    eprintln!("{stderr}");

    let results = read_json(&out.path().join("results.json"));
    let measures = results["measures"]
        .as_array()
        .unwrap_or_else(|| panic!("no measures array in {results}"));
    for m in measures {
        for key in ["measure", "tool", "config", "unit"] {
            assert!(m[key].is_string(), "{key} is not a string in {m}");
        }
        for key in ["median", "min", "max"] {
            assert!(
                m[key].is_number() || m[key].is_null(),
                "{key} is neither a number nor null in {m}"
            );
        }
        if let (Some(lo), Some(med), Some(hi)) =
            (m["min"].as_f64(), m["median"].as_f64(), m["max"].as_f64())
        {
            assert!(lo <= med && med <= hi, "min <= median <= max fails in {m}");
        }
    }
    let has = |tool: &str, measure: &str| {
        measures
            .iter()
            .any(|m| m["tool"] == tool && m["measure"] == measure && m["median"].is_number())
    };
    assert!(has("none", "work_rate"), "no unprofiled run in {results}");
    for measure in [
        "slowdown",
        "profiler_cpu",
        "peak_rss",
        "complete_stacks",
        "time_to_flamegraph",
    ] {
        assert!(has("seam", measure), "no seam row for {measure}");
    }
    let mut skipped = Vec::new();
    for (tool, bin) in [("perf", "perf"), ("py-spy", "py-spy"), ("samply", "samply")] {
        if installed(bin) {
            for measure in ["slowdown", "profiler_cpu", "peak_rss", "complete_stacks"] {
                assert!(
                    has(tool, measure),
                    "{tool} is installed but has no {measure} row"
                );
            }
        } else {
            skipped.push(tool);
        }
    }
    if !skipped.is_empty() {
        eprintln!("\n!!!!!! {test}: not installed, so not covered: {skipped:?} (bench/run.sh without --smoke installs them) !!!!!!\n");
    }
    let md = std::fs::read_to_string(out.path().join("results.md")).expect("results.md");
    assert!(
        md.contains("## Targets"),
        "results.md has no targets section"
    );
}

/// The committed results are what the JSON format says (they come from a full run).
#[test]
fn committed_results_are_well_formed() {
    let path = repo().join("bench/results.json");
    if !path.exists() {
        return;
    }
    let results: Value = read_json(&path);
    let measures = results["measures"].as_array().expect("measures array");
    assert!(!measures.is_empty());
    for m in measures {
        for key in ["measure", "tool", "config", "median", "min", "max", "unit"] {
            assert!(m.get(key).is_some(), "{key} missing in {m}");
        }
    }
}
