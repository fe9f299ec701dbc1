//! End-to-end tests of `seam collector`, `seam agent`, `seam sessions` and
//! `seam export`, with their faults: a collector killed and restarted, an agent
//! killed, a target that exits, bad connections, damaged session files, and
//! several agents at once. The tests that need no perf events drive the
//! `seam collector` binary with the agent's streaming library and synthetic
//! recordings; the others run `seam agent` on the samples as root.

mod common;

use common::*;
use seam_agent::stream::{StreamOptions, StreamReport, Streamer};
use seam_collector::{read_batch_payloads, read_session};
use seam_proto::delta::DeltaBuilder;
use seam_proto::synthetic::SyntheticRecording;
use seam_proto::wire::{decode, Batch, SessionEnd};
use seam_proto::Profile;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `seam collector` process, killed when dropped; its stderr is kept.
struct CollectorProcess {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl CollectorProcess {
    fn start(data: &Path, listen: &str, extra: &[&str]) -> CollectorProcess {
        let mut child = seam()
            .args(["collector", "--listen", listen, "--data"])
            .arg(data)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting seam collector");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let addr = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!(
                    "seam collector ended before listening:\n{}",
                    seen.join("\n")
                ),
            };
            if let Some(rest) = line.strip_prefix("seam: collector listening on ") {
                break rest.split(',').next().unwrap().to_string();
            }
            seen.push(line);
        };
        let log = Arc::new(Mutex::new(seen));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        CollectorProcess { child, addr, log }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits until a log line contains `text`.
    fn wait_for_log(&self, text: &str) -> String {
        self.wait_for_log_with(&[text])
    }

    /// Waits until a log line contains all of `texts`.
    fn wait_for_log_with(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| texts.iter().all(|t| l.contains(t)))
                .cloned();
            if let Some(l) = found {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {texts:?} in:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn streamer(addr: &str, session: &str) -> Streamer {
    let mut o = StreamOptions::new(addr);
    o.session = session.to_string();
    o.give_up_after = Duration::from_secs(30);
    let addr = addr.to_string();
    Streamer::start(o, move || tokio::net::TcpStream::connect(addr.clone())).unwrap()
}

/// A synthetic recording streamed tick by tick.
struct FakeAgent {
    rec: SyntheticRecording,
    builder: DeltaBuilder,
    streamer: Streamer,
}

impl FakeAgent {
    fn new(addr: &str, session: &str, seed: u64) -> FakeAgent {
        FakeAgent {
            rec: SyntheticRecording::new(seed),
            builder: DeltaBuilder::default(),
            streamer: streamer(addr, session),
        }
    }

    fn tick(&mut self, samples: u32) {
        self.rec.advance(samples);
        self.streamer.offer(self.builder.next(self.rec.profile()));
    }

    fn finish(mut self) -> (Profile, StreamReport) {
        self.rec.finish(4.0);
        let end = SessionEnd {
            target_exited: true,
            exit_status: Some(0),
            ..SessionEnd::default()
        };
        let last = self.builder.next(self.rec.profile());
        let report = self.streamer.finish(last, end).unwrap();
        (self.rec.profile().clone(), report)
    }
}

fn session_file(data: &Path, id: &str) -> PathBuf {
    data.join(format!("{id}.seam"))
}

/// Polls a session file until it holds at least `n` batches.
fn wait_for_batches(path: &Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if read_session(path).is_ok_and(|s| s.batches >= n) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never held {n} batches", path.display());
}

/// The sequence numbers of a session file's batches, in file order.
fn stored_seqs(path: &Path) -> Vec<u64> {
    read_batch_payloads(path)
        .unwrap()
        .iter()
        .map(|p| decode::<Batch>(p).unwrap().seq)
        .collect()
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = seam().args(args).output().expect("running seam");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "seam panicked:\n{stderr}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let (ok, _, err) = run(&["collector", "--listen", "0.0.0.0:0", "--data", d]);
    assert!(!ok);
    assert!(err.contains("needs a token: pass --token-file"), "{err}");
    let token = data.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    let t = token.to_str().unwrap();
    let (ok, _, err) = run(&[
        "collector",
        "--listen",
        "127.0.0.1:0",
        "--data",
        d,
        "--token-file",
        t,
    ]);
    assert!(!ok);
    assert!(err.contains("is empty"), "{err}");
}

/// kill -9 of the collector in the middle of a stream: every batch it
/// acknowledged is stored once, the agent resends the rest to the restarted
/// collector, and the session is whole.
#[test]
fn collector_killed_and_restarted_mid_stream() {
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let addr = collector.addr.clone();
    let path = session_file(data.path(), "restart");
    let mut agent = FakeAgent::new(&addr, "restart", 1);
    for _ in 0..10 {
        agent.tick(300);
    }
    wait_for_batches(&path, 5);
    collector.kill();
    let stored_at_kill = read_session(&path).unwrap().batches;
    // The agent goes on while the collector is away: its queue fills, then folds.
    for _ in 0..100 {
        agent.tick(300);
        std::thread::sleep(Duration::from_millis(2));
    }
    let collector = CollectorProcess::start(data.path(), &addr, &[]);
    for _ in 0..10 {
        agent.tick(300);
    }
    let (profile, report) = agent.finish();
    assert!(report.reconnects >= 1, "{report:?}");
    assert!(
        report.deferred > 0,
        "the queue filled while the collector was away: {report:?}"
    );
    assert_eq!(report.undelivered_batches, 0, "{report:?}");
    let stored = read_session(&path).unwrap();
    assert_eq!(stored.profile, profile);
    assert_eq!(stored.batches, report.batches);
    assert!(stored.batches > stored_at_kill);
    assert_eq!(
        stored_seqs(&path),
        (1..=report.batches).collect::<Vec<_>>(),
        "each batch once"
    );
    collector.wait_for_log("session restart from");

    let d = data.path().to_str().unwrap();
    let (ok, table, _) = run(&["sessions", "--data", d]);
    assert!(ok);
    let row = table
        .lines()
        .find(|l| l.starts_with("restart"))
        .expect(&table);
    assert!(row.contains(" ended "), "{row}");
    assert!(row.contains(&format!(" {} ", profile.samples())), "{row}");
}

/// Garbage, truncated and oversized frames, another protocol version, a wrong
/// token: each connection is closed with a logged reason, the collector goes
/// on serving, and stored data is untouched.
#[test]
fn bad_connections_are_logged_and_the_collector_keeps_serving() {
    let data = tempfile::tempdir().unwrap();
    let token = data.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let sessions = data.path().join("sessions");
    let collector = CollectorProcess::start(
        &sessions,
        "127.0.0.1:0",
        &["--token-file", token.to_str().unwrap()],
    );
    let mut o = StreamOptions::new(&collector.addr);
    o.session = "good".into();
    o.token = "s3cret".into();
    let addr = collector.addr.clone();
    let good = Streamer::start(o.clone(), move || {
        tokio::net::TcpStream::connect(addr.clone())
    })
    .unwrap();
    let mut rec = SyntheticRecording::new(2);
    let mut builder = DeltaBuilder::default();
    rec.advance(500);
    good.offer(builder.next(rec.profile()));
    wait_for_batches(&session_file(&sessions, "good"), 1);
    let before = std::fs::read(session_file(&sessions, "good")).unwrap();

    let send = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(&collector.addr).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    };
    send(b"GET / HTTP/1.1\r\n\r\n");
    collector.wait_for_log("exceeds the 16777216-byte limit");
    send(&[0, 0, 0, 9, 1, 2]);
    collector.wait_for_log("closed in the middle of a frame");
    let mut hello = seam_proto::wire::encode_hello(&seam_proto::wire::Hello {
        agent_version: "x".into(),
        token: "s3cret".into(),
        session: "good".into(),
        host: "h".into(),
        started_unix_ms: 0,
    });
    hello[7] = 99;
    send(&seam_proto::wire::frame(&hello).unwrap());
    collector.wait_for_log("protocol version 99 is not supported");
    o.token = "guess".into();
    o.session = "intruder".into();
    let addr = collector.addr.clone();
    let refused = Streamer::start(o, move || tokio::net::TcpStream::connect(addr.clone()));
    assert!(refused.err().unwrap().to_string().contains("wrong token"));
    collector.wait_for_log("wrong token");

    assert_eq!(
        std::fs::read(session_file(&sessions, "good")).unwrap(),
        before
    );
    rec.advance(500);
    good.offer(builder.next(rec.profile()));
    let report = good
        .finish(builder.next(rec.profile()), SessionEnd::default())
        .unwrap();
    assert_eq!(report.undelivered_batches, 0);
    assert_eq!(
        read_session(&session_file(&sessions, "good"))
            .unwrap()
            .profile,
        *rec.profile()
    );
    assert!(!session_file(&sessions, "intruder").exists());
}

