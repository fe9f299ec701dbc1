#!/usr/bin/env python3
"""Complete-stack share of a profile, read from each profiler's own output.

    bench/analyse.py SAMPLE FORMAT FILE        prints {"samples", "complete", "share"} as JSON
    bench/analyse.py --why SAMPLE FORMAT FILE  samples by the rule their stack fails

SAMPLE is `chain` or `gomain`; FORMAT is one of
  perf-script   the text of `perf script` (one block per sample, leaf first)
  pyspy-raw     `py-spy record --format raw` (folded: root first, `;`, a count)
  samply        samply's profile JSON (Firefox Profiler's processed format, gzip or
                not), symbolized from its `.syms.json` sidecar (`--unstable-presymbolicate`)
  seam-folded   seam's stacks.folded (`runtime:name` frames, root first, a count)

A stack is complete when
  1. its outermost frame is a thread root: `_start`, `__libc_start_main`,
     `__libc_start_call_main`, `start_thread`, `clone`, `clone3`, `runtime.goexit`,
     `runtime.mstart`, `runtime.rt0_go` (an unsymbolized libc address counts when
     libc's own debug symbols, from Debian's libc6-dbg, name one of these); for
     py-spy only, whose stacks start at the Python level, the first Python frame of
     a thread (`Thread._bootstrap`, `<module>`) counts as the root as well;
  2. it has no gap: no frame outside every mapping (perf's `[unknown] ([unknown])`;
     such frames rootward of a root frame, a walk that read past the root, are ignored),
     no `[truncated]` marker, and no interpreter eval-loop frame
     (`_PyEval_EvalFrameDefault`, `_PyEval_EvalFrame`) that is not followed by the
     Python frames it ran;
  3. it shows every runtime the code passed through. What the code passed through is
     known from the sample's fixed call graph (samples/README.md): any frame that can
     only run below a crossing requires the frames of the path that leads to it, in
     order (chain: Rust `seam_mix*` requires Python `Worker.run` and Go `main.*`
     above it; the C helper `chain_invoke_cb` requires `Worker.run` and Go above it,
     and a Python frame of the callback requires `Worker.run`, Go, `chain_invoke_cb`,
     then the callback; a Python frame at the line that
     calls `ChainWork` in a stack of Python frames only (py-spy without --native) is
     counted as a thread in Go or Rust that the tool did not show: most of the
     time at that line is, though the bytecode around the call is there too; and the
     Python frame nearest above the Go frames must be `Worker.run`, the only caller
     of ChainWork: other Python frames there were grafted from another moment. gomain: Rust requires `main.worker`, `main.callC`, `c_work`,
     `c_mix_step`; the callback requires `main.worker`, `main.callC`, `c_work`,
     `main.goCallback`).
The kernel frames are not required (py-spy cannot show them), and glue frames are
not required by name (they vary by tool); the runtimes on either side of a seam are.
"""

import gzip
import json
import os
import re
import subprocess
import sys
from bisect import bisect_right

ROOTS = {
    "_start", "__libc_start_main", "__libc_start_call_main", "start_thread", "clone",
    "__clone", "clone3", "__clone3", "__GI___clone3", "runtime.goexit", "runtime.mstart",
    "runtime.rt0_go", "_rt0_amd64_linux", "_rt0_amd64", "thread_start",
}
PY_ROOTS = re.compile(r"^(Thread\.)?_bootstrap$|^<module>$")
# samply's symbol tables drop one leading underscore (`_clone3`, `PyEval_EvalFrameDefault`),
# so names are compared without their leading underscores.
ROOTS_BARE = {r.lstrip("_") for r in ROOTS}
EVAL_LOOP = re.compile(r"^_*PyEval_EvalFrame(Default)?$")


class Frame:
    """One frame: its name (no offset, no seam annotation), the module or source file
    it came from, and whether it is a Python function frame (read from the interpreter)."""

    __slots__ = ("name", "where", "python", "line")

    def __init__(self, name, where="", python=False, line=None):
        self.name = name
        self.where = where
        self.python = python
        self.line = line

    def __repr__(self):
        return f"{self.name} ({self.where}{':' + str(self.line) if self.line else ''})"


