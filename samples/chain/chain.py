"""chain: Python -> Go -> Rust, with a callback Go -> C -> Python.

Each worker thread loops until the deadline:
  1. pure-Python work: stage() -> tokenize() -> score() -> weigh()
  2. ChainWork(seed, callback) in the Go c-shared library, through
     ctypes.CDLL (python -> go, ctypes). Inside, Go calls the Rust cdylib 20
     times through cgo (go -> rust, cgo-call) and calls the C helper
     chain_invoke_cb once (go -> c, cgo-call), which calls the Python callback
     through its function pointer (c -> python, callback).

Run it through samples/run (which passes --lib): samples/run chain --seconds 2
"""

import ctypes
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402

NAME = "chain"

# Python work per iteration (tokenize/score): about 150 us on the dev VM;
# the callback adds about 100 us.
TOKENS = 240
CALLBACK_TOKENS = 160


# ---------------------------------------------------------------- Python work
def tokenize(seed, n):
    """Makes `n` pseudo-random tokens from `seed`."""
    out = []
    x = seed & 0xFFFFFFFF
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(x % 1000)
    return out


def weigh(tok, i):
    return (tok * tok + i * 7) % 1009


def score(tokens):
    total = 0
    for i, tok in enumerate(tokens):
        total += weigh(tok, i)
        if tok % 3 == 0:
            total ^= i
    return total


def stage(seed):
    tokens = tokenize(seed, TOKENS)
    return score(tokens) + score(tokens[::-1])


def refine(x):
    """The work of the callback Go makes into Python."""
    tokens = tokenize(x, CALLBACK_TOKENS)
    return score(tokens) & 0xFFFF


# -------------------------------------------------------------------- driver
def load_library(path):
    lib = ctypes.CDLL(path)  # also loads libseam_mix.so (DT_NEEDED + RUNPATH)
    lib.ChainWork.argtypes = [ctypes.c_int64, CALLBACK]
    lib.ChainWork.restype = ctypes.c_int64
    return lib


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)


class Worker:
    def __init__(self, index, lib, start, stop, callbacks):
        self.index = index
        self.lib = lib
        self.start = start
        self.stop = stop
        self.callbacks = callbacks  # c -> python, counted per calling thread
        self.deadline = None
        self.finished = None        # time.monotonic() when this worker stopped
        self.cpu_s = 0.0            # this thread's CPU time over its loop
        self.calls = 0              # python -> go (ChainWork), this thread only
        self.digest = 0
        # Keep the ctypes callback object alive as long as the worker.
        self.c_callback = CALLBACK(self.callback)
        self.thread = threading.Thread(target=self.run, name="chain-%d" % index,
                                       daemon=True)

    def callback(self, x):
        self.callbacks.mine()["callback"] += 1
        return refine(x)

    def run(self):
        self.start.wait()
        lib, cb, stop, deadline = self.lib, self.c_callback, self.stop, self.deadline
        seed = self.index * 7919 + 1
        cpu0 = time.thread_time()
        while not stop.is_set() and time.monotonic() < deadline:
            seed = stage(seed) + seed * 31 + 1
            self.digest ^= lib.ChainWork(seed & 0x7FFFFFFF, cb)
            self.calls += 1
        self.cpu_s = time.thread_time() - cpu0
        self.finished = time.monotonic()


def main():
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    p = seam_sample.arg_parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=4,
                   help="worker threads (default 4)")
    p.add_argument("--start-at", type=float, metavar="MONOTONIC_S",
                   help="start working at this time.monotonic() (CLOCK_MONOTONIC, "
                        "seconds), after --start-delay: for two runs side by side")
    args = p.parse_args()

    lib = load_library(args.lib)
    rust_calls = ctypes.c_uint64.in_dll(lib, "seam_chain_rust_calls")
    helper_calls = ctypes.c_uint64.in_dll(lib, "seam_chain_helper_calls")

    start = threading.Event()
    callbacks = seam_sample.PerThreadCounters(["callback"])
    workers = [Worker(i, lib, start, stop, callbacks)
               for i in range(max(1, args.threads))]
    for w in workers:
        w.thread.start()

    seam_sample.print_ready()
    stop.sleep(args.start_delay)
    if args.start_at is not None:
        stop.sleep(args.start_at - time.monotonic())

    t0 = time.monotonic()
    cpu0 = time.process_time()
    for w in workers:
        w.deadline = t0 + args.seconds
    start.set()
    # Join in short slices so that signal handlers run (they only run on
    # this thread). The main thread may get the GIL back late, so elapsed is
    # taken from the workers' own end times.
    for w in workers:
        while w.thread.is_alive():
            w.thread.join(0.05)
    elapsed = max(w.finished for w in workers) - t0
    # The CPU time of the whole process (every thread, Go's too) over the
    # work, so that a profiler's cost can be read per CPU second as well.
    cpu_s = time.process_time() - cpu0

    calls = sum(w.calls for w in workers)
    crossings = [
        seam_sample.crossing("python", "go", "ctypes", calls, {"ChainWork": calls}),
        seam_sample.crossing("go", "rust", "cgo-call", rust_calls.value,
                             {"seam_mix_work": rust_calls.value}),
        seam_sample.crossing("go", "c", "cgo-call", helper_calls.value,
                             {"chain_invoke_cb": helper_calls.value}),
        seam_sample.crossing("c", "python", "callback", callbacks.total("callback")),
    ]
    seam_sample.write_truth(args.truth, NAME, elapsed, crossings,
                            threads=len(workers), cpu_s=round(cpu_s, 6),
                            worker_cpu_s=round(sum(w.cpu_s for w in workers), 6),
                            started_at=round(t0, 6),
                            interrupted=stop.signal is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
