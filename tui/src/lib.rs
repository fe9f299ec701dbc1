//! `seam top`: the live terminal dashboard of a recording.
//!
//! A recording runs on a thread of its own and hands over a snapshot of the
//! growing profile about every 250 ms; the UI loop on the calling thread turns
//! each into the [`Dashboard`]'s figures (rates over the last second, totals
//! since the start or the last reset, a few minutes of history) and draws them.
//!
//! Design constraints, from DESIGN.md and STYLE.md:
//! - this crate never links the sampler: the recording is handed in as a
//!   closure ([`run_top`]'s `source`), so the same dashboard can later show a
//!   profile streamed from a collector;
//! - the state ([`Dashboard`]) knows nothing of ratatui; keys become
//!   [`Action`]s through a pure function ([`action_for`]); the widgets render
//!   `&Dashboard`;
//! - a drop guard and a panic hook give the terminal back on every way out.
//!
//! The state can be driven and drawn without a terminal:
//!
//! ```
//! use ratatui::{backend::TestBackend, Terminal};
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
//! dashboard.update(profile);
//! dashboard.apply(Action::Show(View::Stacks));
//! let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
//! terminal.draw(|f| f.render_widget(&dashboard, f.area())).unwrap();
//! assert_eq!(dashboard.rates().samples_per_s, 10.0);
//! ```

mod input;
mod state;
mod term;
mod view;

pub use input::{action_for, Action, Effect};
pub use state::{
    since, BoundaryKey, BoundaryRow, BoundarySort, Dashboard, FunctionRow, FunctionSort, Rates,
    StackRow, ThreadRow, View, HISTORY_LEN, RATE_WINDOW_S,
};

use ratatui::crossterm::event::{self, Event};
use seam_proto::Profile;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use term::TerminalGuard;

/// How long the UI waits for a key before it looks at the recording again.
const KEY_POLL: Duration = Duration::from_millis(100);
/// The screen is redrawn at least this often, and whenever something changed.
const REDRAW: Duration = Duration::from_secs(1);
/// Snapshots waiting for the UI; beyond that a tick's snapshot is skipped (the
/// next one holds everything it had: a profile only grows).
const FEED_DEPTH: usize = 2;

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
    /// The whole profile.
    pub profile: Profile,
    /// The target ended (rather than the recording being stopped).
    pub target_exited: bool,
    pub exit_status: Option<i32>,
    /// Things the user should know, printed after the dashboard closes.
    pub warnings: Vec<String>,
}

/// What `seam top` leaves behind.
#[derive(Debug)]
pub struct TopOutcome {
    pub end: SourceEnd,
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
    Snapshot(Profile),
    Ended(Result<SourceEnd, String>),
}

/// Runs the dashboard until the user quits. `source` records: it calls its
/// argument with the profile so far on every tick, returns when the target
/// exits or `options.stop` is set, and runs on a thread of its own. Each
/// tick's profile is cloned for the UI (about every 250 ms).
pub fn run_top<F>(options: TopOptions, source: F) -> Result<TopOutcome, TopError>
where
    F: FnOnce(&mut dyn FnMut(&Profile)) -> Result<SourceEnd, String> + Send + 'static,
{
    if !io::stdout().is_terminal() {
        return Err(TopError::NotATerminal);
    }
    let (tx, rx) = mpsc::sync_channel::<Feed>(FEED_DEPTH);
    let recorder = std::thread::Builder::new()
        .name("seam-record".into())
        .spawn(move || {
            let ticks = tx.clone();
            let mut on_tick = |p: &Profile| {
                // The UI is behind: skip this one, the next snapshot holds it all.
                let _ = ticks.try_send(Feed::Snapshot(p.clone()));
            };
            let end = source(&mut on_tick);
            let _ = tx.send(Feed::Ended(end));
        })?;

    let mut dashboard = Dashboard::new();
    let mut ended: Option<Result<SourceEnd, String>> = None;
    let mut flamegraphs = Vec::new();
    let result = (|| -> Result<(), TopError> {
        let mut guard = TerminalGuard::new()?;
        let mut dirty = true;
        let mut last_draw = Instant::now();
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Feed::Snapshot(p)) => dashboard.update(p),
                    Ok(Feed::Ended(end)) => {
                        if let Ok(end) = &end {
                            dashboard.update(end.profile.clone());
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
            if let Some(Err(e)) = &ended {
                return Err(TopError::Recording(e.clone()));
            }
            if options.stop.load(Ordering::Relaxed) {
                wait_for_end(&rx, &mut ended);
                return Ok(());
            }
            if dirty || last_draw.elapsed() >= REDRAW {
                guard
                    .terminal()
                    .draw(|f| f.render_widget(&dashboard, f.area()))?;
                dirty = false;
                last_draw = Instant::now();
            }
            if event::poll(KEY_POLL)? {
                match event::read()? {
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
                if ended.is_none() {
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
        Some(Ok(end)) => Ok(TopOutcome { end, flamegraphs }),
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