def _plain(name):
    name = re.sub(r"\+0x[0-9a-f]+$", "", name)      # perf's symbol offset
    name = re.sub(r" \[seam [^\]]*\]$", "", name)   # seam's crossing annotation
    name = re.sub(r"\.abi0$", "", name)             # Go's ABI0 wrappers
    name = re.sub(r"@@?GLIBC_[0-9.]+$", "", name)
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)    # Rust's legacy hash
    return name


# ------------------------------------------------------------------ libc symbols
_LIBC = None


def libc_symbols():
    """(starts, entries) of libc's functions from its debug file, by build id, or empty."""
    global _LIBC
    if _LIBC is not None:
        return _LIBC
    _LIBC = ([], [])
    for libc in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"):
        if os.path.exists(libc):
            break
    else:
        return _LIBC
    try:
        notes = subprocess.run(["readelf", "-n", libc], capture_output=True, text=True).stdout
        build_id = re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
        debug = f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"
        out = subprocess.run(["nm", "-S", debug], capture_output=True, text=True).stdout
    except (OSError, AttributeError):
        return _LIBC
    entries = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            entries.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    entries.sort()
    _LIBC = ([e[0] for e in entries], entries)
    return _LIBC


def libc_name(offset):
    starts, entries = libc_symbols()
    i = bisect_right(starts, offset) - 1
    if i >= 0 and entries[i][0] <= offset < entries[i][0] + entries[i][1]:
        return entries[i][2]
    return None


def resolve_libc(frame):
    """A frame shown as an address in libc gets libc's own name, where its debug file has one."""
    m = re.match(r"^\[?libc\.so\.6\+0x([0-9a-f]+)\]?$", frame.name)
    if m:
        name = libc_name(int(m.group(1), 16))
        if name:
            return Frame(name, "libc.so.6")
    return frame


# ------------------------------------------------------------------ the rules
def _m(pattern, python=False):
    rx = re.compile(pattern)
    return lambda f: f.python == python and bool(rx.search(f.name))


RULES = {
    # (evidence, the path from the thread root that it requires), root first
    "chain": [
        (_m(r"^seam_mix"), [_m(r"(^|\.)run$", True), _m(r"^main\."), _m(r"^seam_mix")]),
        (_m(r"^chain_invoke_cb$"),
         [_m(r"(^|\.)run$", True), _m(r"^main\."), _m(r"^chain_invoke_cb$")]),
        (_m(r"(^|\.)(callback|refine)$", True),
         [_m(r"(^|\.)run$", True), _m(r"^main\."), _m(r"^chain_invoke_cb$"),
          _m(r"(^|\.)(callback|refine)$", True)]),
        (_m(r"^main\.|^_*cgoexp_\w*ChainWork|^crosscall2$|^ChainWork$"),
         [_m(r"(^|\.)run$", True), _m(r"^main\.")]),
    ],
    "gomain": [
        (_m(r"^seam_mix"),
         [_m(r"^main\.worker"), _m(r"^main\.callC"), _m(r"^c_work$"), _m(r"^c_mix_step"),
          _m(r"^seam_mix")]),
        (_m(r"^c_mix_step"),
         [_m(r"^main\.worker"), _m(r"^main\.callC"), _m(r"^c_work$"), _m(r"^c_mix_step")]),
        (_m(r"^main\.(goCallback|callbackWork)|^_*cgoexp_\w*goCallback"),
         [_m(r"^main\.worker"), _m(r"^main\.callC"), _m(r"^c_work$"),
          _m(r"^main\.goCallback|^_*cgoexp_\w*goCallback")]),
        (_m(r"^c_work$"), [_m(r"^main\.worker"), _m(r"^main\.callC"), _m(r"^c_work$")]),
        (_m(r"^main\.(callC|goWork|stir)"), [_m(r"^main\.worker")]),
    ],
}


