#!/bin/sh
# 70-save-restore with 20 save/restore cycles of the 2-vCPU guest (issue
# 10's acceptance count), for a run by hand; it needs more than run.sh's
# default 300 s:
#   flock /tmp/domus-testhost.lock tests/testhost/run.sh save-restore-20 --timeout 900
# (not a numbered scenario: make check runs 70-save-restore's 3 cycles).
SR_CYCLES=20
. "$(dirname "$0")/70-save-restore.sh"
