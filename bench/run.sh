#!/usr/bin/env bash
# bench/run.sh (make bench): every benchmark in turn: bench/boot, bench/io,
# bench/density, bench/migrate, bench/xenstore.sh.  Each prints its numbers with ratios against a peer
# measured in the same run; this runs them all even when one fails, and exits
# non-zero if any did (bench/boot also fails when its targets are not met).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
failed=""
for b in bench/boot bench/io bench/density bench/migrate bench/xenstore.sh; do
    echo "== $b"
    "$b" || failed="$failed $b"
done
if [ -n "$failed" ]; then
    echo "bench/run.sh: failed:$failed" >&2
    exit 1
fi
