//! The stitching at Go's stack switches, from recorded samples, so it runs
//! without privileges: each fixture is a real sample of the `gomain` sample
//! (one folder per Go toolchain) with the pages seam read from the process,
//! and the frames seam found when it was recorded.
//!
//! Re-record with `SEAM_BLESS=1 cargo test --release -p seam-profiler --test stitch`
//! as root after `bash samples/build.sh && cargo build --release`: it records
//! `gomain` with SEAM_CAPTURE_FIXTURES and replaces the fixtures (never edit
//! them by hand).

use flate2::read::GzDecoder;
use seam_profiler::fixture;
use seam_profiler::modules::AddressSpace;
use seam_profiler::symbolize::Symbolizer;
use seam_profiler::unwind::{PageMemory, StackEnd, StackMemory, Unwinder};
use std::io::Read;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stitch")
}

/// Unpacks a fixture folder's gzipped modules into a temporary folder.
fn unpack(dir: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".gz") {
            let mut bytes = Vec::new();
            GzDecoder::new(std::fs::File::open(entry.path()).unwrap())
                .read_to_end(&mut bytes)
                .unwrap();
            std::fs::write(out.path().join(stem), bytes).unwrap();
        }
    }
    out
}

fn replay(dir: &Path, name: &str, with_chain: bool) {
    let modules = unpack(dir);
    let fx = fixture::load(&dir.join(format!("{name}.json"))).unwrap();
    let mut space = AddressSpace::from_files(modules.path());
    let mut unwinder = Unwinder::default();
    for m in &fx.mappings {
        let loaded = space
            .add_mapping(m.clone())
            .unwrap_or_else(|| panic!("cannot load {}", m.path));
        unwinder.add_module(&loaded);
    }
    let pages = PageMemory {
        pages: fx.pages.iter().cloned().collect(),
    };
    let mut mem = StackMemory::new(fx.regs.sp, &fx.stack, Some(&pages));
    let chain: &[u64] = if with_chain { &fx.chain } else { &[] };
    let native = unwinder.unwind(&space, fx.regs, chain, &mut mem);
    let mut symbolizer = Symbolizer::default();
    let names: Vec<String> = native
        .frames
        .iter()
        .map(|a| {
            symbolizer.symbolize(&space, a.lookup()).frames[0]
                .name
                .clone()
        })
        .collect();
    assert_eq!(
        native.end,
        StackEnd::Root,
        "{}/{name}: walk ended early: {names:?}",
        dir.display()
    );
    let want = if with_chain {
        &fx.frames
    } else {
        &fx.frames_without_chain
    };
    assert_eq!(
        &names,
        want,
        "{}/{name}, with the kernel's callchain: {with_chain}",
        dir.display()
    );
    assert!(!mem.reused_other_side);
}

fn check(dir: &str, wants: &[(&str, &[&str])]) {
    let dir = fixtures().join(dir);
    if std::env::var("SEAM_BLESS").as_deref() == Ok("1") {
        bless(&dir);
    }
    for (name, must_contain) in wants {
        // Both ways across the switches: the kernel's callchain, and the pages read from the process.
        replay(&dir, name, true);
        replay(&dir, name, false);
        // The recorded walk itself must show what makes it a crossing, in order.
        let fx = fixture::load(&dir.join(format!("{name}.json"))).unwrap();
        let mut at = 0;
        for want in *must_contain {
            // `a|b`: either. A stripped Go 1.21+ executable has no symbol for its C code.
            match fx.frames[at..]
                .iter()
                .position(|f| want.split('|').any(|w| f.starts_with(w)))
            {
                Some(p) => at += p + 1,
                None => panic!("{name}: no {want} after frame {at} in {:?}", fx.frames),
            }
        }
    }
}

const GO_CALLS_C: &[&str] = &[
    "seam_mix::",
    "seam_mix_work",
    "c_work|[gomain+",
    "runtime.asmcgocall",
    "runtime.cgocall",
    "main.",
    "runtime.goexit",
];
const C_CALLS_GO: &[&str] = &[
    "main.",
    "runtime.cgocallback",
    "crosscall2",
    "c_work|[gomain+",
    "runtime.asmcgocall",
    "runtime.cgocall",
    "main.",
    "runtime.goexit",
];

#[test]
fn go119_switches() {
    check(
        "go119",
        &[("go-calls-c", GO_CALLS_C), ("c-calls-go", C_CALLS_GO)],
    );
}

#[test]
fn go_current_switches() {
    check(
        "gocur",
        &[("go-calls-c", GO_CALLS_C), ("c-calls-go", C_CALLS_GO)],
    );
}

/// Records fresh fixtures from the `gomain` sample.
fn bless(dir: &Path) {
    let variant = dir.file_name().unwrap().to_str().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let seam = repo.join("target/release/seam");
    assert!(seam.exists(), "build seam first: cargo build --release");
    let capture = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let go = if variant == "go119" {
        "debian"
    } else {
        "current"
    };
    let status = std::process::Command::new(&seam)
        .env("SEAM_CAPTURE_FIXTURES", capture.path())
        .args(["record", "-o", out.path().to_str().unwrap(), "--"])
        .arg(repo.join("samples/run"))
        .args(["gomain", "--go", go, "--stripped", "--seconds", "3"])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(capture.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            std::fs::copy(entry.path(), dir.join(&name)).unwrap();
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let file = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        gz.finish().unwrap();
    }
}
