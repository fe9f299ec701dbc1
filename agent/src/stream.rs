//! Streaming a recording to a collector instead of writing it locally.
//!
//! The recording loop hands each tick's [`ProfileDelta`] to [`Streamer::offer`],
//! which never blocks on the network: the delta is queued as a numbered batch,
//! and a network thread sends the queue, keeps every batch until the collector
//! acknowledges it, reconnects with back-off and resends what is unacknowledged.
//! When the queue is full (the collector is away or slow), new deltas are folded
//! into one pending delta instead of being dropped, since a dropped delta would
//! lose the frames and stacks later ones refer to; the agent's memory stays
//! bounded by the queue and the profile it holds anyway. What can still be lost
//! is what the collector has not acknowledged when the agent gives up, after
//! the recording: [`StreamReport`] counts it.

use crate::record::{record_with_ticks, Progress, RecordOptions, Recording};
use seam_proto::delta::{DeltaBuilder, ProfileDelta};
use seam_proto::wire::{
    decode, encode, encode_hello, frame, Batch, CollectorMessage, FrameReader, Hello, SessionEnd,
};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// Batches kept until acknowledged; beyond, deltas are folded together.
pub const DEFAULT_MAX_UNACKED: usize = 64;
/// How long the agent keeps trying to deliver after the recording ended.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to stream.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StreamOptions {
    /// The collector's `HOST:PORT`.
    pub collector: String,
    /// The collector's secret; empty for a collector without one.
    pub token: String,
    /// The session's id; a fresh random one by default.
    pub session: String,
    /// This machine's name, as `sessions` shows it.
    pub host: String,
    /// Default [`DEFAULT_MAX_UNACKED`].
    pub max_unacked: usize,
    /// Default [`DEFAULT_GIVE_UP_AFTER`].
    pub give_up_after: Duration,
}

impl StreamOptions {
    pub fn new(collector: impl Into<String>) -> StreamOptions {
        StreamOptions {
            collector: collector.into(),
            token: String::new(),
            session: new_session_id(),
            host: host_name(),
            max_unacked: DEFAULT_MAX_UNACKED,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
        }
    }
}

/// Why streaming failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot reach the collector at {addr}: {source}; check that `seam collector` runs there and the port is open")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("the collector refused the agent: {reason}")]
    Refused {
        reason: String,
        /// Trying again later may help (the collector's disk, for one).
        retry: bool,
    },
    #[error("a batch of {0} bytes exceeds the protocol's frame limit")]
    TooLarge(usize),
    #[error(transparent)]
    Record(#[from] crate::Error),
}

/// What a stream delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamReport {
    pub session: String,
    /// Batches sent, the last one included.
    pub batches: u64,
    /// Batches the collector acknowledged as stored.
    pub acked: u64,
    /// Times the connection was lost and made again.
    pub reconnects: u64,
    /// Ticks whose delta waited in the pending delta because the queue was full.
    pub deferred: u64,
    /// Batches never acknowledged: lost, unless the collector stored them just
    /// before the agent gave up.
    pub undelivered_batches: u64,
    pub undelivered_samples: u64,
}

/// A connection to a collector, or anything else that carries bytes both ways.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

type Connecting = Pin<Box<dyn Future<Output = io::Result<Box<dyn Transport>>> + Send>>;

/// Opens connections to the collector (TCP; an in-memory pipe in tests).
pub trait Connect: Send + Sync + 'static {
    fn connect(&self) -> Connecting;
}

impl<F, Fut, T> Connect for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
    T: Transport + 'static,
{
    fn connect(&self) -> Connecting {
        let connecting = self();
        Box::pin(async move { Ok(Box::new(connecting.await?) as Box<dyn Transport>) })
    }
}

