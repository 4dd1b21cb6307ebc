# Pipelines: two commands on a fresh machine.
#   make dev    the whole system locally on http://127.0.0.1:3000 (PORT overrides)
#   make test   the whole test suite against DynamoDB Local and moto
SHELL := /bin/bash
STACK := scripts/local-stack.sh
TOOLS := .local-stack/tools/bin

# The local stack, for the commands that run against it.
LOCAL_ENV := AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000 AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566 \
	AWS_ENDPOINT_URL_S3=http://127.0.0.1:4566 AWS_ENDPOINT_URL_STS=http://127.0.0.1:4566 SOURCES_ALLOW_PRIVATE=1 \
	SOURCE_BUCKET=$${SOURCE_BUCKET:-pipelines-sources} \
	AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
SAM_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local SAM_CLI_TELEMETRY=0

.PHONY: dev test scale-test fuzz console-test key lint fmt template-check sam-build stack-start stack-stop bench

dev:
	cargo build -q -p local --bin dev
	$(STACK) run env $(LOCAL_ENV) TABLE_NAME=$${TABLE_NAME:-pipelines} target/debug/dev

test:
	$(STACK) run env $(LOCAL_ENV) scripts/cargo-test.sh

# The scheduler's scale test alone (make test runs it too): 3,000 every-minute schedules of six
# tenants fired within the minute, the small tenants first (docs/scale.md).
scale-test:
	$(STACK) run env $(LOCAL_ENV) cargo test -p local --test api -- --ignored --nocapture

# The API fuzzed against openapi.yaml (schemathesis, seeded, ~25 cases per operation), on a dev
# server of its own: no 500, every status, content type and body as documented.
fuzz:
	cargo build -q -p local --bin dev
	$(STACK) run env $(LOCAL_ENV) scripts/fuzz-api.sh

# The console in headless Chromium (Playwright), on a dev server of its own; screenshots into
# docs/images/.
console-test:
	cargo build -q -p local --bin dev
	$(STACK) run env $(LOCAL_ENV) scripts/console-test.sh

# make key TENANT=acme ROLE=editor [NAME=ci]. With TABLE_NAME (and AUTH_TABLE_NAME) set, it uses
# the plain AWS environment (production bootstrap); without, the running local stack's tables.
key:
	@test -n "$(TENANT)" || { echo "usage: make key TENANT=<tenant> ROLE=<admin|editor|viewer>" >&2; exit 2; }
	@cargo build -q -p local --bin key
	@if [ -n "$$TABLE_NAME" ]; then TENANT=$(TENANT) ROLE=$(ROLE) NAME="$(NAME)" target/debug/key; \
	else env $(LOCAL_ENV) TABLE_NAME=pipelines AUTH_TABLE_NAME=pipelines-auth TENANT=$(TENANT) ROLE=$(ROLE) NAME="$(NAME)" target/debug/key; fi

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

template-check:
	$(STACK) tools
	$(SAM_ENV) $(TOOLS)/sam validate --lint -t template.yaml
	$(SAM_ENV) $(TOOLS)/cfn-lint template.yaml

# sam build of a representative function (arm64, cargo-lambda + zig, no Docker), then every
# function with the same cargo lambda build command.
sam-build:
	scripts/sam-build.sh

# Engine throughput (criterion: in memory, and from source bytes to write requests), whole local
# runs against the emulators (into DynamoDB Local; 2M rows as 1 and as 8 partitions into a
# counting sink), the worker's peak memory on a 1 GB source, and the cold start, first and warm
# invoke and peak memory of every function against a hello-world Lambda.
bench:
	cargo bench -p shared --bench engine
	cargo build --release --workspace --exclude local
	cargo build --release -p local --example hello_lambda
	$(STACK) run env $(LOCAL_ENV) sh -c 'cargo bench -p local --bench local_run && cargo bench -p local --bench partitioned_run && \
		cargo bench -p local --bench memory && cargo bench -p local --bench scheduler && cargo bench -p local --bench coordination && cargo run -q --release -p local --example cold_start'

stack-start:
	$(STACK) start

stack-stop:
	$(STACK) stop
