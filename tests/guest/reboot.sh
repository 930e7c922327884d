#!/bin/sh
# Reboot: Domain 0 sees the domain restart (on_reboot) and counts BOOTED lines.
echo BOOTED
reboot -f