/// Records a target and streams it to a collector: [`crate::record`], with the
/// profile sent as it grows. Connects first, so that a wrong address or token
/// fails before the target is launched.
pub fn record_to_collector(
    options: &RecordOptions,
    stream: StreamOptions,
    progress: impl FnMut(&Progress),
) -> Result<(Recording, StreamReport), StreamError> {
    let collector = stream.collector.clone();
    let streamer = Streamer::start(stream, move || {
        let addr = collector.clone();
        async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        }
    })?;
    let mut builder = DeltaBuilder::default();
    let recording = record_with_ticks(options, progress, |profile| {
        streamer.offer(builder.next(profile));
        if streamer.failure().is_some() {
            options.stop.store(true, Ordering::Relaxed);
        }
    });
    let recording = match recording {
        Ok(r) => r,
        Err(e) => {
            streamer.abandon();
            return Err(e.into());
        }
    };
    let end = SessionEnd {
        target_exited: recording.target_exited,
        exit_status: recording.exit_status,
        warnings: recording.warnings.clone(),
        seam_cpu_s: recording.seam_cpu_s,
    };
    let report = streamer.finish(builder.next(&recording.profile), end)?;
    Ok((recording, report))
}

/// The agent's side of a stream: a bounded queue of batches and the thread
/// that delivers them.
pub struct Streamer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    outbox: Mutex<Outbox>,
    /// Signalled when batches are acknowledged or the stream fails.
    progress: Condvar,
    /// Wakes the network thread's writer.
    wake: Notify,
    max_unacked: usize,
    give_up_after: Duration,
    session: String,
}

#[derive(Default)]
struct Outbox {
    /// Unacknowledged batches, oldest first.
    queue: VecDeque<Queued>,
    /// Folded deltas waiting for room in the queue.
    pending: Option<ProfileDelta>,
    next_seq: u64,
    acked: u64,
    deferred: u64,
    reconnects: u64,
    /// The last batch is queued.
    finished: bool,
    /// The network thread must stop.
    stop: bool,
    failure: Option<StreamError>,
}

struct Queued {
    seq: u64,
    frame: Arc<Vec<u8>>,
    samples: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, e: StreamError) {
        let mut o = self.lock();
        o.failure.get_or_insert(e);
        o.stop = true;
        self.progress.notify_all();
    }
}

impl Outbox {
    /// Queues the pending delta as the next batch.
    fn enqueue(&mut self, end: Option<SessionEnd>) -> Result<(), StreamError> {
        let delta = self.pending.take().unwrap_or_default();
        let samples = delta.samples();
        let batch = Batch {
            seq: self.next_seq,
            delta,
            end,
        };
        let payload = encode(&batch);
        let framed = frame(&payload).map_err(|_| StreamError::TooLarge(payload.len()))?;
        self.queue.push_back(Queued {
            seq: self.next_seq,
            frame: Arc::new(framed),
            samples,
        });
        self.next_seq += 1;
        Ok(())
    }

    fn ack(&mut self, seq: u64) {
        self.acked = self.acked.max(seq);
        while self.queue.front().is_some_and(|q| q.seq <= seq) {
            self.queue.pop_front();
        }
    }

    fn delivered(&self) -> bool {
        self.finished && self.queue.is_empty()
    }
}

