//! `seam top`: the live terminal dashboard of a recording.
//!
//! A source runs on a thread of its own and hands over the profile's changes
//! as [`ProfileDelta`]s, the same deltas an agent streams to a collector and
//! a collector serves to viewers: a local recording's come from a
//! [`DeltaBuilder`] every tick ([`run_top`]), a remote session's from the
//! collector ([`run_top_stream`]). The UI loop on the calling thread replays
//! them into the [`Dashboard`]'s figures (rates over the last second, totals
//! since the start or the last reset, a few minutes of history) and draws them.
//!
//! Design constraints, from DESIGN.md and STYLE.md:
//! - this crate never links the sampler or the network: the source is
//!   handed in as a closure;
//! - the state ([`Dashboard`]) knows nothing of ratatui; keys become
//!   [`Action`]s through a pure function ([`action_for`]); the widgets render
//!   `&Dashboard`;
//! - a drop guard, a panic hook and SIGTERM/SIGHUP handlers give the terminal
//!   back on every way out.
//!
//! The state can be driven and drawn without a terminal:
//!
//! ```
//! use ratatui::{backend::TestBackend, Terminal};
//! use seam_proto::delta::DeltaBuilder;
//! use seam_proto::{Frame, Profile, Runtime};
//! use seam_tui::{Action, Dashboard, View};
//!
//! let mut profile = Profile::default();
//! profile.duration_s = 1.0;
//! let leaf = profile.intern_frame(Frame::new("main.work", Runtime::Go));
//! let stack = profile.intern_stack(vec![leaf], true);
//! profile.add_samples(stack, 1, 10);
//!
//! let mut dashboard = Dashboard::new();
//! dashboard.apply_delta(&DeltaBuilder::default().next(&profile)).unwrap();
//! dashboard.refresh();
//! dashboard.apply(Action::Show(View::Stacks));
//! let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
//! terminal.draw(|f| f.render_widget(&dashboard, f.area())).unwrap();
//! assert_eq!(dashboard.rates().samples_per_s, 10.0);
//! ```

mod input;
mod picker;
mod state;
mod term;
mod view;

pub use input::{action_for, Action, Effect};
pub use picker::{pick_session, PickEnd, SessionPicker};
pub use state::{
    since, BoundaryKey, BoundaryRow, BoundarySort, Dashboard, FunctionRow, FunctionSort, Rates,
    StackRow, ThreadRow, View, HISTORY_LEN, RATE_WINDOW_S,
};
pub use view::scroll_offset;

use ratatui::crossterm::event::Event;
use seam_proto::delta::{DeltaBuilder, ProfileDelta};
use seam_proto::Profile;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use term::TerminalGuard;

/// How long the UI waits for a key before it looks at the recording again.
const KEY_POLL: Duration = Duration::from_millis(100);
/// The screen is redrawn at least this often, and whenever something changed.
const REDRAW: Duration = Duration::from_secs(1);
/// Messages waiting for the UI; beyond that a source's deltas are folded into
/// one until there is room (deltas add up), so the source never waits.
const FEED_DEPTH: usize = 8;

/// How to run the dashboard.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TopOptions {
    /// Where `f` writes flamegraphs (created when needed).
    pub output_dir: PathBuf,
    /// The recording's stop flag: set on quit; when something else sets it
    /// (Ctrl-C sent as a signal), the dashboard quits.
    pub stop: Arc<AtomicBool>,
}

impl TopOptions {
    pub fn new(output_dir: impl Into<PathBuf>, stop: Arc<AtomicBool>) -> TopOptions {
        TopOptions {
            output_dir: output_dir.into(),
            stop,
        }
    }
}

/// How a recording ended, as its source reports it.
#[derive(Clone, Debug, Default)]
pub struct SourceEnd {
    /// The target ended (rather than the recording being stopped).
    pub target_exited: bool,
    pub exit_status: Option<i32>,
    /// Things the user should know, printed after the dashboard closes.
    pub warnings: Vec<String>,
}

/// What a source hands the dashboard, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceEvent {
    /// The next change to the profile.
    Delta(ProfileDelta),
    /// Something to show in the status line.
    Status(String),
    /// The profile starts again from nothing, for this reason (a viewer the
    /// collector dropped for falling behind subscribed again): the deltas
    /// that follow rebuild it from the start.
    Restart(String),
}

/// What `seam top` leaves behind.
#[derive(Debug)]
pub struct TopOutcome {
    /// The whole profile, as the last delta left it.
    pub profile: Profile,
    pub end: SourceEnd,
    /// The signal (SIGTERM, SIGHUP) that ended the dashboard, if one did.
    pub signal: Option<i32>,
    /// The flamegraphs written with `f`.
    pub flamegraphs: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("seam top draws a dashboard and needs a terminal on standard output; use seam record to write files instead")]
    NotATerminal,
    #[error("the terminal: {0}")]
    Terminal(#[from] io::Error),
    #[error("{0}")]
    Recording(String),
}

enum Feed {
    Event(SourceEvent),
    Ended(Result<SourceEnd, String>),
}

