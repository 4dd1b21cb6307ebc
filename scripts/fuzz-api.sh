#!/usr/bin/env bash
# `make fuzz`: the local stack's API fuzzed against openapi.yaml (schemathesis), in a table of its
# own. Starts the dev server (target/debug/dev, built by make) on $FUZZ_PORT (default 3100), takes
# the demo key it prints, runs scripts/schemathesis.sh, and stops the server. Expects the
# emulators up and the local AWS environment set (the Makefile runs it so).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${FUZZ_PORT:-3100}
log=$(mktemp)
PORT=$port TABLE_NAME="fuzz-$(date +%s)" "$root/target/debug/dev" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 60); do
  grep -q "is serving" "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; echo "fuzz: the dev server stopped" >&2; exit 1; }
  sleep 1
done
key=$(grep -o "Bearer pl[^' ]*" "$log" | head -n1 | cut -d' ' -f2)
[[ -n $key ]] || { cat "$log" >&2; echo "fuzz: no demo key in the dev server's log" >&2; exit 1; }
status=0
"$root/scripts/schemathesis.sh" "http://127.0.0.1:$port" "$key" demo "$@" || status=$?
# A 500 is logged with its cause: show those, whatever schemathesis said.
grep -E "status=5[0-9][0-9]" "$log" | grep -v "status=503" >&2 || true
exit $status
