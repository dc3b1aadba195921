#!/usr/bin/env bash
# Scale benchmark: what reads cost once a repository has a long history, Berth (embedded store,
# release build, token auth on) beside docker-registry holding the same images, in one run.
#
#   bench/scale.sh                           # build Berth (release), run, print a markdown table
#   N=2000 MOVES=2000 bench/scale.sh         # a smaller run
#   BENCH_OUT=bench/results-scale.md bench/scale.sh   # also write the table to that file
#
# What it does: pushes N images (each its own config blob, one shared layer) tagged t0…t<N-1>
# into one repository, then moves `latest` MOVES times (a manifest PUT by tag each). On Berth
# every push makes a repository version, so the repository ends with N+MOVES versions, 2N+1
# blobs and manifests and N+1 tags. Then it times, each over RUNS GETs on one keep-alive
# connection (median and p95, ms): a pull by tag after MOVES moves, `tags/list?n=100`, and the
# Pulp API pages (latest version, a page of manifests, of every content unit, of the latest
# version's tags, and — after NAMED repositories and distributions are made through the Pulp
# API, one task each — a page of repositories, distributions and tasks); and the push time per
# manifest of the first 100 images against the last 100.
#
# Knobs (environment): BERTH_BIN (skip the build and use this binary), SKIP_BUILD=1, N (20000),
#   MOVES (20000), NAMED (10000), RUNS (200), KEEP_TMP=1 (debugging).
# Needs: docker-registry, curl, python3 (stdlib only). Loopback only; every wait is bounded.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

N=${N:-20000}
MOVES=${MOVES:-20000}
RUNS=${RUNS:-200}
NAMED=${NAMED:-10000}
REPO=scale/app
PY="python3 $SCRIPT_DIR/scale.py"

bench_setup berth-scale docker-registry curl python3

BERTH_PORT=$(free_port)
DR_PORT=$(free_port "$BERTH_PORT")
BERTH=http://127.0.0.1:$BERTH_PORT
DR=http://127.0.0.1:$DR_PORT
mkdir -p "$WORK/berth-data" "$WORK/dr-data"
dr_config "$WORK/dr-config.yml" "$DR_PORT"

BERTH_PW=scale-$RANDOM-$RANDOM
BERTH_LOG=warn BERTH_ADMIN_PASSWORD=$BERTH_PW BERTH_TOKEN_LIFETIME=86400 "$BERTH_BIN" \
    --listen "127.0.0.1:$BERTH_PORT" --data-dir "$WORK/berth-data" >"$WORK/berth.log" 2>&1 &
