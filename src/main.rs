//! The `seam` command: parses arguments, turns them into options and hands
//! them to the libraries. Everything else lives in the crates.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use seam_agent::stream::{record_to_collector, StreamOptions};
use seam_agent::{
    record, record_with_ticks, CrossingsMode, OffCpuMode, Progress, RecordOptions, TargetSpec,
};
use seam_collector::{Collector, CollectorOptions};
use seam_export::Format;
use seam_proto::Profile;
use std::io::Write;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
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
    /// Sample a process's on-CPU stacks, then write a flamegraph, folded stacks and a summary.
    Record(RecordArgs),
    /// Sample like `record`, streaming the profile to a collector instead of writing it here.
    Agent(AgentArgs),
    /// Accept agents over TCP and store each recording as a session.
    Collector(CollectorArgs),
    /// List the sessions a collector stored.
    Sessions(SessionsArgs),
    /// Write a view of a stored session: a flamegraph, folded stacks, the summary, pprof, speedscope.
    Export(ExportArgs),
    /// Sample like `record` and show a live dashboard: runtimes, boundaries, hot functions, threads.
    /// With --collector, the dashboard of a session an agent streams to a collector.
    Top(TopArgs),
    /// Compare two profiles: a differential flamegraph of AFTER, red where self time grew
    /// since BEFORE, blue where it shrank.
    Diff(DiffArgs),
}

#[derive(Args)]
struct DiffArgs {
    /// The profile before the change: a stored session's id (or the start of it, with
    /// --data), a `seam record` output folder, a session file or a stacks.folded file.
    before: String,
    /// The profile after the change, in any of the same forms.
    after: String,
    /// The collector's data folder, to find sessions by id.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where to write the SVG.
    #[arg(long, short, default_value = "diff.svg")]
    output: PathBuf,
    /// Keep BEFORE's counts as they are when the two totals differ (by default BEFORE is
    /// scaled to AFTER's total).
    #[arg(long)]
    no_normalize: bool,
}

#[derive(Args)]
struct TopArgs {
    /// Show a session streamed to this collector (HOST:PORT) instead of recording here.
    #[arg(long, conflicts_with_all = ["pid", "command"])]
    collector: Option<String>,
    /// With --collector: the session's id (or the start of it); without it, a list of the
    /// live sessions to pick from.
    #[arg(long, requires = "collector")]
    session: Option<String>,
    /// With --collector: a file holding the collector's token.
    #[arg(long, requires = "collector")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
    /// Folder for the flamegraphs written with `f`, the launched command's output
    /// (target.log) and seam's own log (seam.log).
    #[arg(long, short, default_value = "seam-out")]
    output: PathBuf,
}

#[derive(Args)]
struct RecordArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Folder for the files written (see --format).
    #[arg(long, short, default_value = "seam-out")]
    output: PathBuf,
    /// Files to write, comma-separated: svg (flamegraph.svg), folded (stacks.folded), json
    /// (summary.json), pprof (profile.pb.gz), speedscope (profile.speedscope.json),
    /// offcpu-svg (offcpu.svg: off-CPU time by the stack at switch-out), offcpu-folded
    /// (offcpu.folded, weights in µs).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "svg,offcpu-svg,folded,json", value_parser = str::parse::<Format>)]
    format: Vec<Format>,
}

