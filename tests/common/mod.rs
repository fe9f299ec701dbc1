//! Helpers for the end-to-end tests of the `seam` binary.

#![allow(dead_code)] // each test file uses a different part of these helpers

pub mod readers;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn seam() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seam"))
}

/// Profiling tests run one at a time: on two cores, two recordings at once
/// would measure each other.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when this machine lets us use perf events and read other processes.
/// Skips loudly otherwise, and fails when SEAM_REQUIRE_PRIVILEGED=1 (CI).
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("SEAM_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: needs root (perf events, reading target memory) and SEAM_REQUIRE_PRIVILEGED=1 is set");
    }
    eprintln!("\n!!!!!! SKIPPED {test}: needs root (perf_event_open, process_vm_readv); run as root to test it !!!!!!\n");
    false
}

/// Skips a part of a test for lack of `why` with a loud message, or fails
/// when SEAM_REQUIRE_PRIVILEGED=1 (CI, which installs what the tests need).
pub fn skip_loudly(why: &str) {
    if std::env::var("SEAM_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why} (SEAM_REQUIRE_PRIVILEGED=1, so this fails instead of skipping)");
    }
    eprintln!("\n!!!!!! SKIPPED: {why} !!!!!!\n");
}

/// Fails with a clear message when the samples are not built.
pub fn samples_built() {
    let build = repo().join("samples/build");
    assert!(
        build.is_dir(),
        "the samples are not built: run `bash samples/build.sh` first"
    );
}

/// `samples/run NAME ARGS...` as a command.
pub fn sample_command(name: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        repo().join("samples/run").display().to_string(),
        name.to_string(),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// A running sample that is killed when dropped.
pub struct Sample {
    pub child: Child,
    pub pid: u32,
}

impl Sample {
    /// Starts a sample and waits for its ready line.
    pub fn start(name: &str, args: &[&str]) -> Sample {
        let argv = sample_command(name, args);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting sample {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let pid = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("sample {name} ended before its ready line"))
                .expect("reading sample output");
            if let Some(pid) = line.strip_prefix("seam-sample ready pid=") {
                break pid.trim().parse().expect("pid in ready line");
            }
        };
        // Keep draining stdout so the sample never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        assert_eq!(
            pid,
            child.id(),
            "samples/run must exec the sample so the pid stays the same"
        );
        Sample { child, pid }
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("waiting for the sample");
        std::mem::forget(self);
        status
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `seam record ARGS` into a fresh folder and returns (folder, summary.json).
pub fn record(args: &[String]) -> (tempfile::TempDir, Value) {
    record_with_env(args, &[])
}

/// [`record`] with these environment variables set for seam.
pub fn record_with_env(args: &[String], env: &[(&str, &str)]) -> (tempfile::TempDir, Value) {
    let out = tempfile::tempdir().unwrap();
    let output = seam()
        .envs(env.iter().copied())
        .arg("record")
        .arg("-o")
        .arg(out.path())
        .args(args)
        .output()
        .expect("running seam");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "seam record {args:?} failed:\n{stderr}\n{stdout}"
    );
    let summary = read_json(&out.path().join("summary.json"));
    (out, summary)
}

/// Records the `chain` sample (2 threads, 2 s, 499 Hz) into a fresh folder, writing the
/// formats in `formats` (a `--format` list), one recording at a time.
pub fn record_chain(formats: &str) -> tempfile::TempDir {
    let _one_at_a_time = exclusive();
    let mut args: Vec<String> = ["--rate", "499", "--format", formats, "--"]
        .map(String::from)
        .into();
    args.extend(sample_command(
        "chain",
        &["--threads", "2", "--seconds", "2"],
    ));
    record(&args).0
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The share of samples with complete stacks.
pub fn complete_share(summary: &Value) -> f64 {
    let samples = summary["samples"].as_f64().unwrap();
    assert!(samples > 0.0, "no samples in {summary}");
    summary["complete_stacks"].as_f64().unwrap() / samples
}

/// Frames of a summary stack as (runtime, name, file, line), root first.
pub fn frames(stack: &Value) -> Vec<(String, String, Option<String>, Option<u64>)> {
    stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["runtime"].as_str().unwrap().to_string(),
                f["name"].as_str().unwrap().to_string(),
                f["file"].as_str().map(str::to_string),
                f["line"].as_u64(),
            )
        })
        .collect()
}

/// Checks that `wanted` predicates match frames of `stack` in order (root first),
/// each at a later position than the one before. Returns the index of the first
/// predicate that failed, or None.
pub fn first_missing<F: Fn(&(String, String, Option<String>, Option<u64>)) -> bool>(
    stack: &[(String, String, Option<String>, Option<u64>)],
    wanted: &[(&str, F)],
) -> Option<usize> {
    let mut at = 0;
    for (i, (_, pred)) in wanted.iter().enumerate() {
        match stack[at..].iter().position(pred) {
            Some(p) => at += p + 1,
            None => return Some(i),
        }
    }
    None
}

/// Fails, saying what to install, when python3 cannot import `packages`.
pub fn needs_packages(packages: &[&str]) {
    let check = std::process::Command::new("python3")
        .args(["-c", &format!("import {}", packages.join(", "))])
        .status()
        .expect("python3");
    assert!(
        check.success(),
        "this test needs pip install {} (.ci/run installs them)",
        packages.join(" ")
    );
}
