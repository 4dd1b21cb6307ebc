#!/usr/bin/env bash
# The template built as a deployment builds it, without Docker: `sam build` of a representative
# function (BuildMethod rust-cargolambda, arm64, through cargo-lambda and zig), then every
# function with the `cargo lambda build` command sam runs for each. Prints each step's time and
# the bootstrap sizes. Installs what it needs (scripts/local-stack.sh build-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/local-stack.sh build-tools
export PATH="$PWD/.local-stack/tools/bin:$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local

start=$(date +%s)
sam build ListPipelinesFunction --template-file template.yaml --build-dir .aws-sam/build >/dev/null
echo "sam build ListPipelinesFunction (arm64): $(( $(date +%s) - start )) s, bootstrap $(stat -c %s .aws-sam/build/ListPipelinesFunction/bootstrap) bytes"

# No -p: the workspace's default members, the selection sam's `--bin` build resolved features over,
# so this reuses everything it compiled and adds only the other binaries.
start=$(date +%s)
cargo lambda build --release --arm64
echo "cargo lambda build --release --arm64 of $(ls -d functions/*/ | wc -l) functions: $(( $(date +%s) - start )) s"
for dir in functions/*/; do
  name=$(basename "$dir")
  test -s "target/lambda/$name/bootstrap" || { echo "sam-build: target/lambda/$name/bootstrap is missing" >&2; exit 1; }
  printf '%-20s %s bytes\n' "$name" "$(stat -c %s "target/lambda/$name/bootstrap")"
done
