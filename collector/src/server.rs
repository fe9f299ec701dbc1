//! The collector's network side: one task per agent connection, each session
//! written by one [`SessionWriter`] at a time.

use crate::error::CollectorError;
use crate::store::{valid_session_id, Appended, SessionInfo, SessionWriter};
use crate::viewer::{Hub, DEFAULT_VIEWER_QUEUE};
use log::{info, warn};
use seam_proto::viewer::is_viewer_hello;
use seam_proto::wire::{
    decode_hello, encode, frame, Ack, CollectorMessage, FrameReader, Hello, Refused, Welcome,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long a new connection may take to send its hello.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run a collector.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CollectorOptions {
    /// Where session files go; created when missing.
    pub data_dir: PathBuf,
    /// The secret every agent must send. None accepts any agent, which
    /// [`check_listen`] allows on the loopback interface only.
    pub token: Option<String>,
    /// Default [`DEFAULT_HELLO_TIMEOUT`].
    pub hello_timeout: Duration,
    /// Messages a viewer may fall behind by before it is dropped; default
    /// [`DEFAULT_VIEWER_QUEUE`].
    pub viewer_queue: usize,
}

impl CollectorOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> CollectorOptions {
        CollectorOptions {
            data_dir: data_dir.into(),
            token: None,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            viewer_queue: DEFAULT_VIEWER_QUEUE,
        }
    }
}

/// Refuses to listen beyond the loopback interface without a token.
pub fn check_listen(addr: &SocketAddr, token: Option<&str>) -> Result<(), CollectorError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(CollectorError::TokenRequired {
            addr: addr.to_string(),
        });
    }
    Ok(())
}

/// Reads a token file: its content without trailing whitespace, never empty.
pub fn read_token_file(path: &Path) -> Result<String, CollectorError> {
    let text = std::fs::read_to_string(path).map_err(|e| CollectorError::io(path, e))?;
    let token = text.trim_end().to_string();
    if token.is_empty() {
        return Err(CollectorError::EmptyToken(path.to_path_buf()));
    }
    Ok(token)
}

/// Compares two tokens in time that depends only on the longer one's length,
/// not on where they differ.
pub fn token_matches(expected: &str, got: &str) -> bool {
    let (a, b) = (expected.as_bytes(), got.as_bytes());
    let mut same = (a.len() as u64).ct_eq(&(b.len() as u64));
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        same &= x.ct_eq(&y);
    }
    same.into()
}

/// What one connection did, for the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionReport {
    pub session: String,
    /// Batches stored on this connection.
    pub stored: u64,
    /// Batches received again (already stored) and dropped.
    pub duplicates: u64,
    /// The session's last batch is stored (for a viewer: was sent).
    pub ended: bool,
    /// A viewer (`seam top --collector`), not an agent: `stored` counts the
    /// batches sent to it.
    pub viewer: bool,
}

/// A writer shared by the connections of one session; None until opened and
/// after a failed write (the next user reopens the file).
type Slot = Arc<Mutex<Option<SessionWriter>>>;

/// Accepts agents and stores their sessions; serves them to viewers.
#[derive(Debug)]
pub struct Collector {
    options: CollectorOptions,
    sessions: Mutex<HashMap<String, Slot>>,
    hub: Arc<Hub>,
}

