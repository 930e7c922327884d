#!/bin/sh
# Bad input to `domus create`: each attempt fails with a non-zero status and a
# clear message, and leaves nothing behind (no domus-vm process, no files in
# the run dir, nothing in `domus list`).
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT

# bad WHAT PATTERN CFG-LINE...: create must fail, stderr must match PATTERN.
bad() {
    _what="$1" _pat="$2"; shift 2
    _cfg="$DOMUS_TMP/bad.cfg"
    for _l in "$@"; do echo "$_l"; done >"$_cfg"
    domus create "$_cfg" >"$DOMUS_TMP/out" 2>"$DOMUS_TMP/err"
    _rc=$?
    _msg="$(grep -v '^Parsing config' "$DOMUS_TMP/err" | head -n 3 | tr '\n' '|')"
    if [ "$_rc" = 0 ]; then
        fail "$_what: domus create succeeded"
        domus destroy bad >/dev/null 2>&1
    elif grep -q -- "$_pat" "$DOMUS_TMP/err"; then
        pass "$_what: exit $_rc, '$_msg'"
    else
        fail "$_what: exit $_rc, message '$_msg' does not match '$_pat'"
    fi
    check "$_what: no domus-vm process left" [ "$(vm_count)" = 0 ]
    check "$_what: no files left in the run dir" [ -z "$(run_leftovers)" ]
    check "$_what: not in domus list" [ -z "$(list_row bad)" ]
}

K="kernel = \"$DOMUS_GUEST_KERNEL\""
N='name = "bad"'
host_mib=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
huge=$((host_mib + 40000))
printf 'this is a text file, not a kernel\n' >"$DOMUS_TMP/notakernel.txt"

bad "missing kernel file" "kernel.*No such file" "$N" 'kernel = "/nonexistent/vmlinuz"'
bad "text file as kernel" "kernel" "$N" "kernel = \"$DOMUS_TMP/notakernel.txt\""
bad "memory larger than the host" "memory: $huge MiB requested, host has [0-9]* MiB available" \
    "$N" "$K" "memory = $huge"
bad "malformed cfg (unterminated list)" "bad.cfg:3: unterminated list" "$N" "$K" 'disk = [ "x",'
bad "malformed cfg (unterminated string)" "bad.cfg:2: unterminated string" "$N" 'kernel = "/boot'
bad "pci (unsupported, would change the guest)" "bad.cfg:3: pci is not supported yet" "$N" "$K" \
    "pci = [ '0000:00:1f.2' ]"
bad "no kernel key" "missing required key 'kernel'" "$N"
bad "type hvm" "type 'hvm' is not supported yet" "$N" "$K" 'type = "hvm"'
bad "vcpus 0" "vcpus: 0 is out of range" "$N" "$K" 'vcpus = 0'

# A name already in use is refused and the first domain is untouched.
mkcfg dup idle 1
if domus create "$DOMUS_TMP/dup.cfg" >/dev/null 2>&1; then
    id="$(domus domid dup)"
    if domus create "$DOMUS_TMP/dup.cfg" 2>"$DOMUS_TMP/err"; then
        fail "duplicate name: second create succeeded"
    else
        check "duplicate name refused ($(grep -v '^Parsing' "$DOMUS_TMP/err"))" grep -q "already exists" "$DOMUS_TMP/err"
    fi
    check "duplicate name: first domain still there with id $id" test "$(domus domid dup 2>/dev/null)" = "$id"
    domus destroy dup
    check "duplicate name: destroyed, no domus-vm left" [ "$(vm_count)" = 0 ]
else
    fail "duplicate name: first create failed"
fi

# create -n: parse and print, create nothing; KEY=VALUE arguments as xl's.
mkcfg dry idle 1
domus create -n "$DOMUS_TMP/dry.cfg" 'name="dry2"' 'memory=64' >"$DOMUS_TMP/out" 2>"$DOMUS_TMP/err"
check "create -n with KEY=VALUE overrides prints the result" \
    grep -q '"name":"dry2"' "$DOMUS_TMP/out"
check "create -n: nothing created" test -z "$(list_row dry2)$(list_row dry)"
domus create -n "$DOMUS_TMP/dry.cfg" 'vcpus=0' 2>"$DOMUS_TMP/err"
check "create -n: a bad override is an error ($(grep -v '^Parsing' "$DOMUS_TMP/err"))" \
    grep -q "vcpus: 0 is out of range" "$DOMUS_TMP/err"

# The CLI's own usage errors exit 2, as xl's.
domus frobnicate >/dev/null 2>&1
check "unknown subcommand exits 2" [ $? = 2 ]
domus create >/dev/null 2>&1
check "create without a file exits 2" [ $? = 2 ]
domus destroy nosuchdomain 2>"$DOMUS_TMP/err"; rc=$?
check "destroy of an unknown domain fails ($(cat "$DOMUS_TMP/err"))" [ "$rc" != 0 ]
check "run dir clean at the end" [ -z "$(run_leftovers)" ]
