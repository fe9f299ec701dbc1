//! One perf ring buffer: the kernel writes at `data_head`, we read up to it and
//! publish `data_tail`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};

pub(super) struct Ring {
    fd: RawFd,
    base: *mut u8,
    len: usize,
    data_offset: usize,
    data_size: usize,
    /// Scratch space for records that wrap around the end of the buffer.
    scratch: Vec<u8>,
}

// SAFETY: the mapping is owned by this Ring alone and only touched through &mut self.
unsafe impl Send for Ring {}

impl Ring {
    pub(super) fn new(fd: &OwnedFd, pages: usize) -> io::Result<Ring> {
        let page = super::page_size();
        let len = (pages + 1) * page;
        // SAFETY: mapping a perf event fd as documented in perf_event_open(2).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let meta = base as *const perf_event_open_sys::bindings::perf_event_mmap_page;
        // SAFETY: the first page is the metadata page, valid for the mapping's lifetime.
        let (mut data_offset, mut data_size) =
            unsafe { ((*meta).data_offset as usize, (*meta).data_size as usize) };
        if data_size == 0 {
            data_offset = page;
            data_size = pages * page;
        }
        Ok(Ring {
            fd: fd.as_raw_fd(),
            base: base as *mut u8,
            len,
            data_offset,
            data_size,
            scratch: Vec::new(),
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd
    }

    fn head_tail(&self) -> (*mut u64, *mut u64) {
        let meta = self.base as *mut perf_event_open_sys::bindings::perf_event_mmap_page;
        // SAFETY: meta points at the mapped metadata page.
        unsafe {
            (
                std::ptr::addr_of_mut!((*meta).data_head),
                std::ptr::addr_of_mut!((*meta).data_tail),
            )
        }
    }

    /// Calls `handle(type, misc, body)` for each complete record.
    pub(super) fn drain(&mut self, mut handle: impl FnMut(u32, u16, &[u8])) {
        let (head_ptr, tail_ptr) = self.head_tail();
        // SAFETY: volatile reads/writes of the kernel-shared head and tail words.
        let head = unsafe { std::ptr::read_volatile(head_ptr) };
        fence(Ordering::Acquire);
        let mut tail = unsafe { std::ptr::read_volatile(tail_ptr) };
        // SAFETY: data area is [data_offset, data_offset + data_size) of our mapping.
        let data =
            unsafe { std::slice::from_raw_parts(self.base.add(self.data_offset), self.data_size) };
        while tail + 8 <= head {
            let start = (tail % self.data_size as u64) as usize;
            let mut header = [0u8; 8];
            copy_wrapping(data, start, &mut header);
            let ty = u32::from_le_bytes(header[0..4].try_into().unwrap());
            let misc = u16::from_le_bytes(header[4..6].try_into().unwrap());
            let size = u16::from_le_bytes(header[6..8].try_into().unwrap()) as usize;
            if size < 8 || tail + size as u64 > head {
                break;
            }
            let body_start = (start + 8) % self.data_size;
            let body_len = size - 8;
            if body_start + body_len <= self.data_size {
                handle(ty, misc, &data[body_start..body_start + body_len]);
            } else {
                self.scratch.resize(body_len, 0);
                copy_wrapping(data, body_start, &mut self.scratch);
                handle(ty, misc, &self.scratch);
            }
            tail += size as u64;
        }
        fence(Ordering::Release);
        // SAFETY: publishing how far we have read.
        unsafe { std::ptr::write_volatile(tail_ptr, tail) };
    }
}

fn copy_wrapping(data: &[u8], start: usize, out: &mut [u8]) {
    let first = (data.len() - start).min(out.len());
    out[..first].copy_from_slice(&data[start..start + first]);
    let rest = out.len() - first;
    out[first..].copy_from_slice(&data[..rest]);
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping the region mapped in `new`.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}
