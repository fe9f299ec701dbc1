"""results.md from the measures of bench/bench.py: a table per measure, with ratios
against seam, the targets the README states, the machine and the exact commands."""

import os
import re

BENCH = os.path.dirname(os.path.abspath(__file__))

TARGETS = """\
- at 999 Hz, seam (`--crossings exact`, the default, with its 3% budget) slows `chain`
  by at most 3%;
- seam's own CPU at 999 Hz with 4 busy target threads (`chain`'s default): at most 15%
  of one core;
- complete stacks: seam at least 95%, and at least twice the best peer;
- time to flamegraph: at most a tenth of perf's pipeline."""


def fmt(v, digits=1):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def cell(r, digits=1):
    if r is None or r["median"] is None:
        return "—"
    if r["n"] == 1:
        return fmt(r["median"], digits)
    return f"{fmt(r['median'], digits)} [{fmt(r['min'], digits)}…{fmt(r['max'], digits)}]"


def find(measures, measure, tool, config):
    for m in measures:
        if m["measure"] == measure and m["tool"] == tool and m["config"] == config:
            return m
    return None


def ratio(a, b):
    if not a or not b or a["median"] is None or b["median"] is None or b["median"] == 0:
        return "—"
    return f"{a['median'] / b['median']:.2f}×"


def label(cfg):
    return f"{cfg.tool} {cfg.config}".strip()


