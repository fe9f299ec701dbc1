//! Reading Python stacks from outside the process, for CPython 3.8 to 3.15.
//!
//! [`PythonProcess::find`] looks for the interpreter in the target's memory
//! map; [`PythonProcess::stack`] then reads the Python frames of one OS thread
//! straight from interpreter memory (`process_vm_readv` through
//! [`ReadMemory`]), without stopping the target. It is built to run after
//! every perf sample, thousands of times a second:
//!
//! * thread states are found once and cached by OS tid (CPython 3.11+ keeps
//!   the tid in `PyThreadState.native_thread_id`; 3.8 to 3.10 keep the
//!   thread's `pthread_t`, whose tid is read from the C library's
//!   `struct pthread`), re-validated on every use, and looked up again at
//!   most once per [`RESCAN_INTERVAL`] per unknown tid;
//! * code objects are decoded once and cached by address; each walk re-reads
//!   the header of each code object it meets to notice a reused address;
//! * the frames a thread keeps in its data-stack chunk (all but generator
//!   frames, older chunks and the 3.12+ entry shims, which live on the C
//!   stack) are copied in one read.
//!
//! A warm call therefore costs one read of the thread state (plus one for
//! `_PyCFrame` in 3.11/3.12), one of the chunk, one per eval-loop entry
//! shim (3.12+) and one per distinct code object on the stack. 3.8 to 3.10
//! keep frames as objects of their own, linked by `f_back`: one read per
//! frame, and one of the `struct pthread` for the thread's tid.
//!
//! The frames come back leaf first. [`PyFrame::ends_eval_run`] tells the
//! caller which Python frames one native `_PyEval_EvalFrameDefault` frame
//! stands for: the merge rule py-spy uses (see
//! `research/runtime-boundaries.md`, section 2).
//!
//! Reads race the running target. Any read that fails or finds inconsistent
//! data (a frame chain that loops, a frame whose code is not a code object,
//! a string of the wrong type) makes [`PythonProcess::stack`] return
//! `Err(Error::Io)` for that call; a partial stack is never returned, except
//! that stacks deeper than [`MAX_FRAMES`] are cut at the root end. The caller
//! counts the errors; the next call starts afresh.
//!
//! Limits worth knowing:
//!
//! * A read can also race the target without noticing: a frame popped and a
//!   new one set up at the same address between reading the thread state
//!   and the frames gives a plausible, slightly stale stack (seen: a fresh
//!   3.11 `__init__` frame whose `is_entry` was not yet set).
//! * The code-object check compares header pointers. Code freed and
//!   recompiled at the same address whose name, file and line-table objects
//!   also landed at the old addresses (a tight `exec(compile(..))` loop)
//!   would keep the old decoding.
//! * A thread that dropped its thread state but lives on (a C thread after
//!   `PyGILState_Release`) may still show its last, usually empty, stack.
//! * 3.8 to 3.12 offsets are per minor version, checked against 3.8.18,
//!   3.9.18, 3.10.13, 3.11.7 and 3.12.1 headers and Debian's 3.11.2; 3.13 to
//!   3.15 read theirs from `_Py_DebugOffsets` (checked against 3.13.0 and
//!   Debian's 3.14.10 and 3.15.2). Debug builds before 3.13, free-threaded
//!   builds, and CPython before 3.8 or after 3.15 are refused with
//!   [`Error::Unsupported`]. Checked on x86_64 only.
//!
//! ```no_run
//! use seam_profiler::memory::ProcessMemory;
//! use seam_profiler::python::PythonProcess;
//!
//! # fn main() -> Result<(), seam_profiler::Error> {
//! let pid = 4242;
//! let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
//! if let Some(mut python) = PythonProcess::find(pid, &maps)? {
//!     let mem = ProcessMemory { pid };
//!     if let Some(frames) = python.stack(&mem, pid)? {
//!         for f in frames {
//!             println!("{} {}:{:?}", f.function, f.file, f.line);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod linetable;

mod layout;
mod locate;
mod objects;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
pub(crate) mod tests_support;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::memory::ReadMemory;
use crate::Error;
use layout::{CurrentFrame, Layout, CHUNK_DATA, ENTRY_FRAME_OWNER};
use objects::{invalid, u32_at, u64_at, CodeCache, Types};

/// Deepest stack returned; deeper stacks lose their rootmost frames.
pub const MAX_FRAMES: usize = 1024;

/// After a tid was not found among the thread states, `stack` answers
/// `Ok(None)` for it without looking again for this long. Short, because
/// threads that Python did not create (a Go server calling Python handlers)
/// get a new thread state for each callback; the converter asks only for
/// threads whose native stack shows the eval loop, so misses stay rare.
pub const RESCAN_INTERVAL: Duration = Duration::from_millis(5);

/// Limits on the interpreter and thread lists, against corrupt links.
const MAX_INTERPRETERS: usize = 256;
const MAX_THREADS: usize = 1 << 16;
/// The per-tid miss table is cleared when it grows past this.
const MAX_MISSES: usize = 4096;
/// At most this much of the top of a thread's data-stack chunk is copied per walk.
const MAX_CHUNK_COPY: u64 = 64 * 1024;
/// A chunk whose used part claims to be bigger than this is garbage.
const MAX_CHUNK_SPAN: u64 = 1 << 30;