def chainwork_lines():
    """Lines of chain.py that call ChainWork: a Python leaf there is a thread in Go."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples", "chain",
                        "chain.py")
    with open(path) as f:
        return {i + 1 for i, line in enumerate(f) if "lib.ChainWork(" in line}


def _unmapped(f):
    return f.name == "[unknown]" and f.where in ("", "[unknown]")


def _rooted(frames, python_roots):
    if _plain(frames[0].name).lstrip("_") in ROOTS_BARE:
        return True
    # A frame-pointer walk may read one word past the root (Go's runtime.mstart does not
    # clear rbp): unmapped frames outside a root frame are not held against the stack.
    i = 0
    while i < len(frames) - 1 and _unmapped(frames[i]):
        i += 1
    if i and _plain(frames[i].name).lstrip("_") in ROOTS_BARE:
        return True
    if not python_roots:
        return False
    # py-spy: the thread's first Python frame, below nothing but the thread-start
    # machinery of libc and the interpreter (which --native shows unsymbolized).
    for f in frames:
        if f.python:
            return bool(PY_ROOTS.search(f.name))
        if not re.search(r"libc\.so|libpython|/python3|^python3", f.where):
            return False
    return False


def complete(sample, frames, python_roots=False):
    """True when `frames` (root first) is a complete stack of `sample` (module doc)."""
    return incomplete_reason(sample, frames, python_roots) is None


def incomplete_reason(sample, frames, python_roots=False):
    """Why `frames` is not a complete stack of `sample`, or None when it is."""
    if not frames:
        return "no frames"
    frames = [resolve_libc(f) for f in frames]
    if not _rooted(frames, python_roots):
        return "no thread root"
    while len(frames) > 1 and _unmapped(frames[0]):
        frames = frames[1:]
    for i, f in enumerate(frames):
        if _unmapped(f):
            return "a frame outside every mapping"
        if f.name == "[truncated]":
            return "[truncated]"
        if EVAL_LOOP.search(f.name) and not (i + 1 < len(frames) and frames[i + 1].python):
            return "an eval-loop frame without its Python frames"
    required = []
    for evidence, path in RULES[sample]:
        if any(evidence(f) for f in frames):
            required.append(path)
    if sample == "chain":
        last_py = max((i for i, f in enumerate(frames) if f.python), default=None)
        if (last_py is not None and last_py == len(frames) - 1 and all(f.python for f in frames)
                and frames[last_py].line in chainwork_lines()):
            # The thread is in ChainWork, below a Python frame that shows no callee.
            required.append(RULES["chain"][-1][1])
    if sample == "chain":
        # ChainWork is called from Worker.run only: Python frames of other functions right
        # above the Go code are Python frames from another moment grafted onto the stack.
        go = next((i for i, f in enumerate(frames) if not f.python
                   and re.match(r"^main\.", f.name)), None)
        if go is not None:
            caller = max((i for i in range(go) if frames[i].python), default=None)
            if caller is not None and not re.search(r"(^|\.)run$", frames[caller].name):
                return "Python frames grafted above the Go code"
    for path in required:
        at = 0
        for want in path:
            while at < len(frames) and not want(frames[at]):
                at += 1
            if at == len(frames):
                return "a runtime of the path missing"
            at += 1
    return None


# ------------------------------------------------------------------ readers
def read_perf_script(path):
    """Yields (frames root first, count 1) per sample of `perf script` output."""
    frame_rx = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)$")
    stack = None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if stack is not None:
                    yield list(reversed(stack)), 1
                stack = None
                continue
            if not line[0].isspace():
                if stack is not None:
                    yield list(reversed(stack)), 1
                stack = []
                continue
            m = frame_rx.match(line)
            if m and stack is not None:
                name, dso = _plain(m.group(2)), m.group(3)
                if name == "[unknown]" and dso.endswith("libc.so.6"):
                    name = "[unknown libc]"
                stack.append(Frame(name, dso))
    if stack is not None:
        yield list(reversed(stack)), 1


PYSPY_FRAME = re.compile(r"^(.*) \(([^()]*?)(?::(\d+))?\)$")


def read_folded_pyspy(path):
    """py-spy's raw format: `frame;frame;... count`, root first, frames `name (file:line)`."""
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            stack, _, count = line.rpartition(" ")
            frames = []
            for part in stack.split(";") if stack.strip() else []:
                m = PYSPY_FRAME.match(part)
                if m:
                    name, where, ln = m.group(1), m.group(2), m.group(3)
                    py = where.endswith(".py")
                    frames.append(Frame(_plain(name), where, py, int(ln) if ln else None))
                else:
                    frames.append(Frame(_plain(part)))
            yield frames, int(count)


def read_folded_seam(path):
    """seam's stacks.folded: `runtime:name;... count`, Python frames `name (file.py:line)`."""
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            frames = []
            for part in stack.split(";"):
                runtime, _, name = part.partition(":")
                name = _plain(name)
                m = PYSPY_FRAME.match(name)
                py, ln, where = False, None, runtime
                if m and m.group(2).endswith(".py"):
                    name, where, py = m.group(1), m.group(2), True
                    ln = int(m.group(3)) if m.group(3) else None
                elif m:
                    name = m.group(1)
                frames.append(Frame(name, where, py, ln))
            yield frames, int(count)


