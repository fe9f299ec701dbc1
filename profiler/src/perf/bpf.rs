//! Counting uprobes through BPF `uprobe_multi` links (Linux 6.6 and later).
//!
//! Why not perf's uprobe events, where the kernel has these: a perf uprobe
//! event counts one thread or one CPU, so a process needs one event per CPU
//! for all processes, and the kernel takes its breakpoints out only once the
//! last of them is closed, each close waiting for grace periods (80-90 ms
//! here, one after another). A probe disarmed by the duty cycle kept trapping,
//! uncounted, for that long, and a breakpoint sat in every process that maps
//! the file. A `uprobe_multi` link is one per probe, filtered by the kernel to
//! the target's process: its breakpoints go in that process only, and leave it
//! as the link is closed (the grace period comes after).
//!
//! Each hit runs a small program of ours that writes a record into one BPF
//! ring buffer: the probe's id (the link's cookie), pid and tid, the
//! CLOCK_MONOTONIC time, and for a capturing probe the second argument
//! register and the return address. A hit that finds the ring full is counted
//! in a one-entry array instead, and reported as lost. Nothing is written to
//! the target; the programs only read its registers and the word at its stack
//! pointer.
//!
//! The programs are assembled here, a few dozen instructions, rather than
//! compiled: libbpf-rs would need clang and libelf to build seam, and aya a
//! nightly toolchain with bpf-linker (see the README).

use super::uprobe::{CallArgs, EventId, Hit, Probe};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

// bpf(2) commands, map and program types (include/uapi/linux/bpf.h).
const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_PROG_LOAD: i32 = 5;
const BPF_LINK_CREATE: i32 = 28;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_TRACE_UPROBE_MULTI: u32 = 48;

// Helpers the programs call.
const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_KTIME_GET_NS: i32 = 5;
const FN_GET_CURRENT_PID_TGID: i32 = 14;
const FN_PROBE_READ_USER: i32 = 112;
const FN_RINGBUF_RESERVE: i32 = 131;
const FN_RINGBUF_SUBMIT: i32 = 132;
const FN_GET_ATTACH_COOKIE: i32 = 174;
/// `bpf_ringbuf_submit` without waking a reader: seam reads on its own
/// schedule, and a wake-up per hit would cost the target an interrupt.
const BPF_RB_NO_WAKEUP: i32 = 1;

/// Offsets in x86-64's `struct pt_regs`, the programs' context.
const PT_REGS_SI: i16 = 13 * 8;
const PT_REGS_SP: i16 = 19 * 8;

/// A record: cookie, pid_tgid, time, and for a capturing probe rsi and [rsp].
const PLAIN_RECORD: i32 = 24;
const CAPTURE_RECORD: i32 = 40;

/// The ring's size: a capturing hit takes 48 bytes with its header, and a
/// tight loop of ctypes calls makes 400,000 a second, so a reader starved of
/// CPU has about 1.5 s before hits are lost.
const RING_BYTES: u32 = 32 << 20;

/// The kernel's ring buffer header bits (`BPF_RINGBUF_*_BIT`).
const RINGBUF_BUSY: u32 = 1 << 31;
const RINGBUF_DISCARD: u32 = 1 << 30;
const RINGBUF_HEADER: usize = 8;

/// One BPF instruction, as `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Insn {
    code: u8,
    /// dst in the low four bits, src in the high four.
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// The few instruction forms the programs use (BPF_ALU64 | BPF_MOV | BPF_X
// and so on, spelled as their opcodes).
fn mov_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
fn add_imm(dst: u8, imm: i32) -> Insn {
    insn(0x07, dst, 0, 0, imm)
}
fn load_u64(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x79, dst, src, off, 0)
}
fn store_u64(dst: u8, off: i16, src: u8) -> Insn {
    insn(0x7b, dst, src, off, 0)
}
fn store_u32_imm(dst: u8, off: i16, imm: i32) -> Insn {
    insn(0x62, dst, 0, off, imm)
}
fn atomic_add_u64(dst: u8, off: i16, src: u8) -> Insn {
    insn(0xdb, dst, src, off, 0)
}
fn call(helper: i32) -> Insn {
    insn(0x85, 0, 0, 0, helper)
}
/// Skips `off` instructions when `dst` is zero.
fn jump_if_zero(dst: u8, off: i16) -> Insn {
    insn(0x15, dst, 0, off, 0)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}
/// `dst = map` (a 64-bit load of a map's fd, which the kernel resolves).
fn load_map(dst: u8, map: RawFd) -> [Insn; 2] {
    [insn(0x18, dst, 1, 0, map), insn(0, 0, 0, 0, 0)]
}