def markdown(meta, measures, runs, cfgs):
    a = meta["args"]
    rates = [int(r) for r in str(a["rates"]).split(",")]
    top = max(rates)
    L = []
    w = L.append
    w("# seam against perf, py-spy and samply\n")
    w(f"Written by `bench/run.sh` on {meta['date']} ({meta['minutes']} min). "
      "Do not edit by hand: run it again.\n")
    w("## Machine\n")
    m = meta["machine"]
    w(f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}")
    loads = sorted(m["median"] for m in measures
                   if m["measure"] == "other_load" and m["median"] is not None)
    spread = (f" Other processes kept {loads[len(loads) // 2]:.1f} cores busy in the "
              f"median run (from {loads[0]:.1f} to {loads[-1]:.1f} across the settings' "
              "medians), on a machine of "
              f"{m['nproc']}." if loads else "")
    w(f"- load average (1, 5, 15 min) before: {meta['load_before']}; after: "
      f"{meta['load_after']}. The machine is shared with other engineers' builds and "
      "tests, so the load moved during the run; the tools take turns (A B C … A B C) so "
      "that it falls on all of them alike." + spread)
    v = meta["versions"]
    w("- " + ", ".join(f"{k} {v[k]}" for k in v if v[k]))
    w(f"- sizes: {a['reps']} repetitions × {a['seconds']:g} s of work per slowdown run at "
      f"{a['rates']} Hz; gomain {a['gomain_reps']} × {a['gomain_seconds']:g} s at {top} Hz; "
      f"time to flamegraph {a['ttf_reps']} × {a['ttf_seconds']:g} s at {a['ttf_rate']} Hz"
      + (" (**smoke run**: too small to read anything into)" if a.get("smoke") else ""))
    w("")
    w("Figures are medians, with [lowest…highest] over the repetitions. Ratios are "
      "the tool's median over seam's (`--crossings exact`, the default) in the same "
      "setting.\n")

    seam_exact = next((c for c in cfgs if c.tool == "seam" and "exact" in c.config), None)

    # --- slowdown
    w("## Target slowdown (`chain`, 4 Python threads on 2 cores)\n")
    w("The work rate is the sample's own count of `ChainWork` calls (Python → Go, each "
      "with 20 Go → Rust calls and a callback into Python) per second of its workers' "
      "time, from the truth JSON it writes at exit. The slowdown is 1 − rate under the "
      "profiler / rate unprofiled, each profiled run paired with the unprofiled run of "
      "the same round. On a loaded machine the wall-clock rate also moves with "
      "everything else that runs, so the table gives a second figure: calls per CPU "
      "second of the target (`wait4` on the sample), which leaves out the time the "
      "target waited for a CPU, and so also the CPU the profiler took from it and the "
      "time py-spy kept it stopped; it keeps what the profiler costs inside the target "
      "(the kernel's sampling and stack copies, uprobe hits). The last column is how "
      "many cores other processes kept busy during the runs (from /proc/stat, less the "
      "target and the profiler).\n")
    for rate in rates:
        w(f"### {rate} Hz\n")
        w("| tool | calls/s | slowdown % | calls per CPU s | slowdown per CPU s % "
          "| × seam (per CPU s) | other load, cores |")
        w("|---|---|---|---|---|---|---|")
        ref = find(measures, "slowdown_per_cpu", "seam",
                   f"{seam_exact.config} chain {rate} Hz") if seam_exact else None
        for cfg in cfgs:
            conf = f"{cfg.config} chain {rate} Hz".strip()
            rate_row = find(measures, "work_rate", cfg.tool, conf)
            slow = find(measures, "slowdown", cfg.tool, conf)
            per_cpu = find(measures, "work_per_cpu", cfg.tool, conf)
            slow_cpu = find(measures, "slowdown_per_cpu", cfg.tool, conf)
            load = find(measures, "other_load", cfg.tool, conf)
            rr = "—" if cfg.tool == "none" or not ref or abs(ref["median"] or 0) < 0.5 \
                else ratio(slow_cpu, ref)
            w(f"| {label(cfg)} | {cell(rate_row, 0)} | {cell(slow)} | "
              f"{cell(per_cpu, 0)} | {cell(slow_cpu)} | {rr} | {cell(load)} |")
        w("")

    # --- CPU
    w("## Profiler's own CPU\n")
    w("CPU time (user + system, from `wait4` on the profiler's process) over the "
      "profiler's wall time, from its start (attach) to its exit (the target's end, "
      "then writing its files). CPU spent in the target's context by the kernel on the "
      "profiler's behalf (sampling, stack copies, uprobe hits) is in the slowdown, "
      "not here.\n")
    per_rate_table(w, measures, cfgs, rates, seam_exact, "profiler_cpu",
                   [f"{r} Hz, % of a core" for r in rates], 1)

    # --- complete stacks
    w("## Complete stacks\n")
    w("From each tool's own output, by `bench/analyse.py` (its docstring has the rules). "
      "A stack counts as complete when:\n")
    w("1. it reaches the thread root: its outermost frame is `_start`, "
      "`__libc_start_main`, `__libc_start_call_main`, `start_thread`, `clone`/`clone3`, "
      "`runtime.goexit`, `runtime.mstart` or `runtime.rt0_go` (an unsymbolized libc "
      "address counts when libc's debug symbols from Debian's `libc6-dbg` name one of "
      "these). **py-spy** starts its stacks at the Python level, so for py-spy the "
      "thread's first Python frame (`Thread._bootstrap`, `<module>`), under nothing but "
      "libc and interpreter frames, counts as the root too;")
    w("2. it has no gap: no frame outside every mapping (perf's `[unknown] ([unknown])`, "
      "which is where a frame-pointer or DWARF walk went astray), no `[truncated]` "
      "marker, no eval-loop frame (`_PyEval_EvalFrameDefault`, `_PyEval_EvalFrame`) "
      "that is not followed by the Python frames it ran (perf and samply show the "
      "interpreter, not the Python functions; CPython 3.11 has no perf map by default);")
    w("3. it shows every runtime the code passed through, known from the sample's fixed "
      "call graph: in `chain`, a Rust frame requires the Python `Worker.run` frame and a "
      "Go `main.*` frame above it, in that order; the C helper `chain_invoke_cb` requires "
      "`Worker.run` and Go above it, and a Python frame of the callback requires "
      "`Worker.run`, Go, `chain_invoke_cb` and then the callback; any Go frame of the "
      "chain requires `Worker.run` above it; a stack of Python frames only that ends at "
      "the line that calls `ChainWork` (py-spy without `--native`) is counted as a thread "
      "in Go or Rust that the tool did not show (a little of that time is the bytecode "
      "around the call, which py-spy cannot tell apart); and the Python frame nearest "
      "above the Go frames must be `Worker.run`, ChainWork's only caller (other Python "
      "frames there were read at another moment and grafted on). In `gomain`, Rust requires "
      "`main.worker`, `main.callC`, `c_work`, `c_mix_step`; the Go callback requires "
      "`main.worker`, `main.callC`, `c_work`, `main.goCallback`; `c_work` requires "
      "`main.worker` and `main.callC`. Glue and kernel frames are not required.\n")
    w("A stack that fails one of these is not complete, whichever tool wrote it; a "
      "sample with no frames at all counts as incomplete. Threads that only run the Go "
      "runtime (sysmon, GC workers) count when they reach their root. The share is over "
      "the samples the tool itself reported (py-spy leaves idle threads out).\n")
    sets = [f"chain {r} Hz" for r in rates] + [f"gomain {top} Hz"]
    w("| tool | " + " | ".join(f"{s}, %" for s in sets) + " | "
      + " | ".join(f"× seam, {s.split()[0]}" for s in sets[-2:]) + " |")
    w("|---|" + "---|" * (len(sets) + 2))
    notes = []
    for cfg in cfgs:
        if cfg.tool == "none":
            continue
        cells, ratios = [], []
        for s in sets:
            r = find(measures, "complete_stacks", cfg.tool, f"{cfg.config} {s}".strip())
            cells.append(cell(r))
            if r and r.get("note"):
                notes.append(f"- {label(cfg)} on {s}: {r['note']}")
        for s in sets[-2:]:
            r = find(measures, "complete_stacks", cfg.tool, f"{cfg.config} {s}".strip())
            ref = find(measures, "complete_stacks", "seam", f"{seam_exact.config} {s}") \
                if seam_exact else None
            ratios.append(ratio(r, ref))
        w(f"| {label(cfg)} | " + " | ".join(cells + ratios) + " |")
    w("")
    if notes:
        w("\n".join(notes) + "\n")
    own = {}
    for r in runs:
        if r["tool"] == "seam" and r.get("seam_own_complete") is not None:
            own.setdefault((r["sample"], r["rate"], r["config"]), []).append(
                100 * r["seam_own_complete"])
    if own:
        w("seam's own figure, `complete_share` in its summary.json (median of the runs), "
          "for comparison: it counts a stack complete when it reaches a root with no "
          "`[truncated]` frame, so it does not apply rule 3 (the path), nor see "
          "eval-loop frames whose Python frames it could not read, nor Python frames "
          "grafted from another moment: "
          + ", ".join(f"{sample} {rate} Hz {config}: {sorted(v)[len(v) // 2]:.1f}%"
                      for (sample, rate, config), v in sorted(own.items())) + ".\n")

    # --- time to flamegraph
    w("## Time to flamegraph\n")
    w(f"From the moment the target exits (the end of a {a['ttf_seconds']:g} s recording of "
      f"`chain` at {a['ttf_rate']} Hz; the bench is the target's parent and reaps it) to "
      "the flamegraph on disk: for perf, `perf record` finishing its file, then "
      "`perf script | inferno-collapse-perf | inferno-flamegraph`; for the others, "
      "their own path.\n")
    w("| tool | what is on disk at the end | seconds | × seam | recording peak RSS MiB |"
      " recording CPU % of a core |")
    w("|---|---|---|---|---|---|")
    seam_ttf = None
    for cfg in cfgs:
        conf = f"{cfg.config} chain {a['ttf_rate']} Hz {a['ttf_seconds']:g} s".strip()
        if cfg.tool == "seam" and cfg is seam_exact:
            seam_ttf = find(measures, "time_to_flamegraph", cfg.tool, conf)
    for cfg in cfgs:
        conf = f"{cfg.config} chain {a['ttf_rate']} Hz {a['ttf_seconds']:g} s".strip()
        t = find(measures, "time_to_flamegraph", cfg.tool, conf)
        if not t:
            continue
        rss = find(measures, "peak_rss", cfg.tool, conf)
        cpu = find(measures, "profiler_cpu", cfg.tool, conf)
        what = t.get("note", "").replace("|", "\\|")
        w(f"| {label(cfg)} | {what} | {cell(t, 2)} | {ratio(t, seam_ttf)} | "
          f"{cell(rss, 0)} | {cell(cpu)} |")
    w("")
    pipes = [m for m in measures if m["measure"] in ("pipeline_cpu", "pipeline_peak_rss")]
    if pipes:
        w("perf's pipeline after the recording: " + "; ".join(
            f"{m['tool']} {m['config'].split(' chain')[0]}: {m['measure'].replace('_', ' ')} "
            f"{cell(m, 1)} {m['unit']}" for m in pipes) + ".\n")

    # --- memory
    w("## Peak RSS of the profiler\n")
    w("`ru_maxrss` of the recording process (perf record, py-spy, samply, seam). "
      "The 30 s figures are in the table above.\n")
    per_rate_table(w, measures, cfgs, rates, seam_exact, "peak_rss",
                   [f"chain {r} Hz, {a['seconds']:g} s, MiB" for r in rates], 0)

    # --- targets
    w("## Targets (as the README states them)\n")
    w(TARGETS + "\n")
    w("| target | measured | met? |")
    w("|---|---|---|")
    for line in targets(measures, cfgs, top, a, seam_exact):
        w(line)
    w("")

    # --- commands
    w("## Exact commands\n")
    w("```")
    w("bash samples/build.sh && cargo build --release")
    w("bench/run.sh          # installs the peers if missing, then runs bench/bench.py")
    w(f"# each run: samples/run SAMPLE --seconds S --start-delay {a['delay']:g} "
      "--truth DIR/truth.json; after its ready line:")
    seen = set()
    for r in runs:
        if "command" in r and (r["tool"], r["config"], r["kind"] == "ttf") not in seen:
            seen.add((r["tool"], r["config"], r["kind"] == "ttf"))
            cmd = r["command"].replace(str(r["rate"]), "RATE")
            cmd = " ".join("PID" if tok.isdigit() and len(tok) > 3 else tok
                           for tok in cmd.split())
            cmd = cmd.replace(os.path.dirname(BENCH) + "/", "")
            cmd = shorten(cmd)
            w(f"{cmd}" + ("      # time to flamegraph" if r["kind"] == "ttf" else ""))
            if r.get("flamegraph_command"):
                w(shorten(r["flamegraph_command"]))
    w("```\n")
    w("Complete stacks: `bench/analyse.py SAMPLE FORMAT FILE` on `perf script`'s text, "
      "py-spy's raw output, samply's profile and its `.syms.json`, seam's "
      "`stacks.folded`.\n")

    reading = os.path.join(BENCH, "reading.md")
    if os.path.exists(reading) and not a.get("smoke"):
        with open(reading) as f:
            w(f.read().rstrip() + "\n")
    return "\n".join(L)


