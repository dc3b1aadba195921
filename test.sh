#!/usr/bin/env bash
# Berth's whole test suite. It installs what the tests need when it is missing (Debian packages;
# Python packages into virtual environments under target/), then runs:
#   - the Rust tests: domain, services, the port suites on every adapter (memory, embedded, and
#     S3/DynamoDB/SQS on a moto server it starts on a loopback port), routers, the binaries;
#     when a Python 3.13 is on the machine, the S3 and SQS suites again on LocalStack, which
#     checks presigned URLs as S3 does (the LocalStack tier; the last line says whether it ran);
#   - end-to-end tests with real clients (skopeo, podman, a real dockerd, the pulp CLI) against the
#     release binary, on the embedded store and on the AWS adapters; sync from real upstreams;
#     scheduled syncs; pull-through caching; a crash in the middle of a sync;
#   - the web page in a real browser (Debian's chromium and chromedriver, selenium from PyPI): the
#     browser tier, skipped with BERTH_UI=0 (the last lines say whether it ran);
#   - the torture suite (tests/chaos): racing pushes and creates, password and connection floods,
#     kill -9 in the middle of pushes, SSRF refusals, a full disk; on both stores;
#   - the Lambda function binaries under a Lambda Runtime API emulator, the functions under
#     `cargo lambda watch` (when cargo-lambda is installed; BERTH_CARGO_LAMBDA=1 installs it,
#     which takes about 15 minutes; BERTH_CARGO_LAMBDA=0 skips it), with BERTH_ARM64=1 the
#     functions built for arm64 by cargo lambda and run under qemu, and the SAM template's
#     linters (cfn-lint, sam validate --lint); infra/compose.yaml checked by docker-compose.
#
#   ./test.sh              everything
#   ./test.sh --quick      the Rust tests only
#   ./test.sh --localstack the LocalStack tier only (it fails when LocalStack cannot start)
#   BERTH_LOCALSTACK=0     skips the LocalStack tier
#   BERTH_UI=0             skips the browser tier
set -euo pipefail
cd "$(dirname "$0")"

