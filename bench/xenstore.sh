#!/usr/bin/env bash
# bench/xenstore.sh: xenstore operations per second through Xen's own
# libxenstore against domus-xenstored (release build) on a temporary socket.
#   bench/xenstore.sh [N]          (default N = 20000 operations per test)
# A peer daemon is measured in the same run when XS_PEER_CMD is set to a
# command that serves the xenstore socket protocol in the foreground on
# $XENSTORED_PATH; ratios domus/peer are printed then.  None is installed
# here: Xen 4.17's C xenstored (xen-utils-4.17) segfaults on its first request
# without a Xen hypervisor (-N -D), and oxenstored stops at setrlimit in this
# container, so by default only absolute rates are printed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N=${1:-20000}
make -s build/bin/domus-xenstored build/bench/xenstore
TMP=$(mktemp -d /tmp/domus-xsbench.XXXXXX)
DPID=
trap '[ -n "$DPID" ] && kill $DPID 2>/dev/null; rm -rf "$TMP"' EXIT

# run_one LABEL CMD...: serves with CMD on $TMP/LABEL.sock, runs the client.
run_one() {
    local label=$1
    shift
    export XENSTORED_PATH=$TMP/$label.sock
    "$@" >"$TMP/$label.log" 2>&1 &
    DPID=$!
    for _ in $(seq 100); do [ -S "$XENSTORED_PATH" ] && break; sleep 0.05; done
    build/bench/xenstore "$N" >"$TMP/$label.out"
    kill $DPID
    wait $DPID 2>/dev/null || true
    DPID=
}

echo "# xenstore bench: libxenstore client, $N ops per test, $(nproc) CPUs, $(date -u +%F)"
run_one domus build/bin/domus-xenstored --socket "$TMP/domus.sock"
if [ -n "${XS_PEER_CMD:-}" ]; then
    # shellcheck disable=SC2086
    run_one peer $XS_PEER_CMD
    echo "# op                    domus ops/s    peer ops/s   domus/peer"
    while IFS= read -r dl && IFS= read -r pl <&3; do
        op=$(echo "$dl" | cut -c1-22)
        dv=$(echo "$dl" | cut -c23- | awk '{print $1}')
        pv=$(echo "$pl" | cut -c23- | awk '{print $1}')
        awk -v op="$op" -v d="$dv" -v p="$pv" 'BEGIN { printf "%s %12s %13s %10.2f\n", op, d, p, (p > 0 ? d / p : 0) }'
    done <"$TMP/domus.out" 3<"$TMP/peer.out"
else
    echo "# domus-xenstored (no peer in this run: set XS_PEER_CMD to compare)"
    cat "$TMP/domus.out"
fi
