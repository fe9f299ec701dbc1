//! Go function names and source lines from a Go module's pclntab.
//!
//! Every Go binary carries the PC/line table ("pclntab") that the Go runtime
//! uses for its own tracebacks, so the table survives `-ldflags="-s -w"`, which
//! drops `.symtab` and DWARF. In a stripped `-buildmode=c-shared` library the
//! dynamic symbol table names only the cgo exports, so this table is the only
//! way to name Go frames there. It is also exact and compact, so it is worth
//! preferring for Go modules even when DWARF is present.
//!
//! All addresses are SVMAs: ELF virtual addresses as linked, the same values
//! `go tool nm` prints. Turning a sampled address (AVMA) into an SVMA, and a
//! return address into a call-site address, is the caller's job.
//!
//! Formats read: Go 1.16/1.17 (magic `0xfffffffa`), Go 1.18/1.19
//! (`0xfffffff0`) and Go 1.20 and later (`0xfffffff1`), either byte order,
//! 4- or 8-byte pointers. Not read: the Go 1.2–1.15 format; inlined frames
//! (the inline tree lives in each function's funcdata, which is not decoded:
//! for a PC in inlined code, [`GoPclntab::lookup`] names the function it was
//! inlined into, while [`GoPclntab::line`] gives the inlined body's own file
//! and line, as Go's pcfile/pcln tables record them); and modules with
//! several text sections (very large ppc64/arm binaries), whose functab
//! offsets are not contiguous.
//!
//! Where the table is, as measured with Go 1.19 and Go 1.27 on amd64:
//! * executables: a `.gopclntab` section, which is also `runtime.pclntab`;
//! * Go 1.18/1.19 PIE and c-shared: no `.gopclntab`; the table sits inside
//!   `.data.rel.ro` at `runtime.pclntab`, and after `-s` only a scan for its
//!   header finds it;
//! * Go 1.27 PIE and c-shared: a `.gopclntab` section again.
//!
//! Since Go 1.18 the function table holds 32-bit offsets from the module's
//! text start (`runtime.text`, which is *not* the `.text` section address in
//! cgo builds: C start-up code comes first). Go 1.18/1.19 store it in the
//! header as the link-time SVMA, for c-shared and PIE too (the file holds the
//! link-time value; the dynamic loader relocates the copy in memory). Newer Go
//! stores 0 there, so the text start is taken from `runtime.text` in
//! `.symtab`, else from the header, else from `runtime.firstmoduledata`
//! (`moduledata.text`), which is found in stripped files by scanning for a
//! pointer to the table, reading the value in the file or, where the file
//! holds 0 there (RELA targets whose linker leaves the place empty), the
//! addend of the dynamic relocation at that place.
//!
//! ```no_run
//! use seam_profiler::symbolize::gopclntab::GoPclntab;
//!
//! let bytes = std::fs::read("libgo.so")?;
//! if let Some(table) = GoPclntab::parse(&bytes)? {
//!     let svma = 0x9f000;
//!     if let Some(f) = table.lookup(svma) {
//!         println!("{}+{:#x} (Go {})", f.name, svma - f.start, table.version());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::OnceCell;
use std::collections::HashMap;

use object::{
    BinaryFormat, Object, ObjectSection, ObjectSegment, ObjectSymbol, RelocationTarget,
    SectionFlags, SectionKind, SegmentFlags,
};

const MAGIC_GO12: u32 = 0xffff_fffb;
const MAGIC_GO116: u32 = 0xffff_fffa;
const MAGIC_GO118: u32 = 0xffff_fff0;
const MAGIC_GO120: u32 = 0xffff_fff1;

/// `moduledata` starts with the `pcHeader` pointer, then six slices
/// (funcnametab, cutab, filetab, pctab, pclntable, ftab: three words each),
/// `findfunctab`, `minpc`, `maxpc`, `text`: the same from Go 1.16 to 1.27.
const MODULEDATA_FUNCNAMETAB_WORD: u64 = 1;
const MODULEDATA_MINPC_WORD: u64 = 20;
const MODULEDATA_TEXT_WORD: u64 = 22;

/// `_func` fields after the entry, as 4-byte field numbers (the entry is
/// field 0: a `uintptr` before Go 1.18, a `uint32` offset since).
const FUNC_NAMEOFF: usize = 1;
const FUNC_PCSP: usize = 4;
const FUNC_PCFILE: usize = 5;
const FUNC_PCLN: usize = 6;
const FUNC_CUOFFSET: usize = 8;

/// A parsed Go pclntab, with function address ranges in the module's SVMA
/// space (ELF virtual addresses, as in `go tool nm`).
///
/// Holds a copy of the table bytes only; lookups are binary searches over the
/// table itself, names borrow from it.
pub struct GoPclntab {
    data: Vec<u8>,
    header: Header,
    text_start: u64,
    svma: u64,
}

/// One Go function: `[start, end)` in SVMA space and its name as the Go
/// runtime prints it (`main.main`, `runtime.cgocallback`, `main.(*T).M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoFunc<'a> {
    pub start: u64,
    pub end: u64,
    pub name: &'a str,
}

/// Why a Go pclntab could not be read. Malformed input gives one of these,
/// never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PclntabError {
    #[error("cannot read the file as an object file: {0}")]
    Object(#[from] object::read::Error),
    #[error("not an ELF file ({0:?}); the Go pclntab reader handles ELF modules only")]
    NotElf(BinaryFormat),
    #[error("the Go pclntab is in the Go {0} format, which seam does not read; rebuild the module with Go 1.16 or later")]
    UnsupportedVersion(&'static str),
    #[error(
        "the Go pclntab at {svma:#x} is malformed ({what}); the file may be truncated or corrupt"
    )]
    Malformed { svma: u64, what: String },
    #[error("the Go pclntab at {svma:#x} has function offsets but the file records no text start (no runtime.text symbol, no header field, no runtime.firstmoduledata); keep .symtab (build without -ldflags=-s) or report the Go version")]
    NoTextStart { svma: u64 },
    #[error("this is a Go module but no valid Go pclntab was found in it, so its Go functions cannot be named")]
    NotFound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Go116,
    Go118,
    Go120,
}

impl Format {
    fn from_magic(magic: u32) -> Option<Format> {
        match magic {
            MAGIC_GO116 => Some(Format::Go116),
            MAGIC_GO118 => Some(Format::Go118),
            MAGIC_GO120 => Some(Format::Go120),
            _ => None,
        }
    }

    fn version(self) -> &'static str {
        match self {
            Format::Go116 => "1.16",
            Format::Go118 => "1.18",
            Format::Go120 => "1.20",
        }
    }

    fn has_text_offsets(self) -> bool {
        self != Format::Go116
    }
}

/// The fixed header (`runtime.pcHeader`) with offsets resolved to indices
/// into the table bytes.
#[derive(Clone, Copy, Debug)]
struct Header {
    format: Format,
    big_endian: bool,
    quantum: u8,
    ptr_size: u8,
    nfunc: usize,
    /// The header's text start: the link-time SVMA in Go 1.18/1.19, 0 in later
    /// Go (the field is no longer written) and absent (0) in Go 1.16.
    text_start: u64,
    funcnametab: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    /// `pclntable`: the functab followed by the `_func` records, which the
    /// functab's offsets are relative to.
    pclntable: usize,
}

impl Header {
    /// Size of one functab field: a `uint32` since Go 1.18, a `uintptr` before.
    fn functab_field_size(&self) -> usize {
        if self.format.has_text_offsets() {
            4
        } else {
            usize::from(self.ptr_size)
        }
    }

    /// Size of `_func`'s first field, the entry.
    fn func_entry_size(&self) -> usize {
        self.functab_field_size()
    }

    /// Bytes of `_func` that are read: the entry and fields 1 to 8.
    fn func_read_size(&self) -> usize {
        self.func_entry_size() + 4 * FUNC_CUOFFSET
    }
}

fn malformed(svma: u64, what: impl Into<String>) -> PclntabError {
    PclntabError::Malformed {
        svma,
        what: what.into(),
    }
}

fn read_u32(data: &[u8], off: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

fn read_u64(data: &[u8], off: usize, big_endian: bool) -> Option<u64> {
    let b: [u8; 8] = data.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(if big_endian {
        u64::from_be_bytes(b)
    } else {
        u64::from_le_bytes(b)
    })
}

fn read_word(data: &[u8], off: usize, size: u8, big_endian: bool) -> Option<u64> {
    match size {
        4 => read_u32(data, off, big_endian).map(u64::from),
        8 => read_u64(data, off, big_endian),
        _ => None,
    }
}

/// Reads a pclntab varint: 7 bits a byte, low first, at most 5 bytes.
fn read_varint(data: &[u8], mut off: usize) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let b = *data.get(off)?;
        off += 1;
        value |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            return Some((value, off));
        }
    }
    None
}

