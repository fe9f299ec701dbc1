//! Reading Python objects (str, bytes, code) out of the target, and the
//! cache of code objects that keeps the per-sample cost low.

use std::collections::HashMap;
use std::io;

use super::layout::{Layout, STATE_ASCII, STATE_COMPACT, STATE_KIND_MASK, STATE_KIND_SHIFT};
use crate::memory::ReadMemory;

/// Longest qualname or filename we read, in characters; longer ones are cut.
pub(crate) const MAX_STR_CHARS: usize = 4096;
/// Longest `co_linetable` we keep; lines past its end read as unknown.
pub(crate) const MAX_LINETABLE: usize = 256 * 1024;
/// The code cache is cleared when it reaches this many entries.
pub(crate) const MAX_CACHED_CODES: usize = 10_000;

pub(crate) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub(crate) fn u64_at(buf: &[u8], off: u64) -> u64 {
    let off = off as usize;
    u64::from_le_bytes(buf[off..off + 8].try_into().expect("8 bytes"))
}

pub(crate) fn u32_at(buf: &[u8], off: u64) -> u32 {
    let off = off as usize;
    u32::from_le_bytes(buf[off..off + 4].try_into().expect("4 bytes"))
}

/// Type objects used to check that a pointer really is what it should be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Types {
    pub code: u64,
    pub unicode: Option<u64>,
    pub bytes: Option<u64>,
}

/// The header fields of a code object that identify it: when they are
/// unchanged at an address, the cached decoding is still right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CodeHeader {
    filename: u64,
    qualname: u64,
    linetable: u64,
    firstlineno: i32,
}

/// A decoded code object.
#[derive(Debug)]
pub(crate) struct CodeInfo {
    header: CodeHeader,
    pub qualname: String,
    pub filename: String,
    pub linetable: Box<[u8]>,
    pub firstlineno: u32,
}

/// Code objects by address. A revalidating lookup re-reads the code
/// object's header (one read) and compares it, so a freed and reused
/// address is noticed.
#[derive(Default)]
pub(crate) struct CodeCache {
    codes: HashMap<u64, CodeInfo>,
}

impl CodeCache {
    /// The code object at `addr`, or `Ok(None)` when `addr` does not point at
    /// a code object (its `ob_type` is not `PyCode_Type`). With `revalidate`
    /// false a cached entry is trusted without a read.
    pub(crate) fn get<M: ReadMemory + ?Sized>(
        &mut self,
        mem: &M,
        layout: &Layout,
        types: &Types,
        addr: u64,
        revalidate: bool,
    ) -> io::Result<Option<&CodeInfo>> {
        if !revalidate && self.codes.contains_key(&addr) {
            return Ok(self.codes.get(&addr));
        }
        let mut buf = [0u8; 512];
        let block = &mut buf[..layout.code_block()];
        mem.read(addr, block)?;
        if u64_at(block, layout.ob_type) != types.code {
            return Ok(None);
        }
        let header = CodeHeader {
            filename: u64_at(block, layout.code_filename),
            qualname: u64_at(block, layout.code_qualname),
            linetable: u64_at(block, layout.code_linetable),
            firstlineno: u32_at(block, layout.code_firstlineno) as i32,
        };
        let fresh = self.codes.get(&addr).is_some_and(|c| c.header == header);
        if !fresh {
            let info = CodeInfo {
                header,
                qualname: read_str(mem, layout, types, header.qualname)?,
                filename: read_str(mem, layout, types, header.filename)?,
                linetable: read_bytes(mem, layout, types, header.linetable, MAX_LINETABLE)?
                    .into_boxed_slice(),
                firstlineno: header.firstlineno.max(0) as u32,
            };
            if self.codes.len() >= MAX_CACHED_CODES {
                self.codes.clear();
            }
            self.codes.insert(addr, info);
        }
        Ok(self.codes.get(&addr))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }
}

