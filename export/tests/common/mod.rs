//! The polyglot profile that the export tests share, and their golden files.

#![allow(dead_code)] // each test file uses a different part of these helpers

use seam_proto::{Frame, Lost, Mechanism, Profile, Runtime, Target};
use std::path::PathBuf;

/// A frame written as `runtime:name`, or `python:name@file:line`.
fn frame(spec: &str) -> Frame {
    let (runtime, name) = spec.split_once(':').unwrap();
    let runtime: Runtime = runtime.parse().unwrap();
    match name.split_once('@') {
        Some((name, at)) => {
            let (file, line) = at.rsplit_once(':').unwrap();
            Frame {
                file: Some(file.into()),
                line: Some(line.parse().unwrap()),
                ..Frame::new(name, runtime)
            }
        }
        None if name == Frame::TRUNCATED => Frame::truncated(),
        None => Frame::new(name, runtime),
    }
}

const PYTHON_MAIN: &[&str] = &[
    "c:_start",
    "c:__libc_start_main",
    "c:Py_BytesMain",
    "c:pymain_run_python",
    "python:<module>@chain.py:58",
    "python:main@chain.py:51",
];
const INTO_GO: &[&str] = &[
    "python:work@chain.py:42",
    "glue:cfunction_call",
    "glue:PyCFuncPtr_call",
    "glue:_ctypes_callproc",
    "glue:ffi_call",
    "glue:ffi_call_unix64",
    "glue:Compute",
    "glue:crosscall2",
    "glue:runtime.cgocallback",
    "glue:runtime.cgocallbackg",
    "glue:_cgoexp_3f1e_Compute",
    "go:main.Compute",
    "go:main.compute",
];
const INTO_RUST: &[&str] = &[
    "go:main.hashChunk",
    "glue:runtime.cgocall",
    "glue:runtime.asmcgocall",
    "glue:_cgo_9a2c_Cfunc_seam_hash",
    "rust:seam_hash",
    "rust:seam_sample::hash::digest",
];
const GO_GC: &[&str] = &[
    "go:runtime.goexit",
    "go:runtime.gcBgMarkWorker",
    "go:runtime.gcDrain",
];
const SYSCALL: &[&str] = &[
    "kernel:entry_SYSCALL_64",
    "kernel:do_syscall_64",
    "kernel:ksys_write",
    "kernel:vfs_write",
];

pub fn polyglot_profile() -> Profile {
    let stacks: Vec<(Vec<&[&str]>, bool, u32, u64)> = vec![
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                INTO_RUST,
                &["rust:sha2::sha256::compress256"],
            ],
            true,
            101,
            412,
        ),
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                INTO_RUST,
                &["rust:alloc::vec::Vec<u8>::extend_from_slice"],
            ],
            true,
            101,
            38,
        ),
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                &["go:main.compute.func1", "go:runtime.mallocgc"],
            ],
            true,
            101,
            61,
        ),
        (
            vec![PYTHON_MAIN, INTO_GO, &["go:main.compute.func1"]],
            true,
            101,
            120,
        ),
        (
            vec![
                PYTHON_MAIN,
                INTO_GO,
                &["go:fmt.Fprintf", "go:syscall.write"],
                SYSCALL,
            ],
            true,
            101,
            23,
        ),
        (vec![PYTHON_MAIN, &INTO_GO[..6]], true, 101, 17),
        (
            vec![
                PYTHON_MAIN,
                &[
                    "python:prepare@chain.py:30",
                    "c:PyBytes_FromStringAndSize",
                    "c:memcpy",
                ],
            ],
            true,
            101,
            44,
        ),
        (
            vec![PYTHON_MAIN, &["python:prepare@chain.py:31"]],
            true,
            101,
            90,
        ),
        (vec![GO_GC, &["go:runtime.scanobject"]], true, 104, 35),
        (
            vec![&["unknown:[truncated]"], &INTO_GO[4..], INTO_RUST],
            false,
            101,
            29,
        ),
        (
            vec![&["unknown:[truncated]", "unknown:0x7f3a12c0"]],
            false,
            101,
            6,
        ),
    ];
    let mut p = Profile::default();
    p.target = Target {
        pid: 4242,
        command: vec!["python3".into(), "chain.py".into(), "--rounds=3".into()],
    };
    p.rate_hz = 99;
    p.duration_s = 8.75;
    p.lost = Lost {
        kernel: 12,
        seam: 3,
    };
    for (parts, complete, tid, count) in stacks {
        let frames = parts
            .concat()
            .into_iter()
            .map(|s| p.intern_frame(frame(s)))
            .collect();
        let stack = p.intern_stack(frames, complete);
        p.add_samples(stack, tid, count);
    }
    p.threads.get_mut(&101).unwrap().name = "python3".into();
    p.threads.get_mut(&104).unwrap().name = "python3".into();
    p.problems
        .insert("dwarf unwinding stopped in libffi".into(), 29);
    p.problems.insert("address in no mapping".into(), 6);
    p
}

