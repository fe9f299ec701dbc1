//! Starting a command so that sampling begins exactly at its exec.

use seam_profiler::Error;
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// A forked child that waits, before its exec, until [`Child::release`].
pub struct Child {
    pub pid: u32,
    go: libc::c_int,
}

impl Child {
    /// Forks; the child blocks on a pipe, then execs `argv` (searching PATH).
    /// With `output`, the child's standard output and error are appended to
    /// that file and its standard input is /dev/null. With `nice`, the child
    /// takes that niceness before its exec: seam raises its own reader's
    /// priority, and the command must run as it would without seam.
    pub fn spawn_paused(
        argv: &[String],
        output: Option<&Path>,
        nice: Option<i32>,
    ) -> Result<Child, Error> {
        let program = argv
            .first()
            .ok_or_else(|| Error::Unsupported("no command given".into()))?;
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                Error::Unsupported("command arguments may not contain NUL bytes".into())
            })?;
        let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        // Opened before the fork: the child may only make async-signal-safe calls.
        let redirect = match output {
            Some(path) => {
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::io(format!("opening {}", path.display()), e, None))?;
                let null = std::fs::File::open("/dev/null")
                    .map_err(|e| Error::io("opening /dev/null", e, None))?;
                Some((out, null))
            }
            None => None,
        };
        let redirect_fds = redirect
            .as_ref()
            .map(|(out, null)| (out.as_raw_fd(), null.as_raw_fd()));
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::io("pipe", io::Error::last_os_error(), None));
        }
        let msg = format!("seam: cannot run {program:?}: command not found or not executable\n");
        // SAFETY: after fork the child only calls async-signal-safe functions
        // (read, setpriority, execvp, write, _exit) on memory prepared before
        // the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io("fork", io::Error::last_os_error(), None));
        }
        if pid == 0 {
            unsafe {
                libc::close(fds[1]);
                let mut b = 0u8;
                let n = libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
                if let Some((out, null)) = redirect_fds {
                    libc::dup2(null, 0);
                    libc::dup2(out, 1);
                    libc::dup2(out, 2);
                }
                if let Some(nice) = nice {
                    libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                }
                if n == 1 {
                    libc::execvp(ptrs[0], ptrs.as_ptr());
                    libc::write(2, msg.as_ptr().cast(), msg.len());
                }
                libc::_exit(127);
            }
        }
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(fds[0]) };
        Ok(Child {
            pid: pid as u32,
            go: fds[1],
        })
    }

    /// Lets the child exec.
    pub fn release(&mut self) {
        if self.go >= 0 {
            // SAFETY: writing one byte to our pipe, then closing it.
            unsafe {
                libc::write(self.go, b"g".as_ptr().cast(), 1);
                libc::close(self.go);
            }
            self.go = -1;
        }
    }

    /// The exit status if the child has ended (reaping it), else None.
    pub fn try_wait(&self) -> Option<i32> {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
        if r == self.pid as i32 {
            Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            })
        } else {
            None
        }
    }
}

impl Child {
    /// Ends the child: SIGTERM, then SIGKILL if it is still running after
    /// `grace`. Returns its exit status once reaped.
    pub fn end(&self, grace: Duration) -> Option<i32> {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        let mut status = 0;
        // SAFETY: a blocking waitpid on our own child, which SIGKILL ends.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
        (r == self.pid as i32).then_some(128 + libc::SIGKILL)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Closing the pipe without a byte makes an unreleased child exit at once.
        if self.go >= 0 {
            // SAFETY: closing our pipe end.
            unsafe { libc::close(self.go) };
        }
    }
}
