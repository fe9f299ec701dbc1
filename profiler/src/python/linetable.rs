//! Decoding of the CPython 3.11+ location table (`co_linetable`), and of
//! 3.10's line table ([`line_for_offset_310`]) and 3.8/3.9's `co_lnotab`
//! ([`line_for_offset_lnotab`]).
//!
//! The format is described in CPython's `Objects/locations.md`. The table is
//! a sequence of entries; each covers 1 to 8 consecutive 2-byte code units and
//! starts with a byte `1cccclll`: `cccc` is the entry kind and `lll` is the
//! number of code units minus one. What follows depends on the kind:
//!
//! | kind  | line delta                 | extra bytes                               |
//! |-------|----------------------------|-------------------------------------------|
//! | 0–9   | 0                          | 1 (column data)                           |
//! | 10–12 | kind − 10                  | 2 (start and end column)                  |
//! | 13    | signed varint              | none                                      |
//! | 14    | signed varint              | varints: end-line delta, column, end col. |
//! | 15    | 0, and the units have no location                                      |
//!
//! A varint is little-endian in 6-bit chunks with bit 6 as "more follows";
//! a signed varint stores `(|v| << 1) | sign`. Lines start at `co_firstlineno`.

/// Kind of an entry whose code units have no source location.
const KIND_NONE: u8 = 15;
const KIND_LONG: u8 = 14;
const KIND_NO_COLUMNS: u8 = 13;
const KIND_ONE_LINE0: u8 = 10;
const KIND_ONE_LINE2: u8 = 12;

/// The source line of the code unit `code_unit_index` (a byte offset into
/// `co_code` divided by 2), or `None` when the table gives that unit no
/// location, the index lies past the table, or the table is malformed.
///
/// This agrees with CPython's `PyCode_Addr2Line` for every index inside the
/// code (checked against `co_positions()` of 3.11 to 3.15 in the tests).
/// Line 0 is a real answer: 3.12+ module code starts with a unit on line 0.
pub fn line_for_offset(linetable: &[u8], firstlineno: u32, code_unit_index: u32) -> Option<u32> {
    let mut reader = Reader {
        bytes: linetable,
        pos: 0,
    };
    let mut line = i64::from(firstlineno);
    let mut unit_start: u64 = 0;
    let target = u64::from(code_unit_index);
    while let Some(head) = reader.byte() {
        if head & 0x80 == 0 {
            // Every entry starts with the high bit set; anything else means we
            // lost sync (a torn or garbage table).
            return None;
        }
        let kind = (head >> 3) & 0x0f;
        let units = u64::from(head & 0x07) + 1;
        let delta = match kind {
            KIND_NONE => 0,
            KIND_LONG => {
                let d = reader.svarint()?;
                for _ in 0..3 {
                    reader.varint()?;
                }
                d
            }
            KIND_NO_COLUMNS => reader.svarint()?,
            KIND_ONE_LINE0..=KIND_ONE_LINE2 => {
                reader.skip(2)?;
                i64::from(kind - KIND_ONE_LINE0)
            }
            _ => {
                reader.skip(1)?;
                0
            }
        };
        line = line.checked_add(delta)?;
        if target < unit_start + units {
            return if kind == KIND_NONE {
                None
            } else {
                u32::try_from(line).ok()
            };
        }
        unit_start += units;
    }
    None
}

/// The source line of the instruction at `byte_offset` into `co_code` in
/// CPython 3.10, whose `co_linetable` is another format (PEP 626's, in
/// CPython 3.10's `Objects/lnotab_notes.txt`): pairs of bytes, an unsigned
/// count of bytecode bytes and a signed line delta, the pair covering the
/// bytes from where the previous one ended; a delta of -128 says those bytes
/// have no line (and leaves the running line as it was). `None` past the
/// table, where the bytes have no line, or for a table of odd length.
pub fn line_for_offset_310(linetable: &[u8], firstlineno: u32, byte_offset: u32) -> Option<u32> {
    if !linetable.len().is_multiple_of(2) {
        return None;
    }
    let mut line = i64::from(firstlineno);
    let mut end = 0u64;
    let target = u64::from(byte_offset);
    for pair in linetable.chunks_exact(2) {
        let start = end;
        end += u64::from(pair[0]);
        let delta = pair[1] as i8;
        let known = delta != -128;
        if known {
            line += i64::from(delta);
        }
        if start <= target && target < end {
            return if known {
                u32::try_from(line).ok()
            } else {
                None
            };
        }
    }
    None
}

