//! The figures in the README's protocol section: bytes per sample of the wire
//! encoding (postcard against a serde_json baseline), the cost of fdatasync per
//! batch, and the collector's ingest rate over TCP. `bench/ingest.sh` records a
//! stream and runs this on it, writing `bench/ingest-results.md`.
//!
//! ```sh
//! SEAM_BIN=target/release/seam cargo run --release --example wire_figures -- [SESSION_FILE] [DATA_DIR_FOR_FSYNC]
//! ```
//!
//! With a session file (from `seam collector`), the encoding is measured on its
//! batches; without, on a synthetic recording. The fsync figures are taken in
//! DATA_DIR_FOR_FSYNC (default: the current folder), since they depend on the disk.
//! With a session file and `SEAM_BIN` (a built `seam`), its batches are also replayed
//! to a `seam collector` process from 8 connections at once, as fast as it
//! acknowledges them, and the collector's own CPU time gives samples per second per core.

use seam_agent::stream::{StreamOptions, Streamer};
use seam_collector::store::{SessionInfo, SessionWriter};
use seam_collector::{read_batch_payloads, Collector, CollectorOptions};
use seam_proto::delta::DeltaBuilder;
use seam_proto::synthetic::SyntheticRecording;
use seam_proto::wire::{decode, encode, Batch, SessionEnd};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batches = match args.first() {
        Some(path) => {
            println!("encoding, on the batches of {path}:");
            read_batch_payloads(Path::new(path)).expect("reading the session")
        }
        None => {
            println!("encoding, on a synthetic recording (40 ticks of 1000 samples):");
            synthetic_batches(40, 1000)
        }
    };
    encoding(&batches);
    let dir = PathBuf::from(args.get(1).map_or(".", String::as_str));
    fsync_cost(&dir);
    ingest_rate();
    match (args.first(), std::env::var_os("SEAM_BIN")) {
        (Some(_), Some(seam)) => ingest_recorded(&batches, Path::new(&seam), &dir, 8, 10),
        _ => println!(
            "\n(no SESSION_FILE and SEAM_BIN: the recorded stream's ingest is not measured)"
        ),
    }
}

/// The user and system CPU time of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (in parentheses, which may hold spaces): utime and
    // stime are the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Replays a recorded stream to a `seam collector` process: `agents` connections at
