//! The terminal: raw mode and the alternate screen while the dashboard runs,
//! restored by a drop guard on every way out, and by a panic hook before the
//! panic message is printed (so that it is readable). SIGTERM and SIGHUP
//! would end the process with the terminal still raw: while a guard exists
//! they only raise a flag ([`TerminalGuard::signalled`]), and the UI loop
//! quits as on `q`, through the guard. (Ctrl-C is a key in raw mode.)

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;
use signal_hook::consts::{SIGHUP, SIGTERM};
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};

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

    /// The SIGTERM or SIGHUP received since the first guard was made, if any.
    pub fn signalled(&self) -> Option<i32> {
        let sig = SIGNALLED.get().map_or(0, |f| f.load(Ordering::Relaxed));
        (sig != 0).then_some(sig as i32)
    }
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