def _open_json(path):
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rt") as f:
        return json.load(f)


def read_samply(path):
    """samply's processed profile: every thread's samples, frames named from the
    `.syms.json` sidecar where the profile itself has only addresses."""
    prof = _open_json(path)
    syms = None
    for side in (path + ".syms.json", re.sub(r"\.json(\.gz)?$", ".json.syms.json", path),
                 re.sub(r"\.json(\.gz)?$", ".syms.json", path)):
        if os.path.exists(side):
            syms = _open_json(side)
            break
    libs = prof.get("libs", [])
    lib_syms = {}
    if syms:
        strings = syms.get("string_table", [])
        for entry in syms.get("data", []):
            table = entry.get("symbol_table", [])
            key = (entry.get("debug_name"), (entry.get("debug_id") or "").replace("-", "").lower())
            starts = [s["rva"] for s in table]
            lib_syms[key] = (starts, table, strings)
    shared_strings = (prof.get("shared") or {}).get("stringArray")

    def symbolize(lib_index, address, fallback):
        if lib_index is None or lib_index < 0 or lib_index >= len(libs):
            return fallback, ""
        lib = libs[lib_index]
        key = (lib.get("debugName"), (lib.get("breakpadId") or "")[:32].lower())
        where = lib.get("name", "")
        if key in lib_syms and address is not None and address >= 0:
            starts, table, strings = lib_syms[key]
            i = bisect_right(starts, address) - 1
            if i >= 0 and address < table[i]["rva"] + table[i].get("size", 1 << 62):
                sym = table[i]["symbol"]
                return (strings[sym] if isinstance(sym, int) else sym), where
        if where == "libc.so.6" and address is not None:
            return f"libc.so.6+0x{address:x}", where
        return fallback, where

    for thread in prof.get("threads", []):
        strings = thread.get("stringArray") or thread.get("stringTable") or shared_strings or []
        frame_t, func_t, stack_t = thread["frameTable"], thread["funcTable"], thread["stackTable"]
        res_t = thread.get("resourceTable", {})
        samples = thread["samples"]
        cache = {}

        def frame_of(i):
            func = frame_t["func"][i]
            name = strings[func_t["name"][func]]
            addr = frame_t["address"][i] if "address" in frame_t else None
            res = func_t["resource"][func] if "resource" in func_t else -1
            lib = res_t["lib"][res] if res is not None and res >= 0 and "lib" in res_t else None
            name, where = symbolize(lib, addr, name)
            return Frame(_plain(name), where)

        def frames_of(stack):
            if stack is None:
                return []
            if stack in cache:
                return cache[stack]
            out = []
            s = stack
            while s is not None:
                out.append(frame_of(stack_t["frame"][s]))
                s = stack_t["prefix"][s]
            out.reverse()
            cache[stack] = out
            return out

        weights = samples.get("weight")
        for j, stack in enumerate(samples["stack"]):
            yield frames_of(stack), (weights[j] if weights else 1)


READERS = {
    "perf-script": (read_perf_script, False),
    "pyspy-raw": (read_folded_pyspy, True),
    "samply": (read_samply, False),
    "seam-folded": (read_folded_seam, False),
}


def analyse(sample, fmt, path):
    reader, python_roots = READERS[fmt]
    total = done = 0
    for frames, count in reader(path):
        total += count
        if complete(sample, frames, python_roots):
            done += count
    return {"samples": total, "complete": done, "share": done / total if total else 0.0}


def reasons(sample, fmt, path):
    """Samples by the reason their stack is not complete."""
    reader, python_roots = READERS[fmt]
    out = {}
    for frames, count in reader(path):
        why = incomplete_reason(sample, frames, python_roots) or "complete"
        out[why] = out.get(why, 0) + count
    return out


def main(argv):
    why = "--why" in argv
    argv = [a for a in argv if a != "--why"]
    if len(argv) != 4 or argv[1] not in RULES or argv[2] not in READERS:
        print(__doc__, file=sys.stderr)
        return 2
    if why:
        print(json.dumps(reasons(argv[1], argv[2], argv[3]), indent=1))
    else:
        print(json.dumps(analyse(argv[1], argv[2], argv[3])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
