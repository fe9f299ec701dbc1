//! Turning addresses into named frames: DWARF (with inlined frames) and ELF
//! symbol tables through `addr2line`, Go function names and lines from the
//! pclntab (so stripped Go libraries keep their names), Rust demangling, and
//! the kernel's symbols from /proc/kallsyms.

pub mod gopclntab;
mod kernel;

pub use kernel::KernelSymbols;

use crate::classify::{classify_native, NativeFacts};
use crate::modules::{AddressSpace, Language, LoadedModule};
use seam_proto::Runtime;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One symbolized native frame (an inlined function gets its own).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NativeFrame {
    pub name: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// False when no symbol covered the address and the name is `[module+0xoffset]`.
    pub known: bool,
    /// The name came from the Go pclntab.
    pub go: bool,
}

/// A symbolized address: its frames, innermost (leaf-most) first, and the module.
#[derive(Clone, Debug)]
pub struct Symbolized {
    pub frames: Vec<NativeFrame>,
    pub module: Option<Arc<str>>,
    pub language: Option<Language>,
    /// Each frame's runtime ([`classify_native`]), classified once here
    /// rather than at every sample that passes through the address.
    pub runtimes: Vec<Runtime>,
}

impl Symbolized {
    fn new(frames: Vec<NativeFrame>, module: Option<Arc<str>>, language: Option<Language>) -> Self {
        let runtimes = frames
            .iter()
            .map(|f| {
                classify_native(&NativeFacts {
                    name: &f.name,
                    module: module.as_deref(),
                    language,
                    go: f.go,
                })
            })
            .collect();
        Symbolized {
            frames,
            module,
            language,
            runtimes,
        }
    }
}

/// Caches symbolized addresses per (object, svma).
#[derive(Default)]
pub struct Symbolizer {
    cache: HashMap<(usize, u64), Arc<Symbolized>>,
}

impl Symbolizer {
    /// Symbolizes `lookup` (an instruction address: return addresses already minus one).
    pub fn symbolize(&mut self, space: &AddressSpace, lookup: u64) -> Arc<Symbolized> {
        let Some(module) = space.module_at(lookup) else {
            return Arc::new(Symbolized::new(
                vec![NativeFrame {
                    name: format!("[unknown 0x{lookup:x}]"),
                    file: None,
                    line: None,
                    known: false,
                    go: false,
                }],
                None,
                None,
            ));
        };
        let svma = module.svma(lookup);
        let key = (std::rc::Rc::as_ptr(&module.object) as usize, svma);
        if let Some(s) = self.cache.get(&key) {
            return s.clone();
        }
        let s = Arc::new(symbolize_in_module(space, module, svma));
        self.cache.insert(key, s.clone());
        s
    }
}

fn symbolize_in_module(space: &AddressSpace, module: &LoadedModule, svma: u64) -> Symbolized {
    let object = &module.object;
    let file_name: Arc<str> = object
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&object.path)
        .into();
    let done = |frames| Symbolized::new(frames, Some(file_name.clone()), Some(object.language));

    if let Some(go) = &object.go {
        if let Some(f) = go.lookup(svma) {
            let (file, line) = go
                .line(svma)
                .map_or((None, None), |(f, l)| (Some(f.to_string()), Some(l)));
            return done(vec![NativeFrame {
                name: f.name.to_string(),
                file,
                line,
                known: true,
                go: true,
            }]);
        }
    }
    if let Some(name) = object.plt_name(svma) {
        return done(vec![NativeFrame {
            name: name.to_string(),
            file: None,
            line: None,
            known: true,
            go: false,
        }]);
    }
    let mut frames = Vec::new();
    if let Some(loader) = object.symbolizer(Path::new(&space.file_path(&object.path))) {
        if let Ok(mut iter) = loader.find_frames(svma) {
            while let Ok(Some(frame)) = iter.next() {
                let Some(name) = frame.function.as_ref().and_then(|f| f.demangle().ok()) else {
                    continue;
                };
                let loc = frame.location.as_ref();
                frames.push(NativeFrame {
                    name: tidy_rust_name(&name),
                    file: loc.and_then(|l| l.file).map(str::to_string),
                    line: loc.and_then(|l| l.line),
                    known: true,
                    go: false,
                });
            }
        }
        if frames.is_empty() {
            if let Some(sym) = loader.find_symbol(svma) {
                let name = crate::modules::demangle(sym);
                frames.push(NativeFrame {
                    name,
                    file: None,
                    line: None,
                    known: true,
                    go: false,
                });
            }
        }
    }
    if let (true, Some(name)) = (frames.is_empty(), object.own_symbol(svma)) {
        frames.push(NativeFrame {
            name: name.to_string(),
            file: None,
            line: None,
            known: true,
            go: false,
        });
    }
    if frames.is_empty() {
        // No name: the function's entry, when the unwind tables know it, so
        // that every sample in one function is one frame (and its entry can
        // be probed); else the address itself.
        let at = object.function_start(svma).unwrap_or(svma);
        frames.push(NativeFrame {
            name: format!("[{file_name}+0x{at:x}]"),
            file: None,
            line: None,
            known: false,
            go: false,
        });
    }
    done(frames)
}

/// Drops the hash suffix that legacy Rust mangling leaves after demangling
/// through DWARF names (`foo::h0123456789abcdef`).
fn tidy_rust_name(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head.to_string()
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_hashes_are_dropped() {
        for (input, want) in [
            (
                "rsspin::inner::rust_spin_inner::h62dd6cad0c25da0e",
                "rsspin::inner::rust_spin_inner",
            ),
            ("main::h12", "main::h12"),
            ("spin_inner", "spin_inner"),
        ] {
            assert_eq!(tidy_rust_name(input), want);
        }
    }
}
