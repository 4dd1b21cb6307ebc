#!/usr/bin/env bash
# The local stack: DynamoDB Local (official jar, shipped in the npm package
# amplify-dynamodb-simulator) on :8000 and moto (SQS) on :4566.
#   scripts/local-stack.sh install   fetch what is missing into .local-stack/
#   scripts/local-stack.sh start     start what is not already listening
#   scripts/local-stack.sh stop      stop what `start` started
#   scripts/local-stack.sh run CMD…  run CMD with the stack up; stop afterwards what was started for it
# Pids of what `start` started go to $STACK_RUN_DIR (default .local-stack/run).
#   scripts/local-stack.sh tools     install aws-sam-cli and cfn-lint (template checks)
#   scripts/local-stack.sh build-tools  install cargo-lambda and zig, and the arm64 Rust target (sam build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.local-stack"
ddb_version=2.9.30
ddb_port=${DYNAMODB_PORT:-8000}
moto_port=${MOTO_PORT:-4566}
run_dir=${STACK_RUN_DIR:-$dir/run}
mkdir -p "$run_dir" "$dir/run"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install() {
  if [ ! -f "$dir/ddb/package/emulator/DynamoDBLocal.jar" ]; then
    echo "local-stack: fetching DynamoDB Local (npm amplify-dynamodb-simulator@$ddb_version)"
    rm -rf "$dir/ddb" && mkdir -p "$dir/ddb"
    (cd "$dir/ddb" && npm pack --silent "amplify-dynamodb-simulator@$ddb_version" >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz)
  fi
  if [ ! -x "$dir/venv/bin/moto_server" ]; then
    echo "local-stack: installing moto[server] into .local-stack/venv"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.*'
  fi
}

build_tools() {
  tools
  if [ ! -x "$dir/tools/bin/cargo-lambda" ] || [ ! -x "$dir/tools/bin/python-zig" ]; then
    echo "local-stack: installing cargo-lambda and zig into .local-stack/tools"
    "$dir/tools/bin/pip" install --quiet --disable-pip-version-check cargo-lambda ziglang
  fi
  rustup target add aarch64-unknown-linux-gnu >/dev/null
}

tools() {
  if [ ! -x "$dir/tools/bin/sam" ] || [ ! -x "$dir/tools/bin/cfn-lint" ]; then
    echo "local-stack: installing aws-sam-cli and cfn-lint into .local-stack/tools"
    python3 -m venv "$dir/tools"
    "$dir/tools/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli cfn-lint
  fi
}

wait_for() { # port name seconds
  for _ in $(seq 1 $(($3 * 10))); do listening "$1" && return 0; sleep 0.1; done
  echo "local-stack: $2 did not start on :$1 (see .local-stack/run/$2.log)" >&2
  return 1
}

start() {
  install
  if listening "$ddb_port"; then
    echo "local-stack: DynamoDB Local already on :$ddb_port"
  else
    emu="$dir/ddb/package/emulator"
    # From its own folder: DynamoDB Local writes a metadata file into its working directory.
    # exec: the pid recorded is java's own, so that `stop` stops it.
    (cd "$dir/run" && exec java -Djava.library.path="$emu/DynamoDBLocal_lib" -jar "$emu/DynamoDBLocal.jar" \
      -inMemory -sharedDb -port "$ddb_port") >"$dir/run/dynamodb.log" 2>&1 &
    echo $! >"$run_dir/dynamodb.pid"
  fi
  if listening "$moto_port"; then
    echo "local-stack: moto already on :$moto_port"
  else
    # PurgeQueue at any rate: the scale test and benchmark empty the run queue with it
    # (`local::fleet::drain`), as moto's cost of every send and receive grows with the queue.
    MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false \
      "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$dir/run/moto.log" 2>&1 &
    echo $! >"$run_dir/moto.pid"
  fi
  wait_for "$ddb_port" dynamodb 60
  wait_for "$moto_port" moto 60
  echo "local-stack: DynamoDB Local on :$ddb_port, moto on :$moto_port"
}

stop() {
  for name in dynamodb moto; do
    pidfile="$run_dir/$name.pid"
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
      # Until its port closes: a `run` right after would otherwise find the dying emulator still
      # answering, use it, and lose it a moment later (CI's console test did).
      port=$ddb_port; [ "$name" = moto ] && port=$moto_port
      for _ in $(seq 1 150); do listening "$port" || break; sleep 0.1; done
    fi
  done
}

case "${1:-}" in
  install) install ;;
  build-tools) build_tools ;;
  tools) tools ;;
  start) start ;;
  stop) stop ;;
  run)
    shift
    export STACK_RUN_DIR; STACK_RUN_DIR=$(mktemp -d)
    run_dir=$STACK_RUN_DIR
    trap stop EXIT
    trap 'exit 130' INT TERM
    start
    "$@"
    ;;
  *) echo "usage: $0 install|tools|build-tools|start|stop" >&2; exit 2 ;;
esac
