#!/usr/bin/env bash
# Pull-through cache benchmark: Berth caching a docker-registry on the same machine, against
# pulling the same image straight from that registry (the reference), in one run.
#
#   bench/pull_through.sh                                  # build Berth, run, print a table
#   BENCH_OUT=bench/results-pull-through.md bench/pull_through.sh   # also write the table there
#
# What is measured (skopeo copy … dir:, each a median of RUNS):
#   1. the first pull through the cache (a fresh Berth each run: manifest and every blob
#      fetched upstream, streamed to the client while stored) vs skopeo straight from the
#      registry; goal ≤ 1.2×;
#   2. the second pull (all from the cache) vs the registry serving it; goal ≤ 1.0×;
#   3. Berth's peak RSS (VmHWM of a fresh process) while 16 clients pull a 1 GiB image through
#      the cache at once (each GETs the manifest and the layers, bytes discarded); goal ≤ 100 MB.
#      Also: upstream GETs per blob (1 each: one fetch, the others wait for it).
#
# Knobs: BERTH_BIN / SKIP_BUILD=1, LAYERS (4), LAYER_MIB (64), HUGE_LAYERS (4),
#   HUGE_LAYER_MIB (256), CLIENTS (16), RUNS (3), KEEP_TMP=1.
# Needs: docker-registry, skopeo, curl, python3, sha256sum, head. Loopback only.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
LAYERS=${LAYERS:-4}
LAYER_MIB=${LAYER_MIB:-64}
HUGE_LAYERS=${HUGE_LAYERS:-4}
HUGE_LAYER_MIB=${HUGE_LAYER_MIB:-256}
CLIENTS=${CLIENTS:-16}
RUNS=${RUNS:-3}

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_setup berth-pt-bench docker-registry skopeo curl python3 sha256sum head

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$2"; }
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }

# ---------------------------------------------------------------- upstream with two images
DR_PORT=$(free_port)
DR=http://127.0.0.1:$DR_PORT
dr_config "$WORK/dr-config.yml" "$DR_PORT" on
env -u REGISTRY_AUTH_FILE docker-registry serve "$WORK/dr-config.yml" >"$WORK/docker-registry.log" 2>&1 &
DR_PID=$!; PIDS+=("$DR_PID")
wait_ready "$DR" docker-registry "$DR_PID"

# image REPO COUNT MIB: COUNT random layers of MIB MiB, a config and an OCI manifest at REPO:latest
image() {
    local repo=$1 count=$2 mib=$3 i f d layers=() cfg
    for i in $(seq 1 "$count"); do
        f=$WORK/layer
        d="sha256:$(head -c "${mib}M" /dev/urandom | tee "$f" | sha256sum | cut -d' ' -f1)"
        push_blob "$DR" "$repo" "$f" "$d"
        layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$d\",\"size\":$((mib * 1048576))}")
        rm -f "$f"
    done
    cfg=$WORK/config.json
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"repo":"%s"}}}' "$repo" >"$cfg"
    push_blob "$DR" "$repo" "$cfg" "sha256:$(sha256sum "$cfg" | cut -d' ' -f1)"
    local IFS=,
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$(sha256sum "$cfg" | cut -d' ' -f1)" "$(stat -c %s "$cfg")" "${layers[*]}" >"$WORK/manifest.json"
    push_manifest "$DR" "$repo" latest "$WORK/manifest.json" application/vnd.oci.image.manifest.v1+json
}
t=$(now)
image bench/app "$LAYERS" "$LAYER_MIB"
image bench/huge "$HUGE_LAYERS" "$HUGE_LAYER_MIB"
log "upstream filled in $(secs "$t" "$(now)") s: bench/app ${LAYERS} x ${LAYER_MIB} MiB, bench/huge ${HUGE_LAYERS} x ${HUGE_LAYER_MIB} MiB"

# ---------------------------------------------------------------- Berth with a cache of it
BERTH_PW=bench-$RANDOM-$RANDOM
BERTH_PID=""
# fresh_berth: a new Berth on an empty data directory, with the pull-through remote and
# distribution `cache` of the upstream (token auth off: anonymous pulls of the public cache)
fresh_berth() {
    if [[ -n "$BERTH_PID" ]]; then kill "$BERTH_PID"; wait "$BERTH_PID" 2>/dev/null || true; fi
    rm -rf "$WORK/berth-data"; mkdir -p "$WORK/berth-data"
    BERTH_PORT=$(free_port "$DR_PORT")
    BERTH=http://127.0.0.1:$BERTH_PORT
    BERTH_LOG=warn BERTH_TOKEN_AUTH=off BERTH_ADMIN_PASSWORD=$BERTH_PW "$BERTH_BIN" --listen "127.0.0.1:$BERTH_PORT" \
        --data-dir "$WORK/berth-data" >>"$WORK/berth.log" 2>&1 &
    BERTH_PID=$!; PIDS+=("$BERTH_PID")
    wait_ready "$BERTH" berth "$BERTH_PID"
    local remote
    remote=$(curl -sS --fail-with-body -u "admin:$BERTH_PW" -H 'Content-Type: application/json' \
        "$BERTH/pulp/api/v3/remotes/container/pull-through/" -d "{\"name\":\"up\",\"url\":\"$DR\"}" | jget - 'd["pulp_href"]')
    curl -sS --fail-with-body -u "admin:$BERTH_PW" -H 'Content-Type: application/json' \
        "$BERTH/pulp/api/v3/distributions/container/pull-through/" \
        -d "{\"name\":\"cache\",\"base_path\":\"cache\",\"remote\":\"$remote\"}" >/dev/null
}
# pull SOURCE: skopeo copy SOURCE (a docker:// reference) into a fresh dir:, in seconds
pull() {
    rm -rf "$WORK/out"
    local t0
    t0=$(now)
    skopeo copy -q --src-tls-verify=false "$1" "dir:$WORK/out" >/dev/null
    secs "$t0" "$(now)"
}
upstream_gets() { grep -c "\"GET /v2/$1/blobs/" "$WORK/docker-registry.log" || true; }

