//! Session files: one append-only file per session, `DIR/<session>.seam`.
//!
//! A file starts with the magic `SEAMSESS` and the format version (`u32`,
//! little-endian), then holds records: a `u32` length and a `u32` CRC-32 of
//! what follows (little-endian), a kind byte and the payload. The first record
//! is the session's [`SessionInfo`]; every other one is a [`Batch`] exactly as
//! it arrived on the wire. A record is only acknowledged once it is written and
//! `fdatasync`ed, so a crash can only leave an incomplete last record: readers
//! stop there and report it ([`TailDamage`]), and the writer cuts it off before
//! appending again.

use crate::error::CollectorError;
use seam_proto::delta::Replay;
use seam_proto::wire::{self, Batch, SessionEnd, MAX_FRAME_BYTES};
use seam_proto::Profile;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Bumped when the layout of a session file changes.
pub const SESSION_FORMAT_VERSION: u32 = 1;
const MAGIC: [u8; 8] = *b"SEAMSESS";
const EXTENSION: &str = "seam";
const KIND_START: u8 = 1;
const KIND_BATCH: u8 = 2;
const RECORD_HEADER: usize = 9;

/// Who sent a session, from the agent's first hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session: String,
    pub host: String,
    pub agent_version: String,
    /// When the recording started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// The agent's address as the collector saw it.
    pub peer: String,
}

/// An incomplete or corrupt end of a session file, which readers skip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailDamage {
    /// Where the intact records end, in bytes from the start of the file.
    pub offset: u64,
    /// Bytes skipped after that.
    pub bytes: u64,
    pub reason: String,
}

impl std::fmt::Display for TailDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{} bytes skipped at offset {}: {}",
            self.bytes, self.offset, self.reason
        )
    }
}

/// A session read back from its file.
#[derive(Debug)]
pub struct StoredSession {
    pub path: PathBuf,
    pub info: SessionInfo,
    pub profile: Profile,
    /// Batches stored, which is also the last sequence number.
    pub batches: u64,
    /// How the recording ended; None while the agent may still send more (or died).
    pub end: Option<SessionEnd>,
    pub damage: Option<TailDamage>,
}

impl StoredSession {
    pub fn id(&self) -> &str {
        &self.info.session
    }
}

/// Whether a batch was stored or had been already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    Stored,
    Duplicate,
}

/// The session's file open for appending, with the profile so far to check
/// each batch against. One per session in a collector.
#[derive(Debug)]
pub struct SessionWriter {
    file: File,
    state: Scan,
    /// Set when a write failed: the file may end in a partial record, so this
    /// writer must not be used again (reopening cuts the partial record off).
    broken: bool,
}

impl SessionWriter {
    /// Opens the session's file in `dir` to append to it, or creates it with
    /// `info` as its first record. A damaged tail is cut off and returned.
    pub fn open(
        dir: &Path,
        info: &SessionInfo,
    ) -> Result<(SessionWriter, Option<TailDamage>), CollectorError> {
        let path = session_path(dir, &info.session)?;
        if !path.exists() {
            create(dir, &path, info)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| CollectorError::io(&path, e))?;
        let state = scan(BufReader::new(&file), &path)?;
        let damage = state.damage.clone();
        if let Some(d) = &damage {
            file.set_len(d.offset)
                .and_then(|_| file.sync_all())
                .map_err(|e| CollectorError::io(&path, e))?;
        }
        Ok((
            SessionWriter {
                file,
                state,
                broken: false,
            },
            damage,
        ))
    }

    /// The sequence number a new session's first batch gets, without creating
    /// its file: nothing is stored for an agent that connects and sends nothing.
    pub fn next_seq_in(dir: &Path, id: &str) -> Result<Option<u64>, CollectorError> {
        Ok((!session_path(dir, id)?.exists()).then_some(1))
    }

    pub fn path(&self) -> &Path {
        &self.state.path
    }

    /// The sequence number the next new batch must have.
    pub fn next_seq(&self) -> u64 {
        self.state.batches + 1
    }

    pub fn ended(&self) -> bool {
        self.state.end.is_some()
    }

    /// How the recording ended, once its last batch is stored.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.state.end.as_ref()
    }

    /// The session's profile as of the last batch appended.
    pub fn profile(&self) -> &Profile {
        self.state.replay.profile()
    }

    /// A write or sync failed: drop this writer and reopen the file.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Checks a batch (the wire payload) against the session and appends it.
    /// It is durable only after [`SessionWriter::sync`].
    pub fn append(&mut self, payload: &[u8]) -> Result<Appended, CollectorError> {
        if self.broken {
            return Err(CollectorError::Broken(self.state.path.clone()));
        }
        let batch: Batch = wire::decode(payload)?;
        if batch.seq < self.next_seq() {
            return Ok(Appended::Duplicate);
        }
        self.state.check_and_apply(&batch)?;
        let record = record_bytes(KIND_BATCH, payload);
        if let Err(e) = self.file.write_all(&record) {
            self.broken = true;
            return Err(CollectorError::io(&self.state.path, e));
        }
        Ok(Appended::Stored)
    }

    /// Makes every appended batch durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), CollectorError> {
        if self.broken {
            return Err(CollectorError::Broken(self.state.path.clone()));
        }
        self.file.sync_data().map_err(|e| {
            self.broken = true;
            CollectorError::io(&self.state.path, e)
        })
    }
}