impl Streamer {
    /// Connects and says hello; fails when the collector cannot be reached or
    /// refuses. Then delivers batches from a thread of its own.
    pub fn start(options: StreamOptions, connector: impl Connect) -> Result<Streamer, StreamError> {
        let hello = Hello {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            token: options.token.clone(),
            session: options.session.clone(),
            host: options.host.clone(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox {
                next_seq: 1,
                ..Outbox::default()
            }),
            progress: Condvar::new(),
            wake: Notify::new(),
            max_unacked: options.max_unacked.max(1),
            give_up_after: options.give_up_after,
            session: options.session.clone(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = shared.clone();
        let addr = options.collector.clone();
        let thread = std::thread::Builder::new()
            .name("seam-stream".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread tokio runtime");
                runtime.block_on(deliver(thread_shared, connector, hello, addr, ready_tx));
            })
            .expect("spawning the stream thread");
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Streamer {
                shared,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StreamError::Connect {
                    addr: options.collector,
                    source: io::Error::other("the stream thread ended"),
                })
            }
        }
    }

    /// Queues a delta without waiting: as a new batch when the queue has room,
    /// folded into the pending delta otherwise.
    pub fn offer(&self, delta: ProfileDelta) {
        let mut o = self.shared.lock();
        if o.stop || o.finished {
            return;
        }
        match &mut o.pending {
            Some(p) => {
                // The builder's deltas always follow each other.
                p.append(delta)
                    .expect("deltas from one DeltaBuilder follow each other");
            }
            None if delta.is_empty() => return,
            None => o.pending = Some(delta),
        }
        if o.queue.len() < self.shared.max_unacked {
            if let Err(e) = o.enqueue(None) {
                o.failure.get_or_insert(e);
                o.stop = true;
            }
            drop(o);
            self.shared.wake.notify_one();
        } else {
            o.deferred += 1;
        }
    }

    /// The reason the stream stopped for good, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().failure.as_ref().map(|e| e.to_string())
    }

    /// Queues the last delta with how the recording ended, waits until the
    /// collector acknowledged everything or the give-up time passed, and stops.
    pub fn finish(
        mut self,
        last: ProfileDelta,
        end: SessionEnd,
    ) -> Result<StreamReport, StreamError> {
        let deadline = Instant::now() + self.shared.give_up_after;
        let mut o = self.shared.lock();
        if !o.stop {
            match &mut o.pending {
                Some(p) => p
                    .append(last)
                    .expect("deltas from one DeltaBuilder follow each other"),
                None => o.pending = Some(last),
            }
            if let Err(e) = o.enqueue(Some(end)) {
                o.failure.get_or_insert(e);
                o.stop = true;
            }
            o.finished = true;
        }
        self.shared.wake.notify_one();
        while !o.delivered() && !o.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            o = self
                .shared
                .progress
                .wait_timeout(o, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        o.stop = true;
        let failure = o.failure.take();
        let report = StreamReport {
            session: self.shared.session.clone(),
            batches: o.next_seq - 1,
            acked: o.acked,
            reconnects: o.reconnects,
            deferred: o.deferred,
            undelivered_batches: o.queue.len() as u64,
            undelivered_samples: o.queue.iter().map(|q| q.samples).sum::<u64>()
                + o.pending.as_ref().map_or(0, |p| p.samples()),
        };
        drop(o);
        self.stop_thread();
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Stops without sending more (the recording failed).
    pub fn abandon(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The network thread: connect, say hello, send and resend until everything
/// is acknowledged or the streamer stops.
async fn deliver(
    shared: Arc<Shared>,
    connector: impl Connect,
    hello: Hello,
    addr: String,
    ready: std::sync::mpsc::Sender<Result<(), StreamError>>,
) {
    let hello = frame(&encode_hello(&hello)).expect("a hello fits in a frame");
    let mut conn = match handshake(&connector, &hello, &addr).await {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        match exchange(&shared, &mut conn).await {
            Ok(()) => return,
            Err(Some(fatal)) => return shared.fail(fatal),
            Err(None) if shared.lock().stop => return,
            Err(None) => log::info!("lost the connection to the collector at {addr}; reconnecting"),
        }
        loop {
            if shared.lock().stop {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match handshake(&connector, &hello, &addr).await {
                Ok(c) => {
                    conn = c;
                    shared.lock().reconnects += 1;
                    backoff = FIRST_BACKOFF;
                    break;
                }
                Err(e @ StreamError::Refused { retry: false, .. }) => return shared.fail(e),
                Err(e) => log::debug!("reconnecting to {addr}: {e}"),
            }
        }
    }
}

struct Conn {
    stream: Box<dyn Transport>,
    frames: FrameReader,
    next_seq: u64,
}

async fn handshake(
    connector: &impl Connect,
    hello: &[u8],
    addr: &str,
) -> Result<Conn, StreamError> {
    let connect_err = |source| StreamError::Connect {
        addr: addr.to_string(),
        source,
    };
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect())
        .await
        .map_err(|_| connect_err(io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
    stream.write_all(hello).await.map_err(connect_err)?;
    let mut frames = FrameReader::default();
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, read_message(&mut stream, &mut frames))
        .await
        .map_err(|_| connect_err(io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
    match reply {
        CollectorMessage::Welcome(w) => Ok(Conn {
            stream,
            frames,
            next_seq: w.next_seq,
        }),
        CollectorMessage::Refused(r) => Err(StreamError::Refused {
            reason: r.reason,
            retry: r.retry,
        }),
        CollectorMessage::Ack(_) => Err(connect_err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an acknowledgement before the welcome",
        ))),
    }
}

/// Sends unacknowledged batches and reads acknowledgements until everything is
/// delivered (Ok), the connection breaks (Err(None)) or the collector refuses
/// for good (Err(Some)).
async fn exchange(shared: &Shared, conn: &mut Conn) -> Result<(), Option<StreamError>> {
    {
        let mut o = shared.lock();
        o.ack(conn.next_seq - 1);
        shared.progress.notify_all();
        if o.delivered() {
            return Ok(());
        }
    }
    let already_acked = conn.next_seq - 1;
    let (mut rd, mut wr) = tokio::io::split(&mut conn.stream);
    let frames = &mut conn.frames;
    let reader = async {
        loop {
            match read_message(&mut rd, frames).await {
                Ok(CollectorMessage::Ack(a)) => {
                    let mut o = shared.lock();
                    o.ack(a.seq);
                    shared.progress.notify_all();
                    if o.delivered() {
                        return Ok(());
                    }
                }
                Ok(CollectorMessage::Refused(r)) if r.retry => {
                    log::warn!("the collector closed the connection: {}", r.reason);
                    return Err(None);
                }
                Ok(CollectorMessage::Refused(r)) => {
                    return Err(Some(StreamError::Refused {
                        reason: r.reason,
                        retry: false,
                    }))
                }
                Ok(CollectorMessage::Welcome(_)) | Err(_) => return Err(None),
            }
        }
    };
    let writer = async {
        let mut sent = already_acked;
        loop {
            let (batches, stop) = {
                let o = shared.lock();
                let batches: Vec<(u64, Arc<Vec<u8>>)> = o
                    .queue
                    .iter()
                    .filter(|q| q.seq > sent)
                    .map(|q| (q.seq, q.frame.clone()))
                    .collect();
                (batches, o.stop)
            };
            if stop {
                return Err(None);
            }
            if batches.is_empty() {
                shared.wake.notified().await;
                continue;
            }
            for (seq, bytes) in batches {
                wr.write_all(&bytes).await.map_err(|_| None)?;
                sent = seq;
            }
            wr.flush().await.map_err(|_| None)?;
        }
    };
    tokio::select! {
        r = reader => r,
        r = writer => r,
    }
}

async fn read_message(
    r: &mut (impl AsyncRead + Unpin),
    frames: &mut FrameReader,
) -> io::Result<CollectorMessage> {
    let mut buf = [0u8; 4096];
    loop {
        match frames.next_frame() {
            Ok(Some(payload)) => {
                return decode(&payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        frames.push(&buf[..n]);
    }
}

/// 128 random bits, in hex.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        // Never on Linux; still unique enough for one machine.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (now ^ ((std::process::id() as u128) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_collector::{read_session, Collector, CollectorOptions};
    use seam_proto::synthetic::SyntheticRecording;
    use seam_proto::wire::{Refused, Welcome};
    use seam_proto::Profile;
    use std::path::Path;
    use std::sync::atomic::AtomicU64;

    fn options(session: &str) -> StreamOptions {
        let mut o = StreamOptions::new("in-memory");
        o.session = session.to_string();
        o.give_up_after = Duration::from_secs(20);
        o
    }

    /// Each connection is served by a new collector over the same folder, as
    /// after a restart.
    fn in_memory(dir: &Path, token: Option<&str>) -> impl Connect {
        let dir = dir.to_path_buf();
        let token = token.map(str::to_string);
        move || {
            let mut options = CollectorOptions::new(&dir);
            options.token = token.clone();
            async move {
                let (agent, server) = tokio::io::duplex(16 << 10);
                let collector = Collector::new(options).map_err(io::Error::other)?;
                tokio::spawn(async move { collector.handle_logged(server, "duplex").await });
                Ok(agent)
            }
        }
    }

    /// Streams a synthetic recording of `ticks` ticks; returns the final profile.
    fn stream_synthetic(streamer: Streamer, seed: u64, ticks: u32) -> (Profile, StreamReport) {
        let mut rec = SyntheticRecording::new(seed);
        let mut builder = DeltaBuilder::default();
        for _ in 0..ticks {
            rec.advance(200);
            streamer.offer(builder.next(rec.profile()));
        }
        rec.finish(1.5);
        let end = SessionEnd {
            target_exited: true,
            exit_status: Some(0),
            ..SessionEnd::default()
        };
        let report = streamer.finish(builder.next(rec.profile()), end).unwrap();
        (rec.profile().clone(), report)
    }

    #[test]
    fn streams_a_recording_over_an_in_memory_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let streamer = Streamer::start(options("mem1"), in_memory(dir.path(), None)).unwrap();
        let (profile, report) = stream_synthetic(streamer, 1, 20);
        assert_eq!(report.acked, report.batches);
        assert_eq!((report.undelivered_batches, report.reconnects), (0, 0));
        let stored = read_session(&dir.path().join("mem1.seam")).unwrap();
        assert_eq!(stored.profile, profile);
        assert_eq!(stored.batches, report.batches);
        assert_eq!(stored.end.unwrap().exit_status, Some(0));
    }

    #[test]
    fn streams_a_recording_over_tcp() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let collector = Collector::new(CollectorOptions::new(dir.path())).unwrap();
        runtime.spawn(collector.serve(listener));
        let mut o = options("tcp1");
        o.collector = addr.clone();
        let streamer =
            Streamer::start(o, move || tokio::net::TcpStream::connect(addr.clone())).unwrap();
        let (profile, report) = stream_synthetic(streamer, 2, 10);
        assert_eq!(report.acked, report.batches);
        assert_eq!(
            read_session(&dir.path().join("tcp1.seam")).unwrap().profile,
            profile
        );
    }

    /// Connections cut after a growing number of bytes from the agent (in the
    /// middle of frames, mostly), each served by a "restarted" collector:
    /// every batch is stored exactly once and the profile is whole.
    #[test]
    fn resends_across_cut_connections() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let connector = move || {
            let options = CollectorOptions::new(&data);
            let budget = 1000 + 5000 * counter.fetch_add(1, Ordering::Relaxed) as usize;
            async move {
                let collector = Collector::new(options).map_err(io::Error::other)?;
                let (agent, agent_peer) = tokio::io::duplex(64 << 10);
                let (collector_end, server) = tokio::io::duplex(64 << 10);
                tokio::spawn(async move { collector.handle_logged(server, "cut").await });
                tokio::spawn(async move {
                    let (mut from_agent, mut to_agent) = tokio::io::split(agent_peer);
                    let (mut from_collector, mut to_collector) = tokio::io::split(collector_end);
                    let up = async {
                        let (mut left, mut buf) = (budget, [0u8; 700]);
                        while left > 0 {
                            let n = from_agent.read(&mut buf).await?;
                            if n == 0 {
                                break;
                            }
                            let n = n.min(left);
                            to_collector.write_all(&buf[..n]).await?;
                            left -= n;
                        }
                        Ok::<_, io::Error>(())
                    };
                    let down = tokio::io::copy(&mut from_collector, &mut to_agent);
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
                Ok(agent)
            }
        };
        let mut o = options("cut1");
        o.max_unacked = 4;
        let streamer = Streamer::start(o, connector).unwrap();
        let (profile, report) = stream_synthetic(streamer, 3, 40);
        assert!(report.reconnects >= 3, "{report:?}");
        assert_eq!(report.undelivered_batches, 0, "{report:?}");
        let stored = read_session(&dir.path().join("cut1.seam")).unwrap();
        assert_eq!(stored.batches, report.batches);
        assert_eq!(stored.damage, None);
        assert_eq!(stored.profile, profile);
    }

    /// A collector that welcomes the agent and never acknowledges anything.
    fn silent_collector() -> impl Connect {
        || async {
            let (agent, mut server) = tokio::io::duplex(1 << 20);
            tokio::spawn(async move {
                let welcome = CollectorMessage::Welcome(Welcome { next_seq: 1 });
                let _ = server.write_all(&frame(&encode(&welcome)).unwrap()).await;
                let mut sink = vec![0; 1 << 16];
                while server.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            });
            Ok(agent)
        }
    }

    #[test]
    fn a_full_queue_folds_deltas_and_undelivered_samples_are_counted() {
        let mut o = options("silent");
        o.max_unacked = 3;
        o.give_up_after = Duration::from_millis(200);
        let streamer = Streamer::start(o, silent_collector()).unwrap();
        let mut rec = SyntheticRecording::new(4);
        let mut builder = DeltaBuilder::default();
        for _ in 0..10 {
            rec.advance(100);
            streamer.offer(builder.next(rec.profile()));
        }
        let report = streamer
            .finish(builder.next(rec.profile()), SessionEnd::default())
            .unwrap();
        assert_eq!(report.deferred, 7, "{report:?}");
        // Three queued batches, then the pending folded deltas with the end.
        assert_eq!(
            (report.batches, report.acked, report.undelivered_batches),
            (4, 0, 4)
        );
        assert_eq!(report.undelivered_samples, 1000);
    }

    #[test]
    fn a_wrong_token_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = options("tok");
        o.token = "wrong".into();
        let e = Streamer::start(o, in_memory(dir.path(), Some("right")))
            .err()
            .unwrap();
        assert!(
            matches!(&e, StreamError::Refused { reason, retry: false } if reason == "wrong token"),
            "{e}"
        );
        assert!(!dir.path().join("tok.seam").exists());
    }

    #[test]
    fn a_refusal_mid_stream_stops_the_stream() {
        let connector = || async {
            let (agent, mut server) = tokio::io::duplex(1 << 16);
            tokio::spawn(async move {
                let mut reply =
                    frame(&encode(&CollectorMessage::Welcome(Welcome { next_seq: 1 }))).unwrap();
                reply.extend(
                    frame(&encode(&CollectorMessage::Refused(Refused {
                        reason: "batch 1 does not fit the session".into(),
                        retry: false,
                    })))
                    .unwrap(),
                );
                let _ = server.write_all(&reply).await;
                let mut sink = vec![0; 1 << 16];
                while server.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            });
            Ok(agent)
        };
        let streamer = Streamer::start(options("ref"), connector).unwrap();
        let mut rec = SyntheticRecording::new(5);
        rec.advance(10);
        streamer.offer(DeltaBuilder::default().next(rec.profile()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while streamer.failure().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(streamer.failure().unwrap().contains("does not fit"));
        let e = streamer.finish(ProfileDelta::default(), SessionEnd::default());
        assert!(matches!(e, Err(StreamError::Refused { .. })));
    }

    #[test]
    fn an_unreachable_collector_fails_at_start() {
        let e = Streamer::start(options("none"), || {
            tokio::net::TcpStream::connect("127.0.0.1:1")
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("cannot reach the collector"), "{e}");
    }
}
