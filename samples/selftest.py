#!/usr/bin/env python3
"""Runs every built sample and checks its ready line and ground truth.

    python3 samples/selftest.py [--seconds 2] [--pythons 3.11,3.12,3.13]
                                [--variants go119,go119-stripped,gocur,gocur-stripped]
                                [--samples chain,gomain,gohttp,ffibench,gilwait,cgolong]
                                [--ffibench-calls 100000]

For each run: the ready line must be the first stdout line and name the pid
of the process started (samples/run execs), the exit status must be 0, and
the truth JSON must hold the sample's invariants (exact counts that follow
from the fixed call pattern; no HTTP errors; ffibench: every crossing count
equals the calls made, ns per crossing is positive; gilwait: the wait share
lies between 0 and 1; cgolong: calls were made, on GOMAXPROCS=1). gomain and
cgolong have no Python part and run once per Go variant; gilwait has no Go
part and runs once per Python. ffibench runs --calls N --repeat 5 without a
time cap (its --seconds is a cap, not a duration). Standard library only;
any python3 runs it.
Exit status: 0 when every run passes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "run")
READY = "seam-sample ready pid="

CHAIN_RUST_PER_CALL = 20   # chain/go/work.go chainRustCalls
GOMAIN_RUST_PER_CALL = 4   # gomain/main.go cRustCalls
GOHTTP_CONTROL_CALLS = 5   # 2 x GoHttpRegister, GoHttpStart, GoHttpLoadStart, GoHttpStop


def counts(truth):
    return {(c["caller"], c["callee"], c["mechanism"]): c["count"]
            for c in truth["crossings"]}


def check_chain(t):
    c = counts(t)
    n = c[("python", "go", "ctypes")]
    expect = {("python", "go", "ctypes"): n,
              ("go", "rust", "cgo-call"): CHAIN_RUST_PER_CALL * n,
              ("go", "c", "cgo-call"): n,
              ("c", "python", "callback"): n}
    errs = [] if n > 0 else ["no ChainWork calls"]
    if c != expect:
        errs.append("counts %s, expected %s" % (c, expect))
    # The workers' CPU time is part of the process's (a little slack: the
    # two clocks are read at slightly different moments).
    if not 0 < t.get("worker_cpu_s", 0) <= t.get("cpu_s", 0) * 1.02 + 0.01:
        errs.append("worker_cpu_s %s not within cpu_s %s" % (t.get("worker_cpu_s"), t.get("cpu_s")))
    return errs, "ChainWork=%d rust=%d" % (n, c.get(("go", "rust", "cgo-call"), -1))


def check_gomain(t):
    c = counts(t)
    n = c[("go", "c", "cgo-call")]
    expect = {("go", "c", "cgo-call"): n,
              ("c", "rust", "c-abi"): GOMAIN_RUST_PER_CALL * n,
              ("c", "go", "cgo-export"): n}
    errs = [] if n > 0 else ["no c_work calls"]
    if c != expect:
        errs.append("counts %s, expected %s" % (c, expect))
    return errs, "c_work=%d rust=%d" % (n, c.get(("c", "rust", "c-abi"), -1))


def check_gohttp(t):
    c = counts(t)
    n = c[("go", "c", "cgo-call")]
    expect = {("go", "c", "cgo-call"): n,
              ("c", "python", "callback"): n,
              ("python", "go", "cffi-abi"): n + GOHTTP_CONTROL_CALLS}
    errs = [] if n > 0 else ["no requests served"]
    if c != expect:
        errs.append("counts %s, expected %s" % (c, expect))
    if t.get("errors") != 0:
        errs.append("errors=%s" % t.get("errors"))
    if t.get("requests") != n or t.get("served") != n:
        errs.append("requests=%s served=%s trampolines=%d"
                    % (t.get("requests"), t.get("served"), n))
    if not t.get("shutdown_clean"):
        errs.append("server did not shut down cleanly")
    return errs, "requests=%d errors=%s" % (n, t.get("errors"))


FFIBENCH_MECHANISMS = {
    # name: (caller, callee, mechanism, function)
    "ctypes-c": ("python", "c", "ctypes", "ffib_noop"),
    "ctypes-rust": ("python", "rust", "ctypes", "seam_noop"),
    "cffi-abi": ("python", "c", "cffi-abi", "ffib_noop"),
    "cffi-api": ("python", "c", "cffi-api", "ffib_noop"),
    "cext": ("python", "c", "cext", "ffibext_noop"),
    "pyo3": ("python", "rust", "pyo3", "ffib_pyo3::noop"),
    "ctypes-go": ("python", "go", "ctypes", "FfibGoNoop"),
    "go-c": ("go", "c", "cgo-call", "ffib_c_noop"),
}
# Mechanisms with no glue: the eval loop calls a C extension's METH_O
# function through its pointer, as it calls the reference loop's builtin, so
# ns_per_crossing is noise around 0 there and only ns_per_call > 0 is required.
FFIBENCH_MAY_BEAT_BASELINE = {"cext"}


def check_ffibench(t):
    errs = []
    n, repeat = t["calls_per_repeat"], t["repeat"]
    calls = n * repeat
    if t.get("capped") or t.get("interrupted"):
        errs.append("capped=%s interrupted=%s" % (t.get("capped"), t.get("interrupted")))
    mechs = {m["name"]: m for m in t["mechanisms"]}
    if sorted(mechs) != sorted(FFIBENCH_MECHANISMS):
        errs.append("mechanisms %s" % sorted(mechs))
    expect = []
    for name, (caller, callee, mech, fn) in FFIBENCH_MECHANISMS.items():
        expect.append((caller, callee, mech, calls, ((fn, calls),)))
        m = mechs.get(name)
        if m is None:
            continue
        got = (m["caller"], m["callee"], m["mechanism"], m["function"])
        if got != (caller, callee, mech, fn):
            errs.append("%s: %s" % (name, got))
        if (m["calls"] != m["calls_per_repeat"] * repeat or m["repeats"] != repeat
                or len(m["loops"]) != repeat):
            errs.append("%s: calls=%s repeats=%s" % (name, m["calls"], m["repeats"]))
        if not m["ns_per_call"] or m["ns_per_call"] <= 0:
            errs.append("%s: ns_per_call=%s" % (name, m["ns_per_call"]))
        if name not in FFIBENCH_MAY_BEAT_BASELINE and not (m["ns_per_crossing"] or 0) > 0:
            errs.append("%s: ns_per_crossing=%s" % (name, m["ns_per_crossing"]))
        if not m["start_ns"] < m["end_ns"]:
            errs.append("%s: start_ns=%s end_ns=%s" % (name, m["start_ns"], m["end_ns"]))
    expect.append(("python", "go", "ctypes", 2 * repeat,
                   (("FfibGoBaseline", repeat), ("FfibGoCallC", repeat))))
    got = [(c["caller"], c["callee"], c["mechanism"], c["count"],
            tuple(sorted(c["functions"].items()))) for c in t["crossings"]]
    if sorted(got) != sorted(expect):
        errs.append("crossings %s, expected %s" % (sorted(got), sorted(expect)))
    # Loops in order, after every warm-up call.
    windows = sorted(w for m in t["mechanisms"] for w in m["loops"])
    if any(a[1] > b[0] for a, b in zip(windows, windows[1:])):
        errs.append("measured loops overlap")
    warm_end = max(w["end_ns"] for w in t["warmup_calls"])
    if windows and warm_end > windows[0][0]:
        errs.append("a warm-up call ends after the first measured loop starts")
    summary = " ".join("%s=%.0f" % (name, mechs[name]["ns_per_crossing"])
                       for name in FFIBENCH_MECHANISMS
                       if name in mechs and mechs[name]["ns_per_crossing"] is not None)
    return errs, summary


def check_gilwait(t):
    c = counts(t)
    n = t["calls"]
    errs = [] if n > 0 else ["no gilwait_work calls"]
    if c != {("python", "c", "ctypes"): n}:
        errs.append("counts %s, expected %d ctypes calls" % (c, n))
    if t["crossings"][0].get("functions") != {"gilwait_work": n}:
        errs.append("functions %s" % t["crossings"][0].get("functions"))
    if sum(x["calls"] for x in t["callers"]) != n or len(t["callers"]) != t["threads"]:
        errs.append("per-thread calls do not add up to %d" % n)
    if not 0 < t["gil_wait_share"] < 1:
        errs.append("gil_wait_share=%s" % t["gil_wait_share"])
    if not 0 < t["gil_wait_ns"] <= t["wall_ns"]:
        errs.append("gil_wait_ns=%s wall_ns=%s" % (t["gil_wait_ns"], t["wall_ns"]))
    return errs, "calls=%d share=%.2f" % (n, t["gil_wait_share"])


def check_cgolong(t):
    c = counts(t)
    n = t["calls"]
    errs = [] if n > 0 else ["no C calls"]
    if c != {("go", "c", "cgo-call"): n}:
        errs.append("counts %s, expected %d cgo calls" % (c, n))
    if t["gomaxprocs"] != 1:
        errs.append("gomaxprocs=%s" % t["gomaxprocs"])
    if t["compute_iterations"] <= 0:
        errs.append("compute goroutine made no progress")
    if t["threads"] <= 0 or t["voluntary_ctxt_switches"] + t["nonvoluntary_ctxt_switches"] <= 0:
        errs.append("threads=%s switches=%s+%s" % (t["threads"], t["voluntary_ctxt_switches"],
                                                   t["nonvoluntary_ctxt_switches"]))
    return errs, "calls=%d threads=%d cs=%d+%d" % (
        n, t["threads"], t["voluntary_ctxt_switches"], t["nonvoluntary_ctxt_switches"])


CHECKS = {"chain": check_chain, "gomain": check_gomain, "gohttp": check_gohttp,
          "ffibench": check_ffibench, "gilwait": check_gilwait, "cgolong": check_cgolong}
NO_PYTHON = {"gomain", "cgolong"}
NO_GO = {"gilwait"}


FFIBENCH_REPEAT = 5  # the median of 5 keeps a preempted loop from deciding


def run_one(sample, python, variant, seconds, tmpdir, ffibench_calls=100000):
    truth_path = os.path.join(tmpdir, "%s-%s-%s.json" % (sample, python or "none", variant))
    if os.path.exists(truth_path):
        os.unlink(truth_path)
    cmd = [RUN, sample]
    if variant:
        cmd += ["--go", "debian" if variant.startswith("go119") else "current"]
        if variant.endswith("-stripped"):
            cmd.append("--stripped")
    if python:
        cmd += ["--python", python]
    if sample == "ffibench":
        cmd += ["--calls", str(ffibench_calls), "--repeat", str(FFIBENCH_REPEAT),
                "--truth", truth_path]
    else:
        cmd += ["--seconds", str(seconds), "--truth", truth_path]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errs = []
    first = p.stdout.readline().rstrip("\n")
    if first != READY + str(p.pid):
        errs.append("first stdout line %r, expected %r" % (first, READY + str(p.pid)))
    try:
        rest, stderr = p.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        rest, stderr = p.communicate()
        errs.append("hung (killed)")
    wall = time.monotonic() - t0
    if p.returncode != 0:
        errs.append("exit status %s: %s" % (p.returncode, stderr.strip()[-500:]))
    summary = ""
    try:
        with open(truth_path) as f:
            truth = json.load(f)
    except (OSError, ValueError) as e:
        errs.append("truth: %s" % e)
        truth = None
    if truth is not None:
        if truth.get("sample") != sample:
            errs.append("truth sample=%r" % truth.get("sample"))
        if truth.get("variant") != variant:
            errs.append("truth variant=%r" % truth.get("variant"))
        if sample != "ffibench" and not (0.9 * seconds <= truth.get("seconds", 0) <= seconds + 2):
            errs.append("truth seconds=%s" % truth.get("seconds"))
        try:
            more, summary = CHECKS[sample](truth)
            errs += more
        except (KeyError, TypeError) as e:
            errs.append("truth malformed: %r" % e)
        summary += " seconds=%.2f" % truth.get("seconds", 0)
    return errs, "%s wall=%.1fs" % (summary, wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--pythons", default="3.11,3.12,3.13")
    ap.add_argument("--variants", default="go119,go119-stripped,gocur,gocur-stripped")
    ap.add_argument("--samples", default="chain,gomain,gohttp,ffibench,gilwait,cgolong")
    ap.add_argument("--ffibench-calls", type=int, default=100000,
                    help="ffibench --calls (per mechanism and repeat; default 100000)")
    args = ap.parse_args()

    failures = 0
    total = 0
    with tempfile.TemporaryDirectory(prefix="seam-selftest-") as tmpdir:
        for sample in args.samples.split(","):
            pythons = [None] if sample in NO_PYTHON else args.pythons.split(",")
            variants = [None] if sample in NO_GO else args.variants.split(",")
            for python in pythons:
                for variant in variants:
                    total += 1
                    errs, summary = run_one(sample, python, variant, args.seconds, tmpdir,
                                            args.ffibench_calls)
                    label = "%-8s %-5s %-15s" % (sample, python or "-", variant or "-")
                    if errs:
                        failures += 1
                        print("FAIL %s %s" % (label, summary))
                        for e in errs:
                            print("       " + e)
                    else:
                        print("ok   %s %s" % (label, summary))
                    sys.stdout.flush()
    print("%d/%d runs passed" % (total - failures, total))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
