#!/usr/bin/env bash
# The collector's ingest rate (samples per second, and per second of the collector's CPU)
# and bytes on the wire per sample for each encoding (postcard, which seam uses, against a
# serde_json baseline), measured on a recorded stream. Writes bench/ingest-results.md.
#
#   bash bench/ingest.sh [SESSION_FILE]
#
# Without a session file it records one: `seam agent` streams 10 s of the chain sample at
# 999 Hz to a `seam collector` on 127.0.0.1 (root, and samples/build.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin seam --example wire_figures
seam=$PWD/target/release/seam
work=$(mktemp -d)
collector_pid=
cleanup() {
    [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

session=${1:-}
if [ -z "$session" ]; then
    mkdir -p "$work/data"
    "$seam" collector --listen 127.0.0.1:0 --data "$work/data" 2>"$work/collector.log" &
    collector_pid=$!
    addr=
    for _ in $(seq 100); do
        addr=$(sed -n 's/^seam: collector listening on \([^,]*\),.*/\1/p' "$work/collector.log")
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$work/collector.log"; exit 1; }
    "$seam" agent --collector "$addr" -- samples/run chain --seconds 10 >/dev/null 2>"$work/agent.log" ||
        { cat "$work/agent.log"; exit 1; }
    kill "$collector_pid" && wait "$collector_pid" 2>/dev/null || true
    collector_pid=
    session=$(ls "$work"/data/*.seam | head -1)
    recorded="a 10 s recording of \`samples/run chain\` streamed by \`seam agent\` at 999 Hz"
else
    recorded="$session"
fi

out=bench/ingest-results.md
figures=$(SEAM_BIN="$seam" target/release/examples/wire_figures "$session" "$work")
{
    echo "# Collector ingest and bytes on the wire"
    echo
    echo "\`bash bench/ingest.sh\`, $(date -u +%Y-%m-%d), on $(nproc) cores ($(uname -m), Linux $(uname -r)),"
    echo "on $recorded."
    echo
    echo '```'
    echo "$figures"
    echo '```'
} >"$out"
cat "$out"
