//! Crossings found on a stack: where a call passes from one runtime to
//! another, through which mechanism, and which glue frames carry it.
//!
//! A crossing is read off a classified stack (root first): between two
//! frames owned by different runtimes, the glue frames in between name the
//! mechanism. CPython 3.11+ calls a warm C function straight from the eval
//! loop, so a Python frame followed directly by another module's frame is a
//! C-extension crossing even with no glue in between.

use crate::classify::is_rust_path;
use seam_proto::{Frame, Mechanism, Runtime};
use std::ops::Range;

/// One crossing on a stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crossing {
    pub caller: Runtime,
    pub callee: Runtime,
    pub mechanism: Mechanism,
    /// Root-first indexes of the glue frames that carry the call (may be empty).
    pub glue: Range<usize>,
    /// Root-first index of the callee's first frame.
    pub callee_at: usize,
}

/// Glue frame names that identify a mechanism, checked in order.
const MECHANISM_BY_GLUE: &[(&str, Mechanism)] = &[
    ("PyCFuncPtr_call", Mechanism::Ctypes),
    ("_ctypes_callproc", Mechanism::Ctypes),
    ("cdata_call", Mechanism::CffiAbi),
    ("cffistatic_ffi_call", Mechanism::CffiAbi),
    ("_cffi_f_", Mechanism::CffiApi),
    ("crosscall2", Mechanism::CgoExport),
    // Before `runtime.cgocall`, which is a prefix of it.
    ("runtime.cgocallback", Mechanism::CgoExport),
    ("runtime.cgocall", Mechanism::CgoCall),
    ("runtime.asmcgocall", Mechanism::CgoCall),
];

/// Modules whose glue frames identify a mechanism where the frame has no name
/// that does: a stripped `_ctypes` (Debian's and Ubuntu's CPython, which
/// export only its module init function) or `_cffi_backend`. cffi's API mode
/// is named by its wrapper (`_cffi_f_`), which calls the backend only for
/// conversions, after itself on the stack. Only for calls from Python: a
/// callback comes back through the same modules.
const MECHANISM_BY_MODULE: &[(&str, Mechanism)] = &[
    ("_ctypes", Mechanism::Ctypes),
    ("_cffi_backend", Mechanism::CffiAbi),
];

/// C libraries that every runtime calls as part of itself: a call into them
/// is not a crossing into user C code.
const SYSTEM_LIBRARIES: &[&str] = &[
    "libc.so",
    "libm.so",
    "ld-linux",
    "libpthread",
    "libgcc_s",
    "libdl.so",
    // C++'s runtime (its streams' static initialisation, its allocator).
    "libstdc++",
    "libc++",
    "[vdso]",
];

/// Code that every runtime uses as part of itself: the interpreter's own C
/// (not a Python function), the system libraries, Go's runtime, Rust's
/// standard library. Called from glue, it does the glue's work (converting
/// arguments, allocating, taking locks): see [`glue_mask`].
pub fn is_support(f: &Frame) -> bool {
    let support = match f.runtime {
        Runtime::Python => f.module.is_some(),
        Runtime::Go => ["runtime.", "internal/", "sync/atomic."]
            .iter()
            .any(|p| f.name.starts_with(p)),
        Runtime::Rust => is_rust_path(&f.name),
        _ => false,
    };
    support || is_system(f)
}

/// For each frame of a root-first stack, whether it carries a call across
/// runtimes: a glue frame, or support code ([`is_support`]) that glue called,
/// directly or through other support code. The interpreter's generic C-call
/// path (`cfunction_vectorcall_*`, `_PyObject_MakeTpCall`) also calls the
/// interpreter's own builtins, which cross nothing: what it calls is glue only
/// through other glue (ctypes' `PyCFuncPtr_call`). Kernel frames are never
/// glue here.
pub fn glue_mask(frames: &[Frame]) -> Vec<bool> {
    const GENERIC_CALL: &[&str] = &[
        "cfunction_vectorcall_",
        "cfunction_call",
        "method_vectorcall_",
        "_PyObject_MakeTpCall",
    ];
    let mut in_glue = false;
    frames
        .iter()
        .map(|f| match f.runtime {
            Runtime::Glue => {
                in_glue = !GENERIC_CALL.iter().any(|p| f.name.starts_with(p));
                true
            }
            Runtime::Kernel => false,
            _ if is_support(f) => in_glue,
            _ => {
                in_glue = false;
                false
            }
        })
        .collect()
}