/// Recognises a table header: magic, two zero pad bytes, PC quantum 1/2/4,
/// pointer size 4/8. `Ok(None)` when the bytes are no pclntab header at all.
fn read_header(data: &[u8], svma: u64) -> Result<Option<Header>, PclntabError> {
    let Some(prefix) = data.get(..8) else {
        return Ok(None);
    };
    let (quantum, ptr_size) = (prefix[6], prefix[7]);
    if prefix[4] != 0
        || prefix[5] != 0
        || !matches!(quantum, 1 | 2 | 4)
        || !matches!(ptr_size, 4 | 8)
    {
        return Ok(None);
    }
    // The magics read differently in the other byte order, so the magic tells
    // the byte order.
    let le = u32::from_le_bytes(prefix[..4].try_into().unwrap_or_default());
    let be = u32::from_be_bytes(prefix[..4].try_into().unwrap_or_default());
    let (format, big_endian) = if let Some(f) = Format::from_magic(le) {
        (f, false)
    } else if let Some(f) = Format::from_magic(be) {
        (f, true)
    } else if le == MAGIC_GO12 || be == MAGIC_GO12 {
        return Err(PclntabError::UnsupportedVersion("1.2–1.15"));
    } else {
        return Ok(None);
    };

    let nwords = if format.has_text_offsets() { 8 } else { 7 };
    let header_size = 8 + nwords * usize::from(ptr_size);
    if data.len() < header_size {
        return Err(malformed(svma, "header truncated"));
    }
    let word = |i: usize| {
        read_word(data, 8 + i * usize::from(ptr_size), ptr_size, big_endian).unwrap_or(0)
    };
    let offset = |i: usize, what: &str| -> Result<usize, PclntabError> {
        let v = word(i);
        match usize::try_from(v) {
            Ok(v) if v >= header_size && v <= data.len() => Ok(v),
            _ => Err(malformed(
                svma,
                format!("{what} offset {v:#x} outside the table"),
            )),
        }
    };
    let nfunc =
        usize::try_from(word(0)).map_err(|_| malformed(svma, "function count too large"))?;
    let (text_start, first) = if format.has_text_offsets() {
        (word(2), 3)
    } else {
        (0, 2)
    };
    let header = Header {
        format,
        big_endian,
        quantum,
        ptr_size,
        nfunc,
        text_start,
        funcnametab: offset(first, "funcnametab")?,
        cutab: offset(first + 1, "cutab")?,
        filetab: offset(first + 2, "filetab")?,
        pctab: offset(first + 3, "pctab")?,
        pclntable: offset(first + 4, "pclntable")?,
    };
    if nfunc == 0 {
        return Err(malformed(svma, "no functions"));
    }
    // nfunc (pc, offset) pairs and the end sentinel.
    let functab_len = nfunc
        .checked_mul(2)
        .and_then(|n| n.checked_add(1))
        .and_then(|n| n.checked_mul(header.functab_field_size()));
    match functab_len.and_then(|n| n.checked_add(header.pclntable)) {
        Some(end) if end <= data.len() => Ok(Some(header)),
        _ => Err(malformed(
            svma,
            format!("{nfunc} functions do not fit in the table"),
        )),
    }
}

/// The table's bytes with its header: all reads, each bounds-checked. Shared
/// by validation (over borrowed file bytes) and by [`GoPclntab`].
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [u8],
    h: Header,
    text_start: u64,
}

impl<'a> View<'a> {
    fn u32_at(&self, off: usize) -> Option<u32> {
        read_u32(self.data, off, self.h.big_endian)
    }

    fn functab_field(&self, k: usize) -> Option<u64> {
        let size = self.h.functab_field_size();
        let off = self.h.pclntable.checked_add(k.checked_mul(size)?)?;
        read_word(self.data, off, size as u8, self.h.big_endian)
    }

    /// Start of function `i`; `i == nfunc` gives the end of the last function.
    fn entry(&self, i: usize) -> Option<u64> {
        if i > self.h.nfunc {
            return None;
        }
        let v = self.functab_field(2 * i)?;
        if self.h.format.has_text_offsets() {
            self.text_start.checked_add(v)
        } else {
            Some(v)
        }
    }

    /// Index of function `i`'s `_func` record in the table bytes.
    fn func_record(&self, i: usize) -> Option<usize> {
        if i >= self.h.nfunc {
            return None;
        }
        let off = usize::try_from(self.functab_field(2 * i + 1)?).ok()?;
        self.h.pclntable.checked_add(off)
    }

    fn func_field(&self, i: usize, field: usize) -> Option<u32> {
        let off = self
            .func_record(i)?
            .checked_add(self.h.func_entry_size() + 4 * (field - 1))?;
        self.u32_at(off)
    }