/// once, each sending the stream `rounds` times as new sessions, batches as fast as
/// they are acknowledged.
fn ingest_recorded(payloads: &[Vec<u8>], seam: &Path, dir: &Path, agents: usize, rounds: usize) {
    use std::io::BufRead;
    let batches: Vec<Batch> = payloads.iter().map(|p| decode(p).unwrap()).collect();
    let Some((last, rest)) = batches.split_last() else {
        return;
    };
    let per_stream: u64 = batches.iter().map(|b| b.delta.samples()).sum();
    let wire_bytes: usize = payloads.iter().map(|p| p.len() + 4).sum();
    let data = tempfile::tempdir_in(dir).unwrap();
    let mut collector = std::process::Command::new(seam)
        .args(["collector", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting seam collector");
    let mut lines = std::io::BufReader::new(collector.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the collector's address").unwrap();
        if let Some(rest) = line.strip_prefix("seam: collector listening on ") {
            break rest.split(',').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let pid = collector.id();
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for i in 0..agents {
            let addr = addr.clone();
            scope.spawn(move || {
                for round in 0..rounds {
                    let mut o = StreamOptions::new(addr.clone());
                    o.session = format!("replay{i}-{round}");
                    let to = addr.clone();
                    let streamer =
                        Streamer::start(o, move || tokio::net::TcpStream::connect(to.clone()))
                            .unwrap();
                    for b in rest {
                        streamer.offer(b.delta.clone());
                    }
                    let end = last.end.clone().unwrap_or_default();
                    let report = streamer.finish(last.delta.clone(), end).unwrap();
                    assert_eq!(report.undelivered_batches, 0);
                }
            });
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let _ = collector.kill();
    let _ = collector.wait();
    let samples = per_stream * (agents * rounds) as u64;
    println!(
        "\ningest of the recorded stream by `seam collector` ({agents} connections at once, {} sessions of {} batches, {per_stream} samples each):",
        agents * rounds,
        batches.len()
    );
    println!(
        "  {samples} samples in {wall:.2} s: {:.0} samples/s, {:.0} batches/s",
        samples as f64 / wall,
        (batches.len() * agents * rounds) as f64 / wall
    );
    println!(
        "  collector CPU {cpu:.2} s: {:.0} samples per CPU second (per core)",
        samples as f64 / cpu.max(0.01)
    );
    println!(
        "  on the wire (postcard, with length prefixes): {:.1} bytes/sample",
        wire_bytes as f64 / per_stream.max(1) as f64
    );
}

/// A batch in the natural all-JSON form: frames and metadata as JSON values.
fn as_json(batch: &Batch) -> Value {
    let d = &batch.delta;
    json!({
        "seq": batch.seq,
        "first_frame": d.first_frame,
        "frames": d.frames,
        "first_stack": d.first_stack,
        "stacks": d.stacks,
        "counts": d.counts,
        "meta": d.meta.as_ref().map(|m| Value::Object(m.0.clone())),
        "end": batch.end,
    })
}

fn encoding(payloads: &[Vec<u8>]) {
    let batches: Vec<Batch> = payloads.iter().map(|p| decode(p).unwrap()).collect();
    let samples: u64 = batches.iter().map(|b| b.delta.samples()).sum();
    let frames: usize = batches.iter().map(|b| b.delta.frames.len()).sum();
    let stacks: usize = batches.iter().map(|b| b.delta.stacks.len()).sum();
    let postcard: usize = payloads.iter().map(Vec::len).sum();
    let json: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(&as_json(b)).unwrap())
        .collect();
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    // The parts of each encoding: re-encode each part alone.
    let part = |f: &dyn Fn(&Batch) -> (usize, usize)| {
        batches
            .iter()
            .map(f)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let frames_part = part(&|b| {
        let v = as_json(b);
        (
            postcard::to_allocvec(&serde_json::to_string(&b.delta.frames).unwrap())
                .unwrap()
                .len(),
            serde_json::to_vec(&v["frames"]).unwrap().len(),
        )
    });
    let stacks_part = part(&|b| {
        (
            postcard::to_allocvec(&b.delta.stacks).unwrap().len(),
            serde_json::to_vec(&b.delta.stacks).unwrap().len(),
        )
    });
    let counts_part = part(&|b| {
        (
            postcard::to_allocvec(&b.delta.counts).unwrap().len(),
            serde_json::to_vec(&b.delta.counts).unwrap().len(),
        )
    });
    let meta_part = part(&|b| {
        (
            postcard::to_allocvec(&b.delta.meta).unwrap().len(),
            serde_json::to_vec(&as_json(b)["meta"]).unwrap().len(),
        )
    });
    println!(
        "  {} batches, {samples} samples, {frames} frames, {stacks} stacks",
        batches.len()
    );
    println!("  {:<8} {:>12} {:>12}", "", "postcard", "serde_json");
    let per = |n: usize| n as f64 / samples.max(1) as f64;
    println!(
        "  {:<8} {:>12} {:>12}  bytes",
        "total", postcard, json_bytes
    );
    println!(
        "  {:<8} {:>12.1} {:>12.1}  bytes/sample",
        "",
        per(postcard),
        per(json_bytes)
    );
    for (name, (p, j)) in [
        ("frames", frames_part),
        ("stacks", stacks_part),
        ("counts", counts_part),
        ("meta", meta_part),
    ] {
        println!("  {name:<8} {p:>12} {j:>12}  bytes");
    }
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        let mut rounds = 0;
        while start.elapsed() < Duration::from_millis(300) {
            f();
            rounds += 1;
        }
        start.elapsed().as_secs_f64() * 1e6 / (rounds * batches.len()) as f64
    };
    let pc_enc = time(&|| {
        for b in &batches {
            std::hint::black_box(encode(b));
        }
    });
    let pc_dec = time(&|| {
        for p in payloads {
            std::hint::black_box(decode::<Batch>(p).unwrap());
        }
    });
    let js_enc = time(&|| {
        for b in &batches {
            std::hint::black_box(serde_json::to_vec(&as_json(b)).unwrap());
        }
    });
    let js_dec = time(&|| {
        for j in &json {
            std::hint::black_box(serde_json::from_slice::<Value>(j).unwrap());
        }
    });
    println!("  encode   {pc_enc:>12.1} {js_enc:>12.1}  µs/batch");
    println!("  decode   {pc_dec:>12.1} {js_dec:>12.1}  µs/batch");
}

fn synthetic_batches(ticks: u64, samples: u32) -> Vec<Vec<u8>> {
    let mut rec = SyntheticRecording::new(7);
    let mut builder = DeltaBuilder::default();
    (1..=ticks)
        .map(|seq| {
            rec.advance(samples);
            encode(&Batch {
                seq,
                delta: builder.next(rec.profile()),
                end: None,
            })
        })
        .collect()
}

fn fsync_cost(dir: &Path) {
    let tmp = tempfile::tempdir_in(dir).expect("a temporary folder for the fsync figures");
    let batches = synthetic_batches(300, 1000);
    println!(
        "\nstorage, {} batches of 1000 samples in {}:",
        batches.len(),
        dir.display()
    );
    for (name, group) in [
        ("fdatasync every batch", 1),
        ("fdatasync every 16 batches", 16),
        ("no fdatasync", usize::MAX),
    ] {
        let info = SessionInfo {
            session: format!("fsync{group}"),
            host: "bench".into(),
            agent_version: "bench".into(),
            started_unix_ms: 0,
            peer: "bench".into(),
        };
        let (mut w, _) = SessionWriter::open(tmp.path(), &info).unwrap();
        let start = Instant::now();
        for (i, b) in batches.iter().enumerate() {
            w.append(b).unwrap();
            if (i + 1) % group == 0 {
                w.sync().unwrap();
            }
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / batches.len() as f64;
        println!(
            "  {name:<28} {per:>8.0} µs/batch  {:>8.0} batches/s",
            1e6 / per
        );
    }
}

fn ingest_rate() {
    println!("\ningest over TCP on 127.0.0.1 (ticks of 1000 samples, as fast as acknowledged):");
    for agents in [1, 8] {
        let dir = tempfile::tempdir_in(".").unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        runtime.spawn(
            Collector::new(CollectorOptions::new(dir.path()))
                .unwrap()
                .serve(listener),
        );
        let start = Instant::now();
        let threads: Vec<_> = (0..agents)
            .map(|i| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let mut o = StreamOptions::new(addr.clone());
                    o.session = format!("agent{i}");
                    let streamer =
                        Streamer::start(o, move || tokio::net::TcpStream::connect(addr.clone()))
                            .unwrap();
                    let mut rec = SyntheticRecording::new(i);
                    let mut builder = DeltaBuilder::default();
                    for _ in 0..400 {
                        rec.advance(1000);
                        streamer.offer(builder.next(rec.profile()));
                    }
                    let report = streamer
                        .finish(builder.next(rec.profile()), SessionEnd::default())
                        .unwrap();
                    (rec.profile().samples(), report)
                })
            })
            .collect();
        let mut samples = 0;
        let mut batches = 0;
        for t in threads {
            let (s, r) = t.join().unwrap();
            assert_eq!(r.undelivered_batches, 0);
            samples += s;
            batches += r.batches;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  {agents} agent(s): {:>10.0} samples/s, {:>6.0} batches/s",
            samples as f64 / secs,
            batches as f64 / secs
        );
    }
}
