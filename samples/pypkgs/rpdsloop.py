"""rpdsloop: a PyO3 class's methods called in a loop (rpds-py's HashTrieMap).

Not a sample of ours but the general case seam meets: rpds-py is a Rust
extension built with PyO3, whose macros generate a trampoline per method in
the crate itself (`rpds::<impl pyo3::impl_::pyclass::PyMethods<..> for
..>::py_methods::ITEMS::trampoline`), not in PyO3's `trampoline` module: the
first frame below the interpreter is then the crate's, yet it is PyO3's glue.

Each round inserts a key into a persistent map, making a new map, and lets
the previous one go, which PyO3's `tp_dealloc` releases: two crossings into
Rust a round. The truth is the rounds.

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
    p.add_argument("--truth", metavar="FILE")
    args = p.parse_args()
    rpds = seam_sample.require("rpds", "rpdsloop", "rpds-py")
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()
    start = time.monotonic()
    rounds = 0
    while time.monotonic() - start < args.seconds and not stop.is_set():
        m = rpds.HashTrieMap()
        for i in range(1000):
            m = m.insert(i, i)
        rounds += 1000
    seam_sample.write_truth(
        args.truth,
        "rpdsloop",
        time.monotonic() - start,
        [seam_sample.crossing("python", "rust", "pyo3", 2 * rounds)],
        inserts=rounds,
    )


if __name__ == "__main__":
    main()
