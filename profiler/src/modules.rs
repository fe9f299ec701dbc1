//! The target's address space: which file is mapped where, and what seam
//! knows about each file (unwind tables, symbols, the Go pclntab, the
//! language it was written in, the addresses where stacks switch or end).

use crate::perf::uprobe::ProbePoint;
use crate::symbolize::gopclntab::GoPclntab;
use memmap2::Mmap;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

const PAGE_SIZE: u64 = 4096;
const VDSO: &str = "[vdso]";

/// A byte range of a memory-mapped file, as framehop wants its section data.
#[derive(Clone)]
pub struct FileBytes {
    map: Arc<Mmap>,
    range: Range<usize>,
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

/// The language that owns a module's plain (C-ABI) symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    C,
    Go,
    Rust,
    /// The CPython interpreter (the python binary or libpython).
    Python,
}

/// Addresses where the unwinder must do something other than a plain step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The root of a thread: `_start`, `start_thread`, `clone3`, `runtime.goexit`, `runtime.mstart`;
    /// of a greenlet's stack: `g_initialstub`.
    Root,
    /// `runtime.asmcgocall`: the C callee runs on the g0 stack, its Go caller on the goroutine stack.
    GoAsmcgocall,
    /// `crosscall2`: Go assembly with no CFI between a cgo export wrapper and `runtime.cgocallback`.
    Crosscall2,
    /// CPython's eval loop, which stands for a run of Python frames.
    EvalLoop,
}

const SPECIAL_SYMBOLS: &[(&str, FrameKind)] = &[
    ("_start", FrameKind::Root),
    ("start_thread", FrameKind::Root),
    ("clone3", FrameKind::Root),
    ("__clone3", FrameKind::Root),
    ("clone", FrameKind::Root),
    ("__clone", FrameKind::Root),
    ("runtime.goexit", FrameKind::Root),
    ("runtime.goexit.abi0", FrameKind::Root),
    ("runtime.mstart", FrameKind::Root),
    ("runtime.mstart.abi0", FrameKind::Root),
    ("runtime.rt0_go", FrameKind::Root),
    ("runtime.rt0_go.abi0", FrameKind::Root),
    // mcall switches to the g0 stack to run the scheduler, which never returns
    // there; Go's own traceback ends g0 stacks at it.
    ("runtime.mcall", FrameKind::Root),
    ("runtime.asmcgocall", FrameKind::GoAsmcgocall),
    ("runtime.asmcgocall.abi0", FrameKind::GoAsmcgocall),
    ("runtime.asmcgocall_landingpad", FrameKind::GoAsmcgocall),
    (
        "runtime.asmcgocall_landingpad.abi0",
        FrameKind::GoAsmcgocall,
    ),
    ("crosscall2", FrameKind::Crosscall2),
    ("_PyEval_EvalFrameDefault", FrameKind::EvalLoop),
];

fn special_kind(name: &str) -> Option<FrameKind> {
    let base = name.split_once(".cold").map_or(name, |(b, _)| b);
    SPECIAL_SYMBOLS
        .iter()
        .find(|(n, _)| *n == base)
        .map(|&(_, k)| k)
        .or_else(|| is_greenlet_start(base).then_some(FrameKind::Root))
}

/// greenlet's `g_initialstub`, where a greenlet's own stack begins (gevent's,
/// SQLAlchemy's asyncio bridge): what lies below it is the stack of the
/// greenlet that switched in, whose Python frames the thread's current chain
/// does not hold. Greenlet 1 names it in C, greenlet 2 and 3 in C++
/// (`greenlet::UserGreenlet::g_initialstub(void*)`).
fn is_greenlet_start(name: &str) -> bool {
    name == "g_initialstub"
        || (name.starts_with("_ZN8greenlet") && name.contains("13g_initialstubE"))
}

/// A symbol's name as frames show it: Rust names demangled without their
/// hash, C++ names demangled (numpy's sorts, a C++ extension's methods), and
/// anything else as it is.
pub fn demangle(name: &str) -> String {
    addr2line::demangle_auto(std::borrow::Cow::Borrowed(name), None).into_owned()
}

/// Identifiers of a demangled name that its mangled name holds as is
/// (Rust's legacy and v0 manglings and C++'s keep each identifier of a path,
/// a repeated one at least once), longest first: not what the demanglers
/// write themselves (`{closure#0}`, `{shim:vtable#0}`, `unsafe`,
/// `(anonymous namespace)`, `std::basic_string`) nor primitive types and
/// constants, which the manglings encode.
fn identifiers(display: &str) -> Vec<&str> {
    const NOT_KEPT: &[&str] = &[
        // Rust's demangler.
        "closure",
        "shim",
        "vtable",
        "reify",
        "const",
        "unsafe",
        "extern",
        "true",
        "false",
        "bool",
        "char",
        "usize",
        "isize",
        "u128",
        "i128",
        // The C++ demangler's: builtin types, the standard library's
        // abbreviations (`Ss`, `Sa`), special names, lambdas, GCC's clones.
        "void",
        "wchar_t",
        "char8_t",
        "char16_t",
        "char32_t",
        "long",
        "short",
        "float",
        "double",
        "__int128",
        "__float128",
        "signed",
        "unsigned",
        "volatile",
        "restrict",
        "decltype",
        "nullptr",
        "nullptr_t",
        "auto",
        "operator",
        "delete",
        "allocator",
        "basic_string",
        "char_traits",
        "basic_istream",
        "basic_ostream",
        "basic_iostream",
        "string",
        "istream",
        "ostream",
        "iostream",
        "anonymous",
        "namespace",
        "lambda",
        "unnamed",
        "type",
        "clone",
        "typeinfo",
        "name",
        "thunk",
        "virtual",
        "covariant",
        "return",
        "guard",
        "variable",
        "reference",
        "temporary",
        "transaction",
    ];
    let mut words: Vec<&str> = display
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| w.len() >= 4 && !NOT_KEPT.contains(w))
        // Numbers (const generics, in hex in v0) are no identifiers.
        .filter(|w| !w.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    words.sort_by_key(|w| (std::cmp::Reverse(w.len()), *w));
    words.dedup();
    words
}

type Slice<'a> = gimli::EndianSlice<'a, gimli::LittleEndian>;
/// `.eh_frame_hdr`'s parsed index, `.eh_frame`, and their addresses.
type EhFrames<'a> = (
    gimli::ParsedEhFrameHdr<Slice<'a>>,
    gimli::EhFrame<Slice<'a>>,
    gimli::BaseAddresses,
);

/// Addresses whose [`ObjectInfo::drap_cfa_offset`] a module remembers.
const MAX_DRAP_MEMO: usize = 1 << 16;

/// What seam knows about one ELF file.
pub struct ObjectInfo {
    pub path: String,
    pub language: Language,
    pub go: Option<GoPclntab>,
    /// (svma range, kind), sorted by start.
    special: Vec<(Range<u64>, FrameKind)>,
    /// PT_LOAD segments: (file offset, svma, file size, executable).
    segments: Vec<(u64, u64, u64, bool)>,
    unwind_sections: framehop::ExplicitModuleSectionInfo<FileBytes>,
    symbolizer: std::cell::OnceCell<Option<addr2line::Loader>>,
    /// Text symbols of an object with no file behind it: (start, end, name).
    own_symbols: Vec<(u64, u64, String)>,
    cgocall_start: Option<u64>,
    map: Arc<Mmap>,
    /// Defined text symbols (.symtab and .dynsym), built on first use.
    text_symbols: std::cell::OnceCell<Vec<TextSymbol>>,
    /// PLT stubs: (start, end, `name@plt`), sorted, built on first use.
    plt: std::cell::OnceCell<Vec<(u64, u64, String)>>,
    /// [`ObjectInfo::drap_cfa_offset`] by address, as looked up.
    drap: std::cell::RefCell<foldhash::HashMap<u64, Option<i64>>>,
    /// [`ObjectInfo::probe_point`] by entry, as looked up.
    probe_points: std::cell::RefCell<foldhash::HashMap<u64, ProbePoint>>,
    /// Names of the functions with a cold part, built on first use.
    cold_parts: std::cell::OnceCell<std::collections::HashSet<String>>,
    /// The symbols the object was stripped of, where a distribution ships
    /// them (see [`debug_file`] and [`mini_debuginfo`]).
    debug: Option<DebugSymbols>,
}

