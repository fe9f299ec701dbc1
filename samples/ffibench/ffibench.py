"""ffibench: the cost of one crossing, for each FFI mechanism.

For each mechanism, a tight loop calls an empty function across the boundary
`--calls N` times (`--calls-for NAME=N` sets one mechanism's N); a reference
loop of the same length makes the same call without crossing: it calls a
function of the caller's own runtime that does as little.
ns per crossing = (loop time - reference loop time) / N, measured `--repeat K`
times (reference loop, then the crossing loop, each repeat); the median is
reported. That is the glue's cost: what a call costs beyond the same call
staying in the caller's runtime (the interpreter's own CALL dispatch, or
Go's, is in both loops and cancels out), the empty callee's few
instructions included. Mechanisms (`name`: caller -> callee, mechanism, function):

  ctypes-c     python -> c,    ctypes    ffib_noop      (libffib.so, ctypes.CDLL)
  ctypes-rust  python -> rust, ctypes    seam_noop      (libseam_mix.so, ctypes.CDLL)
  cffi-abi     python -> c,    cffi-abi  ffib_noop      (ffi.dlopen of libffib.so)
  cffi-api     python -> c,    cffi-api  ffib_noop      (_ffib_cffi, compiled; via _cffi_f_ffib_noop)
  cext         python -> c,    cext      ffibext_noop   (_ffib_ext, METH_O)
  pyo3         python -> rust, pyo3      ffib_pyo3::noop (ffib_pyo3.abi3.so)
  ctypes-go    python -> go,   ctypes    FfibGoNoop     (libffibgo.so, Go c-shared)
  go-c         go -> c,        cgo-call  ffib_c_noop    (loop inside Go: FfibGoCallC)

The Python mechanisms' reference loop calls the interpreter's builtin
`callable(x)` (METH_O, like `cext`; the eval loop calls it straight through
its C pointer, with no glue in between, and it returns at once). go-c's loops
run inside Go (FfibGoCallC over C.ffib_c_noop, FfibGoBaseline over a
//go:noinline Go function), each entered by one ctypes call (python -> go,
counted separately) and timed by Go; Python stamps the CLOCK_MONOTONIC
window around each.

Every library and module is loaded, and every mechanism called once (warm-up,
not counted in `crossings` but listed in `warmup_calls`), before the ready
line. `--seconds S` is a cap: no new repeat starts after S seconds of work
(default: no cap; the default run takes a few seconds); mechanisms left
without a repeat report calls 0 and null timings. SIGINT/SIGTERM stop the
run after the loop in progress (the counts stay exact).

Run it through samples/run (which passes --lib, the Go library of the chosen
variant): samples/run ffibench --go current --truth /tmp/ffib.json
"""

import ctypes
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import seam_sample  # noqa: E402

NAME = "ffibench"
BUILD = os.path.normpath(os.path.join(HERE, "..", "build"))
PYDIR = "py%d.%d" % sys.version_info[:2]

# name -> (caller, callee, mechanism, function)
MECHANISMS = {
    "ctypes-c": ("python", "c", "ctypes", "ffib_noop"),
    "ctypes-rust": ("python", "rust", "ctypes", "seam_noop"),
    "cffi-abi": ("python", "c", "cffi-abi", "ffib_noop"),
    "cffi-api": ("python", "c", "cffi-api", "ffib_noop"),
    "cext": ("python", "c", "cext", "ffibext_noop"),
    "pyo3": ("python", "rust", "pyo3", "ffib_pyo3::noop"),
    "ctypes-go": ("python", "go", "ctypes", "FfibGoNoop"),
    "go-c": ("go", "c", "cgo-call", "ffib_c_noop"),
}


def missing(path):
    sys.stderr.write("ffibench: %s is missing: run samples/build.sh first\n" % path)
    sys.exit(2)


def need(path):
    if not os.path.exists(path):
        missing(path)
    return path


