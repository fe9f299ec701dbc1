//! `seam record --format`: each view is written to its file, and the pprof and speedscope
//! files of a real recording are read back by `go tool pprof` and checked against
//! speedscope's schema.

mod common;

use common::readers::*;
use common::*;

const ALL_FILES: [&str; 5] = [
    "flamegraph.svg",
    "stacks.folded",
    "summary.json",
    "profile.pb.gz",
    "profile.speedscope.json",
];

#[test]
fn every_format_of_a_chain_recording_is_written_and_valid() {
    let test = "every_format_of_a_chain_recording_is_written_and_valid";
    if !privileged(test) {
        return;
    }
    samples_built();
    let _one_at_a_time = exclusive();
    let mut args: Vec<String> = ["--format", "pprof,speedscope,svg,folded,json", "--"]
        .map(String::from)
        .into();
    args.extend(sample_command(
        "chain",
        &["--threads", "2", "--seconds", "4"],
    ));
    let (dir, summary) = record(&args);
    for name in ALL_FILES {
        let len = std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
        assert!(len > 0, "{name} missing or empty");
    }
    let samples = summary["samples"].as_u64().unwrap();
    assert!(samples > 0, "no samples in {summary}");

    let folded: u64 = std::fs::read_to_string(dir.path().join("stacks.folded"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(folded, samples);

    if let Some(schema) = speedscope_schema(test) {
        let v = check_speedscope(&schema, &dir.path().join("profile.speedscope.json"));
        assert_eq!(v["profiles"][0]["endValue"].as_u64(), Some(samples));
        let names: Vec<&str> = v["shared"]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        for wanted in ["main.chainRun [go, seam ctypes]", "seam_mix_work [rust"] {
            assert!(
                names.iter().any(|n| n.starts_with(wanted)),
                "no frame {wanted:?} in the speedscope file"
            );
        }
    }

    let pprof = dir.path().join("profile.pb.gz");
    for go in go_toolchains(test) {
        let top = go_pprof(&go, &["-top", "-sample_index=samples"], &pprof);
        assert!(top.contains(&format!("of {samples} total")), "{go}:\n{top}");
        for function in ["main.chainRun", "seam_mix_work", "PyCFuncPtr_call"] {
            assert!(
                top.lines().any(|l| l.ends_with(&format!(" {function}"))),
                "{go}: no {function} in\n{top}"
            );
        }
        let raw = go_pprof(&go, &["-raw"], &pprof);
        let (totals, labels) = pprof_raw_samples(&raw);
        assert_eq!(totals[0], samples as i64, "{go}");
        assert!(
            labels
                .iter()
                .any(|l| l.contains("seams:[python→go ctypes") && l.contains("runtime:[rust]")),
            "{go}: no sample from Python into Rust through ctypes"
        );
    }
}

#[test]
fn only_the_formats_asked_for_are_written() {
    if !privileged("only_the_formats_asked_for_are_written") {
        return;
    }
    samples_built();
    let _one_at_a_time = exclusive();
    let mut args: Vec<String> = ["--format", "speedscope,json,speedscope", "--"]
        .map(String::from)
        .into();
    args.extend(sample_command("gomain", &["--seconds", "1"]));
    let (dir, summary) = record(&args);
    assert!(summary["samples"].as_u64().unwrap() > 0);
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(written, ["profile.speedscope.json", "summary.json"]);
}
