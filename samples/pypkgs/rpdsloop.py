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

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402


def main():
    args = seam_sample.loop_arg_parser("rpdsloop", __doc__.splitlines()[0]).parse_args()
    rpds = seam_sample.require("rpds", "rpdsloop", "rpds-py")
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()

    def round_of_inserts():
        m = rpds.HashTrieMap()
        for i in range(1000):
            m = m.insert(i, i)
        # The round's last map, released here.
        del m

    m = seam_sample.warm_then_measure(
        args, stop, lambda seconds: seam_sample.repeat_for(stop, seconds, round_of_inserts, 1000))
    inserts = m.count
    seam_sample.write_truth(
        args.truth,
        "rpdsloop",
        m.seconds,
        [seam_sample.crossing("python", "rust", "pyo3", 2 * inserts + 2 * (inserts // 1000))],
        inserts=inserts,
        warmup_inserts=m.warmup,
        start_ns=m.start_ns,
        end_ns=m.end_ns,
    )


if __name__ == "__main__":
    main()
