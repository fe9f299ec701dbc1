//! seam's collector: accepts agents over TCP, stores each recording as a
//! session file, and reads sessions back for `seam sessions` and `seam export`.
//! It also serves viewers (`seam top --collector`): the live sessions, and
//! one session's batches as they are stored ([`ViewerClient`] is the viewer's
//! side).
//!
//! Design constraints: it depends on `seam-proto` only, never on the sampler,
//! and needs no privileges. Each connection is one task; a malformed, oversized
//! or unauthenticated connection is refused with a logged reason and affects no
//! other. A batch is acknowledged only once it is written and `fdatasync`ed
//! ([`store`]), so killing the collector at any moment loses nothing that an
//! agent was told is stored: the agent resends the rest, and duplicates are
//! dropped by sequence number.
//!
//! ```
//! use seam_collector::{Collector, CollectorOptions};
//! use seam_proto::wire::{decode, encode_hello, frame, CollectorMessage, Hello};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let collector = Collector::new(CollectorOptions::new(dir.path())).unwrap();
//! let (mut agent, server) = tokio::io::duplex(4096);
//! let task = tokio::spawn(async move { collector.handle(server, "test").await });
//! let hello = Hello {
//!     agent_version: "0.1.0".into(),
//!     token: String::new(),
//!     session: "s1".into(),
//!     host: "box".into(),
//!     started_unix_ms: 0,
//! };
//! agent.write_all(&frame(&encode_hello(&hello)).unwrap()).await.unwrap();
//! let mut len = [0; 4];
//! agent.read_exact(&mut len).await.unwrap();
//! let mut reply = vec![0; u32::from_be_bytes(len) as usize];
//! agent.read_exact(&mut reply).await.unwrap();
//! assert!(matches!(decode(&reply).unwrap(), CollectorMessage::Welcome(w) if w.next_seq == 1));
//! drop(agent);
//! assert_eq!(task.await.unwrap().unwrap().stored, 0);
//! # });
//! ```

mod error;
mod listing;
mod server;
pub mod store;
mod viewer;
mod watch;

pub use error::CollectorError;
pub use listing::{
    list_sessions, utc_time, write_live_sessions_table, write_sessions_table, SessionRow,
    SessionSummary,
};
pub use server::{
    check_listen, read_token_file, token_matches, Collector, CollectorOptions, ConnectionReport,
    DEFAULT_HELLO_TIMEOUT,
};
pub use store::{find_session, read_batch_payloads, read_session, StoredSession};
pub use viewer::DEFAULT_VIEWER_QUEUE;
pub use watch::{Followed, ViewerClient};
