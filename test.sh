#!/usr/bin/env bash
# Berth's whole test suite: installs what the tests need (Debian packages) when it is missing,
# then runs the Rust tests (domain, services, port suites, routers, the binary) and the
# end-to-end tests with real clients (skopeo, podman, docker) against the built binary.
#
#   ./test.sh            everything
#   ./test.sh --quick    Rust tests only (they still need docker-registry, installed if missing)
set -euo pipefail
cd "$(dirname "$0")"

quick=0
[ "${1:-}" = "--quick" ] && quick=1

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo not found; install a Rust toolchain (https://rustup.rs), 1.85 or newer" >&2
  exit 1
fi

# the Rust tests sync from a real docker-registry; the end-to-end tests need real clients
tools=(docker-registry)
[ "$quick" = 0 ] && tools+=(skopeo podman buildah umoci dockerd:docker.io runc curl gcc jq gpg:gnupg htpasswd:apache2-utils)
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

# the AWS adapters (S3, DynamoDB, SQS) run the same port suites against moto on a free loopback port
mkdir -p target
moto_venv=target/moto-venv
if [ ! -x "$moto_venv/bin/moto_server" ]; then
  echo "== installing moto into $moto_venv"
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install -q 'moto[server]==5.2.5'
fi
moto_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
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
kill "$moto_pid" 2>/dev/null || true
wait "$moto_pid" 2>/dev/null || true
trap - EXIT

if [ "$quick" = 0 ]; then
  echo "== end-to-end with real clients"
  cargo build --release --locked -p berth
  # the unmodified pulp CLI (and `cryptography`, for cosign-format signatures), from PyPI, in a
  # virtual environment of the tests' own
  venv=target/e2e-venv
  if [ ! -x "$venv/bin/pulp" ] || ! "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
    echo "== installing pulp-cli and cryptography into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'pulp-cli==0.41.1' cryptography
  fi
  failed=0
  export BERTH_BIN="$PWD/target/release/berth" PULP_BIN="$PWD/$venv/bin/pulp" FIXTURE_PY="$PWD/$venv/bin/python"
  bash tests/e2e/clients.sh || failed=1
  bash tests/e2e/pulp_cli.sh || failed=1
  bash tests/e2e/sync.sh || failed=1
  bash tests/e2e/crash.sh || failed=1
  exit $failed
fi
