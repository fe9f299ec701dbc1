"""regexloop: a C extension's method that tail-calls another of its functions.

Not a sample of ours but the general case seam meets: the `regex` package's
`Pattern.search` (`pattern_search`, in the module's method table) ends by
jumping to `pattern_search_or_match`, so that the samples show the latter
called straight from the interpreter, with no frame of the former. Counting
both would count every call twice.

The searches find nothing (no Match object is made, and none released), so
each is one crossing. `--warmup S` searches for S seconds first, then
`--start-delay S` waits, and the truth counts the searches after that (with
`start_ns`, on CLOCK_MONOTONIC), and the warm-up's apart.

Needs the package: pip install regex
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402


def main():
    p = argparse.ArgumentParser(prog="regexloop", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.0)
    p.add_argument("--start-delay", type=float, default=0.0)
    p.add_argument("--truth", metavar="FILE")
    args = p.parse_args()
    regex = seam_sample.require("regex", "regexloop")
    pattern = regex.compile(r"(\w+)@(\w+)\.com")
    text = "no address in this line at all, " * 4
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()

    def search_for(seconds):
        start = time.monotonic()
        searches = 0
        while time.monotonic() - start < seconds and not stop.is_set():
            for _ in range(1000):
                if pattern.search(text) is not None:
                    raise SystemExit("regexloop: the pattern matched")
            searches += 1000
        return searches

    warmup = search_for(args.warmup) if args.warmup > 0 else 0
    stop.sleep(args.start_delay)
    start = time.monotonic()
    start_ns = time.monotonic_ns()
    searches = search_for(args.seconds)
    seam_sample.write_truth(
        args.truth,
        "regexloop",
        time.monotonic() - start,
        [seam_sample.crossing("python", "c", "cext", searches)],
        warmup_searches=warmup,
        start_ns=start_ns,
        end_ns=time.monotonic_ns(),
    )


if __name__ == "__main__":
    main()
