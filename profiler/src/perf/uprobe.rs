//! Counting uprobes: through BPF `uprobe_multi` links where the kernel has
//! them (see [`super::bpf`]), else through the uprobe PMU (no tracefs needed).
//!
//! [`PerfProbes`] opens one sampling event per (site, CPU) for all processes
//! (pid -1), writing a small record per hit into one ring per CPU; the reader
//! keeps the target's hits and counts the others. Why not per thread: opening
//! a uprobe event costs 10-20 ms and closing one 60-80 ms here (each waits for
//! an RCU grace period), so one event per (site, thread) cannot keep up with a
//! target that starts threads, and a thread's first calls would be missed.
//! Never `inherit`: an inherited uprobe event re-reads its path pointer in the
//! target's address space when the target creates a thread, and the target's
//! `clone()` fails with EFAULT (measured: Go aborts in `pthread_create`).
//! The cost of pid -1: another process that maps the same file (another
//! Python of the same build calling a ctypes callback) hits the breakpoint too;
//! those hits are counted and reported.

use super::bpf::BpfProbes;
use super::ring::Ring;
use super::{open_event, set_output, u64_at};
use perf_event_open_sys::bindings as sys;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The uprobe PMU's type number, from sysfs.
pub fn uprobe_pmu_type() -> io::Result<u32> {
    let text = std::fs::read_to_string("/sys/bus/event_source/devices/uprobe/type")?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "uprobe/type is not a number"))
}

/// An id the kernel gives an event (PERF_EVENT_IOC_ID), carried by its samples.
pub type EventId = u64;

/// The probes' rings share 128 MiB (16 MiB a CPU on up to 8 CPUs): a
/// dispatcher's hit is a record of about 100 bytes, and a tight loop of
/// ctypes calls makes 400,000 a second, so a reader starved of CPU on a busy
/// machine has about 0.4 s before the kernel drops hits (1 MiB gave it 25 ms).
fn ring_pages() -> usize {
    super::ring_pages_sharing(128 << 20)
}

/// The probes of one process, and how they are made.
pub struct UprobeSet {
    backend: Backend,
}

enum Backend {
    Bpf(BpfProbes),
    Perf(PerfProbes),
}

/// Which probes [`UprobeSet::new`] makes: `SEAM_PROBES=perf` asks for perf's
/// uprobe events even where BPF links work (to compare the two).
const PROBES_ENV: &str = "SEAM_PROBES";

impl UprobeSet {
    /// Probes that count the hits of process `pid`: BPF `uprobe_multi` links
    /// where the kernel allows them, else perf uprobe events (which also see
    /// other processes' hits, reported apart). Returns, beside the set, why
    /// BPF was not used.
    pub fn new(pid: u32) -> io::Result<(UprobeSet, Option<String>)> {
        let why_not_bpf = if std::env::var(PROBES_ENV).as_deref() == Ok("perf") {
            format!("{PROBES_ENV}=perf")
        } else {
            match BpfProbes::new(pid) {
                Ok(bpf) => {
                    let backend = Backend::Bpf(bpf);
                    return Ok((UprobeSet { backend }, None));
                }
                Err(e) => format!("BPF uprobe_multi links are unavailable ({e})"),
            }
        };
        let perf = uprobe_pmu_type().and_then(PerfProbes::new).map_err(|e| {
            io::Error::new(e.kind(), format!("{why_not_bpf}; perf uprobe events: {e}"))
        })?;
        let backend = Backend::Perf(perf);
        Ok((UprobeSet { backend }, Some(why_not_bpf)))
    }

    /// What the probes are, for the summary: `bpf` or `perf`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Bpf(_) => "bpf",
            Backend::Perf(_) => "perf",
        }
    }

    /// Whether closing events side by side is quicker than one after
    /// another: BPF links' closes share the kernel's grace periods (20 closed
    /// from 20 threads in 77 ms here, against 0.9 s in turn), while the kernel
    /// closes perf uprobe events one at a time whatever the number of threads.
    pub fn closes_together(&self) -> bool {
        matches!(self.backend, Backend::Bpf(_))
    }

    /// Arms each probe. Each gets its events (one BPF link, or one perf
    /// event per CPU), or the error that stopped it.
    pub fn arm(&self, probes: &[Probe]) -> Vec<io::Result<Vec<(EventId, OwnedFd)>>> {
        match &self.backend {
            Backend::Bpf(bpf) => probes.iter().map(|p| bpf.arm(p).map(|e| vec![e])).collect(),
            Backend::Perf(perf) => perf.arm(probes),
        }
    }

    /// Hands every hit waiting to `hit`, and the number of hits the kernel
    /// dropped (a full ring) to `lost`.
    pub fn drain(&mut self, hit: impl FnMut(Hit), lost: impl FnMut(u64)) {
        match &mut self.backend {
            Backend::Bpf(bpf) => bpf.drain(hit, lost),
            Backend::Perf(perf) => perf.drain(hit, lost),
        }
    }
}

