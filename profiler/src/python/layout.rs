//! Where the fields seam reads live inside CPython's structures, per minor
//! version (x86_64 and aarch64 Linux, default non-debug, GIL builds).
//!
//! 3.8 to 3.12 are hard-coded tables (3.8 to 3.10 with frame objects, see
//! [`Layout::frame_objects`]). 3.13 to 3.15 read every offset they can from
//! `_Py_DebugOffsets`, the first field of `_PyRuntime`, and hard-code only
//! what that struct lacks (see [`Layout::from_debug_offsets`]). The struct
//! itself grows with each minor version, so where its sections start is a
//! table per version ([`DebugShape`]).
//!
//! Every number here was checked with `offsetof` against the headers pyenv
//! installs (3.8.18, 3.9.18, 3.10.13, 3.11.7, 3.12.1, 3.13.0) and Debian's
//! (3.14.10, 3.15.2): the test `matches_installed_headers` compiles
//! `fixtures/offsets.c` against each installed version and compares.

/// The owner of the shim frame `_PyEval_EvalFrameDefault` pushes on entry
/// (3.12+): `FRAME_OWNED_BY_CSTACK` in 3.12 and 3.13,
/// `FRAME_OWNED_BY_INTERPRETER` from 3.14 (where `FRAME_OWNED_BY_CSTACK`
/// became 4 and 3.15 dropped it), 3 in all of them. Checked by
/// `fixtures/offsets.c`; the debug offsets do not carry it.
pub(crate) const ENTRY_FRAME_OWNER: u8 = 3;

/// The low bits of `f_executable` that tag the reference from 3.14, where it
/// is a `_PyStackRef` (`Py_TAG_BITS`); the object's address is the rest.
const STACKREF_TAG_BITS: u64 = 0b11;

/// Bits of `PyASCIIObject.state` (a bitfield `interned:2, kind:3, compact:1,
/// ascii:1, ...` in 3.11 to 3.13). Not in the debug offsets.
pub(crate) const STATE_KIND_SHIFT: u32 = 2;
pub(crate) const STATE_KIND_MASK: u32 = 0b111 << STATE_KIND_SHIFT;
pub(crate) const STATE_COMPACT: u32 = 1 << 5;
pub(crate) const STATE_ASCII: u32 = 1 << 6;

/// Offset of `data` in `_PyStackChunk`, the blocks a thread's frames are
/// pushed into (3.11 to 3.13; checked by `offsets.c`).
pub(crate) const CHUNK_DATA: u64 = 24;

/// The most of `_PyRuntime` that [`Layout::from_debug_offsets`] reads: the
/// largest `_Py_DebugOffsets` of the versions in [`DebugShape::ALL`].
pub(crate) const DEBUG_OFFSETS_SIZE: usize = 1024;
pub(crate) const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";

/// Where the sections of one minor version's `_Py_DebugOffsets` start, and
/// the place in `thread_state` of the fields that moved. Every other field
/// seam reads keeps its place in its section from 3.13 to 3.15. Checked
/// against `offsetof` by `matches_installed_headers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DebugShape {
    pub minor: u8,
    /// `sizeof(_Py_DebugOffsets)`.
    pub size: usize,
    pub runtime_state: usize,
    pub interpreter_state: usize,
    pub thread_state: usize,
    pub interpreter_frame: usize,
    pub code_object: usize,
    pub pyobject: usize,
    pub bytes_object: usize,
    pub unicode_object: usize,
    /// Field numbers in `thread_state` (`size` is 0).
    pub tstate_current_frame: usize,
    pub tstate_native_thread_id: usize,
    pub tstate_datastack_chunk: usize,
}