fn owner(f: &Frame) -> bool {
    matches!(
        f.runtime,
        Runtime::Python | Runtime::C | Runtime::Go | Runtime::Rust
    )
}

/// A frame in a C library every runtime uses as part of itself (libc, the loader).
pub fn is_system(f: &Frame) -> bool {
    f.module
        .as_deref()
        .is_some_and(|m| SYSTEM_LIBRARIES.iter().any(|s| m.starts_with(s)))
}

/// The crossings on a root-first stack, rootmost first.
pub fn find_crossings(frames: &[Frame]) -> Vec<Crossing> {
    let mut out = Vec::new();
    let mut last: Option<usize> = None;
    let glue = glue_mask(frames);
    for (i, f) in frames.iter().enumerate() {
        if !owner(f) || glue[i] {
            continue;
        }
        if let Some(prev) = last {
            let caller = &frames[prev];
            let glue = prev + 1..i;
            if let Some(mechanism) = mechanism(caller, f, &frames[glue.clone()]) {
                out.push(Crossing {
                    caller: caller.runtime,
                    callee: f.runtime,
                    mechanism,
                    glue,
                    callee_at: i,
                });
            }
        }
        last = Some(i);
    }
    out
}

/// A PyO3 entry trampoline: PyO3's own (`pyo3::impl_::trampoline::*`), or
/// one its macros generate in the crate for a class's methods (legacy
/// demangling: `rpds::<impl pyo3::impl_::pyclass::PyMethods<T> for
/// ..>::py_methods::ITEMS::trampoline`; v0: `<.. as pyo3::..>::..::trampoline`).
pub fn is_pyo3_trampoline(name: &str) -> bool {
    name.starts_with("pyo3::impl_::trampoline::")
        || (name.ends_with("::trampoline")
            && (name.contains("<impl pyo3::")
                || name.contains(" as pyo3::")
                || name.contains("::_PYO3_DEF::")))
}

/// The mechanism whose glue lives in `module` (a file name), by
/// [`MECHANISM_BY_MODULE`].
pub fn mechanism_of_module(module: &str) -> Option<Mechanism> {
    MECHANISM_BY_MODULE
        .iter()
        .find(|(p, _)| module.starts_with(p))
        .map(|&(_, m)| m)
}

fn mechanism_of_glue(caller: &Frame, glue: &[Frame]) -> Option<Mechanism> {
    let from_python = caller.runtime == Runtime::Python;
    glue.iter()
        .filter(|g| g.runtime == Runtime::Glue)
        .find_map(|g| {
            if is_pyo3_trampoline(&g.name) {
                return Some(Mechanism::Pyo3);
            }
            let by_name = MECHANISM_BY_GLUE
                .iter()
                .find(|(p, _)| g.name.starts_with(p));
            let by_module = || mechanism_of_module(g.module.as_deref().filter(|_| from_python)?);
            by_name.map(|&(_, m)| m).or_else(by_module)
        })
}

/// The mechanism of a call still in its glue (its callee not yet on the
/// stack), from the caller and the glue frames after it.
pub fn pending_mechanism(caller: &Frame, glue: &[Frame]) -> Option<Mechanism> {
    match (caller.runtime, mechanism_of_glue(caller, glue)) {
        (_, Some(m)) => Some(m),
        // The interpreter's C-call path of builtin functions and methods
        // leads to a C extension (or to the interpreter's own builtins).
        // `_PyObject_MakeTpCall` alone says nothing: it calls any callable
        // object (ctypes' and cffi's function pointers, classes).
        (Runtime::Python, None)
            if glue.iter().any(|g| {
                g.name.starts_with("cfunction_") || g.name.starts_with("method_vectorcall_")
            }) =>
        {
            Some(Mechanism::Cext)
        }
        _ => None,
    }
}

/// The callee of a call still in its glue, where the glue says: the cgo
/// callback path (`crosscall2`, `runtime.cgocallback*`, `runtime.needm`) only
/// ever leads into Go, PyO3's trampolines only into Rust.
pub fn pending_callee(glue: &[Frame]) -> Runtime {
    if glue.iter().any(|g| is_pyo3_trampoline(&g.name)) {
        return Runtime::Rust;
    }
    const INTO_GO: &[&str] = &[
        "crosscall2",
        "runtime.cgocallback",
        "runtime.needm",
        "runtime.needAndBindM",
    ];
    if glue
        .iter()
        .any(|g| INTO_GO.iter().any(|p| g.name.starts_with(p)))
    {
        Runtime::Go
    } else {
        Runtime::Unknown
    }
}

