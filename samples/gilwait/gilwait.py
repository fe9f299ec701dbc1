"""gilwait: Python threads waiting for the GIL after a ctypes call.

Caller threads (--threads N, default 2) loop until the deadline, each
calling the C function gilwait_work(work_ns, &t_end) in libgilwait.so through
ctypes.CDLL (python -> c, ctypes). ctypes releases the GIL around the call;
the C function spins --work-us microseconds (default 30) and stores the
CLOCK_MONOTONIC time it returns at into t_end. Meanwhile holder threads
(--holders N, default 1) run a pure-Python busy loop and hold the GIL. Right
after the call returns the caller takes time.monotonic_ns(): the difference
from t_end is how long it waited to get the GIL back (plus ctypes' few
hundred ns of return path).

The truth reports, per caller thread and in total, gil_wait_ns, calls and
wall_ns (the thread's own loop time), and gil_wait_share = total wait / sum
of the callers' wall time.

Run it through samples/run (which passes --lib): samples/run gilwait --seconds 2
"""

import ctypes
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402

NAME = "gilwait"
HOLDER_CHUNK = 2000  # pure-Python iterations between two deadline checks


class Caller:
    def __init__(self, index, lib, work_ns, start, stop):
        self.index = index
        self.lib = lib
        self.work_ns = work_ns
        self.start = start
        self.stop = stop
        self.deadline = None
        self.calls = 0
        self.gil_wait_ns = 0
        self.max_wait_ns = 0
        self.start_ns = None
        self.end_ns = None
        self.digest = 0
        self.thread = threading.Thread(target=self.run, name="gilwait-call-%d" % index,
                                       daemon=True)

    def run(self):
        self.start.wait()
        work, work_ns, stop, deadline = self.lib.gilwait_work, self.work_ns, self.stop, self.deadline
        mono = time.monotonic_ns
        t_end = ctypes.c_int64()
        p_end = ctypes.byref(t_end)
        calls = wait = max_wait = 0
        self.start_ns = mono()
        deadline_ns = self.start_ns + deadline
        while not stop.is_set():
            self.digest ^= work(work_ns, p_end)
            back = mono()
            calls += 1
            w = back - t_end.value
            wait += w
            if w > max_wait:
                max_wait = w
            if back >= deadline_ns:
                break
        self.end_ns = mono()
        self.calls, self.gil_wait_ns, self.max_wait_ns = calls, wait, max_wait


class Holder:
    def __init__(self, index, start, stop):
        self.index = index
        self.start = start
        self.stop = stop
        self.deadline = None
        self.iterations = 0
        self.digest = 0
        self.thread = threading.Thread(target=self.run, name="gilwait-hold-%d" % index,
                                       daemon=True)

    def run(self):
        self.start.wait()
        stop, mono = self.stop, time.monotonic_ns
        deadline_ns = mono() + self.deadline
        x = self.index + 1
        iterations = 0
        while not stop.is_set() and mono() < deadline_ns:
            for _ in range(HOLDER_CHUNK):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            iterations += HOLDER_CHUNK
        self.iterations = iterations
        self.digest = x


def main():
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    p = seam_sample.arg_parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2,
                   help="threads calling C through ctypes (default 2)")
    p.add_argument("--holders", type=int, default=1,
                   help="pure-Python threads holding the GIL (default 1)")
    p.add_argument("--work-us", type=float, default=30.0,
                   help="microseconds the C function spins per call (default 30)")
    args = p.parse_args()

    lib = ctypes.CDLL(args.lib)
    lib.gilwait_work.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_int64)]
    lib.gilwait_work.restype = ctypes.c_int64
    work_ns = max(0, int(args.work_us * 1000))

    start = threading.Event()
    callers = [Caller(i, lib, work_ns, start, stop) for i in range(max(1, args.threads))]
    holders = [Holder(i, start, stop) for i in range(max(0, args.holders))]
    for t in callers + holders:
        t.thread.start()

    seam_sample.print_ready()
    stop.sleep(args.start_delay)

    t0 = time.monotonic_ns()
    for t in callers + holders:
        t.deadline = int(args.seconds * 1e9)  # ns from each thread's own start
    start.set()
    for t in callers + holders:
        while t.thread.is_alive():
            t.thread.join(0.05)
    elapsed = (max(c.end_ns for c in callers) - t0) / 1e9

    calls = sum(c.calls for c in callers)
    wait = sum(c.gil_wait_ns for c in callers)
    wall = sum(c.end_ns - c.start_ns for c in callers)
    crossings = [seam_sample.crossing("python", "c", "ctypes", calls, {"gilwait_work": calls})]
    threads = [{"index": c.index, "calls": c.calls, "gil_wait_ns": c.gil_wait_ns,
                "max_wait_ns": c.max_wait_ns, "wall_ns": c.end_ns - c.start_ns,
                "start_ns": c.start_ns, "end_ns": c.end_ns,
                "gil_wait_share": round(c.gil_wait_ns / max(1, c.end_ns - c.start_ns), 6)}
               for c in callers]
    seam_sample.write_truth(
        args.truth, NAME, elapsed, crossings,
        threads=len(callers), holders=len(holders), work_us=args.work_us,
        switch_interval_s=sys.getswitchinterval(),
        calls=calls, gil_wait_ns=wait, wall_ns=wall,
        gil_wait_share=round(wait / max(1, wall), 6),
        holder_iterations=sum(h.iterations for h in holders),
        callers=threads, interrupted=stop.signal is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
