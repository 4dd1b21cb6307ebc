#!/usr/bin/env bash
# `make console-test`: the console in a real browser. Installs Debian's Chromium (when missing)
# and Playwright for Python (into .local-stack/browser-venv), starts the dev server on
# $CONSOLE_PORT (default 3200) in a table of its own, and runs console/tests/test_console.py,
# which writes its screenshots to docs/images/. Expects the emulators up and the local AWS
# environment set (the Makefile runs it so).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${CONSOLE_PORT:-3200}
venv=$root/.local-stack/browser-venv
if ! command -v chromium >/dev/null; then
  echo "console-test: installing chromium (Debian)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; else sudo apt-get install -y -qq chromium >/dev/null; fi
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  echo "console-test: installing playwright into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'playwright==1.65.*'
fi
# shellcheck source=scripts/dev-server.sh
. "$root/scripts/dev-server.sh"
start_dev_server "$port" "console-$(date +%s)" console-test
mkdir -p "$root/docs/images"
"$venv/bin/python" "$root/console/tests/test_console.py" "http://127.0.0.1:$port" "$dev_key" demo "$root/docs/images" || {
  echo "console-test: failed; the dev server's last lines:" >&2
  tail -20 "$dev_log" >&2
  exit 1
}