/// Sampling uprobes on every CPU, all writing into one ring per CPU.
pub struct PerfProbes {
    pmu_type: u32,
    cpus: Vec<u32>,
    rings: Vec<Ring>,
    /// A dummy event per CPU that owns the ring, so probes can come and go.
    _anchors: Vec<OwnedFd>,
}

/// One probe hit: which event, which process and thread, when (CLOCK_MONOTONIC ns).
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    pub id: EventId,
    pub pid: u32,
    pub tid: u32,
    pub time_ns: u64,
    /// For a [`Probe::capture`] probe: the second argument register (rsi)
    /// and the return address at the top of the stack, when the kernel could
    /// read them.
    pub call: Option<CallArgs>,
}

/// What a capturing probe reads at a function's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallArgs {
    /// The second integer argument (System V AMD64: rsi).
    pub arg1: u64,
    /// The caller's return address (the word at rsp).
    pub ret: u64,
}

/// Where to put a probe, and what each hit records.
#[derive(Clone, Debug)]
pub struct Probe {
    pub path: String,
    pub file_offset: u64,
    /// Record the second argument and the return address with each hit
    /// (for dispatchers such as libffi's `ffi_call`, whose second argument
    /// is the function it calls).
    pub capture: bool,
}

/// x86-64 perf register numbers (arch/x86/include/uapi/asm/perf_regs.h).
const PERF_REG_X86_SI: u64 = 4;

impl PerfProbes {
    pub fn new(pmu_type: u32) -> io::Result<PerfProbes> {
        let cpus = super::online_cpus();
        let mut rings = Vec::new();
        let mut anchors = Vec::new();
        for &cpu in &cpus {
            let mut attr = sampling_attr(sys::PERF_TYPE_SOFTWARE, sys::PERF_COUNT_SW_DUMMY as u64);
            let fd = open_event(&mut attr, -1, cpu as i32)?;
            rings.push(Ring::new(&fd, ring_pages())?);
            anchors.push(fd);
        }
        Ok(PerfProbes {
            pmu_type,
            cpus,
            rings,
            _anchors: anchors,
        })
    }

    /// Arms each probe on every CPU, opening the events in parallel. Each
    /// probe gets its events, or the error that stopped it.
    pub fn arm(&self, probes: &[Probe]) -> Vec<io::Result<Vec<(EventId, OwnedFd)>>> {
        let pmu_type = self.pmu_type;
        let opened: Vec<Vec<io::Result<OwnedFd>>> = std::thread::scope(|scope| {
            let handles: Vec<Vec<_>> = probes
                .iter()
                .map(|probe| {
                    self.cpus
                        .iter()
                        .map(|&cpu| {
                            let mode = if probe.capture {
                                Mode::Capture
                            } else {
                                Mode::Sample
                            };
                            scope.spawn(move || {
                                open_uprobe(
                                    pmu_type,
                                    &probe.path,
                                    probe.file_offset,
                                    -1,
                                    cpu as i32,
                                    mode,
                                )
                            })
                        })
                        .collect()
                })
                .collect();
            handles
                .into_iter()
                .map(|hs| {
                    hs.into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err(io::Error::other("open thread panicked")))
                        })
                        .collect()
                })
                .collect()
        });
        opened
            .into_iter()
            .map(|fds| {
                let mut events = Vec::new();
                for (i, fd) in fds.into_iter().enumerate() {
                    let fd = fd?;
                    set_output(&fd, self.rings[i].fd())?;
                    let mut id = 0u64;
                    // SAFETY: PERF_EVENT_IOC_ID writes the event's id into `id`.
                    if unsafe { perf_event_open_sys::ioctls::ID(fd.as_raw_fd(), &mut id) } < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    events.push((id, fd));
                }
                Ok(events)
            })
            .collect()
    }

    /// Hands every hit waiting in the rings to `hit`, and the number of hits
    /// the kernel dropped (a full ring) to `lost`.
    pub fn drain(&mut self, mut hit: impl FnMut(Hit), mut lost: impl FnMut(u64)) {
        for ring in &mut self.rings {
            ring.drain(|ty, _misc, body| {
                let u64_at = |i: usize| u64_at(body, i);
                match ty {
                    sys::PERF_RECORD_SAMPLE => {
                        if let (Some(id), Some(pid_tid), Some(time_ns)) =
                            (u64_at(0), u64_at(8), u64_at(16))
                        {
                            hit(Hit {
                                id,
                                pid: pid_tid as u32,
                                tid: (pid_tid >> 32) as u32,
                                time_ns,
                                call: call_args(body),
                            });
                        }
                    }
                    sys::PERF_RECORD_LOST => lost(u64_at(8).unwrap_or(0)),
                    _ => {}
                }
            });
        }
    }
}