/// One Python function frame, as read from the interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PyFrame {
    /// `co_qualname`, e.g. `Klass.method` or `<module>` (`co_name` before
    /// 3.11: `method`).
    pub function: String,
    /// `co_filename`, as the interpreter has it (`<string>` for `-c`).
    pub file: String,
    /// The line being run; `None` when the instruction has no location.
    pub line: Option<u32>,
    /// This frame is the last one (rootward) that one native
    /// `_PyEval_EvalFrameDefault` frame runs: every frame before 3.11; 3.11
    /// `is_entry`; 3.12+ the frame
    /// just leafward of an `ENTRY_FRAME_OWNER` shim frame (shims
    /// themselves are not returned).
    pub ends_eval_run: bool,
    /// Where the frame is in the target: its `PyFrameObject` (3.8 to 3.10),
    /// its `_PyInterpreterFrame` (3.11+).
    pub addr: u64,
}

/// A Python interpreter found in a process.
pub struct PythonProcess {
    pid: u32,
    path: PathBuf,
    version: (u8, u8),
    runtime: u64,
    layout: Layout,
    types: Types,
    init_cleanup: Option<u64>,
    /// OS tid -> `PyThreadState` address, from the last scan.
    threads: HashMap<u32, u64>,
    /// OS tid -> when a scan last failed to find it.
    misses: HashMap<u32, Instant>,
    codes: CodeCache,
    /// Frame addresses seen in the current walk (cycle check), kept to reuse its allocation.
    visited: HashSet<u64>,
    /// Code objects whose header was checked in the current walk.
    validated: HashSet<u64>,
    /// The used part of the thread's data-stack chunk, copied in one read.
    chunk_copy: Vec<u8>,
    /// 3.8 to 3.10: where the C library keeps a thread's tid in the `pthread_t` a
    /// thread state names (see [`PythonProcess::find_pthread_tid`]).
    pthread_tid: Option<u64>,
}

/// Where glibc (2.36 here; unchanged since 2.x on x86_64) keeps the kernel's
/// tid in `struct pthread`, preferred where the search finds it.
const GLIBC_PTHREAD_TID: u64 = 0x2d0;
/// How much of a `struct pthread` is searched for the tid.
const PTHREAD_SEARCH: usize = 0x800;

impl PythonProcess {
    /// Looks for `libpython3.X.so` or a `python3.X` binary in `maps` (the
    /// text of `/proc/PID/maps`; the caller reads it), opens it through
    /// `/proc/PID/root`, and reads the version (`Py_Version`, else the file
    /// name) and the `_PyRuntime` address (symbol in `.dynsym`/`.symtab`,
    /// else section `.PyRuntime`).
    ///
    /// Returns `Ok(None)` if the process has no Python, and
    /// `Err(Error::Unsupported(..))` for a Python it cannot read, e.g.
    /// "CPython 3.7 is not supported: seam reads 3.8 to 3.15; native frames only".
    pub fn find(pid: u32, maps: &str) -> Result<Option<PythonProcess>, Error> {
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        Self::find_with_root(pid, maps, Some(&root))
    }

    /// [`find`](Self::find), opening the mapped files under `root` (a
    /// `/proc/PID/root` prefix) or, when `root` is `None`, at their own paths.
    pub fn find_with_root(
        pid: u32,
        maps: &str,
        root: Option<&Path>,
    ) -> Result<Option<PythonProcess>, Error> {
        let Some(found) = locate::locate(pid, maps, root)? else {
            return Ok(None);
        };
        Ok(Some(PythonProcess {
            pid,
            path: found.path,
            version: found.version,
            runtime: found.runtime,
            layout: found.layout,
            types: Types {
                code: found.code_type,
                unicode: found.unicode_type,
                bytes: found.bytes_type,
            },
            init_cleanup: found.init_cleanup,
            threads: HashMap::new(),
            misses: HashMap::new(),
            codes: CodeCache::default(),
            visited: HashSet::new(),
            validated: HashSet::new(),
            chunk_copy: Vec::new(),
            pthread_tid: None,
        }))
    }

    /// `(major, minor)`, e.g. `(3, 12)`.
    pub fn version(&self) -> (u8, u8) {
        self.version
    }

    /// The mapped file that holds the interpreter (libpython or the executable).
    pub fn library(&self) -> &Path {
        &self.path
    }

    /// The Python stack of the OS thread `tid`, leaf first.
    ///
    /// `Ok(None)` if no `PyThreadState` has that `native_thread_id` (the
    /// thread is not running Python); `Ok(Some(vec![]))` if it has a thread
    /// state but no frames. `Err` when memory could not be read or was
    /// inconsistent (see the module docs); the next call tries again.
    pub fn stack(
        &mut self,
        mem: &impl ReadMemory,
        tid: u32,
    ) -> Result<Option<Vec<PyFrame>>, Error> {
        let what = || format!("reading the Python stack of thread {tid}");
        let Some(thread) = self
            .thread(mem, tid)
            .map_err(|e| Error::io(what(), e, Some(self.pid)))?
        else {
            return Ok(None);
        };
        let mut frames = Vec::new();
        self.walk(mem, &thread, &mut frames)
            .map_err(|e| Error::io(what(), e, Some(self.pid)))?;
        Ok(Some(frames))
    }

