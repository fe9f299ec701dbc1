#!/usr/bin/env python3
"""Runs every built sample and checks its ready line and ground truth.

    python3 samples/selftest.py [--seconds 2] [--pythons 3.11,3.12,3.13]
                                [--variants go119,go119-stripped,gocur,gocur-stripped]
                                [--samples chain,gomain,gohttp]

For each run: the ready line must be the first stdout line and name the pid
of the process started (samples/run execs), the exit status must be 0, and
the truth JSON must hold the sample's invariants (exact counts that follow
from the fixed call pattern; no HTTP errors). gomain has no Python part and
runs once per Go variant. Standard library only; any python3 runs it.
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


CHECKS = {"chain": check_chain, "gomain": check_gomain, "gohttp": check_gohttp}


def run_one(sample, python, variant, seconds, tmpdir):
    truth_path = os.path.join(tmpdir, "%s-%s-%s.json" % (sample, python or "none", variant))
    if os.path.exists(truth_path):
        os.unlink(truth_path)
    cmd = [RUN, sample, "--go", "debian" if variant.startswith("go119") else "current"]
    if variant.endswith("-stripped"):
        cmd.append("--stripped")
    if python:
        cmd += ["--python", python]
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
        if not (0.9 * seconds <= truth.get("seconds", 0) <= seconds + 2):
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
    ap.add_argument("--samples", default="chain,gomain,gohttp")
    args = ap.parse_args()

    failures = 0
    total = 0
    with tempfile.TemporaryDirectory(prefix="seam-selftest-") as tmpdir:
        for sample in args.samples.split(","):
            pythons = [None] if sample == "gomain" else args.pythons.split(",")
            for python in pythons:
                for variant in args.variants.split(","):
                    total += 1
                    errs, summary = run_one(sample, python, variant, args.seconds, tmpdir)
                    label = "%-7s %-5s %-15s" % (sample, python or "-", variant)
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
