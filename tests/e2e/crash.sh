#!/usr/bin/env bash
# A server killed (SIGKILL) in the middle of a sync: after a restart the job runs again, the
# repository gets exactly one new version, no half-written blob is ever visible, and nothing
# half-written is left on disk.
#
#   BERTH_BIN=target/release/berth bash tests/e2e/crash.sh
#
# Needs: docker-registry, curl, python3. Loopback only; everything under one `mktemp -d` folder,
# removed on exit with every process this script started. Ends with `N passed, N failed`.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BERTH_BIN=${BERTH_BIN:-$HERE/../../target/release/berth}
LAYER_MIB=${LAYER_MIB:-1024}
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init berth-crash
BERTH_PID=""
cleanup() {
  set +e
  stop_pids
  rm -rf "$W"
}
DR_PORT=$(free_port); DR=127.0.0.1:$DR_PORT; REG=127.0.0.1:$(free_port "$DR_PORT"); PW=crash-$RANDOM
API=http://$REG/pulp/api/v3
api() { curl -sf -u "admin:$PW" -H 'Content-Type: application/json' "$@"; }

# --- upstream: one image with a big layer ------------------------------------------------------
cat >"$W/dr.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/dr}, delete: {enabled: true}}
http: {addr: $DR}
YML
env -u REGISTRY_AUTH_FILE docker-registry serve "$W/dr.yml" >"$W/dr.log" 2>&1 &
PIDS+=($!)
wait_http "http://$DR/v2/" "$!"
push_blob() {  # FILE → digest
  local d loc; d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  loc=$(curl -s -D - -o /dev/null -X POST "http://$DR/v2/big/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  case $loc in http*) ;; *) loc=http://$DR$loc ;; esac
  curl -sf -X PUT -H 'Expect:' -T "$1" "$loc&digest=$d" >/dev/null || return 1
  echo "$d"
}
head -c "${LAYER_MIB}M" /dev/urandom >"$W/layer"
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$W/config"
LD=$(push_blob "$W/layer"); CD=$(push_blob "$W/config")
rm -f "$W/layer"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
  "$CD" "$(stat -c %s "$W/config")" "$LD" $((LAYER_MIB * 1024 * 1024)) >"$W/manifest"
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$W/manifest" "http://$DR/v2/big/manifests/latest" >/dev/null \
  && ok "upstream holds an image with a ${LAYER_MIB} MiB layer" || bad "upstream fill"

# --- Berth: start a sync, kill the server in the middle of the download ---------------------------
start() {
  berth_start "$BERTH_BIN" "$REG" "$W/data" "$W/berth.log" "$PW" BERTH_LOG=info
  local rc=$?
  BERTH_PID=$STARTED_PID
  return $rc
}
start || bad "berth starts"
REPO=$(api -X POST "$API/repositories/container/container/" -d '{"name":"big"}' | jget - 'd["pulp_href"]')
REMOTE=$(api -X POST "$API/remotes/container/container/" -d "{\"name\":\"big\",\"url\":\"http://$DR\",\"upstream_name\":\"big\"}" | jget - 'd["pulp_href"]')
TASK=$(api -X POST "$API${REPO#/pulp/api/v3}sync/" -d "{\"remote\":\"$REMOTE\"}" | jget - 'd["task"]')
[ -n "$TASK" ] && ok "sync task started" || bad "sync task started"
killed=0
for _ in $(seq 1 1000); do   # up to 20 s: wait for the layer download to begin, then kill
  if [ -n "$(ls -A "$W/data/tmp" 2>/dev/null)" ]; then
    sleep 0.2
    kill -KILL "$BERTH_PID"; wait "$BERTH_PID" 2>/dev/null; BERTH_PID=""; killed=1; break
  fi
  sleep 0.02
done
[ "$killed" = 1 ] && ok "killed the server while the layer was being written ($(du -sm "$W/data/tmp" | cut -f1) MiB in tmp/)" || bad "never saw the download begin"
left=$(ls -A "$W/data/tmp" 2>/dev/null)   # the killed process's unfinished writes
hex=${LD#sha256:}
[ ! -e "$W/data/blobs/sha256/${hex:0:2}/$hex" ] && ok "the half-downloaded layer is not visible as a blob" || bad "a blob file exists for the layer after the kill"

# --- restart: the job runs again and finishes with one version -------------------------------------
start && ok "berth restarts on the same data dir" || bad "berth restarts"
# the restarted process resumes the sync at once (it takes over its earlier life's lease), so
# tmp/ may already hold its new download: what must be gone are the killed process's files
stale=""
for f in $left; do [ -e "$W/data/tmp/$f" ] && stale="$stale $f"; done
[ -n "$left" ] && [ -z "$stale" ] && ok "unfinished writes were removed at start" || bad "tmp/ still holds the killed process's files:$stale"
state=""
for _ in $(seq 1 240); do
  state=$(api "http://$REG$TASK" | jget - 'd["state"]')
  case $state in completed|failed|canceled) break ;; esac
  sleep 0.5
done
[ "$state" = completed ] && ok "the redelivered sync completed" || bad "sync after restart" "state $state: $(api "http://$REG$TASK" | jget - 'd["error"]')"
versions=$(api "http://$REG${REPO}versions/" | jget - '[v["number"] for v in d["results"]]')
[ "$versions" = "[1, 0]" ] && ok "exactly one new version: $versions" || bad "versions" "$versions"
got=sha256:$(sha256sum "$W/data/blobs/sha256/${hex:0:2}/$hex" 2>/dev/null | cut -d' ' -f1)
[ "$got" = "$LD" ] && ok "the stored layer matches its digest" || bad "stored layer digest" "$got"

e2e_summary
