//! Keys to actions (a pure function, tested as a table), and what each action
//! does to the dashboard. Actions that need I/O come back as an [`Effect`] for
//! the UI loop to carry out.

use crate::state::{Dashboard, View};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Show(View),
    NextView,
    PreviousView,
    Up,
    Down,
    /// Up or down by [`PAGE`] rows.
    PageUp,
    PageDown,
    /// Open the selected boundary's detail.
    Open,
    /// Leave the help or the detail view.
    Back,
    CycleSort,
    TogglePause,
    WriteFlamegraph,
    Reset,
    ToggleHelp,
    Quit,
}

/// Rows `PageUp` and `PageDown` move the selection by.
pub const PAGE: usize = 10;

/// Work an action leaves to the UI loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write the flamegraph of the newest snapshot and say where in the status line.
    WriteFlamegraph,
}

/// The action bound to a key, if any. Only presses count (not releases or repeats
/// on terminals that report them).
pub fn action_for(key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')).then_some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('1') => Action::Show(View::Overview),
        KeyCode::Char('2') => Action::Show(View::Boundaries),
        KeyCode::Char('3') => Action::Show(View::Stacks),
        KeyCode::Char('4') => Action::Show(View::Threads),
        KeyCode::Char('5') => Action::Show(View::Detail),
        KeyCode::Tab => Action::NextView,
        KeyCode::BackTab => Action::PreviousView,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Enter => Action::Open,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('s') => Action::CycleSort,
        KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('f') => Action::WriteFlamegraph,
        KeyCode::Char('r') => Action::Reset,
        KeyCode::Char('?') => Action::ToggleHelp,
        _ => return None,
    })
}

impl Dashboard {
    /// Carries out an action; returns the I/O it needs, if any.
    pub fn apply(&mut self, action: Action) -> Option<Effect> {
        let step = |view: View, by: usize| View::ALL[(view.index() + by) % View::ALL.len()];
        match action {
            Action::Show(view) => self.set_view(view),
            Action::NextView => self.set_view(step(self.view(), 1)),
            Action::PreviousView => self.set_view(step(self.view(), View::ALL.len() - 1)),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(PAGE as isize)),
            Action::PageDown => self.move_selection(PAGE as isize),
            Action::Open => {
                if matches!(self.view(), View::Overview | View::Boundaries) {
                    self.open_detail();
                }
            }
            Action::Back => {
                if self.help() {
                    self.toggle_help();
                } else if self.view() == View::Detail {
                    self.set_view(View::Boundaries);
                }
            }
            Action::CycleSort => self.cycle_sort(),
            Action::TogglePause => {
                let paused = !self.paused();
                self.set_paused(paused);
                self.set_status(if paused {
                    "paused: the recording goes on; p to resume"
                } else {
                    "resumed"
                });
            }
            Action::WriteFlamegraph => return Some(Effect::WriteFlamegraph),
            Action::Reset => {
                self.reset();
                self.set_status("counters reset");
            }
            Action::ToggleHelp => self.toggle_help(),
            Action::Quit => self.request_quit(),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventState;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_map_to_actions() {
        let cases = [
            (press(KeyCode::Char('q')), Some(Action::Quit)),
            (
                KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Some(Action::Quit),
            ),
            (
                KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL),
                None,
            ),
            (
                press(KeyCode::Char('1')),
                Some(Action::Show(View::Overview)),
            ),
            (
                press(KeyCode::Char('2')),
                Some(Action::Show(View::Boundaries)),
            ),
            (press(KeyCode::Char('3')), Some(Action::Show(View::Stacks))),
            (press(KeyCode::Char('4')), Some(Action::Show(View::Threads))),
            (press(KeyCode::Char('5')), Some(Action::Show(View::Detail))),
            (press(KeyCode::Tab), Some(Action::NextView)),
            (press(KeyCode::BackTab), Some(Action::PreviousView)),
            (press(KeyCode::Up), Some(Action::Up)),
            (press(KeyCode::Char('k')), Some(Action::Up)),
            (press(KeyCode::Down), Some(Action::Down)),
            (press(KeyCode::Char('j')), Some(Action::Down)),
            (press(KeyCode::PageUp), Some(Action::PageUp)),
            (press(KeyCode::PageDown), Some(Action::PageDown)),
            (press(KeyCode::Enter), Some(Action::Open)),
            (press(KeyCode::Esc), Some(Action::Back)),
            (press(KeyCode::Char('s')), Some(Action::CycleSort)),
            (press(KeyCode::Char('p')), Some(Action::TogglePause)),
            (press(KeyCode::Char('f')), Some(Action::WriteFlamegraph)),
            (press(KeyCode::Char('r')), Some(Action::Reset)),
            (press(KeyCode::Char('?')), Some(Action::ToggleHelp)),
            (press(KeyCode::Char('z')), None),
            (
                KeyEvent {
                    code: KeyCode::Char('q'),
                    modifiers: KeyModifiers::NONE,
                    kind: KeyEventKind::Release,
                    state: KeyEventState::NONE,
                },
                None,
            ),
        ];
        for (key, want) in cases {
            assert_eq!(action_for(key), want, "{key:?}");
        }
    }

    #[test]
    fn actions_change_the_dashboard() {
        let mut d = Dashboard::new();
        assert_eq!(d.apply(Action::NextView), None);
        assert_eq!(d.view(), View::Boundaries);
        d.apply(Action::PreviousView);
        d.apply(Action::PreviousView);
        assert_eq!(d.view(), View::Detail);
        d.apply(Action::Back);
        assert_eq!(d.view(), View::Boundaries);
        d.apply(Action::Open);
        assert_eq!(d.view(), View::Detail);
        d.apply(Action::Show(View::Stacks));
        d.apply(Action::Open);
        assert_eq!(d.view(), View::Stacks);
        d.apply(Action::ToggleHelp);
        assert!(d.help());
        d.apply(Action::Back);
        assert!(!d.help());
        d.apply(Action::TogglePause);
        assert!(d.paused());
        assert!(d.status().starts_with("paused"));
        d.apply(Action::TogglePause);
        assert!(!d.paused());
        assert_eq!(
            d.apply(Action::WriteFlamegraph),
            Some(Effect::WriteFlamegraph)
        );
        d.apply(Action::Reset);
        assert_eq!(d.status(), "counters reset");
        assert!(!d.quit_requested());
        d.apply(Action::Quit);
        assert!(d.quit_requested());
    }
}