/// An ELF image with the symbols (and perhaps DWARF) of a stripped object,
/// at the object's own addresses.
struct DebugSymbols {
    /// The separate debug file, which addr2line opens; `None` for
    /// MiniDebugInfo, which lives in memory and holds symbols only.
    path: Option<PathBuf>,
    image: Arc<Mmap>,
}

/// A function symbol of an ELF file, for probing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextSymbol {
    pub svma: u64,
    /// The name in the file (mangled).
    pub name: String,
}

impl TextSymbol {
    /// The name as frames show it (Rust names demangled, without the hash).
    /// Demangled on each call: a large Rust module has hundreds of thousands
    /// of symbols, and demangling them all up front held up the sampler's
    /// reader for half a second (polars' 177 MB module).
    pub fn display(&self) -> String {
        demangle(&self.name)
    }
}

impl ObjectInfo {
    pub fn open(path: &str, file_path: &Path) -> Result<ObjectInfo, String> {
        let file =
            std::fs::File::open(file_path).map_err(|e| format!("{}: {e}", file_path.display()))?;
        // SAFETY: the file is mapped read-only; a library replaced on disk while we
        // read it is a risk every profiler takes (perf, samply).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| format!("{path}: mmap: {e}"))?;
        // The target's root, where `file_path` is `path` inside it (a container's).
        let file_str = file_path.to_string_lossy();
        let root = file_str
            .strip_suffix(path)
            .filter(|r| !r.is_empty() && path.starts_with('/'));
        let debug = object::File::parse(&map[..]).ok().and_then(|elf| {
            debug_file(&elf, root)
                .map(|(p, image)| DebugSymbols {
                    path: Some(p),
                    image,
                })
                .or_else(|| mini_debuginfo(&elf).map(|image| DebugSymbols { path: None, image }))
        });
        let mini = debug
            .as_ref()
            .filter(|d| d.path.is_none())
            .map(|d| d.image.clone());
        let mut object = ObjectInfo::from_map(path, Arc::new(map), debug)?;
        if let Some(image) = mini {
            // No file for addr2line to open: its symbols are looked up here.
            if let Ok(elf) = object::File::parse(&image[..]) {
                object.own_symbols = symbol_ranges(&elf);
            }
        }
        Ok(object)
    }

    /// An object from bytes read out of the target (the vDSO, which has no file).
    pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<ObjectInfo, String> {
        let mut map =
            memmap2::MmapMut::map_anon(bytes.len().max(1)).map_err(|e| format!("{path}: {e}"))?;
        map[..bytes.len()].copy_from_slice(bytes);
        let map = map.make_read_only().map_err(|e| format!("{path}: {e}"))?;
        let mut object = ObjectInfo::from_map(path, Arc::new(map), None)?;
        // There is no file for addr2line to open: keep the symbol table here.
        let elf = object::File::parse(bytes).map_err(|e| format!("{path}: {e}"))?;
        object.own_symbols = symbol_ranges(&elf);
        Ok(object)
    }

    /// The symbol covering `svma` in an object read from memory (see [`ObjectInfo::from_bytes`]).
    pub fn own_symbol(&self, svma: u64) -> Option<&str> {
        let i = self
            .own_symbols
            .partition_point(|(start, _, _)| *start <= svma);
        let (start, end, name) = self.own_symbols.get(i.checked_sub(1)?)?;
        (*start..*end).contains(&svma).then_some(name.as_str())
    }

