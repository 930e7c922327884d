#!/usr/bin/env bash
# Counts how often the nested test host hangs: runs one scenario N times
# through run.sh and sorts each run into passed, failed (an assertion) and
# hung (run.sh stopped a test host whose heartbeat stopped), with the
# soft-lockup line of each hang.  Not a test: the counts go into the README.
#
#   tests/testhost/hang-count.sh [-n N] [--lock FILE] SCENARIO [run.sh options...]
#
# DOMUS_TESTHOST_KERNEL=6.1 counts on the 6.1 test host.  With --lock (or
# DOMUS_TESTHOST_LOCK), each run holds FILE (flock) while its test host is up,
# so other test-host users can interleave.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
N=40 LOCK=""
while [ $# -gt 0 ]; do
    case "$1" in
    -n) N="${2:?}"; shift 2 ;;
    --lock) LOCK="${2:?}"; shift 2 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
SCEN="$1"; shift
pass=0 fail=0 hung=0
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for i in $(seq 1 "$N"); do
    t0=$(date +%s)
    DOMUS_TESTHOST_LOCK="${LOCK:-${DOMUS_TESTHOST_LOCK:-}}" "$HERE/run.sh" "$@" "$SCEN" >"$out" 2>&1
    rc=$?
    if grep -q '^FAIL .*the test host stopped' "$out"; then
        hung=$((hung + 1)) what="hung: $(grep -m1 -o 'nested-virtualization hang: [^;]*' "$out")"
    elif [ "$rc" = 0 ]; then
        pass=$((pass + 1)) what=passed
    else
        fail=$((fail + 1)) what="failed: $(grep -m1 '^FAIL ' "$out" | cut -c1-160)"
    fi
    echo "run $i/$N: $what ($(( $(date +%s) - t0 )) s)"
done
kernel="$(grep -m1 -o 'testhost: kernel [^;]*' "$out" || echo "testhost: kernel ?")"
echo "hang-count: $SCEN $*: $N runs on ${kernel#testhost: }: $pass passed, $fail failed, $hung hung"
