"""pypkgs: calls into real PyPI packages that cross runtimes, a phase each.

Not a sample of ours but the general case seam meets: pydantic-core (Rust,
PyO3, stripped), orjson (Rust through the C API, no unwind tables), numpy
(C, a large extension) and cryptography (Rust with PyO3, over a thousand
probe-able wrappers, and OpenSSL through cffi). Each phase makes `--calls`
calls in a tight loop, one phase after another, as a script does; the truth
says how many crossings each made into its module (cryptography: a hash is
three calls into Rust).

Needs the packages: pip install pydantic orjson numpy cryptography
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402

try:
    import numpy
    import orjson
    import pydantic
    from cryptography.hazmat.primitives import hashes
except ImportError as e:
    sys.stderr.write("pypkgs: %s: pip install pydantic orjson numpy cryptography\n" % e)
    sys.exit(2)


class Model(pydantic.BaseModel):
    a: int
    b: str


def main():
    p = argparse.ArgumentParser(prog="pypkgs", description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20000, help="calls per phase")
    p.add_argument("--start-delay", type=float, default=0.0)
    p.add_argument("--truth", metavar="FILE")
    args = p.parse_args()
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    n = args.calls
    array = numpy.arange(10)
    seam_sample.print_ready()
    stop.sleep(args.start_delay)
    phases = {}
    start = time.monotonic()

    def phase(name, call):
        t = time.monotonic_ns()
        for i in range(n):
            call(i)
        phases[name] = {"calls": n, "start_ns": t, "end_ns": time.monotonic_ns()}

    phase("pydantic", lambda i: Model(a=i, b="x"))
    phase("orjson", lambda i: orjson.dumps({"a": i}))
    phase("numpy", lambda i: numpy.add(array, 1))

    def digest(i):
        h = hashes.Hash(hashes.SHA256())
        h.update(b"x")
        h.finalize()

    phase("cryptography", digest)
    seconds = time.monotonic() - start
    seam_sample.write_truth(
        args.truth,
        "pypkgs",
        seconds,
        [
            seam_sample.crossing("python", "rust", "pyo3", 3 * n, {"cryptography": 3 * n}),
        ],
        phases=phases,
        calls_per_phase=n,
    )


if __name__ == "__main__":
    main()