    /// 3.8 to 3.10: the Python stack from the frame object at `frame` (found
    /// on the sample's copy of the C stack, see the converter's
    /// `FrameSlots`) rather than the thread state's current frame, which
    /// the thread may have left since the sample.
    pub fn stack_from_frame(
        &mut self,
        mem: &impl ReadMemory,
        frame: u64,
    ) -> Result<Vec<PyFrame>, Error> {
        if !self.layout.frame_objects {
            return Ok(Vec::new());
        }
        let thread = ThreadView {
            native_thread_id: 0,
            frame,
            chunk: 0,
            top: 0,
        };
        let mut frames = Vec::new();
        self.walk(mem, &thread, &mut frames)
            .map_err(|e| Error::io("reading a Python stack from its frame", e, Some(self.pid)))?;
        Ok(frames)
    }

    /// 3.8 to 3.10: the frame objects at `frames` (each eval loop's, found on
    /// the sample's copy of the C stack), one frame each, leaf first. A frame
    /// freed since and given to the next call of its code (3.8 to 3.10 keep
    /// one such "zombie" per code object) still names its function; its line
    /// may be the new call's.
    pub fn frames_at(
        &mut self,
        mem: &impl ReadMemory,
        frames: &[u64],
    ) -> Result<Vec<PyFrame>, Error> {
        let mut out = Vec::with_capacity(frames.len());
        for &frame in frames {
            let thread = ThreadView {
                native_thread_id: 0,
                frame,
                chunk: 0,
                top: 0,
            };
            let before = out.len();
            self.walk_up_to(mem, &thread, &mut out, before + 1)
                .map_err(|e| Error::io("reading a Python frame", e, Some(self.pid)))?;
            if out.len() != before + 1 {
                return Err(Error::io(
                    "reading a Python frame",
                    invalid("not a frame of a code object"),
                    Some(self.pid),
                ));
            }
        }
        Ok(out)
    }

    /// Whether frames are objects of their own (3.8 to 3.10), each the
    /// argument of its eval loop's call.
    pub fn frame_objects(&self) -> bool {
        self.layout.frame_objects
    }

    /// The thread state of `tid`, or `None` when it has none.
    fn thread<M: ReadMemory>(&mut self, mem: &M, tid: u32) -> io::Result<Option<ThreadView>> {
        if let Some(&tstate) = self.threads.get(&tid) {
            match self.read_tstate(mem, tstate) {
                Ok(view) if view.native_thread_id == u64::from(tid) => return Ok(Some(view)),
                // Gone or reused: forget it and look again.
                _ => {
                    self.threads.remove(&tid);
                }
            }
        }
        if self
            .misses
            .get(&tid)
            .is_some_and(|t| t.elapsed() < RESCAN_INTERVAL)
        {
            return Ok(None);
        }
        if self.misses.len() >= MAX_MISSES {
            self.misses.clear();
        }
        // Recorded before scanning so a failing scan is rate-limited too.
        self.misses.insert(tid, Instant::now());
        self.scan(mem)?;
        let Some(&tstate) = self.threads.get(&tid) else {
            return Ok(None);
        };
        self.misses.remove(&tid);
        let view = self.read_tstate(mem, tstate)?;
        Ok((view.native_thread_id == u64::from(tid)).then_some(view))
    }

    /// Reads what the walk needs from a thread state.
    fn read_tstate<M: ReadMemory>(&self, mem: &M, tstate: u64) -> io::Result<ThreadView> {
        let l = &self.layout;
        let mut buf = [0u8; 512];
        let block = &mut buf[..l.tstate_block()];
        mem.read(tstate, block)?;
        if l.frame_objects {
            let pthread = u64_at(block, l.tstate_native_thread_id);
            return Ok(ThreadView {
                native_thread_id: self.tid_of_pthread(mem, pthread),
                frame: match l.current_frame {
                    CurrentFrame::Direct(off) => u64_at(block, off),
                    CurrentFrame::ViaCFrame { .. } => 0,
                },
                chunk: 0,
                top: 0,
            });
        }
        let frame = match l.current_frame {
            CurrentFrame::Direct(off) => u64_at(block, off),
            CurrentFrame::ViaCFrame {
                cframe,
                current_frame,
            } => match u64_at(block, cframe) {
                0 => 0,
                cf => mem.read_u64(cf.wrapping_add(current_frame))?,
            },
        };
        Ok(ThreadView {
            native_thread_id: u64_at(block, l.tstate_native_thread_id),
            frame,
            chunk: u64_at(block, l.tstate_datastack_chunk),
            top: u64_at(block, l.tstate_datastack_chunk + 8),
        })
    }

    /// 3.8 to 3.10: the tid of the thread whose `pthread_t` is `pthread`, 0 where
    /// it cannot be read.
    fn tid_of_pthread<M: ReadMemory>(&self, mem: &M, pthread: u64) -> u64 {
        let Some(off) = self.pthread_tid else {
            return 0;
        };
        let mut b = [0u8; 4];
        match mem.read(pthread.wrapping_add(off), &mut b) {
            Ok(()) => u64::from(u32::from_le_bytes(b)),
            Err(_) => 0,
        }
    }

