"""polarsloop: builds and queries small polars DataFrames in a loop.

Not a sample of ours but the general case seam meets: polars' Rust module is
one 177 MB file with 300,000 symbols and hundreds of PyO3 trampolines, and its
thread pool (rayon) takes samples on every core while the script runs. The
module is imported after the ready line, so a profiler meets its load while
recording. The truth is the loop's own count of iterations (each builds a
DataFrame from two Python lists, filters it and sums a column).

Needs the package: pip install polars
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402


def main():
    p = argparse.ArgumentParser(prog="polarsloop", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--truth", metavar="FILE")
    args = p.parse_args()
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()
    start = time.monotonic()
    pl = seam_sample.require("polars", "polarsloop")
    imported = time.monotonic() - start
    iterations = 0
    while time.monotonic() - start < args.seconds and not stop.is_set():
        df = pl.DataFrame({
            "a": list(range(args.rows)),
            "b": [random.random() for _ in range(args.rows)],
        })
        df.filter(pl.col("a") % 3 == 0).select(pl.col("b").sum())
        iterations += 1
    seam_sample.write_truth(
        args.truth,
        "polarsloop",
        time.monotonic() - start,
        [],
        iterations=iterations,
        import_s=round(imported, 6),
        polars=pl.__version__,
    )


if __name__ == "__main__":
    main()
