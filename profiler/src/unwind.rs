//! Unwinding one sample into native frames, across Go's stack switches.
//!
//! DWARF CFI (framehop) walks C, Rust, CPython and libffi frames from the
//! copied user stack; Go frames have no CFI, so framehop falls back to the
//! frame pointer, which Go keeps. Two places need help:
//! - `runtime.asmcgocall` (Go calling C): the C code runs on the g0 stack and
//!   its Go caller on the goroutine stack. asmcgocall saves the goroutine's g
//!   and its depth below the stack top in its g0 frame; we read them to find
//!   the return address into `runtime.cgocall` on the goroutine stack.
//! - `crosscall2` (C calling Go): Go assembly with no CFI and no frame pointer;
//!   its pcsp table in the pclntab says where its return address is.
//! - Go functions in general: the pcsp table gives each frame's size, which
//!   also handles frameless functions that the frame pointer would skip.
//!
//! Memory outside the stack copy (the other stack of a switch) is read from
//! the live process. The frames there belong to callers that are blocked in
//! the call we sampled, so they have not changed since the sample was taken.

use crate::memory::ReadMemory;
use crate::modules::{AddressSpace, FileBytes, FrameKind, LoadedModule};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{FrameAddress, Unwinder as _};
use std::collections::HashMap;

/// An address on a stack: the leaf's instruction pointer, or a return address
/// (the instruction after a call). Symbolize `lookup()`, which steps back
/// into the call instruction for return addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackAddress {
    Ip(u64),
    Return(u64),
}

impl StackAddress {
    pub fn raw(self) -> u64 {
        match self {
            StackAddress::Ip(a) | StackAddress::Return(a) => a,
        }
    }

    /// The address to symbolize: return addresses minus one, so that a call
    /// at the very end of a function is not attributed to the next one.
    pub fn lookup(self) -> u64 {
        match self {
            StackAddress::Ip(a) => a,
            StackAddress::Return(a) => a.saturating_sub(1),
        }
    }
}

/// Why the walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackEnd {
    /// The thread's root was reached.
    Root,
    /// The walk broke off; the reason names where.
    Truncated(&'static str),
}

/// Native frames, leaf first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeStack {
    pub frames: Vec<StackAddress>,
    pub end: StackEnd,
    /// For each frame, the stack pointer once it was unwound (its caller's,
    /// the frame's CFA), 0 where the walk did not step out of it by the
    /// unwind tables or frame pointer (the outermost frame, Go's stacks).
    pub cfas: Vec<u64>,
}

/// Registers at the sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

const MAX_FRAMES: usize = 512;
const PAGE: u64 = 4096;

/// The sample's stack copy, backed by the live process for anything else.
pub struct StackMemory<'a> {
    /// Set when the frames past a stack switch came from an earlier walk through the same switch.
    pub reused_other_side: bool,
    copy_base: u64,
    copy: &'a [u8],
    process: Option<&'a dyn ReadMemory>,
    pages: HashMap<u64, Option<Box<[u8]>>>,
}

impl<'a> StackMemory<'a> {
    /// `copy` is the sample's stack copy starting at `copy_base`; `process`
    /// reads anything else (the live target, or recorded pages in tests).
    pub fn new(copy_base: u64, copy: &'a [u8], process: Option<&'a dyn ReadMemory>) -> Self {
        StackMemory {
            reused_other_side: false,
            copy_base,
            copy,
            process,
            pages: HashMap::new(),
        }
    }

    pub fn read_u64(&mut self, addr: u64) -> Option<u64> {
        if !addr.is_multiple_of(8) {
            return None;
        }
        if let Some(off) = addr.checked_sub(self.copy_base) {
            if let Some(b) = self.copy.get(off as usize..off as usize + 8) {
                return Some(u64::from_le_bytes(b.try_into().unwrap()));
            }
        }
        let process = self.process?;
        let page = addr & !(PAGE - 1);
        let bytes = self.pages.entry(page).or_insert_with(|| {
            let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
            process.read(page, &mut buf).ok().map(|_| buf)
        });
        let off = (addr - page) as usize;
        bytes
            .as_ref()
            .map(|b| u64::from_le_bytes(b[off..off + 8].try_into().unwrap()))
    }