/// The program run at each hit: a record into `ring`, or one more in `lost`.
fn program(ring: RawFd, lost: RawFd, capture: bool) -> Vec<Insn> {
    let size = if capture {
        CAPTURE_RECORD
    } else {
        PLAIN_RECORD
    };
    let mut p = vec![mov_reg(6, 1)];
    p.extend(load_map(1, ring));
    p.extend([mov_imm(2, size), mov_imm(3, 0), call(FN_RINGBUF_RESERVE)]);
    let full_at = p.len();
    p.push(jump_if_zero(0, 0)); // to `full`, set below
    p.extend([
        mov_reg(7, 0),
        mov_reg(1, 6),
        call(FN_GET_ATTACH_COOKIE),
        store_u64(7, 0, 0),
        call(FN_GET_CURRENT_PID_TGID),
        store_u64(7, 8, 0),
        call(FN_KTIME_GET_NS),
        store_u64(7, 16, 0),
    ]);
    if capture {
        // rsi, then the word at rsp (zero when unreadable: the helper
        // clears what it could not read).
        p.extend([
            load_u64(1, 6, PT_REGS_SI),
            store_u64(7, 24, 1),
            mov_reg(1, 7),
            add_imm(1, 32),
            mov_imm(2, 8),
            load_u64(3, 6, PT_REGS_SP),
            call(FN_PROBE_READ_USER),
        ]);
    }
    p.extend([
        mov_reg(1, 7),
        mov_imm(2, BPF_RB_NO_WAKEUP),
        call(FN_RINGBUF_SUBMIT),
        mov_imm(0, 0),
        exit(),
    ]);
    let full = p.len();
    p[full_at].off = (full - full_at - 1) as i16;
    p.extend([store_u32_imm(10, -4, 0)]);
    p.extend(load_map(1, lost));
    p.extend([
        mov_reg(2, 10),
        add_imm(2, -4),
        call(FN_MAP_LOOKUP_ELEM),
        jump_if_zero(0, 2),
        mov_imm(1, 1),
        atomic_add_u64(0, 0, 1),
        mov_imm(0, 0),
        exit(),
    ]);
    p
}

fn sys_bpf<T>(cmd: i32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is the `union bpf_attr` member `cmd` reads, zeroed past
    // its fields, and lives across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sys_bpf_fd<T>(cmd: i32, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

fn create_map(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    sys_bpf_fd(
        BPF_MAP_CREATE,
        &mut MapCreate {
            map_type,
            key_size,
            value_size,
            max_entries,
        },
    )
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Loads a program for `uprobe_multi` links; on failure, the error carries
/// the verifier's last words.
fn load_program(insns: &[Insn], name: &str) -> io::Result<OwnedFd> {
    // The helpers that read user memory are for GPL-compatible programs.
    let license = c"Dual MIT/GPL";
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut log = vec![0u8; 1 << 16];
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_KPROBE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        expected_attach_type: BPF_TRACE_UPROBE_MULTI,
        ..Default::default()
    };
    match sys_bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(fd),
        Err(e)
            if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let again = sys_bpf_fd(BPF_PROG_LOAD, &mut attr);
            let text =
                String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)])
                    .trim()
                    .lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" / ");
            again.map_err(|e| io::Error::new(e.kind(), format!("{e}: {text}")))
        }
        Err(e) => Err(e),
    }
}

#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    /// Written out: the kernel refuses an attr whose bytes past the fields
    /// it knows are not zero, and padding is not zeroed.
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The probes of one process: two programs (plain and capturing), their ring
/// and their count of lost hits.
pub struct BpfProbes {
    pid: u32,
    plain: OwnedFd,
    capture: OwnedFd,
    ring: BpfRing,
    lost: OwnedFd,
    lost_seen: u64,
    next_id: AtomicU64,
}

