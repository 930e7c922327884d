#!/bin/sh
# Crash: a kernel panic, which Domain 0 must see as SHUTDOWN_crash.
echo BOOTED
echo 1 >/proc/sys/kernel/sysrq
echo c >/proc/sysrq-trigger
