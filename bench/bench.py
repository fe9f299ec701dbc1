#!/usr/bin/env python3
"""seam against perf, py-spy and samply on the same work. Run it through bench/run.sh.

Every profiler attaches by pid to a sample that is already running and waiting
(`--start-delay`), so each one sees the same steady work, and the tools take turns
(A B C ... A B C ...), so that a change of load on the machine falls on all of them.
Writes OUT/results.json and OUT/results.md; the raw files of each run stay in OUT/runs/
with --keep-runs; otherwise they are in a temporary folder, deleted as soon as read.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import analyse  # noqa: E402

SEAM = os.environ.get("SEAM_BIN") or os.path.join(REPO, "target", "release", "seam")
SAMPLES_RUN = os.path.join(REPO, "samples", "run")


def which(name):
    """A tool's real path (pyenv's shims re-exec through bash, which would add to its cost)."""
    path = shutil.which(name)
    if path and "/shims/" in path:
        try:
            real = subprocess.run(["pyenv", "which", name], capture_output=True, text=True,
                                  check=True).stdout.strip()
            path = real or path
        except (OSError, subprocess.CalledProcessError):
            pass
    return path


# ------------------------------------------------------------------ the tools
class Config:
    """One way to run one profiler: `record(pid, rate, out)` gives its command line,
    `fmt`/`output` name what the complete-stack analyser reads, `flamegraph` how the
    tool gets from its recording to a flamegraph on disk."""

    def __init__(self, tool, config, record, fmt=None, output=None, flamegraph=None,
                 ttf_record=None, ttf_what=""):
        self.tool, self.config = tool, config
        self.record, self.fmt, self.output = record, fmt, output
        self.flamegraph = flamegraph          # commands run after the recording, or None
        self.ttf_record = ttf_record or record
        self.ttf_what = ttf_what

    @property
    def key(self):
        return f"{self.tool} {self.config}".strip()


def configs(tools):
    perf, pyspy, samply = tools.get("perf"), tools.get("py-spy"), tools.get("samply")
    out = [Config("none", "unprofiled", None)]
    if perf:
        collapse, flame = tools["inferno-collapse-perf"], tools["inferno-flamegraph"]
        for cg in ("fp", "dwarf"):
            rec = (lambda cg: lambda pid, rate, d: [
                perf, "record", "-q", "-F", str(rate), "--call-graph", cg, "-p", str(pid),
                "-o", f"{d}/perf.data"])(cg)
            fg = (lambda d: [f"{shlex.quote(perf)} script -i {d}/perf.data 2>/dev/null"
                             f" | {shlex.quote(collapse)} | {shlex.quote(flame)} > {d}/perf.svg"])
            out.append(Config("perf", f"--call-graph {cg}", rec, "perf-script",
                              "perf.script", fg if collapse and flame else None,
                              ttf_what="perf script | inferno-collapse-perf | inferno-flamegraph"))
    if pyspy:
        for native in (False, True):
            extra = ["--native"] if native else []
            rec = (lambda extra: lambda pid, rate, d: [
                pyspy, "record", "-r", str(rate), "-f", "raw", "-o", f"{d}/pyspy.txt",
                "-p", str(pid)] + extra)(extra)
            ttf = (lambda extra: lambda pid, rate, d: [
                pyspy, "record", "-r", str(rate), "-o", f"{d}/pyspy.svg", "-p", str(pid)]
                + extra)(extra)
            out.append(Config("py-spy", "--native" if native else "", rec, "pyspy-raw",
                              "pyspy.txt", ttf_record=ttf,
                              ttf_what="py-spy writes the SVG when the target exits"))
    if samply:
        rec = lambda pid, rate, d: [  # noqa: E731
            samply, "record", "-r", str(rate), "--save-only", "--unstable-presymbolicate",
            "-o", f"{d}/profile.json.gz", "-p", str(pid)]
        out.append(Config("samply", "", rec, "samply", "profile.json.gz",
                          ttf_what="profile.json.gz and its .syms.json sidecar on disk "
                                   "(samply has no SVG: its flame graph is the Firefox "
                                   "Profiler's, loaded from this file)"))
    for mode in ("sampled", "exact"):
        rec = (lambda mode: lambda pid, rate, d: [
            SEAM, "record", "--pid", str(pid), "--rate", str(rate), "--crossings", mode,
            "-o", f"{d}/seam"])(mode)
        out.append(Config("seam", f"--crossings {mode}", rec, "seam-folded",
                          "seam/stacks.folded",
                          ttf_what="seam writes flamegraph.svg (and its other default "
                                   "views) when the target exits"))
    return out


# ------------------------------------------------------------------ one run
def wait_rusage(pid, deadline_s, label):
    """Waits for a child; SIGINT after `deadline_s`, SIGKILL 10 s later. (status, rusage)."""
    t0 = time.monotonic()
    sent = None
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return status, ru
        now = time.monotonic()
        if sent is None and now - t0 > deadline_s:
            print(f"  {label}: still running {deadline_s:.0f} s after the target, SIGINT",
                  file=sys.stderr)
            os.kill(pid, signal.SIGINT)
            sent = now
        elif sent is not None and now - sent > 10:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def run_one(cfg, sample, rate, seconds, delay, d, ttf=False, extra_sample_args=()):
    """Runs `sample` for `seconds` of work under `cfg` (attached once it is ready).
    Returns a dict of figures; the profiler's files are left in `d`."""
    os.makedirs(d, exist_ok=True)
    truth = f"{d}/truth.json"
    busy0 = busy_seconds()
    target = subprocess.Popen(
        [SAMPLES_RUN, sample, "--seconds", str(seconds), "--start-delay", str(delay),
         "--truth", truth, *extra_sample_args],
        stdout=subprocess.PIPE, stderr=open(f"{d}/target.err", "w"), text=True)
    line = target.stdout.readline()
    m = re.match(r"seam-sample ready pid=(\d+)", line)
    if not m:
        target.kill()
        raise RuntimeError(f"{sample} gave no ready line: {line!r}")
    pid = int(m.group(1))
    res = {"tool": cfg.tool, "config": cfg.config, "sample": sample, "rate": rate}
    prof = None
    t_start = time.monotonic()
    if cfg.record:
        cmd = (cfg.ttf_record if ttf else cfg.record)(pid, rate, d)
        res["command"] = " ".join(shlex.quote(c) for c in cmd)
        prof = subprocess.Popen(cmd, stdout=open(f"{d}/profiler.out", "w"),
                                stderr=open(f"{d}/profiler.err", "w"),
                                stdin=subprocess.DEVNULL)
    # Drain the sample's stdout so it never blocks.
    target.stdout.read()
    _, status, ru_target = os.wait4(target.pid, 0)
    target.returncode = os.waitstatus_to_exitcode(status)
    t_exit = time.monotonic()
    res["target_cpu_s"] = ru_target.ru_utime + ru_target.ru_stime
    if prof is not None:
        status, ru = wait_rusage(prof.pid, 120 + 2 * seconds, cfg.key)
        prof.returncode = os.waitstatus_to_exitcode(status)
        t_prof = time.monotonic()
        res["profiler_status"] = prof.returncode
        res["profiler_cpu_s"] = ru.ru_utime + ru.ru_stime
        res["profiler_wall_s"] = t_prof - t_start
        res["profiler_maxrss_kb"] = ru.ru_maxrss
        if ttf:
            t_done = t_prof
            if cfg.flamegraph:
                cmds = cfg.flamegraph(d)
                res["flamegraph_command"] = " && ".join(cmds)
                p = subprocess.Popen(["bash", "-o", "pipefail", "-c", " && ".join(cmds)])
                status, ru2 = wait_rusage(p.pid, 900, "flamegraph pipeline")
                t_done = time.monotonic()
                res["pipeline_status"] = os.waitstatus_to_exitcode(status)
                res["pipeline_cpu_s"] = ru2.ru_utime + ru2.ru_stime
                res["pipeline_maxrss_kb"] = ru2.ru_maxrss
            res["time_to_flamegraph_s"] = t_done - t_exit
    # What the rest of the machine (the other engineers' builds and tests) used meanwhile,
    # in cores: all busy CPU time less the target's and the profiler's.
    wall = time.monotonic() - t_start
    others = busy_seconds() - busy0 - res["target_cpu_s"] - res.get("profiler_cpu_s", 0) \
        - res.get("pipeline_cpu_s", 0)
    res["other_load_cores"] = max(0.0, others / wall)
    try:
        with open(truth) as f:
            t = json.load(f)
        work = next(c["count"] for c in t["crossings"]
                    if c["caller"] in ("python", "go") and c["callee"] in ("go", "c")
                    and c["mechanism"] == ("ctypes" if sample == "chain" else "cgo-call"))
        res["work_per_s"] = work / t["seconds"]
        res["work_per_cpu_s"] = work / res["target_cpu_s"]
    except (OSError, ValueError, StopIteration, KeyError) as e:
        res["error"] = f"no truth from the sample: {e}"
    return res


