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
[ "$quick" = 0 ] && { python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv python3-pip); }
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi

echo "== cargo test"
cargo test --workspace --locked

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