def need_cffi():
    try:
        import cffi
    except ImportError:
        sys.stderr.write(
            "ffibench: this Python has no cffi; install it with\n"
            "  %s -m pip install cffi\n" % sys.executable)
        sys.exit(3)
    return cffi


def import_from(directory, module):
    """Imports `module` from the build directory `directory` (only there)."""
    import importlib
    need(directory)
    sys.path.insert(0, directory)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        sys.stderr.write("ffibench: cannot import %s from %s (%s): run samples/build.sh first\n"
                         % (module, directory, e))
        sys.exit(2)
    finally:
        sys.path.remove(directory)


# The reference callee of the Python mechanisms: a builtin of the interpreter
# (METH_O, called by the eval loop through its C pointer) that returns at once.
REFERENCE = callable


def py_loop(f, n):
    """The measured loop of every Python mechanism (and of the reference)."""
    mono = time.monotonic_ns
    t0 = mono()
    for i in range(n):
        f(i)
    t1 = mono()
    return t0, t1


# --------------------------------------------------------------- mechanisms
class PyMechanism:
    """A Python -> native mechanism: Python loops over `fn`."""

    def __init__(self, name, fn):
        self.name = name
        self.fn = fn

    def warmup(self):
        self.fn(0)
        return [self.name]

    def measure(self, n):
        b0, b1 = py_loop(REFERENCE, n)
        t0, t1 = py_loop(self.fn, n)
        return {"loop_ns": t1 - t0, "baseline_ns": b1 - b0,
                "start_ns": t0, "end_ns": t1}


class GoCMechanism:
    """go-c: Go loops over C.ffib_c_noop (and over a Go function)."""

    name = "go-c"

    def __init__(self, golib):
        self.golib = golib
        self.out = ctypes.c_int64()
        self.entries = {"FfibGoCallC": 0, "FfibGoBaseline": 0}

    def warmup(self):
        self.golib.FfibGoBaseline(1, ctypes.byref(self.out))
        self.golib.FfibGoCallC(1, ctypes.byref(self.out))
        return ["go-c:FfibGoBaseline", "go-c:FfibGoCallC"]

    def measure(self, n):
        mono, out, lib = time.monotonic_ns, self.out, self.golib
        lib.FfibGoBaseline(n, ctypes.byref(out))
        self.entries["FfibGoBaseline"] += 1
        baseline = out.value
        t0 = mono()
        lib.FfibGoCallC(n, ctypes.byref(out))
        t1 = mono()
        self.entries["FfibGoCallC"] += 1
        return {"loop_ns": out.value, "baseline_ns": baseline,
                "start_ns": t0, "end_ns": t1}


