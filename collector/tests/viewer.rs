//! The collector's viewer role: a viewer lists the live sessions, subscribes
//! to one and receives its stored batches, then the live ones in order, then
//! the end; a wrong token, another version or a malformed request is refused
//! with a reason; a viewer that does not read is dropped without ever slowing
//! the agent down.

use seam_collector::{Collector, CollectorError, CollectorOptions, Followed, ViewerClient};
use seam_proto::delta::{DeltaBuilder, Replay};
use seam_proto::synthetic::SyntheticRecording;
use seam_proto::viewer::{encode_viewer_hello, ViewerHello, ViewerMessage, ViewerRequest};
use seam_proto::wire::{
    decode, encode, encode_hello, frame, Batch, CollectorMessage, FrameReader, Hello, SessionEnd,
    PROTOCOL_VERSION,
};
use seam_proto::Profile;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The encoded batches of a synthetic recording, the last one ending it.
fn recording(seed: u64, n: u64) -> (Vec<Vec<u8>>, Profile) {
    let mut rec = SyntheticRecording::new(seed);
    let mut builder = DeltaBuilder::default();
    let batches = (1..=n)
        .map(|seq| {
            rec.advance(100);
            encode(&Batch {
                seq,
                delta: builder.next(rec.profile()),
                end: (seq == n).then(|| SessionEnd {
                    target_exited: true,
                    exit_status: Some(0),
                    ..SessionEnd::default()
                }),
            })
        })
        .collect();
    (batches, rec.profile().clone())
}

/// A blocking connection that reads whole frames.
struct Raw {
    stream: TcpStream,
    frames: FrameReader,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            frames: FrameReader::default(),
        }
    }

    fn send(&mut self, payload: &[u8]) {
        // The collector may have closed already; what it said is read after.
        let _ = self.stream.write_all(&frame(payload).unwrap());
    }

    /// The next frame's payload, None when the collector closed the connection.
    fn read(&mut self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.frames.next_frame().unwrap() {
                return Some(f);
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.frames.push(&buf[..n]),
            }
        }
    }
}

/// An agent that streams batches and waits for their acknowledgement.
struct Agent(Raw);

impl Agent {
    fn start(addr: SocketAddr, session: &str, token: &str) -> Agent {
        let mut raw = Raw::connect(addr);
        raw.send(&encode_hello(&Hello {
            agent_version: "test".into(),
            token: token.into(),
            session: session.into(),
            host: "box".into(),
            started_unix_ms: 1_700_000_000_000,
        }));
        let welcome = decode::<CollectorMessage>(&raw.read().unwrap()).unwrap();
        assert!(
            matches!(welcome, CollectorMessage::Welcome(_)),
            "{welcome:?}"
        );
        Agent(raw)
    }

    fn stream(&mut self, batches: &[Vec<u8>]) {
        let last = decode::<Batch>(batches.last().unwrap()).unwrap().seq;
        for b in batches {
            self.0.send(b);
        }
        loop {
            match decode::<CollectorMessage>(&self.0.read().expect("an ack")).unwrap() {
                CollectorMessage::Ack(a) if a.seq == last => return,
                CollectorMessage::Ack(_) => {}
                other => panic!("expected acknowledgements, got {other:?}"),
            }
        }
    }
}

/// A collector serving on a loopback port from a runtime of its own.
struct Served {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

fn serve(dir: &Path, token: Option<&str>, viewer_queue: usize) -> Served {
    serve_at(dir, token, viewer_queue, "127.0.0.1:0")
}

fn serve_at(dir: &Path, token: Option<&str>, viewer_queue: usize, at: &str) -> Served {
    let mut options = CollectorOptions::new(dir);
    options.token = token.map(str::to_string);
    options.hello_timeout = Duration::from_secs(2);
    options.viewer_queue = viewer_queue;
    let collector = Collector::new(options).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind(at)).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(collector.serve(listener));
    Served {
        addr,
        _runtime: runtime,
    }
}