    fn cstr(&self, off: usize) -> Option<&'a str> {
        let rest = self.data.get(off..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..len]).ok()
    }

    fn name(&self, i: usize) -> Option<&'a str> {
        let nameoff = usize::try_from(self.func_field(i, FUNC_NAMEOFF)?).ok()?;
        self.cstr(self.h.funcnametab.checked_add(nameoff)?)
    }

    fn func(&self, i: usize) -> Option<GoFunc<'a>> {
        Some(GoFunc {
            start: self.entry(i)?,
            end: self.entry(i + 1)?,
            name: self.name(i)?,
        })
    }

    /// The function containing `svma`: the last entry at or below it.
    fn index_of(&self, svma: u64) -> Option<usize> {
        let n = self.h.nfunc;
        if svma < self.entry(0)? || svma >= self.entry(n)? {
            return None;
        }
        // entry(lo) <= svma < entry(hi) throughout.
        let (mut lo, mut hi) = (0, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)? <= svma {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// Runs the pc-value table at `off` in pctab from `entry` to `target`.
    /// Values start at -1; each step is a zig-zag value delta and a PC delta
    /// in quanta, and a value holds up to (not including) the step's new PC.
    fn pcvalue(&self, off: u32, entry: u64, target: u64) -> Option<i32> {
        if off == 0 {
            return None;
        }
        let mut p = self.h.pctab.checked_add(usize::try_from(off).ok()?)?;
        let mut val: i32 = -1;
        let mut pc = entry;
        let mut first = true;
        loop {
            let (uvdelta, next) = read_varint(self.data, p)?;
            if uvdelta == 0 && !first {
                return None;
            }
            let vdelta = if uvdelta & 1 != 0 {
                !(uvdelta >> 1) as i32
            } else {
                (uvdelta >> 1) as i32
            };
            let (pcdelta, next) = read_varint(self.data, next)?;
            p = next;
            pc = pc.checked_add(u64::from(pcdelta) * u64::from(self.h.quantum))?;
            val = val.wrapping_add(vdelta);
            if target < pc {
                return Some(val);
            }
            first = false;
        }
    }

    fn sp_delta(&self, svma: u64) -> Option<i32> {
        let i = self.index_of(svma)?;
        self.pcvalue(self.func_field(i, FUNC_PCSP)?, self.entry(i)?, svma)
    }

    fn line(&self, svma: u64) -> Option<(&'a str, u32)> {
        let i = self.index_of(svma)?;
        let entry = self.entry(i)?;
        let line = self.pcvalue(self.func_field(i, FUNC_PCLN)?, entry, svma)?;
        let fileno = self.pcvalue(self.func_field(i, FUNC_PCFILE)?, entry, svma)?;
        let cu = self.func_field(i, FUNC_CUOFFSET)?;
        if cu == u32::MAX || fileno < 0 || line < 0 {
            return None;
        }
        let slot = (cu as usize).checked_add(fileno as usize)?.checked_mul(4)?;
        let file_off = self.u32_at(self.h.cutab.checked_add(slot)?)?;
        if file_off == u32::MAX {
            return None;
        }
        let file = self.cstr(self.h.filetab.checked_add(file_off as usize)?)?;
        Some((file, line as u32))
    }

    /// Checks every functab entry against its `_func`, so that a table found
    /// by scanning is real and later lookups read consistent data. Returns the
    /// number of bytes the table needs when its parts are in the usual order
    /// (header, names, cutab, filetab, pctab, pclntable), else the whole length.
    fn validate(&self, svma: u64) -> Result<usize, PclntabError> {
        let n = self.h.nfunc;
        let mut prev = 0;
        for i in 0..=n {
            let e = self
                .entry(i)
                .ok_or_else(|| malformed(svma, format!("functab entry {i} out of range")))?;
            if e < prev {
                return Err(malformed(svma, format!("functab not sorted at entry {i}")));
            }
            prev = e;
        }
        let mut end = self.h.pclntable + (2 * n + 1) * self.h.functab_field_size();
        for i in 0..n {
            let rec = self
                .func_record(i)
                .filter(|&r| {
                    r.checked_add(self.h.func_read_size())
                        .is_some_and(|e| e <= self.data.len())
                })
                .ok_or_else(|| {
                    malformed(svma, format!("_func record of function {i} out of range"))
                })?;
            end = end.max(rec + self.h.func_read_size());
            let own_entry = if self.h.format.has_text_offsets() {
                self.u32_at(rec)
                    .map(u64::from)
                    .and_then(|v| self.text_start.checked_add(v))
            } else {
                read_word(self.data, rec, self.h.ptr_size, self.h.big_endian)
            };
            if own_entry != self.entry(i) {
                return Err(malformed(
                    svma,
                    format!("function {i}: _func entry differs from functab"),
                ));
            }
            let nameoff = self.func_field(i, FUNC_NAMEOFF).unwrap_or(u32::MAX);
            if self.h.funcnametab.saturating_add(nameoff as usize) >= self.data.len() {
                return Err(malformed(
                    svma,
                    format!("function {i}: name offset {nameoff:#x} out of range"),
                ));
            }
        }
        let h = &self.h;
        let ordered = h.funcnametab <= h.cutab
            && h.cutab <= h.filetab
            && h.filetab <= h.pctab
            && h.pctab <= h.pclntable;
        Ok(if ordered { end } else { self.data.len() })
    }
}

impl GoPclntab {
    /// Finds and parses the pclntab of an ELF image given as bytes.
    /// `Ok(None)` when the file is not Go.
    ///
    /// Looks for a `.gopclntab` section, else the `runtime.pclntab` symbol,
    /// else, in a file that has Go sections (`.go.buildinfo`,
    /// `.note.go.buildid`), scans the non-executable allocated sections for a
    /// header whose function table checks out; a file without section headers
    /// has its non-executable segments scanned instead. A Go file where no
    /// table checks out is [`PclntabError::NotFound`].
    pub fn parse(elf: &[u8]) -> Result<Option<GoPclntab>, PclntabError> {
        let file = object::File::parse(elf)?;
        if file.format() != BinaryFormat::Elf {
            return Err(PclntabError::NotElf(file.format()));
        }
        let image = Image::new(&file);

        if let Some(section) = file.section_by_name(".gopclntab") {
            let data = section.data()?;
            return from_elf(&image, section.address(), data).map(Some);
        }
        if let Some(start) = image.symbol("runtime.pclntab") {
            if let Some(mut data) = image.bytes_at(start) {
                if let Some(end) = image.symbol("runtime.epclntab").filter(|&e| e > start) {
                    let len = usize::try_from(end - start).unwrap_or(usize::MAX);
                    data = &data[..len.min(data.len())];
                }
                return from_elf(&image, start, data).map(Some);
            }
        }
        let go = image.go_evidence();
        if go == GoEvidence::NotGo {
            return Ok(None);
        }
        let ptr_size = if file.is_64() { 8 } else { 4 };
        let big_endian = !file.is_little_endian();
        let mut unsupported = None;
        for (base, data) in image.data_regions() {
            let mut off = 0;
            while off + 8 <= data.len() {
                if header_prefix_matches(&data[off..], ptr_size, big_endian) {
                    let Some(svma) = base.checked_add(off as u64) else {
                        break;
                    };
                    match from_elf(&image, svma, &data[off..]) {
                        Ok(table) => return Ok(Some(table)),
                        Err(e @ PclntabError::UnsupportedVersion(_)) => unsupported = Some(e),
                        // A false match of the 8-byte prefix: keep looking.
                        Err(_) => {}
                    }
                }
                off += 4;
            }
        }
        match (unsupported, go) {
            (Some(e), _) => Err(e),
            (None, GoEvidence::Sections) => Err(PclntabError::NotFound),
            (None, _) => Ok(None),
        }
    }

    /// Parses a bare table whose first byte is at `svma`. For Go 1.18+ tables
    /// `text_start` overrides the header's text start (which newer Go leaves 0).
    fn from_table(
        data: &[u8],
        svma: u64,
        text_start: Option<u64>,
    ) -> Result<GoPclntab, PclntabError> {
        let header = read_header(data, svma)?.ok_or_else(|| malformed(svma, "no pclntab magic"))?;
        let text_start = if header.format.has_text_offsets() {
            match text_start {
                Some(t) => t,
                None if header.text_start != 0 => header.text_start,
                None => return Err(PclntabError::NoTextStart { svma }),
            }
        } else {
            0
        };
        let view = View {
            data,
            h: header,
            text_start,
        };
        let len = view.validate(svma)?;
        Ok(GoPclntab {
            data: data[..len].to_vec(),
            header,
            text_start,
            svma,
        })
    }

    fn view(&self) -> View<'_> {
        View {
            data: &self.data,
            h: self.header,
            text_start: self.text_start,
        }
    }

    /// The Go version family of the table: "1.16" (1.16/1.17), "1.18"
    /// (1.18/1.19) or "1.20" (1.20 and later), from the magic.
    pub fn version(&self) -> &'static str {
        self.header.format.version()
    }

    /// The SVMA where the table itself sits in the module.
    pub fn table_svma(&self) -> u64 {
        self.svma
    }

    /// The SVMA that Go 1.18+ function offsets are relative to
    /// (`runtime.text`); 0 for Go 1.16 tables, which hold absolute addresses.
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// The number of functions in the table.
    pub fn len(&self) -> usize {
        self.header.nfunc
    }

    /// Always false: a table without functions is rejected as malformed.
    pub fn is_empty(&self) -> bool {
        self.header.nfunc == 0
    }

    /// The function containing `svma`, with its start address and name.
    pub fn lookup(&self, svma: u64) -> Option<GoFunc<'_>> {
        let view = self.view();
        view.func(view.index_of(svma)?)
    }

    /// Every function, sorted by address.
    pub fn functions(&self) -> impl Iterator<Item = GoFunc<'_>> + '_ {
        let view = self.view();
        (0..self.header.nfunc).filter_map(move |i| view.func(i))
    }

    /// Source file and line of `svma`, from the function's pcfile and pcln
    /// tables. File names are as the Go compiler recorded them (absolute
    /// paths; module paths with `-trimpath`). For a PC inside inlined code
    /// this is the inlined body's file and line.
    pub fn line(&self, svma: u64) -> Option<(&str, u32)> {
        self.view().line(svma)
    }

    /// Bytes the function containing `svma` has pushed on its stack at that
    /// instruction, not counting the return address (the pcsp table). Zero in
    /// a frameless function, so its return address is at the stack pointer.
    pub fn sp_delta(&self, svma: u64) -> Option<i32> {
        self.view().sp_delta(svma)
    }
}

impl std::fmt::Debug for GoPclntab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoPclntab")
            .field("version", &self.version())
            .field("svma", &format_args!("{:#x}", self.svma))
            .field("text_start", &format_args!("{:#x}", self.text_start))
            .field("nfunc", &self.header.nfunc)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Whether `data` starts like a header of a supported format for this ELF.
fn header_prefix_matches(data: &[u8], ptr_size: u8, big_endian: bool) -> bool {
    if data.len() < 8
        || data[4] != 0
        || data[5] != 0
        || !matches!(data[6], 1 | 2 | 4)
        || data[7] != ptr_size
    {
        return false;
    }
    read_u32(data, 0, big_endian)
        .is_some_and(|m| Format::from_magic(m).is_some() || m == MAGIC_GO12)
}

/// Parses the table at `svma` (bytes `data`) of the ELF `image`, resolving
/// its text start, and checks that the first function lies in executable code.
fn from_elf(image: &Image<'_, '_>, svma: u64, data: &[u8]) -> Result<GoPclntab, PclntabError> {
    let header = read_header(data, svma)?.ok_or_else(|| malformed(svma, "no pclntab magic"))?;
    let text_start = if header.format.has_text_offsets() {
        let t = image
            .symbol("runtime.text")
            .or((header.text_start != 0).then_some(header.text_start))
            .or_else(|| image.moduledata_text(&header, svma, data))
            .ok_or(PclntabError::NoTextStart { svma })?;
        Some(t)
    } else {
        None
    };
    let table = GoPclntab::from_table(data, svma, text_start)?;
    let first = table.view().entry(0).unwrap_or(0);
    if !image.is_executable(first) {
        return Err(malformed(
            svma,
            format!(
                "first function at {first:#x} (text start {:#x}) is not in executable code",
                table.text_start
            ),
        ));
    }
    Ok(table)
}