    /// 3.8 to 3.10 keep no tid in a thread state, only the `pthread_t` (the
    /// address of the C library's `struct pthread`), which holds the tid.
    /// Where: the offset at which the most thread states' `struct pthread`s
    /// hold distinct live tids of the process, glibc's own where it does as
    /// well as any (a field that holds the main thread's tid in every one,
    /// or a thread state left by a thread that exited, does not outvote it);
    /// none where no one offset does best, to be looked for again at the
    /// next scan.
    fn find_pthread_tid<M: ReadMemory>(&mut self, mem: &M, pthreads: &[u64]) {
        let tids: HashSet<u32> = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut seen: HashMap<u64, HashSet<u32>> = HashMap::new();
        let mut buf = vec![0u8; PTHREAD_SEARCH];
        let distinct: HashSet<u64> = pthreads.iter().copied().filter(|&p| p != 0).collect();
        for p in distinct {
            // A `struct pthread` may end its mapping sooner (musl's).
            let Some(len) = [PTHREAD_SEARCH, PTHREAD_SEARCH / 4, PTHREAD_SEARCH / 8]
                .into_iter()
                .find(|&len| mem.read(p, &mut buf[..len]).is_ok())
            else {
                continue;
            };
            for o in (0..len as u64).step_by(4) {
                let v = u32_at(&buf, o);
                if tids.contains(&v) {
                    seen.entry(o).or_default().insert(v);
                }
            }
        }
        let best = seen.values().map(HashSet::len).max().unwrap_or(0);
        let at_best: Vec<u64> = seen
            .iter()
            .filter(|(_, t)| best > 0 && t.len() == best)
            .map(|(&o, _)| o)
            .collect();
        self.pthread_tid = if at_best.contains(&GLIBC_PTHREAD_TID) {
            Some(GLIBC_PTHREAD_TID)
        } else if let [only] = at_best[..] {
            Some(only)
        } else {
            None
        };
    }

    /// Rebuilds the tid -> thread state map from every interpreter's thread list.
    fn scan<M: ReadMemory>(&mut self, mem: &M) -> io::Result<()> {
        let states = self.thread_states(mem)?;
        let pthreads = self.layout.frame_objects;
        if pthreads && self.pthread_tid.is_none() {
            let ids: Vec<u64> = states.iter().map(|s| s.1).collect();
            self.find_pthread_tid(mem, &ids);
        }
        let mut threads = HashMap::new();
        for (tstate, id) in states {
            let native = if pthreads {
                self.tid_of_pthread(mem, id)
            } else {
                id
            };
            if let Ok(tid) = u32::try_from(native) {
                if tid != 0 {
                    threads.insert(tid, tstate);
                }
            }
        }
        // No thread state names a live thread where the tid was looked for:
        // look again at the next scan.
        if pthreads && threads.is_empty() {
            self.pthread_tid = None;
        }
        self.threads = threads;
        Ok(())
    }

    /// Every interpreter's thread states, each with the id it keeps of its
    /// thread (`native_thread_id`, or 3.10's `pthread_t`).
    fn thread_states<M: ReadMemory>(&self, mem: &M) -> io::Result<Vec<(u64, u64)>> {
        let l = self.layout;
        let mut out = Vec::new();
        let mut interp = mem.read_u64(self.runtime + l.runtime_interpreters_head)?;
        for _ in 0..MAX_INTERPRETERS {
            if interp == 0 {
                break;
            }
            let mut tstate = mem.read_u64(interp.wrapping_add(l.interp_threads_head))?;
            for _ in 0..MAX_THREADS {
                if tstate == 0 {
                    break;
                }
                out.push((
                    tstate,
                    mem.read_u64(tstate.wrapping_add(l.tstate_native_thread_id))?,
                ));
                tstate = mem.read_u64(tstate.wrapping_add(l.tstate_next))?;
            }
            interp = mem.read_u64(interp.wrapping_add(l.interp_next))?;
        }
        Ok(out)
    }

    /// Copies the used part of the thread's current data-stack chunk (where
    /// its frames live, leaf at the top), so most frames cost no read.
    /// Returns the address of the copy's first byte; on failure the copy is
    /// empty and every frame is read on its own.
    fn copy_chunk<M: ReadMemory>(&mut self, mem: &M, thread: &ThreadView) -> u64 {
        self.chunk_copy.clear();
        let data = thread.chunk.wrapping_add(CHUNK_DATA);
        if thread.chunk == 0 || thread.top <= data || thread.top - data > MAX_CHUNK_SPAN {
            return 0;
        }
        let start = data.max(thread.top.saturating_sub(MAX_CHUNK_COPY));
        self.chunk_copy.resize((thread.top - start) as usize, 0);
        if mem.read(start, &mut self.chunk_copy).is_err() {
            self.chunk_copy.clear();
        }
        start
    }

    /// Follows `previous` from the thread's current frame, appending Python
    /// frames leaf first.
    fn walk<M: ReadMemory>(
        &mut self,
        mem: &M,
        thread: &ThreadView,
        out: &mut Vec<PyFrame>,
    ) -> io::Result<()> {
        self.walk_up_to(mem, thread, out, MAX_FRAMES)
    }