    /// Reads only from the sample's stack copy, never from the process.
    pub fn read_u64_in_copy(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.copy_base)?).ok()?;
        Some(u64::from_le_bytes(
            self.copy.get(off..off.checked_add(8)?)?.try_into().unwrap(),
        ))
    }

    /// The pages read from the process so far (for recording fixtures).
    pub fn pages_read(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.pages
            .iter()
            .filter_map(|(&a, b)| Some((a, &b.as_ref()?[..])))
    }
}

/// Memory made of whole pages, as recorded by [`StackMemory::pages_read`].
#[derive(Clone, Debug, Default)]
pub struct PageMemory {
    pub pages: HashMap<u64, Vec<u8>>,
}

impl ReadMemory for PageMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let page = addr & !(PAGE - 1);
        let off = (addr - page) as usize;
        match self
            .pages
            .get(&page)
            .and_then(|p| p.get(off..off + buf.len()))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "page not recorded",
            )),
        }
    }
}

/// A process's unwinder: framehop with the process's modules, plus the
/// stack-switch rules above.
pub struct Unwinder {
    framehop: UnwinderX86_64<FileBytes>,
    cache: CacheX86_64,
    /// The rootward frames of recent complete walks, by stack switch passed (see [`SwitchKey`]).
    recent_sides: HashMap<SwitchKey, Vec<StackAddress>>,
}

impl Default for Unwinder {
    fn default() -> Self {
        Unwinder {
            framehop: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            recent_sides: HashMap::new(),
        }
    }
}

impl Unwinder {
    pub fn add_module(&mut self, m: &LoadedModule) {
        self.framehop.remove_module(m.avma.start);
        self.framehop.add_module(framehop::Module::new(
            m.object.path.clone(),
            m.avma.clone(),
            m.bias,
            m.object.unwind_sections(),
        ));
    }

    /// Unwinds one sample. `kernel_chain` is the user part of the kernel's
    /// frame-pointer callchain taken at sample time (leaf first), used where it is
    /// exact: a tail of Go frames down to the thread root.
    pub fn unwind(
        &mut self,
        space: &AddressSpace,
        regs: Regs,
        kernel_chain: &[u64],
        mem: &mut StackMemory,
    ) -> NativeStack {
        let mut frames = Vec::new();
        let mut cfas = Vec::new();
        let mut hop_regs = UnwindRegsX86_64::new(regs.ip, regs.sp, regs.bp);
        let mut addr = StackAddress::Ip(regs.ip);
        // Stack switches passed on the way, and where in `frames` each was.
        let mut switches: Vec<(SwitchKey, usize)> = Vec::new();
        let mut end = loop {
            frames.push(addr);
            if frames.len() >= MAX_FRAMES {
                break StackEnd::Truncated("too many frames");
            }
            if let Some(tail) = go_tail_from_kernel(space, addr, kernel_chain) {
                frames.extend(tail.iter().map(|&a| StackAddress::Return(a)));
                break StackEnd::Root;
            }
            let module = space.module_at(addr.lookup());
            let kind = module.and_then(|m| m.object.kind_at(m.svma(addr.lookup())));
            let step = match kind {
                Some(FrameKind::Root) => break StackEnd::Root,
                Some(FrameKind::GoAsmcgocall) if matches!(addr, StackAddress::Return(_)) => {
                    if let Some(go_side) =
                        kernel_go_side(space, module.unwrap(), &hop_regs, kernel_chain, mem)
                    {
                        frames.extend_from_slice(&go_side.frames);
                        match go_side.next {
                            None => break StackEnd::Root,
                            Some((ret, sp, bp)) => {
                                hop_regs.set_sp(sp);
                                hop_regs.set_bp(bp);
                                addr = StackAddress::Return(ret);
                                continue;
                            }
                        }
                    }
                    switches.extend(
                        SwitchKey::at(addr, &hop_regs, mem, true).map(|k| (k, frames.len())),
                    );
                    asmcgocall_caller(space, &mut hop_regs, mem)
                        .ok_or("runtime.asmcgocall: the goroutine has moved on since the sample")
                }
                Some(FrameKind::Crosscall2) => {
                    switches.extend(
                        SwitchKey::at(addr, &hop_regs, mem, false).map(|k| (k, frames.len())),
                    );
                    crosscall2_caller(module.unwrap(), addr, &mut hop_regs, mem)
                }
                _ => match module.and_then(|m| {
                    go_step(m, addr, &mut hop_regs, mem)
                        .or_else(|| realigned_step(m, addr, &mut hop_regs, mem))
                }) {
                    Some(step) => step,
                    None => self.framehop_step(addr, module.is_some(), &mut hop_regs, mem),
                },
            };
            if step.is_ok() {
                cfas.resize(frames.len() - 1, 0);
                cfas.push(hop_regs.sp());
            }
            match step {
                Ok(0) => break StackEnd::Root,
                Ok(ret) if space.module_at(ret - 1).is_some() => addr = StackAddress::Return(ret),
                Ok(_) => break StackEnd::Truncated("return address outside any module"),
                Err(why) => break StackEnd::Truncated(why),
            }
        };
        if end == StackEnd::Root {
            if self.recent_sides.len() + switches.len() > MAX_REMEMBERED_SWITCHES {
                self.recent_sides.clear();
            }
            for (key, at) in switches {
                self.recent_sides.insert(key, frames[at..].to_vec());
            }
        } else if let Some((at, rest)) = switches
            .iter()
            .rev()
            .find_map(|(key, at)| Some((*at, self.recent_sides.get(key)?)))
        {
            // Past a stack switch the other stack is read from the live process, and the
            // thread has moved on since the sample. The same thread passed the same switch
            // at the same stack position, with the same saved words, a moment ago; that
            // walk's rootward frames are the best evidence left. The caller counts how
            // often this is used.
            frames.truncate(at);
            cfas.truncate(at);
            frames.extend_from_slice(rest);
            end = StackEnd::Root;
            mem.reused_other_side = true;
        }
        cfas.resize(frames.len(), 0);
        NativeStack { frames, end, cfas }
    }