    fn from_map(
        path: &str,
        map: Arc<Mmap>,
        debug: Option<DebugSymbols>,
    ) -> Result<ObjectInfo, String> {
        let elf =
            object::File::parse(&map[..]).map_err(|e| format!("{path}: not an ELF file: {e}"))?;
        let debug_elf = debug
            .as_ref()
            .and_then(|d| object::File::parse(&d.image[..]).ok());
        let debug_symbols = || debug_elf.iter().flat_map(|d| d.symbols());
        let bytes_of = |name: &str| -> Option<(Range<u64>, FileBytes)> {
            let s = elf.section_by_name(name)?;
            let (off, size) = s.file_range()?;
            Some((
                s.address()..s.address() + s.size(),
                FileBytes {
                    map: map.clone(),
                    range: off as usize..(off + size) as usize,
                },
            ))
        };
        let eh_frame = bytes_of(".eh_frame");
        let eh_frame_hdr = bytes_of(".eh_frame_hdr");
        let text = bytes_of(".text");
        let debug_frame = if eh_frame.is_none() {
            bytes_of(".debug_frame")
        } else {
            None
        };
        let unwind_sections = framehop::ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: text.as_ref().map(|t| t.0.clone()),
            text: text.as_ref().map(|t| t.1.clone()),
            eh_frame_svma: eh_frame.as_ref().map(|t| t.0.clone()),
            eh_frame: eh_frame.map(|t| t.1),
            eh_frame_hdr_svma: eh_frame_hdr.as_ref().map(|t| t.0.clone()),
            eh_frame_hdr: eh_frame_hdr.map(|t| t.1),
            debug_frame: debug_frame.map(|t| t.1),
            stubs_svma: None,
            stub_helper_svma: None,
            got_svma: None,
            unwind_info: None,
            text_segment_svma: None,
            text_segment: None,
        };
        let segments = elf
            .segments()
            .filter_map(|s| {
                let (off, size) = s.file_range();
                let exec = matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0);
                Some((off, s.address(), size, exec)).filter(|_| size > 0)
            })
            .collect();

        let go = GoPclntab::parse(&map[..]).ok().flatten();
        let mut special = Vec::new();
        for sym in elf
            .symbols()
            .chain(elf.dynamic_symbols())
            .chain(debug_symbols())
        {
            if let (Ok(name), true) = (sym.name(), sym.is_definition()) {
                if let Some(kind) = special_kind(name) {
                    special.push((sym.address()..sym.address() + sym.size().max(1), kind));
                }
            }
        }
        let mut cgocall_start = None;
        if let Some(go) = &go {
            for f in go.functions() {
                if let Some(kind) = special_kind(f.name) {
                    special.push((f.start..f.end, kind));
                }
                if f.name == "runtime.cgocall" {
                    cgocall_start = Some(f.start);
                }
            }
        }
        special.sort_by_key(|(r, _)| (r.start, r.end));
        special.dedup_by(|a, b| a.0.start == b.0.start);

        let file_name = path.rsplit('/').next().unwrap_or(path);
        let language = if go.is_some() {
            Language::Go
        } else if is_python_module(file_name)
            || special.iter().any(|(_, k)| *k == FrameKind::EvalLoop)
        {
            Language::Python
        } else if elf
            .section_by_name(".comment")
            .and_then(|s| s.data().ok())
            .is_some_and(|d| d.windows(5).any(|w| w == b"rustc"))
        {
            Language::Rust
        } else {
            Language::C
        };
        let stripped = elf.symbols().next().is_none() && debug_symbols().next().is_none();
        drop(debug_elf);
        let mut info = ObjectInfo {
            path: path.to_string(),
            language,
            go,
            special,
            segments,
            unwind_sections,
            symbolizer: std::cell::OnceCell::new(),
            own_symbols: Vec::new(),
            cgocall_start,
            map,
            text_symbols: std::cell::OnceCell::new(),
            plt: std::cell::OnceCell::new(),
            drap: Default::default(),
            probe_points: Default::default(),
            cold_parts: Default::default(),
            debug,
        };
        if stripped {
            info.add_partitions();
        }
        Ok(info)
    }

    /// Gives the other parts of each special function their kind, in a
    /// module without `.symtab`. GCC splits a function into parts (hot and
    /// cold, with profile feedback) that the unwind tables list as functions
    /// of their own; `.symtab` names them `f.cold`, but only `f` itself is
    /// exported. Debian's CPython 3.14 runs its eval loop in the part
    /// `_PyEval_EvalFrameDefault` jumps to, 84 KB of code that has no name
    /// once stripped. A part is found as the target of a direct jump out of
    /// the function's own code into `.text`, where the unwind tables say the
    /// stack holds more than the return address: a jump to where it holds
    /// only that is a tail call (into a function's entry), as is a jump into
    /// the PLT.
    fn add_partitions(&mut self) {
        let text = self.unwind_sections.text_svma.clone().unwrap_or(0..0);
        let mut parts = Vec::new();
        for (range, kind) in &self.special {
            let Some(len) = self.function_len(range.start) else {
                continue;
            };
            let code = self.bytes_at_svma(range.start, len as usize);
            if code.len() as u64 != len {
                continue;
            }
            for target in crate::perf::uprobe::jumps_out(code, range.start) {
                if !text.contains(&target) || self.is_entry_like(target) {
                    continue;
                }
                if let Some((start, part_len)) = self.function_range(target) {
                    parts.push((start..start + part_len, *kind));
                }
            }
        }
        if parts.is_empty() {
            return;
        }
        self.special.extend(parts);
        self.special.sort_by_key(|(r, _)| (r.start, r.end));
        self.special.dedup_by(|a, b| a.0.start == b.0.start);
    }

    /// Whether the unwind tables put the caller's frame right above the
    /// return address at `svma` (CFA = rsp + 8), as at a function's entry;
    /// also when they say nothing.
    fn is_entry_like(&self, svma: u64) -> bool {
        use gimli::{CfaRule, EhFrame, UnwindContext, UnwindSection, X86_64};
        let Some((table, eh, bases)) = self.eh_frame() else {
            return true;
        };
        let mut ctx = UnwindContext::new();
        let Some(row) = table.table().and_then(|t| {
            t.unwind_info_for_address(&eh, &bases, &mut ctx, svma, EhFrame::cie_from_offset)
                .ok()
        }) else {
            return true;
        };
        matches!(row.cfa(), CfaRule::RegisterAndOffset { register, offset: 8 } if *register == X86_64::RSP)
    }

    /// The svma that a mapping starting at file offset `pgoff` (page aligned)
    /// maps at its start. Segments need not start on a page boundary, so a
    /// page can hold the end of one segment and the start of the next; an
    /// executable mapping belongs to the executable segment.
    pub fn svma_of_file_offset(&self, pgoff: u64, executable: bool) -> Option<u64> {
        let page_start = |off: u64| off & !(PAGE_SIZE - 1);
        let covers = |&&(off, _, size, _): &&(u64, u64, u64, bool)| {
            pgoff >= page_start(off) && pgoff < off + size
        };
        let seg = self
            .segments
            .iter()
            .filter(covers)
            .find(|s| s.3 == executable)
            .or_else(|| self.segments.iter().find(covers))?;
        let (off, svma, _, _) = *seg;
        Some((svma + pgoff).wrapping_sub(off))
    }

    /// The file offset of the byte at `svma`, through the PT_LOAD segments.
    pub fn file_offset_of_svma(&self, svma: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|&&(_, start, size, _)| svma >= start && svma < start + size)
            .map(|&(off, start, _, _)| off + (svma - start))
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Up to `len` bytes of the file at `svma`.
    pub fn bytes_at_svma(&self, svma: u64, len: usize) -> &[u8] {
        let Some(off) = self.file_offset_of_svma(svma) else {
            return &[];
        };
        let off = off as usize;
        self.map
            .get(off..(off + len).min(self.map.len()))
            .unwrap_or(&[])
    }

    /// The defined function symbols of the file, sorted by address.
    pub fn text_symbols(&self) -> &[TextSymbol] {
        self.text_symbols.get_or_init(|| {
            let Ok(elf) = object::File::parse(&self.map[..]) else {
                return Vec::new();
            };
            let debug = self
                .debug
                .as_ref()
                .and_then(|d| object::File::parse(&d.image[..]).ok());
            let mut out: Vec<TextSymbol> = elf
                .symbols()
                .chain(elf.dynamic_symbols())
                .chain(debug.iter().flat_map(|d| d.symbols()))
                .filter(|s| {
                    s.is_definition() && s.kind() == object::SymbolKind::Text && s.address() != 0
                })
                .filter_map(|s| {
                    Some(TextSymbol {
                        svma: s.address(),
                        name: s.name().ok()?.to_string(),
                    })
                })
                .collect();
            out.sort_by(|a, b| (a.svma, &a.name).cmp(&(b.svma, &b.name)));
            out.dedup_by(|a, b| a.svma == b.svma && a.name == b.name);
            out
        })
    }

    /// The svmas of the text symbols named `display` as frames show it
    /// (mangled or demangled). Only names that hold each identifier of
    /// `display` (else its longest) are demangled: demangling all of polars' 300,000 names
    /// took half a second, in which the sampler's reader fell behind and the
    /// kernel dropped half the samples.
    pub fn functions_named(&self, display: &str) -> Vec<u64> {
        let words = identifiers(display);
        let named = |words: &[&str]| -> Vec<u64> {
            let finders: Vec<_> = words.iter().map(memchr::memmem::Finder::new).collect();
            let holds = |name: &str| finders.iter().all(|f| f.find(name.as_bytes()).is_some());
            self.text_symbols()
                .iter()
                .filter(|s| s.name == display || (holds(&s.name) && s.display() == display))
                .map(|s| s.svma)
                .collect()
        };
        match named(&words) {
            // A word of the C++ demangler's own that `identifiers` does not
            // know (`{virtual override thunk(...)}`): the longest alone.
            found if found.is_empty() && words.len() > 1 => named(&words[..1]),
            found => found,
        }
    }

    /// The C functions a CPython extension module hands to Python in static
    /// method tables (`PyMethodDef`: name, function, flags, doc), found
    /// through the dynamic relocations that fill in their pointers: (method
    /// name, function svma). Empty for a file with no `PyInit_` export.
    /// Tables built at run time (PyO3's) are not seen here.
    pub fn python_methods(&self) -> Vec<(String, u64)> {
        use object::ObjectSymbolTable;
        if !self
            .text_symbols()
            .iter()
            .any(|s| s.name.starts_with("PyInit_"))
        {
            return Vec::new();
        }
        let Ok(elf) = object::File::parse(&self.map[..]) else {
            return Vec::new();
        };
        let symbols = elf.dynamic_symbol_table();
        // Where each relocated pointer points: R_X86_64_RELATIVE (8) to its
        // addend, R_X86_64_64 (1) to its symbol plus addend.
        let mut pointers = HashMap::new();
        for (at, r) in elf.dynamic_relocations().into_iter().flatten() {
            let object::RelocationFlags::Elf { r_type } = r.flags() else {
                continue;
            };
            let value = match (r_type, r.target()) {
                (8, _) => r.addend() as u64,
                (1, object::RelocationTarget::Symbol(i)) => {
                    let Some(sym) = symbols.as_ref().and_then(|t| t.symbol_by_index(i).ok()) else {
                        continue;
                    };
                    if !sym.is_definition() {
                        continue;
                    }
                    sym.address().wrapping_add(r.addend() as u64)
                }
                _ => continue,
            };
            pointers.insert(at, value);
        }
        let executable = |svma: u64| {
            self.segments
                .iter()
                .any(|&(_, start, size, x)| x && svma >= start && svma < start + size)
        };
        let mut out = Vec::new();
        for (&at, &name_ptr) in &pointers {
            let Some(&meth) = pointers.get(&(at + 8)) else {
                continue;
            };
            if !executable(meth) || executable(name_ptr) {
                continue;
            }
            let flags = self.bytes_at_svma(at + 16, 4);
            let Ok(flags) = <[u8; 4]>::try_from(flags).map(u32::from_le_bytes) else {
                continue;
            };
            // METH_VARARGS, NOARGS, O or FASTCALL, and no bit beyond METH_METHOD.
            if flags >= 0x400 || flags & (0x1 | 0x4 | 0x8 | 0x80) == 0 {
                continue;
            }
            let text = self.bytes_at_svma(name_ptr, 128);
            let Some(end) = text.iter().position(|&b| b == 0) else {
                continue;
            };
            let name = &text[..end];
            let identifier = !name.is_empty()
                && !name[0].is_ascii_digit()
                && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
            if identifier {
                out.push((String::from_utf8_lossy(name).into_owned(), meth));
            }
        }
        out.sort_by_key(|m| m.1);
        out.dedup_by_key(|m| m.1);
        out
    }

    pub fn kind_at(&self, svma: u64) -> Option<FrameKind> {
        let i = self.special.partition_point(|(r, _)| r.start <= svma);
        let (range, kind) = self.special.get(i.checked_sub(1)?)?;
        range.contains(&svma).then_some(*kind)
    }

    /// The start of `runtime.cgocall`, in a Go module.
    pub fn cgocall_start(&self) -> Option<u64> {
        self.cgocall_start
    }

    pub fn unwind_sections(&self) -> framehop::ExplicitModuleSectionInfo<FileBytes> {
        self.unwind_sections.clone()
    }

    /// The name of the PLT stub that holds `svma` (`name@plt`, after the
    /// function it jumps to), if `svma` is in one. Stubs have no symbol and
    /// no unwind entry, and a symbol lookup would give them the name of the
    /// function before the PLT.
    pub fn plt_name(&self, svma: u64) -> Option<&str> {
        let plt = self.plt.get_or_init(|| plt_stubs(&self.map[..]));
        let i = plt.partition_point(|s| s.0 <= svma).checked_sub(1)?;
        let (_, end, name) = &plt[i];
        (svma < *end).then_some(name.as_str())
    }

    /// Where seam probes the function that starts at `entry` (see
    /// [`crate::perf::uprobe::probe_point`]): past its first instructions
    /// only where the unwind tables give its whole code (up to
    /// [`MAX_SCANNED_FUNCTION`] bytes, all in the file) and it has no part
    /// elsewhere (gcc's `f.cold`, which jumps back into `f`, perhaps to
    /// before the probe); else by its first bytes. Cached by entry: a trap's
    /// samples ask again.
    pub fn probe_point(&self, entry: u64) -> ProbePoint {
        if let Some(&p) = self.probe_points.borrow().get(&entry) {
            return p;
        }
        let p = self.find_probe_point(entry);
        self.probe_points.borrow_mut().insert(entry, p);
        p
    }

    fn find_probe_point(&self, entry: u64) -> ProbePoint {
        let by_entry = || crate::perf::uprobe::probe_point(self.bytes_at_svma(entry, 16), false);
        let Some(len) = self.function_len(entry).map(|l| l as usize) else {
            return by_entry();
        };
        let code = self.bytes_at_svma(entry, len);
        if code.len() != len || self.has_cold_part(entry) {
            return by_entry();
        }
        crate::perf::uprobe::probe_point(code, true)
    }

    /// Whether a function at `entry` has a cold part (`name.cold`, `name.cold.N`).
    fn has_cold_part(&self, entry: u64) -> bool {
        let symbols = self.text_symbols();
        let cold = self.cold_parts.get_or_init(|| {
            symbols
                .iter()
                .filter_map(|s| Some(s.name.split_once(".cold")?.0.to_string()))
                .collect()
        });
        if cold.is_empty() {
            return false;
        }
        let from = symbols.partition_point(|s| s.svma < entry);
        symbols[from..]
            .iter()
            .take_while(|s| s.svma == entry)
            .any(|s| cold.contains(&s.name))
    }

    /// The entry of the function that holds `svma`, from the unwind tables
    /// (`.eh_frame_hdr`'s sorted index into `.eh_frame`): what names a
    /// function in a stripped module, as no symbol does.
    pub fn function_start(&self, svma: u64) -> Option<u64> {
        self.function_range(svma).map(|(start, _)| start)
    }

    /// The length of the function that starts at `entry`, from its unwind
    /// tables, when at most [`MAX_SCANNED_FUNCTION`] bytes.
    pub fn function_len(&self, entry: u64) -> Option<u64> {
        self.function_range(entry)
            .filter(|&(start, len)| start == entry && len <= MAX_SCANNED_FUNCTION)
            .map(|(_, len)| len)
    }

    /// The entry and length of the function that holds `svma`, from the
    /// unwind tables (see [`ObjectInfo::function_start`]).
    fn function_range(&self, svma: u64) -> Option<(u64, u64)> {
        use gimli::{EhFrame, UnwindSection};
        let (table, eh, bases) = self.eh_frame()?;
        let fde = table
            .table()?
            .fde_for_address(&eh, &bases, svma, EhFrame::cie_from_offset)
            .ok()?;
        Some((fde.initial_address(), fde.len()))
    }

    /// Where the caller's frame is when the unwind tables say so by an
    /// expression that framehop cannot evaluate: GCC's stack realignment
    /// (`lea 8(%rsp),%r10; and $-64,%rsp; push -8(%r10); push %rbp;
    /// mov %rsp,%rbp`, in AVX-512 code such as numpy's sorts) keeps the CFA
    /// at `rbp + offset`, read from the stack (`DW_OP_breg6 offset;
    /// DW_OP_deref`). Returns that offset at `svma`, remembered by address.
    /// framehop falls back to the frame pointer there, which finds the
    /// return address (the realigned frame holds a copy of it) but puts the
    /// caller's stack pointer at `rbp + 16`, inside the realigned frame: the
    /// caller's own frame then unwound to garbage.
    pub fn drap_cfa_offset(&self, svma: u64) -> Option<i64> {
        if let Some(&known) = self.drap.borrow().get(&svma) {
            return known;
        }
        let found = self.read_drap_cfa_offset(svma);
        let mut drap = self.drap.borrow_mut();
        if drap.len() >= MAX_DRAP_MEMO {
            drap.clear();
        }
        drap.insert(svma, found);
        found
    }

    fn read_drap_cfa_offset(&self, svma: u64) -> Option<i64> {
        use gimli::{CfaRule, EhFrame, Reader, UnwindContext, UnwindSection};
        let (table, eh, bases) = self.eh_frame()?;
        let mut ctx = UnwindContext::new();
        let row = table
            .table()?
            .unwind_info_for_address(&eh, &bases, &mut ctx, svma, EhFrame::cie_from_offset)
            .ok()?;
        let CfaRule::Expression(expr) = row.cfa() else {
            return None;
        };
        let mut ops = expr.get(&eh).ok()?.0;
        // DW_OP_breg6 (rbp) OFFSET, DW_OP_deref, and nothing else.
        if ops.read_u8().ok()? != gimli::constants::DW_OP_breg6.0 {
            return None;
        }
        let offset = ops.read_sleb128().ok()?;
        (ops.read_u8().ok()? == gimli::constants::DW_OP_deref.0 && ops.is_empty()).then_some(offset)
    }

    /// The parsed `.eh_frame_hdr` index, `.eh_frame` and their addresses.
    fn eh_frame(&self) -> Option<EhFrames<'_>> {
        use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian};
        let u = &self.unwind_sections;
        let (hdr, hdr_svma) = (u.eh_frame_hdr.as_deref()?, u.eh_frame_hdr_svma.as_ref()?);
        let (eh, eh_svma) = (u.eh_frame.as_deref()?, u.eh_frame_svma.as_ref()?);
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(hdr_svma.start)
            .set_eh_frame(eh_svma.start)
            .set_text(u.text_svma.as_ref().map_or(0, |t| t.start));
        let parsed = EhFrameHdr::new(hdr, LittleEndian).parse(&bases, 8).ok()?;
        Some((parsed, EhFrame::new(eh, LittleEndian), bases))
    }

    /// DWARF and symbol-table lookups, opened on first use: from the
    /// object's separate debug file where it has one, which holds what the
    /// object was stripped of at the same addresses.
    pub fn symbolizer(&self, file_path: &Path) -> Option<&addr2line::Loader> {
        self.symbolizer
            .get_or_init(|| {
                let path = self.debug_path().unwrap_or(file_path);
                addr2line::Loader::new(path).ok()
            })
            .as_ref()
    }

    /// The separate debug file in use, if any.
    pub fn debug_path(&self) -> Option<&Path> {
        self.debug.as_ref()?.path.as_deref()
    }
}

