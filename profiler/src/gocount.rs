//! The Go runtime's own count of its cgo calls, read from the target.
//!
//! Every call from Go into C goes through `runtime.cgocall`, which adds one
//! to the calling M's `ncgocall`; an M that exits adds its count to the
//! global `runtime.ncgocall` (`runtime.NumCgoCall` sums the two). Reading
//! them with `process_vm_readv` counts Go → C calls exactly, at no cost to
//! the target: no breakpoint, nothing written. The `m` struct's layout
//! changes between Go versions, so the field offsets come from the binary's
//! DWARF, and a stripped binary (`-ldflags=-s -w`) has no counter for seam.

use crate::memory::ReadMemory;
use object::{Object, ObjectSection, ObjectSymbol};
use std::borrow::Cow;
use std::io;

/// Where one Go runtime keeps its cgo call counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgoCounter {
    /// Link-time addresses of `runtime.allm` (the list of Ms) and of
    /// `runtime.ncgocall` (the calls of the Ms that exited).
    pub allm: u64,
    pub ncgocall: u64,
    /// Offsets in `runtime.m` of `ncgocall` and of `alllink` (the next M).
    pub m_ncgocall: u64,
    pub m_alllink: u64,
    /// `runtime.main_init_done` (`mainInitDoneChan` in newer Go), a channel
    /// the runtime closes once it has started, and the offset of `closed` in a channel (`runtime.hchan`).
    pub init_done: u64,
    pub chan_closed: u64,
}

/// More Ms than a Go program makes: a list longer than this was read while
/// it changed (or from the wrong address).
const MAX_MS: usize = 100_000;

impl CgoCounter {
    /// The counter of the Go runtime in this ELF file, or why there is none.
    pub fn locate(file: &[u8]) -> Result<CgoCounter, String> {
        let elf = object::File::parse(file).map_err(|e| e.to_string())?;
        let symbol = |name: &str| {
            elf.symbols()
                .chain(elf.dynamic_symbols())
                .find(|s| s.name() == Ok(name) && s.is_definition())
                .map(|s| s.address())
                .ok_or_else(|| format!("no symbol {name} (stripped?)"))
        };
        let allm = symbol("runtime.allm")?;
        let ncgocall = symbol("runtime.ncgocall")?;
        // `mainInitDoneChan` since Go 1.21 or so.
        let init_done =
            symbol("runtime.main_init_done").or_else(|_| symbol("runtime.mainInitDoneChan"))?;
        let offsets = member_offsets(
            &elf,
            &[
                ("runtime.m", "ncgocall"),
                ("runtime.m", "alllink"),
                ("runtime.hchan", "closed"),
            ],
        )?;
        Ok(CgoCounter {
            allm,
            ncgocall,
            m_ncgocall: offsets[0],
            m_alllink: offsets[1],
            init_done,
            chan_closed: offsets[2],
        })
    }

    /// Whether the runtime has started (closed `main_init_done`): its own
    /// cgo calls at its start (two in Go 1.19, before any of the program's)
    /// are then behind it.
    pub fn started(&self, memory: &impl ReadMemory, bias: u64) -> io::Result<bool> {
        let chan = memory.read_u64(self.init_done.wrapping_add(bias))?;
        if chan == 0 {
            return Ok(false);
        }
        Ok(memory.read_u32(chan.wrapping_add(self.chan_closed))? != 0)
    }

    /// The cgo calls the runtime made so far, from a module loaded at `bias`
    /// (avma = svma + bias).
    pub fn read(&self, memory: &impl ReadMemory, bias: u64) -> io::Result<u64> {
        let mut calls = memory.read_u64(self.ncgocall.wrapping_add(bias))?;
        let mut m = memory.read_u64(self.allm.wrapping_add(bias))?;
        for _ in 0..MAX_MS {
            if m == 0 {
                return Ok(calls);
            }
            calls = calls.wrapping_add(memory.read_u64(m.wrapping_add(self.m_ncgocall))?);
            m = memory.read_u64(m.wrapping_add(self.m_alllink))?;
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "runtime.allm: the list of Ms does not end",
        ))
    }
}

