"""gohttp: Python request handlers behind a Go net/http server.

Python loads the Go c-shared library with cffi in ABI mode, registers two
handlers (ffi.callback) for /score and /hello/, starts the server on
127.0.0.1 (port 0: Go picks one) and starts the load generator (--clients N
goroutines inside the Go library) until the deadline. For every request a Go
handler goroutine calls the C trampoline seam_http_call (go -> c, cgo-call),
which calls the Python handler through its function pointer (c -> python,
callback) on a thread Python did not create; the handler does Python work and
answers through WriteResponse (python -> go, cffi-abi).

Run it through samples/run (which passes --lib): samples/run gohttp --seconds 2
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402

NAME = "gohttp"

try:
    import cffi
except ImportError:
    sys.stderr.write(
        "gohttp: this Python has no cffi; install it with\n"
        "  %s -m pip install cffi\n" % sys.executable)
    sys.exit(3)

CDEF = """
typedef int (*seam_http_handler)(int64_t req_id, const char *path, size_t path_len,
                                 const char *body, size_t body_len);
int GoHttpRegister(char *route, seam_http_handler fn);
int GoHttpStart(void);
int GoHttpLoadStart(int clients, double seconds);
int GoHttpStop(int64_t *out, int n);
int WriteResponse(int64_t req_id, char *buf, size_t n);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)

# Per-thread counters (handlers run on Go threads): c -> python callbacks and
# python -> go WriteResponse calls.
counters = seam_sample.PerThreadCounters(["callback", "WriteResponse"])
# python -> go calls made from the main thread (control functions).
control_calls = {"GoHttpRegister": 0, "GoHttpStart": 0, "GoHttpLoadStart": 0,
                 "GoHttpStop": 0}
lib = None


# ---------------------------------------------------------------- Python work
def tokenize(body):
    return [int(t) for t in body.split(b",") if t]


def weigh(x, i):
    return (x * x + i * 7) % 1009


def score(nums):
    total = 0
    for i, x in enumerate(nums):
        total += weigh(x, i)
        if x % 3 == 0:
            total ^= i
    return total


def hello(name):
    return "hello %s %d\n" % (name.upper(), sum(name.encode()))


def respond(req_id, text):
    data = text.encode()
    counters.mine()["WriteResponse"] += 1
    return lib.WriteResponse(req_id, data, len(data))


# ------------------------------------------------------------------ handlers
# error=-1: if a handler raises, Go sees -1 and answers 500.
@ffi.callback("seam_http_handler", error=-1)
def handle_score(req_id, path, path_len, body, body_len):
    counters.mine()["callback"] += 1
    nums = tokenize(ffi.unpack(body, body_len) if body_len else b"")
    return respond(req_id, "score=%d\n" % score(nums))


@ffi.callback("seam_http_handler", error=-1)
def handle_hello(req_id, path, path_len, body, body_len):
    counters.mine()["callback"] += 1
    path = ffi.unpack(path, path_len).decode()
    name = path[len("/hello/"):]
    return respond(req_id, hello(name))


HANDLERS = [(b"/score", handle_score), (b"/hello/", handle_hello)]


def call(name, *args):
    control_calls[name] += 1
    return getattr(lib, name)(*args)


def main():
    global lib
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    p = seam_sample.arg_parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--clients", "--threads", dest="clients", type=int, default=4,
                   help="load-generator goroutines (default 4)")
    args = p.parse_args()

    lib = ffi.dlopen(args.lib)
    for route, fn in HANDLERS:
        if call("GoHttpRegister", route, fn) != 0:
            sys.exit("gohttp: GoHttpRegister failed")
    port = call("GoHttpStart")
    if port <= 0:
        sys.exit("gohttp: GoHttpStart failed")

    seam_sample.print_ready()
    stop.sleep(args.start_delay)

    if not stop.is_set():
        # Go keeps the deadline; this thread may get the GIL back late while
        # the handlers (on Go threads) keep taking it, so it does not time
        # the work itself.
        if call("GoHttpLoadStart", max(1, args.clients), args.seconds) != 0:
            sys.exit("gohttp: GoHttpLoadStart failed")
        stop.sleep(args.seconds)
    out = ffi.new("int64_t[6]")
    rc = call("GoHttpStop", out, 6)
    ok, errors, trampolines, go_writes, served, load_ns = list(out)
    elapsed = load_ns / 1e9

    callbacks = counters.total("callback")
    writes = counters.total("WriteResponse")
    functions = dict(control_calls)
    functions["WriteResponse"] = writes
    crossings = [
        seam_sample.crossing("go", "c", "cgo-call", trampolines,
                             {"seam_http_call": trampolines}),
        seam_sample.crossing("c", "python", "callback", callbacks),
        seam_sample.crossing("python", "go", "cffi-abi", sum(functions.values()),
                             functions),
    ]
    seam_sample.write_truth(
        args.truth, NAME, elapsed, crossings,
        requests=int(ok), errors=int(errors), served=int(served), port=port,
        clients=max(1, args.clients), handler_threads=counters.threads(),
        shutdown_clean=(rc == 0), interrupted=stop.signal is not None)
    if go_writes != writes:
        sys.stderr.write("gohttp: WriteResponse count mismatch: go %d python %d\n"
                         % (go_writes, writes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