impl BpfProbes {
    /// Loads the programs for probes that count `pid`'s hits only. Fails on
    /// kernels without `uprobe_multi` or without the privilege for BPF.
    pub fn new(pid: u32) -> io::Result<BpfProbes> {
        let ring_map = create_map(BPF_MAP_TYPE_RINGBUF, 0, 0, RING_BYTES)?;
        let lost = create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 1)?;
        let plain = load_program(
            &program(ring_map.as_raw_fd(), lost.as_raw_fd(), false),
            "seam_hit",
        )?;
        let capture = load_program(
            &program(ring_map.as_raw_fd(), lost.as_raw_fd(), true),
            "seam_hit_call",
        )?;
        let ring = BpfRing::new(ring_map, RING_BYTES as usize)?;
        Ok(BpfProbes {
            pid,
            plain,
            capture,
            ring,
            lost,
            lost_seen: 0,
            next_id: AtomicU64::new(1),
        })
    }

    /// Attaches one probe: its breakpoint goes into the process's text now
    /// (and into mappings of the file it makes later), and leaves it when the
    /// returned link is closed.
    pub fn arm(&self, probe: &Probe) -> io::Result<(EventId, OwnedFd)> {
        let path = CString::new(probe.path.as_str())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (offsets, cookies) = ([probe.file_offset], [id]);
        let prog = if probe.capture {
            &self.capture
        } else {
            &self.plain
        };
        let mut attr = LinkCreate {
            prog_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_TRACE_UPROBE_MULTI,
            path: path.as_ptr() as u64,
            offsets: offsets.as_ptr() as u64,
            cookies: cookies.as_ptr() as u64,
            cnt: 1,
            pid: self.pid,
            ..Default::default()
        };
        let link = sys_bpf_fd(BPF_LINK_CREATE, &mut attr);
        // The kernel read the path, offset and cookie through the addresses
        // in `attr`: they must be in memory until the call has returned.
        std::hint::black_box((&path, &offsets, &cookies));
        let link = link?;
        Ok((id, link))
    }

    /// Hands every hit waiting in the ring to `hit`, and hits lost to a full
    /// ring since the last call to `lost`.
    pub fn drain(&mut self, mut hit: impl FnMut(Hit), mut lost: impl FnMut(u64)) {
        // Every hit is the target's: the kernel runs a link's program for
        // its process only. The record's ids are the initial pid
        // namespace's, which inside a container are not the ones seam knows
        // the target by; the thread ids only tell threads apart.
        let pid = self.pid;
        self.ring.drain(|body| {
            if let Some(h) = parse_hit(body) {
                hit(Hit { pid, ..h });
            }
        });
        let (key, mut value) = (0u32, 0u64);
        let mut attr = MapElem {
            map_fd: self.lost.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &mut value as *mut u64 as u64,
            ..Default::default()
        };
        let read = sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr);
        // As in `arm`: the kernel used the addresses in `attr`.
        std::hint::black_box(&key);
        let value = std::hint::black_box(value);
        if read.is_ok() && value > self.lost_seen {
            lost(value - self.lost_seen);
            self.lost_seen = value;
        }
    }
}

/// A hit from a record written by [`program`].
fn parse_hit(body: &[u8]) -> Option<Hit> {
    let u64_at = |i: usize| super::u64_at(body, i);
    let pid_tgid = u64_at(8)?;
    let call = match (u64_at(24), u64_at(32)) {
        (Some(arg1), Some(ret)) if ret != 0 => Some(CallArgs { arg1, ret }),
        _ => None,
    };
    Some(Hit {
        id: u64_at(0)?,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        time_ns: u64_at(16)?,
        call,
    })
}

/// A BPF ring buffer mapped for reading: the consumer position (ours to
/// write) on one page, then the producer position and the data, mapped twice
/// in a row by the kernel so that a record is contiguous even where it wraps.
struct BpfRing {
    _map: OwnedFd,
    consumer: *mut u8,
    producer: *mut u8,
    size: usize,
    page: usize,
}

// SAFETY: the mappings are owned by this ring alone and only read or written
// through &mut self.
unsafe impl Send for BpfRing {}

impl BpfRing {
    fn new(map: OwnedFd, size: usize) -> io::Result<BpfRing> {
        let page = super::page_size();
        let map_at = |len: usize, prot: i32, offset: usize| {
            // SAFETY: mapping a ring buffer map as the kernel lays it out.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    libc::MAP_SHARED,
                    map.as_raw_fd(),
                    offset as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                Err(io::Error::last_os_error())
            } else {
                Ok(p as *mut u8)
            }
        };
        let consumer = map_at(page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = match map_at(page + 2 * size, libc::PROT_READ, page) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: unmapping what was just mapped.
                unsafe { libc::munmap(consumer as *mut libc::c_void, page) };
                return Err(e);
            }
        };
        Ok(BpfRing {
            _map: map,
            consumer,
            producer,
            size,
            page,
        })
    }

    fn drain(&mut self, mut record: impl FnMut(&[u8])) {
        // SAFETY: both positions are naturally aligned u64s in the mappings,
        // which live as long as self; the kernel writes the producer's.
        let (consumer, producer) = unsafe {
            (
                &*(self.consumer as *const AtomicU64),
                &*(self.producer as *const AtomicU64),
            )
        };
        let mut at = consumer.load(Ordering::Relaxed);
        let end = producer.load(Ordering::Acquire);
        let data = self.producer.wrapping_add(self.page);
        while at < end {
            let offset = (at as usize) & (self.size - 1);
            // SAFETY: the header is an aligned u32 within the data mapping.
            let header =
                unsafe { &*(data.add(offset) as *const AtomicU32) }.load(Ordering::Acquire);
            if header & RINGBUF_BUSY != 0 {
                break;
            }
            let len = (header & !(RINGBUF_BUSY | RINGBUF_DISCARD)) as usize;
            if header & RINGBUF_DISCARD == 0 && len <= self.size {
                // SAFETY: the record lies within the doubled data mapping.
                let body =
                    unsafe { std::slice::from_raw_parts(data.add(offset + RINGBUF_HEADER), len) };
                record(body);
            }
            at += ((len + RINGBUF_HEADER + 7) & !7) as u64;
            consumer.store(at, Ordering::Release);
        }
    }
}

