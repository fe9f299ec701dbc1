//! `seam record` fails with errors a user can act on, and never panics.

mod common;

use common::*;

fn run_seam(args: &[&str]) -> (i32, String) {
    let out = seam().args(args).output().expect("running seam");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!text.contains("panicked"), "seam panicked:\n{text}");
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn no_such_pid() {
    let dir = tempfile::tempdir().unwrap();
    // Pids above pid_max never exist.
    let (code, text) = run_seam(&[
        "record",
        "--pid",
        "2147483646",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no process with pid 2147483646"), "{text}");
}

/// A pid that cannot be recorded is refused at once, before seam measures
/// anything, saying why: a kernel thread has no user space to sample (seam
/// sat recording nothing until stopped), and a process that has exited is
/// gone (seam measured for a second, said it was recording, then failed).
#[test]
fn a_pid_with_nothing_to_record_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let started = std::time::Instant::now();
    // Pid 2 is the kernel's kthreadd, but in a pid namespace of its own
    // (a container) it may be missing or a process like any other.
    if std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim_end() == "kthreadd") {
        // A duration, so that a seam that records it anyway ends.
        let (code, text) = run_seam(&["record", "--pid", "2", "--duration", "1", "-o", out]);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("pid 2 (kthreadd) is a kernel thread"),
            "{text}"
        );
    } else {
        eprintln!(
            "pid 2 is not kthreadd here (a pid namespace?): the kernel thread case is not tried"
        );
    }
    let mut exited = std::process::Command::new("true").spawn().unwrap();
    let pid = exited.id();
    // Not waited for: a zombie until its parent (this test) reaps it.
    let zombie = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    while !zombie() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (code, text) = run_seam(&[
        "record",
        "--pid",
        &pid.to_string(),
        "--duration",
        "1",
        "-o",
        out,
    ]);
    exited.wait().unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("pid {pid} (true) has exited")),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5) && !text.contains("recording"),
        "{text}"
    );
}

#[test]
fn unknown_format_lists_the_formats() {
    let (code, text) = run_seam(&["record", "--format", "svg,png", "--", "true"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(
            "unknown format \"png\"; the formats are svg, folded, json, pprof, speedscope"
        ),
        "{text}"
    );
}

#[test]
fn nothing_to_record() {
    let (code, text) = run_seam(&["record"]);
    assert_ne!(code, 0);
    assert!(text.contains("--pid PID, or -- COMMAND"), "{text}");
}

#[test]
fn command_not_found() {
    if !privileged("command_not_found") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run_seam(&[
        "record",
        "-o",
        dir.path().to_str().unwrap(),
        "--",
        "/nonexistent/program",
    ]);
    assert!(
        text.contains("cannot run \"/nonexistent/program\""),
        "{text}"
    );
    assert!(text.contains("exited with status 127"), "{text}");
    assert_eq!(
        code, 0,
        "seam itself worked and wrote its (empty) outputs: {text}"
    );
}

#[test]
fn permission_denied_says_what_to_do() {
    if !privileged("permission_denied_says_what_to_do") {
        return;
    }
    // Run seam as an unprivileged user against a root process (this test process).
    // kernel.perf_event_paranoid >= 2 refuses it, or ptrace rules do.
    let paranoid: i32 = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2);
    if paranoid < 1 {
        eprintln!("SKIPPED permission_denied_says_what_to_do: perf_event_paranoid is {paranoid}, which lets anyone profile");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let pid = std::process::id().to_string();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_seam"))
        .args([
            "record",
            "--pid",
            &pid,
            "--duration",
            "1",
            "-o",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .expect("running setpriv");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("permission denied"), "{text}");
    assert!(
        text.contains("perf_event_paranoid"),
        "the message should say what to set: {text}"
    );
}

#[test]
fn unsupported_python_goes_on_with_native_frames() {
    if !privileged("unsupported_python_goes_on_with_native_frames") {
        return;
    }
    samples_built();
    let _one_at_a_time = exclusive();
    if !std::fs::read_dir("/root/.pyenv/versions").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("3.7"))
    }) {
        eprintln!(
            "SKIPPED unsupported_python_goes_on_with_native_frames: no CPython 3.7 under pyenv"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = seam();
    cmd.args(["record", "-o", dir.path().to_str().unwrap(), "--"])
        .args(sample_command(
            "chain",
            &["--python", "3.7", "--seconds", "3"],
        ));
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("CPython 3.7 is not supported"),
        "the warning should name the version: {text}"
    );
    let summary = read_json(&dir.path().join("summary.json"));
    assert!(
        summary["runtimes"]["rust"]["self"].as_u64().unwrap() > 0,
        "native frames should still be there"
    );
}
