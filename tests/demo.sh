#!/usr/bin/env bash
# `make demo`: boots a guest with the domus CLI inside the test host (or
# natively on a machine with vmx/svm) and shows its console and `domus list`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec tests/testhost/run.sh --show --timeout 400 tests/testhost/demo-scenario.sh