#[derive(Args)]
struct AgentArgs {
    /// The collector's HOST:PORT.
    #[arg(long)]
    collector: String,
    /// A file holding the collector's token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// After the recording, how long to keep trying to deliver what the collector has not
    /// acknowledged, in seconds.
    #[arg(long, default_value_t = 30.0)]
    give_up_after: f64,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
struct CollectorArgs {
    /// The address to listen on, HOST:PORT. Beyond the loopback interface a token is required.
    #[arg(long)]
    listen: String,
    /// The folder that holds the sessions (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// A file holding the token every agent must send.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data", "collector"])))]
struct SessionsArgs {
    /// The collector's data folder: every stored session.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A running collector (HOST:PORT): the sessions it has seen since it started.
    #[arg(long)]
    collector: Option<String>,
    /// The collector's token, with --collector.
    #[arg(long, requires = "collector")]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
struct ExportArgs {
    /// The session's id, or the start of it.
    session: String,
    /// The collector's data folder.
    #[arg(long)]
    data: PathBuf,
    /// svg, folded, json, pprof, speedscope, offcpu-svg or offcpu-folded.
    #[arg(long, short, value_parser = str::parse::<Format>)]
    format: Format,
    /// Where to write (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct TargetArgs {
    /// Attach to this running process.
    #[arg(long, short, conflicts_with = "command")]
    pid: Option<u32>,
    /// Stop after this many seconds (default: until the target exits or Ctrl-C).
    #[arg(long, short)]
    duration: Option<f64>,
    /// Samples per second per running thread [default: 999, or the highest rate whose sampling
    /// fits its part of --overhead-budget when that is lower]
    #[arg(long, short)]
    rate: Option<u32>,
    /// How to count boundary crossings: `exact` (uprobes on the functions that
    /// carry them, within --overhead-budget), `sampled` (boundaries and their
    /// glue time from the samples only, nothing added to the target) or `off`
    /// (plain stacks: no boundaries, no seams marked).
    #[arg(long, default_value = "exact", value_parser = ["exact", "sampled", "off"])]
    crossings: String,
    /// What seam may cost the target, as a percentage of its CPU time:
    /// sampling and the probes together. seam spends two thirds of it (its
    /// estimate of its own cost is good to about a third), lowering the rate
    /// left to it, pausing the switch-outs' stacks and arming the probes in
    /// duty cycles (their counts extrapolated); `none` for no limit.
    #[arg(long, default_value = "3", value_name = "PERCENT|none")]
    overhead_budget: String,
    /// Context switches, for off-CPU time and offcpu.svg: `sampled` (every switch timed, the
    /// stack of up to --rate switch-outs per thread and second), `every` (the stack of every
    /// switch-out: exact, but each costs the target a stack copy) or `off`.
    #[arg(long, default_value = "sampled", value_parser = ["sampled", "every", "off"])]
    off_cpu: String,
    /// The command to launch and record (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

impl TargetArgs {
    fn into_options(self, stop: Arc<AtomicBool>) -> Result<RecordOptions> {
        let target = match (self.pid, self.command.is_empty()) {
            (Some(pid), true) => {
                seam_agent::check_target_pid(pid)?;
                TargetSpec::Pid(pid)
            }
            (None, false) => TargetSpec::Command(self.command),
            _ => bail!("say what to record: --pid PID, or -- COMMAND ARGS..."),
        };
        if self.rate.is_some_and(|r| !(1..=100_000).contains(&r)) {
            bail!("--rate must be between 1 and 100000 Hz");
        }
        let mut options = RecordOptions::new(target);
        if let Some(rate) = self.rate {
            options.frequency_hz = rate;
        }
        options.rate_follows_budget = self.rate.is_none();
        options.duration = match self.duration {
            Some(d) if d > 0.0 && d.is_finite() => Some(Duration::from_secs_f64(d)),
            Some(_) => bail!("--duration must be a positive number of seconds"),
            None => None,
        };
        options.stop = stop;
        options.off_cpu = match self.off_cpu.as_str() {
            "every" => OffCpuMode::Every,
            "off" => OffCpuMode::Off,
            _ => OffCpuMode::Sampled,
        };
        options.crossings = match self.crossings.as_str() {
            "sampled" => CrossingsMode::Sampled,
            "off" => CrossingsMode::Off,
            _ => CrossingsMode::Exact,
        };
        options.overhead_budget = match self.overhead_budget.as_str() {
            "none" => None,
            p => match p.trim_end_matches('%').parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Some(v / 100.0),
                _ => bail!("--overhead-budget takes a percentage between 0 and 100, or `none`"),
            },
        };
        Ok(options)
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() {
    let cli = Cli::parse();
    // The collector logs each connection and why it closed.
    let default_filter = match cli.command {
        Command::Collector(_) => "warn,seam_collector=info",
        _ => "warn",
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    // The dashboard owns the terminal: seam's log goes to a file.
    if let Command::Top(args) = &cli.command {
        match top_log(&args.output) {
            Ok(file) => {
                logger.target(env_logger::Target::Pipe(Box::new(file)));
            }
            Err(e) => {
                eprintln!("seam: {e:#}");
                std::process::exit(1);
            }
        }
    }
    logger.init();
    let result = match cli.command {
        Command::Record(args) => run_record(args),
        Command::Agent(args) => run_agent(args),
        Command::Collector(args) => run_collector(args),
        Command::Sessions(args) => run_sessions(args),
        Command::Export(args) => run_export(args),
        Command::Top(args) => run_top(args),
        Command::Diff(args) => run_diff(args),
    };
    if let Err(e) = result {
        // `seam export ... | head` closes the pipe early: not an error.
        let closed_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if !closed_pipe {
            eprintln!("seam: {e:#}");
            std::process::exit(1);
        }
    }
}

/// A stop flag that Ctrl-C sets.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    stop_on(&[libc::SIGINT])
}

/// For `seam record` and `seam agent`: SIGTERM and SIGHUP (a service
/// stopped, a terminal closed) end the recording as Ctrl-C does, so that what
/// was recorded is written or delivered and a launched command is ended.
fn stop_on_signals() -> Arc<AtomicBool> {
    stop_on(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
}

/// A flag set once one of `signals` arrives. A signal seam was started
/// ignoring (`nohup` ignores SIGHUP) stays ignored.
fn stop_on(signals: &[libc::c_int]) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for &sig in signals {
        // SAFETY: the handler only stores to an atomic; putting back SIG_IGN
        // has no preconditions.
        unsafe {
            let before = libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t);
            if before == libc::SIG_IGN {
                libc::signal(sig, libc::SIG_IGN);
            }
        }
    }
    let watcher_stop = stop.clone();
    std::thread::spawn(move || loop {
        if STOP.load(Ordering::Relaxed) {
            watcher_stop.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    stop
}

fn describe(target: &TargetSpec) -> String {
    match target {
        TargetSpec::Pid(pid) => format!("pid {pid}"),
        TargetSpec::Command(argv) => argv.join(" "),
    }
}

fn show_progress(p: &Progress) {
    eprint!(
        "\rseam: {:>4.0}s  {} samples  {} lost",
        p.elapsed.as_secs_f64(),
        p.samples,
        p.lost
    );
    let _ = std::io::stderr().flush();
}

fn report_ending(recording: &seam_agent::Recording) {
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
}

/// Measures what sampling will cost the target; lowers a rate the user did
/// not choose to one that fits the budget, or says so at start when sampling
/// alone exceeds it. The recording reuses the measurement.
fn check_sampling_budget(options: &mut RecordOptions) -> Result<()> {
    let sampling = seam_agent::measure_sampling(options)?;
    if let Some(rate) = seam_agent::rate_fitting_budget(options, sampling.ns_per_sample) {
        eprintln!(
            "seam: sampling at {rate} Hz rather than {}: a sample costs the target about {:.0} µs \
             here, and {rate} Hz is the most that fits {:.2}% of its CPU, sampling's part of the \
             {:.1}% overhead budget (--rate chooses the rate)",
            options.frequency_hz,
            sampling.ns_per_sample / 1e3,
            seam_agent::sampling_part(options).unwrap_or(0.0) * 100.0,
            sampling.budget.unwrap_or(0.0) * 100.0
        );
        options.frequency_hz = rate;
    } else if sampling.over_budget {
        eprintln!(
            "seam: warning: {}",
            seam_agent::over_budget_warning(&sampling, options.frequency_hz)
        );
    }
    options.ns_per_sample = Some(sampling.ns_per_sample);
    Ok(())
}

fn run_record(args: RecordArgs) -> Result<()> {
    let mut options = args.target.into_options(stop_on_signals())?;
    check_sampling_budget(&mut options)?;
    let out_dir = args.output;
    // Each format once, in the order first asked for.
    let mut formats = args.format;
    let mut seen = std::collections::HashSet::new();
    formats.retain(|f| seen.insert(*f));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    eprintln!(
        "seam: recording {} at {} Hz (Ctrl-C to stop)",
        describe(&options.target),
        options.frequency_hz
    );
    let recording = record(&options, show_progress)?;
    report_ending(&recording);

    let profile = &recording.profile;
    let summary = seam_export::summarize(profile, seam_export::DEFAULT_TOP_STACKS);
    let mut written = Vec::new();
    for &format in &formats {
        let path = out_dir.join(format.file_name());
        write_view(profile, &summary, format, Some(&path))?;
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

/// Writes one view of `profile` to `path`, or to standard output.
fn write_view(
    profile: &Profile,
    summary: &seam_export::Summary,
    format: Format,
    path: Option<&Path>,
) -> Result<()> {
    let mut w: Box<dyn Write> = match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    format
        .write(profile, summary, &mut w)
        .with_context(|| match path {
            Some(p) => format!("writing {}", p.display()),
            None => "writing to standard output".to_string(),
        })?;
    w.flush()?;
    Ok(())
}

fn run_agent(args: AgentArgs) -> Result<()> {
    let mut options = args.target.into_options(stop_on_signals())?;
    check_sampling_budget(&mut options)?;
    let mut stream = StreamOptions::new(&args.collector);
    if let Some(f) = &args.token_file {
        stream.token = seam_collector::read_token_file(f)?;
    }
    stream.give_up_after = match args.give_up_after {
        s if s >= 0.0 && s.is_finite() => Duration::from_secs_f64(s),
        _ => bail!("--give-up-after must be a number of seconds"),
    };
    eprintln!(
        "seam: recording {} at {} Hz, streaming to {} as session {} (Ctrl-C to stop)",
        describe(&options.target),
        options.frequency_hz,
        args.collector,
        stream.session
    );
    let (recording, report) = record_to_collector(&options, stream, show_progress)?;
    report_ending(&recording);
    eprintln!(
        "seam: streamed {} samples in {} batches to {}, session {} ({} reconnections)",
        recording.profile.samples(),
        report.batches,
        args.collector,
        report.session,
        report.reconnects
    );
    if report.undelivered_batches > 0 {
        bail!(
            "the collector did not acknowledge the last {} batches ({} samples): they are lost",
            report.undelivered_batches,
            report.undelivered_samples
        );
    }
    Ok(())
}

fn run_collector(args: CollectorArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(f) => Some(seam_collector::read_token_file(f)?),
        None => None,
    };
    let addrs: Vec<_> = args
        .listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {}: not a HOST:PORT", args.listen))?
        .collect();
    for addr in &addrs {
        seam_collector::check_listen(addr, token.as_deref())?;
    }
    let mut options = CollectorOptions::new(&args.data);
    options.token = token;
    let collector = Collector::new(options)?;
    report_damaged_sessions(&args.data)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the collector's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addrs[..])
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        eprintln!(
            "seam: collector listening on {}, storing sessions in {}",
            listener.local_addr()?,
            args.data.display()
        );
        collector.serve(listener).await;
        Ok(())
    })
}

/// Says which stored sessions end in a damaged tail (a crash while writing):
/// readers skip it, and the collector cuts it off when the agent comes back.
fn report_damaged_sessions(dir: &Path) -> Result<()> {
    for row in seam_collector::list_sessions(dir)? {
        match row {
            Ok(s) => {
                if let Some(d) = s.damage {
                    eprintln!("seam: session {}: damaged tail skipped ({d})", s.id);
                }
            }
            Err((path, e)) => eprintln!("seam: {}: unreadable: {e}", path.display()),
        }
    }
    Ok(())
}

fn run_sessions(args: SessionsArgs) -> Result<()> {
    if let Some(addr) = &args.collector {
        let token = match &args.token_file {
            Some(f) => seam_collector::read_token_file(f)?,
            None => String::new(),
        };
        let sessions = seam_collector::ViewerClient::connect(addr, &token)?.list()?;
        seam_collector::write_live_sessions_table(&sessions, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let data = args
        .data
        .as_deref()
        .expect("clap requires --data or --collector");
    let rows = seam_collector::list_sessions(data)?;
    seam_collector::write_sessions_table(&rows, &mut std::io::stdout().lock())?;
    Ok(())
}

fn top_log(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("seam.log");
    std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))
}

fn run_top(args: TopArgs) -> Result<()> {
    if let Some(addr) = &args.collector {
        return run_top_remote(addr, &args);
    }
    let mut options = args.target.into_options(stop_on_ctrl_c())?;
    let target_log = args.output.join("target.log");
    let launched = matches!(options.target, TargetSpec::Command(_));
    if launched {
        options.command_output = Some(target_log.clone());
    }
    let top = seam_tui::TopOptions::new(&args.output, options.stop.clone());
    let outcome = seam_tui::run_top(top, move |on_tick| {
        let recording =
            record_with_ticks(&options, |_| {}, &mut *on_tick).map_err(|e| e.to_string())?;
        // The final figures go through the same deltas as the ticks'.
        on_tick(&recording.profile);
        Ok(seam_tui::SourceEnd {
            target_exited: recording.target_exited,
            exit_status: recording.exit_status,
            warnings: recording.warnings,
        })
    })?;
    report_top(&outcome);
    if launched {
        match outcome.end.exit_status {
            Some(s) if outcome.end.target_exited => {
                eprintln!("seam: the target exited with status {s}")
            }
            _ => {}
        }
        eprintln!("seam: the command's output is in {}", target_log.display());
    }
    exit_on_signal(&outcome);
    Ok(())
}

/// What is left to say after the dashboard closes.
fn report_top(outcome: &seam_tui::TopOutcome) {
    // tmux 3.3 loses the first line written after the dashboard leaves the
    // alternate screen: let that be an empty one.
    eprintln!();
    for w in &outcome.end.warnings {
        eprintln!("seam: warning: {w}");
    }
    for path in &outcome.flamegraphs {
        eprintln!("seam: wrote {}", path.display());
    }
    eprintln!(
        "seam: {} samples over {:.1} s",
        outcome.profile.samples(),
        outcome.profile.duration_s
    );
}

/// A dashboard ended by SIGTERM or SIGHUP exits as the signal would have,
/// once the terminal is restored and the target taken care of.
fn exit_on_signal(outcome: &seam_tui::TopOutcome) {
    if let Some(sig) = outcome.signal {
        std::process::exit(128 + sig);
    }
}

/// `seam top --collector`: a session streamed to a collector, picked from
/// the live ones when no --session is given.
fn run_top_remote(addr: &str, args: &TopArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(f) => seam_collector::read_token_file(f)?,
        None => String::new(),
    };
    let stop = stop_on_ctrl_c();
    let mut client = seam_collector::ViewerClient::connect(addr, &token)?;
    let id = match &args.session {
        Some(id) => id.clone(),
        None => {
            let picked = seam_tui::pick_session(addr, || client.list().map_err(|e| e.to_string()))?;
            match picked {
                seam_tui::PickEnd::Session(id) => id,
                seam_tui::PickEnd::Quit => return Ok(()),
                seam_tui::PickEnd::Signal(sig) => std::process::exit(128 + sig),
            }
        }
    };
    let (client, session) = client.subscribe(&id)?;
    let top = seam_tui::TopOptions::new(&args.output, stop.clone());
    let welcome = format!(
        "session {} of {} through the collector at {addr}",
        session.id, session.host
    );
    let outcome = seam_tui::run_top_stream(top, move |emit| {
        emit(seam_tui::SourceEvent::Status(welcome));
        let end = client
            .follow_catching_up(&stop, |followed| match followed {
                seam_collector::Followed::Batch(b) => emit(seam_tui::SourceEvent::Delta(b.delta)),
                seam_collector::Followed::Notice(n) => emit(seam_tui::SourceEvent::Status(n)),
                seam_collector::Followed::Restart(why) => emit(seam_tui::SourceEvent::Restart(why)),
            })
            .map_err(|e| e.to_string())?;
        Ok(
            end.map_or_else(seam_tui::SourceEnd::default, |e| seam_tui::SourceEnd {
                target_exited: e.target_exited,
                exit_status: e.exit_status,
                warnings: e.warnings,
            }),
        )
    })?;
    report_top(&outcome);
    exit_on_signal(&outcome);
    Ok(())
}

fn run_export(args: ExportArgs) -> Result<()> {
    let path = seam_collector::find_session(&args.data, &args.session)?;
    let session = seam_collector::read_session(&path)?;
    if let Some(d) = &session.damage {
        eprintln!("seam: session {}: damaged tail skipped ({d})", session.id());
    }
    if session.end.is_none() {
        eprintln!(
            "seam: session {} has not ended (its agent is still streaming, or died): exporting what is stored",
            session.id()
        );
    }
    let summary = seam_export::summarize(&session.profile, seam_export::DEFAULT_TOP_STACKS);
    write_view(
        &session.profile,
        &summary,
        args.format,
        args.output.as_deref(),
    )
}

fn run_diff(args: DiffArgs) -> Result<()> {
    let before = diff_input(&args.before, args.data.as_deref())?;
    let after = diff_input(&args.after, args.data.as_deref())?;
    let mut options = seam_export::DiffOptions::default();
    options.normalize = !args.no_normalize;
    let path = &args.output;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let report = seam_export::write_diff_flamegraph(&before, &after, &options, &mut out)
        .with_context(|| format!("writing {}", path.display()))?;
    out.flush()?;
    match report.scale {
        Some(k) => eprintln!(
            "seam: {} has {} samples and {} has {}: {} normalised (×{k:.3}) to {}'s total",
            before.label,
            report.before_samples,
            after.label,
            report.after_samples,
            before.label,
            after.label
        ),
        None => eprintln!(
            "seam: {} samples before, {} after",
            report.before_samples, report.after_samples
        ),
    }
    eprintln!("seam: wrote {}", path.display());
    Ok(())
}

/// One side of `seam diff`: a `seam record` folder (its stacks.folded), a session file,
/// a folded-stacks file, or a session id in `--data`.
fn diff_input(arg: &str, data: Option<&Path>) -> Result<seam_export::DiffInput> {
    let path = Path::new(arg);
    let read_folded = |file: &Path| -> Result<seam_export::DiffInput> {
        let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        Ok(seam_export::DiffInput::from_folded(
            arg,
            std::io::BufReader::new(f),
        )?)
    };
    if path.is_dir() {
        let folded = path.join(Format::Folded.file_name());
        if !folded.is_file() {
            bail!(
                "{arg} holds no {}: record with a --format list that includes `folded` (the default does), or name a stacks.folded file or a session",
                Format::Folded.file_name()
            );
        }
        return read_folded(&folded);
    }
    if path.exists() {
        return match seam_collector::read_session(path) {
            Ok(session) => Ok(stored_session_input(arg, session)),
            Err(seam_collector::CollectorError::NotASession(_)) => read_folded(path),
            Err(e) => Err(e.into()),
        };
    }
    let Some(dir) = data else {
        bail!("{arg}: no such file or folder; to compare stored sessions by id, pass --data DIR");
    };
    let file = seam_collector::find_session(dir, arg)?;
    Ok(stored_session_input(
        arg,
        seam_collector::read_session(&file)?,
    ))
}

fn stored_session_input(
    label: &str,
    session: seam_collector::StoredSession,
) -> seam_export::DiffInput {
    if let Some(d) = &session.damage {
        eprintln!("seam: session {}: damaged tail skipped ({d})", session.id());
    }
    seam_export::DiffInput::from_profile(label, &session.profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats(args: &[&str]) -> Result<Vec<Format>> {
        let cli = Cli::try_parse_from(["seam", "record"].iter().chain(args).chain(&["--", "x"]))?;
        let Command::Record(args) = cli.command else {
            unreachable!("parsed a record command")
        };
        let mut formats = args.format;
        let mut seen = std::collections::HashSet::new();
        formats.retain(|f| seen.insert(*f));
        Ok(formats)
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
