//! `seam top` in a real terminal: a detached tmux session runs it on the
//! `chain` sample; the test reads the screen with `tmux capture-pane`, presses
//! keys with `tmux send-keys`, and checks that seam exits cleanly on `q` and
//! gives the terminal back (the pane's shell prints seam's exit status after it).

mod common;

use common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server of our own (its own socket), killed whatever happens.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let out = self.run(&["send-keys", "-t", "top", keys]);
        assert!(out.status.success(), "tmux send-keys {keys} failed");
    }

    /// Polls the screen until `ok` holds, or fails after `timeout` showing the screen.
    fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not within {timeout:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn tmux_installed() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok();
    if !found {
        if std::env::var("SEAM_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!(
                "tmux is not installed and SEAM_REQUIRE_PRIVILEGED=1 is set (apt-get install tmux)"
            );
        }
        eprintln!("\n!!!!!! SKIPPED seam top in tmux: tmux is not installed (apt-get install tmux) !!!!!!\n");
    }
    found
}

/// The crossings per second of the first `python -> go` row, read from the
/// wide boundaries table (boundary, mechanism, through, glue CPU, crossings/s, ...).
fn python_to_go_rate(screen: &str) -> Option<f64> {
    screen.lines().find_map(|line| {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() < 7 || tokens[..3] != ["python", "->", "go"] {
            return None;
        }
        tokens[6]
            .trim_start_matches('~')
            .replace(',', "")
            .parse::<f64>()
            .ok()
            .filter(|&r| r > 0.0)
    })
}

#[test]
fn top_shows_live_crossings_switches_views_and_quits_cleanly() {
    if !privileged("top_shows_live_crossings_switches_views_and_quits_cleanly") || !tmux_installed()
    {
        return;
    }
    samples_built();
    let _one_at_a_time = exclusive();
    let out = tempfile::tempdir().unwrap();
    let command = format!(
        "{} top -o {} -- {}; echo seam-top-exit=$?",
        env!("CARGO_BIN_EXE_seam"),
        out.path().display(),
        sample_command("chain", &["--seconds", "20"]).join(" ")
    );
    let tmux = Tmux {
        socket: format!("seam-test-{}", std::process::id()),
    };
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        &command,
        ";",
        "set-option",
        "-t",
        "top",
        "remain-on-exit",
        "on",
    ]);
    assert!(
        started.status.success(),
        "tmux new-session failed: {}",
        String::from_utf8_lossy(&started.stderr)
    );

    let screen = tmux.wait_for(
        "python -> go with crossings/s > 0",
        Duration::from_secs(15),
        |s| python_to_go_rate(s).is_some(),
    );
    assert!(screen.contains("seam top"), "{screen}");
    assert!(screen.contains("runtimes (self time)"), "{screen}");

    tmux.keys("2");
    tmux.wait_for("the boundaries view", Duration::from_secs(5), |s| {
        !s.contains("runtimes (self time)") && s.contains("boundaries (")
    });

    tmux.keys("q");
    // The pane's shell goes on after seam and says how it ended (tmux's own
    // #{pane_dead_status} is not always filled in when the pane closes).
    let screen = tmux.wait_for("seam's exit", Duration::from_secs(15), |s| {
        s.contains("seam-top-exit=")
    });
    assert!(
        screen.contains("seam-top-exit=0"),
        "seam top's exit status; the screen:\n{screen}"
    );
    // The alternate screen is gone: what is left is seam's closing lines.
    assert!(screen.contains("samples over"), "{screen}");
    assert!(
        screen.contains("seam: the command's output is in"),
        "{screen}"
    );
    assert!(!screen.contains("runtimes (self time)"), "{screen}");
    let log = std::fs::read_to_string(out.path().join("target.log")).unwrap();
    assert!(
        log.contains("seam-sample ready pid="),
        "the sample's output goes to target.log, not the dashboard: {log:?}"
    );
}
