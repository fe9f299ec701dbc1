//! The polyglot profile's pprof and speedscope files, read by the real readers: `go tool
//! pprof` (`-top` and `-raw`, with every Go toolchain on the machine) and speedscope's own
//! JSON schema. A missing reader skips loudly, or fails when `SEAM_REQUIRE_PRIVILEGED=1`.

mod common;
#[path = "../../tests/common/readers.rs"]
mod readers;

use common::*;
use readers::*;
use seam_export::{write_pprof, write_speedscope};
use seam_proto::Profile;
use std::path::PathBuf;

fn write_to(dir: &tempfile::TempDir, name: &str, write: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = Vec::new();
    write(&mut bytes);
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn go_tool_pprof_reads_names_totals_and_labels_without_warnings() {
    let gos = go_toolchains("go_tool_pprof_reads_names_totals_and_labels_without_warnings");
    let profile = polyglot_profile_with_modules();
    let dir = tempfile::tempdir().unwrap();
    let file = write_to(&dir, "profile.pb.gz", |out| {
        write_pprof(&profile, out).unwrap()
    });
    let samples = profile.samples();
    assert_eq!(samples, 875);
    for go in &gos {
        let top = go_pprof(go, &["-top", "-sample_index=samples"], &file);
        assert!(top.contains(&format!("of {samples} total")), "{go}:\n{top}");
        let flat = pprof_top_flat(&top);
        assert_eq!(flat.values().sum::<u64>(), samples, "{go}:\n{top}");
        for (function, n) in [
            ("sha2::sha256::compress256", 412),
            ("alloc::vec::Vec<u8>::extend_from_slice", 38),
            ("main.compute.func1", 120),
            ("prepare", 90),
            ("vfs_write", 23),
            ("0x7f3a12c0", 6),
            ("<module>", 0),
            ("[truncated]", 0),
            ("main.Compute", 0),
            ("seam_hash", 0),
        ] {
            assert_eq!(flat.get(function), Some(&n), "{go}: {function} in\n{top}");
        }
        // The default sample type is CPU time: 875 samples at 99 Hz are 8.84 s.
        let cpu = go_pprof(go, &["-top"], &file);
        assert!(cpu.contains("of 8.84s total"), "{go}:\n{cpu}");

        let raw = go_pprof(go, &["-raw"], &file);
        let (totals, labels) = pprof_raw_samples(&raw);
        let nanos = (samples as u128 * 1_000_000_000 / 99) as i64;
        assert!(
            totals[0] == samples as i64 && (totals[1] - nanos).abs() < 11,
            "{go}: totals {totals:?}\n{raw}"
        );
        assert_eq!(labels.len(), profile.stacks.len(), "{go}:\n{raw}");
        let rust_leaf = "complete:[true] runtime:[rust] runtimes:[c;c;c;c;python;python;python;\
            glue;glue;glue;glue;glue;glue;glue;glue;glue;glue;go;go;go;glue;glue;glue;rust;rust;rust] \
            seams:[python→go ctypes;go→rust cgo-call]";
        assert!(labels.iter().any(|l| l == rust_leaf), "{go}:\n{raw}");
        assert!(
            labels
                .iter()
                .any(|l| l.starts_with("complete:[false] runtime:[rust] runtimes:[unknown;glue")),
            "{go}: the truncated stack into Rust\n{raw}"
        );
        // Go 1.19's pprof writes `file:line`, newer ones `file:line:column`.
        for (function, place, system_name) in [
            (
                "main.compute",
                "/src/chain/chain.go:27",
                "(go:main.compute)",
            ),
            ("work", "chain.py:42", "(python:work)"),
            ("[truncated]", ":0", "(unknown:[truncated])"),
        ] {
            assert!(
                raw.lines()
                    .any(|l| l.contains(&format!(" {function} {place}"))
                        && l.ends_with(&format!("s=0{system_name}"))),
                "{go}: {function} at {place} in\n{raw}"
            );
        }
        assert!(
            raw.contains("Comment: pid 4242: 875 samples at 99 Hz, 840 with complete stacks; 15 lost (kernel 12, seam 3)"),
            "{go}:\n{raw}"
        );
    }
}

#[test]
fn go_tool_pprof_reads_an_empty_profile() {
    let gos = go_toolchains("go_tool_pprof_reads_an_empty_profile");
    let dir = tempfile::tempdir().unwrap();
    let file = write_to(&dir, "empty.pb.gz", |out| {
        write_pprof(&Profile::default(), out).unwrap()
    });
    for go in &gos {
        let raw = go_pprof(go, &["-raw"], &file);
        assert_eq!(pprof_raw_samples(&raw), (vec![], vec![]), "{go}:\n{raw}");
    }
}

#[test]
fn speedscope_follows_speedscope_schema() {
    let Some(schema) = speedscope_schema("speedscope_follows_speedscope_schema") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = polyglot_profile_with_modules();
    let file = write_to(&dir, "profile.speedscope.json", |out| {
        write_speedscope(&profile, out).unwrap()
    });
    let v = check_speedscope(&schema, &file);
    assert_eq!(v["profiles"][0]["endValue"], 875);
    let empty = write_to(&dir, "empty.speedscope.json", |out| {
        write_speedscope(&Profile::default(), out).unwrap()
    });
    check_speedscope(&schema, &empty);
}