/// A crash while writing leaves a partial record: `sessions` and `export`
/// report and skip it, a restarted collector reports it, and the agent's
/// next connection cuts it off and appends after the last intact batch.
#[test]
fn a_damaged_session_tail_is_reported_and_skipped() {
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let addr = collector.addr.clone();
    let mut agent = FakeAgent::new(&addr, "torn", 3);
    agent.tick(400);
    let path = session_file(data.path(), "torn");
    wait_for_batches(&path, 1);
    collector.kill();
    let intact = std::fs::read(&path).unwrap();
    let mut torn = intact.clone();
    torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &torn).unwrap();

    let d = data.path().to_str().unwrap();
    let (ok, table, _) = run(&["sessions", "--data", d]);
    assert!(ok);
    assert!(table.contains("damaged tail: 7 bytes skipped"), "{table}");
    let (ok, folded, err) = run(&["export", "torn", "--data", d, "--format", "folded"]);
    assert!(ok, "{err}");
    assert!(err.contains("damaged tail skipped"), "{err}");
    assert!(err.contains("has not ended"), "{err}");
    assert!(!folded.is_empty());

    let collector = CollectorProcess::start(data.path(), &addr, &[]);
    collector.wait_for_log("session torn: damaged tail skipped");
    agent.tick(400);
    let (profile, report) = agent.finish();
    assert_eq!(report.undelivered_batches, 0);
    let stored = read_session(&path).unwrap();
    assert_eq!((stored.damage, stored.profile), (None, profile));
    collector.wait_for_log("damaged tail cut off");
}