impl Collector {
    pub fn new(options: CollectorOptions) -> Result<Arc<Collector>, CollectorError> {
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| CollectorError::io(&options.data_dir, e))?;
        Ok(Arc::new(Collector {
            options,
            sessions: Mutex::new(HashMap::new()),
            hub: Arc::default(),
        }))
    }

    pub fn options(&self) -> &CollectorOptions {
        &self.options
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Serves every agent that connects, each in its own task, until the
    /// process ends. A failing connection is logged and closed; the others go on.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let collector = self.clone();
                    tokio::spawn(async move {
                        let _ = stream.set_nodelay(true);
                        collector.handle_logged(stream, &peer.to_string()).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait for connections to close.
                    warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// [`Collector::handle`], with the outcome logged.
    pub async fn handle_logged<S>(self: &Arc<Self>, stream: S, peer: &str)
    where
        S: AsyncRead + AsyncWrite + Send,
    {
        match self.handle(stream, peer).await {
            Ok(r) if r.viewer => info!(
                "{peer}: viewer of session {} left: {} batches sent{}",
                r.session,
                r.stored,
                if r.ended { ", session ended" } else { "" }
            ),
            Ok(r) => info!(
                "{peer}: session {} closed by the agent: {} batches stored, {} duplicates dropped{}",
                r.session,
                r.stored,
                r.duplicates,
                if r.ended { ", recording ended" } else { "" }
            ),
            Err(e) => warn!("{peer}: connection closed: {e}"),
        }
    }

    /// Serves one agent (or viewer) until it closes the connection or breaks
    /// the protocol. Whatever arrives, only this connection is affected.
    pub async fn handle<S>(
        self: &Arc<Self>,
        stream: S,
        peer: &str,
    ) -> Result<ConnectionReport, CollectorError>
    where
        S: AsyncRead + AsyncWrite + Send,
    {
        let (rd, wr) = tokio::io::split(stream);
        let mut conn = Connection {
            rd,
            wr,
            frames: FrameReader::default(),
            buf: vec![0; 64 << 10],
        };
        let first = tokio::time::timeout(self.options.hello_timeout, conn.read_frame())
            .await
            .map_err(|_| CollectorError::NoHello(self.options.hello_timeout))??
            .ok_or(CollectorError::ClosedBeforeHello)?;
        if is_viewer_hello(&first) {
            return self.serve_viewer(&mut conn, &first).await;
        }
        let hello = match decode_hello(&first) {
            Ok(h) => h,
            Err(e) => return Err(conn.refuse(e.into()).await),
        };
        if let Some(token) = &self.options.token {
            if !token_matches(token, &hello.token) {
                return Err(conn.refuse(CollectorError::WrongToken).await);
            }
        }
        if !valid_session_id(&hello.session) {
            let e = CollectorError::BadSessionId(hello.session.clone());
            return Err(conn.refuse(e).await);
        }
        let slot = self.slot(&hello.session);
        let result = self.serve_session(&mut conn, &slot, &hello, peer).await;
        self.release(&hello.session, slot);
        match result {
            Ok(report) => Ok(report),
            Err(e) => Err(CollectorError::InSession {
                session: hello.session,
                source: Box::new(conn.refuse(e).await),
            }),
        }
    }

    async fn serve_session<R, W>(
        &self,
        conn: &mut Connection<R, W>,
        slot: &Slot,
        hello: &Hello,
        peer: &str,
    ) -> Result<ConnectionReport, CollectorError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let info = SessionInfo {
            session: hello.session.clone(),
            host: hello.host.clone(),
            agent_version: hello.agent_version.clone(),
            started_unix_ms: hello.started_unix_ms,
            peer: peer.to_string(),
        };
        // A session's file is created with its first batch; until then it starts at 1.
        let hub = self.hub.clone();
        let queue = self.options.viewer_queue;
        let next_seq = match SessionWriter::next_seq_in(&self.options.data_dir, &info.session)? {
            Some(first) => {
                hub.agent_connected(&info, None, queue);
                first
            }
            None => {
                let (hub, info) = (hub.clone(), info.clone());
                self.with_writer(slot, &info.clone(), move |w| {
                    hub.agent_connected(&info, Some(w), queue);
                    Ok(w.next_seq())
                })
                .await?
            }
        };
        let _listed = AgentListed {
            hub: hub.clone(),
            session: info.session.clone(),
        };
        info!(
            "{peer}: session {} from {} (agent {}), from batch {next_seq}",
            hello.session, hello.host, hello.agent_version
        );
        conn.send(&CollectorMessage::Welcome(Welcome { next_seq }))
            .await?;
        let mut report = ConnectionReport {
            session: hello.session.clone(),
            ..ConnectionReport::default()
        };
        while let Some(first) = conn.read_frame().await? {
            // Group commit: everything already received is written, then synced once.
            let mut group = vec![first];
            while let Some(f) = conn.frames.next_frame()? {
                group.push(f);
            }
            let (hub, id) = (hub.clone(), info.session.clone());
            let (done, result) = self
                .with_writer(slot, &info, move |w| {
                    let mut done = (0, 0);
                    let mut result = Ok(());
                    let mut stored: Vec<&[u8]> = Vec::new();
                    for payload in &group {
                        match w.append(payload) {
                            Ok(Appended::Stored) => {
                                done.0 += 1;
                                stored.push(payload);
                            }
                            Ok(Appended::Duplicate) => done.1 += 1,
                            Err(e) => {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                    // What was appended before a bad batch is still synced and acknowledged.
                    w.sync()?;
                    hub.stored(&id, &stored, w);
                    Ok(((done, w.next_seq() - 1, w.ended()), result))
                })
                .await?;
            let ((stored, duplicates), last, ended) = done;
            report.stored += stored;
            report.duplicates += duplicates;
            report.ended = ended;
            conn.send(&CollectorMessage::Ack(Ack { seq: last })).await?;
            result?;
        }
        Ok(report)
    }

    /// Runs `f` on the session's writer in the blocking pool (writes and
    /// fsync must not stall the other connections), opening it when needed.
    async fn with_writer<T: Send + 'static>(
        &self,
        slot: &Slot,
        info: &SessionInfo,
        f: impl FnOnce(&mut SessionWriter) -> Result<T, CollectorError> + Send + 'static,
    ) -> Result<T, CollectorError> {
        let slot = slot.clone();
        let dir = self.options.data_dir.clone();
        let info = info.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let writer = match &mut *guard {
                Some(w) => w,
                empty => {
                    let (w, damage) = SessionWriter::open(&dir, &info)?;
                    if let Some(d) = damage {
                        warn!(
                            "session {}: damaged tail cut off ({d}); nothing acknowledged was in it",
                            info.session
                        );
                    }
                    empty.insert(w)
                }
            };
            let result = f(writer);
            if writer.is_broken() {
                *guard = None;
            }
            result
        })
        .await
        .expect("a storage task panicked")
    }

    fn slot(&self, session: &str) -> Slot {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.entry(session.to_string()).or_default().clone()
    }

    /// Forgets a session's writer (closing its file) when no connection uses it.
    fn release(&self, session: &str, slot: Slot) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // Ours and the map's: no other connection holds it, and none can take
        // it while we hold the map's lock.
        if Arc::strong_count(&slot) == 2 {
            sessions.remove(session);
        }
    }
}

