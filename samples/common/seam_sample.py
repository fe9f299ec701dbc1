"""Shared plumbing of the Python seam samples.

Every sample:
  * prints ``seam-sample ready pid=<PID>`` (flushed) once its libraries are
    loaded and it is about to start working;
  * accepts ``--seconds S`` (default 5), ``--start-delay S`` (default 0) and
    ``--truth FILE``;
  * writes the ground truth JSON to FILE at exit:
    ``{"sample": NAME, "seconds": S, "crossings": [{"caller", "callee",
    "mechanism", "count"}, ...], ...}``.

SIGINT and SIGTERM stop the work early (the truth is still written); a second
signal exits at once.
"""

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time

READY_FORMAT = "seam-sample ready pid={pid}"


class Stop:
    """A stop flag set by SIGINT/SIGTERM (or by the sample itself)."""

    def __init__(self):
        self.event = threading.Event()
        self.signal = None

    def is_set(self):
        return self.event.is_set()

    def set(self):
        self.event.set()

    def sleep(self, seconds):
        """Sleeps up to `seconds`; returns early (True) when stopped.

        Waits in short slices: a signal may be delivered to a thread other
        than the main thread (Go threads, worker threads), and Python only
        runs its handler when the main thread next looks at the eval loop.
        """
        end = time.monotonic() + max(0.0, seconds)
        while not self.event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.event.wait(min(left, 0.05))
        return True


def install_signal_handlers(stop):
    def handler(signum, _frame):
        if stop.is_set():
            # Second signal: give up on a clean exit.
            os._exit(128 + signum)
        stop.signal = signum
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def arg_parser(name, description, seconds_default=5.0,
               seconds_help="how long to work (default 5)"):
    p = argparse.ArgumentParser(prog=name, description=description)
    p.add_argument("--seconds", type=float, default=seconds_default,
                   help=seconds_help)
    p.add_argument("--start-delay", type=float, default=0.0,
                   help="seconds to wait after the ready line before working")
    p.add_argument("--truth", metavar="FILE",
                   help="write the ground truth JSON here at exit")
    p.add_argument("--lib", required=True,
                   help="path of the Go c-shared library (samples/run passes it)")
    return p


def loop_arg_parser(name, description):
    """The options of a loop over a package's calls: --seconds, --warmup,
    --start-delay and --truth (see `warm_then_measure`)."""
    p = argparse.ArgumentParser(prog=name, description=description)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.0)
    p.add_argument("--start-delay", type=float, default=0.0)
    p.add_argument("--truth", metavar="FILE")
    return p


def repeat_for(stop, seconds, batch, per_batch):
    """Calls `batch` until `seconds` have passed or `stop` is set; returns
    the calls made, `per_batch` a batch."""
    start = time.monotonic()
    calls = 0
    while time.monotonic() - start < seconds and not stop.is_set():
        batch()
        calls += per_batch
    return calls


class Measured:
    """What `warm_then_measure` counted: `warmup` and `count` calls, the
    measured phase's `seconds`, and its `start_ns` and `end_ns`
    (CLOCK_MONOTONIC)."""

    def __init__(self, warmup, count, seconds, start_ns, end_ns):
        self.warmup = warmup
        self.count = count
        self.seconds = seconds
        self.start_ns = start_ns
        self.end_ns = end_ns


def warm_then_measure(args, stop, work_for):
    """Runs `work_for(seconds)` (which returns the calls it made) for
    `--warmup` seconds, so that a profiler can see the calls and probe them,
    waits `--start-delay`, then runs it for `--seconds`, timed."""
    warmup = work_for(args.warmup) if args.warmup > 0 else 0
    stop.sleep(args.start_delay)
    start = time.monotonic()
    start_ns = time.monotonic_ns()
    count = work_for(args.seconds)
    return Measured(warmup, count, time.monotonic() - start, start_ns, time.monotonic_ns())


def require(module, sample, pip_name=None):
    """Imports `module`, or exits with status 2 saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        sys.stderr.write("%s: %s: pip install %s\n" % (sample, e, pip_name or module))
        sys.exit(2)


def print_ready():
    sys.stdout.write(READY_FORMAT.format(pid=os.getpid()) + "\n")
    sys.stdout.flush()


def crossing(caller, callee, mechanism, count, functions=None):
    c = {"caller": caller, "callee": callee, "mechanism": mechanism,
         "count": int(count)}
    if functions is not None:
        c["functions"] = {k: int(v) for k, v in functions.items()}
    return c


def write_truth(path, sample, seconds, crossings, **extra):
    if not path:
        return
    doc = {"sample": sample, "seconds": round(float(seconds), 6),
           "crossings": crossings}
    doc.update(extra)
    doc.setdefault("pid", os.getpid())
    doc.setdefault("python", "%d.%d.%d" % sys.version_info[:3])
    variant = os.environ.get("SEAM_SAMPLE_VARIANT")
    if variant:
        doc.setdefault("variant", variant)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


class PerThreadCounters:
    """Plain per-thread ints, summed at the end.

    Each thread increments only its own dict (created on first use, under the
    GIL), so no increment is ever lost; works on threads Python did not create
    (Go threads running cffi/ctypes callbacks) too.
    """

    def __init__(self, names):
        self.names = tuple(names)
        self.by_thread = {}

    def mine(self):
        tid = threading.get_ident()
        d = self.by_thread.get(tid)
        if d is None:
            d = dict.fromkeys(self.names, 0)
            self.by_thread[tid] = d
        return d

    def total(self, name):
        return sum(d[name] for d in list(self.by_thread.values()))

    def threads(self):
        return len(self.by_thread)