    /// [`PythonProcess::walk`], at most `limit` frames.
    fn walk_up_to<M: ReadMemory>(
        &mut self,
        mem: &M,
        thread: &ThreadView,
        out: &mut Vec<PyFrame>,
        limit: usize,
    ) -> io::Result<()> {
        let l = self.layout;
        let shims_own_runs = l.frame_is_entry.is_none() && !l.frame_objects;
        let block_len = l.frame_block();
        self.visited.clear();
        self.validated.clear();
        let copy_start = self.copy_chunk(mem, thread);
        let mut buf = [0u8; 512];
        let mut frame = thread.frame;
        while frame != 0 && out.len() < limit.min(MAX_FRAMES) {
            if !self.visited.insert(frame) {
                return Err(invalid(
                    "the frame chain loops (it changed while being read)",
                ));
            }
            let copied = frame
                .checked_sub(copy_start)
                .and_then(|off| usize::try_from(off).ok())
                .and_then(|off| self.chunk_copy.get(off..off.checked_add(block_len)?));
            let block: &[u8] = match copied {
                Some(b) => b,
                None => {
                    mem.read(frame, &mut buf[..block_len])?;
                    &buf[..block_len]
                }
            };
            let this = frame;
            let previous = u64_at(block, l.frame_previous);
            let owner = block[l.frame_owner as usize];
            let code_addr = u64_at(block, l.frame_code) & !l.frame_code_tag;
            let instr = u64_at(block, l.frame_instr);
            // 3.10: each frame has an eval loop of its own.
            let is_entry =
                l.frame_objects || l.frame_is_entry.is_some_and(|off| block[off as usize] != 0);
            frame = previous;
            if shims_own_runs && owner == ENTRY_FRAME_OWNER {
                // The shim `_PyEval_EvalFrameDefault` pushed on entry: the
                // frame before it (leafward) is the last one of that run.
                if let Some(last) = out.last_mut() {
                    last.ends_eval_run = true;
                }
                continue;
            }
            // A code object seen earlier in this walk (recursion) is not re-read.
            let revalidate = !self.validated.contains(&code_addr);
            let Some(code) = self
                .codes
                .get(mem, &l, &self.types, code_addr, revalidate)?
            else {
                if self.version >= (3, 13) {
                    // 3.13: f_executable may legitimately be something else (None).
                    continue;
                }
                return Err(invalid(
                    "a frame's f_code is not a code object (it changed while being read)",
                ));
            };
            if revalidate {
                self.validated.insert(code_addr);
            }
            if self.version >= (3, 13)
                && is_init_cleanup(self.init_cleanup, code_addr, &code.qualname, &code.filename)
            {
                continue;
            }
            out.push(PyFrame {
                addr: this,
                function: code.qualname.clone(),
                file: code.filename.clone(),
                line: if l.lnotab {
                    linetable::line_for_offset_lnotab(
                        &code.linetable,
                        code.firstlineno,
                        i64::from(instr as u32 as i32),
                    )
                } else if l.frame_objects {
                    line_of_lasti(code, instr as u32 as i32)
                } else {
                    line_of(code, code_addr.wrapping_add(l.code_adaptive), instr)
                },
                ends_eval_run: is_entry,
            });
        }
        Ok(())
    }
}

/// What one read of a `PyThreadState` gives.
#[derive(Clone, Copy, Debug)]
struct ThreadView {
    native_thread_id: u64,
    /// The innermost `_PyInterpreterFrame`, 0 when there is none.
    frame: u64,
    /// `datastack_chunk` and `datastack_top`.
    chunk: u64,
    top: u64,
}

/// 3.13 pushes a `_Py_InitCleanup` code object between `__init__` and its
/// caller when it calls a class (CALL_ALLOC_AND_ENTER_INIT). It is not a
/// user frame. Without `.symtab` we recognise it by its names, which are both
/// `__init__` (no real module is named `__init__` without `.py`).
fn is_init_cleanup(known: Option<u64>, addr: u64, qualname: &str, filename: &str) -> bool {
    known == Some(addr) || (qualname == "__init__" && filename == "__init__")
}

/// The line of the instruction `instr` points at in a code object whose
/// bytecode starts at `code_start`.
///
/// 3.11/3.12 store `prev_instr`: the last code unit executed (it may be an
/// inline CACHE unit of that instruction, which the line table covers with
/// the instruction's own line). 3.13 stores `instr_ptr`: the instruction
/// executing now. Both are used as is, which is what CPython's own
/// `frame.f_lineno` does, so seam's lines agree with tracebacks. In caller
/// frames both point into the CALL that is running. A frame that has not
/// started yet has `prev_instr` one unit before the code (3.11/3.12); it
/// reports `co_firstlineno` like CPython does.
fn line_of(code: &objects::CodeInfo, code_start: u64, instr: u64) -> Option<u32> {
    let byte_offset = instr.wrapping_sub(code_start) as i64;
    match byte_offset {
        -2 => Some(code.firstlineno),
        o if o < 0 => None,
        o => linetable::line_for_offset(
            &code.linetable,
            code.firstlineno,
            u32::try_from(o / 2).ok()?,
        ),
    }
}

/// 3.10: the line of the instruction `f_lasti` (an index of 2-byte code
/// units) names; a frame that has not started yet (-1) reports
/// `co_firstlineno`, as CPython's `PyCode_Addr2Line` does.
fn line_of_lasti(code: &objects::CodeInfo, lasti: i32) -> Option<u32> {
    match u32::try_from(lasti) {
        Ok(units) => {
            linetable::line_for_offset_310(&code.linetable, code.firstlineno, units.checked_mul(2)?)
        }
        Err(_) => Some(code.firstlineno),
    }
}

#[cfg(test)]
mod tests {
    use super::objects::fake::{self, Heap};
    use super::*;

