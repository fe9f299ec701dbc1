//! Reading the target's memory without stopping it or writing to it.

use std::io;

/// Reads bytes of another address space. Implemented by [`ProcessMemory`]
/// for a live process and by byte buffers in tests.
pub trait ReadMemory {
    /// Fills `buf` from `addr`, or fails without a partial result.
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()>;

    fn read_u64(&self, addr: u64) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_u32(&self, addr: u64) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn read_vec(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }
}

/// A sample's copy of the stack (from `base`) where it holds a whole read,
/// the live process elsewhere: the stack as it was at the sample, the rest as
/// it is now. CPython 3.11 and 3.12 keep each eval loop's current frame in a
/// `_PyCFrame` on the C stack, updated at each Python call, so the Python
/// stack read through it starts at the frame the sample caught, even when the
/// thread has called further since.
pub struct WithStackCopy<'a, M> {
    pub base: u64,
    pub copy: &'a [u8],
    pub live: &'a M,
}

impl<M: ReadMemory> ReadMemory for WithStackCopy<'_, M> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        let held = addr
            .checked_sub(self.base)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| self.copy.get(off..off.checked_add(buf.len())?));
        match held {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => self.live.read(addr, buf),
        }
    }
}

/// A live process read with `process_vm_readv` (needs ptrace access: root, or
/// CAP_SYS_PTRACE, or the same user with `kernel.yama.ptrace_scope` 0).
#[derive(Clone, Copy, Debug)]
pub struct ProcessMemory {
    pub pid: u32,
}

impl ReadMemory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: both iovecs describe valid lengths; the local one points at `buf`,
        // which we own mutably; the remote one is only read by the kernel.
        let n =
            unsafe { libc::process_vm_readv(self.pid as libc::pid_t, &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short read of target memory",
            ));
        }
        Ok(())
    }
}

/// A slice of memory that starts at `base`, for tests and for stack copies.
#[derive(Clone, Copy, Debug)]
pub struct SliceMemory<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
}

impl ReadMemory for SliceMemory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = addr.checked_sub(self.base).map(|o| o as usize);
        match start.and_then(|s| self.bytes.get(s..s.checked_add(buf.len())?)) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "address outside the buffer",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let value: u64 = 0x1122_3344_5566_7788;
        let mem = ProcessMemory {
            pid: std::process::id(),
        };
        assert_eq!(mem.read_u64(&value as *const u64 as u64).unwrap(), value);
        assert!(mem.read_u64(8).is_err());
    }

    #[test]
    fn slice_bounds() {
        let bytes = [1u8, 0, 0, 0, 2, 0, 0, 0];
        let m = SliceMemory {
            base: 0x1000,
            bytes: &bytes,
        };
        assert_eq!(m.read_u32(0x1004).unwrap(), 2);
        assert!(m.read_u32(0x1006).is_err());
        assert!(m.read_u32(0xfff).is_err());
    }
}