    /// One step with framehop (DWARF CFI, or the frame pointer where there is none).
    /// Returns the caller's return address, 0 at the outermost frame.
    fn framehop_step(
        &mut self,
        addr: StackAddress,
        in_module: bool,
        regs: &mut UnwindRegsX86_64,
        mem: &mut StackMemory,
    ) -> Result<u64, &'static str> {
        let fa = match addr {
            StackAddress::Ip(a) => FrameAddress::from_instruction_pointer(a),
            StackAddress::Return(a) => {
                FrameAddress::from_return_address(a).ok_or("null return address")?
            }
        };
        let mut read = |a: u64| mem.read_u64(a).ok_or(());
        match self
            .framehop
            .unwind_frame(fa, regs, &mut self.cache, &mut read)
        {
            Ok(Some(ret)) => Ok(ret),
            // The unwind info marks the outermost frame (glibc's clone3 and _start
            // leave the return address undefined), or a zero frame pointer ends the chain.
            Ok(None) => Ok(0),
            Err(_) if in_module => Err("unwinding failed"),
            Err(_) => Err("unknown code address"),
        }
    }
}

/// Identifies a stack switch as passed on one thread: the switch frame's
/// return address and stack pointer and, for asmcgocall, the goroutine depth
/// it saved (at 0(SP) or 40(SP), see [`asmcgocall_caller`]). The goroutine
/// itself is left out: a server runs the same path on a new goroutine for
/// each connection, and the same depth on the same path means the same frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SwitchKey {
    ret: u64,
    sp: u64,
    depth: [u64; 2],
}

impl SwitchKey {
    fn at(
        addr: StackAddress,
        regs: &UnwindRegsX86_64,
        mem: &mut StackMemory,
        with_depth: bool,
    ) -> Option<SwitchKey> {
        let sp = regs.sp();
        let depth = if with_depth {
            [mem.read_u64(sp)?, mem.read_u64(sp + 40)?]
        } else {
            [0, 0]
        };
        Some(SwitchKey {
            ret: addr.raw(),
            sp,
            depth,
        })
    }
}

const MAX_REMEMBERED_SWITCHES: usize = 4096;

/// Function names whose frames switch stacks or are built by hand, where the
/// frame pointer (which Go keeps pointing across the switch) is the only guide.
const GO_FRAME_POINTER_ONLY: &[&str] = &[
    "runtime.cgocallback",
    "runtime.systemstack",
    "runtime.mcall",
    "runtime.morestack",
    // Calls into the vDSO move to the g0 stack without telling the pcsp table.
    "time.now",
    "runtime.nanotime1",
    "runtime.walltime",
];

