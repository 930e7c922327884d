#!/bin/sh
# testhost-timeout: 1200
# check: by hand: 2 of 6 runs passed whole on 3 Dec; the others ended in
# the nested test host (its kernel's "corrupted stack end" panic twice, a
# guest triple fault twice) under its long dirty-logging phases: issue 9's
# instability, which a make check must not inherit.  Run it with
# DOMUS_SCENARIOS=77-migrate-postcopy or tests/testhost/run.sh.
# Post-copy live migration (domus migrate --postcopy) of a guest that
# dirties memory faster than the link carries it, beside pre-copy on the
# same guest.  Two domusd instances, A and B, in one machine (as in
# 75-migrate: their own run and log dirs, xenstored and socket; the disk
# shared by path).  A 2-vCPU 192 MiB guest runs the save/restore workload
# (tests/guest/saverest.sh: a checksummed 1 MiB pattern written to xvdb and
# read back every round, the clock checked monotonic) with memdirty
# rewriting MIG_DIRTY (MiB:MiB/s, default 16:8) of its memory and checking
# every page still holds its last index and generation: the integrity
# check of the pages pulled on fault.  Every migration is limited to
# MIG_BW MiB/s (default 4, `--bandwidth`), below the dirtying rate.
# post-copy A->B (-s env), pre-copy B->A (TCP), post-copy A->B and B->A:
# pre-copy cannot converge (the dirty set does not shrink), so its final
# round carries the whole dirty set; post-copy resumes the guest on the
# destination after the same rounds (MIG_ROUNDS, default 2) and pulls the
# rest.  Each prints its downtime, total time (and the post-copy phase).
# After each: g gone from the source (no domus-vm, no run file), running
# on the destination, its workload going on; at the end no FAIL line, no
# bad disk pattern, memdirty's pages all as it left them.  The line
# "compare:" gives pre-copy's and post-copy's downtime and total time.
# Then the link cut in the post-copy phase: the receiver killed once the
# guest runs on B: B destroys the domain (it lacks pages only A had), A
# keeps its paused copy and says so; both report it; A's copy is then
# destroyed by hand, and nothing is left on either host.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
. "$HERE/lib-mig.sh"
DIRTY="${MIG_DIRTY:-16:8}"
BW="${MIG_BW:-4}"
ROUNDS="${MIG_ROUNDS:-2}" # dirty rounds before the final one, pre-copy and post-copy alike
B_HOST="DOMUS_RUN_DIR=$B_RUN DOMUS_LOG_DIR=$B_LOG"
trap mig_stop EXIT
EXTRA_CMDLINE="domus.dirty=$DIRTY" \
    MEMORY=192 mkcfg g saverest 2 'on_poweroff = "destroy"' "disk = [ '$IMG,raw,xvdb,rw' ]"

wait_state_a_p() { onA wait_state g p 5; }
dirty_lines() { count_in_log "$1" '^DIRTY '; }
# runs_on SIDE LABEL: g runs on SIDE, its rounds and memdirty's reports go on.
runs_on() {
    _d0="$(on$1 dirty_lines g)"
    if on$1 more_rounds g 2 120 && on$1 wait_log g '^DIRTY ' 60 "$((_d0 + 1))"; then
        pass "mig $2: g runs on $1, its workload goes on ($(on$1 last_round g))"
    else
        fail "mig $2: g's workload does not go on on $1"
        on$1 diag g
    fi
    check "mig $2: g is running on $1" on$1 wait_state g r 5
}
landed() { # landed FROM TO LABEL
    check "mig $3: g is gone from $1" on$1 wait_gone g 30
    check "mig $3: nothing left on $1 (no domus-vm, no run file)" on$1 nothing_here
    runs_on "$2" "$3"
}
# field NAME: a number from the summary ("downtime 812.4 ms" -> 812.4)
field() {
    grep "^migration:\|^post-copy:" "$DOMUS_TMP/mig.out" | tr ',' '\n' |
        sed -n "s/.* $1 \([0-9.]*\).*/\1/p" | head -n 1
}
summary() {
    grep '^migration:\|^post-copy:' "$DOMUS_TMP/mig.out" | tr '\n' ' '
}
PRE='' POST=''
record() { # record pre|post: its downtime and total into PRE / POST
    _r="$(field downtime)/$(field total)"
    [ "$1" = pre ] || _r="$_r (post-copy $(sed -n 's/.* in \([0-9.]*\) s .*/\1/p' "$DOMUS_TMP/mig.out") s)"
    if [ "$1" = pre ]; then PRE="$PRE $_r"; else POST="$POST $_r"; fi
}