impl Drop for BpfRing {
    fn drop(&mut self) {
        // SAFETY: unmapping the ring's own mappings, once.
        unsafe {
            libc::munmap(self.consumer as *mut libc::c_void, self.page);
            libc::munmap(
                self.producer as *mut libc::c_void,
                self.page + 2 * self.size,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_the_hit_and_the_call() {
        let words = |ws: &[u64]| ws.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        // cookie, pid_tgid (tgid high), time.
        let h = parse_hit(&words(&[7, (42 << 32) | 43, 1000])).unwrap();
        assert_eq!(
            (h.id, h.pid, h.tid, h.time_ns, h.call),
            (7, 42, 43, 1000, None)
        );
        let h = parse_hit(&words(&[7, (42 << 32) | 43, 1000, 0x7f00, 0x5555])).unwrap();
        assert_eq!(
            h.call,
            Some(CallArgs {
                arg1: 0x7f00,
                ret: 0x5555
            })
        );
        // The return address could not be read; a cut record.
        assert_eq!(parse_hit(&words(&[7, 1, 2, 0x7f00, 0])).unwrap().call, None);
        assert!(parse_hit(&words(&[7, 1])).is_none());
    }

    /// A probed function of this test binary: the second argument is what a
    /// capturing probe reads.
    #[inline(never)]
    extern "C" fn probed(_first: u64, second: u64) -> u64 {
        std::hint::black_box(second)
    }

    fn call_probed(from: u64, n: u64) {
        for i in from..from + n {
            std::hint::black_box(probed(0, i));
        }
    }

    #[test]
    fn a_link_counts_its_process_hits_and_stops_once_closed() {
        let mut probes = match BpfProbes::new(std::process::id()) {
            Ok(p) => p,
            Err(e) => {
                crate::python::tests_support::require_or_skip(&format!(
                    "BPF uprobe_multi links are unavailable here (root and Linux 6.6+ needed): {e}"
                ));
                return;
            }
        };
        let (path, file_offset) =
            crate::probes::own_file_offset(probed as *const () as usize).unwrap();
        let probe = Probe {
            path,
            file_offset,
            capture: true,
        };
        let (id, link) = probes.arm(&probe).unwrap();
        call_probed(0, 1000);
        let other = std::thread::spawn(|| {
            call_probed(1000, 500);
            // SAFETY: gettid has no preconditions.
            unsafe { libc::gettid() as u32 }
        })
        .join()
        .unwrap();
        // SAFETY: as above.
        let me = unsafe { libc::gettid() as u32 };
        let mut hits = Vec::new();
        let mut lost = 0;
        probes.drain(|h| hits.push(h), |n| lost += n);
        assert_eq!(lost, 0);
        assert_eq!(hits.len(), 1500, "one hit per call");
        let mut args: Vec<u64> = hits.iter().map(|h| h.call.unwrap().arg1).collect();
        args.sort();
        assert_eq!(args, (0..1500).collect::<Vec<u64>>());
        for h in &hits {
            assert_eq!((h.id, h.pid), (id, std::process::id()));
            let want_tid = if h.call.unwrap().arg1 < 1000 {
                me
            } else {
                other
            };
            assert_eq!(h.tid, want_tid);
        }
        // One call site per thread: one return address each.
        let rets: std::collections::HashSet<u64> =
            hits.iter().map(|h| h.call.unwrap().ret).collect();
        assert!(rets.len() <= 2 && !rets.contains(&0), "{rets:x?}");
        assert!(hits
            .windows(2)
            .filter(|w| w[0].tid == w[1].tid)
            .all(|w| w[0].time_ns <= w[1].time_ns));
        // Closed, the breakpoint is gone at once: no grace period to wait.
        drop(link);
        call_probed(0, 100);
        let mut after = 0;
        probes.drain(|_| after += 1, |_| {});
        assert_eq!(after, 0, "hits after the link was closed");
    }

    #[test]
    fn the_programs_jump_to_their_ends() {
        for capture in [false, true] {
            let p = program(3, 4, capture);
            assert_eq!(p.last(), Some(&exit()));
            // Every jump lands inside the program, on an instruction that is
            // not the second half of a 64-bit load.
            for (i, ins) in p.iter().enumerate().filter(|(_, ins)| ins.code == 0x15) {
                let to = i + 1 + ins.off as usize;
                assert!(to < p.len(), "{capture}: jump at {i} to {to}");
                assert_ne!(p[to - 1].code, 0x18, "{capture}: jump at {i} into a load");
            }
        }
    }
}
