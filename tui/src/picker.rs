//! The list of a collector's live sessions that `seam top --collector` shows
//! when no session is named: arrows or j/k select, enter opens the
//! dashboard, q leaves. The state is plain data, drawn by `impl Widget for
//! &SessionPicker`; [`pick_session`] runs it in the terminal.

use crate::input::{action_for, Action};
use crate::term::TerminalGuard;
use crate::view::render_table;
use crate::TopError;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::Event;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Widget};
use seam_export::thousands;
use seam_proto::viewer::LiveSession;
use std::cell::Cell;
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the list is asked for again.
const RELIST: Duration = Duration::from_secs(1);
const KEY_POLL: Duration = Duration::from_millis(100);
/// Characters of a session's id the list shows.
const ID_SHOWN: usize = 16;

/// The sessions to pick from and the selection.
#[derive(Debug, Default)]
pub struct SessionPicker {
    /// Where the sessions come from, for the title.
    source: String,
    sessions: Vec<LiveSession>,
    selected: usize,
    scroll: Cell<usize>,
    /// Milliseconds since the Unix epoch when the list arrived (for the ages).
    now_unix_ms: u64,
    status: String,
}

/// What a key did to the picker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Picked {
    Nothing,
    Session(String),
    Quit,
}

impl SessionPicker {
    pub fn new(source: impl Into<String>) -> SessionPicker {
        SessionPicker {
            source: source.into(),
            ..SessionPicker::default()
        }
    }

    /// A new list; the selection stays on the same session when it is still there.
    pub fn set_sessions(&mut self, sessions: Vec<LiveSession>, now_unix_ms: u64) {
        let id = self.sessions.get(self.selected).map(|s| s.id.clone());
        self.selected = id
            .and_then(|id| sessions.iter().position(|s| s.id == id))
            .unwrap_or(self.selected)
            .min(sessions.len().saturating_sub(1));
        self.sessions = sessions;
        self.now_unix_ms = now_unix_ms;
    }

    pub fn set_status(&mut self, status: impl Into<String>) {
        self.status = status.into();
    }

    pub fn sessions(&self) -> &[LiveSession] {
        &self.sessions
    }

    pub fn selected(&self) -> usize {
        self.selected
    }

    /// Carries out a key's action.
    pub fn apply(&mut self, action: Action) -> Picked {
        let last = self.sessions.len().saturating_sub(1);
        match action {
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => self.selected = (self.selected + 1).min(last),
            Action::PageUp => self.selected = self.selected.saturating_sub(PAGE),
            Action::PageDown => self.selected = (self.selected + PAGE).min(last),
            Action::Open => {
                if let Some(s) = self.sessions.get(self.selected) {
                    return Picked::Session(s.id.clone());
                }
            }
            Action::Quit | Action::Back => return Picked::Quit,
            _ => {}
        }
        Picked::Nothing
    }
}

/// Rows `PageUp` and `PageDown` move by.
const PAGE: usize = crate::input::PAGE;

/// `1h02m`, `3m05s`, `12s`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Widget for &SessionPicker {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [title, body, footer] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        Paragraph::new(Line::from(vec![
            Span::styled("seam top ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("live sessions on {}", self.source)),
        ]))
        .render(title, buf);
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let header = Row::new(
            [
                "session", "host", "started", "recorded", "samples", "agent", "target",
            ]
            .map(|h| Span::styled(h, bold))
            .to_vec(),
        );
        let rows: Vec<Row> = self
            .sessions
            .iter()
            .map(|s| {
                let target = format!("{} {}", s.pid, s.command.join(" "));
                Row::new(vec![
                    // Enough of the id for --session, which takes its start.
                    Line::from(s.id.chars().take(ID_SHOWN).collect::<String>()),
                    Line::from(s.host.clone()),
                    Line::from(format!(
                        "{} ago",
                        age(self.now_unix_ms.saturating_sub(s.started_unix_ms))
                    )),
                    Line::from(format!("{:.0}s", s.duration_s)).right_aligned(),
                    Line::from(thousands(s.samples)).right_aligned(),
                    Line::from(if s.streaming { "streaming" } else { "away" }),
                    Line::from(target),
                ])
            })
            .collect();
        let widths = [
            Constraint::Length(ID_SHOWN as u16),
            Constraint::Length(12),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Fill(1),
        ];
        render_table(
            Table::new(rows, widths).header(header),
            format!(" sessions ({}) ", self.sessions.len()),
            (self.selected, self.sessions.len()),
            &self.scroll,
            body,
            buf,
        );
        if self.sessions.is_empty() && body.height > 3 {
            Paragraph::new("no live session yet: waiting for an agent to stream one")
                .style(Style::default().fg(Color::DarkGray))
                .render(
                    Rect {
                        y: body.y + 2,
                        height: 1,
                        ..body
                    },
                    buf,
                );
        }
        let line = if self.status.is_empty() {
            Line::from("up/down, j/k select  enter open  q quit")
                .style(Style::default().fg(Color::DarkGray))
        } else {
            Line::from(self.status.clone()).style(Style::default().fg(Color::Cyan))
        };
        Paragraph::new(line).render(footer, buf);
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How the picker in the terminal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickEnd {
    /// The user opened this session.
    Session(String),
    /// The user quit.
    Quit,
    /// SIGTERM or SIGHUP (or the terminal hung up) ended the picker.
    Signal(i32),
}

