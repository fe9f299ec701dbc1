//! Finding the CPython runtime in a process: which mapped file holds
//! `_PyRuntime`, where it was loaded, which version it is, and which
//! structure layout to read it with.

use std::fs::File;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

use super::layout::{Layout, DEBUG_OFFSETS_SIZE};
use crate::Error;

/// Everything [`super::PythonProcess`] needs to know about the interpreter,
/// with addresses already relocated into the target's address space.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    /// The file that holds `_PyRuntime`, as named in `/proc/PID/maps`.
    pub path: PathBuf,
    pub version: (u8, u8),
    pub runtime: u64,
    /// `PyCode_Type`: every code object's `ob_type`.
    pub code_type: u64,
    pub unicode_type: Option<u64>,
    pub bytes_type: Option<u64>,
    /// 3.13's `_Py_InitCleanup` shim code object (a local symbol, only found
    /// when `.symtab` was not stripped).
    pub init_cleanup: Option<u64>,
    pub layout: Layout,
}

/// One mapped file, from its mapping with the lowest file offset.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapped {
    path: String,
    start: u64,
    offset: u64,
}

/// What a file name says about a candidate interpreter file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NameInfo {
    is_library: bool,
    version: Option<(u8, u8)>,
    /// ABI flags after the version (`d` debug, `t` free-threaded, `m` pymalloc in ≤ 3.7).
    debug: bool,
}

pub(crate) fn unsupported_version(version: (u8, u8)) -> Error {
    Error::Unsupported(format!(
        "CPython {}.{} is not supported: seam reads 3.8 to 3.15; native frames only",
        version.0, version.1
    ))
}

/// Finds the interpreter; see [`super::PythonProcess::find_with_root`].
pub(crate) fn locate(pid: u32, maps: &str, root: Option<&Path>) -> Result<Option<Located>, Error> {
    let mut candidates: Vec<(Mapped, NameInfo)> = mapped_files(maps)
        .into_iter()
        .filter_map(|m| {
            let base = m.path.rsplit('/').next().unwrap_or(&m.path);
            classify(base).map(|info| (m, info))
        })
        .collect();
    // libpython first: with a shared build the `python3.X` executable is a
    // small stub without `_PyRuntime`.
    candidates.sort_by_key(|(_, info)| !info.is_library);

    let mut named_version = None;
    for (mapped, info) in &candidates {
        named_version = named_version.or(info.version);
        let file = open(pid, &mapped.path, root)?;
        // SAFETY: the mapping is read-only and private; a shared library being
        // rewritten underneath a running process is outside what we defend against.
        let data = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(d) => d,
            Err(e) => return Err(Error::io(format!("mapping {}", mapped.path), e, Some(pid))),
        };
        let Ok(elf) = object::File::parse(&*data) else {
            continue;
        };
        let Some(found) = inspect(&elf) else { continue };
        let version = match (found.version_hex, info.version) {
            (Some(hex), _) => (((hex >> 24) & 0xff) as u8, ((hex >> 16) & 0xff) as u8),
            (None, Some(v)) => v,
            (None, None) => {
                return Err(Error::Unsupported(format!(
                    "{} holds a CPython runtime but neither Py_Version nor its file name tells the version; \
                     seam reads 3.8 to 3.15; native frames only",
                    mapped.path
                )))
            }
        };
        let layout = match version {
            (3, 8..=12) if info.debug => {
                return Err(Error::Unsupported(format!(
                    "{} is a debug build of CPython {}.{}; seam reads release builds of 3.8 to 3.12 (3.13+ debug builds work); native frames only",
                    mapped.path, version.0, version.1
                )))
            }
            (3, 8) | (3, 9) => Layout::V3_9,
            (3, 10) => Layout::V3_10,
            (3, 11) => Layout::V3_11,
            (3, 12) => Layout::V3_12,
            (3, 13..=15) => {
                let image = segment_bytes(&elf, found.runtime, DEBUG_OFFSETS_SIZE).unwrap_or_default();
                Layout::from_debug_offsets(&image).map_err(|e| {
                    Error::Unsupported(format!("{}: {e}; native frames only", mapped.path))
                })?
            }
            other => return Err(unsupported_version(other)),
        };
        let Some(code_type) = found.code_type else {
            return Err(Error::Unsupported(format!(
                "{} exports no PyCode_Type symbol, so Python frames cannot be validated; native frames only",
                mapped.path
            )));
        };
        let Some(bias) = load_bias(&elf, mapped) else {
            continue;
        };
        let reloc = |a: u64| a.wrapping_add(bias);
        return Ok(Some(Located {
            path: PathBuf::from(&mapped.path),
            version,
            runtime: reloc(found.runtime),
            code_type: reloc(code_type),
            unicode_type: found.unicode_type.map(reloc),
            bytes_type: found.bytes_type.map(reloc),
            init_cleanup: found.init_cleanup.map(reloc),
            layout,
        }));
    }
    // Python 2 and 3.6 and older have no `_PyRuntime`; name them if we can.
    match named_version {
        Some(v) => Err(unsupported_version(v)),
        None => Ok(None),
    }
}

