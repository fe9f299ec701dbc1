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

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402


def main():
    args = seam_sample.loop_arg_parser("regexloop", __doc__.splitlines()[0]).parse_args()
    regex = seam_sample.require("regex", "regexloop")
    pattern = regex.compile(r"(\w+)@(\w+)\.com")
    text = "no address in this line at all, " * 4
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()

    def searches():
        for _ in range(1000):
            if pattern.search(text) is not None:
                raise SystemExit("regexloop: the pattern matched")

    m = seam_sample.warm_then_measure(
        args, stop, lambda seconds: seam_sample.repeat_for(stop, seconds, searches, 1000))
    seam_sample.write_truth(
        args.truth,
        "regexloop",
        m.seconds,
        [seam_sample.crossing("python", "c", "cext", m.count)],
        warmup_searches=m.warmup,
        start_ns=m.start_ns,
        end_ns=m.end_ns,
    )


if __name__ == "__main__":
    main()
