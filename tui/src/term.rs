//! The terminal: raw mode and the alternate screen while the dashboard runs,
//! restored by a drop guard on every way out, and by a panic hook before the
//! panic message is printed (so that it is readable). SIGTERM and SIGHUP
//! would end the process with the terminal still raw: while a guard exists
//! they only raise a flag ([`TerminalGuard::signalled`]), and the UI loop
//! quits as on `q`, through the guard. (Ctrl-C is a key in raw mode.)
//!
//! Keys are read on a thread of their own ([`TerminalGuard::next_event`]):
//! crossterm's reader loops without end on a terminal that hung up (a read
//! that returns nothing is read again), so the UI loop must never wait inside
//! it. The UI loop instead asks [`TerminalGuard::signalled`], which also
//! reports a hung-up terminal as SIGHUP, whether or not the signal came.

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;
use signal_hook::consts::{SIGHUP, SIGTERM};
use std::io::{self, Stdout};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

/// The dashboard's terminal; dropping it gives the terminal back as it was.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    pub fn new() -> io::Result<TerminalGuard> {
        install_panic_hook();
        signal_flag()?;
        enable_raw_mode()?;
        // From here on, an error still restores the terminal: the guard exists
        // only once the terminal is set up, so restore by hand until then.
        let setup = execute!(io::stdout(), EnterAlternateScreen, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }

    /// The SIGTERM or SIGHUP received since the first guard was made, if
    /// any; a terminal that hung up counts as SIGHUP.
    pub fn signalled(&self) -> Option<i32> {
        let sig = SIGNALLED.get().map_or(0, |f| f.load(Ordering::Relaxed));
        if sig != 0 {
            Some(sig as i32)
        } else {
            hung_up().then_some(SIGHUP)
        }
    }

    /// The next key press or resize, waiting at most `wait` for it.
    pub fn next_event(&mut self, wait: Duration) -> io::Result<Option<Event>> {
        if KEYS.get().is_none() {
            let _ = KEYS.set(spawn_reader()?);
        }
        let keys = KEYS.get().expect("set above").lock();
        let keys = keys.map_err(|_| io::Error::other("the key reader panicked"))?;
        match keys.recv_timeout(wait) {
            Ok(read) => read.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the terminal's input ended",
            )),
        }
    }
}

/// What the key reader thread has read, in order; it lives as long as the
/// process, so that a picker and the dashboard after it share one reader.
static KEYS: OnceLock<Mutex<Receiver<io::Result<Event>>>> = OnceLock::new();

/// Starts the thread that reads the terminal's events. After an error it
/// sends the error and ends. On a hung-up terminal it may spin inside
/// crossterm until the process exits, which the UI loop sees to promptly.
fn spawn_reader() -> io::Result<Mutex<Receiver<io::Result<Event>>>> {
    let (tx, rx) = mpsc::sync_channel(64);
    std::thread::Builder::new()
        .name("seam-keys".into())
        .spawn(move || loop {
            let read = event::read();
            let failed = read.is_err();
            if tx.send(read).is_err() || failed {
                return;
            }
        })?;
    Ok(Mutex::new(rx))
}

/// Whether the terminal on stdin hung up (its window closed, tmux killed):
/// poll says so at once, without reading.
fn hung_up() -> bool {
    let mut fd = libc::pollfd {
        fd: io::stdin().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

static SIGNALLED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Turns SIGTERM and SIGHUP into a flag, once per process.
fn signal_flag() -> io::Result<()> {
    if SIGNALLED.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicUsize::new(0));
    for sig in [SIGTERM, SIGHUP] {
        signal_hook::flag::register_usize(sig, flag.clone(), sig as usize)?;
    }
    let _ = SIGNALLED.set(flag);
    Ok(())
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen and raw mode; harmless when already restored.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
