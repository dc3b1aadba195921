#!/usr/bin/env bash
# Berth's whole test suite. It installs what the tests need when it is missing (Debian packages;
# Python packages into virtual environments under target/), then runs:
#   - the Rust tests: domain, services, the port suites on every adapter (memory, embedded, and
#     S3/DynamoDB/SQS on a moto server it starts on a loopback port), routers, the binaries;
#   - end-to-end tests with real clients (skopeo, podman, a real dockerd, the pulp CLI) against the
#     release binary, on the embedded store and on the AWS adapters; sync from real upstreams;
#     a crash in the middle of a sync;
#   - the torture suite (tests/chaos): racing pushes and creates, password and connection floods,
#     kill -9 in the middle of pushes, SSRF refusals, a full disk; on both stores;
#   - the Lambda function binaries under a Lambda Runtime API emulator, the functions under
#     `cargo lambda watch` (when cargo-lambda is installed; BERTH_CARGO_LAMBDA=1 installs it,
#     which takes about 15 minutes; BERTH_CARGO_LAMBDA=0 skips it), with BERTH_ARM64=1 the
#     functions built for arm64 by cargo lambda and run under qemu, and the SAM template's
#     linters (cfn-lint, sam validate --lint).
#
#   ./test.sh            everything
#   ./test.sh --quick    the Rust tests only
set -euo pipefail
cd "$(dirname "$0")"

quick=0
[ "${1:-}" = "--quick" ] && quick=1

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo not found; install a Rust toolchain (https://rustup.rs), 1.89 or newer" >&2
  exit 1
fi

# the Rust tests sync from a real docker-registry; the end-to-end tests need real clients
tools=(docker-registry curl)
[ "$quick" = 0 ] && tools+=(skopeo podman buildah umoci dockerd:docker.io runc gcc jq gpg:gnupg htpasswd:apache2-utils)
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

# venv DIR PACKAGES…: a virtual environment under target/ with these packages
venv() {
  local dir=$1; shift
  if [ ! -e "$dir/.ready" ]; then
    echo "== installing $* into $dir"
    rm -rf "$dir"; python3 -m venv "$dir"
    "$dir/bin/pip" install -q "$@"
    touch "$dir/.ready"
  fi
}
mkdir -p target

# moto (S3, DynamoDB, SQS) on a free loopback port, for the whole run; tests/moto_server.py is
# moto_server with DynamoDB's per-item atomicity (moto does not lock around a conditional write)
venv target/moto-venv 'moto[server]==5.2.5'
moto_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/moto-venv/bin/python tests/moto_server.py -H 127.0.0.1 -p "$moto_port" >target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
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

echo "== cargo test"
cargo test --workspace --locked --features berth-shared/moto

[ "$quick" = 1 ] && exit 0

echo "== end-to-end"
cargo build --release --locked -p berth -p berth-api -p berth-registry -p berth-sync-worker
# the unmodified pulp CLI and `cryptography` (cosign-format signatures), from PyPI
venv target/e2e-venv 'pulp-cli==0.41.1' cryptography
export BERTH_BIN="$PWD/target/release/berth" PULP_BIN="$PWD/target/e2e-venv/bin/pulp" FIXTURE_PY="$PWD/target/e2e-venv/bin/python"
failed=0
run() { echo "== $1"; shift; "$@" || failed=1; }
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
run "the pulp CLI" bash tests/e2e/pulp_cli.sh
run "the pulp CLI, AWS adapters on moto" on_aws cli bash tests/e2e/pulp_cli.sh
run "sync from real upstreams" bash tests/e2e/sync.sh
run "sync from real upstreams, AWS adapters on moto" on_aws sync bash tests/e2e/sync.sh
run "a crash in the middle of a sync" bash tests/e2e/crash.sh
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
run "template.yaml and BERTH_AWS_INIT agree" env INFRA_PY="$PWD/target/infra-venv/bin/python" \
  MOTO_PY="$PWD/target/moto-venv/bin/python" bash tests/infra/template_vs_init.sh
exit $failed