#[test]
fn a_viewer_gets_the_stored_batches_then_the_live_ones_then_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let c = serve(dir.path(), Some("s3cret"), 64);
    let addr = c.addr.to_string();
    let (batches, profile) = recording(7, 12);
    let mut agent = Agent::start(c.addr, "live1", "s3cret");
    agent.stream(&batches[..4]);

    let e = ViewerClient::connect(&addr, "wrong").unwrap_err();
    assert!(
        matches!(&e, CollectorError::Refused(r) if r.contains("wrong token")),
        "{e}"
    );

    let mut viewer = ViewerClient::connect(&addr, "s3cret").unwrap();
    let list = viewer.list().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].id.as_str(), list[0].batches, list[0].streaming),
        ("live1", 4, true)
    );
    assert_eq!(list[0].host, "box");
    assert!(list[0].samples > 0);
    // The start of an id will do.
    let (mut viewer, session) = viewer.subscribe("live").unwrap();
    assert_eq!((session.id.as_str(), session.batches), ("live1", 4));

    let follower = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        let mut replay = Replay::default();
        let mut notices = Vec::new();
        let end = viewer
            .follow(&AtomicBool::new(false), |f| match f {
                Followed::Batch(b) => {
                    seqs.push(b.seq);
                    replay.apply(&b.delta).unwrap();
                }
                Followed::Notice(n) => notices.push(n),
                Followed::Restart(why) => panic!("{why}"),
            })
            .unwrap();
        (seqs, replay.into_profile(), end, notices)
    });
    for chunk in batches[4..].chunks(3) {
        agent.stream(chunk);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (seqs, replayed, end, _) = follower.join().unwrap();
    assert_eq!(seqs, (1..=12).collect::<Vec<u64>>());
    assert_eq!(replayed, profile);
    let end = end.expect("the session's end");
    assert!(end.target_exited);

    // An ended session leaves the list, and is still served from its file.
    let mut viewer = ViewerClient::connect(&addr, "s3cret").unwrap();
    assert!(viewer.list().unwrap().is_empty());
    let (mut viewer, session) = viewer.subscribe("live1").unwrap();
    assert!(session.ended && !session.streaming);
    let mut n = 0;
    let end = viewer.follow(&AtomicBool::new(false), |_| n += 1).unwrap();
    assert_eq!((n, end.map(|e| e.target_exited)), (12, Some(true)));

    let e = ViewerClient::connect(&addr, "s3cret")
        .unwrap()
        .subscribe("nope")
        .unwrap_err();
    assert!(e.to_string().contains("no live session \"nope\""), "{e}");
}

#[test]
fn bad_viewers_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let c = serve(dir.path(), None, 64);
    let refusal = |raw: &mut Raw| match raw.read().map(|f| decode::<ViewerMessage>(&f)) {
        Some(Ok(ViewerMessage::Refused(r))) => r.reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut hello = encode_viewer_hello(&ViewerHello {
        viewer_version: "test".into(),
        token: String::new(),
    });
    let mut raw = Raw::connect(c.addr);
    hello[4..8].copy_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
    raw.send(&hello);
    let reason = refusal(&mut raw);
    assert!(reason.contains("protocol version"), "{reason}");
    hello[4..8].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());

    let mut raw = Raw::connect(c.addr);
    raw.send(&hello);
    assert!(matches!(
        decode::<ViewerMessage>(&raw.read().unwrap()).unwrap(),
        ViewerMessage::Welcome { .. }
    ));
    raw.send(b"\x07\xff\xff");
    let reason = refusal(&mut raw);
    assert!(reason.contains("malformed"), "{reason}");
    assert!(raw.read().is_none(), "the connection is closed after");

    // An oversized frame is refused from its length prefix.
    let mut raw = Raw::connect(c.addr);
    raw.send(&hello);
    raw.read().unwrap();
    let _ = raw.stream.write_all(&u32::MAX.to_be_bytes());
    let reason = refusal(&mut raw);
    assert!(reason.contains("exceeds"), "{reason}");

    // Still serving.
    assert!(ViewerClient::connect(&c.addr.to_string(), "")
        .unwrap()
        .list()
        .unwrap()
        .is_empty());
}

#[test]
fn a_viewer_that_does_not_read_never_slows_the_agent_and_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let c = serve(dir.path(), None, 2);
    let (batches, _) = recording(3, 400);
    let mut agent = Agent::start(c.addr, "busy", "");
    agent.stream(&batches[..1]);
    let mut viewer = Raw::connect(c.addr);
    viewer.send(&encode_viewer_hello(&ViewerHello {
        viewer_version: "test".into(),
        token: String::new(),
    }));
    viewer.read().unwrap();
    viewer.send(&encode(&ViewerRequest::Subscribe {
        session: "busy".into(),
    }));
    // The viewer reads nothing more while the agent streams everything else,
    // which the socket buffers cannot hold.
    let start = Instant::now();
    for chunk in batches[1..].chunks(8) {
        agent.stream(chunk);
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "the agent took {took:?}");
    let mut got = 0;
    let reason = loop {
        match viewer.read().map(|f| decode::<ViewerMessage>(&f).unwrap()) {
            Some(ViewerMessage::Batch(_)) => got += 1,
            Some(ViewerMessage::Subscribed(_)) => {}
            Some(ViewerMessage::Refused(r)) => break r.reason,
            other => panic!("expected batches then a refusal, got {other:?}"),
        }
    };
    assert!(got < 400, "{got} batches");
    assert!(
        reason.contains("fell") && reason.contains("behind"),
        "{reason}"
    );
    assert!(viewer.read().is_none());
}