def busy_seconds():
    """CPU seconds spent busy on all CPUs since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def complete_share(cfg, sample, d):
    if not cfg.fmt:
        return None
    path = f"{d}/{cfg.output}"
    if cfg.fmt == "perf-script":
        data = f"{d}/perf.data"
        if not os.path.exists(data):
            return None
        with open(path, "w") as out:
            subprocess.run([TOOLS["perf"], "script", "-i", data], stdout=out,
                           stderr=subprocess.DEVNULL)
    if not os.path.exists(path):
        return None
    return analyse.analyse(sample, cfg.fmt, path)


def seam_own(res, cfg, d):
    """seam's own complete-stack share and losses, from its summary.json."""
    if cfg.tool != "seam":
        return
    try:
        with open(f"{d}/seam/summary.json") as f:
            s = json.load(f)
        res["seam_own_complete"] = s.get("complete_share")
        res["seam_lost"] = s.get("lost")
        res["seam_samples"] = s.get("samples")
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------------ statistics
def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def row(measure, tool, config, values, unit, note=None):
    med, lo, hi = stats(values)
    r = {"measure": measure, "tool": tool, "config": config, "median": med, "min": lo,
         "max": hi, "unit": unit, "n": len([v for v in values if v is not None])}
    if note:
        r["note"] = note
    return r


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1)}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# ------------------------------------------------------------------ main
TOOLS = {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=BENCH, help="where results.json/results.md go")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the slowdown runs")
    ap.add_argument("--seconds", type=float, default=8, help="work seconds per slowdown run")
    ap.add_argument("--rates", default="99,999", help="sampling rates, Hz")
    ap.add_argument("--delay", type=float, default=1.5,
                    help="seconds the sample waits after its ready line, for the "
                         "profiler to attach")
    ap.add_argument("--gomain-reps", type=int, default=2)
    ap.add_argument("--gomain-seconds", type=float, default=5)
    ap.add_argument("--ttf-reps", type=int, default=2)
    ap.add_argument("--ttf-seconds", type=float, default=30)
    ap.add_argument("--ttf-rate", type=int, default=999)
    ap.add_argument("--keep-runs", action="store_true", help="keep OUT/runs/")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes: 1 repetition, 1 s runs, 999 Hz only")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: write results.md (and results.json) again from "
                         "the runs of an earlier results.json")
    args = ap.parse_args()
    if args.from_json:
        return rewrite(args)
    if args.smoke:
        args.reps, args.seconds, args.rates, args.delay = 1, 1, "999", 0.5
        args.gomain_reps, args.gomain_seconds = 1, 1
        args.ttf_reps, args.ttf_seconds = 1, 1

    for name in ("perf", "py-spy", "samply", "inferno-collapse-perf", "inferno-flamegraph"):
        TOOLS[name] = which(name)
    if not (TOOLS["inferno-collapse-perf"] and TOOLS["inferno-flamegraph"]):
        print("bench: inferno is not installed: perf's time to flamegraph is not measured",
              file=sys.stderr)
    for name in ("perf", "py-spy", "samply"):
        if not TOOLS[name]:
            print(f"bench: {name} is not installed: SKIPPED (bench/run.sh installs it)",
                  file=sys.stderr)
    cfgs = configs(TOOLS)
    rates = [int(r) for r in args.rates.split(",")]
    os.makedirs(args.out, exist_ok=True)
    if args.keep_runs:
        runs_dir = os.path.join(args.out, "runs")
        shutil.rmtree(runs_dir, ignore_errors=True)
        os.makedirs(runs_dir)
    else:
        runs_dir = tempfile.mkdtemp(prefix="seam-bench-")
    results = []
    started = time.time()
    load_before = loadavg()

    def log(res, extra=""):
        fig = res.get("work_per_s")
        print(f"  {res['sample']:6} {res['rate']:4} Hz {res['tool']:7} {res['config']:22}"
              f" work/s {fig if fig is None else round(fig, 1)}"
              + (f" cpu {res['profiler_cpu_s']:.2f}s/{res['profiler_wall_s']:.1f}s"
                 f" rss {res['profiler_maxrss_kb'] // 1024} MB" if "profiler_cpu_s" in res
                 else "") + extra, file=sys.stderr, flush=True)

    n = 0

    def measure(cfg, kind, rep, sample, rate, seconds):
        nonlocal n
        n += 1
        d = f"{runs_dir}/{n:03d}"
        res = run_one(cfg, sample, rate, seconds, args.delay, d, ttf=kind == "ttf")
        res.update(rep=rep, kind=kind)
        if kind == "ttf":
            log(res, f" ttf {res.get('time_to_flamegraph_s', float('nan')):.2f}s")
        else:
            res["complete"] = complete_share(cfg, sample, d)
            seam_own(res, cfg, d)
            if res.get("profiler_status"):
                with open(f"{d}/profiler.err", errors="replace") as f:
                    res["profiler_error"] = f.read().strip()[:2000]
            c = res["complete"]
            log(res, (f" complete {c['share']:.3f}" if c else "")
                + f" others {res.get('other_load_cores', 0):.1f} cores")
        results.append(res)
        if not args.keep_runs:
            shutil.rmtree(d, ignore_errors=True)

    # 1. slowdown, CPU, RSS and complete stacks on chain; the tools take turns.
    for rep in range(args.reps):
        for rate in rates:
            for cfg in cfgs:
                measure(cfg, "slowdown", rep, "chain", rate, args.seconds)
    # 2. complete stacks on gomain (py-spy cannot attach: gomain has no Python).
    for rep in range(args.gomain_reps):
        for cfg in cfgs:
            if cfg.tool != "none":
                measure(cfg, "gomain", rep, "gomain", max(rates), args.gomain_seconds)
    # 3. time from the end of the recording to a flamegraph on disk (perf's needs
    # inferno; seam's sampled mode writes its files the same way as the exact one).
    for rep in range(args.ttf_reps):
        timed = set()
        for cfg in cfgs:
            if cfg.tool == "none" or cfg.key == "seam --crossings sampled":
                continue
            if cfg.tool == "perf" and not cfg.flamegraph:
                continue
            if args.smoke and cfg.tool in timed:
                continue    # the smoke run times one configuration of each tool
            timed.add(cfg.tool)
            measure(cfg, "ttf", rep, "chain", args.ttf_rate, args.ttf_seconds)
    if not args.keep_runs:
        shutil.rmtree(runs_dir, ignore_errors=True)

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "machine": machine(), "load_before": load_before, "load_after": loadavg(),
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "versions": {
            "seam": version([SEAM, "--version"]),
            "perf": version([TOOLS["perf"], "--version"]) if TOOLS["perf"] else None,
            "py-spy": version([TOOLS["py-spy"], "--version"]) if TOOLS["py-spy"] else None,
            "samply": version([TOOLS["samply"], "--version"]) if TOOLS["samply"] else None,
            "inferno": version(["bash", "-c", "cargo install --list | grep '^inferno '"])
            if TOOLS["inferno-flamegraph"] else None,
            "python": version([sys.executable, "--version"]),
        },
    }
    write(args.out, meta, results, cfgs, rates, args)
    return 0


