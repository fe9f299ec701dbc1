#!/usr/bin/env python3
"""Where seam's cost to `chain` comes from: seam's default against the same with the
off-CPU events off and the probes off, taking turns with unprofiled runs as
bench/bench.py does. Prints a Markdown table. As root, after bench/run.sh has run once:

    python3 bench/seam_overhead.py [--reps 3] [--seconds 8] [--rate 999]
"""

import argparse
import shutil
import statistics
import sys
import tempfile

import bench

VARIANTS = [
    ("unprofiled", None),
    ("seam record (defaults: --crossings exact --off-cpu sampled)", []),
    ("seam record --off-cpu off", ["--off-cpu", "off"]),
    ("seam record --crossings sampled --off-cpu off", ["--crossings", "sampled", "--off-cpu", "off"]),
]


def config(name, extra):
    if extra is None:
        return bench.Config("none", name, None)
    return bench.Config("seam", name, lambda pid, rate, d: [
        bench.SEAM, "record", "--pid", str(pid), "--rate", str(rate), "-o", f"{d}/seam"]
        + extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rate", type=int, default=999)
    args = ap.parse_args()
    cfgs = [config(n, e) for n, e in VARIANTS]
    runs = {c.config: [] for c in cfgs}
    tmp = tempfile.mkdtemp(prefix="seam-overhead-")
    for rep in range(args.reps):
        for i, c in enumerate(cfgs):
            d = f"{tmp}/{rep}-{i}"
            r = bench.run_one(c, "chain", args.rate, args.seconds, 1.5, d)
            runs[c.config].append(r)
            print(f"  {c.config}: {r.get('work_per_s', 0):.0f}/s, "
                  f"{r.get('work_per_cpu_s', 0):.0f}/CPU s, others "
                  f"{r['other_load_cores']:.1f} cores", file=sys.stderr, flush=True)
            shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    base = runs["unprofiled"]

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else float("nan")

    print(f"| `chain` at {args.rate} Hz, {args.reps} × {args.seconds:g} s | calls/s | "
          "slowdown % | calls per CPU s | slowdown per CPU s % | seam CPU % of a core | "
          "other load, cores |")
    print("|---|---|---|---|---|---|---|")
    for c in cfgs:
        rs = runs[c.config]
        slow = [100 * (1 - r["work_per_s"] / b["work_per_s"]) for r, b in zip(rs, base)]
        slow_cpu = [100 * (1 - r["work_per_cpu_s"] / b["work_per_cpu_s"])
                    for r, b in zip(rs, base)]
        cpu = [100 * r["profiler_cpu_s"] / r["profiler_wall_s"] for r in rs
               if "profiler_cpu_s" in r]
        print(f"| {c.config} | {med([r['work_per_s'] for r in rs]):.0f} | "
              + (f"{med(slow):.1f}" if c.tool != "none" else "—") + " | "
              f"{med([r['work_per_cpu_s'] for r in rs]):.0f} | "
              + (f"{med(slow_cpu):.1f}" if c.tool != "none" else "—") + " | "
              + (f"{med(cpu):.1f}" if cpu else "—") + " | "
              f"{med([r['other_load_cores'] for r in rs]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