impl DebugShape {
    const V3_13: DebugShape = DebugShape {
        minor: 13,
        size: 584,
        runtime_state: 24,
        interpreter_state: 48,
        thread_state: 152,
        interpreter_frame: 224,
        code_object: 272,
        pyobject: 352,
        bytes_object: 512,
        unicode_object: 536,
        tstate_current_frame: 4,
        tstate_native_thread_id: 6,
        tstate_datastack_chunk: 7,
    };
    /// 3.14 added GIL, generation and debugger fields, and the frame's
    /// `stackpointer` and `tlbc_index`.
    const V3_14: DebugShape = DebugShape {
        minor: 14,
        size: 760,
        runtime_state: 24,
        interpreter_state: 48,
        thread_state: 176,
        interpreter_frame: 248,
        code_object: 312,
        pyobject: 400,
        bytes_object: 592,
        unicode_object: 616,
        ..DebugShape::V3_13
    };
    /// 3.15 put `base_frame` and the profiler's fields in `thread_state`
    /// ahead of `thread_id`, and an exception section after it.
    const V3_15: DebugShape = DebugShape {
        minor: 15,
        size: 888,
        runtime_state: 24,
        interpreter_state: 48,
        thread_state: 176,
        interpreter_frame: 312,
        code_object: 376,
        pyobject: 464,
        bytes_object: 688,
        unicode_object: 712,
        tstate_current_frame: 4,
        tstate_native_thread_id: 9,
        tstate_datastack_chunk: 10,
    };
    pub(crate) const ALL: [DebugShape; 3] =
        [DebugShape::V3_13, DebugShape::V3_14, DebugShape::V3_15];

    fn for_minor(minor: u64) -> Option<DebugShape> {
        DebugShape::ALL
            .into_iter()
            .find(|s| u64::from(s.minor) == minor)
    }
}

/// How to get from a `PyThreadState` to its innermost `_PyInterpreterFrame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CurrentFrame {
    /// 3.11, 3.12: `tstate->cframe->current_frame` (`_PyCFrame` lives on the C stack).
    ViaCFrame { cframe: u64, current_frame: u64 },
    /// 3.13: `tstate->current_frame`.
    Direct(u64),
}

/// Byte offsets (and a few sizes) of the fields the reader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub runtime_interpreters_head: u64,
    pub interp_next: u64,
    pub interp_threads_head: u64,
    pub tstate_next: u64,
    pub tstate_native_thread_id: u64,
    /// `datastack_chunk`; `datastack_top` follows it (8 bytes later).
    pub tstate_datastack_chunk: u64,
    pub current_frame: CurrentFrame,
    /// `f_code` (3.11, 3.12) or `f_executable` (3.13+).
    pub frame_code: u64,
    /// The bits of `frame_code` that tag the reference rather than address
    /// the object (3.14+, a `_PyStackRef`), masked off before it is read.
    pub frame_code_tag: u64,
    pub frame_previous: u64,
    /// `prev_instr` (3.11, 3.12) or `instr_ptr` (3.13).
    pub frame_instr: u64,
    /// A `char`.
    pub frame_owner: u64,
    /// 3.11 only: a `bool` marking the first frame of an eval-loop run.
    pub frame_is_entry: Option<u64>,
    pub code_filename: u64,
    pub code_qualname: u64,
    pub code_linetable: u64,
    /// An `int`.
    pub code_firstlineno: u64,
    pub code_adaptive: u64,
    pub ob_type: u64,
    pub bytes_size: u64,
    pub bytes_sval: u64,
    pub unicode_length: u64,
    /// A 32-bit bitfield, see `STATE_*`.
    pub unicode_state: u64,
    /// `sizeof(PyASCIIObject)`: where compact ASCII data starts.
    pub unicode_ascii_size: u64,
    /// `sizeof(PyCompactUnicodeObject)`: where compact non-ASCII data starts,
    /// and where a legacy (non-compact) string keeps its data pointer.
    pub unicode_compact_size: u64,
    /// 3.10: frames are `PyFrameObject`s (`frame_previous` is `f_back`,
    /// `frame_instr` the `int f_lasti`, an index of 2-byte code units into
    /// `co_code`), each run by an eval loop of its own; a thread state keeps
    /// no data stack, and `tstate_native_thread_id` is `thread_id`, the
    /// thread's `pthread_t`; `code_qualname` is `co_name` (3.10 has no
    /// qualified names).
    pub frame_objects: bool,
    /// 3.8 and 3.9 (with `frame_objects`): the line table is `co_lnotab`
    /// (at `code_linetable`), and `f_lasti` counts bytes.
    pub lnotab: bool,
}

