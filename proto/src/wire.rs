//! The agent → collector wire protocol: messages and a sans-I/O framing.
//!
//! A connection carries length-prefixed frames (a big-endian `u32` length, then
//! that many bytes), each at most [`MAX_FRAME_BYTES`]. The agent's first frame
//! is a [`Hello`], written by [`encode_hello`]: the magic `SEAM`, the protocol
//! version as a big-endian `u32`, then the hello itself, so that a collector can
//! refuse another version before decoding anything else. Every later frame is a
//! [`Batch`] from the agent or a [`CollectorMessage`] from the collector, encoded
//! with postcard ([`encode`], [`decode`]).
//!
//! ```
//! use seam_proto::wire::{decode, encode, frame, Ack, CollectorMessage, FrameReader};
//! let bytes = frame(&encode(&CollectorMessage::Ack(Ack { seq: 7 }))).unwrap();
//! let mut reader = FrameReader::default();
//! reader.push(&bytes[..3]);
//! assert!(reader.next_frame().unwrap().is_none());
//! reader.push(&bytes[3..]);
//! let payload = reader.next_frame().unwrap().unwrap();
//! assert_eq!(decode::<CollectorMessage>(&payload).unwrap(), CollectorMessage::Ack(Ack { seq: 7 }));
//! ```

use crate::delta::ProfileDelta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bumped whenever a message changes shape; a collector refuses other versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts, in bytes. A first batch carries every
/// frame and stack seen so far, which for large programs reaches a few MiB.
pub const MAX_FRAME_BYTES: u32 = 16 << 20;

/// The first bytes of a hello frame.
pub const HELLO_MAGIC: [u8; 4] = *b"SEAM";

/// The agent's first frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// `seam --version` of the agent.
    pub agent_version: String,
    /// Shared secret; the collector compares it in constant time.
    pub token: String,
    /// Chosen by the agent for the whole recording and sent again on every
    /// reconnection, so the collector appends to the same session.
    pub session: String,
    pub host: String,
    /// When the recording started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
}

/// A sequence-numbered change to the session's profile. Sequence numbers start
/// at 1 and have no gaps; the collector stores each one once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub seq: u64,
    pub delta: ProfileDelta,
    /// Set on the last batch of a recording.
    pub end: Option<SessionEnd>,
}

/// How a recording ended, sent with its last batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// The target ended before the duration did.
    pub target_exited: bool,
    /// The exit status of a launched command, if it ended during the recording.
    pub exit_status: Option<i32>,
    /// Things the user should know (an unsupported Python, unreadable files).
    pub warnings: Vec<String>,
    /// CPU time the agent used while recording, in seconds.
    pub seam_cpu_s: f64,
}

/// What the collector says to an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorMessage {
    /// The hello was accepted; batches below `next_seq` are already stored.
    Welcome(Welcome),
    /// Every batch up to `seq` is stored and synced to disk.
    Ack(Ack),
    /// The connection is refused or closed, for this reason; the collector
    /// closes it after this message.
    Refused(Refused),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub next_seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub reason: String,
    /// False when trying again cannot help (a wrong token or protocol version).
    pub retry: bool,
}

/// Why bytes on the wire were not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized { len: u64, max: u32 },
    #[error("the first frame is not a seam hello (no SEAM magic): not a seam agent?")]
    NotHello,
    #[error("protocol version {got} is not supported (this side speaks version {PROTOCOL_VERSION}); run the same seam version on both sides")]
    Version { got: u32 },
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Prefixes `payload` with its length.
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, WireError> {
    if payload.len() as u64 > MAX_FRAME_BYTES as u64 {
        return Err(WireError::Oversized {
            len: payload.len() as u64,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Encodes a message body (a [`Batch`] or a [`CollectorMessage`]).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_allocvec(message).expect("serializing into a Vec cannot fail")
}

/// Decodes a message body; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    let (message, rest) = postcard::take_from_bytes(payload)?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd,
        ));
    }
    Ok(message)
}

pub fn encode_hello(hello: &Hello) -> Vec<u8> {
    let mut out = HELLO_MAGIC.to_vec();
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.extend_from_slice(&encode(hello));
    out
}

/// Checks the magic and the version before decoding the rest.
pub fn decode_hello(payload: &[u8]) -> Result<Hello, WireError> {
    decode(hello_body(payload, HELLO_MAGIC)?)
}

/// What follows a hello's `magic` and protocol version, once both are checked.
pub(crate) fn hello_body(payload: &[u8], magic: [u8; 4]) -> Result<&[u8], WireError> {
    if payload.len() < 8 || payload[..4] != magic {
        return Err(WireError::NotHello);
    }
    let got = u32::from_be_bytes(payload[4..8].try_into().expect("4 bytes"));
    if got != PROTOCOL_VERSION {
        return Err(WireError::Version { got });
    }
    Ok(&payload[8..])
}

/// Splits a byte stream into frames, whatever pieces it arrives in.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    max: u32,
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader::new(MAX_FRAME_BYTES)
    }
}