/// Reads a `str`: compact ASCII, compact UCS1/UCS2/UCS4, or a legacy string
/// with a separate data buffer. At most [`MAX_STR_CHARS`] characters.
pub(crate) fn read_str<M: ReadMemory + ?Sized>(
    mem: &M,
    layout: &Layout,
    types: &Types,
    addr: u64,
) -> io::Result<String> {
    let mut buf = [0u8; 512];
    let head = &mut buf[..layout.unicode_ascii_size as usize];
    mem.read(addr, head)?;
    if types
        .unicode
        .is_some_and(|t| u64_at(head, layout.ob_type) != t)
    {
        return Err(invalid("expected a str object"));
    }
    let state = u32_at(head, layout.unicode_state);
    let length = u64_at(head, layout.unicode_length);
    if length > isize::MAX as u64 {
        return Err(invalid("negative str length"));
    }
    let chars = (length as usize).min(MAX_STR_CHARS);
    let kind = (state & STATE_KIND_MASK) >> STATE_KIND_SHIFT;
    let compact = state & STATE_COMPACT != 0;
    if compact && state & STATE_ASCII != 0 {
        let bytes = mem.read_vec(addr.wrapping_add(layout.unicode_ascii_size), chars)?;
        return Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
    }
    let data = if compact {
        addr.wrapping_add(layout.unicode_compact_size)
    } else {
        mem.read_u64(addr.wrapping_add(layout.unicode_compact_size))?
    };
    let width = match kind {
        1 | 2 | 4 => kind as usize,
        _ => return Err(invalid("str with an unknown kind")),
    };
    let raw = mem.read_vec(data, chars * width)?;
    let text = match width {
        1 => raw.iter().map(|&b| char::from(b)).collect(),
        2 => raw
            .chunks_exact(2)
            .map(|c| {
                char::from_u32(u32::from(u16::from_le_bytes([c[0], c[1]])))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
    };
    Ok(text)
}

/// Reads the payload of a `bytes` object, at most `max` bytes.
pub(crate) fn read_bytes<M: ReadMemory + ?Sized>(
    mem: &M,
    layout: &Layout,
    types: &Types,
    addr: u64,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 64];
    let head = &mut buf[..layout.bytes_size as usize + 8];
    mem.read(addr, head)?;
    if types
        .bytes
        .is_some_and(|t| u64_at(head, layout.ob_type) != t)
    {
        return Err(invalid("expected a bytes object"));
    }
    let size = u64_at(head, layout.bytes_size);
    if size > isize::MAX as u64 {
        return Err(invalid("negative bytes length"));
    }
    mem.read_vec(
        addr.wrapping_add(layout.bytes_sval),
        (size as usize).min(max),
    )
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake CPython heap for unit tests: objects laid out in one buffer
    //! with a given [`Layout`], read back through [`SliceMemory`].

    use super::*;
    use crate::memory::SliceMemory;

    pub(crate) const BASE: u64 = 0x10_0000;
    pub(crate) const CODE_TYPE: u64 = 0xc0de;
    pub(crate) const STR_TYPE: u64 = 0x5757;
    pub(crate) const BYTES_TYPE: u64 = 0xb7e5;

    pub(crate) fn types() -> Types {
        Types {
            code: CODE_TYPE,
            unicode: Some(STR_TYPE),
            bytes: Some(BYTES_TYPE),
        }
    }

    pub(crate) struct Heap {
        pub layout: Layout,
        pub bytes: Vec<u8>,
    }

    impl Heap {
        pub(crate) fn new(layout: Layout) -> Heap {
            // Keep address 0 out of the heap: a null pointer must not read.
            Heap {
                layout,
                bytes: vec![0; 16],
            }
        }

        pub(crate) fn mem(&self) -> SliceMemory<'_> {
            SliceMemory {
                base: BASE,
                bytes: &self.bytes,
            }
        }

        /// Reserves `size` zeroed bytes, 16-aligned; returns the address.
        pub(crate) fn alloc(&mut self, size: usize) -> u64 {
            let at = self.bytes.len().next_multiple_of(16);
            self.bytes.resize(at + size, 0);
            BASE + at as u64
        }

        pub(crate) fn put(&mut self, addr: u64, off: u64, value: &[u8]) {
            let at = (addr - BASE + off) as usize;
            self.bytes[at..at + value.len()].copy_from_slice(value);
        }

        pub(crate) fn put_u64(&mut self, addr: u64, off: u64, value: u64) {
            self.put(addr, off, &value.to_le_bytes());
        }

        /// A compact str: ASCII when it is, else the narrowest UCS kind.
        pub(crate) fn str(&mut self, s: &str) -> u64 {
            let l = self.layout;
            let chars: Vec<u32> = s.chars().map(u32::from).collect();
            let max = chars.iter().copied().max().unwrap_or(0);
            let (kind, header, ascii) = match max {
                0..=0x7f => (1, l.unicode_ascii_size, true),
                0x80..=0xff => (1, l.unicode_compact_size, false),
                0x100..=0xffff => (2, l.unicode_compact_size, false),
                _ => (4, l.unicode_compact_size, false),
            };
            let addr = self.alloc(header as usize + (chars.len() + 1) * kind);
            self.put_u64(addr, l.ob_type, STR_TYPE);
            self.put_u64(addr, l.unicode_length, chars.len() as u64);
            let state = (kind as u32) << STATE_KIND_SHIFT
                | STATE_COMPACT
                | if ascii { STATE_ASCII } else { 0 };
            self.put(addr, l.unicode_state, &state.to_le_bytes());
            for (i, c) in chars.iter().enumerate() {
                self.put(addr, header + (i * kind) as u64, &c.to_le_bytes()[..kind]);
            }
            addr
        }

        pub(crate) fn bytes_obj(&mut self, data: &[u8]) -> u64 {
            let l = self.layout;
            let addr = self.alloc(l.bytes_sval as usize + data.len() + 1);
            self.put_u64(addr, l.ob_type, BYTES_TYPE);
            self.put_u64(addr, l.bytes_size, data.len() as u64);
            self.put(addr, l.bytes_sval, data);
            addr
        }

        /// A code object with `units` code units, every one on `firstlineno + unit / 2`.
        pub(crate) fn code(
            &mut self,
            qualname: &str,
            filename: &str,
            firstlineno: u32,
            units: u32,
        ) -> u64 {
            let l = self.layout;
            // One short-form entry per 2 units (line + 1 each, via kind 11).
            let mut table = vec![0x81u8, 0x00];
            for _ in 1..units.div_ceil(2) {
                table.extend_from_slice(&[0xd9, 0x00, 0x00]);
            }
            let q = self.str(qualname);
            let f = self.str(filename);
            let t = self.bytes_obj(&table);
            let addr = self.alloc(l.code_adaptive as usize + 2 * units as usize);
            self.put_u64(addr, l.ob_type, CODE_TYPE);
            self.put_u64(addr, l.code_qualname, q);
            self.put_u64(addr, l.code_filename, f);
            self.put_u64(addr, l.code_linetable, t);
            self.put(addr, l.code_firstlineno, &firstlineno.to_le_bytes());
            addr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    #[test]
    fn strings_of_every_kind() {
        for layout in [Layout::V3_11, Layout::V3_12] {
            let mut heap = Heap::new(layout);
            let cases = [
                "",
                "leaf_spin",
                "café",
                "Ωmega",
                "emoji 🐍 here",
                "<module>",
            ];
            let addrs: Vec<u64> = cases.iter().map(|s| heap.str(s)).collect();
            for (s, a) in cases.iter().zip(addrs) {
                assert_eq!(read_str(&heap.mem(), &layout, &types(), a).unwrap(), *s);
            }
        }
    }

    #[test]
    fn long_strings_are_cut() {
        let mut heap = Heap::new(Layout::V3_12);
        let long = "x".repeat(MAX_STR_CHARS + 100);
        let a = heap.str(&long);
        assert_eq!(
            read_str(&heap.mem(), &Layout::V3_12, &types(), a)
                .unwrap()
                .len(),
            MAX_STR_CHARS
        );
    }

    #[test]
    fn wrong_types_and_garbage_fail_cleanly() {
        let layout = Layout::V3_12;
        let mut heap = Heap::new(layout);
        let b = heap.bytes_obj(b"abc");
        let s = heap.str("abc");
        let mem = heap.mem();
        assert_eq!(
            read_str(&mem, &layout, &types(), b).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read_bytes(&mem, &layout, &types(), s, 100)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidData
        );
        assert!(read_str(&mem, &layout, &types(), 8).is_err());
        // a str whose length runs off the heap
        let mut heap = Heap::new(layout);
        let s = heap.str("abc");
        heap.put_u64(s, layout.unicode_length, 1 << 20);
        assert!(read_str(&heap.mem(), &layout, &types(), s).is_err());
    }

    #[test]
    fn code_cache_revalidates() {
        let layout = Layout::V3_12;
        let mut heap = Heap::new(layout);
        let code = heap.code("f", "a.py", 10, 4);
        let other_name = heap.str("g");
        let mut cache = CodeCache::default();
        assert_eq!(
            cache
                .get(&heap.mem(), &layout, &types(), code, true)
                .unwrap()
                .unwrap()
                .qualname,
            "f"
        );
        assert_eq!(cache.len(), 1);
        // the address now holds another code object
        heap.put_u64(code, layout.code_qualname, other_name);
        assert_eq!(
            cache
                .get(&heap.mem(), &layout, &types(), code, true)
                .unwrap()
                .unwrap()
                .qualname,
            "g"
        );
        // ... or something that is not code at all
        heap.put_u64(code, layout.ob_type, STR_TYPE);
        assert!(cache
            .get(&heap.mem(), &layout, &types(), code, true)
            .unwrap()
            .is_none());
    }
}
