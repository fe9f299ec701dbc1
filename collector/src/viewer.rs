//! The collector's viewer role: `seam top --collector` lists the live
//! sessions and follows one.
//!
//! The [`Hub`] knows every session an agent streams. Each stored batch is
//! published to it once the batch is written and synced, under the session's
//! writer lock, so the viewers of a session see its batches in sequence
//! order. A subscriber notes the last batch published when it subscribes,
//! reads the batches up to that one back from the session file, then forwards
//! what is published after. Publishing never waits for a viewer: each one has
//! a bounded queue (a `tokio::sync::broadcast` receiver), and a viewer that
//! falls further behind than that is told why and closed.

use crate::error::CollectorError;
use crate::server::{token_matches, Collector, Connection, ConnectionReport};
use crate::store::{self, read_batch_payloads, read_session, SessionInfo, SessionWriter};
use seam_proto::viewer::{
    batch_message, decode_viewer_hello, LiveSession, ViewerMessage, ViewerRequest,
};
use seam_proto::wire::{self, encode, frame, Refused, SessionEnd};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;

/// Messages a viewer may be behind by before it is dropped: at an agent's
/// four batches a second, a quarter of a minute.
pub const DEFAULT_VIEWER_QUEUE: usize = 64;

/// A framed [`ViewerMessage`], encoded once for every viewer.
type Framed = Arc<Vec<u8>>;

struct Live {
    session: LiveSession,
    tx: broadcast::Sender<Framed>,
    /// Agent connections open on this session.
    agents: usize,
}

/// The sessions agents stream, and their viewers' queues.
#[derive(Default)]
pub(crate) struct Hub {
    sessions: Mutex<HashMap<String, Live>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("live", &self.list().len())
            .finish()
    }
}

fn framed(message: &ViewerMessage) -> Framed {
    Arc::new(frame(&encode(message)).expect("control messages are small"))
}

/// The session's figures as its writer holds them.
fn refresh(live: &mut LiveSession, w: &SessionWriter) {
    let p = w.profile();
    live.pid = p.target.pid;
    live.command.clone_from(&p.target.command);
    live.samples = p.samples();
    live.duration_s = p.duration_s;
    live.batches = w.next_seq() - 1;
    live.ended = w.ended();
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An agent's hello was accepted; `writer` is the session's writer when
    /// its file exists.
    pub(crate) fn agent_connected(
        &self,
        info: &SessionInfo,
        writer: Option<&SessionWriter>,
        queue: usize,
    ) {
        let mut sessions = self.lock();
        let live = sessions
            .entry(info.session.clone())
            .or_insert_with(|| Live {
                session: LiveSession {
                    id: info.session.clone(),
                    host: info.host.clone(),
                    agent_version: info.agent_version.clone(),
                    started_unix_ms: info.started_unix_ms,
                    ..LiveSession::default()
                },
                tx: broadcast::channel(queue.max(1)).0,
                agents: 0,
            });
        if let Some(w) = writer {
            refresh(&mut live.session, w);
        }
        live.agents += 1;
        if !live.session.streaming {
            live.session.streaming = true;
            if live.session.batches > 0 {
                let _ = live.tx.send(framed(&ViewerMessage::Notice(
                    "the agent is connected again".into(),
                )));
            }
        }
    }

    /// An agent's connection closed. The session stays listed until it ends:
    /// the agent reconnects and resends.
    pub(crate) fn agent_left(&self, id: &str) {
        let mut sessions = self.lock();
        let Some(live) = sessions.get_mut(id) else {
            return;
        };
        live.agents = live.agents.saturating_sub(1);
        if live.agents == 0 {
            live.session.streaming = false;
            let _ = live.tx.send(framed(&ViewerMessage::Notice(
                "the agent disconnected; waiting for it to reconnect".into(),
            )));
        }
    }

    /// Batches were stored and synced (the payloads as they arrived): they go
    /// to every viewer, and the session leaves the list once it has ended.
    /// Called with the session's writer locked, so in sequence order.
    pub(crate) fn stored(&self, id: &str, payloads: &[&[u8]], w: &SessionWriter) {
        let mut sessions = self.lock();
        let Some(live) = sessions.get_mut(id) else {
            return;
        };
        for p in payloads {
            let message = match frame(&batch_message(p)) {
                Ok(bytes) => Arc::new(bytes),
                Err(e) => framed(&ViewerMessage::Refused(Refused {
                    reason: format!("a batch cannot be forwarded to viewers: {e}"),
                    retry: false,
                })),
            };
            // An error only means that nobody is watching.
            let _ = live.tx.send(message);
        }
        refresh(&mut live.session, w);
        if let Some(end) = w.end() {
            let _ = live.tx.send(framed(&ViewerMessage::Ended(end.clone())));
            sessions.remove(id);
        }
    }

    pub(crate) fn list(&self) -> Vec<LiveSession> {
        let mut list: Vec<LiveSession> = self.lock().values().map(|l| l.session.clone()).collect();
        list.sort_by(|a, b| (a.started_unix_ms, &a.id).cmp(&(b.started_unix_ms, &b.id)));
        list
    }

    /// The live session whose id is `id` or starts with it, and a queue of
    /// what is published from now on.
    fn subscribe(
        &self,
        id: &str,
    ) -> Result<Option<(LiveSession, broadcast::Receiver<Framed>)>, CollectorError> {
        let sessions = self.lock();
        let live = match sessions.get(id) {
            Some(live) => live,
            None => {
                let mut matches = sessions.values().filter(|l| l.session.id.starts_with(id));
                match (matches.next(), matches.next()) {
                    (Some(live), None) => live,
                    (None, _) => return Ok(None),
                    (Some(_), Some(_)) => {
                        return Err(CollectorError::AmbiguousSession {
                            id: id.to_string(),
                            matches: sessions
                                .values()
                                .filter(|l| l.session.id.starts_with(id))
                                .count(),
                        })
                    }
                }
            }
        };
        Ok(Some((live.session.clone(), live.tx.subscribe())))
    }
}