def write(out, meta, results, cfgs, rates, args):
    import report
    os.makedirs(out, exist_ok=True)
    measures = summarize(results, cfgs, rates, args)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "measures": measures, "runs": results}, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(report.markdown(meta, measures, results, cfgs))
    print(f"bench: wrote {out}/results.json and results.md ({meta['minutes']} min)",
          file=sys.stderr)


def rewrite(args):
    """results.md and the measures again from the runs of an earlier results.json."""
    with open(args.from_json) as f:
        old = json.load(f)
    meta, results = old["meta"], old["runs"]
    for k, v in meta["args"].items():
        setattr(args, k, v)
    present = {(r["tool"], r["config"]) for r in results}
    tools = {name: name for name in ("perf", "py-spy", "samply", "inferno-collapse-perf",
                                     "inferno-flamegraph")}
    cfgs = [c for c in configs(tools) if (c.tool, c.config) in present]
    rates = [int(r) for r in str(args.rates).split(",")]
    write(args.out, meta, results, cfgs, rates, args)
    return 0


def summarize(results, cfgs, rates, args):
    out = []
    for rate in rates:
        base = {key: {r["rep"]: r.get(key) for r in results
                      if r["kind"] == "slowdown" and r["rate"] == rate and r["tool"] == "none"}
                for key in ("work_per_s", "work_per_cpu_s")}
        for cfg in cfgs:
            runs = [r for r in results if r["kind"] == "slowdown" and r["rate"] == rate
                    and r["tool"] == cfg.tool and r["config"] == cfg.config]
            label = f"{cfg.config} chain {rate} Hz".strip()
            out.append(row("work_rate", cfg.tool, label, [r.get("work_per_s") for r in runs],
                           "ChainWork calls/s"))
            out.append(row("work_per_cpu", cfg.tool, label,
                           [r.get("work_per_cpu_s") for r in runs],
                           "ChainWork calls per CPU second of the target"))
            out.append(row("other_load", cfg.tool, label,
                           [r.get("other_load_cores") for r in runs],
                           "cores busy with other processes during the run"))
            if cfg.tool == "none":
                continue
            for measure, key in (("slowdown", "work_per_s"),
                                 ("slowdown_per_cpu", "work_per_cpu_s")):
                slow = []
                for r in runs:
                    b, w = base[key].get(r["rep"]), r.get(key)
                    slow.append(100 * (1 - w / b) if b and w else None)
                out.append(row(measure, cfg.tool, label, slow, "%"))
            out.append(row("profiler_cpu", cfg.tool, label,
                           [100 * r["profiler_cpu_s"] / r["profiler_wall_s"] for r in runs
                            if r.get("profiler_wall_s")], "% of one core"))
            out.append(row("peak_rss", cfg.tool, label,
                           [r["profiler_maxrss_kb"] / 1024 for r in runs
                            if "profiler_maxrss_kb" in r], "MiB"))
            out.append(row("complete_stacks", cfg.tool, label,
                           [100 * r["complete"]["share"] for r in runs
                            if r.get("complete") and r["complete"]["samples"]], "%"))
    for cfg in cfgs:
        if cfg.tool == "none":
            continue
        runs = [r for r in results if r["kind"] == "gomain" and r["tool"] == cfg.tool
                and r["config"] == cfg.config]
        if not runs:
            continue
        vals = [100 * r["complete"]["share"] for r in runs
                if r.get("complete") and r["complete"]["samples"]]
        note = None
        if not vals and runs:
            err = (runs[0].get("profiler_error") or "no output").splitlines()
            note = next((e for e in err if e.startswith("Error")), err[0])[:200]
        out.append(row("complete_stacks", cfg.tool,
                       f"{cfg.config} gomain {max(rates)} Hz".strip(), vals, "%", note))
    for cfg in cfgs:
        runs = [r for r in results if r["kind"] == "ttf" and r["tool"] == cfg.tool
                and r["config"] == cfg.config]
        if not runs:
            continue
        label = f"{cfg.config} chain {args.ttf_rate} Hz {args.ttf_seconds:g} s".strip()
        out.append(row("time_to_flamegraph", cfg.tool, label,
                       [r.get("time_to_flamegraph_s") for r in runs], "s", cfg.ttf_what))
        out.append(row("peak_rss", cfg.tool, label,
                       [r["profiler_maxrss_kb"] / 1024 for r in runs
                        if "profiler_maxrss_kb" in r], "MiB"))
        out.append(row("profiler_cpu", cfg.tool, label,
                       [100 * r["profiler_cpu_s"] / r["profiler_wall_s"] for r in runs
                        if r.get("profiler_wall_s")], "% of one core"))
        if any("pipeline_cpu_s" in r for r in runs):
            out.append(row("pipeline_cpu", cfg.tool, label,
                           [r.get("pipeline_cpu_s") for r in runs], "s",
                           "CPU of perf script + inferno after the recording"))
            out.append(row("pipeline_peak_rss", cfg.tool, label,
                           [r["pipeline_maxrss_kb"] / 1024 for r in runs
                            if "pipeline_maxrss_kb" in r], "MiB"))
    return out


if __name__ == "__main__":
    sys.exit(main())