/// The source's end of the feed: it never waits for the UI.
struct FeedSender {
    tx: SyncSender<Feed>,
    /// Deltas the UI had no room for yet, folded into one.
    pending: Option<ProfileDelta>,
}

impl FeedSender {
    fn send(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Delta(delta) => {
                let delta = match self.pending.take() {
                    None => delta,
                    Some(mut folded) => match folded.append(delta) {
                        Ok(()) => folded,
                        Err(_) => {
                            // Not a continuation: hand both over as they are and
                            // let the dashboard refuse the second.
                            let _ = self.tx.send(Feed::Event(SourceEvent::Delta(folded)));
                            return;
                        }
                    },
                };
                // Disconnected: the UI is gone, and the delta with it.
                if let Err(TrySendError::Full(Feed::Event(SourceEvent::Delta(d)))) =
                    self.tx.try_send(Feed::Event(SourceEvent::Delta(delta)))
                {
                    self.pending = Some(d);
                }
            }
            SourceEvent::Restart(why) => {
                // What is folded belongs to the profile being dropped.
                self.pending = None;
                let _ = self.tx.send(Feed::Event(SourceEvent::Restart(why)));
            }
            // A status line is only worth showing now.
            status => {
                let _ = self.tx.try_send(Feed::Event(status));
            }
        }
    }

    /// Hands over what is folded, waiting for room: the source has ended.
    fn finish(mut self, end: Result<SourceEnd, String>) {
        if let Some(d) = self.pending.take() {
            let _ = self.tx.send(Feed::Event(SourceEvent::Delta(d)));
        }
        let _ = self.tx.send(Feed::Ended(end));
    }
}

/// Runs the dashboard of a local recording until the user quits. `source`
/// records: it calls its argument with the profile so far on every tick and
/// with the final profile before it returns; it returns when the target exits
/// or `options.stop` is set, and runs on a thread of its own. Each profile
/// reaches the dashboard as the delta since the previous one.
pub fn run_top<F>(options: TopOptions, source: F) -> Result<TopOutcome, TopError>
where
    F: FnOnce(&mut dyn FnMut(&Profile)) -> Result<SourceEnd, String> + Send + 'static,
{
    run_top_stream(options, move |emit| {
        let mut builder = DeltaBuilder::default();
        let mut on_tick = |p: &Profile| emit(SourceEvent::Delta(builder.next(p)));
        source(&mut on_tick)
    })
}

