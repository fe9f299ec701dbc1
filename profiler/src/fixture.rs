//! Recorded samples for tests that run without privileges: the registers,
//! the stack copy, the pages read from the process while unwinding, the
//! mappings of the modules on the stack, and the frames seam found. The
//! module files are copied beside the fixture.

use crate::modules::{AddressSpace, FrameKind, Mapping};
use crate::symbolize::Symbolizer;
use crate::unwind::{NativeStack, Regs, StackEnd, StackMemory};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One recorded sample and what seam made of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fixture {
    pub regs: Regs,
    pub stack: Vec<u8>,
    /// The user part of the kernel's callchain, leaf first.
    pub chain: Vec<u64>,
    /// (page address, 4096 bytes).
    pub pages: Vec<(u64, Vec<u8>)>,
    /// Mappings with paths relative to the fixture folder (`/name`).
    pub mappings: Vec<Mapping>,
    /// The first symbol name of each native frame, leaf first.
    pub frames: Vec<String>,
    /// The same walk without the kernel's callchain (reading the far side of each
    /// stack switch from the pages instead).
    pub frames_without_chain: Vec<String>,
}

impl Fixture {
    pub fn to_json(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut out = String::from("{\n");
        out += &format!(
            "  \"regs\": [{}, {}, {}],\n",
            self.regs.ip, self.regs.sp, self.regs.bp
        );
        out += &format!("  \"stack\": \"{}\",\n", hex(&self.stack));
        let chain: Vec<String> = self.chain.iter().map(u64::to_string).collect();
        out += &format!("  \"chain\": [{}],\n", chain.join(", "));
        let pages: Vec<String> = self
            .pages
            .iter()
            .map(|(a, b)| format!("[{a}, \"{}\"]", hex(b)))
            .collect();
        out += &format!("  \"pages\": [{}],\n", pages.join(", "));
        let maps: Vec<String> = self
            .mappings
            .iter()
            .map(|m| format!("[{}, {}, {}, \"{}\"]", m.start, m.end, m.pgoff, m.path))
            .collect();
        out += &format!("  \"mappings\": [{}],\n", maps.join(", "));
        let names = |v: &[String]| {
            v.iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!("  \"frames\": [{}],\n", names(&self.frames));
        out += &format!(
            "  \"frames_without_chain\": [{}]\n}}\n",
            names(&self.frames_without_chain)
        );
        out
    }
}

/// Looks for samples worth keeping: one whose walk passes each kind of stack switch.
pub struct FixtureCapture {
    dir: PathBuf,
    wanted: BTreeSet<&'static str>,
}

impl FixtureCapture {
    pub fn new(dir: PathBuf) -> FixtureCapture {
        FixtureCapture {
            dir,
            wanted: ["go-calls-c", "c-calls-go"].into_iter().collect(),
        }
    }

    pub fn offer(
        &mut self,
        space: &AddressSpace,
        symbolizer: &mut Symbolizer,
        regs: Regs,
        stack: &[u8],
        chain: &[u64],
        walks: [(&StackMemory, &NativeStack); 2],
    ) {
        let [(mem, native), (mem2, native2)] = walks;
        let clean =
            |m: &StackMemory, n: &NativeStack| n.end == StackEnd::Root && !m.reused_other_side;
        if self.wanted.is_empty() || !clean(mem, native) || !clean(mem2, native2) {
            return;
        }
        let kinds: Vec<Option<FrameKind>> = native
            .frames
            .iter()
            .map(|a| {
                space
                    .module_at(a.lookup())
                    .and_then(|m| m.object.kind_at(m.svma(a.lookup())))
            })
            .collect();
        let name = if kinds.contains(&Some(FrameKind::Crosscall2)) {
            "c-calls-go"
        } else if kinds.contains(&Some(FrameKind::GoAsmcgocall)) {
            "go-calls-c"
        } else {
            return;
        };
        if !self.wanted.remove(name) {
            return;
        }
        let mut mappings = Vec::new();
        for a in &native.frames {
            let Some(m) = space.module_at(a.lookup()) else {
                continue;
            };
            let file = m
                .mapping
                .path
                .rsplit('/')
                .next()
                .unwrap_or("module")
                .to_string();
            let local = Mapping {
                path: format!("/{file}"),
                ..m.mapping.clone()
            };
            if !mappings.contains(&local) {
                let _ = std::fs::copy(space.file_path(&m.mapping.path), self.dir.join(&file));
                mappings.push(local);
            }
        }
        let fixture = Fixture {
            regs,
            stack: stack.to_vec(),
            chain: chain.to_vec(),
            pages: {
                let mut pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
                pages.extend(
                    mem.pages_read()
                        .chain(mem2.pages_read())
                        .map(|(a, b)| (a, b.to_vec())),
                );
                pages.into_iter().collect()
            },
            mappings,
            frames: names(space, symbolizer, native),
            frames_without_chain: names(space, symbolizer, native2),
        };
        let _ = std::fs::write(self.dir.join(format!("{name}.json")), fixture.to_json());
    }
}

fn names(space: &AddressSpace, symbolizer: &mut Symbolizer, native: &NativeStack) -> Vec<String> {
    native
        .frames
        .iter()
        .map(|a| {
            symbolizer.symbolize(space, a.lookup()).frames[0]
                .name
                .clone()
        })
        .collect()
}

fn strings(v: &serde_json::Value) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or("no frames")?
        .iter()
        .map(|f| {
            f.as_str()
                .map(str::to_string)
                .ok_or_else(|| "a frame name".to_string())
        })
        .collect()
}

/// Reads a fixture written by [`Fixture::to_json`].
pub fn load(path: &Path) -> Result<Fixture, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let unhex = |s: &str| -> Result<Vec<u8>, String> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
            .collect()
    };
    let num = |v: &serde_json::Value| v.as_u64().ok_or_else(|| format!("not a number: {v}"));
    let r = v["regs"].as_array().ok_or("no regs")?;
    Ok(Fixture {
        regs: Regs {
            ip: num(&r[0])?,
            sp: num(&r[1])?,
            bp: num(&r[2])?,
        },
        stack: unhex(v["stack"].as_str().ok_or("no stack")?)?,
        chain: v["chain"].as_array().map_or(Ok(Vec::new()), |c| {
            c.iter().map(num).collect::<Result<_, String>>()
        })?,
        pages: v["pages"]
            .as_array()
            .ok_or("no pages")?
            .iter()
            .map(|p| Ok((num(&p[0])?, unhex(p[1].as_str().ok_or("page")?)?)))
            .collect::<Result<_, String>>()?,
        mappings: v["mappings"]
            .as_array()
            .ok_or("no mappings")?
            .iter()
            .map(|m| {
                Ok(Mapping {
                    start: num(&m[0])?,
                    end: num(&m[1])?,
                    pgoff: num(&m[2])?,
                    path: m[3].as_str().ok_or("path")?.into(),
                })
            })
            .collect::<Result<_, String>>()?,
        frames: strings(&v["frames"])?,
        frames_without_chain: strings(&v["frames_without_chain"])?,
    })
}
