//! Which runtime owns a frame: a table of rules, read top to bottom, and a
//! small function that applies it. To teach seam a new kind of glue, add a
//! row.

use crate::modules::Language;
use seam_proto::Runtime;

/// How a rule matches a frame.
#[derive(Clone, Copy, Debug)]
pub enum Match {
    /// The function name starts with this.
    NamePrefix(&'static str),
    /// The function name contains this.
    NameContains(&'static str),
    /// The module's file name starts with this.
    ModulePrefix(&'static str),
}

/// Glue: code that exists only to carry a call across runtimes.
pub const GLUE: &[(Match, &str)] = &[
    // libffi, ctypes and cffi's backend marshal every foreign call.
    // The library itself (not any module whose name starts so: ffibench's libffibgo.so).
    (Match::ModulePrefix("libffi.so"), "libffi"),
    (Match::ModulePrefix("_ctypes"), "ctypes"),
    (Match::ModulePrefix("_cffi_backend"), "cffi"),
    (Match::NamePrefix("_cffi_f_"), "cffi API wrapper"),
    (Match::NamePrefix("ffi_call"), "libffi"),
    (Match::NamePrefix("ffi_closure"), "libffi"),
    // CPython's C-call path and the GIL around foreign calls.
    (Match::NamePrefix("cfunction_vectorcall_"), "CPython C call"),
    (Match::NamePrefix("cfunction_call"), "CPython C call"),
    (Match::NamePrefix("method_vectorcall_"), "CPython C call"),
    (Match::NamePrefix("_PyObject_MakeTpCall"), "CPython C call"),
    (Match::NamePrefix("PyEval_SaveThread"), "GIL"),
    (Match::NamePrefix("PyEval_RestoreThread"), "GIL"),
    (Match::NamePrefix("PyEval_AcquireThread"), "GIL"),
    (Match::NamePrefix("take_gil"), "GIL"),
    (Match::NamePrefix("drop_gil"), "GIL"),
    (Match::NamePrefix("PyGILState_"), "GIL"),
    // PyO3: its trampolines, the wrappers it generates for each function
    // (argument extraction, result conversion) and the crate's own code.
    (Match::NamePrefix("pyo3::"), "PyO3"),
    (Match::NamePrefix("<pyo3::"), "PyO3"),
    (Match::NameContains("drop_in_place<pyo3::"), "PyO3"),
    // What PyO3's macros generate in the crate, named as impls of its
    // traits: a class's method table and its trampolines (the legacy
    // demangling says `rpds::<impl pyo3::impl_::pyclass::PyMethods<T> for
    // ..>::py_methods::ITEMS::trampoline`, the first frame of every call of
    // rpds-py's methods), and the conversions of arguments and results
    // (`<X as pyo3::conversion::FromPyObject>::extract`).
    (Match::NameContains("<impl pyo3::"), "PyO3"),
    (Match::NameContains(" as pyo3::"), "PyO3"),
    // A `#[pyfunction]`'s trampoline from PyO3 0.23 on, named after the
    // crate's definition of it: `<impl bcrypt_rust::hashpw::MakeDef>::
    // _PYO3_DEF::trampoline`.
    (Match::NameContains("::_PYO3_DEF::"), "PyO3"),
    (Match::NameContains("::__pyfunction_"), "PyO3 wrapper"),
    (Match::NameContains("::__pymethod_"), "PyO3 wrapper"),
    // cgo, both directions.
    (Match::NamePrefix("crosscall"), "cgo"),
    (Match::NamePrefix("runtime.cgocall"), "cgo"),
    (Match::NamePrefix("runtime.asmcgocall"), "cgo"),
    (Match::NamePrefix("runtime.cgocallback"), "cgo"),
    (Match::NamePrefix("runtime.needm"), "cgo"),
    (Match::NamePrefix("runtime.needAndBindM"), "cgo"),
    // A callback's stack bounds (Go 1.21.12+ asks C for them, through
    // asmcgocall) and binding its M to the C thread.
    (
        Match::NamePrefix("runtime.callbackUpdateSystemStack"),
        "cgo",
    ),
    (Match::NamePrefix("runtime.cgoBindM"), "cgo"),
    (Match::NamePrefix("runtime.dropm"), "cgo"),
    (Match::NamePrefix("runtime.entersyscall"), "cgo"),
    (Match::NamePrefix("runtime.reentersyscall"), "cgo"),
    (Match::NamePrefix("runtime.exitsyscall"), "cgo"),
    (Match::NamePrefix("runtime.cgoCheck"), "cgo"),
    (Match::NamePrefix("_cgo_"), "cgo"),
    (Match::NamePrefix("x_cgo_"), "cgo"),
    (Match::NamePrefix("_cgoexp_"), "cgo"),
    (Match::NameContains("._Cfunc_"), "cgo"),
    (Match::NameContains("._cgo_"), "cgo"),
];

/// A native frame to classify.
#[derive(Clone, Copy, Debug)]
pub struct NativeFacts<'a> {
    pub name: &'a str,
    /// File name of the module, without directories.
    pub module: Option<&'a str>,
    pub language: Option<Language>,
    /// The name came from a Go pclntab.
    pub go: bool,
}

fn matches(m: Match, f: &NativeFacts) -> bool {
    match m {
        Match::NamePrefix(p) => f.name.starts_with(p),
        Match::NameContains(p) => f.name.contains(p),
        Match::ModulePrefix(p) => f.module.is_some_and(|m| m.starts_with(p)),
    }
}

/// The glue rule a frame matches, if any.
pub fn glue_rule(f: &NativeFacts) -> Option<&'static str> {
    GLUE.iter()
        .find(|(m, _)| matches(*m, f))
        .map(|(_, what)| *what)
}

/// The runtime of a user-space native frame.
pub fn classify_native(f: &NativeFacts) -> Runtime {
    if glue_rule(f).is_some() {
        return Runtime::Glue;
    }
    if f.go {
        return Runtime::Go;
    }
    if is_rust_path(f.name) {
        return Runtime::Rust;
    }
    // C++ linked into a Rust crate (tokenizers' suffix arrays) is C++, which
    // seam counts as C, whatever the module's language.
    if is_cpp_name(f.name) {
        return Runtime::C;
    }
    match f.language {
        Some(Language::Rust) => Runtime::Rust,
        // The interpreter's own code counts as Python (DESIGN.md: the eval loop is not glue).
        Some(Language::Python) => Runtime::Python,
        // C code in a Go module (cgo preambles) is C, unless the glue table says otherwise.
        Some(Language::Go) | Some(Language::C) => Runtime::C,
        None => Runtime::Unknown,
    }
}

/// A demangled Rust path such as `core::ptr::drop_in_place<T>` or `<a::B as c::D>::f`,
/// not C++'s standard library, whose names start with `std::` too.
pub(crate) fn is_rust_path(name: &str) -> bool {
    const RUST_ROOTS: &[&str] = &[
        "core::", "alloc::", "std::", "<core::", "<alloc::", "<std::",
    ];
    RUST_ROOTS.iter().any(|r| name.starts_with(r)) && !is_cpp_name(name)
}

/// A demangled C++ function name: it ends with its parameter list
/// (`std::_Sp_counted_base<..>::_M_release()`, `std::vector<int>::size() const`,
/// after any ` [clone .lto_priv.0]`), or names the C++ library's own
/// reserved identifiers (`std::__cxx11::`, `std::_Rb_tree<..>`). A Rust path
/// ends with a name, a `>` or a `}` (`core::ptr::drop_in_place<(u8, u8)>`).
fn is_cpp_name(name: &str) -> bool {
    let mut rest = name.trim_end();
    while let Some(cut) = rest.strip_suffix(']').and_then(|r| r.rfind(" [clone ")) {
        rest = &rest[..cut];
    }
    for qualifier in [" const", " volatile", " &&", " &", " noexcept"] {
        rest = rest.strip_suffix(qualifier).unwrap_or(rest);
    }
    let reserved = |after: &str| {
        let mut c = after.chars();
        c.next() == Some('_') && c.next().is_some_and(|n| n == '_' || n.is_ascii_uppercase())
    };
    rest.ends_with(')')
        || name.strip_prefix("std::").is_some_and(reserved)
        || name.strip_prefix("<std::").is_some_and(reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpp_standard_library_is_not_rust() {
        for cpp in [
            "std::_Sp_counted_base<(__gnu_cxx::_Lock_policy)2>::_M_release() [clone .localalias] [clone .lto_priv.0]",
            "std::vector<int, std::allocator<int> >::size() const",
            "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >::_M_dispose",
            "std::_Rb_tree_increment",
            "std::thread::_State_impl<std::thread::_Invoker<std::tuple<void (*)()> > >::_M_run()",
            "std::condition_variable::wait(std::unique_lock<std::mutex>&)",
        ] {
            assert!(!is_rust_path(cpp), "{cpp}");
        }
        for rust in [
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "core::ptr::drop_in_place<(alloc::string::String, u32)>",
            "std::rt::lang_start::{{closure}}",
            "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop",
            "<std::io::stdio::Stdout as std::io::Write>::write_fmt",
            "std::panicking::try::do_call",
        ] {
            assert!(is_rust_path(rust), "{rust}");
        }
        let facts = NativeFacts {
            name: "std::_Sp_counted_base<(__gnu_cxx::_Lock_policy)2>::_M_release()",
            module: Some("libarrow.so.2200"),
            language: Some(Language::C),
            go: false,
        };
        assert_eq!(classify_native(&facts), Runtime::C);
        let in_rust = NativeFacts {
            name: "esaxx_rs::esaxx_int(int const*, int*, int*, int*, int*, int, int, int&)",
            module: Some("tokenizers.abi3.so"),
            language: Some(Language::Rust),
            go: false,
        };
        assert_eq!(classify_native(&in_rust), Runtime::C);
    }

    #[test]
    fn table() {
        use Language::*;
        type Case = (
            &'static str,
            Option<&'static str>,
            Option<Language>,
            bool,
            Runtime,
        );
        let cases: &[Case] = &[
            (
                "_PyEval_EvalFrameDefault",
                Some("libpython3.12.so.1.0"),
                Some(Python),
                false,
                Runtime::Python,
            ),
            (
                "PyCFuncPtr_call",
                Some("_ctypes.cpython-311-x86_64-linux-gnu.so"),
                Some(C),
                false,
                Runtime::Glue,
            ),
            (
                "[libffi.so.8.1.2+0x6f79]",
                Some("libffi.so.8.1.2"),
                Some(C),
                false,
                Runtime::Glue,
            ),
            (
                "cdata_call",
                Some("_cffi_backend.cpython-312-x86_64-linux-gnu.so"),
                Some(C),
                false,
                Runtime::Glue,
            ),
            (
                "_cffi_f_spin",
                Some("_spin_cffi.cpython-311-x86_64-linux-gnu.so"),
                Some(C),
                false,
                Runtime::Glue,
            ),
            (
                "take_gil",
                Some("libpython3.11.so.1.0"),
                Some(Python),
                false,
                Runtime::Glue,
            ),
            (
                "cfunction_vectorcall_O",
                Some("libpython3.11.so.1.0"),
                Some(Python),
                false,
                Runtime::Glue,
            ),
            (
                "pyo3::impl_::trampoline::trampoline",
                Some("pyo3spin.so"),
                Some(Rust),
                false,
                Runtime::Glue,
            ),
            (
                "pyo3::impl_::extract_argument::FunctionDescription::extract_arguments_fastcall",
                Some("ffib_pyo3.abi3.so"),
                Some(Rust),
                false,
                Runtime::Glue,
            ),
            (
                "ffib_pyo3::__pyfunction_noop",
                Some("ffib_pyo3.abi3.so"),
                Some(Rust),
                false,
                Runtime::Glue,
            ),
            (
                "bcrypt_rust::<impl bcrypt_rust::hashpw::MakeDef>::_PYO3_DEF::trampoline",
                Some("_bcrypt.abi3.so"),
                Some(Rust),
                false,
                Runtime::Glue,
            ),
            (
                "rpds::<impl pyo3::impl_::pyclass::PyMethods<rpds::HashTrieMapPy> for \
                 pyo3::impl_::pyclass::PyClassImplCollector<rpds::HashTrieMapPy>>::py_methods::\
                 ITEMS::trampoline",
                Some("rpds.cpython-311-x86_64-linux-gnu.so"),
                Some(Rust),
                false,
                Runtime::Glue,
            ),
            (
                "<tokenizers::tokenizer::TextEncodeInput as pyo3::conversion::FromPyObject>::extract",
                Some("tokenizers.abi3.so"),
                Some(Rust),
                false,
                Runtime::Glue,
            ),
            (
                "ffib_pyo3::noop",
                Some("ffib_pyo3.abi3.so"),
                Some(Rust),
                false,
                Runtime::Rust,
            ),
            (
                "crosscall2",
                Some("libchain.so"),
                Some(Go),
                false,
                Runtime::Glue,
            ),
            (
                "runtime.cgocallbackg1",
                Some("libchain.so"),
                Some(Go),
                true,
                Runtime::Glue,
            ),
            (
                "runtime.asmcgocall.abi0",
                Some("libchain.so"),
                Some(Go),
                true,
                Runtime::Glue,
            ),
            (
                "main._Cfunc_seam_rs_work.abi0",
                Some("libchain.so"),
                Some(Go),
                true,
                Runtime::Glue,
            ),
            (
                "_cgo_516a0f779a83_Cfunc_c_spin",
                Some("libchain.so"),
                Some(Go),
                false,
                Runtime::Glue,
            ),
            (
                "runtime.needm",
                Some("libchain.so"),
                Some(Go),
                true,
                Runtime::Glue,
            ),
            (
                "runtime.callbackUpdateSystemStack",
                Some("libffibgo.so"),
                Some(Go),
                true,
                Runtime::Glue,
            ),
            (
                "main.callCLoop",
                Some("libffibgo.so"),
                Some(Go),
                true,
                Runtime::Go,
            ),
            (
                "main.compute",
                Some("libchain.so"),
                Some(Go),
                true,
                Runtime::Go,
            ),
            (
                "runtime.mallocgc",
                Some("gomain"),
                Some(Go),
                true,
                Runtime::Go,
            ),
            ("c_work", Some("gomain"), Some(Go), false, Runtime::C),
            (
                "rsspin::inner::rust_spin_inner",
                Some("librs.so"),
                Some(Rust),
                false,
                Runtime::Rust,
            ),
            (
                "seam_rs_hash",
                Some("librs.so"),
                Some(Rust),
                false,
                Runtime::Rust,
            ),
            (
                "core::ptr::drop_in_place<x>",
                Some("app"),
                Some(C),
                false,
                Runtime::Rust,
            ),
            ("memcpy", Some("libc.so.6"), Some(C), false, Runtime::C),
            ("[unknown 0x10]", None, None, false, Runtime::Unknown),
        ];
        for &(name, module, language, go, want) in cases {
            let got = classify_native(&NativeFacts {
                name,
                module,
                language,
                go,
            });
            assert_eq!(got, want, "{name} in {module:?}");
        }
    }
}