fn mechanism(caller: &Frame, callee: &Frame, glue: &[Frame]) -> Option<Mechanism> {
    let by_glue = mechanism_of_glue(caller, glue);
    if caller.runtime == callee.runtime {
        // Same runtime on both sides: only cgo's round trips through glue count
        // (Go → C → Go shows as go, glue, go when the C part is inlined glue).
        return None;
    }
    if is_system(callee) || is_system(caller) {
        return None;
    }
    match (caller.runtime, callee.runtime, by_glue) {
        (_, Runtime::Python, _) if glue.iter().any(|g| g.runtime == Runtime::Glue) => {
            Some(Mechanism::Callback)
        }
        (_, Runtime::Python, _) => None,
        (Runtime::Python, _, Some(m)) => Some(m),
        // A Python frame calling another module directly: a C extension
        // (3.11+ calls warm C functions from the eval loop), or the
        // interpreter's own call path (`_PyObject_VectorcallTstate`) calling
        // one that is not a builtin function object, as Cython's are (lxml's
        // `fromstring`), or a type's slot (a deallocator, an iterator's next),
        // in another module.
        (Runtime::Python, _, None)
            if caller.module.is_none()
                || caller.module != callee.module
                || glue.iter().any(|g| g.runtime == Runtime::Glue) =>
        {
            Some(Mechanism::Cext)
        }
        (Runtime::Python, _, None) => None,
        (_, _, Some(m @ (Mechanism::CgoExport | Mechanism::CgoCall))) => Some(m),
        (Runtime::C, Runtime::Rust, _) | (Runtime::Rust, Runtime::C, _) => Some(Mechanism::CAbi),
        (_, _, Some(m)) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rt: Runtime, name: &str) -> Frame {
        Frame {
            module: Some("m.so".into()),
            ..Frame::new(name, rt)
        }
    }

    fn py(name: &str) -> Frame {
        Frame {
            file: Some("x.py".into()),
            ..Frame::new(name, Runtime::Python)
        }
    }

    /// A frame of `runtime` in the library `module`.
    fn lib(name: &str, module: &str, runtime: Runtime) -> Frame {
        Frame {
            module: Some(module.into()),
            ..Frame::new(name, runtime)
        }
    }

    fn crossings(frames: &[Frame]) -> Vec<(Runtime, Runtime, &'static str)> {
        find_crossings(frames)
            .iter()
            .map(|c| (c.caller, c.callee, c.mechanism.as_str()))
            .collect()
    }

    /// C++'s runtime is every C++ program's own, like libc: a static
    /// initialiser of C++ linked into a Rust crate calling it crosses nothing.
    #[test]
    fn a_call_into_cpps_runtime_is_no_crossing() {
        use Runtime::*;
        let stack = [
            lib("_GLOBAL__sub_I_esaxx.cpp", "tokenizers.abi3.so", Rust),
            lib("std::ios_base::Init::Init()", "libstdc++.so.6", C),
        ];
        assert_eq!(crossings(&stack), []);
    }

    #[test]
    fn pending_calls() {
        use Runtime::*;
        let into_go = [
            f(Glue, "PyCFuncPtr_call"),
            f(Glue, "ChainWork"),
            f(Glue, "crosscall2"),
            f(Glue, "runtime.needm"),
        ];
        assert_eq!(
            pending_mechanism(&py("f"), &into_go),
            Some(Mechanism::Ctypes)
        );
        assert_eq!(pending_callee(&into_go), Go);
        let in_pyo3 = [
            f(Glue, "pyo3::impl_::trampoline::trampoline"),
            f(Glue, "pyo3::impl_::extract_argument::extract_argument"),
        ];
        assert_eq!(pending_callee(&in_pyo3), Rust);
        let in_ffi = [f(Glue, "PyCFuncPtr_call"), f(Glue, "ffi_call")];
        assert_eq!(pending_callee(&in_ffi), Unknown);
        assert_eq!(
            pending_mechanism(&f(Go, "main.f"), &[f(Glue, "runtime.cgocall")]),
            Some(Mechanism::CgoCall)
        );
    }

    #[test]
    fn support_code_called_from_glue_is_glue() {
        use Runtime::*;
        let stack = [
            py("f"),
            f(Glue, "_PyObject_MakeTpCall"),
            lib("PyTuple_New", "libpython3.11.so", Python),
            f(Glue, "PyCFuncPtr_call"),
            lib("PyLong_AsLongLong", "libpython3.11.so", Python),
            lib("malloc", "libc.so.6", C),
            f(C, "user_c"),
            lib("memcpy", "libc.so.6", C),
        ];
        assert_eq!(
            glue_mask(&stack),
            [false, true, false, true, true, true, false, false]
        );
        // PyO3: the standard library between its glue frames is glue, and the
        // crossing lands on the user's function.
        let pyo3 = [
            py("f"),
            f(Glue, "pyo3::impl_::trampoline::trampoline"),
            f(Rust, "std::panicking::catch_unwind"),
            f(Glue, "m::__pyfunction_noop"),
            f(Rust, "m::noop"),
        ];
        let found = find_crossings(&pyo3);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].mechanism, found[0].callee_at),
            (Mechanism::Pyo3, 4)
        );
        // A `#[pyfunction]` of a later PyO3 (0.23 on): its trampoline is named
        // after the crate's function definition (bcrypt 5's `hashpw`).
        let def = [
            py("f"),
            f(Glue, "_PyObject_MakeTpCall"),
            f(Glue, "cfunction_call"),
            f(
                Glue,
                "bcrypt_rust::<impl bcrypt_rust::hashpw::MakeDef>::_PYO3_DEF::trampoline",
            ),
            f(Glue, "pyo3::impl_::trampoline::trampoline"),
            f(Glue, "bcrypt_rust::__pyfunction_hashpw"),
            f(Rust, "bcrypt_rust::hashpw"),
        ];
        let found = find_crossings(&def);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].mechanism, found[0].callee, found[0].callee_at),
            (Mechanism::Pyo3, Rust, 6)
        );
        // A class's method, through the trampoline PyO3's macros generate in
        // the crate (rpds-py's `HashTrieMap.insert`, with the inner trampoline
        // inlined), and its argument's conversion.
        let method = [
            py("f"),
            f(
                Glue,
                "rpds::<impl pyo3::impl_::pyclass::PyMethods<rpds::HashTrieMapPy> for \
                 pyo3::impl_::pyclass::PyClassImplCollector<rpds::HashTrieMapPy>>::py_methods::\
                 ITEMS::trampoline",
            ),
            f(Glue, "rpds::HashTrieMapPy::__pymethod_insert__"),
            f(
                Glue,
                "<rpds::Key as pyo3::conversion::FromPyObject>::extract",
            ),
            f(Rust, "rpds::HashTrieMapPy::insert"),
        ];
        let found = find_crossings(&method);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].mechanism, found[0].callee, found[0].callee_at),
            (Mechanism::Pyo3, Rust, 4)
        );
        assert_eq!(pending_callee(&method[1..2]), Rust);
        // cgo: Go's runtime under the cgo path is glue; the callee's is not.
        let cgo = [
            f(Go, "main.loop"),
            f(Glue, "runtime.cgocall"),
            f(Go, "runtime.casgstatus"),
        ];
        assert_eq!(glue_mask(&cgo), [false, true, true]);
        let go = [f(Go, "main.loop"), f(Go, "runtime.mallocgc")];
        assert_eq!(glue_mask(&go), [false, false]);
    }

    #[test]
    fn chain_stack() {
        use Runtime::*;
        let stack = [
            f(C, "start_thread"),
            f(Python, "pythread_wrapper"),
            py("Worker.run"),
            f(Glue, "_PyObject_MakeTpCall"),
            f(Glue, "PyCFuncPtr_call"),
            f(Glue, "ffi_call"),
            f(Glue, "ChainWork"),
            f(Glue, "crosscall2"),
            f(Glue, "runtime.cgocallback"),
            f(Go, "main.chainRun"),
            f(Glue, "runtime.cgocall"),
            f(Glue, "_cgo_1_Cfunc_chain_invoke_cb"),
            f(C, "chain_invoke_cb"),
            f(Glue, "ffi_closure_unix64"),
            f(Glue, "_CallPythonObject"),
            py("Worker.callback"),
        ];
        assert_eq!(
            crossings(&stack),
            [
                (Python, Go, "ctypes"),
                (Go, C, "cgo-call"),
                (C, Python, "callback")
            ]
        );
    }

    /// Debian's CPython 3.14 strips `_ctypes` and its own C-call path: no
    /// frame between the Python caller and Go names ctypes but the module.
    #[test]
    fn stripped_ctypes_is_known_by_its_module() {
        use Runtime::*;
        let ctypes = "_ctypes.cpython-314-x86_64-linux-gnu.so";
        let stack = [
            py("tokenize"),
            lib("[python3.14+0x576740]", "python3.14", Python),
            lib(
                "[_ctypes.cpython-314-x86_64-linux-gnu.so+0x17460]",
                ctypes,
                Glue,
            ),
            lib(
                "[_ctypes.cpython-314-x86_64-linux-gnu.so+0x16090]",
                ctypes,
                Glue,
            ),
            lib("ffi_call", "libffi.so.8.1.2", Glue),
            lib("ChainWork", "libseamchain.so", Glue),
            lib("crosscall2", "libseamchain.so", Glue),
            lib("runtime.cgocallback", "libseamchain.so", Glue),
            lib("main.chainRun", "libseamchain.so", Go),
        ];
        assert_eq!(crossings(&stack), [(Python, Go, "ctypes")]);
        let cffi = [
            py("f"),
            lib(
                "[_cffi_backend.cpython-314-x86_64-linux-gnu.so+0x9a10]",
                "_cffi_backend.cpython-314-x86_64-linux-gnu.so",
                Glue,
            ),
            lib("ffi_call", "libffi.so.8.1.2", Glue),
            lib("noop", "libffib.so", C),
        ];
        assert_eq!(crossings(&cffi), [(Python, C, "cffi-abi")]);
        // A callback on its way into Python through the same stripped module.
        let back = [lib(
            "[_ctypes.cpython-314-x86_64-linux-gnu.so+0x1b2d0]",
            ctypes,
            Glue,
        )];
        assert_eq!(
            pending_mechanism(&lib("chain_invoke_cb", "libseamchain.so", C), &back),
            None
        );
        assert_eq!(
            pending_mechanism(&py("tokenize"), &back),
            Some(Mechanism::Ctypes)
        );
    }

    #[test]
    fn table() {
        use Runtime::*;
        type Case = (Vec<Frame>, Vec<(Runtime, Runtime, &'static str)>);
        let cases: Vec<Case> = vec![
            (
                vec![
                    py("f"),
                    f(Glue, "cdata_call"),
                    f(Glue, "ffi_call"),
                    f(C, "spin"),
                ],
                vec![(Python, C, "cffi-abi")],
            ),
            (
                vec![py("f"), f(Glue, "_cffi_f_spin"), f(C, "spin")],
                vec![(Python, C, "cffi-api")],
            ),
            (vec![py("f"), f(C, "ext_noop")], vec![(Python, C, "cext")]),
            (
                vec![
                    py("f"),
                    f(Glue, "pyo3::impl_::trampoline::trampoline"),
                    f(Rust, "m::spin"),
                ],
                vec![(Python, Rust, "pyo3")],
            ),
            (
                vec![
                    f(Go, "main.main"),
                    f(Glue, "runtime.cgocall"),
                    f(Glue, "_cgo_x_Cfunc_f"),
                    f(Rust, "seam_mix_work"),
                ],
                vec![(Go, Rust, "cgo-call")],
            ),
            (
                vec![f(C, "c_work"), f(Rust, "seam_mix_work")],
                vec![(C, Rust, "c-abi")],
            ),
            (
                vec![
                    f(C, "c_work"),
                    f(Glue, "goCallback"),
                    f(Glue, "crosscall2"),
                    f(Go, "main.cb"),
                ],
                vec![(C, Go, "cgo-export")],
            ),
            // The interpreter calling libc, and libc starting a thread, are not crossings.
            (
                vec![
                    f(C, "start_thread"),
                    f(Python, "pythread_wrapper"),
                    py("f"),
                    Frame {
                        module: Some("libc.so.6".into()),
                        ..Frame::new("malloc", C)
                    },
                ],
                vec![],
            ),
            (vec![f(Python, "_PyEval_Vector"), f(C, "memcpy")], vec![]),
            // The interpreter's call path calling a Cython function (lxml's
            // `fromstring`: no builtin function object, so no glue).
            (
                vec![
                    py("f"),
                    lib("PyObject_Vectorcall", "libpython3.11.so.1.0", Python),
                    lib("_PyObject_VectorcallTstate", "libpython3.11.so.1.0", Python),
                    lib("__pyx_pw_4lxml_5etree_fromstring", "etree.so", C),
                    lib("xmlParseDocument", "libxml2.so.2", C),
                ],
                vec![(Python, C, "cext")],
            ),
        ];
        for (stack, want) in cases {
            assert_eq!(
                crossings(&stack),
                want,
                "{:?}",
                stack.iter().map(|f| &f.name).collect::<Vec<_>>()
            );
        }
    }
}
