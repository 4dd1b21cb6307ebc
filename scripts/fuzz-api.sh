#!/usr/bin/env bash
# `make fuzz`: the local stack's API fuzzed against openapi.yaml (schemathesis), in a table of its
# own. Starts the dev server (target/debug/dev, built by make) on $FUZZ_PORT (default 3100), takes
# the demo key it prints, runs scripts/schemathesis.sh, and stops the server. Expects the
# emulators up and the local AWS environment set (the Makefile runs it so).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${FUZZ_PORT:-3100}
# shellcheck source=scripts/dev-server.sh
. "$root/scripts/dev-server.sh"
start_dev_server "$port" "fuzz-$(date +%s)" fuzz
status=0
"$root/scripts/schemathesis.sh" "http://127.0.0.1:$port" "$dev_key" demo "$@" || status=$?
# A 500 is logged with its cause: show those, whatever schemathesis said.
grep -E "status=5[0-9][0-9]" "$dev_log" | grep -v "status=503" >&2 || true
exit $status