def load(names, golib_path, cet=False):
    """Loads what the chosen mechanisms need; returns {name: mechanism}.
    `cet`: cffi-api from the module built with -fcf-protection=full."""
    lib_dir = os.path.join(BUILD, "lib")
    py_dir = os.path.join(BUILD, "ffibench", PYDIR)
    mechs = {}
    libffib = None
    golib = None
    if {"ctypes-c", "cffi-abi", "cffi-api"} & set(names):
        need(os.path.join(lib_dir, "libffib.so"))
    if "ctypes-go" in names or "go-c" in names:
        golib = ctypes.CDLL(need(golib_path))
        golib.FfibGoNoop.argtypes = [ctypes.c_int64]
        golib.FfibGoNoop.restype = ctypes.c_int64
        for f in (golib.FfibGoCallC, golib.FfibGoBaseline):
            f.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_int64)]
            f.restype = ctypes.c_int64
    for name in names:
        if name == "ctypes-c":
            libffib = ctypes.CDLL(os.path.join(lib_dir, "libffib.so"))
            libffib.ffib_noop.argtypes = [ctypes.c_int64]
            libffib.ffib_noop.restype = ctypes.c_int64
            mechs[name] = PyMechanism(name, libffib.ffib_noop)
        elif name == "ctypes-rust":
            mix = ctypes.CDLL(need(os.path.join(lib_dir, "libseam_mix.so")))
            mix.seam_noop.argtypes = [ctypes.c_int64]
            mix.seam_noop.restype = ctypes.c_int64
            mechs[name] = PyMechanism(name, mix.seam_noop)
        elif name == "cffi-abi":
            cffi = need_cffi()
            ffi = cffi.FFI()
            ffi.cdef("int64_t ffib_noop(int64_t x);")
            lib = ffi.dlopen(os.path.join(lib_dir, "libffib.so"))
            mechs[name] = PyMechanism(name, lib.ffib_noop)
        elif name == "cffi-api":
            need_cffi()  # the compiled module imports _cffi_backend
            mod = import_from(os.path.join(py_dir, "cet") if cet else py_dir, "_ffib_cffi")
            mechs[name] = PyMechanism(name, mod.lib.ffib_noop)
        elif name == "cext":
            mod = import_from(py_dir, "_ffib_ext")
            mechs[name] = PyMechanism(name, mod.noop)
        elif name == "pyo3":
            # `samples/run ffibench --stripped`: the module as wheels ship
            # it, with no symbol table.
            stripped = os.environ.get("SEAM_SAMPLE_VARIANT", "").endswith("-stripped")
            pyo3_dir = "pyo3-stripped" if stripped else "pyo3"
            mod = import_from(os.path.join(BUILD, "ffibench", pyo3_dir), "ffib_pyo3")
            mechs[name] = PyMechanism(name, mod.noop)
        elif name == "ctypes-go":
            mechs[name] = PyMechanism(name, golib.FfibGoNoop)
        elif name == "go-c":
            mechs[name] = GoCMechanism(golib)
    return mechs


# ------------------------------------------------------------------- report
def summarize(name, n, runs):
    caller, callee, mechanism, function = MECHANISMS[name]
    d = {"name": name, "caller": caller, "callee": callee,
         "mechanism": mechanism, "function": function,
         "calls": n * len(runs), "calls_per_repeat": n, "repeats": len(runs)}
    if runs:
        d["ns_per_crossing"] = round(statistics.median(
            (r["loop_ns"] - r["baseline_ns"]) / n for r in runs), 2)
        d["ns_per_call"] = round(statistics.median(r["loop_ns"] / n for r in runs), 2)
        d["baseline_ns"] = round(statistics.median(r["baseline_ns"] / n for r in runs), 2)
        d["start_ns"] = runs[0]["start_ns"]
        d["end_ns"] = runs[-1]["end_ns"]
        d["loops"] = [[r["start_ns"], r["end_ns"]] for r in runs]
        d["ns_per_call_each"] = [round(r["loop_ns"] / n, 2) for r in runs]
        d["baseline_ns_each"] = [round(r["baseline_ns"] / n, 2) for r in runs]
    else:
        d.update(ns_per_crossing=None, ns_per_call=None, baseline_ns=None,
                 start_ns=None, end_ns=None, loops=[])
    return d