/// Where distributions install the debug files they strip from their
/// binaries (Debian's and Ubuntu's `-dbg` and `-dbgsym` packages, Fedora's
/// `-debuginfo`), by build id: `.build-id/ab/cdef….debug`.
const DEBUG_DIR: &str = "/usr/lib/debug/.build-id";

/// The separate debug file of `elf`, found by its build id in the target's
/// `root` (a container's) and then in seam's own, and taken only if it
/// carries the same build id and a symbol table. perf, gdb and samply look
/// there too; `.gnu_debuglink` names without a build id, and debuginfod, are
/// not tried.
fn debug_file(elf: &object::File<'_>, root: Option<&str>) -> Option<(PathBuf, Arc<Mmap>)> {
    let id = elf.build_id().ok()??;
    if id.len() < 2 {
        return None;
    }
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{DEBUG_DIR}/{}/{}.debug", &hex[..2], &hex[2..]);
    root.map(|r| format!("{r}{name}"))
        .into_iter()
        .chain(std::iter::once(name))
        .find_map(|candidate| {
            let file = std::fs::File::open(&candidate).ok()?;
            // SAFETY: read-only mapping, as for the object itself.
            let map = unsafe { Mmap::map(&file) }.ok()?;
            let debug = object::File::parse(&map[..]).ok()?;
            let same = debug.build_id().ok()?? == id && debug.symbols().next().is_some();
            same.then(|| (PathBuf::from(&candidate), Arc::new(map)))
        })
}