/// Reads a session file; a damaged tail is skipped and reported, not an error.
pub fn read_session(path: &Path) -> Result<StoredSession, CollectorError> {
    let file = File::open(path).map_err(|e| CollectorError::io(path, e))?;
    let scan = scan(BufReader::new(file), path)?;
    Ok(StoredSession {
        path: path.to_path_buf(),
        info: scan.info,
        profile: scan.replay.into_profile(),
        batches: scan.batches,
        end: scan.end,
        damage: scan.damage,
    })
}

/// The intact batches of a session file as they arrived on the wire (for
/// measuring the encoding and replaying a session over time).
pub fn read_batch_payloads(path: &Path) -> Result<Vec<Vec<u8>>, CollectorError> {
    let file = File::open(path).map_err(|e| CollectorError::io(path, e))?;
    let mut payloads = Vec::new();
    scan_with(BufReader::new(file), path, |p| payloads.push(p.to_vec()))?;
    Ok(payloads)
}

/// The session files in `dir`, oldest first by start time.
pub fn session_files(dir: &Path) -> Result<Vec<PathBuf>, CollectorError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CollectorError::io(dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == EXTENSION))
        .collect();
    files.sort();
    Ok(files)
}

/// The file of the session whose id is `id` or starts with it.
pub fn find_session(dir: &Path, id: &str) -> Result<PathBuf, CollectorError> {
    let matches: Vec<PathBuf> = session_files(dir)?
        .into_iter()
        .filter(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.starts_with(id))
        })
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(CollectorError::NoSuchSession {
            id: id.to_string(),
            dir: dir.to_path_buf(),
        }),
        n => Err(CollectorError::AmbiguousSession {
            id: id.to_string(),
            matches: n,
        }),
    }
}

/// Session ids become file names: only ASCII letters, digits, `-` and `_`.
pub fn valid_session_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn session_path(dir: &Path, id: &str) -> Result<PathBuf, CollectorError> {
    if !valid_session_id(id) {
        return Err(CollectorError::BadSessionId(id.to_string()));
    }
    Ok(dir.join(format!("{id}.{EXTENSION}")))
}

/// Writes the header and the first record under a temporary name, then
/// renames it: a session file either exists whole or not at all.
fn create(dir: &Path, path: &Path, info: &SessionInfo) -> Result<(), CollectorError> {
    let tmp = path.with_extension("seam-new");
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&SESSION_FORMAT_VERSION.to_le_bytes());
    bytes.extend(record_bytes(KIND_START, &wire::encode(info)));
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| CollectorError::io(path, e))
}

