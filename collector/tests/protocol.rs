//! The collector against agents that break the protocol, over an in-memory
//! pipe and over TCP: each bad connection is refused or closed with a reason,
//! the stored sessions are untouched, and good agents go on being served.

use seam_collector::{read_session, Collector, CollectorError, CollectorOptions};
use seam_proto::delta::DeltaBuilder;
use seam_proto::synthetic::SyntheticRecording;
use seam_proto::wire::{
    decode, encode, encode_hello, frame, Batch, CollectorMessage, FrameReader, Hello, SessionEnd,
    PROTOCOL_VERSION,
};
use seam_proto::Profile;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

fn hello(session: &str, token: &str) -> Hello {
    Hello {
        agent_version: "test".into(),
        token: token.into(),
        session: session.into(),
        host: "box".into(),
        started_unix_ms: 1_700_000_000_000,
    }
}

/// The encoded batches of a synthetic recording, and its profile.
fn recording(seed: u64, n: u64) -> (Vec<Vec<u8>>, Profile) {
    let mut rec = SyntheticRecording::new(seed);
    let mut builder = DeltaBuilder::default();
    let batches = (1..=n)
        .map(|seq| {
            rec.advance(100);
            encode(&Batch {
                seq,
                delta: builder.next(rec.profile()),
                end: (seq == n).then(SessionEnd::default),
            })
        })
        .collect();
    (batches, rec.profile().clone())
}

/// A hand-driven agent.
struct RawAgent<S> {
    stream: S,
    frames: FrameReader,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawAgent<S> {
    fn new(stream: S) -> Self {
        RawAgent {
            stream,
            frames: FrameReader::default(),
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        // The collector may have closed already; what it said is read after.
        let _ = self.stream.write_all(bytes).await;
    }

    async fn send(&mut self, payload: &[u8]) {
        self.send_raw(&frame(payload).unwrap()).await;
    }

    /// The next message, or None when the collector closed the connection.
    async fn read(&mut self) -> Option<CollectorMessage> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.frames.next_frame().unwrap() {
                return Some(decode(&f).unwrap());
            }
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.frames.push(&buf[..n]),
            }
        }
    }

    async fn hello(&mut self, h: &Hello) -> u64 {
        self.send(&encode_hello(h)).await;
        match self.read().await {
            Some(CollectorMessage::Welcome(w)) => w.next_seq,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Sends batches and waits for the acknowledgement of the last one.
    async fn stream(&mut self, batches: &[Vec<u8>]) {
        for b in batches {
            self.send(b).await;
        }
        let last = decode::<Batch>(batches.last().unwrap()).unwrap().seq;
        loop {
            match self.read().await {
                Some(CollectorMessage::Ack(a)) if a.seq >= last => return,
                Some(CollectorMessage::Ack(_)) => {}
                other => panic!("expected acknowledgements, got {other:?}"),
            }
        }
    }
}

fn collector(dir: &Path, token: Option<&str>) -> Arc<Collector> {
    let mut options = CollectorOptions::new(dir);
    options.token = token.map(str::to_string);
    options.hello_timeout = Duration::from_millis(300);
    Collector::new(options).unwrap()
}

/// Runs one connection over an in-memory pipe: `agent` drives the agent side;
/// returns what the collector concluded.
async fn over_duplex<F, Fut>(
    c: &Arc<Collector>,
    agent: F,
) -> Result<seam_collector::ConnectionReport, CollectorError>
where
    F: FnOnce(RawAgent<DuplexStream>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (a, server) = tokio::io::duplex(64 << 10);
    let c = c.clone();
    let task = tokio::spawn(async move { c.handle(server, "test").await });
    agent(RawAgent::new(a)).await;
    task.await.unwrap()
}

fn refused(m: Option<CollectorMessage>) -> String {
    match m {
        Some(CollectorMessage::Refused(r)) => {
            assert!(!r.retry, "{}", r.reason);
            r.reason
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_connections_are_refused_and_stored_data_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(dir.path(), Some("s3cret"));
    let (batches, profile) = recording(1, 4);
    // A session already stored, whose file must not change.
    let first_two = batches[..2].to_vec();
    over_duplex(&c, |mut a| async move {
        a.hello(&hello("kept", "s3cret")).await;
        a.stream(&first_two).await;
    })
    .await
    .unwrap();
    let path = dir.path().join("kept.seam");
    let before = std::fs::read(&path).unwrap();

    let mut wrong_version = encode_hello(&hello("kept", "s3cret"));
    wrong_version[4..8].copy_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
    let mut oversized = Vec::from((64u32 << 20).to_be_bytes());
    oversized.extend_from_slice(b"and some");
    let http = b"GET / HTTP/1.1\r\nHost: collector\r\n\r\n".to_vec();

    type Case = (&'static str, Vec<u8>, Option<&'static str>);
    let cases: Vec<Case> = vec![
        (
            "wrong version",
            frame(&wrong_version).unwrap(),
            Some("protocol version"),
        ),
        (
            "wrong token",
            frame(&encode_hello(&hello("kept", "guess"))).unwrap(),
            Some("wrong token"),
        ),
        (
            "no token",
            frame(&encode_hello(&hello("kept", ""))).unwrap(),
            Some("wrong token"),
        ),
        (
            "not a hello",
            frame(b"\x00\x01garbage").unwrap(),
            Some("not a seam hello"),
        ),
        ("oversized frame", oversized, None),
        ("an HTTP request", http, None),
        (
            "a bad session id",
            frame(&encode_hello(&hello("../etc/passwd", "s3cret"))).unwrap(),
            Some("session id"),
        ),
    ];
    for (what, bytes, reason) in cases {
        let result = over_duplex(&c, |mut a| async move {
            a.send_raw(&bytes).await;
            let said = a.read().await;
            if let Some(want) = reason {
                let got = refused(said);
                assert!(got.contains(want), "{what}: {got}");
            }
        })
        .await;
        let e = result.expect_err(what);
        eprintln!("{what}: {e}");
    }

    // A good hello, then batches that do not belong.
    let (other_batches, _) = recording(2, 3);
    let bad_batches: Vec<(&str, Vec<u8>)> = vec![
        ("garbage batch", b"\xff\xff\xff\xff".to_vec()),
        ("gap", batches[3].clone()),
        (
            "another recording's batch",
            encode(&Batch {
                seq: 3,
                ..decode(&other_batches[2]).unwrap()
            }),
        ),
    ];
    for (what, payload) in bad_batches {
        let result = over_duplex(&c, |mut a| async move {
            assert_eq!(a.hello(&hello("kept", "s3cret")).await, 3);
            a.send(&payload).await;
            match a.read().await {
                Some(CollectorMessage::Ack(ack)) => assert_eq!(ack.seq, 2, "{what}"),
                other => {
                    panic!("{what}: expected the acknowledgement of what is stored, got {other:?}")
                }
            }
            refused(a.read().await);
        })
        .await;
        eprintln!("{what}: {}", result.expect_err(what));
    }

    // Truncated: half a frame, then the connection closes.
    let half = frame(&batches[2]).unwrap();
    let result = over_duplex(&c, |mut a| async move {
        a.hello(&hello("kept", "s3cret")).await;
        a.send_raw(&half[..half.len() / 2]).await;
    })
    .await;
    let e = result.unwrap_err();
    assert!(matches!(e.cause(), CollectorError::Truncated(_)), "{e}");
    assert!(e.to_string().starts_with("session kept: "), "{e}");

    // Silence: no hello in time.
    let result = over_duplex(&c, |a| async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(a);
    })
    .await;
    assert!(
        matches!(result, Err(CollectorError::NoHello(_))),
        "{result:?}"
    );

    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the stored session is untouched"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept.seam"], "no other file was created");

    // The session goes on, duplicates dropped.
    let report = over_duplex(&c, |mut a| async move {
        assert_eq!(a.hello(&hello("kept", "s3cret")).await, 3);
        a.stream(&batches[1..]).await;
    })
    .await
    .unwrap();
    assert_eq!(
        (report.stored, report.duplicates, report.ended),
        (2, 1, true)
    );
    assert_eq!(read_session(&path).unwrap().profile, profile);
}