/// MiniDebugInfo (Fedora's, RHEL's): the symbols of a stripped object that
/// its dynamic symbols lack (static functions, `f.cold` parts), kept in the
/// object as an xz-compressed ELF file in `.gnu_debugdata`, so that stacks
/// have names without a debug package. Read at most [`MAX_MINI_DEBUGINFO`]
/// bytes uncompressed.
fn mini_debuginfo(elf: &object::File<'_>) -> Option<Arc<Mmap>> {
    let packed = elf.section_by_name(".gnu_debugdata")?.data().ok()?;
    let mut out = Vec::new();
    let mut limited = LimitedWriter {
        inner: &mut out,
        left: MAX_MINI_DEBUGINFO,
    };
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(packed), &mut limited).ok()?;
    object::File::parse(&out[..]).ok()?.symbols().next()?;
    let mut map = memmap2::MmapMut::map_anon(out.len()).ok()?;
    map.copy_from_slice(&out);
    Some(Arc::new(map.make_read_only().ok()?))
}

/// Fedora's MiniDebugInfo of a large library is a few MB uncompressed.
const MAX_MINI_DEBUGINFO: usize = 256 << 20;

/// A writer that fails past `left` bytes: a decompression bomb stops there.
struct LimitedWriter<'a> {
    inner: &'a mut Vec<u8>,
    left: usize,
}

impl std::io::Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other("MiniDebugInfo too large"));
        }
        self.left -= buf.len();
        self.inner.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The defined function symbols of `elf`, dynamic and not, as sorted
/// (start, end, name).
fn symbol_ranges(elf: &object::File<'_>) -> Vec<(u64, u64, String)> {
    let mut symbols: Vec<(u64, u64, String)> = elf
        .dynamic_symbols()
        .chain(elf.symbols())
        .filter(|s| s.is_definition() && s.kind() == object::SymbolKind::Text)
        .filter_map(|s| {
            Some((
                s.address(),
                s.address() + s.size().max(1),
                s.name().ok()?.to_string(),
            ))
        })
        .collect();
    symbols.sort();
    symbols
}

/// This process's own vDSO image, when it is `len` bytes long.
fn own_vdso(len: usize) -> Option<Vec<u8>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let own = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let (start, end) = own.split_whitespace().next()?.split_once('-')?;
    let (start, end) = (
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    );
    if (end - start) as usize != len {
        return None;
    }
    // SAFETY: the vDSO is mapped readable in every process for its whole life.
    Some(unsafe { std::slice::from_raw_parts(start as *const u8, len) }.to_vec())
}

fn is_python_module(file_name: &str) -> bool {
    file_name.starts_with("libpython3")
        || (file_name.starts_with("python3") && !file_name.contains(".so"))
}

/// One executable mapping of a file in the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub path: String,
}

/// A module as loaded in the target: the file and where its svma 0 sits.
#[derive(Clone)]
pub struct LoadedModule {
    pub object: Rc<ObjectInfo>,
    /// avma = svma + bias.
    pub bias: u64,
    pub avma: Range<u64>,
    /// The mapping that loaded it.
    pub mapping: Mapping,
}

impl LoadedModule {
    pub fn svma(&self, avma: u64) -> u64 {
        avma.wrapping_sub(self.bias)
    }
}

/// The executable mappings of one process and the objects behind them.
#[derive(Default)]
pub struct AddressSpace {
    modules: BTreeMap<u64, LoadedModule>,
    objects: HashMap<String, Option<Rc<ObjectInfo>>>,
    /// Prefix for opening the target's files (`/proc/PID/root`).
    root: String,
    /// The live process, to read its vDSO (None for fixtures).
    pid: Option<u32>,
    /// Files that could not be read, with why.
    pub unreadable: BTreeMap<String, String>,
}

impl AddressSpace {
    pub fn new(pid: u32) -> AddressSpace {
        AddressSpace {
            root: format!("/proc/{pid}/root"),
            pid: Some(pid),
            ..Default::default()
        }
    }

    /// An address space whose files are opened under `root` (a folder of
    /// recorded modules), with no live process behind it.
    pub fn from_files(root: &Path) -> AddressSpace {
        AddressSpace {
            root: root.display().to_string(),
            ..Default::default()
        }
    }

    /// Adds the executable file mappings listed in a /proc/PID/maps text.
    pub fn add_maps_text(&mut self, maps: &str) -> Vec<LoadedModule> {
        maps.lines()
            .filter_map(parse_maps_line)
            .filter_map(|m| self.add_mapping(m))
            .collect()
    }

    /// Adds one executable mapping (from /proc/PID/maps or a PERF_RECORD_MMAP2).
    /// Returns the module when it is new, for the unwinder to learn it.
    pub fn add_mapping(&mut self, m: Mapping) -> Option<LoadedModule> {
        let object = if m.path == VDSO {
            self.vdso(&m)?
        } else if m.path.starts_with('/')
            && !m.path.starts_with("//")
            && !m.path.starts_with("/memfd:")
        {
            self.object(&m.path)?
        } else {
            return None;
        };
        let svma = object.svma_of_file_offset(m.pgoff, true)?;
        let bias = m.start.wrapping_sub(svma);
        if let Some(existing) = self.modules.get(&m.start) {
            if existing.bias == bias && Rc::ptr_eq(&existing.object, &object) {
                return None;
            }
        }
        // A new mapping replaces whatever it overlaps.
        let overlapping: Vec<u64> = self
            .modules
            .range(..m.end)
            .filter(|(_, lm)| lm.avma.end > m.start)
            .map(|(&s, _)| s)
            .collect();
        for s in overlapping {
            self.modules.remove(&s);
        }
        let module = LoadedModule {
            object,
            bias,
            avma: m.start..m.end,
            mapping: m.clone(),
        };
        self.modules.insert(m.start, module.clone());
        Some(module)
    }

    /// The vDSO has no file: its image is read from the target once.
    fn vdso(&mut self, m: &Mapping) -> Option<Rc<ObjectInfo>> {
        if let Some(o) = self.objects.get(VDSO) {
            return o.clone();
        }
        let memory = crate::memory::ProcessMemory { pid: self.pid? };
        let len = (m.end - m.start) as usize;
        // The kernel refuses process_vm_readv on the vDSO (EFAULT); every process on
        // this kernel maps the same image, so seam's own copy serves when the sizes agree.
        let loaded = crate::memory::ReadMemory::read_vec(&memory, m.start, len)
            .or_else(|e| own_vdso(len).ok_or(e))
            .map_err(|e| e.to_string())
            .and_then(|bytes| ObjectInfo::from_bytes(VDSO, &bytes));
        let loaded = match loaded {
            Ok(o) => Some(Rc::new(o)),
            Err(e) => {
                self.unreadable.insert(VDSO.to_string(), e);
                None
            }
        };
        self.objects.insert(VDSO.to_string(), loaded.clone());
        loaded
    }

    fn object(&mut self, path: &str) -> Option<Rc<ObjectInfo>> {
        if let Some(o) = self.objects.get(path) {
            return o.clone();
        }
        let file_path = self.file_path(path);
        let loaded = match ObjectInfo::open(path, Path::new(&file_path)) {
            Ok(o) => Some(Rc::new(o)),
            Err(e) => {
                self.unreadable.insert(path.to_string(), e);
                None
            }
        };
        self.objects.insert(path.to_string(), loaded.clone());
        loaded
    }

    /// Where to open the target's file `path` from seam's point of view.
    pub fn file_path(&self, path: &str) -> String {
        let inside = format!("{}{}", self.root, path);
        if !self.root.is_empty() && Path::new(&inside).exists() {
            inside
        } else {
            path.to_string()
        }
    }