/// One step through a Go function with its pcsp table: the return address
/// sits right above the bytes the function has pushed, and a Go function
/// with a frame saves its caller's frame pointer just below it.
/// None when the address is not Go code with a usable table.
fn go_step(
    module: &LoadedModule,
    addr: StackAddress,
    regs: &mut UnwindRegsX86_64,
    mem: &mut StackMemory,
) -> Option<Result<u64, &'static str>> {
    let go = module.object.go.as_ref()?;
    let svma = module.svma(addr.lookup());
    let func = go.lookup(svma)?;
    if GO_FRAME_POINTER_ONLY
        .iter()
        .any(|p| func.name.starts_with(p))
    {
        // Follow the frame pointer wherever it leads: across the switch, the
        // other stack may sit below this one (g0 to goroutine), which framehop
        // refuses as a walk going backwards.
        let bp = regs.bp();
        let (Some(caller_bp), Some(ret)) = (mem.read_u64(bp), mem.read_u64(bp.wrapping_add(8)))
        else {
            return Some(Err("unreadable stack across a Go stack switch"));
        };
        regs.set_sp(bp + 16);
        regs.set_bp(caller_bp);
        return Some(Ok(ret));
    }
    let delta = u64::try_from(go.sp_delta(svma)?).ok()?;
    let sp = regs.sp();
    let Some(ret) = mem.read_u64(sp + delta) else {
        return Some(Err("unreadable goroutine stack"));
    };
    if delta >= 8 {
        match mem.read_u64(sp + delta - 8) {
            Some(bp) => regs.set_bp(bp),
            None => return Some(Err("unreadable goroutine stack")),
        }
    }
    regs.set_sp(sp + delta + 8);
    Some(Ok(ret))
}

/// One step out of a function that realigned its stack (see
/// [`crate::modules::ObjectInfo::drap_cfa_offset`]): the caller's stack
/// pointer (the CFA) is read at `rbp + offset`, the return address just
/// below it, and the caller's frame pointer at `rbp`. None elsewhere.
fn realigned_step(
    module: &LoadedModule,
    addr: StackAddress,
    regs: &mut UnwindRegsX86_64,
    mem: &mut StackMemory,
) -> Option<Result<u64, &'static str>> {
    let offset = module.object.drap_cfa_offset(module.svma(addr.lookup()))?;
    let bp = regs.bp();
    let read = |mem: &mut StackMemory, at: Option<u64>| at.and_then(|a| mem.read_u64(a));
    let Some(cfa) = read(mem, bp.checked_add_signed(offset)) else {
        return Some(Err("unreadable realigned frame"));
    };
    let (Some(ret), Some(caller_bp)) = (read(mem, cfa.checked_sub(8)), mem.read_u64(bp)) else {
        return Some(Err("unreadable realigned frame"));
    };
    regs.set_sp(cfa);
    regs.set_bp(caller_bp);
    Some(Ok(ret))
}

/// At a return into `runtime.asmcgocall`: finds the goroutine stack pointer it
/// saved and returns the address it returns to (in `runtime.cgocall`), with
/// `regs` moved to that frame (the saved depth points at asmcgocall's entry
/// stack pointer). The goroutine stack is read from the live
/// process after the sample; if the goroutine has moved on since, the saved
/// slot no longer holds a return into a `cgocall` and the stack is cut there.
/// Two layouts are known: Go ≤ 1.20 saves g at
/// 48(SP) and the depth at 40(SP); Go ≥ 1.21 saves them at 8(SP) and 0(SP).
/// When g is 0 (the call did not switch stacks), the depth slot holds the
/// original stack pointer itself.
fn asmcgocall_caller(
    space: &AddressSpace,
    regs: &mut UnwindRegsX86_64,
    mem: &mut StackMemory,
) -> Option<u64> {
    let sp = regs.sp();
    for (g_off, depth_off) in [(48, 40), (8, 0)] {
        let Some(g) = mem.read_u64(sp + g_off) else {
            continue;
        };
        let Some(depth) = mem.read_u64(sp + depth_off) else {
            continue;
        };
        let caller_sp = if g == 0 {
            depth
        } else {
            let (Some(lo), Some(hi)) = (mem.read_u64(g), mem.read_u64(g + 8)) else {
                continue;
            };
            if lo >= hi || depth > hi - lo {
                continue;
            }
            hi - depth
        };
        // Go ≥ 1.21 gives asmcgocall a frame pointer (PUSHQ BP) before it
        // takes the stack pointer, so the return address sits one word higher,
        // above the caller's saved frame pointer.
        for pushed in [0, 8] {
            let Some(ret) = mem.read_u64(caller_sp + pushed) else {
                continue;
            };
            if go_function_name(space, ret)
                .is_some_and(|n| n.contains("cgocall") || runtime_calls_asmcgocall(n))
            {
                if pushed == 8 {
                    regs.set_bp(mem.read_u64(caller_sp)?);
                }
                regs.set_sp(caller_sp + pushed + 8);
                regs.set_ip(ret);
                return Some(ret);
            }
        }
    }
    None
}

