"""tlsloop: HTTP requests through tls_client, a Go library called with ctypes.

Not a sample of ours but the general case seam meets: tls_client's wheel
ships a Go c-shared library built elsewhere (a current Go, by Ubuntu's gcc:
its exports' wrappers start with `endbr64`), which Python calls through
ctypes. The script starts a small HTTP server as a child process, loads the
library before the ready line, then GETs the server's page in a loop: each
request is a ctypes call into the Go export `request` (Go's net/http on its
own threads), a `ctypes.string_at` of the answer (python -> c, ctypes) and a
ctypes call into `freeMemory`. The server answers each request on a new
thread, as `python -m http.server` does: a child process whose threads come
and go while its parent runs.

The truth: those crossings, counted by the script, and its own CPU seconds
(all of its threads, not the server's), for the samples seam should take.

Needs the package: pip install tls-client
"""

import argparse
import importlib.metadata
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402

SERVER = r"""
import http.server, sys
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
print(server.server_port, flush=True)
server.serve_forever()
"""


def main():
    p = argparse.ArgumentParser(prog="tlsloop", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--start-delay", type=float, default=0.0,
                   help="seconds to wait after the ready line before working")
    p.add_argument("--truth", metavar="FILE")
    args = p.parse_args()
    tls_client = seam_sample.require("tls_client", "tlsloop", "tls-client")
    tls_library = seam_sample.require("tls_client.cffi", "tlsloop", "tls-client")
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    try:
        port = int(server.stdout.readline())
        tls_library.load_library()
        session = tls_client.Session(client_identifier="chrome_120")
        url = "http://127.0.0.1:%d/" % port
        stop = seam_sample.Stop()
        seam_sample.install_signal_handlers(stop)
        seam_sample.print_ready()
        stop.sleep(args.start_delay)
        start = time.monotonic()
        cpu = time.process_time()
        requests = 0
        while time.monotonic() - start < args.seconds and not stop.is_set():
            answer = session.get(url)
            if answer.status_code != 200 or answer.text != "ok":
                sys.stderr.write("tlsloop: the server answered %s %r\n"
                                 % (answer.status_code, answer.text))
                sys.exit(1)
            requests += 1
        cpu = time.process_time() - cpu
        seconds = time.monotonic() - start
    finally:
        server.kill()
        server.wait()
    seam_sample.write_truth(
        args.truth,
        "tlsloop",
        seconds,
        [
            seam_sample.crossing("python", "go", "ctypes", 2 * requests,
                                 {"request": requests, "freeMemory": requests}),
            seam_sample.crossing("python", "c", "ctypes", requests,
                                 {"string_at": requests}),
        ],
        requests=requests,
        cpu_s=round(cpu, 6),
        tls_client=importlib.metadata.version("tls-client"),
    )


if __name__ == "__main__":
    main()