/// The argument and return address of a capturing probe's record: after
/// id, pid/tid and time come the user registers (abi, rsi) and the user
/// stack (size, 8 bytes, dynamic size). None for a plain record, or when the
/// kernel had no user registers or could not read the stack.
fn call_args(body: &[u8]) -> Option<CallArgs> {
    let u64_at = |i: usize| u64_at(body, i);
    let abi = u64_at(24)?;
    if abi == sys::PERF_SAMPLE_REGS_ABI_NONE as u64 {
        return None;
    }
    let arg1 = u64_at(32)?;
    let size = u64_at(40)?;
    let ret = u64_at(48)?;
    let dyn_size = u64_at(48 + size as usize)?;
    (size >= 8 && dyn_size >= 8).then_some(CallArgs { arg1, ret })
}

fn sampling_attr(type_: u32, config: u64) -> sys::perf_event_attr {
    let mut attr = sys::perf_event_attr {
        type_,
        size: std::mem::size_of::<sys::perf_event_attr>() as u32,
        config,
        ..Default::default()
    };
    attr.__bindgen_anon_1.sample_period = 1;
    attr.sample_type =
        (sys::PERF_SAMPLE_IDENTIFIER | sys::PERF_SAMPLE_TID | sys::PERF_SAMPLE_TIME) as u64;
    attr.set_use_clockid(1);
    attr.clockid = libc::CLOCK_MONOTONIC;
    attr.set_exclude_kernel(1);
    attr.set_exclude_hv(1);
    // Read on the recorder's own schedule: no wake-ups.
    attr.set_watermark(1);
    attr.__bindgen_anon_2.wakeup_watermark = (ring_pages() * super::page_size() / 2) as u32;
    attr
}

/// What a uprobe event does with a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Writes a record (id, pid/tid, time).
    Sample,
    /// Writes a record with the second argument and the return address.
    Capture,
}

/// Opens a uprobe on the instruction at `file_offset` in `path`.
fn open_uprobe(
    pmu_type: u32,
    path: &str,
    file_offset: u64,
    pid: i32,
    cpu: i32,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let cpath = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = sampling_attr(pmu_type, 0);
    if mode == Mode::Capture {
        attr.sample_type |= (sys::PERF_SAMPLE_REGS_USER | sys::PERF_SAMPLE_STACK_USER) as u64;
        attr.sample_regs_user = 1 << PERF_REG_X86_SI;
        attr.sample_stack_user = 8;
    }
    // The kernel reads the path during the call only; `cpath` outlives it.
    attr.__bindgen_anon_3.config1 = cpath.as_ptr() as u64;
    attr.__bindgen_anon_4.config2 = file_offset;
    open_event(&mut attr, pid, cpu)
}

/// How the kernel runs a probed instruction, which sets what each hit costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// `push reg`, a relative `call` or `jmp`, a conditional jump: emulated
    /// in the breakpoint handler.
    Emulated,
    /// Anything else: copied out of line and single-stepped, about ten times dearer here.
    SingleStep,
}

/// The kind of a probe on `code`, the bytes from the probed instruction on.
/// The kernel (x86's uprobes) emulates `push` of a register and the relative
/// branches: `call rel32`, `jmp rel8/rel32` and the conditional jumps.
pub fn probe_kind(code: &[u8]) -> ProbeKind {
    match code {
        [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..] => ProbeKind::Emulated,
        [0xe8 | 0xe9 | 0xeb, ..] | [0x70..=0x7f, ..] | [0x0f, 0x80..=0x8f, ..] => {
            ProbeKind::Emulated
        }
        _ => ProbeKind::SingleStep,
    }
}