impl FrameReader {
    /// A reader that refuses frames longer than `max` bytes.
    pub fn new(max: u32) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            max,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload, None until one has fully arrived.
    /// An oversized length is an error as soon as the prefix is read.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes"));
        if len > self.max {
            return Err(WireError::Oversized {
                len: len as u64,
                max: self.max,
            });
        }
        let end = 4 + len as usize;
        if pending.len() < end {
            return Ok(None);
        }
        let payload = pending[4..end].to_vec();
        self.start += end;
        Ok(Some(payload))
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::DeltaBuilder;
    use crate::synthetic::SyntheticRecording;

    fn hello() -> Hello {
        Hello {
            agent_version: "0.1.0".into(),
            token: "secret".into(),
            session: "0123abcd".into(),
            host: "box".into(),
            started_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn hello_round_trips_and_checks_magic_and_version() {
        let bytes = encode_hello(&hello());
        assert_eq!(decode_hello(&bytes).unwrap(), hello());
        let mut other = bytes.clone();
        other[7] += 1;
        assert!(matches!(
            decode_hello(&other),
            Err(WireError::Version { got }) if got == PROTOCOL_VERSION + 1
        ));
        assert!(matches!(
            decode_hello(b"GET / HTTP/1.1"),
            Err(WireError::NotHello)
        ));
        assert!(matches!(
            decode_hello(&bytes[..bytes.len() - 1]),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn batches_round_trip() {
        let mut rec = SyntheticRecording::new(3);
        let mut builder = DeltaBuilder::default();
        for seq in 1..=5 {
            rec.advance(200);
            let batch = Batch {
                seq,
                delta: builder.next(rec.profile()),
                end: (seq == 5).then(|| SessionEnd {
                    target_exited: true,
                    exit_status: Some(3),
                    warnings: vec!["w".into()],
                    seam_cpu_s: 0.25,
                }),
            };
            assert_eq!(decode::<Batch>(&encode(&batch)).unwrap(), batch);
        }
    }

    #[test]
    fn frames_arrive_in_any_pieces() {
        let payloads: Vec<Vec<u8>> = vec![vec![], vec![1], vec![7; 1000], vec![2, 3]];
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p).unwrap()).collect();
        for piece in [1, 2, 3, 5, 64, stream.len()] {
            let mut reader = FrameReader::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                reader.push(chunk);
                while let Some(f) = reader.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, payloads, "pieces of {piece} bytes");
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn oversized_frames_are_refused_from_their_prefix() {
        let mut reader = FrameReader::new(10);
        reader.push(&11u32.to_be_bytes());
        assert!(matches!(
            reader.next_frame(),
            Err(WireError::Oversized { len: 11, max: 10 })
        ));
        assert!(frame(&vec![0; MAX_FRAME_BYTES as usize + 1]).is_err());
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut bytes = encode(&CollectorMessage::Ack(Ack { seq: 1 }));
        bytes.push(0);
        assert!(decode::<CollectorMessage>(&bytes).is_err());
    }

    /// Bytes that look like a batch: a real encoded batch with some bytes changed.
    fn mutated_batch() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let mut rec = SyntheticRecording::new(11);
        rec.advance(100);
        let bytes = encode(&Batch {
            seq: 1,
            delta: DeltaBuilder::default().next(rec.profile()),
            end: None,
        });
        let len = bytes.len();
        prop::collection::vec((0..len, any::<u8>()), 1..8).prop_map(move |edits| {
            let mut b = bytes.clone();
            for (i, v) in edits {
                b[i] = v;
            }
            b
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever arrives, the decoders return an error or a value, never panic,
        /// and a decoded batch either applies or is refused.
        #[test]
        fn decoding_anything_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            mutated in mutated_batch(),
        ) {
            feed_decoders(&bytes, &mutated);
        }
    }

    /// Everything a collector does with bytes from the network, up to applying a batch.
    fn feed_decoders(bytes: &[u8], mutated: &[u8]) {
        let mut reader = FrameReader::new(1024);
        reader.push(bytes);
        while let Ok(Some(f)) = reader.next_frame() {
            let _ = decode_hello(&f);
            let _ = decode::<CollectorMessage>(&f);
        }
        let _ = decode_hello(bytes);
        let _ = decode::<CollectorMessage>(bytes);
        for candidate in [bytes, mutated] {
            if let Ok(batch) = decode::<Batch>(candidate) {
                let _ = crate::delta::Replay::default().apply(&batch.delta);
            }
        }
    }

    /// The fuzz run: random and mutated inputs through the decoders for
    /// SEAM_FUZZ_SECONDS (default 10; CI runs a minute), stopping at the first panic
    /// with the input that caused it.
    #[test]
    fn fuzzing_the_decoders_for_a_while_finds_no_panic() {
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let seconds: f64 = std::env::var("SEAM_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
        let strategy = (
            proptest::collection::vec(any::<u8>(), 0..4096),
            mutated_batch(),
        );
        let mut runner = TestRunner::default();
        let mut inputs = 0u64;
        while std::time::Instant::now() < deadline {
            let (bytes, mutated) = strategy.new_tree(&mut runner).unwrap().current();
            let outcome = std::panic::catch_unwind(|| feed_decoders(&bytes, &mutated));
            assert!(
                outcome.is_ok(),
                "the decoders panicked on bytes {bytes:02x?} / mutated batch {mutated:02x?}"
            );
            inputs += 1;
        }
        eprintln!("fuzzed the decoders with {inputs} inputs in {seconds} s: no panic");
    }
}