BERTH_PID=$!
PIDS+=("$BERTH_PID")
docker-registry serve "$WORK/dr-config.yml" >"$WORK/docker-registry.log" 2>&1 &
DR_PID=$!
PIDS+=("$DR_PID")
wait_ready "$BERTH" berth "$BERTH_PID"
wait_ready "$DR" docker-registry "$DR_PID"
TOKEN=$(command curl -sS -u "admin:$BERTH_PW" \
    "$BERTH/token?service=127.0.0.1:$BERTH_PORT&scope=repository:$REPO:pull,push" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || die "could not get a token from Berth"

log "filling Berth: $N images, then $MOVES moves of latest"
T_FILL=$(date +%s)
$PY fill "$BERTH" "$REPO" "$N" "$MOVES" "$TOKEN" >"$WORK/berth-fill.json"
BERTH_FILL_S=$(( $(date +%s) - T_FILL ))
log "Berth's push times: $(cat "$WORK/berth-fill.json")"
log "filling docker-registry the same way"
T_FILL=$(date +%s)
$PY fill "$DR" "$REPO" "$N" "$MOVES" >"$WORK/dr-fill.json"
DR_FILL_S=$(( $(date +%s) - T_FILL ))
log "docker-registry's push times: $(cat "$WORK/dr-fill.json")"
# the tag pulled: the one moved, or the last pushed when nothing moves
PULL_TAG=latest
[ "$MOVES" -gt 0 ] || PULL_TAG=t$((N - 1))

# time NAME BASE PATH [AUTH]: RUNS GETs of PATH; the result's JSON in $WORK/NAME.json
time_get() {
    $PY time "$2" "$3" "$RUNS" "${4:-}" >"$WORK/$1.json" || die "timing $1 ($3) failed"
}
ms() { jget "$WORK/$1.json" "f\"{d['median_ms']} / {d['p95_ms']}\""; }

ADMIN="admin:$BERTH_PW"
PUSH_REPO=$(curl -sS -u "$ADMIN" "$BERTH/pulp/api/v3/repositories/container/container-push/?name=$REPO" | jget - "d['results'][0]['pulp_href']")
LATEST=$(curl -sS -u "$ADMIN" "$BERTH$PUSH_REPO" | jget - "d['latest_version_href']")
log "Berth's repository: $PUSH_REPO, latest $LATEST"

time_get berth-pull "$BERTH" "/v2/$REPO/manifests/$PULL_TAG" "$TOKEN"
time_get dr-pull "$DR" "/v2/$REPO/manifests/$PULL_TAG"
time_get berth-tags "$BERTH" "/v2/$REPO/tags/list?n=100" "$TOKEN"
time_get dr-tags "$DR" "/v2/$REPO/tags/list?n=100"
time_get berth-tags-late "$BERTH" "/v2/$REPO/tags/list?n=100&last=t9000" "$TOKEN"
time_get dr-tags-late "$DR" "/v2/$REPO/tags/list?n=100&last=t9000"
log "making $NAMED repositories and distributions through the Pulp API"
T_FILL=$(date +%s)
$PY named "$BERTH" "$NAMED" "$ADMIN"
NAMED_S=$(( $(date +%s) - T_FILL ))

API=/pulp/api/v3
time_get berth-versions "$BERTH" "${PUSH_REPO}versions/?limit=1" "$ADMIN"
time_get berth-versions-far "$BERTH" "${PUSH_REPO}versions/?limit=10&offset=100" "$ADMIN"
time_get berth-manifests "$BERTH" "$API/content/container/manifests/?limit=10" "$ADMIN"
time_get berth-manifests-far "$BERTH" "$API/content/container/manifests/?limit=10&offset=100" "$ADMIN"
time_get berth-content "$BERTH" "$API/content/?limit=10" "$ADMIN"
time_get berth-repos "$BERTH" "$API/repositories/container/container/?limit=10&offset=100" "$ADMIN"
time_get berth-dists "$BERTH" "$API/distributions/container/container/?limit=10&offset=100" "$ADMIN"
time_get berth-tasks "$BERTH" "$API/tasks/?limit=10&offset=100" "$ADMIN"
time_get berth-vtags "$BERTH" "/pulp/api/v3/content/container/tags/?repository_version=$LATEST&limit=10" "$ADMIN"

VERSIONS=$(jget "$WORK/berth-versions.json" "d['body']['count']")
MANIFESTS=$(jget "$WORK/berth-manifests.json" "d['body']['count']")
VTAGS=$(jget "$WORK/berth-vtags.json" "d['body']['count']")
count() { jget "$WORK/$1.json" "d['body']['count']"; }
f() { jget "$WORK/$1-fill.json" "round(d['$2'], 2)"; }

SUMMARY=$WORK/summary.md
{
    echo "## Scale: reads after a long history — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; client and servers share the cores."
    echo "Berth: \`$(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO_ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+uncommitted')\`, release build, embedded store, token auth on, BERTH_LOG=warn."
    echo "docker-registry: $(docker-registry --version 2>/dev/null | awk '{print $NF}'), filesystem storage, inmemory blob-descriptor cache."
    echo "History: $N images tagged t0…t$((N - 1)), then \`latest\` moved $MOVES times. Berth holds $VERSIONS versions, $MANIFESTS manifests, $VTAGS tags in the latest version."
    echo
    echo "| Read (median / p95 ms over $RUNS GETs, one keep-alive connection) | Berth | docker-registry |"
    echo "|---|---:|---:|"
    echo "| Manifest GET by tag \`$PULL_TAG\` after $MOVES moves | $(ms berth-pull) | $(ms dr-pull) |"
    echo "| \`tags/list?n=100\` | $(ms berth-tags) | $(ms dr-tags) |"
    echo "| \`tags/list?n=100&last=t9000\` | $(ms berth-tags-late) | $(ms dr-tags-late) |"
    echo "| Pulp: \`…/versions/?limit=1\` | $(ms berth-versions) | |"
    echo "| Pulp: \`…/versions/?limit=10&offset=100\` | $(ms berth-versions-far) | |"
    echo "| Pulp: \`content/container/manifests/?limit=10\` (of $(count berth-manifests)) | $(ms berth-manifests) | |"
    echo "| Pulp: \`content/container/manifests/?limit=10&offset=100\` | $(ms berth-manifests-far) | |"
    echo "| Pulp: \`content/?limit=10\` (of $(count berth-content)) | $(ms berth-content) | |"
    echo "| Pulp: \`content/container/tags/?repository_version=<latest>&limit=10\` | $(ms berth-vtags) | |"
    echo "| Pulp: \`repositories/container/container/?limit=10&offset=100\` (of $(count berth-repos)) | $(ms berth-repos) | |"
    echo "| Pulp: \`distributions/container/container/?limit=10&offset=100\` (of $(count berth-dists)) | $(ms berth-dists) | |"
    echo "| Pulp: \`tasks/?limit=10&offset=100\` (of $(count berth-tasks)) | $(ms berth-tasks) | |"
    echo
    echo "| Push (manifest PUT, median ms) | Berth | docker-registry |"
    echo "|---|---:|---:|"
    echo "| first 100 images | $(f berth push_first_ms) | $(f dr push_first_ms) |"
    echo "| last 100 images | $(f berth push_last_ms) | $(f dr push_last_ms) |"
    if [ "$MOVES" -gt 0 ]; then
        echo "| first 100 moves of \`latest\` | $(f berth move_first_ms) | $(f dr move_first_ms) |"
        echo "| last 100 moves of \`latest\` | $(f berth move_last_ms) | $(f dr move_last_ms) |"
    fi
    echo "| whole fill (s) | $BERTH_FILL_S | $DR_FILL_S |"
    echo "| $NAMED repositories and distributions through the Pulp API (s) | $NAMED_S | |"
} >"$SUMMARY"

echo
cat "$SUMMARY"
[ -n "${BENCH_OUT:-}" ] && cp "$SUMMARY" "$BENCH_OUT"
exit 0