/// `endbr64`, the landing pad that code built for Intel CET (the default of
/// Ubuntu's and Fedora's compilers) starts each function with.
pub const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// Where seam probes a function, and what a trap there sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbePoint {
    /// Bytes from the function's entry.
    pub offset: usize,
    /// The probed instruction's length: 0 at an entry probed as it is
    /// (single-stepped, or not decoded), which [`AddressSpace::trapped_before_probe`]
    /// then tells by the stack pointer.
    ///
    /// [`AddressSpace::trapped_before_probe`]: crate::modules::AddressSpace::trapped_before_probe
    pub len: usize,
    /// How far the instructions before it moved the stack pointer down.
    pub sp_below_entry: u64,
}

impl ProbePoint {
    const ENTRY: ProbePoint = ProbePoint {
        offset: 0,
        len: 0,
        sp_below_entry: 0,
    };

    /// The stack pointer modulo 16 while the probed instruction has not run:
    /// a call leaves it 8 past a 16-byte boundary (the ABI), and the
    /// instructions before moved it by `sp_below_entry`.
    pub fn sp_mod16_before(&self) -> u64 {
        (8 + 16 - self.sp_below_entry % 16) % 16
    }
}

/// Instructions looked at from a function's entry for one the kernel emulates.
const MAX_LEAD: usize = 32;

/// Where in a function to probe it: the first instruction the kernel
/// emulates ([`probe_kind`]) on the straight line of instructions every call
/// runs from the entry, else the entry. A single-stepped hit cost 19-21 µs
/// on this VM against 0.6-1.3 µs for an emulated one: `endbr64` (which code
/// built for Intel CET starts with) and `sub $N,%rsp` (which a third of
/// rpds-py's PyO3 method trampolines start with, with 17 stores before
/// their `call`) are both single-stepped.
///
/// `code` is the function's bytes from its entry; `whole` says they run to
/// its end. Past an `endbr64`, a `push` is probed without looking further (a
/// loop jumps back to no prologue's `push`); further on only where the whole
/// function is known and no jump in it (direct) lands between its entry and
/// the probed instruction, and it jumps nowhere through a register or memory
/// (a jump table could land there): else a loop would hit the probe again
/// in one call. Only a `push`, a `call` or a `jmp` is probed past the
/// entry: a conditional jump may be a stack check that comes back to the
/// entry (Go's prologue). The instructions before it must not branch or
/// move the stack pointer other than by `sub $N,%rsp` (a trap's samples
/// unwind from the probe by the stack pointer).
pub fn probe_point(code: &[u8], whole: bool) -> ProbePoint {
    if probe_kind(code) == ProbeKind::Emulated {
        return ProbePoint {
            len: insn_len(code).unwrap_or(0),
            ..ProbePoint::ENTRY
        };
    }
    if let Some(rest) = code.strip_prefix(&ENDBR64) {
        if matches!(rest, [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..]) {
            return ProbePoint {
                offset: ENDBR64.len(),
                len: insn_len(rest).unwrap_or(0),
                sp_below_entry: 0,
            };
        }
    }
    if !whole {
        return ProbePoint::ENTRY;
    }
    let Some(point) = straight_line_point(code) else {
        return ProbePoint::ENTRY;
    };
    if jumps_into(code, point.offset) {
        return ProbePoint::ENTRY;
    }
    point
}

/// The length of the instruction `code` starts with.
fn insn_len(code: &[u8]) -> Option<usize> {
    use yaxpeax_arch::{Decoder, LengthedInstruction, U8Reader};
    let insn = yaxpeax_x86::long_mode::InstDecoder::default()
        .decode(&mut U8Reader::new(code))
        .ok()?;
    Some(insn.len().to_const() as usize)
}