/// The kernel walked the frame-pointer chain at sample time. Where our walk
/// reaches a return address the kernel also saw, and from there on the kernel's
/// frames are all Go code down to a thread root, they are exact: Go keeps frame
/// pointers, and nothing has moved since the sample (unlike memory we read
/// later). The leaf is never matched: the kernel's walk skips the caller of a
/// frameless leaf.
fn go_tail_from_kernel<'c>(
    space: &AddressSpace,
    addr: StackAddress,
    chain: &'c [u64],
) -> Option<&'c [u64]> {
    let StackAddress::Return(ret) = addr else {
        return None;
    };
    let k = chain.iter().skip(1).position(|&a| a == ret)? + 1;
    let tail = &chain[k + 1..];
    let last = *tail.last()?;
    let all_go = tail.iter().all(|&a| go_function_name(space, a).is_some());
    let ends_at_root = space
        .module_at(last - 1)
        .is_some_and(|m| m.object.kind_at(m.svma(last - 1)) == Some(FrameKind::Root));
    (all_go && ends_at_root).then_some(tail)
}

/// The Go side of a cgo call as the kernel's callchain saw it at sample time.
struct KernelGoSide {
    /// The Go frames, leaf first, from the caller of `runtime.asmcgocall`.
    frames: Vec<StackAddress>,
    /// Where to go on: the return address into `crosscall2` and the stack and
    /// frame pointers at it; None when the Go frames reach the thread root.
    next: Option<(u64, u64, u64)>,
}

/// At a return into `runtime.asmcgocall`: the Go side of the call from the
/// kernel's callchain, when the C code under it left the frame pointer alone
/// (so the kernel's walk went from the leaf straight into the Go caller). The
/// callchain must enter Go at a cgo call (`runtime.cgocall` or a `_Cfunc_`
/// stub) and stay in Go down to the thread root or to `crosscall2`; the
/// frame of `runtime.cgocallback` under crosscall2 is found in the sample's
/// own stack copy, next to asmcgocall's, so everything here is as it was at
/// the sample. Go ≤ 1.20 calls asmcgocall without a frame pointer of its own,
/// so the kernel skips `runtime.cgocall`; it is put back.
fn kernel_go_side(
    space: &AddressSpace,
    module: &LoadedModule,
    regs: &UnwindRegsX86_64,
    chain: &[u64],
    mem: &mut StackMemory,
) -> Option<KernelGoSide> {
    let first = chain
        .iter()
        .skip(1)
        .position(|&a| go_function_name(space, a).is_some())?
        + 1;
    let entry = go_function_name(space, chain[first])?;
    let via_cgocall = entry.starts_with("runtime.cgocall") || runtime_calls_asmcgocall(entry);
    if !via_cgocall && !entry.contains("._Cfunc_") {
        return None;
    }
    let mut frames = Vec::new();
    if !via_cgocall {
        // A return address just past the start of runtime.cgocall names it.
        frames.push(StackAddress::Return(
            module.object.cgocall_start()?.wrapping_add(module.bias) + 1,
        ));
    }
    for &ret in chain.iter().skip(first) {
        let name = go_function_name(space, ret)?;
        if name == "crosscall2" {
            // runtime.cgocallback's frame on the g0 stack holds this return address
            // above its saved frame pointer; it sits just above asmcgocall's frame.
            let sp = regs.sp();
            let slot = (sp..sp + CGOCALLBACK_SCAN_BYTES)
                .step_by(8)
                .find(|&a| mem.read_u64_in_copy(a) == Some(ret))?;
            let caller_bp = mem.read_u64_in_copy(slot - 8)?;
            return Some(KernelGoSide {
                frames,
                next: Some((ret, slot + 8, caller_bp)),
            });
        }
        frames.push(StackAddress::Return(ret));
        let m = space.module_at(ret - 1)?;
        if m.object.kind_at(m.svma(ret - 1)) == Some(FrameKind::Root) {
            return Some(KernelGoSide { frames, next: None });
        }
    }
    None
}