quick=0 localstack_only=0
[ "${1:-}" = "--quick" ] && quick=1
[ "${1:-}" = "--localstack" ] && quick=1 localstack_only=1

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo not found; install a Rust toolchain (https://rustup.rs), 1.89 or newer" >&2
  exit 1
fi

# the Rust tests sync from a real docker-registry; the end-to-end tests need real clients
tools=(docker-registry curl)
[ "$quick" = 0 ] && tools+=(skopeo podman buildah umoci dockerd:docker.io runc gcc jq gpg:gnupg htpasswd:apache2-utils docker-compose)
need=()
for p in "${tools[@]}"; do
  bin=${p%%:*}; pkg=${p#*:}
  command -v "$bin" >/dev/null || need+=("$pkg")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi

# venv DIR PACKAGES…: a virtual environment under target/ with these packages, made by $PYTHON
# (python3 by default); fails when the install does
venv() {
  local dir=$1; shift
  if [ ! -e "$dir/.ready" ]; then
    echo "== installing $* into $dir"
    rm -rf "$dir"
    "${PYTHON:-python3}" -m venv "$dir" && "$dir/bin/pip" install -q "$@" && touch "$dir/.ready"
  fi
}
mkdir -p target

# free_port: a free TCP port on the loopback interface
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# the servers this run starts, stopped on exit (killed when they are still there after 10 s:
# LocalStack's shutdown can hang); then the LocalStack tier's line
pids=()
localstack_tier="skipped (BERTH_LOCALSTACK=0)"
ui_tier="skipped (BERTH_UI=0)"
[ "$quick" = 1 ] && ui_tier="skipped (--quick)"
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${s:0:1}" != Z ]; }
on_exit() {
  local p i
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do
    for i in $(seq 100); do alive "$p" || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ "${localstack:-0}" = 1 ]; then
    local passed failed
    passed=$(grep -c '^test port_suite::localstack::.* ok$' target/cargo-test.log 2>/dev/null || true)
    failed=$(grep -c '^test port_suite::localstack::.* FAILED$' target/cargo-test.log 2>/dev/null || true)
    localstack_tier="ran (${passed:-0} tests passed, ${failed:-0} failed: port_suite::localstack, S3 and SQS at LocalStack)"
  fi
  echo "Browser tier: $ui_tier"
  echo "LocalStack tier: $localstack_tier"
}
trap on_exit EXIT

# moto (S3, DynamoDB, SQS) on a free loopback port, for the whole run; tests/moto_server.py is
# moto_server with DynamoDB's per-item atomicity (moto does not lock around a conditional write)
venv target/moto-venv 'moto[server]==5.2.5'
moto_port=$(free_port)
target/moto-venv/bin/python tests/moto_server.py -H 127.0.0.1 -p "$moto_port" >target/moto.log 2>&1 &
pids+=($!)
python3 - "$moto_port" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("moto_server did not start; see target/moto.log")
PY
export BERTH_TEST_MOTO="http://127.0.0.1:$moto_port"

# The LocalStack tier: LocalStack's S3 and SQS (localstack-core in host mode, no Docker) on a
# free loopback port, when a Python 3.13 is on the machine (localstack-core needs it): the S3
# and SQS suites run again there (`port_suite::localstack`, the `localstack` feature), because
# LocalStack checks a presigned URL's signature, method and expiry as S3 does, and moto does
# not. DynamoDB stays on moto (LocalStack's downloads DynamoDB Local at first use). The first
# install takes 1 to 6 minutes (then cached like moto's); a start 2 to 10 s; the tests
# about 15 s, beside the others. It stays off the internet: no DNS server, no usage events.
# start_localstack: starts it and sets BERTH_TEST_LOCALSTACK, or says why not in
# $localstack_tier and fails
start_localstack() {
  local py=${BERTH_LOCALSTACK_PYTHON:-} d
  if [ -z "$py" ] && python3.13 --version >/dev/null 2>&1; then py=python3.13; fi
  if [ -z "$py" ] && command -v pyenv >/dev/null; then
    for d in "$(pyenv root)"/versions/3.13*; do [ -x "$d/bin/python3" ] && py="$d/bin/python3"; done
  fi
  if [ -z "$py" ]; then
    localstack_tier="skipped (no Python 3.13: neither python3.13 nor \`pyenv root\`/versions/3.13*; localstack-core needs it)"
    return 1
  fi
  if ! PYTHON=$py venv target/localstack-venv 'localstack-core[runtime]==2026.3.0' 'cbor2<6' \
      'pyOpenSSL==25.3.0' 'service_identity<26'; then
    localstack_tier="skipped (installing localstack-core into target/localstack-venv failed; see above)"
    return 1
  fi
  local port
  port=$(free_port)
  rm -rf target/localstack
  # GATEWAY_SERVER=hypercorn: the default server ignores the host part of GATEWAY_LISTEN
  env GATEWAY_LISTEN="127.0.0.1:$port" GATEWAY_SERVER=hypercorn SERVICES=s3,sqs DNS_ADDRESS=0 \
    S3_SKIP_SIGNATURE_VALIDATION=0 DISABLE_EVENTS=1 LOCALSTACK_VOLUME_DIR="$PWD/target/localstack" \
    target/localstack-venv/bin/python -m localstack.runtime.main >target/localstack.log 2>&1 &
  local pid=$!
  pids+=("$pid")
  if ! python3 - "$port" <<'PY'
import json, sys, time, urllib.request
for _ in range(600):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_localstack/health", timeout=1) as r:
            services = json.load(r)["services"]
        if all(services.get(s) in ("available", "running") for s in ("s3", "sqs")):
            sys.exit(0)
    except (OSError, ValueError, KeyError):
        pass
    time.sleep(0.1)
sys.exit(1)
PY
  then
    kill "$pid" 2>/dev/null || true
    localstack_tier="skipped (LocalStack did not start in 60 s; see target/localstack.log)"
    return 1
  fi
  export BERTH_TEST_LOCALSTACK="http://127.0.0.1:$port"
}
features=berth-shared/moto
localstack=0
if [ "${BERTH_LOCALSTACK:-1}" != 0 ] || [ "$localstack_only" = 1 ]; then
  echo "== LocalStack (S3, SQS)"
  t0=$SECONDS
  if start_localstack; then
    localstack=1 features=berth-shared/localstack
    echo "LocalStack is at $BERTH_TEST_LOCALSTACK ($((SECONDS - t0)) s to install and start)"
  else
    echo "LocalStack tier: $localstack_tier"
    [ "$localstack_only" = 1 ] && exit 1
  fi
fi

echo "== cargo test"
t0=$SECONDS
if [ "$localstack_only" = 1 ]; then
  cargo test -p berth-shared --lib --locked --features berth-shared/localstack port_suite::localstack \
    2>&1 | tee target/cargo-test.log
else
  cargo test --workspace --locked --features "$features" 2>&1 | tee target/cargo-test.log
fi
echo "== cargo test took $((SECONDS - t0)) s"

[ "$quick" = 1 ] && exit 0

echo "== end-to-end"
t0=$SECONDS
cargo build --release --locked -p berth -p berth-api -p berth-registry -p berth-sync-worker
# the unmodified pulp CLI and `cryptography` (cosign-format signatures), from PyPI
venv target/e2e-venv 'pulp-cli==0.41.1' cryptography
echo "== the release build took $((SECONDS - t0)) s"
export BERTH_BIN="$PWD/target/release/berth" PULP_BIN="$PWD/target/e2e-venv/bin/pulp" FIXTURE_PY="$PWD/target/e2e-venv/bin/python"
failed=0
# run NAME CMD…: CMD as a phase of its own, its time in seconds after it (and the run's so far)
run() {
  local name=$1 t=$SECONDS; shift
  echo "== $name"
  "$@" || failed=1
  echo "== $name took $((SECONDS - t)) s ($SECONDS s since the start)"
}
run "real clients, embedded store" bash tests/e2e/clients.sh
# on_aws NAME CMD…: CMD with the Berth it starts on the AWS adapters (moto), in a bucket, table
# and queue of its own
on_aws() {
  local name=$1-$moto_port; shift
  env AWS_ENDPOINT_URL="$BERTH_TEST_MOTO" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=testing BERTH_BACKEND=aws BERTH_AWS_INIT=1 \
    BERTH_BUCKET="$name" BERTH_TABLE="$name" BERTH_QUEUE_NAME="$name" "$@"
}
run "real clients, AWS adapters on moto" on_aws e2e bash tests/e2e/clients.sh
run "registry auth with real clients, both modes" bash tests/e2e/auth.sh
run "registry auth with real clients, both modes, AWS adapters on moto" on_aws auth bash tests/e2e/auth.sh
run "the pulp CLI" bash tests/e2e/pulp_cli.sh
run "the pulp CLI, AWS adapters on moto" on_aws cli bash tests/e2e/pulp_cli.sh
run "teams and access with the pulp CLI and real clients, both modes" bash tests/e2e/teams.sh
run "teams and access, AWS adapters on moto" on_aws teams bash tests/e2e/teams.sh
run "schedules: a sync every 5 s from a changing upstream" bash tests/e2e/schedules.sh
run "schedules, AWS adapters on moto" on_aws sched bash tests/e2e/schedules.sh
run "pull-through caching with real clients (podman, skopeo, docker, containerd)" bash tests/e2e/pull_through.sh
run "pull-through caching, AWS adapters on moto" on_aws pt bash tests/e2e/pull_through.sh
run "sync from real upstreams" bash tests/e2e/sync.sh
run "sync from real upstreams, AWS adapters on moto" on_aws sync bash tests/e2e/sync.sh
run "a crash in the middle of a sync" bash tests/e2e/crash.sh
run "HTTPS with real clients, certificate verification on" bash tests/e2e/tls.sh
# The browser tier: the web page in Debian's chromium, driven through chromedriver by selenium
# (tests/ui/browser.py, about 30 s): a synced repository opened after a login through the form,
# checked against the API, screenshots into target/ui-screenshots/ and docs/screenshots/.
# chromium and chromium-driver are installed for this tier only; BERTH_UI=0 skips it.
if [ "${BERTH_UI:-1}" != 0 ]; then
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium chromium-driver (the browser tier)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver; } || true
  fi
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    ui_tier="skipped (installing Debian's chromium and chromium-driver failed; see above)"
  elif ! venv target/ui-venv 'selenium==4.51.0'; then
    ui_tier="skipped (installing selenium into target/ui-venv failed; see above)"
  else
    echo "== the web page in a real browser (chromium)"
    t0=$SECONDS
    if target/ui-venv/bin/python tests/ui/browser.py 2>&1 | tee target/ui-browser.log; then
      ui_tier="ran ($(tail -1 target/ui-browser.log), $((SECONDS - t0)) s: tests/ui/browser.py in chromium)"
    else
      failed=1
      ui_tier="ran and FAILED ($(tail -1 target/ui-browser.log); see target/ui-browser.log)"
    fi
  fi
