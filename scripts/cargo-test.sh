#!/usr/bin/env bash
# cargo test over the workspace, then the ignored tests alone (the scheduler's scale test), then one closing line that adds up every test binary's result
# (cargo prints one "test result" line per binary, the last often a 0-test doc-test run).
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The scheduler's scale test (3,000 schedules in a minute) alone, with the emulators to itself.
cargo test -p local --test api -- --ignored --nocapture 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
