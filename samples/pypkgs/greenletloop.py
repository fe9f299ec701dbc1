"""greenletloop: Python work in greenlets, switched to from the main greenlet.

Not a sample of ours but the general case seam meets: greenlet (under
gevent, eventlet and SQLAlchemy's asyncio bridge) runs each greenlet on its
own slice of the thread's C stack, started in greenlet's `g_initialstub`. A
thread's current Python frame chain then holds the running greenlet's
frames only, while the native stack below `g_initialstub` is the stack of
the greenlet that switched in, with eval loops of its own.

`--greenlets N` greenlets (default 4) each run `work_in_greenlet`: a little
pure Python, then a switch back to the main greenlet, which switches to the
next one. The truth is the switches into the greenlets.

Needs the package: pip install greenlet
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402


def work_in_greenlet(greenlet):
    total = 0
    while True:
        for i in range(200):
            total += i
        greenlet.getcurrent().parent.switch(total)


def main():
    p = argparse.ArgumentParser(prog="greenletloop", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--greenlets", type=int, default=4)
    p.add_argument("--truth", metavar="FILE")
    args = p.parse_args()
    greenlet = seam_sample.require("greenlet", "greenletloop")
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()
    workers = [greenlet.greenlet(work_in_greenlet) for _ in range(args.greenlets)]
    start = time.monotonic()
    switches = 0
    while time.monotonic() - start < args.seconds and not stop.is_set():
        for g in workers:
            g.switch(greenlet)
            switches += 1
    seam_sample.write_truth(
        args.truth,
        "greenletloop",
        time.monotonic() - start,
        [],
        switches=switches,
        greenlet=greenlet.__version__,
    )


if __name__ == "__main__":
    main()