/// Over TCP, good agents keep streaming while bad connections come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_agents_are_served_while_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(dir.path(), Some("s3cret"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(c.serve(listener));

    let mut good = Vec::new();
    for i in 0..4u64 {
        good.push(tokio::spawn(async move {
            let (batches, profile) = recording(10 + i, 30);
            let mut a = RawAgent::new(tokio::net::TcpStream::connect(addr).await.unwrap());
            a.hello(&hello(&format!("good{i}"), "s3cret")).await;
            for chunk in batches.chunks(3) {
                a.stream(chunk).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            profile
        }));
    }
    let mut bad = Vec::new();
    for i in 0..20u32 {
        bad.push(tokio::spawn(async move {
            let mut a = RawAgent::new(tokio::net::TcpStream::connect(addr).await.unwrap());
            match i % 4 {
                0 => a.send_raw(&[0xff; 64]).await,
                1 => a.send(&encode_hello(&hello("good0", "nope"))).await,
                2 => {
                    a.send_raw(&frame(&encode_hello(&hello("x", "s3cret"))).unwrap()[..10])
                        .await
                }
                _ => {
                    a.hello(&hello("good1", "s3cret")).await;
                    a.send(b"\x01\x02\x03").await;
                }
            }
            drop(a);
        }));
    }
    for b in bad {
        b.await.unwrap();
    }
    for (i, g) in good.into_iter().enumerate() {
        let profile = g.await.unwrap();
        let stored = read_session(&dir.path().join(format!("good{i}.seam"))).unwrap();
        assert_eq!(stored.profile, profile, "agent {i}");
        assert_eq!(stored.batches, 30);
        assert!(stored.end.is_some());
    }
    server.abort();
}