/// Shows the sessions `list` returns (asked again every second) until the
/// user opens one, quits or a signal comes. A failing `list` ends the picker
/// with its error.
pub fn pick_session(
    source: &str,
    mut list: impl FnMut() -> Result<Vec<LiveSession>, String>,
) -> Result<PickEnd, TopError> {
    if !io::stdout().is_terminal() {
        return Err(TopError::NotATerminal);
    }
    let mut picker = SessionPicker::new(source);
    picker.set_sessions(list().map_err(TopError::Recording)?, now_unix_ms());
    let mut guard = TerminalGuard::new()?;
    let mut listed = Instant::now();
    loop {
        if let Some(sig) = guard.signalled() {
            return Ok(PickEnd::Signal(sig));
        }
        if listed.elapsed() >= RELIST {
            picker.set_sessions(list().map_err(TopError::Recording)?, now_unix_ms());
            listed = Instant::now();
        }
        guard
            .terminal()
            .draw(|f| f.render_widget(&picker, f.area()))?;
        if let Some(event) = guard.next_event(KEY_POLL)? {
            match event {
                Event::Key(key) => {
                    if let Some(action) = action_for(key) {
                        match picker.apply(action) {
                            Picked::Session(id) => return Ok(PickEnd::Session(id)),
                            Picked::Quit => return Ok(PickEnd::Quit),
                            Picked::Nothing => {}
                        }
                    }
                }
                Event::Resize(..) => guard.terminal().autoresize()?,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> LiveSession {
        LiveSession {
            id: id.into(),
            host: "box".into(),
            started_unix_ms: 1_000,
            pid: 42,
            command: vec!["samples/run".into(), "chain".into()],
            samples: 12_345,
            duration_s: 12.0,
            batches: 48,
            streaming: true,
            ..LiveSession::default()
        }
    }

    #[test]
    fn keys_select_and_open_a_session() {
        let mut p = SessionPicker::new("127.0.0.1:7433");
        assert_eq!(
            p.apply(Action::Open),
            Picked::Nothing,
            "nothing to open yet"
        );
        p.set_sessions(vec![session("a"), session("b"), session("c")], 61_000);
        assert_eq!(p.apply(Action::Down), Picked::Nothing);
        p.apply(Action::Down);
        p.apply(Action::Down);
        assert_eq!(p.selected(), 2);
        p.apply(Action::Up);
        assert_eq!(p.apply(Action::Open), Picked::Session("b".into()));
        assert_eq!(p.apply(Action::Quit), Picked::Quit);
        assert_eq!(p.apply(Action::Back), Picked::Quit);
    }

    #[test]
    fn the_selection_follows_its_session_when_the_list_changes() {
        let mut p = SessionPicker::new("x");
        p.set_sessions(vec![session("a"), session("b")], 0);
        p.apply(Action::Down);
        p.set_sessions(vec![session("z"), session("a"), session("b")], 0);
        assert_eq!(p.selected(), 2);
        p.set_sessions(vec![session("z")], 0);
        assert_eq!(p.selected(), 0);
        p.set_sessions(vec![], 0);
        assert_eq!(p.selected(), 0);
    }

    #[test]
    fn ages() {
        for (ms, want) in [
            (0, "0s"),
            (59_999, "59s"),
            (61_000, "1m01s"),
            (3_725_000, "1h02m"),
        ] {
            assert_eq!(age(ms), want);
        }
    }

    #[test]
    fn the_list_draws_at_80x24() {
        let mut p = SessionPicker::new("127.0.0.1:7433");
        p.set_sessions(vec![session("1f2e3d4c"), session("5a6b7c8d")], 61_000);
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
        t.draw(|f| f.render_widget(&p, f.area())).unwrap();
        let text: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(text.contains("live sessions on 127.0.0.1:7433"), "{text}");
        assert!(text.contains("1f2e3d4c"), "{text}");
        assert!(text.contains("1m00s ago"), "{text}");
        assert!(text.contains("12,345"), "{text}");
    }
}