    /// One frame to lay out in a fake heap: (qualname, line offset in units, owner, is_entry).
    #[derive(Clone, Copy)]
    enum F {
        Py(&'static str, u32),
        Entry(&'static str, u32),
        Shim,
        NotCode,
    }

    /// Builds a thread with `frames` (leaf first) and returns the process and its tid.
    fn process(layout: Layout, version: (u8, u8), frames: &[F]) -> (PythonProcess, Heap, u32) {
        build(layout, version, frames, true)
    }

    /// Like [`process`]; `in_chunk` puts the frames in a data-stack chunk
    /// (leaf at the top, as CPython does) instead of loose in the heap.
    fn build(
        layout: Layout,
        version: (u8, u8),
        frames: &[F],
        in_chunk: bool,
    ) -> (PythonProcess, Heap, u32) {
        let mut heap = Heap::new(layout);
        let tid = 777;
        let runtime = heap.alloc(1024);
        let interp = heap.alloc(8192);
        let tstate = heap.alloc(512);
        heap.put_u64(runtime, layout.runtime_interpreters_head, interp);
        heap.put_u64(interp, layout.interp_threads_head, tstate);
        heap.put_u64(tstate, layout.tstate_native_thread_id, u64::from(tid));

        let frame_size = 80u64;
        let mut addrs: Vec<u64> = if in_chunk {
            let chunk = heap.alloc(CHUNK_DATA as usize + frames.len() * frame_size as usize);
            let data = chunk + CHUNK_DATA;
            let top = data + frames.len() as u64 * frame_size;
            heap.put_u64(tstate, layout.tstate_datastack_chunk, chunk);
            heap.put_u64(tstate, layout.tstate_datastack_chunk + 8, top);
            (0..frames.len() as u64)
                .map(|k| top - (k + 1) * frame_size)
                .collect()
        } else {
            frames
                .iter()
                .map(|_| heap.alloc(frame_size as usize))
                .collect()
        };
        addrs.truncate(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let addr = addrs[i];
            let previous = addrs.get(i + 1).copied().unwrap_or(0);
            heap.put_u64(addr, layout.frame_previous, previous);
            let (name, unit, owner, entry) = match *f {
                F::Py(n, u) => (Some(n), u, 0u8, false),
                F::Entry(n, u) => (Some(n), u, 0, true),
                F::Shim => (None, 0, ENTRY_FRAME_OWNER, false),
                F::NotCode => (None, 0, 0, false),
            };
            heap.put(addr, layout.frame_owner, &[owner]);
            if let (Some(off), true) = (layout.frame_is_entry, entry) {
                heap.put(addr, off, &[1]);
            }
            let code = match name {
                Some(n) => heap.code(n, "t.py", 100 + 10 * i as u32, 40),
                None => heap.str("not code"),
            };
            heap.put_u64(addr, layout.frame_code, code);
            heap.put_u64(
                addr,
                layout.frame_instr,
                code + layout.code_adaptive + 2 * u64::from(unit),
            );
        }
        let first = addrs.first().copied().unwrap_or(0);
        match layout.current_frame {
            CurrentFrame::Direct(off) => heap.put_u64(tstate, off, first),
            CurrentFrame::ViaCFrame {
                cframe,
                current_frame,
            } => {
                let cf = heap.alloc(32);
                heap.put_u64(tstate, cframe, cf);
                heap.put_u64(cf, current_frame, first);
            }
        }
        let p = PythonProcess {
            pid: 1,
            path: "libpython-fake.so".into(),
            version,
            runtime,
            layout,
            types: fake::types(),
            init_cleanup: None,
            threads: HashMap::new(),
            misses: HashMap::new(),
            codes: CodeCache::default(),
            visited: HashSet::new(),
            validated: HashSet::new(),
            chunk_copy: Vec::new(),
            pthread_tid: None,
        };
        (p, heap, tid)
    }

    fn summary(frames: &[PyFrame]) -> Vec<(String, Option<u32>, bool)> {
        frames
            .iter()
            .map(|f| (f.function.clone(), f.line, f.ends_eval_run))
            .collect()
    }

    fn owned(v: &[(&str, Option<u32>, bool)]) -> Vec<(String, Option<u32>, bool)> {
        v.iter().map(|(n, l, e)| (n.to_string(), *l, *e)).collect()
    }

    #[test]
    fn eval_runs_3_11_use_is_entry() {
        let frames = [
            F::Py("leaf", 4),
            F::Entry("cb", 0),
            F::Py("mid", 7),
            F::Entry("<module>", 2),
        ];
        let (mut p, heap, tid) = process(Layout::V3_11, (3, 11), &frames);
        let got = p.stack(&heap.mem(), tid).unwrap().unwrap();
        // line = firstlineno (100 + 10 * index) + unit / 2
        let want = [
            ("leaf", Some(102), false),
            ("cb", Some(110), true),
            ("mid", Some(123), false),
            ("<module>", Some(131), true),
        ];
        assert_eq!(summary(&got), owned(&want));
    }

    #[test]
    fn eval_runs_3_12_use_shims() {
        let frames = [
            F::Py("leaf", 0),
            F::Py("cb", 0),
            F::Shim,
            F::Py("mid", 0),
            F::Py("<module>", 0),
            F::Shim,
        ];
        let (mut p, heap, tid) = process(Layout::V3_12, (3, 12), &frames);
        let got = p.stack(&heap.mem(), tid).unwrap().unwrap();
        let want = [
            ("leaf", Some(100), false),
            ("cb", Some(110), true),
            ("mid", Some(130), false),
            ("<module>", Some(140), true),
        ];
        assert_eq!(summary(&got), owned(&want));
    }

    #[test]
    fn frames_outside_the_chunk_are_read_one_by_one() {
        let frames = [
            F::Py("leaf", 2),
            F::Shim,
            F::Py("mid", 0),
            F::Py("<module>", 4),
            F::Shim,
        ];
        let (mut a, heap_a, tid) = build(Layout::V3_12, (3, 12), &frames, true);
        let (mut b, heap_b, _) = build(Layout::V3_12, (3, 12), &frames, false);
        let want = [
            ("leaf", Some(101), true),
            ("mid", Some(120), false),
            ("<module>", Some(132), true),
        ];
        assert_eq!(
            summary(&a.stack(&heap_a.mem(), tid).unwrap().unwrap()),
            owned(&want)
        );
        assert_eq!(
            summary(&b.stack(&heap_b.mem(), tid).unwrap().unwrap()),
            owned(&want)
        );
    }

    #[test]
    fn recursion_reads_each_code_header_once() {
        struct Counting<'a>(crate::memory::SliceMemory<'a>, std::cell::Cell<u32>);
        impl ReadMemory for Counting<'_> {
            fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
                self.1.set(self.1.get() + 1);
                self.0.read(addr, buf)
            }
        }
        let (mut p, mut heap, tid) = process(
            Layout::V3_13_LIKE,
            (3, 13),
            &[F::Py("f", 0), F::Py("g", 0), F::Py("h", 0)],
        );
        // make all three frames run the same code object
        let l = Layout::V3_13_LIKE;
        let thread = p.thread(&heap.mem(), tid).unwrap().unwrap();
        let read_u64 = |heap: &Heap, addr: u64| heap.mem().read_u64(addr).unwrap();
        let first_code = read_u64(&heap, thread.frame + l.frame_code);
        let second = read_u64(&heap, thread.frame + l.frame_previous);
        let third = read_u64(&heap, second + l.frame_previous);
        heap.put_u64(second, l.frame_code, first_code);
        heap.put_u64(third, l.frame_code, first_code);
        let mem = Counting(heap.mem(), std::cell::Cell::new(0));
        assert_eq!(
            names_of(&p.stack(&mem, tid).unwrap().unwrap()),
            ["f", "f", "f"]
        );
        let cold = mem.1.replace(0);
        assert_eq!(
            names_of(&p.stack(&mem, tid).unwrap().unwrap()),
            ["f", "f", "f"]
        );
        // warm: thread state, chunk copy, one code header
        assert_eq!(mem.1.get(), 3, "cold walk took {cold} reads");
    }

    fn names_of(frames: &[PyFrame]) -> Vec<&str> {
        frames.iter().map(|f| f.function.as_str()).collect()
    }

    #[test]
    fn non_code_executables() {
        let frames = [
            F::Shim,
            F::Py("leaf", 0),
            F::NotCode,
            F::Py("<module>", 0),
            F::Shim,
        ];
        // 3.13 skips them (use the 3.12 offsets with 3.13 rules: only the rules differ here)
        let (mut p, heap, tid) = process(Layout::V3_12, (3, 13), &frames);
        let got = p.stack(&heap.mem(), tid).unwrap().unwrap();
        assert_eq!(
            summary(&got),
            owned(&[("leaf", Some(110), false), ("<module>", Some(130), true)])
        );
        // before 3.13 a non-code f_code means the read was torn
        let (mut p, heap, tid) = process(Layout::V3_12, (3, 12), &frames);
        let err = p.stack(&heap.mem(), tid).unwrap_err();
        assert!(err.to_string().contains("not a code object"), "{err}");
    }

    #[test]
    fn empty_and_missing_threads() {
        let (mut p, heap, tid) = process(Layout::V3_12, (3, 12), &[]);
        assert_eq!(p.stack(&heap.mem(), tid).unwrap(), Some(vec![]));
        assert_eq!(p.stack(&heap.mem(), tid + 1).unwrap(), None);
        // a second miss inside RESCAN_INTERVAL does not scan
        assert!(p.misses.contains_key(&(tid + 1)));
        let empty = crate::memory::SliceMemory {
            base: 0,
            bytes: &[],
        };
        assert_eq!(p.stack(&empty, tid + 1).unwrap(), None);
    }

    /// 3.8 to 3.10: the tid's offset in `struct pthread` is where the most
    /// threads hold distinct live tids, glibc's where it does as well as any;
    /// not a field that holds the main thread's tid in every one.
    #[test]
    fn pthread_tids_are_found_where_most_threads_hold_theirs() {
        let (mut p, mut heap, _) = process(Layout::V3_12, (3, 12), &[]);
        p.pid = std::process::id();
        let main = p.pid;
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() } as u32;
        let pthread = |heap: &mut Heap, at: &[(u64, u32)]| {
            let a = heap.alloc(PTHREAD_SEARCH);
            for &(off, tid) in at {
                heap.put(a, off, &tid.to_le_bytes());
            }
            a
        };
        let a = pthread(&mut heap, &[(GLIBC_PTHREAD_TID, main), (0x2d4, main)]);
        let b = pthread(&mut heap, &[(GLIBC_PTHREAD_TID, me), (0x2d4, main)]);
        // A thread that exited: its tid cleared.
        let gone = pthread(&mut heap, &[(0x2d4, main)]);
        p.find_pthread_tid(&heap.mem(), &[a, b, gone]);
        assert_eq!(p.pthread_tid, Some(GLIBC_PTHREAD_TID));
        // Another C library's place, alone.
        let c = pthread(&mut heap, &[(0x38, main)]);
        let d = pthread(&mut heap, &[(0x38, me)]);
        p.find_pthread_tid(&heap.mem(), &[c, d]);
        assert_eq!(p.pthread_tid, Some(0x38));
        // Two places doing as well, neither glibc's: none, looked for again.
        let e = pthread(&mut heap, &[(0x40, main), (0x48, main)]);
        p.find_pthread_tid(&heap.mem(), &[e]);
        assert_eq!(p.pthread_tid, None);
        p.find_pthread_tid(&heap.mem(), &[]);
        assert_eq!(p.pthread_tid, None);
    }

    #[test]
    fn cached_thread_state_is_revalidated() {
        let (mut p, mut heap, tid) = process(Layout::V3_12, (3, 12), &[F::Py("leaf", 0)]);
        assert_eq!(p.stack(&heap.mem(), tid).unwrap().unwrap().len(), 1);
        let tstate = p.threads[&tid];
        // The thread state now belongs to another thread: our tid is gone.
        heap.put_u64(tstate, Layout::V3_12.tstate_native_thread_id, 999);
        assert_eq!(p.stack(&heap.mem(), tid).unwrap(), None);
        assert_eq!(p.stack(&heap.mem(), 999).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn cycles_are_errors() {
        let (mut p, mut heap, tid) =
            process(Layout::V3_13_LIKE, (3, 13), &[F::Py("a", 0), F::Py("b", 0)]);
        // point b.previous back at a
        let l = Layout::V3_13_LIKE;
        let a = p.thread(&heap.mem(), tid).unwrap().unwrap().frame;
        let b = u64::from_le_bytes(
            heap.bytes[(a - fake::BASE + l.frame_previous) as usize..][..8]
                .try_into()
                .unwrap(),
        );
        heap.put_u64(b, l.frame_previous, a);
        let err = p.stack(&heap.mem(), tid).unwrap_err();
        assert!(err.to_string().contains("loops"), "{err}");
    }

    #[test]
    fn deep_stacks_are_cut() {
        let frames = vec![F::Py("f", 0); MAX_FRAMES + 5];
        let (mut p, heap, tid) = process(Layout::V3_12, (3, 12), &frames);
        assert_eq!(
            p.stack(&heap.mem(), tid).unwrap().unwrap().len(),
            MAX_FRAMES
        );
    }

    #[test]
    fn garbage_memory_never_panics() {
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for layout in [Layout::V3_11, Layout::V3_12, Layout::V3_13_LIKE] {
            for round in 0..500 {
                let (mut p, mut heap, tid) =
                    process(layout, (3, 12), &[F::Py("a", 0), F::Shim, F::Py("b", 1)]);
                // scribble over random bytes, sometimes with pointers into the heap
                for _ in 0..(round % 40) {
                    // fields are 8-aligned: hit them rather than straddle them
                    let at = (next() as usize % heap.bytes.len()) & !7;
                    let v = if next() % 5 == 0 {
                        u64::MAX - u64::from(next() % 4096)
                    } else if next() % 2 == 0 {
                        u64::from(next())
                    } else {
                        fake::BASE + u64::from(next()) % heap.bytes.len() as u64
                    };
                    let end = (at + 8).min(heap.bytes.len());
                    heap.bytes[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
                }
                let _ = p.stack(&heap.mem(), tid);
            }
        }
    }

    #[test]
    fn new_frames_report_their_first_line() {
        let (mut p, mut heap, tid) = process(Layout::V3_12, (3, 12), &[F::Py("fresh", 0)]);
        let frame = p.thread(&heap.mem(), tid).unwrap().unwrap().frame;
        let l = Layout::V3_12;
        let code = u64::from_le_bytes(
            heap.bytes[(frame - fake::BASE + l.frame_code) as usize..][..8]
                .try_into()
                .unwrap(),
        );
        heap.put_u64(frame, l.frame_instr, code + l.code_adaptive - 2);
        assert_eq!(
            p.stack(&heap.mem(), tid).unwrap().unwrap()[0].line,
            Some(100)
        );
        heap.put_u64(frame, l.frame_instr, code + l.code_adaptive - 200);
        assert_eq!(p.stack(&heap.mem(), tid).unwrap().unwrap()[0].line, None);
    }

    impl Layout {
        /// The 3.13 layout read from `_Py_DebugOffsets` of 3.13.0, for fake heaps.
        const V3_13_LIKE: Layout = Layout {
            runtime_interpreters_head: 632,
            interp_next: 7264,
            interp_threads_head: 7344,
            tstate_next: 8,
            tstate_native_thread_id: 160,
            current_frame: CurrentFrame::Direct(72),
            frame_code: 0,
            frame_previous: 8,
            frame_instr: 56,
            frame_owner: 70,
            frame_is_entry: None,
            code_adaptive: 200,
            ..Layout::V3_12
        };
    }
}
