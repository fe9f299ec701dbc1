"""rpdsloop: a PyO3 class's methods called in a loop (rpds-py's HashTrieMap).

Not a sample of ours but the general case seam meets: rpds-py is a Rust
extension built with PyO3, whose macros generate a trampoline per method in
the crate itself (`rpds::<impl pyo3::impl_::pyclass::PyMethods<..> for
..>::py_methods::ITEMS::trampoline`), not in PyO3's `trampoline` module: the
first frame below the interpreter is then the crate's, yet it is PyO3's glue.

Each round makes an empty map, then inserts 1,000 keys, each insert making a
new map and letting the previous one go, which PyO3's `tp_dealloc` releases:
2,002 calls into Rust a round (the new map, the inserts, the releases of the
empty map, of the maps replaced and of the round's last). A profiler can count a method's calls only once it has seen
the method called (its trampoline has no name of its own): `--warmup S`
inserts for S seconds first, then `--start-delay S` waits, and the truth
counts the calls after that (with `start_ns`, on CLOCK_MONOTONIC), and the
warm-up's apart.

Needs the package: pip install rpds-py
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402


def main():
    p = argparse.ArgumentParser(prog="rpdsloop", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.0)
    p.add_argument("--start-delay", type=float, default=0.0)
    p.add_argument("--truth", metavar="FILE")
    args = p.parse_args()
    rpds = seam_sample.require("rpds", "rpdsloop", "rpds-py")
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()

    def insert_for(seconds):
        start = time.monotonic()
        inserts = 0
        while time.monotonic() - start < seconds and not stop.is_set():
            m = rpds.HashTrieMap()
            for i in range(1000):
                m = m.insert(i, i)
            # The round's last map, released here.
            del m
            inserts += 1000
        return inserts

    warmup = insert_for(args.warmup) if args.warmup > 0 else 0
    stop.sleep(args.start_delay)
    start = time.monotonic()
    start_ns = time.monotonic_ns()
    inserts = insert_for(args.seconds)
    seam_sample.write_truth(
        args.truth,
        "rpdsloop",
        time.monotonic() - start,
        [seam_sample.crossing("python", "rust", "pyo3", 2 * inserts + 2 * (inserts // 1000))],
        inserts=inserts,
        warmup_inserts=warmup,
        start_ns=start_ns,
        end_ns=time.monotonic_ns(),
    )


if __name__ == "__main__":
    main()