pub fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file, or rewrites it when `SEAM_BLESS=1`.
pub fn check_golden(name: &str, actual: &[u8]) {
    let path = golden(name);
    if std::env::var_os("SEAM_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with SEAM_BLESS=1 cargo test -p seam-export",
            path.display()
        )
    });
    if expected != actual {
        let new = path.with_extension(format!(
            "{}.new",
            path.extension().unwrap().to_str().unwrap()
        ));
        std::fs::write(&new, actual).unwrap();
        panic!(
            "{} differs from the output (written to {}); if the change is intended, re-bless with \
             SEAM_BLESS=1 cargo test -p seam-export",
            path.display(),
            new.display()
        );
    }
}

/// The module each native frame of the polyglot profile comes from, by name prefix.
const MODULES: &[(&str, &str)] = &[
    ("_start", "python3.11"),
    ("__libc_start_main", "libc.so.6"),
    ("memcpy", "libc.so.6"),
    ("Py", "libpython3.11.so.1.0"),
    ("pymain_", "libpython3.11.so.1.0"),
    ("cfunction_call", "libpython3.11.so.1.0"),
    ("PyCFuncPtr_call", "_ctypes.cpython-311-x86_64-linux-gnu.so"),
    (
        "_ctypes_callproc",
        "_ctypes.cpython-311-x86_64-linux-gnu.so",
    ),
    ("ffi_", "libffi.so.8"),
    ("seam_", "libseam_sample.so"),
    ("sha2::", "libseam_sample.so"),
    ("alloc::", "libseam_sample.so"),
    ("entry_SYSCALL", "[kernel.kallsyms]"),
    ("do_syscall", "[kernel.kallsyms]"),
    ("ksys_", "[kernel.kallsyms]"),
    ("vfs_", "[kernel.kallsyms]"),
];

/// The polyglot profile as a recording gives it: native frames name their module (the Go
/// code, its cgo glue and the Rust code live in the shared libraries the Python program
/// loaded), a few native frames have a source line, and the first frame past each crossing
/// carries its seam.
pub fn polyglot_profile_with_modules() -> Profile {
    let mut p = polyglot_profile();
    for f in &mut p.frames {
        if f.runtime == Runtime::Python || f.runtime == Runtime::Unknown {
            continue;
        }
        let module = MODULES
            .iter()
            .find(|(prefix, _)| f.name.starts_with(prefix))
            .map_or("libseamchain.so", |&(_, m)| m);
        f.module = Some(module.into());
        match f.name.as_str() {
            "main.Compute" => f.seam = Some(Mechanism::Ctypes),
            "seam_hash" => f.seam = Some(Mechanism::CgoCall),
            "main.compute" => (f.file, f.line) = (Some("/src/chain/chain.go".into()), Some(27)),
            "seam_sample::hash::digest" => {
                (f.file, f.line) = (Some("/src/seam_sample/src/hash.rs".into()), Some(12))
            }
            _ => {}
        }
    }
    p.reindex();
    p
}