def main():
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    p = seam_sample.arg_parser(
        NAME, __doc__.splitlines()[0], seconds_default=None,
        seconds_help="a cap: no new repeat starts after S seconds of work (default: no cap)")
    p.add_argument("--mechanisms", default=",".join(MECHANISMS),
                   help="comma-separated subset of: %s (default all)" % ", ".join(MECHANISMS))
    p.add_argument("--calls", type=int, default=200000,
                   help="calls per mechanism and repeat (default 200000)")
    p.add_argument("--calls-for", action="append", default=[], metavar="NAME=N",
                   help="calls per repeat of one mechanism (overrides --calls; repeatable; "
                   "ignored for a mechanism not in --mechanisms)")
    p.add_argument("--repeat", type=int, default=3,
                   help="measurements per mechanism; the median is reported (default 3)")
    p.add_argument("--cet", action="store_true",
                   help="cffi-api through the module built with -fcf-protection=full, whose "
                   "functions start with endbr64 (as Ubuntu's and Fedora's compilers build them)")
    args = p.parse_args()
    names = [m.strip() for m in args.mechanisms.split(",") if m.strip()]
    unknown = [m for m in names if m not in MECHANISMS]
    if unknown or not names or len(set(names)) != len(names):
        p.error("--mechanisms: unknown or repeated name in %r (known: %s)"
                % (args.mechanisms, ", ".join(MECHANISMS)))
    n = max(1, args.calls)
    calls = {name: n for name in names}
    for spec in args.calls_for:
        name, _, count = spec.partition("=")
        if name not in MECHANISMS or not count.isdigit():
            p.error("--calls-for: %r is not NAME=N with NAME one of %s"
                    % (spec, ", ".join(MECHANISMS)))
        if name in calls:  # a mechanism not chosen is left out
            calls[name] = max(1, int(count))
    repeat = max(1, args.repeat)

    mechs = load(names, args.lib, cet=args.cet)

    # Warm-up: one call of each entry point (the first Go call starts the Go
    # runtime's work on this thread); before the ready line, not counted.
    warmup = []
    for name in names:
        caller, callee, mechanism, function = MECHANISMS[name]
        t0 = time.monotonic_ns()
        labels = mechs[name].warmup()
        t1 = time.monotonic_ns()
        for label in labels:
            if label == "go-c:FfibGoBaseline":
                w = ("python", "go", "ctypes", "FfibGoBaseline", 0)
            elif label == "go-c:FfibGoCallC":
                w = ("python", "go", "ctypes", "FfibGoCallC", 1)
            else:
                w = (caller, callee, mechanism, function, 0)
            warmup.append({"name": name, "caller": w[0], "callee": w[1],
                           "mechanism": w[2], "function": w[3], "count": 1,
                           "start_ns": t0, "end_ns": t1})
            if w[4]:  # FfibGoCallC(1) also made one go -> c call
                warmup.append({"name": name, "caller": "go", "callee": "c",
                               "mechanism": "cgo-call", "function": "ffib_c_noop",
                               "count": 1, "start_ns": t0, "end_ns": t1})

    seam_sample.print_ready()
    stop.sleep(args.start_delay)

    t_start = time.monotonic()
    deadline = None if args.seconds is None else t_start + args.seconds
    capped = False
    runs = {name: [] for name in names}
    for name in names:
        for _ in range(repeat):
            if stop.is_set():
                break
            if deadline is not None and time.monotonic() >= deadline:
                capped = True
                break
            runs[name].append(mechs[name].measure(calls[name]))
    elapsed = time.monotonic() - t_start

    summaries = [summarize(name, calls[name], runs[name]) for name in names]
    crossings = []
    for s in summaries:
        crossings.append(seam_sample.crossing(s["caller"], s["callee"], s["mechanism"],
                                              s["calls"], {s["function"]: s["calls"]}))
        if s["name"] == "go-c":
            entries = mechs["go-c"].entries
            crossings.append(seam_sample.crossing("python", "go", "ctypes",
                                                  sum(entries.values()), entries))
    seam_sample.write_truth(args.truth, NAME, elapsed, crossings,
                            mechanisms=summaries, warmup_calls=warmup,
                            calls_per_repeat=n, repeat=repeat,
                            reference={"python": "callable(x)", "go": "goNoop(x)"},
                            seconds_cap=args.seconds, capped=capped,
                            interrupted=stop.signal is not None)

    # Human-readable table on stdout (after the ready line).
    print("%-12s %-14s %-9s %10s %10s %10s %8s" % (
        "name", "caller->callee", "mechanism", "ns/cross", "ns/call", "ref ns", "calls"))
    for s in summaries:
        fmt = lambda v: "-" if v is None else "%.1f" % v  # noqa: E731
        print("%-12s %-14s %-9s %10s %10s %10s %8d" % (
            s["name"], s["caller"] + "->" + s["callee"], s["mechanism"],
            fmt(s["ns_per_crossing"]), fmt(s["ns_per_call"]), fmt(s["baseline_ns"]),
            s["calls"]))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
