# Sourced by the scripts that test a running API (fuzz-api.sh, console-test.sh):
#   start_dev_server <port> <table> <name>
# starts target/debug/dev (built by make) on <port> over a table of its own, waits until it
# serves, sets $dev_key to the demo admin key it prints and $dev_log to its log, and stops it
# when the calling script exits. <name> prefixes its messages.
start_dev_server() {
  local port=$1 table=$2 name=$3
  dev_log=$(mktemp)
  PORT=$port TABLE_NAME=$table "$root/target/debug/dev" >"$dev_log" 2>&1 &
  dev_server=$!
  trap 'kill $dev_server 2>/dev/null || true; rm -f "$dev_log"' EXIT
  for _ in $(seq 1 60); do
    grep -q "is serving" "$dev_log" && break
    kill -0 $dev_server 2>/dev/null || { cat "$dev_log" >&2; echo "$name: the dev server stopped" >&2; exit 1; }
    sleep 1
  done
  dev_key=$(grep -o "Bearer pl[^' ]*" "$dev_log" | head -n1 | cut -d' ' -f2)
  [[ -n $dev_key ]] || { cat "$dev_log" >&2; echo "$name: no demo key in the dev server's log" >&2; exit 1; }
}