/// Offsets beyond this are treated as a corrupt `_Py_DebugOffsets`. The
/// reader fetches thread states, frames, code and str headers in one read
/// each, into 512-byte buffers.
pub(crate) const MAX_FIELD_OFFSET: u64 = 496;
/// `PyInterpreterState` is big (about 190 KB in 3.13), so its fields get more room.
const MAX_INTERP_OFFSET: u64 = 1 << 20;

impl Layout {
    /// CPython 3.10 (checked against 3.10.13): see [`Layout::frame_objects`].
    /// The fields 3.10 lacks (the data stack, a frame's owner) point at
    /// fields that are there, and are not read.
    pub(crate) const V3_10: Layout = Layout {
        runtime_interpreters_head: 32,
        interp_next: 0,
        interp_threads_head: 8,
        tstate_next: 8,
        tstate_native_thread_id: 176,
        tstate_datastack_chunk: 0,
        current_frame: CurrentFrame::Direct(24),
        frame_code: 32,
        frame_code_tag: 0,
        frame_previous: 24,
        frame_instr: 96,
        frame_owner: 0,
        frame_is_entry: None,
        code_filename: 104,
        code_qualname: 112,
        code_linetable: 120,
        code_firstlineno: 40,
        code_adaptive: 0,
        ob_type: 8,
        bytes_size: 16,
        bytes_sval: 32,
        unicode_length: 16,
        unicode_state: 32,
        unicode_ascii_size: 48,
        unicode_compact_size: 72,
        frame_objects: true,
        lnotab: false,
    };

    /// CPython 3.8 and 3.9 (checked against 3.8.18 and 3.9.18): as 3.10,
    /// but `f_lasti` (a byte offset) is 8 bytes further on, and the line
    /// table is `co_lnotab` (see [`Layout::lnotab`]).
    pub(crate) const V3_9: Layout = Layout {
        frame_instr: 104,
        lnotab: true,
        ..Layout::V3_10
    };

    /// CPython 3.11 (checked against 3.11.7).
    pub(crate) const V3_11: Layout = Layout {
        runtime_interpreters_head: 40,
        interp_next: 0,
        interp_threads_head: 16,
        tstate_next: 8,
        tstate_native_thread_id: 160,
        tstate_datastack_chunk: 296,
        current_frame: CurrentFrame::ViaCFrame {
            cframe: 56,
            current_frame: 8,
        },
        frame_code: 32,
        frame_code_tag: 0,
        frame_previous: 48,
        frame_instr: 56,
        frame_owner: 69,
        frame_is_entry: Some(68),
        code_filename: 112,
        code_qualname: 128,
        code_linetable: 136,
        code_firstlineno: 72,
        code_adaptive: 184,
        ob_type: 8,
        bytes_size: 16,
        bytes_sval: 32,
        unicode_length: 16,
        unicode_state: 32,
        unicode_ascii_size: 48,
        unicode_compact_size: 72,
        frame_objects: false,
        lnotab: false,
    };

    /// CPython 3.12 (checked against 3.12.1).
    pub(crate) const V3_12: Layout = Layout {
        runtime_interpreters_head: 40,
        interp_next: 0,
        interp_threads_head: 72,
        tstate_next: 8,
        tstate_native_thread_id: 144,
        tstate_datastack_chunk: 232,
        current_frame: CurrentFrame::ViaCFrame {
            cframe: 56,
            current_frame: 0,
        },
        frame_code: 0,
        frame_code_tag: 0,
        frame_previous: 8,
        frame_instr: 56,
        frame_owner: 70,
        frame_is_entry: None,
        code_filename: 112,
        code_qualname: 128,
        code_linetable: 136,
        code_firstlineno: 68,
        code_adaptive: 192,
        ob_type: 8,
        bytes_size: 16,
        bytes_sval: 32,
        unicode_length: 16,
        unicode_state: 32,
        unicode_ascii_size: 40,
        unicode_compact_size: 56,
        frame_objects: false,
        lnotab: false,
    };

