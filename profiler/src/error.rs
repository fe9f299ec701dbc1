use std::io;

/// Everything that can stop seam's core from recording.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no process with pid {0}; check the pid with `ps -p {0}`")]
    NoSuchProcess(u32),
    #[error("{what}: permission denied; run seam as root (sudo), or set kernel.perf_event_paranoid to -1 (sysctl -w kernel.perf_event_paranoid=-1) and give seam CAP_SYS_PTRACE")]
    PermissionDenied { what: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// Wraps an I/O error, turning EPERM/EACCES into [`Error::PermissionDenied`]
    /// and ESRCH into [`Error::NoSuchProcess`] when the pid is known.
    pub fn io(what: impl Into<String>, source: io::Error, pid: Option<u32>) -> Error {
        let what = what.into();
        match (source.raw_os_error(), pid) {
            (Some(libc::EPERM) | Some(libc::EACCES), _) => Error::PermissionDenied { what },
            (Some(libc::ESRCH), Some(pid)) => Error::NoSuchProcess(pid),
            _ => Error::Io { what, source },
        }
    }
}
