//! The viewer side of the collector protocol: what `seam top --collector`
//! says to a collector, and what it hears back.
//!
//! A viewer connects to the same port as agents and uses the same framing
//! ([`crate::wire::frame`], [`crate::wire::FrameReader`], at most
//! [`crate::wire::MAX_FRAME_BYTES`] a frame). Its first frame is a
//! [`ViewerHello`], written by [`encode_viewer_hello`]: the magic `SEAV`
//! (an agent's hello starts with `SEAM`), the protocol version as a big-endian
//! `u32`, then the hello. The collector checks the version and the token and
//! answers [`ViewerMessage::Welcome`]; then the viewer sends
//! [`ViewerRequest`]s: any number of `ListSessions`, then one `Subscribe`.
//! After [`ViewerMessage::Subscribed`] the collector sends the session's
//! stored batches, then each new batch once it is stored, all as
//! [`ViewerMessage::Batch`] in sequence order, and [`ViewerMessage::Ended`]
//! after the last one. A viewer that falls too far behind is sent
//! [`ViewerMessage::Refused`] and closed: it never slows an agent down.
//!
//! ```
//! use seam_proto::viewer::{decode_viewer_hello, encode_viewer_hello, ViewerHello};
//! let hello = ViewerHello { viewer_version: "0.1.0".into(), token: "t".into() };
//! assert_eq!(decode_viewer_hello(&encode_viewer_hello(&hello)).unwrap(), hello);
//! ```

use crate::wire::{
    decode, encode, hello_body, Batch, Refused, SessionEnd, WireError, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};

/// The first bytes of a viewer's hello frame.
pub const VIEWER_MAGIC: [u8; 4] = *b"SEAV";

/// A viewer's first frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerHello {
    /// `seam --version` of the viewer.
    pub viewer_version: String,
    /// The same secret agents send; compared in constant time.
    pub token: String,
}

/// What a viewer asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewerRequest {
    /// The sessions an agent streams now (or streamed and may come back to).
    ListSessions,
    /// One session's batches, stored and to come. `session` is its id or
    /// the start of it.
    Subscribe { session: String },
}

/// A session as a viewer's list shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSession {
    pub id: String,
    pub host: String,
    pub agent_version: String,
    /// Milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    pub pid: u32,
    pub command: Vec<String>,
    /// Samples stored so far.
    pub samples: u64,
    /// Seconds recorded, as of the last stored batch.
    pub duration_s: f64,
    /// Batches stored, which is also the last sequence number.
    pub batches: u64,
    /// An agent is connected now (false while it reconnects, or when it died).
    pub streaming: bool,
    /// The agent sent the recording's end.
    pub ended: bool,
}

/// What the collector says to a viewer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ViewerMessage {
    /// The hello was accepted; requests may follow.
    Welcome { collector_version: String },
    /// The answer to `ListSessions`, oldest first.
    Sessions(Vec<LiveSession>),
    /// The answer to `Subscribe`: the session as it is now. Batches follow.
    Subscribed(LiveSession),
    /// One stored batch, exactly as the agent sent it.
    Batch(Batch),
    /// Something the viewer should show (the agent disconnected, came back).
    Notice(String),
    /// The session ended; nothing follows and the collector closes the connection.
    Ended(SessionEnd),
    /// The connection is refused or closed, for this reason.
    Refused(Refused),
}

/// postcard writes an enum's variant index first (a varint, one byte below
/// 128); this is [`ViewerMessage::Batch`]'s, so that a stored batch is
/// forwarded without decoding it (see [`batch_message`]).
const BATCH_VARIANT: u8 = 3;

/// The encoded [`ViewerMessage::Batch`] of a batch as stored (its wire
/// payload), without decoding and re-encoding it.
pub fn batch_message(batch_payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + batch_payload.len());
    out.push(BATCH_VARIANT);
    out.extend_from_slice(batch_payload);
    out
}

pub fn encode_viewer_hello(hello: &ViewerHello) -> Vec<u8> {
    let mut out = VIEWER_MAGIC.to_vec();
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.extend_from_slice(&encode(hello));
    out
}

/// True when a first frame is a viewer's rather than an agent's.
pub fn is_viewer_hello(payload: &[u8]) -> bool {
    payload.starts_with(&VIEWER_MAGIC)
}

/// Checks the magic and the version before decoding the rest.
pub fn decode_viewer_hello(payload: &[u8]) -> Result<ViewerHello, WireError> {
    decode(hello_body(payload, VIEWER_MAGIC)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::DeltaBuilder;
    use crate::synthetic::SyntheticRecording;

    #[test]
    fn a_stored_batch_is_forwarded_as_a_batch_message() {
        let mut rec = SyntheticRecording::new(5);
        let mut builder = DeltaBuilder::default();
        for seq in 1..=3 {
            rec.advance(120);
            let batch = Batch {
                seq,
                delta: builder.next(rec.profile()),
                end: (seq == 3).then(SessionEnd::default),
            };
            let forwarded = batch_message(&encode(&batch));
            assert_eq!(
                decode::<ViewerMessage>(&forwarded).unwrap(),
                ViewerMessage::Batch(batch.clone())
            );
            assert_eq!(forwarded, encode(&ViewerMessage::Batch(batch)));
        }
    }

    #[test]
    fn viewer_hellos_are_told_apart_from_agent_hellos() {
        let hello = ViewerHello {
            viewer_version: "0.1.0".into(),
            token: "secret".into(),
        };
        let bytes = encode_viewer_hello(&hello);
        assert!(is_viewer_hello(&bytes));
        assert_eq!(decode_viewer_hello(&bytes).unwrap(), hello);
        let agent = crate::wire::encode_hello(&crate::wire::Hello {
            agent_version: "0.1.0".into(),
            token: String::new(),
            session: "s".into(),
            host: "h".into(),
            started_unix_ms: 0,
        });
        assert!(!is_viewer_hello(&agent));
        assert!(matches!(
            decode_viewer_hello(&agent),
            Err(WireError::NotHello)
        ));
        let mut other = bytes.clone();
        other[7] += 1;
        assert!(matches!(
            decode_viewer_hello(&other),
            Err(WireError::Version { got }) if got == PROTOCOL_VERSION + 1
        ));
        assert!(matches!(
            decode_viewer_hello(&bytes[..bytes.len() - 1]),
            Err(WireError::Malformed(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a viewer or a collector sends, decoding it never panics.
        #[test]
        fn decoding_anything_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let _ = decode_viewer_hello(&bytes);
            let _ = decode::<ViewerRequest>(&bytes);
            let _ = decode::<ViewerMessage>(&bytes);
        }
    }
}
