#!/usr/bin/env bash
# Fuzzes the live API against openapi.yaml with schemathesis.
#
#   scripts/schemathesis.sh <base-url> <api-key> <tenant> [extra schemathesis run options...]
#
#   <base-url>  http://127.0.0.1:3000 or http://127.0.0.1:3000/api/v1 (the /api/v1 is added if missing)
#   <api-key>   an admin key of <tenant> (the admin-only /api-keys endpoints are tested too)
#   <tenant>    the X-Tenant-Id to send
#
# Installs schemathesis (pinned) into .local-stack/schemathesis-venv on first use, then runs every
# phase (examples, coverage, fuzzing, stateful) in positive and negative mode with the checks
# not_a_server_error, status_code_conformance, content_type_conformance and
# response_schema_conformance. Exits non-zero on any failure. Options after <tenant> are passed on
# to `schemathesis run` and win over the ones here (e.g. --max-failures 1, --report junit).
#
# Environment:
#   SCHEMATHESIS_EXAMPLES    test cases per operation in fuzzing and stateful (default 25)
#   SCHEMATHESIS_SEED        Hypothesis seed (default 42): the same seed generates the same cases
#   SCHEMATHESIS_WORKERS     concurrent workers (default 1: a deterministic order; and Python
#                            3.11.7's ast.parse is not thread-safe, which Hypothesis hits with 2+)
#   SCHEMATHESIS_RATE_LIMIT  requests sent at most (default 40/s: under the API's per-key rate,
#                            QUOTA_REQUESTS_PER_SECOND, 50 a second by default)
#   SCHEMATHESIS_TIMEOUT     hard limit in seconds for the whole run (default 600)
#   SCHEMATHESIS_PYTHON      the interpreter that makes the venv (default python3)
#
# The run creates connectors, schemas, pipelines, runs and API keys in <tenant>: point it at a local
# stack, never at a deployment. It never deletes the key it was given (a before_call hook turns a
# DELETE /api-keys?id=<that key> into one for a key that does not exist), and it revokes the API
# keys it created when it ends (they count against the tenant's quota of API keys).
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

usage() {
  echo "usage: $0 <base-url> <api-key> <tenant> [extra schemathesis run options...]" >&2
  exit 2
}
[[ $# -ge 3 ]] || usage
base_url=$1
api_key=$2
tenant=$3
shift 3
[[ -n $base_url && -n $api_key && -n $tenant ]] || usage

examples=${SCHEMATHESIS_EXAMPLES:-25}
seed=${SCHEMATHESIS_SEED:-42}
workers=${SCHEMATHESIS_WORKERS:-1}
rate_limit=${SCHEMATHESIS_RATE_LIMIT:-40/s}
run_timeout=${SCHEMATHESIS_TIMEOUT:-600}
python=${SCHEMATHESIS_PYTHON:-python3}
for n in "$examples" "$seed" "$workers" "$run_timeout"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "not a whole number: '$n'" >&2; exit 2; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/.local-stack/schemathesis-venv
spec=$root/openapi.yaml

# The API lives under /api/v1 (the document's server URL); schemathesis wants it in --url.
base_url=${base_url%/}
case $base_url in
  */api/v1) ;;
  *) base_url=$base_url/api/v1 ;;
esac

installed=$("$venv/bin/schemathesis" --version 2>/dev/null || true)
if [[ $installed != "schemathesis, version $SCHEMATHESIS_VERSION" ]]; then
  echo "Installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  "$venv/bin/schemathesis" --version >&2
fi

# Is the API up, and does it serve GET /openapi.json yet (getOpenapi)? Until it does, that
# operation is left out instead of failing as an undocumented 404.
probe=$("$venv/bin/python" - "$base_url/openapi.json" <<'PY'
import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        print(response.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:  # not listening, reset, timed out
    print(f"unreachable ({e})")
PY
)
case $probe in
  unreachable*)
    echo "The API at $base_url is $probe; start it first (make dev)." >&2
    exit 2
    ;;
  200) exclude=() ;;
  *)
    echo "GET $base_url/openapi.json answers $probe, not 200: leaving out getOpenapi." >&2
    exclude=(--exclude-operation-id getOpenapi)
    ;;
esac