/// Whether the Go function `name` is one of the runtime's own callers of
/// `runtime.asmcgocall` (beside `runtime.cgocall`, every cgo call's). Go 1.21.12+ and 1.22.5+ call `_cgo_getstackbound` through it at every
/// callback from C (`runtime.callbackUpdateSystemStack`; glibc then reads
/// `/proc/self/maps` on the main thread, so those calls took most of
/// ffibench's ctypes-into-Go time: 8.8-15.5% complete stacks before these
/// were known); `runtime.cgoBindM`, `runtime.newm1` (thread start),
/// `runtime.sysmon`, `runtime.notesleep`, `runtime.notetsleep_internal`
/// and `runtime.findRunnable` (`cgo_yield`), the environment's setters
/// (`os.Setenv` in a cgo program) and the traceback hooks call it too.
fn runtime_calls_asmcgocall(name: &str) -> bool {
    matches!(
        name,
        "runtime.callbackUpdateSystemStack"
            | "runtime.cgoBindM"
            | "runtime.newm1"
            | "runtime.sysmon"
            | "runtime.notesleep"
            | "runtime.notetsleep_internal"
            | "runtime.findRunnable"
            | "runtime.findrunnable"
            | "runtime.syscall_setenv_c"
            | "runtime.syscall_unsetenv_c"
            | "runtime.setenv_c"
            | "runtime.unsetenv_c"
            | "runtime.cgoContextPCs"
            | "runtime.callCgoSymbolizer"
    )
}

/// How far above asmcgocall's frame to look for runtime.cgocallback's.
const CGOCALLBACK_SCAN_BYTES: u64 = 4096;

/// The Go function that a return address returns into, if it is Go code.
fn go_function_name(space: &AddressSpace, ret: u64) -> Option<&str> {
    let m = space.module_at(ret.wrapping_sub(1))?;
    Some(m.object.go.as_ref()?.lookup(m.svma(ret - 1))?.name)
}

/// At a return into `crosscall2`: Go assembly with no CFI that saves the C
/// caller's registers and does not keep a frame pointer. Its pcsp table says
/// where its return address (into the cgo export wrapper) is; the frame
/// pointer is left alone, as it already holds the C caller's value, which
/// `runtime.cgocallback` saved and the frame-pointer step restored.
fn crosscall2_caller(
    module: &LoadedModule,
    addr: StackAddress,
    regs: &mut UnwindRegsX86_64,
    mem: &mut StackMemory,
) -> Result<u64, &'static str> {
    let go = module
        .object
        .go
        .as_ref()
        .ok_or("crosscall2 outside a Go module")?;
    let delta = go
        .sp_delta(module.svma(addr.lookup()))
        .and_then(|d| u64::try_from(d).ok())
        .ok_or("crosscall2")?;
    let sp = regs.sp();
    let ret = mem
        .read_u64(sp + delta)
        .ok_or("unreadable C stack under crosscall2")?;
    let caller_sp = sp + delta + 8;
    // Where crosscall2 keeps frame pointers of its own (Go 1.19 pushes one at
    // entry; later versions push one and chain a second to it), the frame
    // pointer still points into its frame, below its caller's stack pointer:
    // follow the chain out of the frame to the caller's saved value.
    for _ in 0..4 {
        let bp = regs.bp();
        if bp >= caller_sp || bp < sp {
            break;
        }
        let saved = mem
            .read_u64(bp)
            .ok_or("unreadable C stack under crosscall2")?;
        regs.set_bp(saved);
    }
    regs.set_sp(caller_sp);
    Ok(ret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_addresses_step_back() {
        assert_eq!(StackAddress::Return(0x1000).lookup(), 0xfff);
        assert_eq!(StackAddress::Ip(0x1000).lookup(), 0x1000);
    }

    #[test]
    fn stack_memory_prefers_the_copy() {
        let mut copy = vec![0u8; 32];
        copy[8..16].copy_from_slice(&0xdeadu64.to_le_bytes());
        let mut mem = StackMemory::new(0x7000, &copy, None);
        assert_eq!(mem.read_u64(0x7008), Some(0xdead));
        assert_eq!(mem.read_u64(0x7020), None);
        assert_eq!(mem.read_u64(0x7009), None);
    }
}
