#!/usr/bin/env bash
# seam against perf, py-spy and samply on the same work: installs the peers if they
# are missing, then measures them all in one run (bench/bench.py) and writes
# bench/results.md and bench/results.json. As root, with the samples and seam built:
#   bash samples/build.sh && cargo build --release && bench/run.sh
# Options go to bench/bench.py (--help). --smoke: a tiny run that installs nothing
# slow (samply and inferno come from cargo install; without them those parts are
# skipped with a message), for tests/bench_smoke.rs; give it --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

smoke=0
for a in "$@"; do [ "$a" = --smoke ] && smoke=1; done

[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run it as root (perf events, ptrace, uprobes)" >&2; exit 2; }
[ -d samples/build ] || { echo "bench/run.sh: build the samples first: bash samples/build.sh" >&2; exit 2; }
seam=${SEAM_BIN:-target/release/seam}
[ -x "$seam" ] || { echo "bench/run.sh: build seam first: cargo build --release" >&2; exit 2; }

# The peers, each from its usual place.
if ! command -v perf >/dev/null; then
    echo "bench: installing perf (Debian's linux-perf)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
fi
if ! command -v py-spy >/dev/null; then
    echo "bench: installing py-spy (PyPI)" >&2
    python3 -m pip install -q --disable-pip-version-check py-spy
    hash -r
fi
for tool in samply inferno; do
    bin=$tool; [ "$tool" = inferno ] && bin=inferno-flamegraph
    command -v "$bin" >/dev/null && continue
    if [ "$smoke" = 1 ]; then
        echo "bench: $tool is not installed; the smoke run skips it (the full run installs it: cargo install $tool --locked, several minutes)" >&2
    else
        echo "bench: installing $tool (cargo install $tool --locked; it compiles for several minutes)" >&2
        cargo install "$tool" --locked -q
    fi
done

# samply refuses to start above kernel.perf_event_paranoid=1, even as root.
paranoid=$(sysctl -n kernel.perf_event_paranoid)
if [ "$paranoid" -gt 1 ] && command -v samply >/dev/null; then
    echo "bench: kernel.perf_event_paranoid $paranoid -> 1 for samply (put back at the end)" >&2
    sysctl -qw kernel.perf_event_paranoid=1
    trap 'sysctl -qw kernel.perf_event_paranoid='"$paranoid" EXIT
fi

python3 bench/bench.py "$@"