fn is_alloc(flags: SectionFlags) -> bool {
    matches!(flags, SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0)
}

fn is_exec(flags: SectionFlags) -> bool {
    matches!(flags, SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0)
}

/// Whether a file is worth scanning for a pclntab header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GoEvidence {
    /// `.go.buildinfo`, `.note.go.buildid` or another Go section.
    Sections,
    /// No section headers to tell: scan the segments, quietly.
    NoSections,
    NotGo,
}

/// The ELF file as far as the table search needs it: symbols, file-backed
/// memory at an SVMA, and dynamic relocations (read only when needed).
struct Image<'d, 'f> {
    file: &'f object::File<'d>,
    relocations: OnceCell<HashMap<u64, u64>>,
}

impl<'d, 'f> Image<'d, 'f> {
    fn new(file: &'f object::File<'d>) -> Self {
        Image {
            file,
            relocations: OnceCell::new(),
        }
    }

    fn symbol(&self, name: &str) -> Option<u64> {
        let find = |mut symbols: object::SymbolIterator<'d, 'f>| {
            symbols
                .find(|s| s.name_bytes().ok() == Some(name.as_bytes()))
                .map(|s| s.address())
        };
        find(self.file.symbols()).or_else(|| find(self.file.dynamic_symbols()))
    }

    fn go_evidence(&self) -> GoEvidence {
        let mut sections = self.file.sections().peekable();
        if sections.peek().is_none() {
            return GoEvidence::NoSections;
        }
        let go = sections.any(|s| {
            matches!(
                s.name(),
                Ok(".go.buildinfo" | ".note.go.buildid" | ".gosymtab" | ".gopclntab")
            )
        });
        if go {
            GoEvidence::Sections
        } else {
            GoEvidence::NotGo
        }
    }

    /// File-backed, allocated, non-executable sections (segments when the
    /// file has no section headers), as (SVMA, bytes).
    fn data_regions(&self) -> Vec<(u64, &'d [u8])> {
        let mut regions: Vec<_> = self
            .file
            .sections()
            .filter(|s| {
                is_alloc(s.flags())
                    && !is_exec(s.flags())
                    && s.kind() != SectionKind::UninitializedData
            })
            .filter_map(|s| Some((s.address(), s.data().ok()?)))
            .collect();
        if regions.is_empty() {
            regions = self.segments(|p_flags| p_flags & object::elf::PF_X == 0);
        }
        regions
    }

    fn segments(&self, keep: impl Fn(u32) -> bool) -> Vec<(u64, &'d [u8])> {
        self.file
            .segments()
            .filter(|s| matches!(s.flags(), SegmentFlags::Elf { p_flags } if keep(p_flags)))
            .filter_map(|s| Some((s.address(), s.data().ok()?)))
            .collect()
    }

