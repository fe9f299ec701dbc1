//! The list of stored sessions, as `seam sessions` shows it.

use crate::error::CollectorError;
use crate::store::{read_session, session_files, StoredSession, TailDamage};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One line of `seam sessions`.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSummary {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub command: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Seconds recorded, as of the last stored batch.
    pub duration_s: f64,
    pub samples: u64,
    pub lost: u64,
    pub batches: u64,
    /// The agent sent the recording's end; false while it streams, or when it died.
    pub ended: bool,
    pub damage: Option<TailDamage>,
}

impl From<&StoredSession> for SessionSummary {
    fn from(s: &StoredSession) -> SessionSummary {
        SessionSummary {
            id: s.info.session.clone(),
            host: s.info.host.clone(),
            pid: s.profile.target.pid,
            command: s.profile.target.command.clone(),
            started_unix_ms: s.info.started_unix_ms,
            duration_s: s.profile.duration_s,
            samples: s.profile.samples(),
            lost: s.profile.lost.total(),
            batches: s.batches,
            ended: s.end.is_some(),
            damage: s.damage.clone(),
        }
    }
}

/// A session's summary, or the file that could not be read and why.
pub type SessionRow = Result<SessionSummary, (PathBuf, CollectorError)>;

/// Every session in `dir`, oldest first; a file that cannot be read is listed
/// with its error instead of failing the whole list.
pub fn list_sessions(dir: &Path) -> Result<Vec<SessionRow>, CollectorError> {
    let mut rows: Vec<_> = session_files(dir)?
        .into_iter()
        .map(|path| match read_session(&path) {
            Ok(s) => Ok(SessionSummary::from(&s)),
            Err(e) => Err((path, e)),
        })
        .collect();
    rows.sort_by_key(|r| r.as_ref().map_or(u64::MAX, |s| s.started_unix_ms));
    Ok(rows)
}

/// Writes the sessions as an aligned table, with a note under each damaged one.
pub fn write_sessions_table(rows: &[SessionRow], out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<32}  {:<16}  {:<20}  {:>9}  {:>9}  {:>7}  {:<6}  TARGET",
        "SESSION", "HOST", "START (UTC)", "DURATION", "SAMPLES", "LOST", "STATE"
    )?;
    for row in rows {
        match row {
            Ok(s) => {
                writeln!(
                    out,
                    "{:<32}  {:<16}  {:<20}  {:>8.1}s  {:>9}  {:>7}  {:<6}  {} {}",
                    s.id,
                    s.host,
                    utc_time(s.started_unix_ms),
                    s.duration_s,
                    s.samples,
                    s.lost,
                    if s.ended { "ended" } else { "open" },
                    s.pid,
                    one_line(&s.command.join(" "))
                )?;
                if let Some(d) = &s.damage {
                    writeln!(out, "    damaged tail: {d}")?;
                }
            }
            Err((path, e)) => writeln!(out, "{}: unreadable: {e}", path.display())?,
        }
    }
    Ok(())
}

/// The sessions a running collector has seen, as `seam sessions --collector`
/// prints them: the columns of [`write_sessions_table`], with the state
/// `streaming`, `away` (no agent connected, not ended) or `ended`. Lost
/// samples are in each session's summary (`seam export`), not in the list.
pub fn write_live_sessions_table(
    sessions: &[seam_proto::viewer::LiveSession],
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(
        out,
        "{:<32}  {:<16}  {:<20}  {:>9}  {:>9}  {:<9}  TARGET",
        "SESSION", "HOST", "START (UTC)", "DURATION", "SAMPLES", "STATE"
    )?;
    for s in sessions {
        let state = match (s.ended, s.streaming) {
            (true, _) => "ended",
            (false, true) => "streaming",
            (false, false) => "away",
        };
        writeln!(
            out,
            "{:<32}  {:<16}  {:<20}  {:>8.1}s  {:>9}  {:<9}  {} {}",
            s.id,
            s.host,
            utc_time(s.started_unix_ms),
            s.duration_s,
            s.samples,
            state,
            s.pid,
            one_line(&s.command.join(" "))
        )?;
    }
    Ok(())
}

/// Control characters (newlines in a `python -c` script) as spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        for (ms, want) in [
            (0, "1970-01-01 00:00:00"),
            (951_782_400_000, "2000-02-29 00:00:00"),
            (1_700_000_000_123, "2023-11-14 22:13:20"),
            (4_107_542_399_000, "2100-02-28 23:59:59"),
        ] {
            assert_eq!(utc_time(ms), want);
        }
    }
}