    /// Builds the layout of 3.13 to 3.15 from the bytes of
    /// `_Py_DebugOffsets` (the start of `_PyRuntime`). Checks the cookie,
    /// that `version` is one whose [`DebugShape`] seam knows, and that the
    /// build is not free-threaded.
    ///
    /// Hard-coded because the struct lacks them: the unicode `state` bit
    /// layout, `sizeof(PyCompactUnicodeObject)` (= `asciiobject_size` + 16:
    /// `utf8_length` and `utf8`), [`ENTRY_FRAME_OWNER`], the tag bits of a
    /// `_PyStackRef`, `datastack_top` (the field after `datastack_chunk`),
    /// `_PyStackChunk.data`, and the field widths (`owner` is a `char`,
    /// `co_firstlineno` an `int`).
    pub(crate) fn from_debug_offsets(d: &[u8]) -> Result<Layout, String> {
        if d.len() < 24 {
            return Err("_Py_DebugOffsets is truncated".into());
        }
        if &d[..8] != DEBUG_COOKIE {
            return Err(
                "_PyRuntime does not start with the _Py_DebugOffsets cookie \"xdebugpy\"".into(),
            );
        }
        let u = |at: usize| u64::from_le_bytes(d[at..at + 8].try_into().expect("8 bytes"));
        let version = u(8);
        let (major, minor) = (version >> 24, (version >> 16) & 0xff);
        let shape = DebugShape::for_minor(minor)
            .filter(|_| major == 3)
            .ok_or_else(|| {
                format!(
                    "_Py_DebugOffsets says version {major}.{minor} ({version:#x}); seam reads the \
                 debug offsets of 3.13 to 3.15"
                )
            })?;
        if d.len() < shape.size {
            return Err("_Py_DebugOffsets is truncated".into());
        }
        if u(16) != 0 {
            return Err(format!(
                "free-threaded builds (3.{minor}t) are not supported"
            ));
        }
        // A section's start, then its field number * 8.
        let field = |section: usize, index: usize| u(section + 8 * index);
        let s = shape;
        let ascii_size = field(s.unicode_object, 3);
        let layout = Layout {
            runtime_interpreters_head: field(s.runtime_state, 2),
            interp_next: field(s.interpreter_state, 2),
            interp_threads_head: field(s.interpreter_state, 3),
            tstate_next: field(s.thread_state, 2),
            tstate_native_thread_id: field(s.thread_state, s.tstate_native_thread_id),
            tstate_datastack_chunk: field(s.thread_state, s.tstate_datastack_chunk),
            current_frame: CurrentFrame::Direct(field(s.thread_state, s.tstate_current_frame)),
            frame_code: field(s.interpreter_frame, 2),
            frame_code_tag: if minor >= 14 { STACKREF_TAG_BITS } else { 0 },
            frame_previous: field(s.interpreter_frame, 1),
            frame_instr: field(s.interpreter_frame, 3),
            frame_owner: field(s.interpreter_frame, 5),
            frame_is_entry: None,
            code_filename: field(s.code_object, 1),
            code_qualname: field(s.code_object, 3),
            code_linetable: field(s.code_object, 4),
            code_firstlineno: field(s.code_object, 5),
            code_adaptive: field(s.code_object, 9),
            ob_type: field(s.pyobject, 1),
            bytes_size: field(s.bytes_object, 1),
            bytes_sval: field(s.bytes_object, 2),
            unicode_length: field(s.unicode_object, 2),
            unicode_state: field(s.unicode_object, 1),
            unicode_ascii_size: ascii_size,
            unicode_compact_size: ascii_size.saturating_add(16),
            frame_objects: false,
            lnotab: false,
        };
        layout.check()?;
        Ok(layout)
    }

