#!/bin/sh
# Stays up doing nothing (for pause/unpause, destroy, list, memory tests).
echo BOOTED
while :; do sleep 3600; done
