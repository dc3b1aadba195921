#!/usr/bin/env bash
# template.yaml and BERTH_AWS_INIT=1 define the bucket, the table and the queues the same way.
#   BERTH_TEST_MOTO=http://127.0.0.1:PORT INFRA_PY=.../python MOTO_PY=.../python BERTH_BIN=... bash tests/infra/template_vs_init.sh
# (INFRA_PY has cfn-lint, MOTO_PY has boto3.) The SQS visibility timeout differs on purpose: the
# Lambda event source needs it above the worker's timeout; the in-process poller extends it.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${BERTH_TEST_MOTO:?start moto_server and set BERTH_TEST_MOTO}"
W=$(mktemp -d /tmp/berth-infra.XXXXXX); PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$W"' EXIT
"$INFRA_PY" "$HERE/template_facts.py" "$HERE/../../template.yaml" >"$W/facts.json" || { echo "0 passed, 1 failed"; exit 1; }
N=infra-$RANDOM$RANDOM
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
AWS_ENDPOINT_URL=$BERTH_TEST_MOTO AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  BERTH_BACKEND=aws BERTH_AWS_INIT=1 BERTH_BUCKET=$N BERTH_TABLE=$N BERTH_QUEUE_NAME=$N BERTH_ADMIN_PASSWORD=x \
  "$BERTH_BIN" --listen "127.0.0.1:$PORT" --data-dir "$W/d" >"$W/berth.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
"$MOTO_PY" "$HERE/init_facts.py" "$BERTH_TEST_MOTO" "$N" "$N" "$N" "$W/facts.json"