    pub fn module_at(&self, avma: u64) -> Option<&LoadedModule> {
        let (_, m) = self.modules.range(..=avma).next_back()?;
        m.avma.contains(&avma).then_some(m)
    }

    pub fn modules(&self) -> impl Iterator<Item = &LoadedModule> {
        self.modules.values()
    }

    /// Whether a thread that trapped on a breakpoint at `avma`, with stack
    /// pointer `sp`, had not yet run the instruction there, which seam
    /// probes (see [`ObjectInfo::probe_point`]): an instruction longer than
    /// the `int3` returns elsewhere once run, and a one-byte `push` moves the
    /// stack pointer by 8.
    pub fn trapped_before_probe(&self, avma: u64, sp: u64) -> bool {
        let Some(m) = self.module_at(avma) else {
            return false;
        };
        let svma = m.svma(avma);
        let symbols = m.object.text_symbols();
        let by_symbol = symbols
            .partition_point(|s| s.svma <= svma)
            .checked_sub(1)
            .map(|i| symbols[i].svma);
        let entry = match m.object.function_start(svma) {
            Some(start) => start.max(by_symbol.unwrap_or(0)),
            None => match by_symbol {
                Some(s) => s,
                None => return false,
            },
        };
        // Where seam probes it, or (a dispatcher, whose probe reads the
        // call's arguments) at its entry or past `endbr64`.
        let points = [
            m.object.probe_point(entry),
            crate::perf::uprobe::probe_point(m.object.bytes_at_svma(entry, 16), false),
        ];
        points.iter().any(|point| {
            entry + point.offset as u64 == svma
                && (point.len > 1 || sp % 16 == point.sp_mod16_before())
        })
    }

    /// Whether a function starts at `avma`, by the unwind tables or a symbol.
    pub fn is_function_entry(&self, avma: u64) -> bool {
        let Some(m) = self.module_at(avma) else {
            return false;
        };
        let svma = m.svma(avma);
        m.object.function_start(svma) == Some(svma)
            || m.object
                .text_symbols()
                .binary_search_by(|s| s.svma.cmp(&svma))
                .is_ok()
    }
}

/// Functions longer than this are probed at their entry or past its
/// `endbr64` only: their code is not scanned for jumps into their first
/// instructions.
pub const MAX_SCANNED_FUNCTION: u64 = 64 * 1024;

/// Parses one line of /proc/PID/maps, keeping executable file mappings.
pub fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut it = line.split_ascii_whitespace();
    let range = it.next()?;
    let perms = it.next()?;
    let pgoff = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path: Vec<&str> = it.collect();
    if !perms.contains('x') || path.is_empty() || (path[0].starts_with('[') && path[0] != VDSO) {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        pgoff,
        path: path.join(" "),
    })
}