fn record_bytes(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    let mut out = Vec::with_capacity(RECORD_HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// What a session file holds, up to its first damaged record.
#[derive(Debug)]
struct Scan {
    path: PathBuf,
    info: SessionInfo,
    replay: Replay,
    batches: u64,
    end: Option<SessionEnd>,
    damage: Option<TailDamage>,
}

impl Scan {
    fn check_and_apply(&mut self, batch: &Batch) -> Result<(), CollectorError> {
        if self.end.is_some() {
            return Err(CollectorError::AfterEnd { seq: batch.seq });
        }
        if batch.seq != self.batches + 1 {
            return Err(CollectorError::SeqGap {
                expected: self.batches + 1,
                got: batch.seq,
            });
        }
        self.replay
            .apply(&batch.delta)
            .map_err(|e| CollectorError::BadBatch {
                seq: batch.seq,
                reason: e.to_string(),
            })?;
        self.batches = batch.seq;
        self.end.clone_from(&batch.end);
        Ok(())
    }
}

/// One record, or why the file ends here.
enum Next {
    Record(u8, Vec<u8>),
    End,
    Damaged(String),
}

fn next_record(r: &mut impl Read) -> io::Result<Next> {
    let mut header = [0u8; RECORD_HEADER];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(Next::End);
    }
    if got < RECORD_HEADER {
        return Ok(Next::Damaged(format!(
            "a record header cut after {got} bytes"
        )));
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_FRAME_BYTES + 1 {
        return Ok(Next::Damaged(format!("a record length of {len} bytes")));
    }
    let mut payload = vec![0u8; len as usize - 1];
    let got = read_full(r, &mut payload)?;
    if got < payload.len() {
        return Ok(Next::Damaged(format!(
            "a record cut after {got} of {} bytes",
            payload.len()
        )));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..]);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(Next::Damaged(
            "a record whose checksum does not match".into(),
        ));
    }
    Ok(Next::Record(header[8], payload))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

fn scan(r: impl Read, path: &Path) -> Result<Scan, CollectorError> {
    scan_with(r, path, |_| {})
}

/// Reads a session file, handing each intact batch's payload to `on_batch`.
fn scan_with(
    mut r: impl Read,
    path: &Path,
    mut on_batch: impl FnMut(&[u8]),
) -> Result<Scan, CollectorError> {
    let io_err = |e| CollectorError::io(path, e);
    let mut header = [0u8; 12];
    if read_full(&mut r, &mut header).map_err(io_err)? < header.len() || header[..8] != MAGIC {
        return Err(CollectorError::NotASession(path.to_path_buf()));
    }
    let version = u32::from_le_bytes(header[8..].try_into().expect("4 bytes"));
    if version != SESSION_FORMAT_VERSION {
        return Err(CollectorError::SessionVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    let (info, start_len) = match next_record(&mut r).map_err(io_err)? {
        Next::Record(KIND_START, payload) => (
            wire::decode::<SessionInfo>(&payload)
                .map_err(|_| CollectorError::NotASession(path.to_path_buf()))?,
            payload.len(),
        ),
        _ => return Err(CollectorError::NotASession(path.to_path_buf())),
    };
    let mut offset = (header.len() + RECORD_HEADER + start_len) as u64;
    let mut scan = Scan {
        path: path.to_path_buf(),
        info,
        replay: Replay::default(),
        batches: 0,
        end: None,
        damage: None,
    };
    loop {
        let reason = match next_record(&mut r).map_err(io_err)? {
            Next::End => break,
            Next::Damaged(reason) => reason,
            Next::Record(KIND_BATCH, payload) => {
                let applied = wire::decode::<Batch>(&payload)
                    .map_err(CollectorError::from)
                    .and_then(|batch| scan.check_and_apply(&batch));
                match applied {
                    Ok(()) => {
                        on_batch(&payload);
                        offset += (RECORD_HEADER + payload.len()) as u64;
                        continue;
                    }
                    Err(e) => format!("a batch that does not fit the session: {e}"),
                }
            }
            Next::Record(kind, _) => format!("a record of unknown kind {kind}"),
        };
        let total = std::fs::metadata(path).map_err(io_err)?.len();
        scan.damage = Some(TailDamage {
            offset,
            bytes: total.saturating_sub(offset),
            reason,
        });
        break;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::delta::DeltaBuilder;
    use seam_proto::synthetic::SyntheticRecording;

    fn info(id: &str) -> SessionInfo {
        SessionInfo {
            session: id.into(),
            host: "box".into(),
            agent_version: "0.1.0".into(),
            started_unix_ms: 1_700_000_000_000,
            peer: "127.0.0.1:5000".into(),
        }
    }

    /// Encoded batches of a synthetic recording, the last one ending it.
    fn batches(n: u64) -> (Vec<Vec<u8>>, Profile) {
        let mut rec = SyntheticRecording::new(n);
        let mut builder = DeltaBuilder::default();
        let mut out = Vec::new();
        for seq in 1..=n {
            rec.advance(150);
            if seq == n {
                rec.finish(2.5);
            }
            out.push(wire::encode(&Batch {
                seq,
                delta: builder.next(rec.profile()),
                end: (seq == n).then(SessionEnd::default),
            }));
        }
        (out, rec.profile().clone())
    }

    #[test]
    fn a_session_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, profile) = batches(6);
        let (mut w, damage) = SessionWriter::open(dir.path(), &info("s1")).unwrap();
        assert_eq!(damage, None);
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(w.append(b).unwrap(), Appended::Stored);
            if i % 2 == 1 {
                w.sync().unwrap();
            }
            assert_eq!(w.append(b).unwrap(), Appended::Duplicate);
        }
        assert!(w.ended());
        let s = read_session(w.path()).unwrap();
        assert_eq!(s.info, info("s1"));
        assert_eq!(s.profile, profile);
        assert_eq!(s.batches, 6);
        assert_eq!(s.end, Some(SessionEnd::default()));
        assert_eq!(s.damage, None);
    }

    #[test]
    fn reopening_appends_after_the_last_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, profile) = batches(4);
        let (mut w, _) = SessionWriter::open(dir.path(), &info("s2")).unwrap();
        w.append(&batches[0]).unwrap();
        w.append(&batches[1]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (mut w, damage) = SessionWriter::open(dir.path(), &info("s2")).unwrap();
        assert_eq!((w.next_seq(), damage), (3, None));
        assert_eq!(w.append(&batches[1]).unwrap(), Appended::Duplicate);
        w.append(&batches[2]).unwrap();
        w.append(&batches[3]).unwrap();
        assert_eq!(read_session(w.path()).unwrap().profile, profile);
    }

    #[test]
    fn batches_that_do_not_follow_are_refused_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, _) = batches(3);
        let (mut w, _) = SessionWriter::open(dir.path(), &info("s3")).unwrap();
        assert!(matches!(
            w.append(&batches[1]),
            Err(CollectorError::SeqGap {
                expected: 1,
                got: 2
            })
        ));
        assert!(matches!(
            w.append(b"\xff\xff"),
            Err(CollectorError::Wire(_))
        ));
        let mut wrong = wire::decode::<Batch>(&batches[1]).unwrap();
        wrong.seq = 1;
        assert!(matches!(
            w.append(&wire::encode(&wrong)),
            Err(CollectorError::BadBatch { seq: 1, .. })
        ));
        for b in &batches {
            w.append(b).unwrap();
        }
        assert!(matches!(
            w.append(&wire::encode(&Batch {
                seq: 4,
                ..wire::decode(&batches[0]).unwrap()
            })),
            Err(CollectorError::AfterEnd { seq: 4 })
        ));
        assert_eq!(read_session(w.path()).unwrap().batches, 3);
    }

    /// A crash can leave any prefix of the last record: every cut is detected,
    /// reported, and skipped by readers; reopening cuts it off and goes on.
    #[test]
    fn a_damaged_tail_is_reported_skipped_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, _) = batches(3);
        let (mut w, _) = SessionWriter::open(dir.path(), &info("s4")).unwrap();
        w.append(&batches[0]).unwrap();
        w.append(&batches[1]).unwrap();
        w.sync().unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        let intact = std::fs::read(&path).unwrap();
        let last = record_bytes(KIND_BATCH, &batches[2]);
        let mut cuts: Vec<usize> = (1..RECORD_HEADER + 2).collect();
        cuts.extend([last.len() / 2, last.len() - 1]);
        for cut in cuts {
            let mut bytes = intact.clone();
            bytes.extend_from_slice(&last[..cut]);
            std::fs::write(&path, &bytes).unwrap();
            let s = read_session(&path).unwrap();
            assert_eq!(s.batches, 2, "cut at {cut}");
            let d = s.damage.expect("damage reported");
            assert_eq!((d.offset, d.bytes), (intact.len() as u64, cut as u64));
        }
        // A flipped bit in the last record fails its checksum.
        let mut bytes = intact.clone();
        bytes.extend_from_slice(&last);
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let d = read_session(&path).unwrap().damage.unwrap();
        assert!(d.reason.contains("checksum"), "{d}");

        let (mut w, damage) = SessionWriter::open(dir.path(), &info("s4")).unwrap();
        assert_eq!(damage.unwrap().offset, intact.len() as u64);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            intact,
            "the tail was cut off"
        );
        w.append(&batches[2]).unwrap();
        w.sync().unwrap();
        let s = read_session(&path).unwrap();
        assert_eq!((s.batches, s.damage), (3, None));
    }

    #[test]
    fn not_a_session_and_other_versions_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.seam");
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(
            read_session(&path),
            Err(CollectorError::NotASession(_))
        ));
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&9u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read_session(&path),
            Err(CollectorError::SessionVersion { version: 9, .. })
        ));
    }

    #[test]
    fn session_ids_are_safe_file_names_and_found_by_prefix() {
        for bad in ["", "../x", "a/b", "a.b", &"x".repeat(65)] {
            assert!(!valid_session_id(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        for id in ["abc1", "abd2"] {
            SessionWriter::open(dir.path(), &info(id)).unwrap();
        }
        assert!(find_session(dir.path(), "abc")
            .unwrap()
            .ends_with("abc1.seam"));
        assert!(matches!(
            find_session(dir.path(), "ab"),
            Err(CollectorError::AmbiguousSession { matches: 2, .. })
        ));
        assert!(matches!(
            find_session(dir.path(), "zz"),
            Err(CollectorError::NoSuchSession { .. })
        ));
        assert!(matches!(
            SessionWriter::open(dir.path(), &info("../etc")),
            Err(CollectorError::BadSessionId(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Any bytes after a valid session's start read as damage or as records, never a panic.
        #[test]
        fn reading_arbitrary_tails_never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let dir = tempfile::tempdir().unwrap();
            let (w, _) = SessionWriter::open(dir.path(), &info("fz")).unwrap();
            let path = w.path().to_path_buf();
            drop(w);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&tail);
            std::fs::write(&path, &bytes).unwrap();
            let s = read_session(&path).unwrap();
            proptest::prop_assert_eq!(s.batches, 0);
        }
    }
}