    /// The file's bytes from `svma` to the end of the section (or segment)
    /// holding it.
    fn bytes_at(&self, svma: u64) -> Option<&'d [u8]> {
        let in_region = |(base, data): (u64, &'d [u8])| {
            let off = usize::try_from(svma.checked_sub(base)?).ok()?;
            data.get(off..).filter(|d| !d.is_empty())
        };
        self.file
            .sections()
            .filter(|s| is_alloc(s.flags()) && s.kind() != SectionKind::UninitializedData)
            .filter_map(|s| Some((s.address(), s.data().ok()?)))
            .find_map(in_region)
            .or_else(|| self.segments(|_| true).into_iter().find_map(in_region))
    }

    /// The pointer-sized word at `svma`: the file's value, or where that is 0
    /// the addend of a dynamic relocation there (RELA with nothing in place).
    fn word(&self, svma: u64, h: &Header) -> Option<u64> {
        let v = read_word(self.bytes_at(svma)?, 0, h.ptr_size, h.big_endian)?;
        if v != 0 {
            return Some(v);
        }
        self.relocations().get(&svma).copied().or(Some(0))
    }

    fn relocations(&self) -> &HashMap<u64, u64> {
        self.relocations.get_or_init(|| {
            self.file
                .dynamic_relocations()
                .into_iter()
                .flatten()
                .filter(|(_, r)| {
                    r.target() == RelocationTarget::Absolute && !r.has_implicit_addend()
                })
                .map(|(off, r)| (off, r.addend() as u64))
                .collect()
        })
    }

    /// `moduledata.text` of the module whose `pcHeader` is at `table_svma`.
    /// moduledata is recognised by its first two words (pointers to the
    /// header and to funcnametab) and by `minpc == text + functab[0]`.
    fn moduledata_text(&self, h: &Header, table_svma: u64, table: &[u8]) -> Option<u64> {
        let ptr = u64::from(h.ptr_size);
        let first_offset = read_u32(table, h.pclntable, h.big_endian)?;
        let funcnametab = table_svma.checked_add(h.funcnametab as u64)?;
        let check = |md: u64| -> Option<u64> {
            let field = |word: u64| self.word(md.checked_add(word * ptr)?, h);
            if field(0)? != table_svma || field(MODULEDATA_FUNCNAMETAB_WORD)? != funcnametab {
                return None;
            }
            let minpc = field(MODULEDATA_MINPC_WORD)?;
            let text = field(MODULEDATA_TEXT_WORD)?;
            (text.checked_add(u64::from(first_offset))? == minpc).then_some(text)
        };
        if let Some(text) = self.symbol("runtime.firstmoduledata").and_then(check) {
            return Some(text);
        }
        let mut pattern = [0u8; 8];
        let pattern = if h.big_endian {
            pattern.copy_from_slice(&table_svma.to_be_bytes());
            &pattern[8 - h.ptr_size as usize..]
        } else {
            pattern.copy_from_slice(&table_svma.to_le_bytes());
            &pattern[..h.ptr_size as usize]
        };
        for (base, data) in self.segments(|p_flags| p_flags & object::elf::PF_X == 0) {
            let align = (ptr - base % ptr) % ptr;
            let mut off = align as usize;
            while off + pattern.len() <= data.len() {
                if &data[off..off + pattern.len()] == pattern {
                    if let Some(text) = base.checked_add(off as u64).and_then(check) {
                        return Some(text);
                    }
                }
                off += ptr as usize;
            }
        }
        let mut places: Vec<u64> = self
            .relocations()
            .iter()
            .filter(|&(_, &addend)| addend == table_svma)
            .map(|(&place, _)| place)
            .collect();
        places.sort_unstable();
        places.into_iter().find_map(check)
    }

    /// Whether `svma` is in an executable section (or, without section
    /// headers, an executable segment). True when the file says neither.
    fn is_executable(&self, svma: u64) -> bool {
        let exec_sections: Vec<_> = self
            .file
            .sections()
            .filter(|s| is_exec(s.flags()))
            .map(|s| (s.address(), s.size()))
            .collect();
        let exec = if exec_sections.is_empty() {
            self.file
                .segments()
                .filter(|s| matches!(s.flags(), SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0))
                .map(|s| (s.address(), s.size()))
                .collect()
        } else {
            exec_sections
        };
        exec.is_empty()
            || exec
                .iter()
                .any(|&(base, size)| svma >= base && svma - base < size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;
    use std::time::Instant;

    // ---- Synthetic tables, encoded here the way the Go linker lays them out.

    /// One function of a synthetic table; functions are laid out back to back
    /// from the text start. `lines` is (bytes of code, line) runs.
    struct SynthFunc {
        name: &'static str,
        size: u32,
        file: &'static str,
        lines: &'static [(u32, i32)],
    }

    const SYNTH_FUNCS: &[SynthFunc] = &[
        SynthFunc {
            name: "main.main",
            size: 0x40,
            file: "/src/main.go",
            lines: &[(0x10, 10), (0x20, 11), (0x10, 9)],
        },
        SynthFunc {
            name: "main.(*T).M",
            size: 0x20,
            file: "/src/t.go",
            lines: &[(0x20, 5)],
        },
        SynthFunc {
            name: "runtime.zero",
            size: 0,
            file: "/src/t.go",
            lines: &[(0, 1)],
        },
        SynthFunc {
            name: "unicode.名前[go.shape.int]",
            size: 0x30,
            file: "/src/ユ.go",
            lines: &[(0x8, 100_000), (0x28, 3)],
        },
    ];

    #[derive(Clone, Copy, Debug)]
    struct Synth {
        format: Format,
        big_endian: bool,
        ptr_size: u8,
        quantum: u8,
        text: u64,
        /// Whether the header stores the text start (Go 1.18/1.19 do).
        header_text: bool,
    }

    fn put_u32(buf: &mut Vec<u8>, v: u32, be: bool) {
        buf.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }

    fn put_word(buf: &mut Vec<u8>, v: u64, size: u8, be: bool) {
        if size == 4 {
            put_u32(buf, v as u32, be);
        } else {
            buf.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
        }
    }

    fn put_varint(buf: &mut Vec<u8>, mut v: u32) {
        while v >= 0x80 {
            buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    /// A pc-value table: (value, bytes of code) runs, starting from -1.
    fn put_pcvalue(buf: &mut Vec<u8>, runs: &[(i32, u32)], quantum: u8) {
        let mut prev = -1i32;
        for &(v, len) in runs {
            let d = v - prev;
            let uv = if d < 0 {
                ((!d as u32) << 1) | 1
            } else {
                (d as u32) << 1
            };
            put_varint(buf, uv);
            put_varint(buf, len / u32::from(quantum));
            prev = v;
        }
        buf.push(0);
    }

    fn encode(s: Synth, funcs: &[SynthFunc]) -> Vec<u8> {
        let (be, ps) = (s.big_endian, s.ptr_size);
        let magic = match s.format {
            Format::Go116 => MAGIC_GO116,
            Format::Go118 => MAGIC_GO118,
            Format::Go120 => MAGIC_GO120,
        };
        let nwords = if s.format.has_text_offsets() { 8 } else { 7 };
        let mut buf = Vec::new();
        put_u32(&mut buf, magic, be);
        buf.extend_from_slice(&[0, 0, s.quantum, ps]);
        buf.resize(8 + nwords * usize::from(ps), 0);

        let funcnametab = buf.len();
        let mut nameoffs = Vec::new();
        for f in funcs {
            nameoffs.push((buf.len() - funcnametab) as u32);
            buf.extend_from_slice(f.name.as_bytes());
            buf.push(0);
        }
        let mut files: Vec<&str> = Vec::new();
        for f in funcs {
            if !files.contains(&f.file) {
                files.push(f.file);
            }
        }
        let cutab = buf.len();
        let mut file_off = 0u32;
        for file in &files {
            put_u32(&mut buf, file_off, be);
            file_off += file.len() as u32 + 1;
        }
        let filetab = buf.len();
        for file in &files {
            buf.extend_from_slice(file.as_bytes());
            buf.push(0);
        }
        let pctab = buf.len();
        buf.push(0);
        let mut tables = Vec::new();
        for f in funcs {
            let fileno = files.iter().position(|x| *x == f.file).unwrap() as i32;
            let pcfile = (buf.len() - pctab) as u32;
            put_pcvalue(&mut buf, &[(fileno, f.size)], s.quantum);
            let pcln = (buf.len() - pctab) as u32;
            let runs: Vec<_> = f.lines.iter().map(|&(len, line)| (line, len)).collect();
            put_pcvalue(&mut buf, &runs, s.quantum);
            tables.push((pcfile, pcln));
        }
        while buf.len() % 8 != 0 {
            buf.push(0);
        }

        let pclntable = buf.len();
        let field = if s.format.has_text_offsets() { 4 } else { ps };
        let n = funcs.len();
        let record_size = usize::from(field) + 4 * 9 + 4;
        let records = (2 * n + 1) * usize::from(field);
        // Go 1.18+ entries are offsets from the text start, Go 1.16's are SVMAs.
        let base = if s.format.has_text_offsets() {
            0
        } else {
            s.text
        };
        let mut entries = vec![base];
        for f in funcs {
            entries.push(entries.last().unwrap() + u64::from(f.size));
        }
        for (i, &entry) in entries[..n].iter().enumerate() {
            put_word(&mut buf, entry, field, be);
            put_word(&mut buf, (records + i * record_size) as u64, field, be);
        }
        put_word(&mut buf, entries[n], field, be);
        for (i, f) in funcs.iter().enumerate() {
            put_word(&mut buf, entries[i], field, be);
            let mut fields = [0u32; 9];
            fields[FUNC_NAMEOFF - 1] = nameoffs[i];
            (fields[FUNC_PCFILE - 1], fields[FUNC_PCLN - 1]) = tables[i];
            fields[8] = f.lines[0].1 as u32; // startLine (Go 1.20+)
            for v in fields {
                put_u32(&mut buf, v, be);
            }
            // funcID, flag, pad, nfuncdata
            put_u32(&mut buf, 0, be);
        }

        let text = if s.header_text { s.text } else { 0 };
        let words: Vec<u64> = match s.format {
            Format::Go116 => vec![n as u64, files.len() as u64],
            _ => vec![n as u64, files.len() as u64, text],
        }
        .into_iter()
        .chain([funcnametab, cutab, filetab, pctab, pclntable].map(|v| v as u64))
        .collect();
        let mut header = Vec::new();
        for w in words {
            put_word(&mut header, w, ps, be);
        }
        buf[8..8 + header.len()].copy_from_slice(&header);
        buf
    }

    /// (format, big-endian, pointer size, quantum, text start, text start in header)
    const fn synth(f: Format, be: bool, ps: u8, q: u8, text: u64, in_header: bool) -> Synth {
        Synth {
            format: f,
            big_endian: be,
            ptr_size: ps,
            quantum: q,
            text,
            header_text: in_header,
        }
    }

    const SYNTHS: &[Synth] = &[
        synth(Format::Go116, false, 8, 1, 0x40_1000, false),
        synth(Format::Go116, true, 4, 4, 0x1_0000, false),
        synth(Format::Go118, false, 8, 1, 0x1e380, true),
        synth(Format::Go118, true, 8, 4, 0x10_0000, true),
        synth(Format::Go120, false, 4, 2, 0x8000, true),
        // Go 1.20+ as written today: text start 0 in the header.
        synth(Format::Go120, false, 8, 1, 0x29400, false),
    ];

    fn synth_table(s: Synth) -> GoPclntab {
        let data = encode(s, SYNTH_FUNCS);
        let hint = (!s.header_text).then_some(s.text);
        GoPclntab::from_table(&data, 0x9000, hint).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    /// (offset from the text start, function name, file and line).
    type LookupCase = (u64, Option<&'static str>, Option<(&'static str, u32)>);

    #[test]
    fn synthetic_tables_lookup_functions_and_lines() {
        for &s in SYNTHS {
            let t = synth_table(s);
            assert_eq!(t.version(), s.format.version(), "{s:?}");
            assert_eq!(t.len(), SYNTH_FUNCS.len());
            let mut start = s.text;
            let mut expected = Vec::new();
            for f in SYNTH_FUNCS {
                let end = start + u64::from(f.size);
                expected.push(GoFunc {
                    start,
                    end,
                    name: f.name,
                });
                start = end;
            }
            assert_eq!(t.functions().collect::<Vec<_>>(), expected, "{s:?}");

            // (offset from text, function, line)
            let cases: &[LookupCase] = &[
                (0x0, Some("main.main"), Some(("/src/main.go", 10))),
                (0xf, Some("main.main"), Some(("/src/main.go", 10))),
                (0x10, Some("main.main"), Some(("/src/main.go", 11))),
                (0x2f, Some("main.main"), Some(("/src/main.go", 11))),
                (0x30, Some("main.main"), Some(("/src/main.go", 9))),
                (0x3f, Some("main.main"), Some(("/src/main.go", 9))),
                (0x40, Some("main.(*T).M"), Some(("/src/t.go", 5))),
                (0x5f, Some("main.(*T).M"), Some(("/src/t.go", 5))),
                // runtime.zero is empty: 0x60 belongs to the next function.
                (
                    0x60,
                    Some("unicode.名前[go.shape.int]"),
                    Some(("/src/ユ.go", 100_000)),
                ),
                (
                    0x68,
                    Some("unicode.名前[go.shape.int]"),
                    Some(("/src/ユ.go", 3)),
                ),
                (
                    0x8f,
                    Some("unicode.名前[go.shape.int]"),
                    Some(("/src/ユ.go", 3)),
                ),
                (0x90, None, None),
                (u64::MAX - s.text, None, None),
            ];
            for &(off, name, line) in cases {
                let svma = s.text + off;
                assert_eq!(
                    t.lookup(svma).map(|f| f.name),
                    name,
                    "{s:?} lookup {svma:#x}"
                );
                assert_eq!(t.line(svma), line, "{s:?} line {svma:#x}");
            }
            assert_eq!(t.lookup(s.text - 1), None);
            assert_eq!(t.line(s.text - 1), None);
        }
    }

    /// A Go 1.18 little-endian table and the byte offsets of its parts.
    fn go118_table() -> (Vec<u8>, Header) {
        let data = encode(SYNTHS[2], SYNTH_FUNCS);
        let header = read_header(&data, 0).unwrap().unwrap();
        (data, header)
    }

    #[test]
    fn corrupt_tables_are_errors() {
        #[derive(Debug)]
        enum Want {
            Unsupported,
            Malformed,
            NoTextStart,
        }
        type Corrupt = fn(&mut Vec<u8>, &Header);
        let cases: &[(&str, Corrupt, Want)] = &[
            (
                "go1.2 magic",
                |d, _| d[..4].copy_from_slice(&MAGIC_GO12.to_le_bytes()),
                Want::Unsupported,
            ),
            ("unknown magic", |d, _| d[0] = 0x12, Want::Malformed),
            ("pad byte", |d, _| d[4] = 1, Want::Malformed),
            ("pointer size 3", |d, _| d[7] = 3, Want::Malformed),
            ("no text start", |d, _| d[24..32].fill(0), Want::NoTextStart),
            (
                "huge nfunc",
                |d, _| d[8..16].copy_from_slice(&u64::MAX.to_le_bytes()),
                Want::Malformed,
            ),
            (
                "nfunc past end",
                |d, _| d[8..16].copy_from_slice(&1000u64.to_le_bytes()),
                Want::Malformed,
            ),
            ("zero functions", |d, _| d[8..16].fill(0), Want::Malformed),
            (
                "funcnametab past end",
                |d, _| d[32..40].copy_from_slice(&u64::MAX.to_le_bytes()),
                Want::Malformed,
            ),
            (
                "pclntable inside header",
                |d, _| d[64..72].copy_from_slice(&8u64.to_le_bytes()),
                Want::Malformed,
            ),
            ("truncated header", |d, _| d.truncate(40), Want::Malformed),
            (
                "truncated functab",
                |d, h| d.truncate(h.pclntable + 10),
                Want::Malformed,
            ),
            (
                "truncated records",
                |d, _| d.truncate(d.len() - 20),
                Want::Malformed,
            ),
            (
                "unsorted functab",
                |d, h| {
                    d[h.pclntable + 8..h.pclntable + 12].copy_from_slice(&0xffffu32.to_le_bytes())
                },
                Want::Malformed,
            ),
            (
                "record offset past end",
                |d, h| d[h.pclntable + 4..h.pclntable + 8].copy_from_slice(&u32::MAX.to_le_bytes()),
                Want::Malformed,
            ),
            (
                "_func entry differs",
                |d, h| {
                    let rec = h.pclntable + 9 * 4;
                    d[rec..rec + 4].copy_from_slice(&7u32.to_le_bytes());
                },
                Want::Malformed,
            ),
            (
                "name offset past end",
                |d, h| {
                    let rec = h.pclntable + 9 * 4;
                    d[rec + 4..rec + 8].copy_from_slice(&u32::MAX.to_le_bytes());
                },
                Want::Malformed,
            ),
        ];
        for (what, corrupt, want) in cases {
            let (mut data, header) = go118_table();
            corrupt(&mut data, &header);
            let got = GoPclntab::from_table(&data, 0x9000, None);
            let ok = matches!(
                (&got, want),
                (Err(PclntabError::UnsupportedVersion(_)), Want::Unsupported)
                    | (Err(PclntabError::Malformed { .. }), Want::Malformed)
                    | (Err(PclntabError::NoTextStart { .. }), Want::NoTextStart)
            );
            assert!(ok, "{what}: want {want:?}, got {got:?}");
        }
    }

    #[test]
    fn broken_line_tables_give_none() {
        let (data, h) = go118_table();
        // Point main.main's pcln at a run of continuation bytes, and
        // main.(*T).M's pcfile past the end of the table.
        let mut d = data.clone();
        let rec0 = h.pclntable + 9 * 4;
        let bad = (d.len() - h.pctab - 4) as u32;
        d[rec0 + 4 * FUNC_PCLN..rec0 + 4 * FUNC_PCLN + 4].copy_from_slice(&bad.to_le_bytes());
        let rec1 = rec0 + 4 + 4 * 9 + 4;
        d[rec1 + 4 * FUNC_PCFILE..rec1 + 4 * FUNC_PCFILE + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        // runtime.zero's CU is "none" (^0).
        let t = GoPclntab::from_table(&d, 0, None).unwrap();
        let text = SYNTHS[2].text;
        assert_eq!(t.lookup(text).map(|f| f.name), Some("main.main"));
        assert_eq!(t.line(text), None);
        assert_eq!(t.line(text + 0x40), None);
        assert_eq!(t.line(text + 0x60), Some(("/src/ユ.go", 100_000)));
    }

    /// xorshift64*: a fixed-seed source of test noise.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Overwrites a few bytes or words, or truncates, at random.
    fn mutate(rng: &mut Rng, data: &mut Vec<u8>, hot: std::ops::Range<usize>) {
        for _ in 0..1 + rng.below(4) {
            if data.is_empty() {
                return;
            }
            let pos = if rng.below(2) == 0 && hot.start < hot.end.min(data.len()) {
                hot.start + rng.below(hot.end.min(data.len()) - hot.start)
            } else {
                rng.below(data.len())
            };
            match rng.below(6) {
                0 => data.truncate(pos),
                1 | 2 => data[pos] = rng.next() as u8,
                3 => data[pos] ^= 1 << rng.below(8),
                _ => {
                    let word = rng.next().to_le_bytes();
                    let end = (pos + 4).min(data.len());
                    let interesting = [0u32, 1, 0x7fff_ffff, u32::MAX, rng.next() as u32 % 0x1000];
                    let v = interesting[rng.below(interesting.len())].to_le_bytes();
                    let src = if rng.below(2) == 0 {
                        &v[..]
                    } else {
                        &word[..4]
                    };
                    data[pos..end].copy_from_slice(&src[..end - pos]);
                }
            }
        }
    }

    /// Calls every query on a table; it must not panic and must stay sane.
    fn exercise(t: &GoPclntab, rng: &mut Rng) {
        let funcs: Vec<_> = t.functions().collect();
        for w in funcs.windows(2) {
            assert!(w[0].start <= w[1].start && w[0].start <= w[0].end);
        }
        for f in funcs.iter().take(64) {
            let _ = t.line(f.start);
            if let Some(g) = t.lookup(f.start) {
                assert!(g.start <= f.start && f.start < g.end);
            }
        }
        let base = funcs.first().map_or(0, |f| f.start);
        for _ in 0..64 {
            let svma = base.wrapping_add(rng.next() % 0x10_0000);
            if let Some(f) = t.lookup(svma) {
                assert!(f.start <= svma && svma < f.end, "{f:?} {svma:#x}");
            }
            let _ = t.line(svma);
        }
    }

    #[test]
    fn mutated_synthetic_tables_never_panic() {
        let mut rng = Rng(0x5eed_f00d_9c1a_b7e5);
        for round in 0..4000 {
            let s = SYNTHS[round % SYNTHS.len()];
            let mut data = encode(s, SYNTH_FUNCS);
            let all = 0..data.len();
            mutate(&mut rng, &mut data, all);
            for hint in [None, Some(s.text)] {
                if let Ok(t) = GoPclntab::from_table(&data, 0x9000, hint) {
                    exercise(&t, &mut rng);
                }
            }
        }
    }

    #[test]
    fn random_bytes_are_not_go() {
        let mut rng = Rng(42);
        for len in [0, 1, 7, 8, 64, 100, 4096] {
            for _ in 0..50 {
                let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                assert!(
                    GoPclntab::parse(&data).is_err() || GoPclntab::parse(&data).unwrap().is_none()
                );
                // The same noise behind a pclntab prefix.
                if len >= 8 {
                    data[..8].copy_from_slice(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8]);
                    assert!(GoPclntab::from_table(&data, 0, Some(0x1000)).is_err());
                }
            }
        }
        // Not an ELF file at all.
        assert!(matches!(
            GoPclntab::parse(b"\x7fELF"),
            Err(PclntabError::Object(_))
        ));
        assert!(matches!(
            GoPclntab::parse(b"#!/bin/sh\n"),
            Err(PclntabError::Object(_))
        ));
    }

    #[test]
    fn non_go_elf_is_none() {
        // The test binary itself is a Rust ELF with no Go in it. Read through
        // /proc, which works even after a concurrent build replaced the file.
        let bytes = std::fs::read("/proc/self/exe").unwrap();
        assert!(GoPclntab::parse(&bytes).unwrap().is_none());
    }

    // ---- Real Go builds: every toolchain found, each as exe/PIE/c-shared,
    // with and without `-ldflags="-s -w"`.

    const MAIN_GO: &str = r#"package main

import "fmt"

//go:noinline
func seamLeaf(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i // seam: leaf line
	}
	return s
}

type seamT struct{ n int }

//go:noinline
func (t *seamT) seamMethod() int { return seamLeaf(t.n) }

func main() {
	t := &seamT{n: 10}
	fmt.Println(t.seamMethod())
}
"#;

    const EXPORT_GO: &str = r#"package main

import "C"

//export SeamAdd
func SeamAdd(a, b C.int) C.int {
	return C.int(seamLeaf(int(a)) + int(b))
}
"#;

    /// Build modes: (name, `go build` flags, CGO_ENABLED). The executable is
    /// pure Go (internal linking, export.go left out); PIE and c-shared use
    /// cgo, so the external linker lays out `.text` with C code first.
    const MODES: &[(&str, &[&str], &str)] = &[
        ("exe", &[], "0"),
        ("pie", &["-buildmode=pie"], "1"),
        ("c-shared", &["-buildmode=c-shared"], "1"),
    ];

    struct GoBuild {
        go: PathBuf,
        go_version: String,
        mode: &'static str,
        stripped: bool,
        path: PathBuf,
    }

    impl GoBuild {
        fn label(&self) -> String {
            let s = if self.stripped { " -s -w" } else { "" };
            format!("{} {}{s}", self.go_version, self.mode)
        }

        fn table(&self) -> GoPclntab {
            let bytes = std::fs::read(&self.path).unwrap();
            GoPclntab::parse(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", self.label()))
                .unwrap_or_else(|| panic!("{}: not recognised as Go", self.label()))
        }

        fn twin<'a>(&self, builds: &'a [GoBuild]) -> &'a GoBuild {
            builds
                .iter()
                .find(|b| {
                    b.go_version == self.go_version
                        && b.mode == self.mode
                        && b.stripped != self.stripped
                })
                .unwrap()
        }
    }

    fn go_command(go: &Path, dir: &Path) -> Command {
        let scratch = scratch_root();
        let mut cmd = Command::new(go);
        cmd.current_dir(dir)
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", "off")
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .env("GO111MODULE", "on")
            .env("GOCACHE", scratch.join("gocache"))
            .env("GOPATH", dir.join("gopath"));
        cmd
    }

    fn scratch_root() -> PathBuf {
        std::env::temp_dir().join("seam-gopclntab-tests")
    }

    /// `go` binaries to test with: Debian's Go 1.19 and the one on PATH,
    /// each once per version.
    fn toolchains() -> Vec<(PathBuf, String)> {
        let mut candidates = vec![PathBuf::from("/usr/lib/go-1.19/bin/go")];
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join("go")));
        }
        let mut found: Vec<(PathBuf, String)> = Vec::new();
        for go in candidates.into_iter().filter(|p| p.is_file()) {
            let Ok(out) = go_command(&go, Path::new("/"))
                .args(["env", "GOVERSION"])
                .output()
            else {
                continue;
            };
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success()
                && version.starts_with("go")
                && !found.iter().any(|(_, v)| *v == version)
            {
                found.push((go, version));
            }
        }
        found
    }

    /// Builds every mode with every toolchain once per test run. None when
    /// there is no toolchain.
    fn go_builds() -> Option<&'static [GoBuild]> {
        static BUILDS: OnceLock<Vec<GoBuild>> = OnceLock::new();
        let builds = BUILDS.get_or_init(|| {
            let root = scratch_root();
            // Leftovers of earlier runs whose process is gone.
            if let Ok(entries) = std::fs::read_dir(&root) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(pid) = name.strip_prefix("run-") {
                        if !Path::new("/proc").join(pid).exists() {
                            let _ = std::fs::remove_dir_all(e.path());
                        }
                    }
                }
            }
            let run = root.join(format!("run-{}", std::process::id()));
            let toolchains = toolchains();
            let started = Instant::now();
            let builds: Vec<GoBuild> = std::thread::scope(|scope| {
                let handles: Vec<_> = toolchains
                    .iter()
                    .map(|(go, version)| {
                        let dir = run.join(version);
                        scope.spawn(move || build_all(go, version, &dir))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            if !builds.is_empty() {
                eprintln!(
                    "built {} Go test binaries in {:.1?}",
                    builds.len(),
                    started.elapsed()
                );
            }
            builds
        });
        (!builds.is_empty()).then_some(builds.as_slice())
    }

    fn build_all(go: &Path, version: &str, dir: &Path) -> Vec<GoBuild> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("go.mod"), "module seamtest\n\ngo 1.19\n").unwrap();
        std::fs::write(dir.join("main.go"), MAIN_GO).unwrap();
        std::fs::write(dir.join("export.go"), EXPORT_GO).unwrap();
        let mut builds = Vec::new();
        for &(mode, flags, cgo) in MODES {
            for stripped in [false, true] {
                let path = dir.join(format!("{mode}{}", if stripped { "-stripped" } else { "" }));
                let mut cmd = go_command(go, dir);
                cmd.env("CGO_ENABLED", cgo).arg("build").args(flags);
                if stripped {
                    cmd.arg("-ldflags=-s -w");
                }
                let out = cmd.arg("-o").arg(&path).arg(".").output().unwrap();
                assert!(
                    out.status.success(),
                    "{version} go build {mode} failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                builds.push(GoBuild {
                    go: go.to_path_buf(),
                    go_version: version.to_string(),
                    mode,
                    stripped,
                    path,
                });
            }
        }
        builds
    }

    /// The builds, or None after a loud skip message (a failure in CI).
    fn builds_or_skip(test: &str) -> Option<&'static [GoBuild]> {
        let builds = go_builds();
        if builds.is_none() {
            if std::env::var("SEAM_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                panic!("{test}: no Go toolchain found, and SEAM_REQUIRE_PRIVILEGED=1 requires one");
            }
            eprintln!("SKIPPED: no go toolchain ({test}); install golang-go to run it");
        }
        builds
    }

    /// `go tool nm -n`: (address, type, name) of every symbol.
    fn nm(b: &GoBuild) -> Vec<(u64, char, String)> {
        let out = go_command(&b.go, b.path.parent().unwrap())
            .args(["tool", "nm", "-n"])
            .arg(&b.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "go tool nm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| {
                let mut parts = line.trim_start().splitn(3, ' ');
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?.chars().next()?;
                Some((addr, kind, parts.next()?.to_string()))
            })
            .collect()
    }

    /// The Go functions `go tool nm` lists: text symbols from `runtime.text`
    /// up to `runtime.etext` (C code from cgo lies outside), less those two
    /// markers; assembly functions lose the `.abi0` suffix the linker gives
    /// their ELF symbols.
    fn nm_go_functions(b: &GoBuild) -> Vec<(u64, String)> {
        let syms = nm(b);
        let addr_of = |name: &str| syms.iter().find(|s| s.2 == name).map(|s| s.0).unwrap();
        let (text, etext) = (addr_of("runtime.text"), addr_of("runtime.etext"));
        syms.into_iter()
            .filter(|(addr, kind, name)| {
                matches!(kind, 'T' | 't')
                    && (text..etext).contains(addr)
                    && !matches!(name.as_str(), "runtime.text" | "runtime.etext")
            })
            .map(|(addr, _, name)| {
                (
                    addr,
                    name.strip_suffix(".abi0").unwrap_or(&name).to_string(),
                )
            })
            .collect()
    }

    /// The name the Go linker writes into funcnametab for an ELF symbol
    /// name: Go 1.19 writes the array length in generated type-equality
    /// functions as `[...]` (`type..eq.[5]internal/cpu.option` becomes
    /// `type..eq.[...]internal/cpu.option`).
    fn pclntab_name(elf_name: &str) -> String {
        if !elf_name.starts_with("type..eq.") {
            return elf_name.to_string();
        }
        let mut out = String::new();
        let mut rest = elf_name;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..=open]);
            rest = &rest[open + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && rest[digits..].starts_with(']') {
                out.push_str("...");
                rest = &rest[digits..];
            }
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn go_builds_match_go_tool_nm() {
        let Some(builds) = builds_or_skip("go_builds_match_go_tool_nm") else {
            return;
        };
        for b in builds.iter().filter(|b| !b.stripped) {
            let stripped = b.twin(builds);
            let table = b.table();
            let stripped_table = stripped.table();
            let expected = nm_go_functions(b);
            assert!(
                expected.len() > 500,
                "{}: only {} functions",
                b.label(),
                expected.len()
            );
            for t in [&table, &stripped_table] {
                let mut missing = Vec::new();
                for (addr, name) in &expected {
                    match t.lookup(*addr) {
                        Some(f) if f.start == *addr && f.name == pclntab_name(name) => {}
                        other => missing.push(format!("{addr:#x} {name}: {other:?}")),
                    }
                }
                assert!(
                    missing.is_empty(),
                    "{}: {} of {} differ:\n{}",
                    b.label(),
                    missing.len(),
                    expected.len(),
                    missing.join("\n")
                );
            }
            // And the other way round: the table holds nothing nm lacks.
            let names: std::collections::HashSet<String> = expected
                .iter()
                .map(|(_, name)| pclntab_name(name))
                .collect();
            let extra: Vec<_> = table
                .functions()
                .filter(|f| !names.contains(f.name))
                .collect();
            assert!(
                extra.is_empty(),
                "{}: not in go tool nm: {extra:?}",
                b.label()
            );
            // Same flags but -s -w: the same layout, so the same table.
            assert!(
                table.functions().eq(stripped_table.functions()),
                "{}: stripped build has another table",
                b.label()
            );
            for name in [
                "main.seamLeaf",
                "main.(*seamT).seamMethod",
                "main.main",
                "runtime.cgocallback",
            ] {
                if name == "runtime.cgocallback" && b.mode == "exe" {
                    continue;
                }
                assert!(
                    stripped_table.functions().any(|f| f.name == name),
                    "{}: no {name}",
                    b.label()
                );
            }
            eprintln!(
                "{}: {} functions, {} checked against go tool nm; {:?}",
                b.label(),
                table.len(),
                expected.len(),
                stripped_table
            );
        }
    }

    #[test]
    fn go_builds_lines_match_objdump() {
        let Some(builds) = builds_or_skip("go_builds_lines_match_objdump") else {
            return;
        };
        let leaf_line = MAIN_GO
            .lines()
            .position(|l| l.contains("seam: leaf line"))
            .unwrap() as u32
            + 1;
        let mut gos: Vec<&Path> = builds.iter().map(|b| b.go.as_path()).collect();
        gos.dedup();
        for b in builds.iter().filter(|b| !b.stripped) {
            // Go 1.19's objdump prints ":0" for every PIE and c-shared
            // instruction (it misplaces the text start), so the build's own
            // toolchain is asked first and then the others.
            let rows = std::iter::once(b.go.as_path())
                .chain(gos.iter().copied())
                .map(|go| objdump_lines(go, &b.path, r"^main\.seamLeaf$"))
                .find(|rows| !rows.is_empty())
                .unwrap_or_default();
            assert!(rows.len() > 5, "{}: objdump gave {rows:?}", b.label());
            assert!(
                rows.iter().any(|&(l, _)| l == leaf_line),
                "{}: no line {leaf_line} in {rows:?}",
                b.label()
            );
            for t in [b.table(), b.twin(builds).table()] {
                for &(line, addr) in &rows {
                    let got = t.line(addr);
                    assert!(
                        matches!(got, Some((file, l)) if file.ends_with("/main.go") && l == line),
                        "{} {addr:#x}: objdump says main.go:{line}, table says {got:?}",
                        b.label()
                    );
                }
            }
        }
    }

    /// `go tool objdump -s <regex>`: (line in main.go, address) of each
    /// instruction, from rows like "  main.go:9\t\t0x49a2e0\t\t31c9\t\tXORL CX, CX".
    fn objdump_lines(go: &Path, binary: &Path, regex: &str) -> Vec<(u32, u64)> {
        let out = go_command(go, binary.parent().unwrap())
            .args(["tool", "objdump", "-s", regex])
            .arg(binary)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "go tool objdump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                let line = fields.next()?.strip_prefix("main.go:")?.parse().ok()?;
                let addr = u64::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
                Some((line, addr))
            })
            .collect()
    }

    fn svma_to_offset(elf: &[u8], svma: u64) -> usize {
        let file = object::File::parse(elf).unwrap();
        file.segments()
            .find_map(|s| {
                let (off, size) = s.file_range();
                (svma >= s.address() && svma - s.address() < size)
                    .then(|| (off + svma - s.address()) as usize)
            })
            .unwrap()
    }

    /// Where the linker leaves pointers in `.data` unfilled for the dynamic
    /// loader (RELA with nothing in place, as on arm64), the text start comes
    /// from moduledata's relocations. Simulated by zeroing the header's text
    /// start and moduledata's words in a stripped c-shared library.
    #[test]
    fn text_start_from_moduledata_relocations() {
        let Some(builds) = builds_or_skip("text_start_from_moduledata_relocations") else {
            return;
        };
        for b in builds.iter().filter(|b| b.mode == "c-shared" && b.stripped) {
            let twin = b.twin(builds);
            let moduledata = nm(twin)
                .iter()
                .find(|s| s.2 == "runtime.firstmoduledata")
                .unwrap()
                .0;
            let original = b.table();
            let mut bytes = std::fs::read(&b.path).unwrap();
            let header_text = svma_to_offset(&bytes, original.table_svma()) + 8 + 2 * 8;
            bytes[header_text..header_text + 8].fill(0);
            for word in [
                0,
                MODULEDATA_FUNCNAMETAB_WORD,
                MODULEDATA_MINPC_WORD,
                MODULEDATA_TEXT_WORD,
            ] {
                let off = svma_to_offset(&bytes, moduledata + 8 * word);
                bytes[off..off + 8].fill(0);
            }
            let table = GoPclntab::parse(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", b.label()))
                .unwrap();
            assert_eq!(table.text_start(), original.text_start(), "{}", b.label());
            assert!(table.functions().eq(original.functions()), "{}", b.label());
        }
    }

    #[test]
    fn parse_time_of_stripped_c_shared() {
        let Some(builds) = builds_or_skip("parse_time_of_stripped_c_shared") else {
            return;
        };
        for b in builds.iter().filter(|b| b.mode == "c-shared" && b.stripped) {
            let bytes = std::fs::read(&b.path).unwrap();
            let runs = 20;
            let started = Instant::now();
            for _ in 0..runs {
                assert!(GoPclntab::parse(&bytes).unwrap().is_some());
            }
            let t = b.table();
            let lookups = Instant::now();
            let mut found = 0;
            for f in t.functions() {
                found += usize::from(t.lookup(f.start + (f.end - f.start) / 2).is_some());
            }
            eprintln!(
                "{}: {} bytes, parse {:.2?} (mean of {runs}), {} lookups {:.2?}",
                b.label(),
                bytes.len(),
                started.elapsed() / runs,
                found,
                lookups.elapsed()
            );
        }
    }

    #[test]
    fn mutated_go_binaries_never_panic() {
        let Some(builds) = builds_or_skip("mutated_go_binaries_never_panic") else {
            return;
        };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for b in builds.iter().filter(|b| b.stripped) {
            let original = std::fs::read(&b.path).unwrap();
            let t = b.table();
            let table_at = svma_to_offset(&original, t.table_svma());
            // Mostly the header and functab, where offsets live.
            let hot = table_at..table_at + t.header.pclntable + 64 * 1024;
            for len in [
                0,
                64,
                1000,
                table_at + 40,
                table_at + t.header.pclntable + 100,
                original.len() - 1,
            ] {
                if let Ok(Some(t)) = GoPclntab::parse(&original[..len.min(original.len())]) {
                    exercise(&t, &mut rng);
                }
            }
            for _ in 0..40 {
                let mut bytes = original.clone();
                mutate(&mut rng, &mut bytes, hot.clone());
                if let Ok(Some(t)) = GoPclntab::parse(&bytes) {
                    exercise(&t, &mut rng);
                }
            }
        }
    }
}