    /// Rejects offsets that cannot be right, so garbage never drives a huge read.
    fn check(&self) -> Result<(), String> {
        let CurrentFrame::Direct(current_frame) = self.current_frame else {
            unreachable!("only 3.13+ layouts are checked")
        };
        let small = [
            self.tstate_next,
            self.tstate_native_thread_id,
            self.tstate_datastack_chunk,
            current_frame,
            self.frame_code,
            self.frame_previous,
            self.frame_instr,
            self.frame_owner,
            self.code_filename,
            self.code_qualname,
            self.code_linetable,
            self.code_firstlineno,
            self.code_adaptive,
            self.ob_type,
            self.bytes_size,
            self.bytes_sval,
            self.unicode_length,
            self.unicode_state,
            self.unicode_ascii_size,
            self.unicode_compact_size,
        ];
        let big = [
            self.runtime_interpreters_head,
            self.interp_next,
            self.interp_threads_head,
        ];
        let bad = small.iter().any(|&o| o > MAX_FIELD_OFFSET)
            || big.iter().any(|&o| o > MAX_INTERP_OFFSET)
            || self.bytes_size > 56;
        if bad {
            return Err("_Py_DebugOffsets holds implausible offsets".into());
        }
        Ok(())
    }

    /// The smallest read that covers `native_thread_id`, the current-frame
    /// pointer and `datastack_chunk`/`datastack_top` of a `PyThreadState`.
    pub(crate) fn tstate_block(&self) -> usize {
        let frame_field = match self.current_frame {
            CurrentFrame::ViaCFrame { cframe, .. } => cframe,
            CurrentFrame::Direct(off) => off,
        };
        (self
            .tstate_native_thread_id
            .max(frame_field)
            .max(self.tstate_datastack_chunk + 8)
            + 8) as usize
    }

    /// The smallest read that covers the `_PyInterpreterFrame` fields used.
    pub(crate) fn frame_block(&self) -> usize {
        let last = [
            self.frame_code + 8,
            self.frame_previous + 8,
            self.frame_instr + 8,
            self.frame_owner + 1,
        ];
        let last = last
            .into_iter()
            .chain(self.frame_is_entry.map(|o| o + 1))
            .max()
            .unwrap_or(0);
        last as usize
    }

