//! The viewer's side of the collector protocol (see [`seam_proto::viewer`]):
//! a blocking client, for `seam top --collector`, which runs it on a thread
//! of its own.

use crate::error::CollectorError;
use seam_proto::viewer::{
    encode_viewer_hello, LiveSession, ViewerHello, ViewerMessage, ViewerRequest,
};
use seam_proto::wire::{decode, encode, frame, Batch, FrameReader, SessionEnd};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long connecting and each answer to a request may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`ViewerClient::follow`] looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long a viewer that lost its collector waits before the first try to
/// reconnect, and at most between two tries.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(3);

/// What a followed session brings, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Followed {
    Batch(Batch),
    /// Something to show the user (the agent disconnected, came back).
    Notice(String),
    /// The collector dropped this viewer for falling behind (why), and it
    /// subscribed again: the batches that follow start from the first.
    Restart(String),
}

/// A connection to a collector as a viewer.
#[derive(Debug)]
pub struct ViewerClient {
    stream: TcpStream,
    frames: FrameReader,
    buf: Vec<u8>,
    /// Where it connected, with what token, and the session it follows: what
    /// it needs to subscribe again.
    addr: String,
    token: String,
    session: Option<String>,
}

impl ViewerClient {
    /// Connects to `addr` (HOST:PORT), says hello with `token` (empty when
    /// the collector has none) and waits for the welcome.
    pub fn connect(addr: &str, token: &str) -> Result<ViewerClient, CollectorError> {
        let connect_err = |cause| CollectorError::Connect {
            addr: addr.to_string(),
            cause,
        };
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(connect_err)?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut stream = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, ANSWER_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        let _ = stream.set_nodelay(true);
        let mut client = ViewerClient {
            stream,
            frames: FrameReader::default(),
            buf: vec![0; 64 << 10],
            addr: addr.to_string(),
            token: token.to_string(),
            session: None,
        };
        let hello = ViewerHello {
            viewer_version: env!("CARGO_PKG_VERSION").to_string(),
            token: token.to_string(),
        };
        client.write(&encode_viewer_hello(&hello))?;
        match client.answer("a welcome")? {
            ViewerMessage::Welcome { .. } => Ok(client),
            other => Err(unexpected(other, "a welcome")),
        }
    }

    /// The sessions agents stream now, oldest first.
    pub fn list(&mut self) -> Result<Vec<LiveSession>, CollectorError> {
        self.write(&encode(&ViewerRequest::ListSessions))?;
        match self.answer("the list of sessions")? {
            ViewerMessage::Sessions(list) => Ok(list),
            other => Err(unexpected(other, "the list of sessions")),
        }
    }

    /// Follows the session whose id is `id` or starts with it; then read
    /// its batches with [`ViewerClient::follow`].
    pub fn subscribe(mut self, id: &str) -> Result<(ViewerClient, LiveSession), CollectorError> {
        self.write(&encode(&ViewerRequest::Subscribe {
            session: id.to_string(),
        }))?;
        match self.answer("the subscription")? {
            ViewerMessage::Subscribed(session) => {
                self.session = Some(session.id.clone());
                Ok((self, session))
            }
            other => Err(unexpected(other, "the subscription")),
        }
    }

    /// [`ViewerClient::follow`], subscribing again from the session's first
    /// batch (and saying so with [`Followed::Restart`]) each time the
    /// collector drops this viewer for falling behind, and each time it
    /// comes back after the connection to it was lost (a restart, a network
    /// cut): until then it says so with a [`Followed::Notice`] and tries
    /// again, ever less often, until `stop` is set.
    pub fn follow_catching_up(
        mut self,
        stop: &AtomicBool,
        mut on: impl FnMut(Followed),
    ) -> Result<Option<SessionEnd>, CollectorError> {
        loop {
            match self.follow(stop, &mut on) {
                Err(CollectorError::ViewerDropped(why)) => {
                    self = self.subscribe_again()?;
                    on(Followed::Restart(why));
                }
                Err(e) if e.is_lost_connection() => {
                    on(Followed::Notice(format!(
                        "lost the collector at {} ({e}); reconnecting",
                        self.addr
                    )));
                    match self.reconnect(stop, &mut on)? {
                        Some(again) => self = again,
                        None => return Ok(None),
                    }
                    on(Followed::Restart(format!(
                        "reconnected to the collector at {}",
                        self.addr
                    )));
                }
                done => return done,
            }
        }
    }