# Written on every run, beside the venv (ignored by git). The stateful phase feeds ids from
# GET /api-keys into DELETE /api-keys: the given key is kept alive, and the keys created are noted.
hooks=$venv/pipelines_hooks.py
created_keys=$venv/created-keys.txt
: >"$created_keys"
cat >"$hooks" <<'PY'
import os

import schemathesis

PROTECTED = os.environ.get("PIPELINES_PROTECTED_KEY_ID", "")
CREATED = os.environ.get("PIPELINES_CREATED_KEYS", "")
ABSENT = "key_" + "0" * 32


def is_api_keys(case, method):
    return case.operation.method.upper() == method and case.operation.path == "/api-keys"


@schemathesis.hook
def before_call(context, case, kwargs):
    if PROTECTED and is_api_keys(case, "DELETE") and isinstance(case.query, dict) and case.query.get("id") == PROTECTED:
        case.query["id"] = ABSENT


@schemathesis.hook
def after_call(context, case, response):
    if not (CREATED and is_api_keys(case, "POST") and response.status_code == 201):
        return
    try:
        key_id = response.json()["id"]
    except Exception:
        return
    if isinstance(key_id, str):
        with open(CREATED, "a", encoding="utf-8") as f:
            f.write(key_id + "\n")
PY
# A key reads pl.<base64url(tenant)>.<key id>.<secret>.
key_id=$(cut -d. -f3 <<<"$api_key")

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
command=(
  "$venv/bin/schemathesis" run "$spec"
  --url "$base_url"
  --header "Authorization: Bearer $api_key"
  --header "X-Tenant-Id: $tenant"
  --checks "$checks"
  --phases examples,coverage,fuzzing,stateful
  --mode all
  --max-examples "$examples"
  --seed "$seed"
  --workers "$workers"
  --rate-limit "$rate_limit"
  --no-shrink
  --suppress-health-check all
  --generation-database none
  --generation-with-security-parameters false
  --request-timeout 10
)
command+=(${exclude[@]+"${exclude[@]}"} "$@")

shown=()
for word in "${command[@]}"; do
  if [[ $word == "Authorization: Bearer "* ]]; then
    shown+=("'Authorization: Bearer ***'")
  elif [[ $word == *" "* ]]; then
    shown+=("'$word'")
  else
    shown+=("$word")
  fi
done
echo "+ ${shown[*]}" >&2

cd "$root"
status=0
SCHEMATHESIS_HOOKS=$hooks PIPELINES_PROTECTED_KEY_ID=$key_id PIPELINES_CREATED_KEYS=$created_keys \
  timeout --signal=INT --kill-after=30 "$run_timeout" "${command[@]}" || status=$?
if [[ $status -eq 124 ]]; then
  echo "schemathesis did not finish within ${run_timeout}s (SCHEMATHESIS_TIMEOUT)" >&2
fi

# Revoke the keys the run created (one the run already deleted answers 404: fine too).
PIPELINES_API_KEY=$api_key PIPELINES_TENANT=$tenant "$venv/bin/python" - "$base_url" "$created_keys" <<'PY' ||
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

base, path = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as f:
    ids = sorted({line.strip() for line in f if line.strip()})
headers = {"Authorization": "Bearer " + os.environ["PIPELINES_API_KEY"], "X-Tenant-Id": os.environ["PIPELINES_TENANT"]}
left = []
for key_id in ids:
    url = base + "/api-keys?" + urllib.parse.urlencode({"id": key_id})
    for attempt in range(5):
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE", headers=headers), timeout=10).close()
            break
        except urllib.error.HTTPError as e:
            if e.code == 404:
                break
            if e.code in (429, 503) and attempt < 4:
                time.sleep(min(float(e.headers.get("Retry-After") or 1), 5))
                continue
            left.append(f"{key_id} ({e.code})")
            break
        except Exception as e:
            left.append(f"{key_id} ({e})")
            break
if ids:
    print(f"Revoked {len(ids) - len(left)} of the {len(ids)} API keys the run created.", file=sys.stderr)
if left:
    print("Not revoked: " + ", ".join(left), file=sys.stderr)
    sys.exit(1)
PY
  echo "Some API keys the run created are still there (see above)." >&2
exit "$status"