def shorten(cmd):
    """A command as anyone can type it: the run's folder as DIR, the tools by name."""
    cmd = re.sub(r"\S*/(?:runs|seam-bench-[^/\s]*)/\d+", "DIR", cmd)
    return re.sub(r"/\S+/(perf|py-spy|samply|inferno-[a-z-]+)\b", r"\1", cmd)


def per_rate_table(w, measures, cfgs, rates, seam_exact, measure, headers, digits):
    """A row per profiler, a column per rate, and the ratio to seam at the top rate."""
    top = max(rates)
    w("| tool | " + " | ".join(headers) + " | × seam |")
    w("|---|" + "---|" * (len(rates) + 1))
    ref = find(measures, measure, "seam", f"{seam_exact.config} chain {top} Hz") \
        if seam_exact else None
    for cfg in cfgs:
        if cfg.tool == "none":
            continue
        cells = [find(measures, measure, cfg.tool, f"{cfg.config} chain {r} Hz".strip())
                 for r in rates]
        w(f"| {label(cfg)} | " + " | ".join(cell(c, digits) for c in cells)
          + f" | {ratio(cells[-1], ref)} |")
    w("")


def targets(measures, cfgs, top, a, seam_exact):
    out = []
    if not seam_exact:
        return out
    sc = seam_exact.config
    s = find(measures, "slowdown", "seam", f"{sc} chain {top} Hz")
    if s and s["median"] is not None:
        ok = s["median"] <= 3
        out.append(f"| slowdown at {top} Hz ≤ 3% (calls per second) | {cell(s)} % | "
                   + ("yes" if ok else f"**no**, by {s['median'] - 3:.1f} points") + " |")
    s = find(measures, "slowdown_per_cpu", "seam", f"{sc} chain {top} Hz")
    if s and s["median"] is not None:
        ok = s["median"] <= 3
        out.append(f"| … per CPU second of the target (less sensitive to the load) | "
                   f"{cell(s)} % | "
                   + ("yes" if ok else f"**no**, by {s['median'] - 3:.1f} points") + " |")
    c = find(measures, "profiler_cpu", "seam", f"{sc} chain {top} Hz")
    if c and c["median"] is not None:
        ok = c["median"] <= 15
        out.append(f"| own CPU at {top} Hz ≤ 15% of a core | {cell(c)} % | "
                   + ("yes" if ok else f"**no**, by {c['median'] - 15:.1f} points") + " |")
    for s_name in (f"chain {top} Hz", f"gomain {top} Hz"):
        mine = find(measures, "complete_stacks", "seam", f"{sc} {s_name}")
        peers = [m for m in measures if m["measure"] == "complete_stacks"
                 and m["tool"] not in ("seam", "none") and m["config"].endswith(s_name)
                 and m["median"] is not None]
        if not mine or mine["median"] is None:
            continue
        best = max(peers, key=lambda m: m["median"], default=None)
        ok95 = mine["median"] >= 95
        out.append(f"| complete stacks on {s_name} ≥ 95% | {cell(mine)} % | "
                   + ("yes" if ok95 else f"**no**, by {95 - mine['median']:.1f} points")
                   + " |")
        if best:
            x = mine["median"] / best["median"] if best["median"] else float("inf")
            out.append(f"| … and ≥ 2× the best peer ({best['tool']} {best['config']}: "
                       f"{fmt(best['median'])}%) | {x:.2f}× | "
                       + ("yes" if x >= 2 else f"**no**: {x:.2f}× instead of 2×") + " |")
    conf = f"chain {a['ttf_rate']} Hz {a['ttf_seconds']:g} s"
    t = find(measures, "time_to_flamegraph", "seam", f"{sc} {conf}")
    for pc in ("--call-graph fp", "--call-graph dwarf"):
        p = find(measures, "time_to_flamegraph", "perf", f"{pc} {conf}")
        if t and p and t["median"] is not None and p["median"]:
            x = t["median"] / p["median"]
            out.append(f"| time to flamegraph ≤ 1/10 of perf's ({pc}: {fmt(p['median'], 2)} s) "
                       f"| {fmt(t['median'], 2)} s = {x:.2f} of perf's | "
                       + ("yes" if x <= 0.1 else f"**no**: {x:.2f} instead of ≤ 0.10") + " |")
    return out
