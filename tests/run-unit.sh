#!/usr/bin/env bash
# Runs unit test binaries (default: build/unit/test_*) and aggregates them.
#
#   tests/run-unit.sh [BINARY...]
#
# Each binary prints `PASS name` / `FAIL name` lines and exits non-zero on
# failure.  Their PASS/FAIL lines are printed; a binary that fails without a
# FAIL line of its own (a crash, a sanitizer report) gets one, with the tail of
# its output.  Ends with `unit: N passed, N failed`; exits non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
    shopt -s nullglob
    set -- build/unit/test_*
    shopt -u nullglob
    # Skip the make dependency files and the like.
    bins=()
    for b in "$@"; do [ -f "$b" ] && [ -x "$b" ] && bins+=("$b"); done
    set -- ${bins[@]+"${bins[@]}"}
fi

npass=0 nfail=0
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for b in "$@"; do
    rc=0
    timeout -k 5 "${DOMUS_UNIT_TIMEOUT:-120}" "$b" >"$out" 2>&1 </dev/null || rc=$?
    p="$(grep -c '^PASS ' "$out" || true)"
    f="$(grep -c '^FAIL ' "$out" || true)"
    grep -E '^(PASS|FAIL) ' "$out" || true
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        if [ "$rc" = 124 ]; then what="timed out"; else what="exited with status $rc"; fi
        echo "FAIL $(basename "$b"): $what"
        tail -n 20 "$out" | sed 's/^/    /'
        f=1
    elif [ "$f" != 0 ]; then
        # Show what the failing binary said around its failures.
        grep -v -E '^(PASS|FAIL) ' "$out" | tail -n 20 | sed 's/^/    /' || true
    fi
    npass=$((npass + p)); nfail=$((nfail + f))
done
echo "unit: passes $npass, failures $nfail ($# binaries)"
[ "$nfail" = 0 ]