/// Lists a session as streaming while its agent is connected.
struct AgentListed {
    hub: Arc<Hub>,
    session: String,
}

impl Drop for AgentListed {
    fn drop(&mut self) {
        self.hub.agent_left(&self.session);
    }
}

pub(crate) struct Connection<R, W> {
    rd: R,
    pub(crate) wr: W,
    pub(crate) frames: FrameReader,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    /// The next frame; None when the agent closed the connection between frames.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Vec<u8>>, CollectorError> {
        loop {
            if let Some(f) = self.frames.next_frame()? {
                return Ok(Some(f));
            }
            let n = self
                .rd
                .read(&mut self.buf)
                .await
                .map_err(CollectorError::Connection)?;
            if n == 0 {
                return match self.frames.buffered() {
                    0 => Ok(None),
                    partial => Err(CollectorError::Truncated(partial)),
                };
            }
            self.frames.push(&self.buf[..n]);
        }
    }

    async fn send(&mut self, message: &CollectorMessage) -> Result<(), CollectorError> {
        self.send_bytes(&frame(&encode(message))?).await
    }

    /// Writes frames already encoded.
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), CollectorError> {
        self.wr
            .write_all(bytes)
            .await
            .map_err(CollectorError::Connection)?;
        self.wr.flush().await.map_err(CollectorError::Connection)
    }

    /// Tells the agent why the connection closes (best effort) and hands the reason back.
    async fn refuse(&mut self, reason: CollectorError) -> CollectorError {
        if !matches!(reason, CollectorError::Connection(_)) {
            let retry = matches!(
                reason,
                CollectorError::Io { .. } | CollectorError::Broken(_)
            );
            let message = CollectorMessage::Refused(Refused {
                reason: reason.to_string(),
                retry,
            });
            let _ = tokio::time::timeout(Duration::from_secs(1), self.send(&message)).await;
            let _ = self.wr.shutdown().await;
        }
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        for (a, b, same) in [
            ("secret", "secret", true),
            ("secret", "secreT", false),
            ("secret", "secret2", false),
            ("secret", "", false),
            ("secret", "secre", false),
            ("", "", true),
        ] {
            assert_eq!(token_matches(a, b), same, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn listening_beyond_loopback_needs_a_token() {
        let lo: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let lo6: SocketAddr = "[::1]:7070".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert!(check_listen(&lo, None).is_ok());
        assert!(check_listen(&lo6, None).is_ok());
        let e = check_listen(&any, None).unwrap_err();
        assert!(e.to_string().contains("--token-file"), "{e}");
        assert!(check_listen(&any, Some("t")).is_ok());
    }

    #[test]
    fn token_files_are_trimmed_and_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "s3cret");
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(CollectorError::EmptyToken(_))
        ));
    }
}