/// The source line of the instruction at `byte_offset` into `co_code` in
/// CPython 3.8 and 3.9, by `co_lnotab`: pairs of bytes, an unsigned count
/// of bytecode bytes and a signed line delta, each delta applying from the
/// offset the counts add up to (CPython's `PyCode_Addr2Line` of those
/// versions). A negative offset (a frame not yet started) is on
/// `co_firstlineno`.
pub fn line_for_offset_lnotab(lnotab: &[u8], firstlineno: u32, byte_offset: i64) -> Option<u32> {
    let mut line = i64::from(firstlineno);
    let mut addr = 0i64;
    for pair in lnotab.chunks_exact(2) {
        addr += i64::from(pair[0]);
        if addr > byte_offset {
            break;
        }
        line += i64::from(pair[1] as i8);
    }
    u32::try_from(line).ok()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.pos = self.pos.checked_add(n).filter(|&p| p <= self.bytes.len())?;
        Some(())
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return None;
            }
            value |= u64::from(b & 0x3f) << shift;
            if b & 0x40 == 0 {
                return Some(value);
            }
            shift += 6;
        }
    }

    fn svarint(&mut self) -> Option<i64> {
        let v = self.varint()?;
        let magnitude = i64::try_from(v >> 1).ok()?;
        Some(if v & 1 != 0 { -magnitude } else { magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One code object dumped by `fixtures/gen_linetables.py`.
    struct Vector {
        qualname: String,
        firstlineno: u32,
        linetable: Vec<u8>,
        /// Expected line per code unit.
        lines: Vec<Option<u32>>,
    }

    fn load(json: &str) -> (String, Vec<Vector>) {
        let v: serde_json::Value = serde_json::from_str(json).expect("fixture is JSON");
        let python = v["python"].as_str().unwrap().to_string();
        let codes = v["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let hex = c["linetable"].as_str().unwrap();
                let linetable = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                let mut lines = Vec::new();
                for run in c["lines"].as_array().unwrap() {
                    let line = run[0].as_u64().map(|l| l as u32);
                    let count = run[1].as_u64().unwrap() as usize;
                    lines.extend(std::iter::repeat_n(line, count));
                }
                Vector {
                    qualname: c["qualname"].as_str().unwrap().to_string(),
                    firstlineno: c["firstlineno"].as_u64().unwrap() as u32,
                    linetable,
                    lines,
                }
            })
            .collect();
        (python, codes)
    }

    const VERSIONS: [&str; 8] = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];

    /// Whether `python` (a version, "3.9.18") has `co_lnotab`.
    fn lnotab(python: &str) -> bool {
        python.starts_with("3.8.") || python.starts_with("3.9.")
    }

    /// The line of code unit `i` by the decoder of `python`'s format.
    fn line_of(python: &str, table: &[u8], first: u32, i: u32) -> Option<u32> {
        if lnotab(python) {
            line_for_offset_lnotab(table, first, 2 * i64::from(i))
        } else if python.starts_with("3.10") {
            line_for_offset_310(table, first, 2 * i)
        } else {
            line_for_offset(table, first, i)
        }
    }

    fn fixture_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/python/fixtures")
    }

    /// Regenerates the fixtures with the pyenv interpreters when SEAM_BLESS=1.
    fn bless() {
        if std::env::var_os("SEAM_BLESS").is_none_or(|v| v != "1") {
            return;
        }
        for minor in VERSIONS {
            let python = crate::python::tests_support::python(minor)
                .unwrap_or_else(|| panic!("SEAM_BLESS=1 needs python{minor}"));
            let out = std::process::Command::new(python)
                .arg(fixture_dir().join("gen_linetables.py"))
                .output()
                .expect("run gen_linetables.py");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(
                fixture_dir().join(format!("linetable-{minor}.json")),
                out.stdout,
            )
            .unwrap();
        }
    }

    #[test]
    fn matches_cpython() {
        bless();
        for minor in VERSIONS {
            let path = fixture_dir().join(format!("linetable-{minor}.json"));
            let json = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (python, codes) = load(&json);
            assert!(
                python.starts_with(minor),
                "fixture for {minor} was made by {python}"
            );
            assert!(codes.len() > 10, "fixture {minor} has too few code objects");
            let mut units = 0;
            for code in &codes {
                for (i, want) in code.lines.iter().enumerate() {
                    let got = line_of(&python, &code.linetable, code.firstlineno, i as u32);
                    assert_eq!(got, *want, "python {python}, {} unit {i}", code.qualname);
                    units += 1;
                }
                // co_lnotab does not say where the code ends.
                let past = code.lines.len() as u32;
                if !lnotab(&python) {
                    assert_eq!(
                        line_of(&python, &code.linetable, code.firstlineno, past),
                        None
                    );
                }
            }
            // 3.10's bytecode has no inline caches: 210 units where 3.11 has 300+.
            assert!(
                units > 200,
                "fixture {minor} covers only {units} code units"
            );
        }
    }

    #[test]
    fn hand_made_entries() {
        // (table, firstlineno, index, expected)
        let cases: &[(&[u8], u32, u32, Option<u32>)] = &[
            // short form, 2 units, same line
            (&[0x81, 0x00], 7, 0, Some(7)),
            (&[0x81, 0x00], 7, 1, Some(7)),
            (&[0x81, 0x00], 7, 2, None),
            // one-line form with delta 2 (kind 12), 1 unit
            (&[0xe0, 0x00, 0x05], 10, 0, Some(12)),
            // no-columns form (kind 13) with delta -3: svarint (3 << 1) | 1 = 7
            (&[0xe8, 0x07], 10, 0, Some(7)),
            // long form (kind 14), delta +70: varint 140 = 0x0c | 0x40, 0x02
            (&[0xf0, 0x4c, 0x02, 0x00, 0x01, 0x01], 1, 0, Some(71)),
            // no location (kind 15)
            (&[0xf8], 1, 0, None),
            // the line after a no-location entry keeps counting from before it
            (&[0xf8, 0xd8, 0x00, 0x00], 5, 1, Some(6)),
            // lost sync: high bit clear
            (&[0x01, 0x00], 1, 0, None),
            // truncated entries
            (&[0xf0, 0x4c], 1, 0, None),
            (&[0xe0, 0x00], 1, 0, None),
            (&[], 1, 0, None),
            // a negative line is not a line
            (&[0xe8, 0x07], 1, 0, None),
        ];
        for (i, (table, first, index, want)) in cases.iter().enumerate() {
            assert_eq!(line_for_offset(table, *first, *index), *want, "case {i}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_u32;
        for len in 0..200 {
            let table: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            for index in [0, 1, 7, 100, u32::MAX] {
                let _ = line_for_offset(&table, u32::MAX, index);
            }
        }
        // a varint that never ends
        let endless = [0xf0u8]
            .into_iter()
            .chain(std::iter::repeat_n(0x7f, 40))
            .collect::<Vec<_>>();
        assert_eq!(line_for_offset(&endless, 1, 0), None);
    }
}