    /// A new connection following the same session from its first batch.
    fn subscribe_again(&self) -> Result<ViewerClient, CollectorError> {
        let id = self.session.clone().unwrap_or_default();
        let (again, _) = ViewerClient::connect(&self.addr, &self.token)?.subscribe(&id)?;
        Ok(again)
    }

    /// Subscribes again once the collector answers and an agent streams the
    /// session again (or it has ended), waiting longer after each failed try
    /// (up to [`RECONNECT_MAX`]); None when `stop` is set first. Only a
    /// refusal (a changed token, another version) ends the tries.
    fn reconnect(
        &self,
        stop: &AtomicBool,
        on: &mut impl FnMut(Followed),
    ) -> Result<Option<ViewerClient>, CollectorError> {
        let id = self.session.clone().unwrap_or_default();
        let mut wait = RECONNECT_FIRST;
        for attempt in 1.. {
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                std::thread::sleep(STOP_POLL);
            }
            let why = match ViewerClient::connect(&self.addr, &self.token)
                .and_then(|c| c.subscribe(&id))
            {
                Ok((again, session)) if session.streaming || session.ended => {
                    return Ok(Some(again))
                }
                Ok(_) => "it is up; waiting for the session's agent to come back".to_string(),
                Err(e) if e.is_lost_connection() || matches!(e, CollectorError::NotLive { .. }) => {
                    e.to_string()
                }
                Err(e) => return Err(e),
            };
            on(Followed::Notice(format!(
                "reconnecting to the collector at {} (try {attempt}): {why}",
                self.addr
            )));
            wait = (wait * 2).min(RECONNECT_MAX);
        }
        unreachable!("the tries go on until one succeeds or stop is set")
    }

    /// Hands each batch and notice of the subscribed session to `on` until
    /// the session ends (its end) or `stop` is set (None).
    pub fn follow(
        &mut self,
        stop: &AtomicBool,
        mut on: impl FnMut(Followed),
    ) -> Result<Option<SessionEnd>, CollectorError> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            match self.next_message(STOP_POLL)? {
                None => {}
                Some(ViewerMessage::Batch(b)) => on(Followed::Batch(b)),
                Some(ViewerMessage::Notice(n)) => on(Followed::Notice(n)),
                Some(ViewerMessage::Ended(end)) => return Ok(Some(end)),
                Some(other) => return Err(unexpected(other, "a batch")),
            }
        }
    }

    fn write(&mut self, payload: &[u8]) -> Result<(), CollectorError> {
        let bytes = frame(payload)?;
        self.stream
            .write_all(&bytes)
            .map_err(CollectorError::Connection)
    }

    /// The answer to a request, within [`ANSWER_TIMEOUT`]; a refusal is an error.
    fn answer(&mut self, expected: &'static str) -> Result<ViewerMessage, CollectorError> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CollectorError::Connection(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {ANSWER_TIMEOUT:?} while waiting for {expected}"),
                )));
            }
            if let Some(m) = self.next_message(left)? {
                return Ok(m);
            }
        }
    }

    /// The next message, or None when none arrived within `wait`. A refusal
    /// is an error.
    fn next_message(&mut self, wait: Duration) -> Result<Option<ViewerMessage>, CollectorError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(payload) = self.frames.next_frame()? {
                return match decode::<ViewerMessage>(&payload)? {
                    ViewerMessage::Refused(r) if r.retry => {
                        Err(CollectorError::ViewerDropped(r.reason))
                    }
                    ViewerMessage::Refused(r) => Err(CollectorError::Refused(r.reason)),
                    m => Ok(Some(m)),
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(CollectorError::Connection)?;
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Err(CollectorError::CollectorClosed),
                Ok(n) => self.frames.push(&self.buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(CollectorError::Connection(e)),
            }
        }
    }
}

fn unexpected(got: ViewerMessage, expected: &'static str) -> CollectorError {
    let got = match got {
        ViewerMessage::Welcome { .. } => "a welcome",
        ViewerMessage::Sessions(_) => "a list of sessions",
        ViewerMessage::Subscribed(_) => "a subscription",
        ViewerMessage::Batch(_) => "a batch",
        ViewerMessage::Notice(_) => "a notice",
        ViewerMessage::Ended(_) => "the end of the session",
        ViewerMessage::Refused(_) => "a refusal",
    };
    CollectorError::Unexpected {
        got: got.to_string(),
        expected,
    }
}