/// Eight agents streaming at once for a couple of seconds: nothing lost. (Without
/// privileges; `eight_agents_for_a_minute_lose_nothing` runs real agents for a minute.)
#[test]
fn eight_agents_at_once() {
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let agents: Vec<_> = (0..8u64)
        .map(|i| {
            let addr = collector.addr.clone();
            std::thread::spawn(move || {
                let mut agent = FakeAgent::new(&addr, &format!("many{i}"), 10 + i);
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(2) {
                    agent.tick(250);
                    std::thread::sleep(Duration::from_millis(25));
                }
                agent.finish()
            })
        })
        .collect();
    for (i, a) in agents.into_iter().enumerate() {
        let (profile, report) = a.join().unwrap();
        assert_eq!(report.undelivered_batches, 0, "agent {i}: {report:?}");
        let stored = read_session(&session_file(data.path(), &format!("many{i}"))).unwrap();
        assert_eq!(stored.profile, profile, "agent {i}");
        assert!(stored.end.is_some());
    }
    assert_eq!(
        collector
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("recording ended"))
            .count(),
        8
    );

    // Every format can be exported from a stored session.
    let d = data.path().to_str().unwrap();
    for format in seam_export::Format::ALL {
        let out = data.path().join(format.file_name());
        let (ok, _, err) = run(&[
            "export",
            "many0",
            "--data",
            d,
            "--format",
            format.as_str(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{format}: {err}");
        // The synthetic recording has no off-CPU time: its offcpu.folded is empty.
        let empty_ok = format == seam_export::Format::OffcpuFolded;
        assert!(
            std::fs::metadata(&out).unwrap().len() > 0 || empty_ok,
            "{format}"
        );
    }
}

/// `seam diff` of two stored sessions, named by id, by the start of an id, or by file.
#[test]
fn diff_of_two_stored_sessions() {
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let mut samples = Vec::new();
    for (id, seed) in [("diff-before", 21), ("diff-after", 22)] {
        let mut agent = FakeAgent::new(&collector.addr, id, seed);
        agent.tick(300);
        agent.tick(300);
        samples.push(agent.finish().0.samples());
    }
    let d = data.path().to_str().unwrap();
    let svg = data.path().join("diff.svg");
    let after_file = session_file(data.path(), "diff-after");
    for after in ["diff-after", "diff-a", after_file.to_str().unwrap()] {
        let (ok, _, err) = run(&[
            "diff",
            "diff-before",
            after,
            "--data",
            d,
            "-o",
            svg.to_str().unwrap(),
        ]);
        assert!(ok, "{after}: {err}");
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains(&format!("seam diff: diff-before → {after}")),
            "{after}"
        );
        assert!(text.contains("<g><title>"), "{after}: frames drawn");
    }
    let (ok, _, err) = run(&["diff", "diff", "diff-before", "--data", d]);
    assert!(!ok);
    assert!(err.contains("2 sessions start with \"diff\""), "{err}");
    let (ok, _, err) = run(&["diff", "nope", "diff-before", "--data", d]);
    assert!(!ok);
    assert!(err.contains("no session \"nope\""), "{err}");
    assert!(samples.iter().all(|&n| n > 0));
}

// Privileged: `seam agent` itself, on the samples.

/// Eight `seam agent` processes stream real samples to one collector for a minute: every
/// batch and every sample that each agent says it sent is stored, once, and each session
/// ends cleanly. It holds no `exclusive()` lock: agents and targets run at nice 19, at a
/// low rate, with no probes, so that the other tests keep their CPU; it checks delivery,
/// not figures.
#[test]
fn eight_agents_for_a_minute_lose_nothing() {
    if !privileged("eight_agents_for_a_minute_lose_nothing") {
        return;
    }
    samples_built();
    let seconds = std::env::var("SEAM_SOAK_SECONDS").unwrap_or_else(|_| "60".into());
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let agents: Vec<_> = (0..8)
        .map(|i| {
            let sample = if i % 2 == 0 {
                sample_command("chain", &["--threads", "1", "--seconds", &seconds])
            } else {
                sample_command("gomain", &["--threads", "1", "--seconds", &seconds])
            };
            let child = std::process::Command::new("nice")
                .args(["-n", "19"])
                .arg(env!("CARGO_BIN_EXE_seam"))
                .args(["agent", "--collector", &collector.addr])
                .args(["--rate", "49", "--crossings", "sampled", "--off-cpu", "off"])
                .arg("--")
                .args(sample)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting seam agent");
            std::thread::spawn(move || child.wait_with_output().unwrap())
        })
        .collect();
    for (i, agent) in agents.into_iter().enumerate() {
        let out = agent.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "agent {i}:\n{err}");
        // "streamed N samples in B batches to ADDR, session ID (R reconnections)"
        let line = err
            .lines()
            .find_map(|l| l.split("seam: streamed ").nth(1))
            .unwrap_or_else(|| panic!("agent {i} did not say what it streamed:\n{err}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let sent_samples: u64 = words[0].parse().unwrap();
        let sent_batches: u64 = words[3].parse().unwrap();
        let id = words[8];
        let path = session_file(data.path(), id);
        let stored = read_session(&path).unwrap();
        assert!(stored.end.is_some(), "agent {i}: session {id} ended");
        assert!(stored.damage.is_none(), "agent {i}: {:?}", stored.damage);
        assert_eq!(
            (stored.profile.samples(), stored.batches),
            (sent_samples, sent_batches),
            "agent {i}: stored (samples, batches) against sent"
        );
        assert!(sent_samples > 0, "agent {i}: {err}");
        let seqs: Vec<u64> = read_batch_payloads(&path)
            .unwrap()
            .iter()
            .map(|p| decode::<Batch>(p).unwrap().seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=sent_batches).collect::<Vec<_>>(),
            "agent {i}: each batch once"
        );
        let want_s: f64 = seconds.parse().unwrap();
        assert!(
            stored.profile.duration_s >= want_s * 0.9,
            "agent {i}: {} s recorded",
            stored.profile.duration_s
        );
    }
    let ended = collector
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("recording ended"))
        .count();
    assert_eq!(ended, 8);
}

