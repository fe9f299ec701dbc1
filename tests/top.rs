//! `seam top` in a real terminal: a detached tmux session runs it on the
//! `chain` sample, or on a session that `seam agent` streams to `seam
//! collector`; the test reads the screen with `tmux capture-pane`, presses
//! keys with `tmux send-keys`, and checks that seam exits cleanly on `q` (and
//! on SIGTERM) and gives the terminal back (the pane's shell prints seam's
//! exit status and the terminal's modes after it).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
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

impl Tmux {
    /// A detached session `top` of 120x40 running `command`, whose pane stays
    /// after it ends.
    fn start(command: &str) -> Tmux {
        // A server of its own each time: a killed one may still be going away.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Tmux {
            socket: format!("seam-test-{}-{n}", std::process::id()),
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
            command,
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
        tmux
    }
}

impl Tmux {
    /// The pid of the seam the pane's shell runs.
    fn seam_pid(&self) -> String {
        let out = self.run(&["display-message", "-p", "-t", "top", "#{pane_pid}"]);
        child_of(String::from_utf8_lossy(&out.stdout).trim())
    }
}

/// Whether `pid` is alive: a zombie has ended.
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
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
    let tmux = Tmux::start(&command);

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

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `seam collector` on a loopback port, and the address it listens on.
fn start_collector(data: &std::path::Path) -> (Killed, String) {
    let mut child = seam()
        .args(["collector", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting seam collector");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let child = Killed(child);
    let addr = loop {
        let line = lines
            .next()
            .expect("seam collector ended before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("seam: collector listening on ") {
            break rest.split(',').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// `seam agent` streaming the chain sample to `addr`, and the session id it announces.
fn start_agent(addr: &str, seconds: &str) -> (Killed, String) {
    let mut child = seam()
        .args(["agent", "--collector", addr, "--"])
        .args(sample_command("chain", &["--seconds", seconds]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting seam agent");
    let stderr = child.stderr.take().unwrap();
    let child = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once(" as session ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        }
    });
    let session = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("seam agent announces its session");
    (child, session)
}

/// The pid of the only child of `parent`.
fn child_of(parent: &str) -> String {
    let out = Command::new("pgrep").args(["-P", parent]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !text.is_empty() && !text.contains('\n'),
        "children of {parent}: {text:?}"
    );
    text
}

/// The pane's shell says how seam ended and in what mode it left the terminal.
fn after_seam(seam_command: &str) -> String {
    format!(
        "{seam_command}; echo seam-top-exit=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon\\|-\\?echo'; echo modes-done"
    )
}

/// The terminal is usable again: canonical mode and echo, not raw.
fn assert_terminal_restored(screen: &str) {
    let modes: Vec<&str> = screen
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with("icanon") || l.ends_with("echo"))
        .collect();
    assert_eq!(
        modes,
        ["icanon", "echo"],
        "the terminal's modes; the screen:\n{screen}"
    );
}

#[test]
fn top_follows_a_collector_session_and_restores_the_terminal_on_sigterm_and_sighup() {
    let test = "top_follows_a_collector_session_and_restores_the_terminal_on_sigterm_and_sighup";
    if !privileged(test) || !tmux_installed() {
        return;
    }
    samples_built();
    let _one_at_a_time = exclusive();
    let data = tempfile::tempdir().unwrap();
    let (_collector, addr) = start_collector(data.path());
    let (mut agent, session) = start_agent(&addr, "60");
    let out = tempfile::tempdir().unwrap();
    let seam_bin = env!("CARGO_BIN_EXE_seam");

    // No --session: the live sessions to pick from, then the dashboard.
    let mut tmux = Tmux::start(&after_seam(&format!(
        "{seam_bin} top --collector {addr} -o {}",
        out.path().display()
    )));
    tmux.wait_for("the session in the list", Duration::from_secs(15), |s| {
        s.contains("live sessions on") && s.contains(&session[..16])
    });
    tmux.keys("Enter");
    let screen = tmux.wait_for(
        "python -> go with crossings/s > 0, from the collector",
        Duration::from_secs(20),
        |s| python_to_go_rate(s).is_some(),
    );
    assert!(screen.contains("samples/run chain"), "{screen}");
    tmux.keys("4");
    tmux.wait_for("the threads view", Duration::from_secs(5), |s| {
        s.contains(" threads (") && !s.contains("runtimes (self time)")
    });
    tmux.keys("q");
    let screen = tmux.wait_for("seam's exit", Duration::from_secs(15), |s| {
        s.contains("modes-done")
    });
    assert!(screen.contains("seam-top-exit=0"), "{screen}");
    assert!(screen.contains("samples over"), "{screen}");
    assert_terminal_restored(&screen);

    // --session, ended by SIGTERM or SIGHUP: the terminal is given back all the same.
    for (signal, status) in [("TERM", 143), ("HUP", 129)] {
        drop(tmux);
        tmux = Tmux::start(&after_seam(&format!(
            "{seam_bin} top --collector {addr} --session {} -o {}",
            &session[..8],
            out.path().display()
        )));
        tmux.wait_for(
            "python -> go with --session",
            Duration::from_secs(20),
            |s| python_to_go_rate(s).is_some(),
        );
        let top = tmux.seam_pid();
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &top])
            .status()
            .unwrap();
        assert!(killed.success());
        let screen = tmux.wait_for(
            &format!("seam's exit on SIG{signal}"),
            Duration::from_secs(15),
            |s| s.contains("modes-done"),
        );
        assert!(
            screen.contains(&format!("seam-top-exit={status}")),
            "{screen}"
        );
        assert!(!screen.contains("runtimes (self time)"), "{screen}");
        assert_terminal_restored(&screen);
    }

    // The terminal itself goes away (its window closed): seam ends, in the
    // session picker and in the dashboard, rather than spinning on a dead tty.
    for picker in [true, false] {
        drop(tmux);
        let session_arg = if picker {
            String::new()
        } else {
            format!("--session {}", &session[..8])
        };
        tmux = Tmux::start(&after_seam(&format!(
            "{seam_bin} top --collector {addr} {session_arg} -o {}",
            out.path().display()
        )));
        if picker {
            tmux.wait_for("the session in the list", Duration::from_secs(15), |s| {
                s.contains("live sessions on")
            });
        } else {
            tmux.wait_for("python -> go", Duration::from_secs(20), |s| {
                python_to_go_rate(s).is_some()
            });
        }
        let top = tmux.seam_pid();
        let killed = tmux.run(&["kill-server"]);
        assert!(killed.status.success());
        let start = Instant::now();
        while running(&top) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "seam top (pid {top}, picker: {picker}) still runs 10 s after its terminal closed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "seam top ended {:.1} s after its terminal closed (picker: {picker})",
            start.elapsed().as_secs_f64()
        );
    }

    // The agent goes on unharmed by its viewers, and ends cleanly.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGINT) };
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "seam agent: {status}");
}