/// The first `push`, relative `call` or `jmp` on the straight line from the
/// entry, with the stack pointer's moves before it (see [`probe_point`]).
fn straight_line_point(code: &[u8]) -> Option<ProbePoint> {
    use yaxpeax_arch::{Decoder, LengthedInstruction, U8Reader};
    use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand, RegSpec};
    let decoder = InstDecoder::default();
    let (mut at, mut sp) = (0usize, 0u64);
    for _ in 0..MAX_LEAD {
        let rest = code.get(at..).filter(|r| !r.is_empty())?;
        let insn = decoder.decode(&mut U8Reader::new(rest)).ok()?;
        let len = insn.len().to_const() as usize;
        if at + len > code.len() {
            return None;
        }
        let emulated = matches!(rest, [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..])
            || matches!(rest, [0xe8 | 0xe9 | 0xeb, ..]);
        if emulated {
            return Some(ProbePoint {
                offset: at,
                len,
                sp_below_entry: sp,
            });
        }
        let op = insn.opcode();
        // Writes to the stack pointer: only `sub $N,%rsp` is followed.
        let (rsp, esp) = (RegSpec::rsp(), RegSpec::esp());
        let dest = (insn.operand_count() > 0).then(|| insn.operand(0));
        let first = matches!(dest, Some(Operand::Register { reg }) if reg == rsp || reg == esp);
        let full = matches!(dest, Some(Operand::Register { reg }) if reg == rsp);
        match op {
            Opcode::SUB if first && !full => return None,
            Opcode::SUB if first => match insn.operand(1) {
                Operand::ImmediateI8 { imm } if imm >= 0 => sp += imm as u64,
                Operand::ImmediateI32 { imm } if imm >= 0 => sp += imm as u64,
                _ => return None,
            },
            // Reads and writes of registers and memory that go nowhere.
            Opcode::MOV
            | Opcode::MOVZX
            | Opcode::MOVSX
            | Opcode::MOVSXD
            | Opcode::LEA
            | Opcode::XOR
            | Opcode::ADD
            | Opcode::SUB
            | Opcode::AND
            | Opcode::OR
            | Opcode::SHL
            | Opcode::SHR
            | Opcode::SAR
            | Opcode::MOVAPS
            | Opcode::MOVUPS
            | Opcode::MOVDQA
            | Opcode::MOVDQU
            | Opcode::MOVQ
            | Opcode::MOVD
            | Opcode::MOVSD
            | Opcode::MOVSS
            | Opcode::XORPS
            | Opcode::PXOR
            | Opcode::NOP
                if !first => {}
            // An `endbr64` past the entry marks where an indirect jump may land.
            Opcode::ENDBR64 if at == 0 => {}
            Opcode::CMP | Opcode::TEST => {}
            _ => return None,
        }
        at += len;
    }
    None
}

/// A branch with its target given in the instruction.
struct Branch {
    op: yaxpeax_x86::long_mode::Opcode,
    /// The target, from the start of the code; `None` through a register or
    /// memory.
    to: Option<i64>,
}

/// The branches of `code` (a whole function): jumps, calls, loops and
/// transaction starts. What does not decode (padding, data) is stepped over
/// a byte at a time.
fn branches(code: &[u8]) -> Vec<Branch> {
    use yaxpeax_arch::{Decoder, LengthedInstruction, U8Reader};
    use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand};
    let decoder = InstDecoder::default();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < code.len() {
        let Ok(insn) = decoder.decode(&mut U8Reader::new(&code[at..])) else {
            at += 1;
            continue;
        };
        let len = insn.len().to_const() as usize;
        let op = insn.opcode();
        if op.is_jcc()
            || matches!(
                op,
                Opcode::JMP
                    | Opcode::CALL
                    | Opcode::LOOP
                    | Opcode::LOOPZ
                    | Opcode::LOOPNZ
                    | Opcode::JRCXZ
                    | Opcode::JECXZ
                    | Opcode::XBEGIN
            )
        {
            let rel = match insn.operand(0) {
                Operand::ImmediateI8 { imm } => Some(imm as i64),
                Operand::ImmediateI32 { imm } => Some(imm as i64),
                _ => None,
            };
            out.push(Branch {
                op,
                to: rel.map(|d| (at + len) as i64 + d),
            });
        }
        at += len;
    }
    out
}

/// Whether a jump in the function (`code`, all of it) lands in its first
/// `upto` bytes past the entry, or may (a jump through a register or memory).
fn jumps_into(code: &[u8], upto: usize) -> bool {
    use yaxpeax_x86::long_mode::Opcode;
    // A call into the function's own first bytes (a local subroutine)
    // runs them again too; a transaction's abort lands at its target.
    branches(code).iter().any(|b| match b.to {
        Some(t) => t > 0 && t <= upto as i64,
        // A call through a register or memory returns where it was made.
        None if b.op == Opcode::CALL => false,
        // A jump through a register or memory: a tail call or a jump table.
        None => true,
    })
}

