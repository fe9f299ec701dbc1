//! Starting a command so that sampling begins exactly at its exec.

use seam_profiler::Error;
use std::ffi::CString;
use std::io;

/// A forked child that waits, before its exec, until [`Child::release`].
pub struct Child {
    pub pid: u32,
    go: libc::c_int,
}

impl Child {
    /// Forks; the child blocks on a pipe, then execs `argv` (searching PATH).
    pub fn spawn_paused(argv: &[String]) -> Result<Child, Error> {
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
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::io("pipe", io::Error::last_os_error(), None));
        }
        let msg = format!("seam: cannot run {program:?}: command not found or not executable\n");
        // SAFETY: after fork the child only calls async-signal-safe functions
        // (read, execvp, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io("fork", io::Error::last_os_error(), None));
        }
        if pid == 0 {
            unsafe {
                libc::close(fds[1]);
                let mut b = 0u8;
                let n = libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
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

impl Drop for Child {
    fn drop(&mut self) {
        // Closing the pipe without a byte makes an unreleased child exit at once.
        if self.go >= 0 {
            // SAFETY: closing our pipe end.
            unsafe { libc::close(self.go) };
        }
    }
}
