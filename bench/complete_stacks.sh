#!/usr/bin/env bash
# Records each sample with each Python and Go build and prints, as a Markdown
# table: samples, the share of complete stacks, the share of those whose far
# side of a stack switch was reconstructed from an earlier walk, lost samples,
# and seam's own CPU time as a share of one core. Needs root and built samples:
#   bash samples/build.sh && cargo build --release && bench/complete_stacks.sh   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
seam=./target/release/seam
[ -x "$seam" ] || { echo "build seam first: cargo build --release" >&2; exit 2; }
seconds=${SECONDS_PER_RUN:-10}
# 999 Hz as in bench/results.md (without --rate seam samples at what fits its budget).
rate=${RATE:-999}

run() {
    local label="$1"; shift
    local out; out=$(mktemp -d)
    "$seam" record --rate "$rate" -o "$out" -- samples/run "$@" > "$out/stdout" 2> "$out/stderr"
    python3 - "$label" "$out" <<'PY'
import json, re, sys
label, out = sys.argv[1], sys.argv[2]
s = json.load(open(out + "/summary.json"))
cpu = re.search(r"seam's own CPU: ([0-9.]+) s over ([0-9.]+) s", open(out + "/stdout").read())
reused = sum(v for k, v in s["problems"].items() if k.startswith("frames past a stack switch"))
n = max(1, s["samples"])
print(f"| {label} | {s['samples']} | {100*s['complete_share']:.1f}% | {100*reused/n:.1f}% | {s['lost']} | {float(cpu.group(1))/float(cpu.group(2))*100:.0f}% |")
PY
    rm -rf "$out"
}

echo "| run | samples | complete stacks | reconstructed | lost | seam CPU (one core) |"
echo "|---|---|---|---|---|---|"
for py in 3.11 3.12 3.13; do
    for go in debian current; do
        run "chain, Python $py, Go $go" chain --python "$py" --go "$go" --threads 4 --seconds "$seconds"
    done
done
for go in debian current; do
    run "chain, Python 3.11, Go $go stripped" chain --go "$go" --stripped --threads 4 --seconds "$seconds"
done
for go in debian current; do
    run "gomain, Go $go" gomain --go "$go" --seconds "$seconds"
done
run "gohttp, Python 3.11, Go debian" gohttp --python 3.11 --go debian --seconds "$seconds"
run "gohttp, Python 3.13, Go current" gohttp --python 3.13 --go current --seconds "$seconds"