    /// The smallest read that covers the code-object header fields used.
    pub(crate) fn code_block(&self) -> usize {
        [
            self.ob_type + 8,
            self.code_filename + 8,
            self.code_qualname + 8,
            self.code_linetable + 8,
            self.code_firstlineno + 4,
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::tests_support::{python_prefix, require_or_skip, runtime_file};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::Command;

    /// Compiles and runs `fixtures/offsets.c` against one installed CPython.
    fn header_offsets(prefix: &Path, minor: &str) -> Result<BTreeMap<String, u64>, String> {
        let include = prefix.join(format!("include/python{minor}"));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/python/fixtures/offsets.c");
        let exe = std::env::temp_dir().join(format!("seam-offsets-{minor}-{}", std::process::id()));
        // Debian's `pyconfig.h` includes `<x86_64-linux-gnu/python3.X/pyconfig.h>`.
        let out = Command::new("gcc")
            .arg(format!("-I{}", include.display()))
            .arg(format!("-I{}", prefix.join("include").display()))
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .map_err(|e| format!("gcc: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "gcc failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let run = Command::new(&exe)
            .output()
            .map_err(|e| format!("{}: {e}", exe.display()));
        let _ = std::fs::remove_file(&exe);
        let run = run?;
        Ok(String::from_utf8_lossy(&run.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect())
    }

    fn named(l: &Layout) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("runtime.interpreters_head", l.runtime_interpreters_head),
            ("interp.next", l.interp_next),
            ("interp.threads_head", l.interp_threads_head),
            ("tstate.next", l.tstate_next),
            ("tstate.native_thread_id", l.tstate_native_thread_id),
            ("tstate.datastack_chunk", l.tstate_datastack_chunk),
            ("tstate.datastack_top", l.tstate_datastack_chunk + 8),
            ("chunk.data", CHUNK_DATA),
            ("frame.code", l.frame_code),
            ("frame.previous", l.frame_previous),
            ("frame.instr", l.frame_instr),
            ("frame.owner", l.frame_owner),
            ("code.filename", l.code_filename),
            ("code.qualname", l.code_qualname),
            ("code.linetable", l.code_linetable),
            ("code.firstlineno", l.code_firstlineno),
            ("code.code_adaptive", l.code_adaptive),
            ("object.ob_type", l.ob_type),
            ("bytes.ob_size", l.bytes_size),
            ("bytes.ob_sval", l.bytes_sval),
            ("unicode.length", l.unicode_length),
            ("unicode.state", l.unicode_state),
            ("unicode.ascii_size", l.unicode_ascii_size),
            ("unicode.compact_size", l.unicode_compact_size),
            ("unicode.kind_mask", u64::from(STATE_KIND_MASK)),
            ("unicode.compact_mask", u64::from(STATE_COMPACT)),
            ("unicode.ascii_mask", u64::from(STATE_ASCII)),
        ];
        if l.frame_objects {
            // 3.10 has none of these (see `Layout::frame_objects`).
            let absent = [
                "tstate.datastack_chunk",
                "tstate.datastack_top",
                "chunk.data",
                "frame.owner",
                "code.code_adaptive",
            ];
            v.retain(|(name, _)| !absent.contains(name));
        }
        match l.current_frame {
            CurrentFrame::ViaCFrame {
                cframe,
                current_frame,
            } => {
                v.push(("tstate.cframe", cframe));
                v.push(("cframe.current_frame", current_frame));
            }
            CurrentFrame::Direct(off) => v.push(("tstate.current_frame", off)),
        }
        match l.frame_is_entry {
            Some(off) => v.push(("frame.is_entry", off)),
            None if l.frame_objects => {}
            None => v.push(("frame.entry_owner", u64::from(ENTRY_FRAME_OWNER))),
        }
        v
    }

    #[test]
    fn matches_installed_headers() {
        let minors = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];
        for minor in minors {
            let Some(prefix) = python_prefix(minor) else {
                require_or_skip(&format!("layout: no CPython {minor} installed"));
                continue;
            };
            let c = match header_offsets(&prefix, minor) {
                Ok(c) => c,
                Err(e) => {
                    require_or_skip(&format!("layout: cannot build offsets.c for {minor}: {e}"));
                    continue;
                }
            };
            let layout = match minor {
                "3.8" | "3.9" => Layout::V3_9,
                "3.10" => Layout::V3_10,
                "3.11" => Layout::V3_11,
                "3.12" => Layout::V3_12,
                _ => {
                    let shape = DebugShape::ALL
                        .into_iter()
                        .find(|s| minor == format!("3.{}", s.minor))
                        .unwrap_or_else(|| panic!("no DebugShape for {minor}"));
                    assert_eq!(c["debug.size"], shape.size as u64, "{minor}");
                    assert!(shape.size <= DEBUG_OFFSETS_SIZE);
                    let expected_sections = [
                        ("debug.runtime_state", shape.runtime_state),
                        ("debug.interpreter_state", shape.interpreter_state),
                        ("debug.thread_state", shape.thread_state),
                        ("debug.interpreter_frame", shape.interpreter_frame),
                        ("debug.code_object", shape.code_object),
                        ("debug.pyobject", shape.pyobject),
                        ("debug.bytes_object", shape.bytes_object),
                        ("debug.unicode_object", shape.unicode_object),
                    ];
                    for (name, off) in expected_sections {
                        assert_eq!(c[name], off as u64, "{minor} {name}");
                    }
                    let file = runtime_file(&prefix, minor);
                    let image = crate::python::locate::runtime_image_for_tests(&file);
                    Layout::from_debug_offsets(&image)
                        .unwrap_or_else(|e| panic!("{minor} debug offsets: {e}"))
                }
            };
            for (name, ours) in named(&layout) {
                let theirs = c
                    .get(name)
                    .unwrap_or_else(|| panic!("offsets.c printed no {name} for {minor}"));
                assert_eq!(ours, *theirs, "CPython {minor}: {name}");
            }
        }
    }

    /// A `_Py_DebugOffsets` of `shape` with `version` and offsets that pass.
    fn debug_image(shape: DebugShape, version: u64) -> Vec<u8> {
        let mut d = vec![0u8; shape.size];
        d[..8].copy_from_slice(DEBUG_COOKIE);
        d[8..16].copy_from_slice(&version.to_le_bytes());
        d
    }

    #[test]
    fn debug_offsets_are_validated() {
        let mut d = debug_image(DebugShape::V3_13, 0);
        d[..8].fill(0);
        assert!(Layout::from_debug_offsets(&d)
            .unwrap_err()
            .contains("cookie"));
        d[..8].copy_from_slice(DEBUG_COOKIE);
        d[8..16].copy_from_slice(&0x030c_01f0u64.to_le_bytes());
        assert_eq!(
            Layout::from_debug_offsets(&d).unwrap_err(),
            "_Py_DebugOffsets says version 3.12 (0x30c01f0); seam reads the debug offsets of 3.13 to 3.15"
        );
        d[8..16].copy_from_slice(&0x0310_00a1u64.to_le_bytes());
        assert!(Layout::from_debug_offsets(&d)
            .unwrap_err()
            .contains("version 3.16"));
        d[8..16].copy_from_slice(&0x030d_00f0u64.to_le_bytes());
        d[16] = 1;
        assert_eq!(
            Layout::from_debug_offsets(&d).unwrap_err(),
            "free-threaded builds (3.13t) are not supported"
        );
        d[16] = 0;
        d[200..208].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Layout::from_debug_offsets(&d)
            .unwrap_err()
            .contains("implausible"));
        assert!(Layout::from_debug_offsets(&d[..100])
            .unwrap_err()
            .contains("truncated"));
        // 3.15's is longer than 3.13's: 3.13's length is not enough.
        let mut d = debug_image(DebugShape::V3_15, 0x030f_02f0);
        d.truncate(DebugShape::V3_13.size);
        assert!(Layout::from_debug_offsets(&d)
            .unwrap_err()
            .contains("truncated"));
    }

    /// Each version's native thread id is read from its own field number:
    /// 3.15 moved it from 6 to 9.
    #[test]
    fn thread_fields_follow_the_version() {
        for (shape, version) in [
            (DebugShape::V3_13, 0x030d_00f0u64),
            (DebugShape::V3_14, 0x030e_0af0),
            (DebugShape::V3_15, 0x030f_02f0),
        ] {
            let mut d = debug_image(shape, version);
            let put = |d: &mut Vec<u8>, at: usize, v: u64| {
                d[at..at + 8].copy_from_slice(&v.to_le_bytes());
            };
            put(
                &mut d,
                shape.thread_state + 8 * shape.tstate_native_thread_id,
                160,
            );
            put(
                &mut d,
                shape.thread_state + 8 * shape.tstate_current_frame,
                72,
            );
            put(&mut d, shape.interpreter_frame + 8 * 5, 74);
            let l = Layout::from_debug_offsets(&d).unwrap();
            assert_eq!(l.tstate_native_thread_id, 160, "3.{}", shape.minor);
            assert_eq!(l.current_frame, CurrentFrame::Direct(72));
            assert_eq!(l.frame_owner, 74);
            assert_eq!(l.frame_code_tag, if shape.minor >= 14 { 3 } else { 0 });
        }
    }

    #[test]
    fn block_sizes_cover_fields() {
        assert_eq!(Layout::V3_11.tstate_block(), 312);
        assert_eq!(Layout::V3_12.tstate_block(), 248);
        assert_eq!(Layout::V3_11.frame_block(), 70);
        assert_eq!(Layout::V3_12.frame_block(), 71);
        assert_eq!(Layout::V3_11.code_block(), 144);
    }
}
