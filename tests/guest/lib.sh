# Helpers for guest test scripts (busybox sh; sourced).

# cmdline_get KEY: value of KEY=value on the kernel command line ("" if absent).
cmdline_get() {
    for _a in $(cat /proc/cmdline); do
        case "$_a" in "$1"=*) echo "${_a#"$1"=}"; return 0 ;; esac
    done
    return 1
}

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }
# check WHAT CMD...: PASS WHAT when CMD succeeds, FAIL WHAT otherwise.
check() {
    _w="$1"; shift
    if "$@"; then pass "$_w"; else fail "$_w"; fi
}
