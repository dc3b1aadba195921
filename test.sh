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
[ "$quick" = 0 ] && tools+=(skopeo podman buildah umoci dockerd:docker.io runc curl gcc jq)
need=()
for p in "${tools[@]}"; do
  bin=${p%%:*}; pkg=${p#*:}
  command -v "$bin" >/dev/null || need+=("$pkg")
done
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
  BERTH_BIN="$PWD/target/release/berth" bash tests/e2e/clients.sh
fi
