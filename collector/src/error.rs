use seam_proto::wire::WireError;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong in the collector: storing or reading a session, or one
/// agent's connection (which closes that connection only).
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: an earlier write failed; the session is reopened from its file on the next connection")]
    Broken(PathBuf),
    #[error("{0} is not a seam session file")]
    NotASession(PathBuf),
    #[error("{path} is a session file of format version {version}, which this seam cannot read; use the seam that wrote it")]
    SessionVersion { path: PathBuf, version: u32 },
    #[error("no session {id:?} in {dir}; `seam sessions --data {dir}` lists them", dir = dir.display())]
    NoSuchSession { id: String, dir: PathBuf },
    #[error("{matches} sessions start with {id:?}; give more of the id")]
    AmbiguousSession { id: String, matches: usize },
    #[error("session id {0:?} is not 1 to 64 letters, digits, '-' or '_'")]
    BadSessionId(String),
    #[error("batch {got} arrived where batch {expected} was expected")]
    SeqGap { expected: u64, got: u64 },
    #[error("batch {seq} arrived after the session ended")]
    AfterEnd { seq: u64 },
    #[error("batch {seq} does not fit the session: {reason}")]
    BadBatch { seq: u64, reason: String },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("no hello within {0:?} of connecting")]
    NoHello(std::time::Duration),
    #[error("the connection closed before a hello")]
    ClosedBeforeHello,
    #[error("the connection closed in the middle of a frame ({0} bytes of it received)")]
    Truncated(usize),
    #[error("wrong token")]
    WrongToken,
    #[error("no live session {id:?} on this collector (nor a stored one); `seam top --collector ADDR` without --session lists the live ones")]
    NotLive { id: String },
    #[error("this viewer fell {missed} messages behind the session and was dropped, so that it never slows the agents down; subscribe again to catch up")]
    ViewerBehind { missed: u64 },
    #[error("a viewer sent a request after subscribing; one connection follows one session")]
    AfterSubscribe,
    /// The cause is in the message only, so that error chains say it once.
    #[error("connecting to the collector at {addr}: {cause}")]
    Connect { addr: String, cause: io::Error },
    #[error("the collector refused: {0}")]
    Refused(String),
    #[error("the collector dropped this viewer: {0}")]
    ViewerDropped(String),
    #[error(
        "the collector sent {got} where {expected} was expected; is it the same seam version?"
    )]
    Unexpected { got: String, expected: &'static str },
    #[error("the collector closed the connection")]
    CollectorClosed,
    #[error("connection: {0}")]
    Connection(#[source] io::Error),
    #[error("session {session}: {source}")]
    InSession {
        session: String,
        #[source]
        source: Box<CollectorError>,
    },
    #[error("listening on {addr} beyond the loopback interface needs a token: pass --token-file FILE (and the same file to each agent)")]
    TokenRequired { addr: String },
    #[error("the token file {0} is empty; put a long random secret in it, for example from `head -c 32 /dev/urandom | base64`")]
    EmptyToken(PathBuf),
}

impl CollectorError {
    /// Whether the connection to the other side was lost or could not be
    /// made (as opposed to a refusal or a malformed message): trying again
    /// later may work.
    pub fn is_lost_connection(&self) -> bool {
        match self {
            CollectorError::Connect { .. }
            | CollectorError::CollectorClosed
            | CollectorError::Connection(_) => true,
            CollectorError::InSession { source, .. } => source.is_lost_connection(),
            _ => false,
        }
    }
}

impl CollectorError {
    /// The error itself, without the session it happened in.
    pub fn cause(&self) -> &CollectorError {
        match self {
            CollectorError::InSession { source, .. } => source.cause(),
            other => other,
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> CollectorError {
        CollectorError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
