#!/bin/sh
# Console input: Domain 0 types the domus.expect= token followed by a newline
# after READY-FOR-INPUT; the guest echoes what it read.
. /tests/lib.sh
want="$(cmdline_get domus.expect || echo)"
stty -echo 2>/dev/null
echo READY-FOR-INPUT
if read -r -t 60 line; then
    line="$(printf '%s' "$line" | tr -d '\r')"
    if [ -n "$want" ] && [ "$line" = "$want" ]; then
        pass "console input $line"
    else
        fail "console input: read '$line', expected '$want'"
    fi
else
    fail "console input: nothing read within 60 s"
fi
poweroff -f