/// The offsets of these members of these structs (`(struct, member)`),
/// from the binary's DWARF, in the same order. Go puts the runtime's types in
/// the `runtime` unit of a c-shared library and elsewhere in an executable:
/// every unit is looked at, until all are found.
fn member_offsets(elf: &object::File<'_>, wanted: &[(&str, &str)]) -> Result<Vec<u64>, String> {
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, String> {
        // A unit's line program is parsed with it: .debug_line too.
        let needed = [
            gimli::SectionId::DebugInfo,
            gimli::SectionId::DebugAbbrev,
            gimli::SectionId::DebugStr,
            gimli::SectionId::DebugLine,
        ];
        if !needed.contains(&id) {
            return Ok(Cow::Borrowed(&[]));
        }
        match elf.section_by_name(id.name()) {
            Some(s) => s
                .uncompressed_data()
                .map_err(|e| format!("{}: {e}", id.name())),
            None => Ok(Cow::Borrowed(&[])),
        }
    };
    let sections = gimli::DwarfSections::load(load)?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let err = |e: gimli::Error| format!("DWARF: {e}");
    let mut found: Vec<Option<u64>> = vec![None; wanted.len()];
    let mut units = dwarf.units();
    let mut any_unit = false;
    while let Some(header) = units.next().map_err(err)? {
        any_unit = true;
        let unit = dwarf.unit(header).map_err(err)?;
        let name_of = |e: &gimli::DebuggingInformationEntry<_>| -> Option<String> {
            let value = e.attr_value(gimli::DW_AT_name)?;
            let s = dwarf.attr_string(&unit, value).ok()?;
            Some(String::from_utf8_lossy(s.slice()).into_owned())
        };
        let mut entries = unit.entries();
        // The struct being read, and its depth: its members are one below.
        let mut inside: Option<(String, isize)> = None;
        while let Some(e) = entries.next_dfs().map_err(err)? {
            let depth = e.depth();
            if inside.as_ref().is_some_and(|(_, d)| depth <= *d) {
                inside = None;
            }
            match &inside {
                None => {
                    if e.tag() == gimli::DW_TAG_structure_type {
                        if let Some(name) = name_of(e).filter(|n| wanted.iter().any(|w| w.0 == n)) {
                            inside = Some((name, depth));
                        }
                    }
                }
                Some((name, _)) if e.tag() == gimli::DW_TAG_member => {
                    let member = name_of(e);
                    let at = wanted
                        .iter()
                        .position(|w| w.0 == name && Some(w.1) == member.as_deref());
                    if let Some(at) = at {
                        found[at] = e
                            .attr_value(gimli::DW_AT_data_member_location)
                            .and_then(|v| v.udata_value());
                    }
                }
                Some(_) => {}
            }
        }
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
    }
    if !any_unit {
        return Err("no DWARF (built with -ldflags=-w?)".into());
    }
    let missing: Vec<String> = wanted
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(w, _)| format!("{}.{}", w.0, w.1))
        .collect();
    Err(format!("no {} in the DWARF", missing.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;

    /// Two Ms in a list, 0x100 bytes each, and a global count.
    #[test]
    fn sums_the_ms_and_the_exited() {
        let counter = CgoCounter {
            allm: 0x10,
            ncgocall: 0x18,
            m_ncgocall: 0x40,
            m_alllink: 0x48,
            init_done: 0x20,
            chan_closed: 0x30,
        };
        let mut mem = vec![0u8; 0x400];
        let put = |mem: &mut Vec<u8>, at: usize, v: u64| {
            mem[at..at + 8].copy_from_slice(&v.to_le_bytes())
        };
        let base = 0x1000u64;
        // allm -> m at 0x100 -> m at 0x200 -> nil.
        put(&mut mem, 0x10, base + 0x100);
        put(&mut mem, 0x18, 7);
        put(&mut mem, 0x140, 1000);
        put(&mut mem, 0x148, base + 0x200);
        put(&mut mem, 0x240, 35);
        let memory = SliceMemory { base, bytes: &mem };
        assert_eq!(counter.read(&memory, base).unwrap(), 1042);
        // main_init_done: nil, then a channel at 0x300, open, then closed.
        assert!(!counter.started(&memory, base).unwrap());
        put(&mut mem, 0x20, base + 0x300);
        let memory = SliceMemory { base, bytes: &mem };
        assert!(!counter.started(&memory, base).unwrap());
        put(&mut mem, 0x330, 1);
        let memory = SliceMemory { base, bytes: &mem };
        assert!(counter.started(&memory, base).unwrap());
        // A list that loops is an error, not a hang.
        put(&mut mem, 0x248, base + 0x100);
        let memory = SliceMemory { base, bytes: &mem };
        assert!(counter.read(&memory, base).is_err());
        // Unreadable memory is an error.
        assert!(counter.read(&memory, base + 0x10000).is_err());
    }

    #[test]
    fn a_file_without_go_has_no_counter() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let e = CgoCounter::locate(&me).unwrap_err();
        assert!(e.contains("runtime.allm"), "{e}");
    }
}