fn agent_command(addr: &str, extra: &[&str], seconds: &str) -> std::process::Command {
    let mut cmd = seam();
    cmd.args(["agent", "--collector", addr])
        .args(extra)
        .arg("--");
    cmd.args(sample_command("chain", &["--seconds", seconds]));
    cmd
}

/// The target exits in the middle of the stream: the session is closed with
/// its end, and reads back as `seam record` would have written it.
#[test]
fn agent_streams_a_sample_until_it_exits() {
    if !privileged("agent_streams_a_sample_until_it_exits") {
        return;
    }
    samples_built();
    let _guard = exclusive();
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let out = agent_command(&collector.addr, &["--rate", "499"], "3")
        .output()
        .unwrap();
    let agent_err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{agent_err}");
    // The status is known when the launched command is reaped before its exit record is read.
    assert!(agent_err.contains("the target exited"), "{agent_err}");
    collector.wait_for_log("recording ended");

    let d = data.path().to_str().unwrap();
    let (ok, table, _) = run(&["sessions", "--data", d]);
    assert!(ok);
    let row = table.lines().nth(1).expect(&table);
    assert!(
        row.contains(" ended ") && row.contains("samples/run chain"),
        "{row}"
    );
    let id = row.split_whitespace().next().unwrap();
    let (ok, _, err) = run(&["sessions"]);
    assert!(!ok && err.contains("--data"), "{err}");
    let json_path = data.path().join("summary.json");
    let (ok, _, err) = run(&[
        "export",
        &id[..8],
        "--data",
        d,
        "--format",
        "json",
        "-o",
        json_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(!err.contains("has not ended"), "{err}");
    let summary = read_json(&json_path);
    let samples = summary["samples"].as_u64().unwrap();
    assert!(samples > 100, "{summary}");
    assert!(
        summary["boundaries"]
            .as_array()
            .is_some_and(|b| !b.is_empty()),
        "boundaries are carried: {summary}"
    );
    assert!(summary["duration_s"].as_f64().unwrap() >= 2.5, "{summary}");
    let streamed = format!("streamed {samples} samples");
    assert!(
        agent_err.contains(&streamed),
        "the agent and the collector agree: {agent_err}"
    );
    for format in ["svg", "folded"] {
        let (ok, text, err) = run(&["export", id, "--data", d, "--format", format]);
        assert!(ok && !text.is_empty(), "{format}: {err}");
    }
}

/// kill -9 of the agent mid-stream: what it sent is stored and readable.
#[test]
fn agent_killed_mid_stream() {
    if !privileged("agent_killed_mid_stream") {
        return;
    }
    samples_built();
    let _guard = exclusive();
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let mut agent = agent_command(&collector.addr, &["--rate", "499"], "30")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(agent.stderr.take().unwrap());
    // The line naming the session; a warning may come first (at 499 Hz,
    // sampling alone is over the budget where a sample costs over 60 µs).
    let mut first = String::new();
    while !first.contains("as session ") {
        first.clear();
        assert!(stderr.read_line(&mut first).unwrap() > 0, "the agent ended");
    }
    // Keep reading, so that the agent's progress lines never meet a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let id = first
        .split("as session ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let path = session_file(data.path(), &id);
    wait_for_batches(&path, 4);
    // While it streams, the running collector lists it.
    let (ok, live, err) = run(&["sessions", "--collector", &collector.addr]);
    assert!(ok, "{err}");
    let live_row = live.lines().nth(1).expect(&live);
    assert!(
        live_row.starts_with(&id) && live_row.contains(" streaming ") && live_row.contains("chain"),
        "{live}"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    // Closed by the agent (FIN), or reset (RST, when it died with acknowledgements unread).
    collector.wait_for_log_with(&[&format!("session {id}"), "closed"]);
    let (ok, live, err) = run(&["sessions", "--collector", &collector.addr]);
    assert!(
        ok && live.contains(&id) && live.contains(" away "),
        "{live}{err}"
    );
    let stored = read_session(&path).unwrap();
    assert!(stored.end.is_none());
    assert!(stored.profile.samples() > 0);
    let d = data.path().to_str().unwrap();
    let (ok, table, _) = run(&["sessions", "--data", d]);
    assert!(ok && table.contains(" open "), "{table}");
    let (ok, folded, err) = run(&["export", &id, "--data", d, "--format", "folded"]);
    assert!(ok && folded.lines().count() > 1, "{err}");
    assert!(err.contains("has not ended"), "{err}");
}

/// The collector dies and does not come back: the agent records to the end,
/// then says how much was never acknowledged, and fails.
#[test]
fn loss_beyond_the_agent_buffer_is_counted_and_shown() {
    if !privileged("loss_beyond_the_agent_buffer_is_counted_and_shown") {
        return;
    }
    samples_built();
    let _guard = exclusive();
    let data = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(data.path(), "127.0.0.1:0", &[]);
    let addr = collector.addr.clone();
    let mut agent = agent_command(&addr, &["--rate", "499", "--give-up-after", "0.5"], "3")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = agent.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text).unwrap();
        text
    });
    // Once the collector has stored a few batches (the agent measures its
    // costs before it starts), it goes away.
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = loop {
        let found = std::fs::read_dir(data.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "seam"));
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "no session file");
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_for_batches(&file, 2);
    collector.kill();
    let status = agent.wait().unwrap();
    let err = log.join().unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("did not acknowledge the last"), "{err}");
    assert!(err.contains("samples): they are lost"), "{err}");
}