/// Symbols and data of an ELF file that holds the CPython runtime.
#[derive(Debug, Default)]
struct Found {
    runtime: u64,
    version_hex: Option<u64>,
    code_type: Option<u64>,
    unicode_type: Option<u64>,
    bytes_type: Option<u64>,
    init_cleanup: Option<u64>,
}

const SYMBOLS: [&str; 6] = [
    "_PyRuntime",
    "Py_Version",
    "PyCode_Type",
    "PyUnicode_Type",
    "PyBytes_Type",
    "_Py_InitCleanup",
];

/// Looks up the runtime symbols (`.dynsym` first, then `.symtab`); `None` if
/// the file has neither `_PyRuntime` nor a `.PyRuntime` section.
fn inspect(elf: &object::File<'_>) -> Option<Found> {
    let mut addrs = [None; SYMBOLS.len()];
    for sym in elf.dynamic_symbols().chain(elf.symbols()) {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if let Some(i) = SYMBOLS.iter().position(|s| *s == name) {
            addrs[i].get_or_insert(sym.address());
        }
    }
    let runtime = addrs[0].or_else(|| elf.section_by_name(".PyRuntime").map(|s| s.address()))?;
    let version_hex = addrs[1]
        .and_then(|a| segment_bytes(elf, a, 8))
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        // Py_Version is an `unsigned long` holding PY_VERSION_HEX; anything
        // else means we read the wrong bytes.
        .filter(|v| v >> 32 == 0 && (v >> 24) & 0xff >= 2);
    Some(Found {
        runtime,
        version_hex,
        code_type: addrs[2],
        unicode_type: addrs[3],
        bytes_type: addrs[4],
        init_cleanup: addrs[5],
    })
}

/// `len` bytes of initialised data at link-time address `addr`.
fn segment_bytes(elf: &object::File<'_>, addr: u64, len: usize) -> Option<Vec<u8>> {
    elf.segments()
        .find_map(|s| s.data_range(addr, len as u64).ok().flatten())
        .map(<[u8]>::to_vec)
}

/// The difference between run-time and link-time addresses, from the
/// mapping with the lowest file offset and the PT_LOAD segment it maps.
fn load_bias(elf: &object::File<'_>, m: &Mapped) -> Option<u64> {
    // Segment file offsets need not be page aligned; the mapping offset is.
    const MAX_PAGE: u64 = 0x10000;
    elf.segments().find_map(|s| {
        let (seg_off, seg_size) = s.file_range();
        let covers = m.offset < seg_off.saturating_add(seg_size.max(1))
            && seg_off < m.offset.saturating_add(MAX_PAGE);
        // link-time address of file offset `m.offset`
        let link = s.address().wrapping_sub(seg_off).wrapping_add(m.offset);
        covers.then(|| m.start.wrapping_sub(link))
    })
}