/// The PLT stubs of an x86-64 ELF file, (start, end, `name@plt`) sorted:
/// each 16-byte (or, in `.plt.got`, 8-byte) entry of `.plt`, `.plt.sec` and
/// `.plt.got` whose `jmp *GOT(%rip)` reads a GOT slot that a dynamic
/// relocation binds to a named symbol. The resolver's stub (`.plt`'s first
/// entry) and entries of slots with no symbol (IFUNCs) are left out.
fn plt_stubs(data: &[u8]) -> Vec<(u64, u64, String)> {
    use object::{ObjectSymbolTable, RelocationTarget};
    let Ok(elf) = object::File::parse(data) else {
        return Vec::new();
    };
    if elf.architecture() != object::Architecture::X86_64 {
        return Vec::new();
    }
    let mut slots = HashMap::new();
    for (offset, reloc) in elf.dynamic_relocations().into_iter().flatten() {
        if let RelocationTarget::Symbol(i) = reloc.target() {
            // A dynamic relocation's symbol is an index into .dynsym.
            if let Some(name) = elf
                .dynamic_symbol_table()
                .and_then(|t| t.symbol_by_index(i).ok())
                .and_then(|s| s.name().ok().filter(|n| !n.is_empty()).map(str::to_string))
            {
                slots.insert(offset, name);
            }
        }
    }
    let mut out = Vec::new();
    for section in elf.sections() {
        let Ok(name) = section.name() else { continue };
        if !matches!(name, ".plt" | ".plt.sec" | ".plt.got") {
            continue;
        }
        let Ok(bytes) = section.data() else { continue };
        // `.plt.got` entries without IBT are `jmp *GOT(%rip); xchg %ax,%ax`: 8 bytes.
        let entry: u64 = if name == ".plt.got" && bytes.get(..2) == Some(&[0xff, 0x25]) {
            8
        } else {
            16
        };
        for (k, stub) in bytes.chunks_exact(entry as usize).enumerate() {
            let start = section.address() + k as u64 * entry;
            // `jmp *disp32(%rip)` (ff 25), maybe after endbr64 or a bnd prefix.
            let Some(at) = stub.windows(2).position(|w| w == [0xff, 0x25]) else {
                continue;
            };
            let Some(disp) = stub.get(at + 2..at + 6) else {
                continue;
            };
            let disp = i32::from_le_bytes(disp.try_into().unwrap_or_default()) as i64;
            let slot = (start + at as u64 + 6).wrapping_add_signed(disp);
            if let Some(name) = slots.get(&slot) {
                out.push((start, start + entry, format!("{name}@plt")));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An eval loop that GCC splits (its `.cold` part) and that tail-calls
    /// a local function and, through the PLT, an exported one.
    const SPLIT_EVAL_LOOP: &str = r#"
#include <stdio.h>
__attribute__((noinline)) static long local_helper(long x) { return x * 3 + (x >> 2); }
__attribute__((noinline)) long exported_helper(long x) { return x * 5 - (x >> 3); }
__attribute__((cold, noinline)) void report(long v) { fprintf(stderr, "negative %ld\n", v); }
long _PyEval_EvalFrameDefault(long *p, long n) {
    long s = 0;
    for (long i = 0; i < n; i++) {
        if (p[i] < 0) {
            report(p[i]);
            s -= p[i] * 7 + n;
            fprintf(stderr, "again %ld %ld\n", s, i);
        }
        s += p[i];
    }
    if (s == 42) return local_helper(s);
    if (s == 43) return exported_helper(s);
    return s;
}
"#;

    /// Builds `SPLIT_EVAL_LOOP` into `dir/name` with a build id and DWARF;
    /// `cflags` vary the code (and so the build id).
    fn build_split(dir: &Path, name: &str, cflags: &[&str]) -> PathBuf {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, SPLIT_EVAL_LOOP).unwrap();
        let out = dir.join(name);
        let gcc = std::process::Command::new("gcc")
            .args(["-O2", "-g", "-shared", "-fPIC", "-Wl,--build-id"])
            .args(cflags)
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .status()
            .expect("gcc runs");
        assert!(gcc.success());
        out
    }

    fn objcopy(args: &[&str], from: &Path, to: &Path) {
        let ok = std::process::Command::new("objcopy")
            .args(args)
            .arg(from)
            .arg(to)
            .status()
            .expect("objcopy (binutils) runs");
        assert!(ok.success());
    }

    /// A stripped library whose debug file a distribution installed under
    /// `/usr/lib/debug/.build-id/` (in the target's root, a container's):
    /// its functions get their names, its special functions' parts their
    /// kind; a debug file of another build is not used.
    #[test]
    fn a_stripped_librarys_debug_file_is_found_by_its_build_id() {
        let root = tempfile::tempdir().unwrap();
        let lib = root.path().join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        let full = build_split(&lib, "full.so", &[]);
        let stripped = lib.join("ev.so");
        objcopy(&["--strip-all"], &full, &stripped);
        let named = ObjectInfo::open("full.so", &full).unwrap();
        let at = |name: &str| {
            named
                .text_symbols()
                .iter()
                .find(|s| s.name.starts_with(name))
                .unwrap_or_else(|| panic!("gcc made no {name}"))
                .svma
        };
        let (cold, local) = (at("_PyEval_EvalFrameDefault.cold"), at("local_helper"));

        let without = ObjectInfo::open("/lib/ev.so", &stripped).unwrap();
        assert_eq!(without.debug_path(), None);
        assert!(!without.text_symbols().iter().any(|s| s.svma == local));

        let elf_data = std::fs::read(&full).unwrap();
        let id = object::File::parse(&elf_data[..])
            .unwrap()
            .build_id()
            .unwrap()
            .unwrap()
            .to_vec();
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let dir = root
            .path()
            .join(format!("usr/lib/debug/.build-id/{}", &hex[..2]));
        std::fs::create_dir_all(&dir).unwrap();
        let debug = dir.join(format!("{}.debug", &hex[2..]));

        // Another build's debug file under this build's id: refused.
        let other = build_split(root.path(), "other.so", &["-DOTHER=1", "-O1"]);
        objcopy(&["--only-keep-debug"], &other, &debug);
        let mismatched = ObjectInfo::open("/lib/ev.so", &stripped).unwrap();
        assert_eq!(mismatched.debug_path(), None);

        objcopy(&["--only-keep-debug"], &full, &debug);
        let with = ObjectInfo::open("/lib/ev.so", &stripped).unwrap();
        assert_eq!(with.debug_path(), Some(debug.as_path()));
        assert!(with.text_symbols().iter().any(|s| s.svma == local));
        assert_eq!(with.kind_at(cold), Some(FrameKind::EvalLoop));
        let loader = with.symbolizer(&stripped).expect("the debug file opens");
        let frame = loader.find_frames(local).unwrap().next().unwrap().unwrap();
        let name = frame.function.unwrap().demangle().unwrap().into_owned();
        assert!(name.starts_with("local_helper"), "{name}");
    }

    /// Fedora's MiniDebugInfo, made as its `find-debuginfo` does (gdb's
    /// manual, "MiniDebugInfo"): the function symbols that `.dynsym` lacks,
    /// xz-compressed into `.gnu_debugdata` of the stripped library. Its
    /// functions get their names and its special functions' parts their kind.
    #[test]
    fn mini_debuginfo_names_a_stripped_librarys_functions() {
        let dir = tempfile::tempdir().unwrap();
        let full = build_split(dir.path(), "full.so", &[]);
        let data = std::fs::read(&full).unwrap();
        let elf = object::File::parse(&data[..]).unwrap();
        let dynamic: std::collections::HashSet<_> = elf
            .dynamic_symbols()
            .filter_map(|s| s.name().ok())
            .collect();
        let keep: Vec<&str> = elf
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
            .filter_map(|s| s.name().ok())
            .filter(|n| !dynamic.contains(n))
            .collect();
        let keep_file = dir.path().join("keep_symbols");
        std::fs::write(&keep_file, keep.join("\n") + "\n").unwrap();
        let (debug, mini) = (dir.path().join("debug"), dir.path().join("mini"));
        objcopy(&["--only-keep-debug"], &full, &debug);
        let keep_arg = format!("--keep-symbols={}", keep_file.display());
        objcopy(
            &[
                "-S",
                "--remove-section",
                ".gdb_index",
                "--remove-section",
                ".comment",
                &keep_arg,
            ],
            &debug,
            &mini,
        );
        let xz = std::process::Command::new("xz")
            .arg("--keep")
            .arg(&mini)
            .status()
            .expect("xz (xz-utils) runs");
        assert!(xz.success());
        let out = dir.path().join("fedora.so");
        let section = format!(".gnu_debugdata={}.xz", mini.display());
        objcopy(&["-S", "--add-section", &section], &full, &out);

        let at = |name: &str| {
            elf.symbols()
                .find(|s| s.name().is_ok_and(|n| n.starts_with(name)))
                .unwrap_or_else(|| panic!("gcc made no {name}"))
                .address()
        };
        let (cold, local) = (at("_PyEval_EvalFrameDefault.cold"), at("local_helper"));
        let fedora = ObjectInfo::open("/lib/fedora.so", &out).unwrap();
        assert_eq!(fedora.debug_path(), None);
        assert!(fedora
            .own_symbol(local)
            .is_some_and(|n| n.starts_with("local_helper")));
        assert!(fedora.text_symbols().iter().any(|s| s.svma == local));
        assert_eq!(fedora.kind_at(cold), Some(FrameKind::EvalLoop));
        // A corrupt section is no symbols, not an error.
        let mut bad = std::fs::read(format!("{}.xz", mini.display())).unwrap();
        let half = bad.len() / 2;
        bad.truncate(half);
        let bad_xz = dir.path().join("bad.xz");
        std::fs::write(&bad_xz, bad).unwrap();
        let broken = dir.path().join("broken.so");
        let section = format!(".gnu_debugdata={}", bad_xz.display());
        objcopy(&["-S", "--add-section", &section], &full, &broken);
        let broken = ObjectInfo::open("/lib/broken.so", &broken).unwrap();
        assert_eq!(broken.own_symbol(local), None);
    }

    /// A stripped module (no `.symtab`) names only its exported entry: the
    /// part of a special function that GCC moved elsewhere keeps the kind
    /// all the same, and the functions it tail-calls do not take it.
    #[test]
    fn a_stripped_functions_other_part_keeps_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("ev.c");
        std::fs::write(&src, SPLIT_EVAL_LOOP).unwrap();
        let (full, stripped) = (dir.path().join("ev.so"), dir.path().join("evs.so"));
        let gcc = std::process::Command::new("gcc")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&full)
            .arg(&src)
            .status()
            .expect("gcc runs");
        assert!(gcc.success());
        let strip = std::process::Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(&stripped)
            .arg(&full)
            .status()
            .expect("strip (binutils) runs");
        assert!(strip.success());

        let named = ObjectInfo::open("ev.so", &full).unwrap();
        let at = |name: &str| {
            named
                .text_symbols()
                .iter()
                // GCC may specialise it (`local_helper.constprop.0`).
                .find(|s| s.name == name || s.name.starts_with(&format!("{name}.constprop")))
                .unwrap_or_else(|| panic!("gcc made no {name}"))
                .svma
        };
        let (cold, local, exported) = (
            at("_PyEval_EvalFrameDefault.cold"),
            at("local_helper"),
            at("exported_helper"),
        );
        assert_eq!(named.kind_at(cold), Some(FrameKind::EvalLoop));

        let bare = ObjectInfo::open("evs.so", &stripped).unwrap();
        assert!(bare
            .text_symbols()
            .iter()
            .all(|s| !s.name.ends_with(".cold")));
        assert_eq!(
            bare.kind_at(at("_PyEval_EvalFrameDefault")),
            Some(FrameKind::EvalLoop)
        );
        assert_eq!(bare.kind_at(cold), Some(FrameKind::EvalLoop));
        assert_eq!(bare.kind_at(cold + 4), Some(FrameKind::EvalLoop));
        assert_eq!(bare.kind_at(local), None);
        assert_eq!(bare.kind_at(exported), None);
        let plt = plt_stubs(&bare.map[..]);
        let stub = plt.iter().find(|s| s.2 == "exported_helper@plt");
        assert_eq!(
            bare.kind_at(stub.expect("a PLT stub for exported_helper").0),
            None
        );
    }

    #[test]
    fn an_extension_modules_method_tables() {
        // A real extension module of the Python that runs the tests.
        let out = std::process::Command::new("python3")
            .args(["-c", "import _json; print(_json.__file__)"])
            .output()
            .expect("python3 runs");
        let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
        if path.is_empty() || path == "None" {
            eprintln!("SKIPPED: this python3 has _json built in");
            return;
        }
        let object = ObjectInfo::open(&path, Path::new(&path)).unwrap();
        let methods = object.python_methods();
        let names: Vec<&str> = methods.iter().map(|m| m.0.as_str()).collect();
        for want in ["encode_basestring_ascii", "scanstring"] {
            assert!(names.contains(&want), "{path}: {names:?}");
        }
        for (name, svma) in &methods {
            assert!(
                object
                    .segments
                    .iter()
                    .any(|&(_, s, n, x)| x && (s..s + n).contains(svma)),
                "{name} at {svma:#x} is not code"
            );
        }
        // Not an extension module: no tables.
        let libc = ObjectInfo::open("libc", Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        assert!(libc.python_methods().is_empty());
    }

    /// In a module without a symbol table (Debian's libc keeps only its
    /// exports), the unwind tables still say where each function starts.
    #[test]
    fn function_starts_from_the_unwind_tables() {
        let libc = ObjectInfo::open("libc", Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        let mut checked = 0;
        for name in ["qsort", "getenv", "abort", "fclose", "setlocale"] {
            let sym = libc
                .text_symbols()
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("libc exports {name}"));
            assert_eq!(libc.function_start(sym.svma), Some(sym.svma), "{name}");
            assert_eq!(
                libc.function_start(sym.svma + 3),
                Some(sym.svma),
                "{name}+3"
            );
            checked += 1;
        }
        assert_eq!(checked, 5);
        // Not code: no function.
        let (_, rodata, _, _) = libc.segments.iter().find(|s| !s.3).copied().unwrap();
        assert_eq!(libc.function_start(rodata), None);
    }

    /// PLT stubs are named after the function they jump to, as objdump
    /// names them (libc's `.plt`, the interpreter's): not after the function
    /// before the PLT, as a symbol lookup would.
    #[test]
    fn plt_stubs_are_named_as_objdump_names_them() {
        let mut compared = 0;
        for path in ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/python3"] {
            let file = std::fs::canonicalize(path).unwrap();
            let object = ObjectInfo::open(path, &file).unwrap();
            let out = std::process::Command::new("objdump")
                .args(["-d", "-j", ".plt", "-j", ".plt.sec", "-j", ".plt.got"])
                .arg(&file)
                .output()
                .expect("objdump (binutils)");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some((at, rest)) = line.split_once(" <") else {
                    continue;
                };
                let (Ok(at), Some(name)) = (u64::from_str_radix(at, 16), rest.strip_suffix(">:"))
                else {
                    continue;
                };
                if name.starts_with('*') || !name.ends_with("@plt") {
                    // IFUNC slots and the resolver's stub: no name to give.
                    continue;
                }
                assert_eq!(object.plt_name(at), Some(name), "{path} {at:#x}");
                assert_eq!(object.plt_name(at + 7), Some(name), "{path} {at:#x}+7");
                compared += 1;
            }
        }
        assert!(compared > 10, "only {compared} PLT stubs to compare");
        let libc = ObjectInfo::open("libc", Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        for name in ["realloc@plt", "calloc@plt"] {
            assert!(
                plt_stubs(&libc.map[..]).iter().any(|s| s.2 == name),
                "libc has no {name}"
            );
        }
        let text = libc.text_symbols()[0].svma;
        assert_eq!(libc.plt_name(text), None);
    }

    #[test]
    fn maps_lines() {
        let m = parse_maps_line(
            "7f00a000-7f00b000 r-xp 00002000 fd:01 1234   /usr/lib/libffi.so.8.1.2",
        )
        .unwrap();
        assert_eq!(
            (m.start, m.end, m.pgoff, m.path.as_str()),
            (0x7f00a000, 0x7f00b000, 0x2000, "/usr/lib/libffi.so.8.1.2")
        );
        assert!(
            parse_maps_line("7f00a000-7f00b000 r--p 00000000 fd:01 1234 /usr/lib/libffi.so")
                .is_none()
        );
        assert!(parse_maps_line("7ffd0000-7ffd1000 r-xp 00000000 00:00 0 ").is_none());
        assert!(parse_maps_line("garbage").is_none());
    }

    #[test]
    fn special_symbols() {
        for (name, kind) in [
            ("_PyEval_EvalFrameDefault.cold", Some(FrameKind::EvalLoop)),
            ("runtime.asmcgocall.abi0", Some(FrameKind::GoAsmcgocall)),
            ("crosscall2", Some(FrameKind::Crosscall2)),
            ("runtime.goexit.abi0", Some(FrameKind::Root)),
            (
                "_ZN8greenlet12UserGreenlet13g_initialstubEPv",
                Some(FrameKind::Root),
            ),
            (
                "_ZN8greenlet12UserGreenlet13g_initialstubEPv.cold",
                Some(FrameKind::Root),
            ),
            ("g_initialstub", Some(FrameKind::Root)),
            (
                "_ZN8greenlet12UserGreenlet15inner_bootstrapEP9_greenletP7_object",
                None,
            ),
            ("main.main", None),
        ] {
            assert_eq!(special_kind(name), kind, "{name}");
        }
    }

    #[test]
    fn reads_own_executable() {
        let exe = std::env::current_exe().unwrap();
        let o = ObjectInfo::open(exe.to_str().unwrap(), &exe).unwrap();
        assert_eq!(o.language, Language::Rust);
        assert!(o.svma_of_file_offset(0, false).is_some());
    }

    /// Every function is found by the name its frames show, though only the
    /// symbols that hold its name's identifiers are demangled: in seam's own
    /// test binary (Rust's legacy mangling, and v0 in its std), in the C++
    /// standard library, and in the samples' Rust libraries (v0) where they
    /// are built.
    #[test]
    fn functions_are_found_by_their_demangled_names() {
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/build");
        let mut files = vec![
            std::env::current_exe().unwrap(),
            std::path::PathBuf::from("/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
        ];
        files.extend(
            [
                "rust-target/release/libseam_mix.so",
                "ffibench/pyo3/ffib_pyo3.abi3.so",
            ]
            .map(|f| samples.join(f))
            .into_iter()
            .filter(|f| f.exists()),
        );
        let (mut legacy, mut v0, mut cpp) = (0, 0, 0);
        for file in &files {
            let o = ObjectInfo::open(file.to_str().unwrap(), file).unwrap();
            let symbols = o.text_symbols();
            // A few hundred from all over the file, each looked up by name.
            for s in symbols.iter().step_by(symbols.len() / 300 + 1) {
                // C++'s special names (thunks, typeinfo, guards) may spell no
                // identifier at all; no crossing calls them.
                if s.name.starts_with("_ZT") || s.name.starts_with("_ZG") {
                    continue;
                }
                let display = s.display();
                let found = o.functions_named(&display);
                assert!(
                    found.contains(&s.svma),
                    "{}: {} ({display}) not found: {found:x?}",
                    file.display(),
                    s.name
                );
                let rust_legacy = s.name.starts_with("_ZN") && display.len() + 20 < s.name.len();
                legacy += rust_legacy as usize;
                v0 += s.name.starts_with("_R") as usize;
                cpp += (s.name.starts_with("_Z") && !rust_legacy && display != s.name) as usize;
            }
            assert!(o.functions_named("no::such::function").is_empty());
        }
        assert!(
            legacy > 50 && v0 > 5 && cpp > 50,
            "legacy {legacy}, v0 {v0}, C++ {cpp}"
        );
    }

    /// numpy's AVX-512 sort realigns its stack through a DRAP register, and
    /// its unwind tables give the CFA as an expression framehop cannot
    /// evaluate: seam reads its offset from rbp (GCC's `DW_OP_breg6 N;
    /// DW_OP_deref`). Needs numpy (.ci/run installs it).
    #[test]
    fn a_realigned_frame_says_where_its_cfa_is() {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import numpy._core._multiarray_umath as m; print(m.__file__)",
            ])
            .output()
            .expect("python3 runs");
        let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(
            !path.is_empty(),
            "this test needs numpy 2 (pip install numpy)"
        );
        let o = ObjectInfo::open(&path, Path::new(&path)).unwrap();
        let sort = o
            .text_symbols()
            .iter()
            .find(|s| {
                s.display()
                    .starts_with("void np::qsort_simd::QSort_X86_V4<double>(")
            })
            .expect("numpy's AVX-512 sort of doubles");
        let offsets: Vec<i64> = (sort.svma..sort.svma + 0x80)
            .filter_map(|a| o.drap_cfa_offset(a))
            .collect();
        assert!(!offsets.is_empty(), "{}: no realigned frame", sort.name);
        assert!(offsets.iter().all(|&n| n < 0 && n % 8 == 0), "{offsets:?}");
        // Its entry is an ordinary frame (CFA = rsp + 8).
        assert_eq!(o.drap_cfa_offset(sort.svma), None);
    }

    #[test]
    fn identifiers_leave_out_what_the_demangler_writes() {
        assert_eq!(
            identifiers("pyo3::impl_::trampoline::trampoline_unraisable::<pyo3::impl_::trampoline::dealloc::{closure#0}>"),
            ["trampoline_unraisable", "trampoline", "dealloc", "impl_", "pyo3"]
        );
        assert_eq!(
            identifiers("<bool as core::fmt::Debug>::fmt"),
            ["Debug", "core"]
        );
    }
}