impl Collector {
    /// Serves a viewer whose hello is `first`: requests until it subscribes,
    /// then the session's batches until it ends or the viewer leaves.
    pub(crate) async fn serve_viewer<R, W>(
        &self,
        conn: &mut Connection<R, W>,
        first: &[u8],
    ) -> Result<ConnectionReport, CollectorError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut report = ConnectionReport {
            viewer: true,
            ..ConnectionReport::default()
        };
        let hello = match decode_viewer_hello(first) {
            Ok(h) => h,
            Err(e) => return Err(refuse(conn, e.into()).await),
        };
        if let Some(token) = &self.options().token {
            if !token_matches(token, &hello.token) {
                return Err(refuse(conn, CollectorError::WrongToken).await);
            }
        }
        send(
            conn,
            &ViewerMessage::Welcome {
                collector_version: env!("CARGO_PKG_VERSION").to_string(),
            },
        )
        .await?;
        let session = loop {
            let payload = match conn.read_frame().await {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(report),
                Err(e) => return Err(refuse(conn, e).await),
            };
            match wire::decode::<ViewerRequest>(&payload) {
                Ok(ViewerRequest::ListSessions) => {
                    send(conn, &ViewerMessage::Sessions(self.hub().list())).await?
                }
                Ok(ViewerRequest::Subscribe { session }) => break session,
                Err(e) => return Err(refuse(conn, e.into()).await),
            }
        };
        report.session.clone_from(&session);
        let result = self.follow(conn, &session, &mut report).await;
        match result {
            Ok(()) => Ok(report),
            Err(e) => Err(CollectorError::InSession {
                session,
                source: Box::new(refuse(conn, e).await),
            }),
        }
    }

    async fn follow<R, W>(
        &self,
        conn: &mut Connection<R, W>,
        id: &str,
        report: &mut ConnectionReport,
    ) -> Result<(), CollectorError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let dir = self.options().data_dir.clone();
        let Some((live, mut rx)) = self.hub().subscribe(id)? else {
            return self.send_stored(conn, id, report).await;
        };
        report.session.clone_from(&live.id);
        // The batches published before the subscription are in the file.
        let upto = live.batches as usize;
        let payloads = if upto == 0 {
            Vec::new()
        } else {
            let path = store::session_path(&dir, &live.id)?;
            tokio::task::spawn_blocking(move || read_batch_payloads(&path))
                .await
                .expect("a reading task panicked")?
        };
        if payloads.len() < upto {
            return Err(CollectorError::Broken(store::session_path(&dir, &live.id)?));
        }
        send_stored_batches(conn, live, &payloads[..upto], report).await?;
        drop(payloads);
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Ok(bytes) => {
                        conn.send_bytes(&bytes).await?;
                        report.stored += 1;
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Err(CollectorError::ViewerBehind { missed })
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        report.ended = true;
                        let _ = conn.wr.shutdown().await;
                        return Ok(());
                    }
                },
                request = conn.read_frame() => match request? {
                    None => return Ok(()),
                    Some(_) => return Err(CollectorError::AfterSubscribe),
                },
            }
        }
    }

    /// A session no agent streams: what its file holds, then its end.
    async fn send_stored<R, W>(
        &self,
        conn: &mut Connection<R, W>,
        id: &str,
        report: &mut ConnectionReport,
    ) -> Result<(), CollectorError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let dir = self.options().data_dir.clone();
        let path = store::find_session(&dir, id).map_err(|e| match e {
            CollectorError::NoSuchSession { id, .. } => CollectorError::NotLive { id },
            other => other,
        })?;
        let (session, payloads) = tokio::task::spawn_blocking(move || {
            Ok::<_, CollectorError>((read_session(&path)?, read_batch_payloads(&path)?))
        })
        .await
        .expect("a reading task panicked")?;
        report.session.clone_from(&session.info.session);
        let live = LiveSession {
            id: session.info.session.clone(),
            host: session.info.host.clone(),
            agent_version: session.info.agent_version.clone(),
            started_unix_ms: session.info.started_unix_ms,
            pid: session.profile.target.pid,
            command: session.profile.target.command.clone(),
            samples: session.profile.samples(),
            duration_s: session.profile.duration_s,
            batches: session.batches,
            streaming: false,
            ended: session.end.is_some(),
        };
        send_stored_batches(conn, live, &payloads, report).await?;
        let end = session.end.unwrap_or_else(|| SessionEnd {
            warnings: vec![
                "no agent streams this session any more (it died, or the collector restarted): this is what was stored".into(),
            ],
            ..SessionEnd::default()
        });
        send(conn, &ViewerMessage::Ended(end)).await?;
        report.ended = true;
        let _ = conn.wr.shutdown().await;
        Ok(())
    }
}

/// The answer to a subscription, then the batches read from the session file.
async fn send_stored_batches<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    conn: &mut Connection<R, W>,
    live: LiveSession,
    payloads: &[Vec<u8>],
    report: &mut ConnectionReport,
) -> Result<(), CollectorError> {
    send(conn, &ViewerMessage::Subscribed(live)).await?;
    for p in payloads {
        conn.send_bytes(&frame(&batch_message(p))?).await?;
        report.stored += 1;
    }
    Ok(())
}

async fn send<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    conn: &mut Connection<R, W>,
    message: &ViewerMessage,
) -> Result<(), CollectorError> {
    conn.send_bytes(&frame(&encode(message))?).await
}

/// Tells the viewer why the connection closes (best effort) and hands the reason back.
async fn refuse<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    conn: &mut Connection<R, W>,
    reason: CollectorError,
) -> CollectorError {
    if !matches!(reason, CollectorError::Connection(_)) {
        let message = ViewerMessage::Refused(Refused {
            reason: reason.to_string(),
            retry: matches!(reason, CollectorError::ViewerBehind { .. }),
        });
        let _ = tokio::time::timeout(Duration::from_secs(1), send(conn, &message)).await;
        let _ = conn.wr.shutdown().await;
    }
    reason
}