fn open(pid: u32, path: &str, root: Option<&Path>) -> Result<File, Error> {
    let relative = path.trim_start_matches('/');
    let rooted = match root {
        Some(r) => r.join(relative),
        None => PathBuf::from(path),
    };
    match File::open(&rooted) {
        Ok(f) => Ok(f),
        // /proc/PID/root can be unreadable when we are not root; the path
        // itself is right whenever the target shares our mount namespace.
        Err(e) if root.is_some() => File::open(path)
            .map_err(|_| Error::io(format!("opening {}", rooted.display()), e, Some(pid))),
        Err(e) => Err(Error::io(format!("opening {path}"), e, Some(pid))),
    }
}

/// File-backed mappings, one per path, keeping the one with the lowest offset.
fn mapped_files(maps: &str) -> Vec<Mapped> {
    let mut out: Vec<Mapped> = Vec::new();
    for line in maps.lines() {
        // start-end perms offset dev inode path (the path may contain spaces)
        let mut fields = line.splitn(6, ' ');
        let (Some(range), Some(_perms), Some(offset), Some(_dev), Some(_inode), Some(path)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let path = path.trim_start();
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        if !path.starts_with('/') {
            continue;
        }
        let (Some(start), Ok(offset)) = (
            range
                .split('-')
                .next()
                .and_then(|s| u64::from_str_radix(s, 16).ok()),
            u64::from_str_radix(offset, 16),
        ) else {
            continue;
        };
        match out.iter_mut().find(|m| m.path == path) {
            Some(m) if offset < m.offset => {
                m.start = start;
                m.offset = offset;
            }
            Some(_) => {}
            None => out.push(Mapped {
                path: path.to_string(),
                start,
                offset,
            }),
        }
    }
    out
}

/// Recognises `libpython3.12.so.1.0`, `libpython3.13d.so`, `python3.11`,
/// `python3`, `python`; `None` for anything else.
fn classify(base: &str) -> Option<NameInfo> {
    let (is_library, rest) = match base.strip_prefix("libpython") {
        Some(rest) => (true, rest.split_once(".so").map(|(v, _)| v)?),
        None => (false, base.strip_prefix("python")?),
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (number, flags) = rest.split_at(digits_end);
    if !flags.chars().all(|c| matches!(c, 'd' | 'm' | 't' | 'u')) {
        return None;
    }
    let version = match number.split_once('.') {
        Some((major, minor)) => Some((major.parse().ok()?, minor.parse().ok()?)),
        None if number.is_empty() || number.parse::<u8>().is_ok() => None,
        None => return None,
    };
    if is_library && version.is_none() {
        // libpython3.so is the stable-ABI forwarding stub.
        return None;
    }
    Some(NameInfo {
        is_library,
        version,
        debug: flags.contains('d'),
    })
}

/// The first bytes of `_PyRuntime` as stored in the file (the
/// `_Py_DebugOffsets` of 3.13+), for the layout tests.
#[cfg(test)]
pub(crate) fn runtime_image_for_tests(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).expect("read libpython");
    let elf = object::File::parse(&*data).expect("parse libpython");
    let found = inspect(&elf).expect("libpython has _PyRuntime");
    segment_bytes(&elf, found.runtime, DEBUG_OFFSETS_SIZE).expect("_PyRuntime is initialised data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let lib = |v| {
            Some(NameInfo {
                is_library: true,
                version: Some(v),
                debug: false,
            })
        };
        let exe = |v| {
            Some(NameInfo {
                is_library: false,
                version: v,
                debug: false,
            })
        };
        let cases: &[(&str, Option<NameInfo>)] = &[
            ("libpython3.12.so.1.0", lib((3, 12))),
            ("libpython3.9.so", lib((3, 9))),
            ("libpython2.7.so.1.0", lib((2, 7))),
            (
                "libpython3.13d.so.1.0",
                Some(NameInfo {
                    is_library: true,
                    version: Some((3, 13)),
                    debug: true,
                }),
            ),
            ("libpython3.13t.so.1.0", lib((3, 13))),
            ("libpython3.so", None),
            ("python3.11", exe(Some((3, 11)))),
            ("python3", exe(None)),
            ("python", exe(None)),
            ("python3.10", exe(Some((3, 10)))),
            ("python-config", None),
            ("pythonista", None),
            ("libc.so.6", None),
            ("libpythonx.so", None),
        ];
        for (name, want) in cases {
            assert_eq!(classify(name), *want, "{name}");
        }
    }

    #[test]
    fn maps_lines() {
        let maps = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 123 /usr/bin/python3.12
7f0000001000-7f0000002000 r-xp 00001000 fe:01 456 /opt/py/lib/libpython3.12.so.1.0
7f0000000000-7f0000001000 r--p 00000000 fe:01 456 /opt/py/lib/libpython3.12.so.1.0
7f0000003000-7f0000004000 rw-p 00000000 00:00 0
7f0000005000-7f0000006000 r--p 00000000 fe:01 789 /tmp/with space/lib.so (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        let m = mapped_files(maps);
        assert_eq!(
            m,
            vec![
                Mapped {
                    path: "/usr/bin/python3.12".into(),
                    start: 0x55d0c0a00000,
                    offset: 0
                },
                Mapped {
                    path: "/opt/py/lib/libpython3.12.so.1.0".into(),
                    start: 0x7f0000000000,
                    offset: 0
                },
                Mapped {
                    path: "/tmp/with space/lib.so".into(),
                    start: 0x7f0000005000,
                    offset: 0
                },
            ]
        );
    }

    #[test]
    fn no_python_is_none() {
        let maps = "7f0000000000-7f0000001000 r--p 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6\n";
        assert!(matches!(locate(1, maps, None), Ok(None)));
    }

    #[test]
    fn installed_libraries() {
        use crate::python::tests_support::{
            pyenv_prefix, python_prefix, require_or_skip, runtime_file,
        };
        for (minor, want) in [
            ("3.8", (3, 8)),
            ("3.9", (3, 9)),
            ("3.10", (3, 10)),
            ("3.11", (3, 11)),
            ("3.12", (3, 12)),
            ("3.13", (3, 13)),
            ("3.14", (3, 14)),
            ("3.15", (3, 15)),
        ] {
            let Some(prefix) = python_prefix(minor) else {
                require_or_skip(&format!("locate: no CPython {minor}"));
                continue;
            };
            // pyenv's libpython, or Debian's executable with it linked in.
            let lib = runtime_file(&prefix, minor);
            let maps = format!(
                "7f0000000000-7f0000001000 r--p 00000000 fe:01 456 {}\n",
                lib.display()
            );
            let found = locate(1, &maps, None).unwrap().unwrap();
            assert_eq!(found.version, want);
            assert_eq!(found.path, lib);
            let data = std::fs::read(&lib).unwrap();
            let elf = object::File::parse(&*data).unwrap();
            let sym = |name: &str| {
                elf.dynamic_symbols()
                    .find(|s| s.name() == Ok(name))
                    .unwrap()
                    .address()
            };
            // The file's start maps at 0x7f00_0000_0000: where an executable
            // (Debian's) links its start is taken off.
            let first = elf.segments().map(|s| s.address()).min().unwrap();
            let base = 0x7f00_0000_0000 - first;
            assert_eq!(found.runtime, base + sym("_PyRuntime"));
            assert_eq!(found.code_type, base + sym("PyCode_Type"));
            assert_eq!(found.init_cleanup.is_some(), want >= (3, 13), "{minor}");
        }
        if let Some(prefix) = pyenv_prefix("3.7") {
            let lib = prefix.join("lib/libpython3.7m.so.1.0");
            let maps = format!(
                "7f0000000000-7f0000001000 r--p 00000000 fe:01 456 {}\n",
                lib.display()
            );
            let err = locate(1, &maps, None).unwrap_err().to_string();
            assert_eq!(
                err,
                "CPython 3.7 is not supported: seam reads 3.8 to 3.15; native frames only"
            );
        }
    }
}