# mig_env LABEL MODE: A->B with -s env (as xl, env standing in for ssh).
mig_env() {
    if onA domus migrate $2 --bandwidth "$BW" --max-rounds "$ROUNDS" -s env g "$B_HOST" >"$DOMUS_TMP/mig.out" \
        2>"$DOMUS_TMP/err"; then
        pass "mig $1: domus migrate $2 -s env g <B> ($(summary))"
    else
        fail "mig $1: domus migrate A->B: $(tr '\n' '|' <"$DOMUS_TMP/err")"
        onA diag g
        onB diag g
        return 1
    fi
    landed A B "$1"
}
# mig_tcp LABEL MODE: B->A over TCP.
mig_tcp() {
    listen_on A 7077 || fail "mig $1: migrate-receive --listen on A"
    if onB domus migrate $2 --bandwidth "$BW" --max-rounds "$ROUNDS" --transport tcp:127.0.0.1:7077 g A \
        >"$DOMUS_TMP/mig.out" 2>"$DOMUS_TMP/err"; then
        pass "mig $1: domus migrate $2 --transport tcp g A ($(summary))"
    else
        fail "mig $1: domus migrate B->A: $(tr '\n' '|' <"$DOMUS_TMP/err")"
        onB diag g
        onA diag g
    fi
    wait $recv_pid
    check "mig $1: the receiver on A ends well ($(tail -n 1 "$DOMUS_TMP/recv.err"))" \
        grep -q 'runs here\|every page' "$DOMUS_TMP/recv.err"
    recv_pid=
    landed B A "$1"
}

check "mig: both hosts' domusd start" sh -c "DOMUS_RUN_DIR=$A_RUN DOMUS_LOG_DIR=$A_LOG domus list >/dev/null && DOMUS_RUN_DIR=$B_RUN DOMUS_LOG_DIR=$B_LOG domus list >/dev/null"
check "mig: domus create g on A (2 vCPUs, a disk, memdirty $DIRTY)" onA domus create "$DOMUS_TMP/g.cfg"
check "mig: g runs its workload on A" onA wait_log g '^ROUND 2 ' 120
check "mig: memdirty reports on A" onA wait_log g '^DIRTY ' 60

# Post-copy first, then pre-copy on the same guest, then post-copy there
# and back (the test host has panicked twice in a second migration of a
# guest dirtying 16 MiB/s: the first run's guest triple-faulted, the
# second's host kernel found a vCPU thread's stack corrupted, both while
# the source ran pre-copy rounds, before any post-copy code runs).
for _m in "post-copy A->B" "pre-copy B->A" "post-copy A->B (again)" "post-copy B->A (back)"; do
    case "$_m" in
    pre*) _o="" ;;
    *) _o=--postcopy ;;
    esac
    case "$_m" in
    *"B->A"*) mig_tcp "$_m" $_o ;;
    *) mig_env "$_m" $_o ;;
    esac || continue
    if [ -z "$_o" ]; then
        record pre
        PRE="$PRE ($(sed -n 's/^migration: \([0-9]*\) rounds.*/\1/p' "$DOMUS_TMP/mig.out") rounds, final round $(field 'final round') ms)"
    else
        record post
        check "mig $_m: the post-copy phase ran ($(grep '^post-copy:' "$DOMUS_TMP/mig.out"))" \
            grep -q '^post-copy: [0-9]* pages' "$DOMUS_TMP/mig.out"
    fi
done
clean A
clean B
echo "compare: the same guest (memdirty $DIRTY MiB:MiB/s, link $BW MiB/s), downtime ms/total s: pre-copy$PRE; post-copy$POST"

# ---- the link lost in the post-copy phase ----
listen_on B 7078 || fail "mig cut: migrate-receive --listen on B"
onA domus migrate --postcopy --bandwidth 4 --max-rounds 1 --transport tcp:127.0.0.1:7078 g B \
    >"$DOMUS_TMP/mig.out" 2>"$DOMUS_TMP/err" &
mig_pid=$!
for _i in $(seq 1200); do
    grep -q 'runs here' "$DOMUS_TMP/recv.err" 2>/dev/null && break
    sleep 0.1
done
if grep -q 'runs here' "$DOMUS_TMP/recv.err"; then
    kill -9 "$recv_pid"
    pass "mig cut: the receiver killed once g runs on B, in the post-copy phase"
else
    fail "mig cut: g never ran on B ($(tail -n 1 "$DOMUS_TMP/recv.err"))"
fi
recv_pid=
if wait "$mig_pid"; then
    fail "mig cut: domus migrate succeeded with its receiver killed in post-copy"
else
    pass "mig cut: migrate fails: $(tail -n 1 "$DOMUS_TMP/err")"
fi
mig_pid=
check "mig cut: the source says its copy is kept paused, not resumed" \
    grep -q 'post-copy failed.*kept paused' "$DOMUS_TMP/err"
check "mig cut: B destroys its copy" onB wait_gone g 60
check "mig cut: nothing left on B" onB nothing_here
check "mig cut: B's domus-vm says why" \
    grep -q 'post-copy migration failed after the guest started' "$B_LOG/domus-vm-g.log"
check "mig cut: A keeps g, paused" onA wait_state g p 5
_r0="$(onA rounds g)"
sleep 5
check "mig cut: A's copy does not run (no new round in 5 s)" [ "$(onA rounds g)" = "$_r0" ]
if onA domus unpause g >/dev/null 2>"$DOMUS_TMP/err"; then
    fail "mig cut: A's stale copy could be unpaused"
else
    pass "mig cut: A refuses to unpause its copy: $(tail -n 1 "$DOMUS_TMP/err")"
fi
check "mig cut: A's copy still does not run" wait_state_a_p
check "mig cut: A's copy destroyed by hand" onA domus destroy g
check "mig: nothing left on A" onA nothing_here
check "mig: nothing left on B" onB nothing_here
exit 0