direct=() first=() second=() cached_ref=()
for r in $(seq 1 "$RUNS"); do
    direct+=("$(pull "docker://127.0.0.1:$DR_PORT/bench/app:latest")")
    fresh_berth
    first+=("$(pull "docker://127.0.0.1:$BERTH_PORT/cache/bench/app:latest")")
    second+=("$(pull "docker://127.0.0.1:$BERTH_PORT/cache/bench/app:latest")")
    cached_ref+=("$(pull "docker://127.0.0.1:$DR_PORT/bench/app:latest")")
    log "run $r: direct ${direct[-1]} s, first through the cache ${first[-1]} s, second ${second[-1]} s, registry again ${cached_ref[-1]} s"
done

# ---------------------------------------------------------------- 16 concurrent first pulls of 1 GiB
fresh_berth
before=$(upstream_gets bench/huge)
cat >"$WORK/get.py" <<'PY'
import hashlib, json, sys, urllib.request
base, name = sys.argv[1], sys.argv[2]
accept = "application/vnd.oci.image.manifest.v1+json"
m = urllib.request.urlopen(urllib.request.Request(f"{base}/v2/{name}/manifests/latest", headers={"Accept": accept})).read()
for d in [json.loads(m)["config"]] + json.loads(m)["layers"]:
    h = hashlib.sha256()
    with urllib.request.urlopen(f"{base}/v2/{name}/blobs/{d['digest']}", timeout=600) as r:
        while chunk := r.read(1 << 20):
            h.update(chunk)
    assert "sha256:" + h.hexdigest() == d["digest"], d["digest"]
PY
t=$(now)
pids=()
for c in $(seq 1 "$CLIENTS"); do
    python3 "$WORK/get.py" "$BERTH" cache/bench/huge >"$WORK/client-$c.log" 2>&1 &
    pids+=("$!")
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
concurrent=$(secs "$t" "$(now)")
peak=$(rss_kb "$BERTH_PID" VmHWM)
gets=$(( $(upstream_gets bench/huge) - before ))
[[ $failed == 0 ]] || die "$failed of $CLIENTS concurrent pulls failed: $(cat "$WORK"/client-*.log | head -5)"
log "$CLIENTS concurrent first pulls of $((HUGE_LAYERS * HUGE_LAYER_MIB)) MiB: ${concurrent} s, peak RSS $((peak / 1024)) MiB, upstream blob GETs $gets"

d=$(median "${direct[@]}") f=$(median "${first[@]}") s=$(median "${second[@]}") c=$(median "${cached_ref[@]}")
table=$(cat <<EOF
| pull through the cache (${LAYERS} x ${LAYER_MIB} MiB image, skopeo copy to dir:, median of $RUNS) | Berth | reference | ratio | goal |
|---|---:|---:|---:|---:|
| first pull (everything fetched upstream) vs straight from docker-registry | ${f} s | ${d} s | $(ratio "$f" "$d")× | ≤ 1.2× |
| second pull (all from the cache) vs docker-registry serving it | ${s} s | ${c} s | $(ratio "$s" "$c")× | ≤ 1.0× |

| ${CLIENTS} concurrent first pulls of a $((HUGE_LAYERS * HUGE_LAYER_MIB)) MiB image (${HUGE_LAYERS} layers) | value | goal |
|---|---:|---:|
| Berth's peak RSS (VmHWM, fresh process) | $((peak / 1024)) MiB | ≤ 100 MB |
| upstream blob GETs ($((HUGE_LAYERS + 1)) blobs) | ${gets} | $((HUGE_LAYERS + 1)) |
| wall time, all clients done | ${concurrent} s | |
EOF
)
echo "$table"
if [[ -n "${BENCH_OUT:-}" ]]; then
    { echo "# Pull-through cache benchmark ($(date -u +%Y-%m-%d), $(nproc) cores)"; echo; echo "$table"; } >"$BENCH_OUT"
fi