/// Runs the dashboard of any source of deltas until the user quits (a
/// session streamed from a collector, or [`run_top`]'s recording). `source`
/// hands each change to its argument in order, returns when the profile is
/// complete or `options.stop` is set, and runs on a thread of its own. A
/// source that fails after figures arrived leaves them on the screen with
/// its error until `q`; the error is returned then.
pub fn run_top_stream<F>(options: TopOptions, source: F) -> Result<TopOutcome, TopError>
where
    F: FnOnce(&mut dyn FnMut(SourceEvent)) -> Result<SourceEnd, String> + Send + 'static,
{
    if !io::stdout().is_terminal() {
        return Err(TopError::NotATerminal);
    }
    let (tx, rx) = mpsc::sync_channel::<Feed>(FEED_DEPTH);
    let recorder = std::thread::Builder::new()
        .name("seam-source".into())
        .spawn(move || {
            let mut sender = FeedSender { tx, pending: None };
            let end = source(&mut |event| sender.send(event));
            sender.finish(end);
        })?;

    let mut dashboard = Dashboard::new();
    let mut signal = None;
    let mut failure_shown = false;
    let mut ended: Option<Result<SourceEnd, String>> = None;
    let mut flamegraphs = Vec::new();
    let result = (|| -> Result<(), TopError> {
        let mut guard = TerminalGuard::new()?;
        let mut dirty = true;
        let mut last_draw = Instant::now();
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Feed::Event(SourceEvent::Delta(d))) => {
                        dashboard.apply_delta(&d).map_err(|e| {
                            TopError::Recording(format!(
                                "the profile's changes do not fit together: {e}"
                            ))
                        })?;
                    }
                    Ok(Feed::Event(SourceEvent::Status(s))) => dashboard.set_status(s),
                    Ok(Feed::Event(SourceEvent::Restart(why))) => {
                        dashboard.restart();
                        dashboard.set_status(format!("{why}; caught up again from the start"));
                    }
                    Ok(Feed::Ended(end)) => {
                        if let Ok(end) = &end {
                            if end.target_exited {
                                dashboard.target_exited(end.exit_status);
                                dashboard.set_status(
                                    "target exited: the figures stay until q; f writes the flamegraph",
                                );
                            } else if !options.stop.load(Ordering::Relaxed) {
                                dashboard.set_status("the recording ended; q to quit");
                            }
                        }
                        ended = Some(end);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
                dirty = true;
            }
            dashboard.refresh();
            if let Some(Err(e)) = &ended {
                // Before any figures there is nothing to keep: say why at once.
                if dashboard.newest_profile().stacks.is_empty() {
                    return Err(TopError::Recording(e.clone()));
                }
                if !failure_shown {
                    failure_shown = true;
                    dashboard.set_status(format!("{e}; the figures stay until q"));
                }
            }
            if let Some(sig) = guard.signalled() {
                // SIGTERM or SIGHUP: quit as `q` does, so that the terminal
                // and a launched target are taken care of.
                signal = Some(sig);
                dashboard.request_quit();
            }
            if options.stop.load(Ordering::Relaxed) {
                wait_for_end(&rx, &mut ended);
                return Ok(());
            }
            if !dashboard.quit_requested() && (dirty || last_draw.elapsed() >= REDRAW) {
                guard
                    .terminal()
                    .draw(|f| f.render_widget(&dashboard, f.area()))?;
                dirty = false;
                last_draw = Instant::now();
            }
            let event = if dashboard.quit_requested() {
                None
            } else {
                guard.next_event(KEY_POLL)?
            };
            if let Some(event) = event {
                match event {
                    Event::Key(key) => {
                        if let Some(action) = action_for(key) {
                            if let Some(Effect::WriteFlamegraph) = dashboard.apply(action) {
                                let status = match write_flamegraph(
                                    dashboard.newest_profile(),
                                    &options.output_dir,
                                ) {
                                    Ok(path) => {
                                        let s = format!("flamegraph written to {}", path.display());
                                        flamegraphs.push(path);
                                        s
                                    }
                                    Err(e) => format!("could not write the flamegraph: {e}"),
                                };
                                dashboard.set_status(status);
                            }
                            dirty = true;
                        }
                    }
                    Event::Resize(..) => {
                        guard.terminal().autoresize()?;
                        dirty = true;
                    }
                    _ => {}
                }
            }
            if dashboard.quit_requested() {
                // The dashboard stays up while the recording winds down.
                options.stop.store(true, Ordering::Relaxed);
                if ended.is_none() && signal.is_none() {
                    dashboard.set_status("stopping the recording...");
                    guard
                        .terminal()
                        .draw(|f| f.render_widget(&dashboard, f.area()))?;
                }
                wait_for_end(&rx, &mut ended);
                return Ok(());
            }
        }
    })();
    // Whatever happened, stop the recording and wait for its end.
    options.stop.store(true, Ordering::Relaxed);
    wait_for_end(&rx, &mut ended);
    if recorder.join().is_err() {
        return Err(TopError::Recording("the recording thread panicked".into()));
    }
    result?;
    match ended {
        Some(Ok(end)) => Ok(TopOutcome {
            profile: dashboard.newest_profile().clone(),
            end,
            signal,
            flamegraphs,
        }),
        Some(Err(e)) => Err(TopError::Recording(e)),
        None => Err(TopError::Recording(
            "the recording ended without a result".into(),
        )),
    }
}

/// Reads the feed until the recording thread is done, keeping its result.
fn wait_for_end(rx: &mpsc::Receiver<Feed>, ended: &mut Option<Result<SourceEnd, String>>) {
    for feed in rx.iter() {
        if let Feed::Ended(end) = feed {
            *ended = Some(end);
        }
    }
}

/// Writes `profile`'s flamegraph to the first free `flamegraph-N.svg` in `dir`.
fn write_flamegraph(profile: &Profile, dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = (1..)
        .map(|n| dir.join(format!("flamegraph-{n}.svg")))
        .find(|p| !p.exists())
        .expect("some flamegraph-N.svg is free");
    let mut out = io::BufWriter::new(std::fs::File::create(&path)?);
    seam_export::write_flamegraph(profile, &seam_export::flamegraph_title(profile), &mut out)
        .map_err(io::Error::other)?;
    out.flush()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::delta::Replay;
    use seam_proto::synthetic::SyntheticRecording;

    /// A source faster than the UI never waits: what finds no room is folded,
    /// and the UI still rebuilds the profile exactly.
    #[test]
    fn the_feed_folds_deltas_instead_of_waiting() {
        let (tx, rx) = mpsc::sync_channel(1);
        let mut sender = FeedSender { tx, pending: None };
        let mut rec = SyntheticRecording::new(4);
        let mut builder = DeltaBuilder::default();
        for _ in 0..5 {
            rec.advance(50);
            sender.send(SourceEvent::Delta(builder.next(rec.profile())));
        }
        sender.send(SourceEvent::Status("dropped: no room".into()));
        let source = std::thread::spawn(move || sender.finish(Ok(SourceEnd::default())));
        let mut replay = Replay::default();
        let mut deltas = 0;
        for feed in rx.iter() {
            match feed {
                Feed::Event(SourceEvent::Delta(d)) => {
                    replay.apply(&d).unwrap();
                    deltas += 1;
                }
                Feed::Event(SourceEvent::Status(s)) => panic!("{s}"),
                Feed::Event(SourceEvent::Restart(why)) => panic!("{why}"),
                Feed::Ended(end) => assert!(end.is_ok()),
            }
        }
        source.join().unwrap();
        assert_eq!(deltas, 2, "the first, then the other four folded");
        assert_eq!(replay.into_profile(), *rec.profile());
    }
}
