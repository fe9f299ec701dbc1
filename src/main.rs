//! The `seam` command: parses arguments, turns them into options and hands
//! them to the libraries. Everything else lives in the crates.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use seam_agent::{record, CrossingsMode, RecordOptions, TargetSpec};
use seam_export::Format;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "seam",
    version,
    about = "Profile programs stitched together from Python, C, Go and Rust: whole stacks across the seams."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sample a process's on-CPU stacks, then write a flamegraph, folded stacks and a summary
    /// (or the views chosen with --format).
    Record(RecordArgs),
}

#[derive(Args)]
struct RecordArgs {
    /// Attach to this running process.
    #[arg(long, short, conflicts_with = "command")]
    pid: Option<u32>,
    /// Stop after this many seconds (default: until the target exits or Ctrl-C).
    #[arg(long, short)]
    duration: Option<f64>,
    /// Samples per second per running thread.
    #[arg(long, short, default_value_t = 999)]
    rate: u32,
    /// How to count boundary crossings: `exact` (uprobes on the functions that
    /// carry them, within --overhead-budget) or `sampled` (boundaries and their
    /// glue time from the samples only, nothing added to the target).
    #[arg(long, default_value = "exact", value_parser = ["exact", "sampled"])]
    crossings: String,
    /// Keep the probes' cost under this percentage of the target's CPU time by
    /// arming them in duty cycles and extrapolating; `none` for no limit.
    #[arg(long, default_value = "3", value_name = "PERCENT|none")]
    overhead_budget: String,
    /// Folder for the files written (see --format).
    #[arg(long, short, default_value = "seam-out")]
    output: PathBuf,
    /// Files to write, comma-separated: svg (flamegraph.svg), folded (stacks.folded), json
    /// (summary.json), pprof (profile.pb.gz), speedscope (profile.speedscope.json),
    /// offcpu-svg (offcpu.svg: off-CPU time by the stack at switch-out), offcpu-folded
    /// (offcpu.folded, weights in µs).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "svg,offcpu-svg,folded,json", value_parser = str::parse::<Format>)]
    format: Vec<Format>,
    /// The command to launch and record (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

/// Where the views go and which ones.
struct Outputs {
    dir: PathBuf,
    /// Each format once, in the order first asked for.
    formats: Vec<Format>,
}

impl RecordArgs {
    fn into_options(self, stop: Arc<AtomicBool>) -> Result<(RecordOptions, Outputs)> {
        let target = match (self.pid, self.command.is_empty()) {
            (Some(pid), true) => TargetSpec::Pid(pid),
            (None, false) => TargetSpec::Command(self.command),
            _ => bail!("say what to record: --pid PID, or -- COMMAND ARGS..."),
        };
        if !(1..=100_000).contains(&self.rate) {
            bail!("--rate must be between 1 and 100000 Hz");
        }
        let mut options = RecordOptions::new(target);
        options.frequency_hz = self.rate;
        options.duration = match self.duration {
            Some(d) if d > 0.0 && d.is_finite() => Some(Duration::from_secs_f64(d)),
            Some(_) => bail!("--duration must be a positive number of seconds"),
            None => None,
        };
        options.stop = stop;
        options.crossings = match self.crossings.as_str() {
            "sampled" => CrossingsMode::Sampled,
            _ => CrossingsMode::Exact,
        };
        options.overhead_budget = match self.overhead_budget.as_str() {
            "none" => None,
            p => match p.trim_end_matches('%').parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Some(v / 100.0),
                _ => bail!("--overhead-budget takes a percentage between 0 and 100, or `none`"),
            },
        };
        let mut formats = self.format;
        let mut seen = std::collections::HashSet::new();
        formats.retain(|f| seen.insert(*f));
        let outputs = Outputs {
            dir: self.output,
            formats,
        };
        Ok((options, outputs))
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(args) => run_record(args),
    };
    if let Err(e) = result {
        eprintln!("seam: {e:#}");
        std::process::exit(1);
    }
}

fn run_record(args: RecordArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let (options, outputs) = args.into_options(stop.clone())?;
    let out_dir = &outputs.dir;
    // SAFETY: the handler only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let watcher_stop = stop.clone();
    std::thread::spawn(move || loop {
        if STOP.load(Ordering::Relaxed) {
            watcher_stop.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let what = match &options.target {
        TargetSpec::Pid(pid) => format!("pid {pid}"),
        TargetSpec::Command(argv) => argv.join(" "),
    };
    eprintln!(
        "seam: recording {what} at {} Hz (Ctrl-C to stop)",
        options.frequency_hz
    );
    let recording = record(&options, |p| {
        eprint!(
            "\rseam: {:>4.0}s  {} samples  {} lost",
            p.elapsed.as_secs_f64(),
            p.samples,
            p.lost
        );
        let _ = std::io::stderr().flush();
    })?;
    eprintln!();
    for w in &recording.warnings {
        eprintln!("seam: warning: {w}");
    }
    if recording.target_exited {
        match recording.exit_status {
            Some(s) => eprintln!("seam: the target exited with status {s}"),
            None => eprintln!("seam: the target exited"),
        }
    }

    let profile = &recording.profile;
    let summary = seam_export::summarize(profile, 50);
    let mut written = Vec::new();
    for format in &outputs.formats {
        let path = out_dir.join(format.file_name());
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        format
            .write(profile, &summary, &mut std::io::BufWriter::new(file))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path.display().to_string());
    }

    let mut out = std::io::stdout().lock();
    seam_export::print_summary(&summary, &mut out)?;
    writeln!(
        out,
        "seam's own CPU: {:.2} s over {:.1} s",
        recording.seam_cpu_s, profile.duration_s
    )?;
    writeln!(out, "wrote {}", written.join(", "))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats(args: &[&str]) -> Result<Vec<Format>> {
        let cli = Cli::try_parse_from(["seam", "record"].iter().chain(args).chain(&["--", "x"]))?;
        let Command::Record(args) = cli.command;
        Ok(args.into_options(Arc::default())?.1.formats)
    }

    #[test]
    fn formats_default_dedupe_and_keep_their_order() {
        assert_eq!(formats(&[]).unwrap(), seam_export::DEFAULT_FORMATS);
        assert_eq!(
            formats(&["--format", "pprof,svg,pprof"]).unwrap(),
            [Format::Pprof, Format::Svg]
        );
        assert!(formats(&["--format", "svg,"]).is_err());
    }
}