#[test]
fn an_agent_that_disconnects_is_noticed_and_its_session_stays_listed() {
    let dir = tempfile::tempdir().unwrap();
    let c = serve(dir.path(), None, 64);
    let addr = c.addr.to_string();
    let (batches, profile) = recording(9, 6);
    let mut agent = Agent::start(c.addr, "flaky", "");
    agent.stream(&batches[..2]);
    let (mut viewer, _) = ViewerClient::connect(&addr, "")
        .unwrap()
        .subscribe("flaky")
        .unwrap();
    let follower = std::thread::spawn(move || {
        let mut replay = Replay::default();
        let mut notices = Vec::new();
        let end = viewer
            .follow(&AtomicBool::new(false), |f| match f {
                Followed::Batch(b) => replay.apply(&b.delta).unwrap(),
                Followed::Notice(n) => notices.push(n),
                Followed::Restart(why) => panic!("{why}"),
            })
            .unwrap();
        (replay.into_profile(), end, notices)
    });
    drop(agent);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = ViewerClient::connect(&addr, "").unwrap().list().unwrap();
        assert_eq!(list.len(), 1);
        if !list[0].streaming {
            break;
        }
        assert!(Instant::now() < deadline, "still streaming: {list:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut agent = Agent::start(c.addr, "flaky", "");
    agent.stream(&batches[2..]);
    let (replayed, end, notices) = follower.join().unwrap();
    assert_eq!(replayed, profile);
    assert!(end.is_some());
    assert!(
        notices[0].contains("disconnected") && notices[1].contains("connected again"),
        "{notices:?}"
    );
}

#[test]
fn a_viewer_dropped_for_falling_behind_catches_up_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let c = serve(dir.path(), None, 2);
    let (batches, profile) = recording(5, 400);
    let mut agent = Agent::start(c.addr, "fast", "");
    agent.stream(&batches[..1]);
    let (viewer, _) = ViewerClient::connect(&c.addr.to_string(), "")
        .unwrap()
        .subscribe("fast")
        .unwrap();
    let (streamed_tx, streamed_rx) = std::sync::mpsc::channel::<()>();
    let follower = std::thread::spawn(move || {
        let mut replay = Replay::default();
        let mut seqs = Vec::new();
        let mut restarts = Vec::new();
        let mut stalled = false;
        let end = viewer
            .follow_catching_up(&AtomicBool::new(false), |f| match f {
                Followed::Batch(b) => {
                    // The first batch takes as long as the agent takes to send all.
                    if !stalled {
                        stalled = true;
                        streamed_rx.recv().unwrap();
                    }
                    seqs.push(b.seq);
                    replay.apply(&b.delta).unwrap();
                }
                Followed::Restart(why) => {
                    restarts.push(why);
                    replay = Replay::default();
                    seqs.clear();
                }
                Followed::Notice(_) => {}
            })
            .unwrap();
        (replay.into_profile(), seqs, restarts, end)
    });
    for chunk in batches[1..].chunks(8) {
        agent.stream(chunk);
    }
    streamed_tx.send(()).unwrap();
    let (replayed, seqs, restarts, end) = follower.join().unwrap();
    assert!(!restarts.is_empty(), "the viewer was never dropped");
    assert!(restarts[0].contains("behind"), "{restarts:?}");
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
    assert_eq!(replayed, profile);
    assert!(end.is_some());
}

#[test]
fn a_viewer_reconnects_when_the_collector_restarts_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let c = serve(dir.path(), None, 64);
    let addr = c.addr;
    let (batches, profile) = recording(11, 6);
    let mut agent = Agent::start(addr, "phoenix", "");
    agent.stream(&batches[..3]);
    let (viewer, _) = ViewerClient::connect(&addr.to_string(), "")
        .unwrap()
        .subscribe("phoenix")
        .unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<u64>();
    let follower = std::thread::spawn(move || {
        let mut replay = Replay::default();
        let mut notices = Vec::new();
        let mut restarts = Vec::new();
        let end = viewer
            .follow_catching_up(&AtomicBool::new(false), |f| match f {
                Followed::Batch(b) => {
                    replay.apply(&b.delta).unwrap();
                    let _ = seen_tx.send(b.seq);
                }
                Followed::Notice(n) => notices.push(n),
                Followed::Restart(why) => {
                    restarts.push(why);
                    replay = Replay::default();
                }
            })
            .unwrap();
        (replay.into_profile(), end, notices, restarts)
    });
    while seen_rx.recv_timeout(Duration::from_secs(10)).unwrap() < 3 {}
    // The collector goes away with its connections, long enough for the
    // viewer to fail to reconnect, and comes back on the same port and data.
    drop(agent);
    drop(c);
    std::thread::sleep(Duration::from_millis(800));
    let _c = serve_at(dir.path(), None, 64, &addr.to_string());
    std::thread::sleep(Duration::from_millis(500));
    let mut agent = Agent::start(addr, "phoenix", "");
    agent.stream(&batches[3..]);
    let (replayed, end, notices, restarts) = follower.join().unwrap();
    assert_eq!(replayed, profile);
    assert!(end.is_some());
    assert!(
        notices.iter().any(|n| n.contains("lost the collector"))
            && notices
                .iter()
                .any(|n| n.contains("reconnecting to the collector")),
        "{notices:?}"
    );
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    assert!(restarts[0].contains("reconnected"), "{restarts:?}");
}