/// The targets of the direct jumps (not calls) in `code`, a whole function
/// at `svma`, that leave it: its tail calls, and where a function that the
/// compiler split continues (see `ObjectInfo::add_partitions`).
pub fn jumps_out(code: &[u8], svma: u64) -> Vec<u64> {
    use yaxpeax_x86::long_mode::Opcode;
    let mut out: Vec<u64> = branches(code)
        .iter()
        .filter(|b| b.op == Opcode::JMP || b.op.is_jcc())
        .filter_map(|b| b.to.filter(|&t| t < 0 || t >= code.len() as i64))
        .map(|t| svma.wrapping_add_signed(t))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Where a thread runs on after a probe's trap on `code` (the bytes from the
/// probed instruction on, at `svma`): the target of a probed relative `call`
/// or `jmp`, else the instruction after the probed one (where the trap
/// returns once the kernel has emulated or single-stepped it), and the two
/// after that. A timer interrupt that came due during the trap is taken at the
/// first, or (as this VM delivers it) an instruction or two later: measured
/// with `perf annotate` on a probed cgo wrapper, 72% and 23% of its samples at
/// the first two; on cffi's `_cffi_f_ffib_noop`, 90.9%, 4.0% and 3.8% at the
/// first three and none after them, against none at any of the three
/// unprobed. Up to the first branch (the thread goes elsewhere) or what
/// cannot be decoded.
pub fn trap_return_points(code: &[u8], svma: u64) -> Vec<u64> {
    use yaxpeax_arch::{Decoder, LengthedInstruction, U8Reader};
    use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand};
    let decoder = InstDecoder::default();
    let mut out = Vec::new();
    let mut at = 0usize;
    for _ in 0..3 {
        let Some(rest) = code.get(at..) else {
            break;
        };
        let mut reader = U8Reader::new(rest);
        let Ok(insn) = decoder.decode(&mut reader) else {
            break;
        };
        let op = insn.opcode();
        let branches = op.is_jcc()
            || matches!(
                op,
                Opcode::JMP
                    | Opcode::JMPF
                    | Opcode::CALL
                    | Opcode::CALLF
                    | Opcode::RETURN
                    | Opcode::RETF
                    | Opcode::LOOP
                    | Opcode::LOOPZ
                    | Opcode::LOOPNZ
                    | Opcode::JRCXZ
            );
        let len = insn.len().to_const() as usize;
        if at == 0 && matches!(op, Opcode::CALL | Opcode::JMP) {
            // A probed relative `call` or `jmp` (see [`probe_point`]): the
            // kernel emulates it, and the trap returns at its target.
            if let Operand::ImmediateI8 { imm } = insn.operand(0) {
                out.push(
                    svma.wrapping_add(len as u64)
                        .wrapping_add(imm as i64 as u64),
                );
            } else if let Operand::ImmediateI32 { imm } = insn.operand(0) {
                out.push(
                    svma.wrapping_add(len as u64)
                        .wrapping_add(imm as i64 as u64),
                );
            }
            break;
        }
        at += len;
        if branches || at > code.len() {
            break;
        }
        out.push(svma + at as u64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offset [`probe_point`] picks.
    fn offset(code: &[u8], whole: bool) -> usize {
        probe_point(code, whole).offset
    }

    #[test]
    fn a_cet_function_is_probed_at_its_push() {
        // endbr64; push %rbp
        let cet = [0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48];
        assert_eq!(offset(&cet, false), 4);
        assert_eq!(probe_kind(&cet[4..]), ProbeKind::Emulated);
        // endbr64; push %r15
        assert_eq!(offset(&[0xf3, 0x0f, 0x1e, 0xfa, 0x41, 0x57], false), 4);
        // endbr64; lea 0x1(%rdi),%rax: no better place, the entry
        assert_eq!(offset(&[0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8d], false), 0);
        // push %rbp; no endbr64
        assert_eq!(offset(&[0x55, 0x48, 0x89, 0xe5], false), 0);
        assert_eq!(offset(&[0xf3, 0x0f], false), 0);
    }

    /// rpds-py's PyO3 method trampoline: `sub $0x58,%rsp`, argument
    /// stores, then `call` into PyO3's shared trampoline (its first 11
    /// instructions; the others are like them).
    const SUB_THEN_CALL: &[u8] = &[
        0x48, 0x83, 0xec, 0x58, // sub $0x58,%rsp
        0x48, 0x89, 0x7c, 0x24, 0x08, // mov %rdi,0x8(%rsp)
        0x48, 0x89, 0x74, 0x24, 0x10, // mov %rsi,0x10(%rsp)
        0x48, 0x8d, 0x05, 0xa1, 0x91, 0x00, 0x00, // lea 0x91a1(%rip),%rax
        0x48, 0x89, 0x44, 0x24, 0x28, // mov %rax,0x28(%rsp)
        0x48, 0x8d, 0x7c, 0x24, 0x30, // lea 0x30(%rsp),%rdi
        0xe8, 0x70, 0x68, 0xff, 0xff, // call (rel32)
        0x48, 0x83, 0xc4, 0x58, // add $0x58,%rsp
        0xc3, // ret
    ];

    #[test]
    fn a_function_that_starts_with_sub_is_probed_at_its_first_call() {
        let p = probe_point(SUB_THEN_CALL, true);
        assert_eq!((p.offset, p.len, p.sp_below_entry), (31, 5, 0x58));
        assert_eq!(probe_kind(&SUB_THEN_CALL[31..]), ProbeKind::Emulated);
        // 8 - 0x58 = -80: on a 16-byte boundary before the call.
        assert_eq!(p.sp_mod16_before(), 0);
        // Only where the whole function is known.
        assert_eq!(offset(SUB_THEN_CALL, false), 0);
        // endbr64 first, single-stepped too.
        let cet: Vec<u8> = ENDBR64.iter().chain(SUB_THEN_CALL).copied().collect();
        assert_eq!(offset(&cet, true), 35);
        // A push after the sub.
        let push = [0x48, 0x83, 0xec, 0x08, 0x53, 0xc3];
        let p = probe_point(&push, true);
        assert_eq!((p.offset, p.len, p.sp_mod16_before()), (4, 1, 0));
    }

    #[test]
    fn a_probe_past_the_entry_is_where_every_call_passes_once() {
        // A loop back to the `lea` before the call: the call runs again in
        // one call of the function, so the entry is probed.
        let mut looping = SUB_THEN_CALL[..36].to_vec();
        looping.extend([0x85, 0xc0, 0x75, 0x00]); // test %eax,%eax; jne (below)
        let at = looping.len() as i64;
        looping[at as usize - 1] = (26 - at) as i8 as u8; // back to the lea at 26
        looping.extend([0x48, 0x83, 0xc4, 0x58, 0xc3]);
        assert_eq!(offset(&looping, true), 0);
        // A jump back past the call is no matter.
        looping[at as usize - 1] = (36 - at) as i8 as u8;
        assert_eq!(offset(&looping, true), 31);
        // A jump through memory could land anywhere: the entry.
        let mut table = SUB_THEN_CALL.to_vec();
        table.extend([0xff, 0x24, 0xc5, 0, 0, 0, 0]); // jmp *0x0(,%rax,8)
        assert_eq!(offset(&table, true), 0);
        // A branch before any emulated instruction: Go's stack check
        // (cmp 0x10(%r14),%rsp; jbe), which comes back to the entry.
        let go = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55, 0xc3];
        assert_eq!(offset(&go, true), 0);
        // The stack pointer moved other than by `sub $N`: the entry.
        let and = [0x48, 0x83, 0xe4, 0xf0, 0xe8, 0, 0, 0, 0, 0xc3]; // and $-16,%rsp; call
        assert_eq!(offset(&and, true), 0);
        // An instruction that is not known to go nowhere: the entry.
        let syscall = [0x0f, 0x05, 0xe8, 0, 0, 0, 0, 0xc3];
        assert_eq!(offset(&syscall, true), 0);
        // A call back into the first bytes (a local subroutine): the entry.
        let mut local = SUB_THEN_CALL.to_vec();
        let at = local.len() as i64;
        local.extend([0xe8, 0, 0, 0, 0]);
        local[at as usize + 1..].copy_from_slice(&((4 - (at + 5)) as i32).to_le_bytes());
        assert_eq!(offset(&local, true), 0);
        // A call elsewhere, through memory or not, is no matter.
        let mut calls = SUB_THEN_CALL.to_vec();
        calls.extend([0xff, 0x15, 0, 0, 0, 0, 0xe8, 0, 0x10, 0, 0]);
        assert_eq!(offset(&calls, true), 31);
        // `sub $8,%esp` moves the stack pointer another way: the entry.
        let esp = [0x83, 0xec, 0x08, 0xe8, 0, 0, 0, 0, 0xc3];
        assert_eq!(offset(&esp, true), 0);
        // An `endbr64` past the entry is where an indirect jump lands.
        let mut landing = vec![0x48, 0x83, 0xec, 0x08];
        landing.extend(ENDBR64);
        landing.extend([0xe8, 0, 0, 0, 0, 0xc3]);
        assert_eq!(offset(&landing, true), 0);
    }

    #[test]
    fn a_trap_returns_after_the_probed_instruction() {
        // push %rbp; mov %rsp,%rbp; push %r13 (a cgo wrapper's start)
        let code = [0x55, 0x48, 0x89, 0xe5, 0x41, 0x55];
        assert_eq!(
            trap_return_points(&code, 0x1000),
            vec![0x1001, 0x1004, 0x1006]
        );
        // push %r15; push %r14 (PyO3's trampoline)
        assert_eq!(
            trap_return_points(&[0x41, 0x57, 0x41, 0x56], 0x10),
            vec![0x12, 0x14]
        );
        // sub $0x18,%rsp; mov %rdi,%rax (single-stepped)
        let code = [0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0xf8];
        assert_eq!(trap_return_points(&code, 0), vec![4, 7]);
        // jmp *0x1234(%rip): the thread goes elsewhere
        assert!(trap_return_points(&[0xff, 0x25, 0x34, 0x12, 0, 0], 0).is_empty());
        // A probed `call rel32` (a PyO3 trampoline's, see `probe_point`):
        // the emulated call returns to user space at its target.
        assert_eq!(
            trap_return_points(&[0xe8, 0x10, 0, 0, 0, 0x48], 0x1000),
            vec![0x1015]
        );
        assert_eq!(
            trap_return_points(&[0xe8, 0xf0, 0xff, 0xff, 0xff], 0x1000),
            vec![0xff5]
        );
        // jmp rel8 back
        assert_eq!(trap_return_points(&[0xeb, 0xfe], 0x1000), vec![0x1000]);
        // push %rbp; mov %rsp,%rbp; call: not past the call
        let code = [0x55, 0x48, 0x89, 0xe5, 0xe8, 0, 0, 0, 0, 0x55];
        assert_eq!(trap_return_points(&code, 0), vec![1, 4]);
        // cut short
        assert_eq!(trap_return_points(&[0x55, 0x48, 0x89], 0), vec![1]);
        assert!(trap_return_points(&[], 0).is_empty());
    }

    #[test]
    fn kinds_by_first_instruction() {
        for (code, want) in [
            (&[0x55u8, 0x48, 0x89, 0xe5][..], ProbeKind::Emulated), // push %rbp
            (&[0x41, 0x57], ProbeKind::Emulated),                   // push %r15
            (&[0x48, 0x83, 0xec, 0x18], ProbeKind::SingleStep),     // sub $0x18,%rsp
            (&[0x49, 0x3b, 0x66, 0x10], ProbeKind::SingleStep),     // cmp 0x10(%r14),%rsp
            (&[0xe8, 0, 0, 0, 0], ProbeKind::Emulated),             // call rel32
            (&[0x0f, 0x84, 0, 0, 0, 0], ProbeKind::Emulated),       // je rel32
            (&[0xff, 0x15, 0, 0, 0, 0], ProbeKind::SingleStep),     // call *(%rip)
            (&[], ProbeKind::SingleStep),
        ] {
            assert_eq!(probe_kind(code), want, "{code:x?}");
        }
    }

    #[test]
    fn a_capturing_record_gives_the_argument_and_the_return_address() {
        let words = |ws: &[u64]| ws.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        // id, pid/tid, time, abi 2 (64-bit), rsi, stack size 8, [rsp], dynamic size 8.
        let body = words(&[7, 42, 1000, 2, 0x7f00_1234, 8, 0x5555_0010, 8]);
        assert_eq!(
            call_args(&body),
            Some(CallArgs {
                arg1: 0x7f00_1234,
                ret: 0x5555_0010
            })
        );
        // A plain record, no user registers, an unreadable stack, a cut record.
        assert_eq!(call_args(&words(&[7, 42, 1000])), None);
        assert_eq!(call_args(&words(&[7, 42, 1000, 0, 8, 0, 8])), None);
        assert_eq!(call_args(&words(&[7, 42, 1000, 2, 1, 8, 2, 0])), None);
        assert_eq!(call_args(&body[..body.len() - 4]), None);
    }
}