fi
run "torture suite, embedded store" python3 tests/chaos/run.py
run "torture suite, AWS adapters on moto" on_aws chaos python3 tests/chaos/run.py
run "the Lambda functions under a Runtime API emulator" python3 tests/lambda/functions.py target/release
cargo_lambda=${BERTH_CARGO_LAMBDA:-auto}
if [ "$cargo_lambda" = 1 ] && ! command -v cargo-lambda >/dev/null; then
  echo "== installing cargo-lambda (about 15 minutes)"
  cargo install cargo-lambda --locked --version 1.9.2
fi
if [ "$cargo_lambda" != 0 ] && command -v cargo-lambda >/dev/null; then
  run "the functions under cargo lambda watch" target/moto-venv/bin/python tests/lambda/watch.py target/release
else
  echo "== the functions under cargo lambda watch: skipped (cargo-lambda is not installed; BERTH_CARGO_LAMBDA=1 installs it)"
fi
# arm64, as deployed (only with BERTH_ARM64=1: it needs cargo-lambda, the rustup target, zig
# from PyPI, and qemu-user from Debian, and a cross build of about 6 minutes): cargo lambda
# builds the functions for arm64 and they run under qemu with the Runtime API emulator
if [ "${BERTH_ARM64:-0}" = 1 ]; then
  if ! command -v cargo-lambda >/dev/null; then
    echo "== installing cargo-lambda (about 15 minutes)"
    cargo install cargo-lambda --locked --version 1.9.2
  fi
  rustup target add aarch64-unknown-linux-gnu
  venv target/zig-venv ziglang
  command -v qemu-aarch64 >/dev/null && [ -d /usr/aarch64-linux-gnu ] || {
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q qemu-user libc6-arm64-cross
  }
  run "cargo lambda build --arm64" env PATH="$PWD/target/zig-venv/bin:$PATH" CARGO_TARGET_DIR=target/arm64 \
    cargo lambda build --release --arm64 -p berth-api -p berth-registry -p berth-sync-worker
  run "the arm64 functions under qemu and a Runtime API emulator" env BERTH_FN_DIR=target/arm64/lambda \
    BERTH_FN_RUNNER=qemu-aarch64 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu python3 tests/lambda/functions.py target/release
fi
# the SAM template: cfn-lint and sam validate --lint, offline
venv target/infra-venv cfn-lint aws-sam-cli
run "cfn-lint template.yaml" target/infra-venv/bin/cfn-lint template.yaml
run "sam validate --lint" env AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  SAM_CLI_TELEMETRY=0 target/infra-venv/bin/sam validate --lint --template template.yaml
# infra/: the compose file that runs Berth against LocalStack and DynamoDB Local
run "docker-compose config infra/compose.yaml" env BERTH_ADMIN_PASSWORD=lint \
  docker-compose -f infra/compose.yaml config -q
run "the CloudWatch dashboard and alarms (template.yaml, infra/dashboard.json)" python3 tests/infra/dashboard.py
run "template.yaml and BERTH_AWS_INIT agree" env INFRA_PY="$PWD/target/infra-venv/bin/python" \
  MOTO_PY="$PWD/target/moto-venv/bin/python" bash tests/infra/template_vs_init.sh
exit $failed
