#!/usr/bin/env bash
# Names the static key behind an "Oops: int3" in a test host's serial log
# (tests/out/<scenario>.log): the stale int3 of a finished text_poke_bp that
# QEMU's multi-threaded TCG has let a CPU execute (README, "The test host").
# int3-site.py finds the jump-table site of the oops's code bytes in the
# test-host kernel's vmlinux and the key's offset from _text; one test-host
# boot then reads /proc/kallsyms for the symbol at that offset.  Not a test.
#
#   tests/testhost/name-int3.sh LOG      (DOMUS_TESTHOST_KERNEL=6.1 for 6.1)
#
# Prints "int3: site S in FUNC; key at _text+OFF: SYMBOL+DELTA".
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
. "$ROOT/scripts/lib.sh"
[ $# = 1 ] && [ -f "$1" ] || { sed -n '2,11p' "$0" >&2; exit 2; }
LOG="$1"
"$ROOT/scripts/setup.sh" --no-packages >/dev/null
# shellcheck disable=SC1091
. "$DOMUS_CACHE/env.sh"
kv="$(grep -m1 -o 'testhost: kernel [^;]*' "$LOG" | cut -d' ' -f3 || true)"
if [ -n "$kv" ] && [ "$kv" != "$DOMUS_TESTHOST_KVER" ]; then
    echo "name-int3: $LOG is of kernel $kv, the test host is $DOMUS_TESTHOST_KVER" \
        "(DOMUS_TESTHOST_KERNEL=6.1?)" >&2
    exit 1
fi
read -r _ site _ off _ func < <(python3 "$HERE/int3-site.py" "$DOMUS_TESTHOST_KDIR/vmlinuz" "$LOG")

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/kallsyms-at.sh" <<EOF
#!/bin/sh
# testhost-timeout: 120
t=\$(grep ' _text\$' /proc/kallsyms | cut -d' ' -f1)
a=\$(printf %016x \$((0x\$t + $off)))
sort /proc/kallsyms | awk -v a="\$a" '\$1 <= a { l = \$1 " " \$3 } \$1 > a { print "at " a " " l; exit }'
echo "PASS kallsyms read"
EOF
out="$("$HERE/run.sh" --show "$tmp/kallsyms-at.sh" 2>&1)" || { echo "$out" >&2; exit 1; }
read -r _ at sym name < <(echo "$out" | grep -m1 '^at ')
delta=$(printf '%d' $((0x$at - 0x$sym)))
echo "int3: site $site in $func; key at _text+$off: $name+$delta"
