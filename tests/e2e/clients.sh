#!/usr/bin/env bash
# End-to-end test of Berth with real registry clients (skopeo, podman, buildah,
# docker), run as root on Debian 12.  Loopback only, everything under a
# `mktemp -d` folder, cleaned up on exit.  Builds nothing but the test images.
#
#   BERTH_BIN=/work/main/target/release/berth bash tests/e2e/clients.sh
#
# Needs: skopeo, podman, buildah, gcc (static glibc), curl, jq, sha256sum;
# docker.io (dockerd + containerd) for the docker check (SKIPped if absent).
# Prints `OK   name` / `FAIL name` / `SKIP name: reason` lines and ends with
# `N passed, N failed`; exits non-zero if anything failed.
set -uo pipefail

BERTH_BIN=${BERTH_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/berth}
DOCKERD=${DOCKERD:-dockerd}   # override (e.g. a missing path) to exercise the SKIP branch
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init berth-e2e
T0=$(date +%s%N)
BERTH_PID=""

# --- cleanup ------------------------------------------------------------------
cleanup() {
  set +e
  stop_dockerd
  stop_pids
  if [ -d "$W/storage" ]; then   # isolated podman/buildah store: remove what we built or pulled
    "${POD[@]}" rmi -a -f >/dev/null 2>&1
    buildah "${STORE[@]}" rm -a >/dev/null 2>&1
    buildah "${STORE[@]}" manifest rm localhost/e2e-multi:1 >/dev/null 2>&1
    buildah "${STORE[@]}" rmi -a -f >/dev/null 2>&1
  fi
  umount_under "$W"
  rm -rf "$W"
}

# --- environment: isolated client config and storage ----------------------------
PORT=$(free_port)
REG=127.0.0.1:$PORT
URL=http://$REG

# buildah builds in one store; podman pulls into another, so a pull cannot just re-tag
# the locally built image (same config => same image ID, and its Digest is the local one)
STORE=(--root "$W/storage" --runroot "$W/run" --storage-driver vfs)
POD=(podman --root "$W/pstorage" --runroot "$W/prun" --storage-driver vfs --tmpdir "$W/podtmp" --events-backend none)
mkdir -p "$W/storage" "$W/run" "$W/pstorage" "$W/prun" "$W/podtmp" "$W/tmp"
export TMPDIR="$W/tmp"                                      # big layer temp files stay in $W too
export REGISTRY_AUTH_FILE="$W/auth.json"; echo '{}' >"$REGISTRY_AUTH_FILE"
export CONTAINERS_REGISTRIES_CONF="$W/registries.conf"
printf 'unqualified-search-registries = []\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$CONTAINERS_REGISTRIES_CONF"
export CONTAINERS_STORAGE_CONF="$W/storage.conf"
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$W/storage" "$W/run" >"$CONTAINERS_STORAGE_CONF"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
SKOPEO=(skopeo --policy "$W/policy.json")
BUILDAH=(buildah "${STORE[@]}")

OCI_INDEX=application/vnd.oci.image.index.v1+json
V2S2=application/vnd.docker.distribution.manifest.v2+json
V2S1=application/vnd.docker.distribution.manifest.v1+prettyjws

sha() { sha256sum "$1" | awk '{print "sha256:"$1}'; }
# token SCOPE: a registry token for the admin (token auth is on)
token() { curl -s -u "admin:$ADMIN_PW" "$URL/token?service=$REG&scope=$1" | jq -r .token; }
# fetch URL [curl args...]: writes $W/h (headers, lower-cased names, no CR) and $W/b (body); prints status.
# It sends an admin token for the repository the URL names.
fetch() {
  local u=$1; shift
  local name; name=$(printf '%s' "$u" | sed -n 's#.*/v2/\(.*\)/\(manifests\|tags\|blobs\|referrers\)/.*#\1#p')
  local auth=(); [ -n "$name" ] && auth=(-H "Authorization: Bearer $(token "repository:$name:pull")")
  curl -s -D "$W/h.raw" -o "$W/b" -w '%{http_code}' "${auth[@]}" "$@" "$u"; tr -d '\r' <"$W/h.raw" | awk -F': ' 'BEGIN{OFS=": "} {$1=tolower($1); print}' >"$W/h"
}
hdr() { awk -F': ' -v n="$1" '$1 == n {sub(/^[^:]*: /, ""); print}' "$W/h" | tail -1; }
ADMIN_PW=e2e-admin-$RANDOM
READER_PW=e2e-reader-$RANDOM
# start_berth: Berth on REG, answering GET /v2/ with its token challenge
start_berth() {
  berth_start "$BERTH_BIN" "$REG" "$W/data" "$W/berth.log" "$ADMIN_PW" BERTH_READONLY_USERS="reader:$READER_PW"
  BERTH_PID=$STARTED_PID
  wait_http "$URL/v2/" "$BERTH_PID" '^401$'
}

echo "berth: $BERTH_BIN on $REG, work dir $W"
echo "clients: skopeo $(skopeo --version | awk '{print $3}'), podman $(podman --version | awk '{print $3}'), buildah $(buildah --version | awk '{print $3}')"
[ -x "$BERTH_BIN" ] || { echo "FAIL berth binary not found: $BERTH_BIN"; echo "0 passed, 1 failed"; exit 1; }
if start_berth; then ok "berth starts and answers GET /v2/ with a token challenge"; else
  bad "berth starts and answers GET /v2/ with a token challenge"; tail -20 "$W/berth.log"; echo "$PASS passed, $FAIL failed"; exit 1
fi
check_login() {
  if skopeo login --tls-verify=false -u admin -p wrong "$REG" >"$W/wrong.out" 2>&1; then why "a wrong password logged in"; fi
  grep -qi 'unauthorized\|invalid' "$W/wrong.out" || why "unexpected wrong-password output: $(cat "$W/wrong.out")"
  skopeo login --tls-verify=false -u admin -p "$ADMIN_PW" "$REG" || why "skopeo login as admin failed"
  "${POD[@]}" login --tls-verify=false --get-login "$REG" | grep -qx admin || why "podman does not see the login"
}
check "0 skopeo login: a wrong password fails, the admin's works (podman shares it)" check_login

# --- test images, built offline ---------------------------------------------------
build_images() {
  printf '#include <stdio.h>\nint main(void){puts("hello from berth e2e");return 0;}\n' >"$W/hello.c"
  gcc -static -Os -s -o "$W/hello" "$W/hello.c" || why "gcc -static failed"
  local a c
  for a in amd64 arm64; do   # same file + --timestamp 0 => byte-identical (shared) layer
    c=$("${BUILDAH[@]}" from -q scratch) &&
    "${BUILDAH[@]}" copy -q "$c" "$W/hello" /hello >/dev/null &&
    "${BUILDAH[@]}" config --arch "$a" --os linux --cmd '["/hello"]' "$c" &&
    "${BUILDAH[@]}" commit -q --format oci --timestamp 0 "$c" "localhost/e2e-$a:1" >/dev/null &&
    "${BUILDAH[@]}" rm "$c" >/dev/null || why "buildah build $a failed"
  done
  "${BUILDAH[@]}" manifest rm localhost/e2e-multi:1 >/dev/null 2>&1   # `rmi -f` does not remove lists
  "${BUILDAH[@]}" manifest create localhost/e2e-multi:1 >/dev/null &&
  "${BUILDAH[@]}" manifest add localhost/e2e-multi:1 containers-storage:localhost/e2e-amd64:1 >/dev/null &&
  "${BUILDAH[@]}" manifest add localhost/e2e-multi:1 containers-storage:localhost/e2e-arm64:1 >/dev/null &&
  "${BUILDAH[@]}" manifest push -q --all --format oci localhost/e2e-multi:1 "oci:$W/multi-src:1" || why "buildah manifest push failed"
  # Docker schema 2 image of the same binary
  c=$("${BUILDAH[@]}" from -q scratch) &&
  "${BUILDAH[@]}" copy -q "$c" "$W/hello" /hello >/dev/null &&
  "${BUILDAH[@]}" config --arch amd64 --os linux --cmd '["/hello"]' "$c" &&
  "${BUILDAH[@]}" commit -q --format docker --timestamp 0 "$c" localhost/e2e-docker:1 >/dev/null &&
  "${BUILDAH[@]}" rm "$c" >/dev/null &&
  "${BUILDAH[@]}" push -q --format v2s2 localhost/e2e-docker:1 "dir:$W/docker-src" || why "docker-format image failed"
  # sanity: the index has two children that share their layer; the dir: image is v2s2
  local idx; idx=$(jq -r '.manifests[0].digest' "$W/multi-src/index.json")
  jq -e --arg t "$OCI_INDEX" '.mediaType == $t and (.manifests | length) == 2' "$W/multi-src/blobs/sha256/${idx#sha256:}" >/dev/null ||
    why "built index is not a 2-entry OCI index: $(cat "$W/multi-src/blobs/sha256/${idx#sha256:}")"
  local l1 l2
  l1=$(jq -r '.layers[0].digest' "$W/multi-src/blobs/sha256/$(jq -r '.manifests[0].digest' "$W/multi-src/blobs/sha256/${idx#sha256:}" | cut -d: -f2)")
  l2=$(jq -r '.layers[0].digest' "$W/multi-src/blobs/sha256/$(jq -r '.manifests[1].digest' "$W/multi-src/blobs/sha256/${idx#sha256:}" | cut -d: -f2)")
  [ "$l1" = "$l2" ] || why "amd64/arm64 layers differ ($l1 vs $l2)"
  jq -e --arg t "$V2S2" '.mediaType == $t' "$W/docker-src/manifest.json" >/dev/null || why "docker image manifest is not v2s2"
}
check "build test images (static hello; buildah amd64+arm64 OCI index sharing a layer; v2s2 image)" build_images

SRC_IDX=$(jq -r '.manifests[0].digest' "$W/multi-src/index.json" 2>/dev/null)
SRC_KIDS=$(jq -r '.manifests[].digest' "$W/multi-src/blobs/sha256/${SRC_IDX#sha256:}" 2>/dev/null | paste -sd' ')
ARM64_DIG=$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' "$W/multi-src/blobs/sha256/${SRC_IDX#sha256:}" 2>/dev/null)
DOCKER_DIG=$(sha "$W/docker-src/manifest.json" 2>/dev/null)
note "index $SRC_IDX"
note "  children $SRC_KIDS"
note "v2s2 $DOCKER_DIG"

# --- 1. multi-arch OCI index round trip ---------------------------------------------
check_multi() {
  "${SKOPEO[@]}" copy -q --all --preserve-digests --dest-tls-verify=false "oci:$W/multi-src:1" "docker://$REG/e2e/multi:1" || why "skopeo copy --all into berth failed"
  "${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$REG/e2e/multi:1" >"$W/multi.raw" || why "skopeo inspect --raw failed"
  local served; served=$(sha "$W/multi.raw")
  [ "$served" = "$SRC_IDX" ] || why "index digest served by tag $served != pushed $SRC_IDX"
  local kids; kids=$(jq -r '.manifests[].digest' "$W/multi.raw" | paste -sd' ')
  [ "$kids" = "$SRC_KIDS" ] || why "children served [$kids] != pushed [$SRC_KIDS]"
  [ "$(fetch "$URL/v2/e2e/multi/manifests/1" -H "Accept: $OCI_INDEX")" = 200 ] || why "GET index by tag: $(head -1 "$W/h")"
  [ "$(hdr content-type)" = "$OCI_INDEX" ] || why "index Content-Type '$(hdr content-type)'"
  [ "$(hdr docker-content-digest)" = "$SRC_IDX" ] || why "index Docker-Content-Digest '$(hdr docker-content-digest)'"
  local k
  for k in $SRC_KIDS; do
    [ "$(fetch "$URL/v2/e2e/multi/manifests/$k" -H 'Accept: application/vnd.oci.image.manifest.v1+json')" = 200 ] || why "GET child $k: $(head -1 "$W/h")"
    [ "$(sha "$W/b")" = "$k" ] || why "child $k served bytes hash to $(sha "$W/b")"
  done
  "${SKOPEO[@]}" copy -q --all --preserve-digests --src-tls-verify=false "docker://$REG/e2e/multi:1" "oci:$W/multi-back:1" || why "skopeo copy --all out of berth failed"
  local back; back=$(jq -r '.manifests[0].digest' "$W/multi-back/index.json")
  [ "$back" = "$SRC_IDX" ] || why "index digest after round trip $back != $SRC_IDX"
  kids=$(jq -r '.manifests[].digest' "$W/multi-back/blobs/sha256/${back#sha256:}" | paste -sd' ')
  [ "$kids" = "$SRC_KIDS" ] || why "children after round trip [$kids] != [$SRC_KIDS]"
}
check "1 skopeo copy --all OCI index in and out: index + both child digests unchanged" check_multi

# --- 2. Docker schema 2 round trip --------------------------------------------------
check_v2s2() {
  "${SKOPEO[@]}" copy -q --format v2s2 --preserve-digests --dest-tls-verify=false "dir:$W/docker-src" "docker://$REG/e2e/docker:1" || why "skopeo copy v2s2 into berth failed"
  [ "$(fetch "$URL/v2/e2e/docker/manifests/1" -H "Accept: $V2S2")" = 200 ] || why "GET by tag: $(head -1 "$W/h")"
  [ "$(hdr content-type)" = "$V2S2" ] || why "Content-Type '$(hdr content-type)', want $V2S2"
  [ "$(hdr docker-content-digest)" = "$DOCKER_DIG" ] || why "Docker-Content-Digest '$(hdr docker-content-digest)' != $DOCKER_DIG"
  [ "$(sha "$W/b")" = "$DOCKER_DIG" ] || why "served bytes hash to $(sha "$W/b") != $DOCKER_DIG"
  "${SKOPEO[@]}" copy -q --preserve-digests --src-tls-verify=false "docker://$REG/e2e/docker:1" "dir:$W/docker-back" || why "skopeo copy out of berth failed"
  [ "$(sha "$W/docker-back/manifest.json")" = "$DOCKER_DIG" ] || why "digest after round trip $(sha "$W/docker-back/manifest.json") != $DOCKER_DIG"
  jq -e --arg t "$V2S2" '.mediaType == $t' "$W/docker-back/manifest.json" >/dev/null || why "round-tripped manifest is not v2s2"
}
check "2 skopeo copy --format v2s2 in and out: digest unchanged, served as $V2S2" check_v2s2

# --- 3. podman pulls (isolated vfs store) ---------------------------------------------
pod_inspect() { "${POD[@]}" image inspect --format "$1" "$2"; }
check_pod_tag() {
  "${POD[@]}" pull -q --tls-verify=false "$REG/e2e/docker:1" >/dev/null || why "podman pull by tag failed"
  local d; d=$(pod_inspect '{{.Digest}}' "$REG/e2e/docker:1")
  [ "$d" = "$DOCKER_DIG" ] || why "pulled image digest $d != $DOCKER_DIG"
}
check_pod_digest() {
  "${POD[@]}" pull -q --tls-verify=false "$REG/e2e/docker@$DOCKER_DIG" >/dev/null || why "podman pull by digest failed"
  pod_inspect '{{.RepoDigests}}' "$REG/e2e/docker@$DOCKER_DIG" | grep -q "$DOCKER_DIG" || why "RepoDigests lack $DOCKER_DIG"
}
check_pod_arch() {
  "${POD[@]}" pull -q --tls-verify=false --arch arm64 "$REG/e2e/multi:1" >/dev/null || why "podman pull --arch arm64 failed"
  local arch; arch=$(pod_inspect '{{.Architecture}}' "$REG/e2e/multi:1")
  [ "$arch" = arm64 ] || why "pulled architecture '$arch', want arm64"
  pod_inspect '{{.RepoDigests}}' "$REG/e2e/multi:1" | grep -q "$ARM64_DIG" || why "RepoDigests $(pod_inspect '{{.RepoDigests}}' "$REG/e2e/multi:1") lack arm64 child $ARM64_DIG"
}
check "3a podman pull by tag" check_pod_tag
check "3b podman pull by digest" check_pod_digest
check "3c podman pull --arch arm64 from the index gets the arm64 child" check_pod_arch

# --- 4. docker pull / tag / push through a private dockerd -------------------------------
check_docker_login() {
  printf '%s' "$ADMIN_PW" | docker login -u admin --password-stdin "$REG" >"$W/dl.out" 2>&1 || why "docker login failed: $(cat "$W/dl.out")"
  jq -e --arg r "$REG" '.auths[$r].identitytoken | length > 0' "$W/dc/config.json" >/dev/null ||
    why "docker kept no identity token: $(jq -c '.auths' "$W/dc/config.json" | sed 's/"auth":"[^"]*"/"auth":…/g')"
}
check_docker_pull() {
  docker pull -q "$REG/e2e/docker:1" || why "docker pull failed"
  local rd; rd=$(docker image inspect --format '{{join .RepoDigests " "}}' "$REG/e2e/docker:1")
  [[ " $rd " == *" $REG/e2e/docker@$DOCKER_DIG "* ]] || why "RepoDigests '$rd' lack $DOCKER_DIG"
}
check_docker_push() {
  docker tag "$REG/e2e/docker:1" "$REG/e2e/docker-pushed:1" || why "docker tag failed"
  docker push "$REG/e2e/docker-pushed:1" >"$W/push.out" 2>&1 || { cat "$W/push.out"; why "docker push failed"; }
  local pd; pd=$(grep -o 'digest: sha256:[0-9a-f]\{64\}' "$W/push.out" | awk '{print $2}')
  [ -n "$pd" ] || { cat "$W/push.out"; why "no digest in docker push output"; }
  [ "$(fetch "$URL/v2/e2e/docker-pushed/manifests/1" -H "Accept: $V2S2")" = 200 ] || why "GET pushed manifest: $(head -1 "$W/h")"
  [ "$(hdr content-type)" = "$V2S2" ] || why "Content-Type '$(hdr content-type)'"
  [ "$(hdr docker-content-digest)" = "$pd" ] || why "Docker-Content-Digest '$(hdr docker-content-digest)' != pushed $pd"
  [ "$(sha "$W/b")" = "$pd" ] || why "served bytes hash to $(sha "$W/b") != $pd"
  note "docker push digest $pd (source image $DOCKER_DIG)"
}
if start_dockerd; then
  note "dockerd $(docker version --format '{{.Server.Version}}' 2>/dev/null) on $DOCKER_HOST (pid $DOCKERD_PID)"
  check "4 docker login keeps a refresh token, not the password (pulls and pushes trade it at POST /token)" check_docker_login
  check "4a docker pull $REG/e2e/docker:1" check_docker_pull
  check "4b docker tag + push to e2e/docker-pushed:1, manifest served by berth" check_docker_push
  docker rmi -f "$REG/e2e/docker:1" "$REG/e2e/docker-pushed:1" >/dev/null 2>&1
  stop_dockerd
  unset DOCKER_HOST DOCKER_CONFIG
  umount_under "$W/d"
else
  skip "docker: $DOCKER_REASON"
fi

# --- 5. schema1-only Accept --------------------------------------------------------------
check_schema1() {
  local c
  c=$(fetch "$URL/v2/e2e/docker/manifests/1" -H "Accept: $V2S1")
  [ "$c" = 404 ] || why "GET by tag with schema1-only Accept: status $c, want 404 (body: $(head -c 300 "$W/b"))"
  jq -e '[.errors[]?.code] | index("MANIFEST_UNKNOWN") != null' "$W/b" >/dev/null 2>&1 || why "404 body lacks MANIFEST_UNKNOWN: $(head -c 300 "$W/b")"
  c=$(fetch "$URL/v2/e2e/docker/manifests/$DOCKER_DIG" -H "Accept: $V2S1")
  [ "$c" = 200 ] || why "GET by digest with schema1-only Accept: status $c, want 200 (body: $(head -c 300 "$W/b"))"
  [ "$(sha "$W/b")" = "$DOCKER_DIG" ] || why "by-digest body hashes to $(sha "$W/b")"
}
check "5 schema1-only Accept: tag -> 404 MANIFEST_UNKNOWN, digest -> 200" check_schema1

# --- 6. tag list pagination -----------------------------------------------------------------
check_tags() {
  local t
  for t in a b c d e; do
    "${SKOPEO[@]}" copy -q --preserve-digests --dest-tls-verify=false "dir:$W/docker-src" "docker://$REG/e2e/tags:$t" || why "push tag $t failed"
  done
  local c; c=$(fetch "$URL/v2/e2e/tags/tags/list?n=2")
  [ "$c" = 200 ] || why "GET tags/list?n=2: status $c"
  local got; got=$(jq -r '.tags | join(",")' "$W/b")
  [ "$got" = "a,b" ] || why "first page tags '$got', want a,b (body $(cat "$W/b"))"
  [ "$(jq -r .name "$W/b")" = e2e/tags ] || why "name '$(jq -r .name "$W/b")'"
  local link; link=$(hdr link)
  [ "$link" = '</v2/e2e/tags/tags/list?n=2&last=b>; rel="next"' ] || why "Link header '$link'"
  local all=$got next pages=1
  while next=$(hdr link | sed -n 's/^<\([^>]*\)>; *rel="next".*$/\1/p'); [ -n "$next" ]; do
    pages=$((pages+1)); [ $pages -le 10 ] || { why "more than 10 pages"; break; }
    c=$(fetch "$URL$next"); [ "$c" = 200 ] || why "GET $next: status $c"
    got=$(jq -r '.tags | join(",")' "$W/b"); [ -n "$got" ] && all="$all,$got"
  done
  [ "$all" = "a,b,c,d,e" ] || why "following Link gave '$all' in $pages pages, want a,b,c,d,e"
  [ "$(fetch "$URL/v2/e2e/tags/tags/list")" = 200 ] && [ "$(jq -r '.tags | join(",")' "$W/b")" = "a,b,c,d,e" ] || why "unpaginated list '$(cat "$W/b")'"
}
check "6 tags/list?n=2 paginates with Link rel=next; following it yields a..e in order" check_tags

# --- 7. TLS probe refused at once ----------------------------------------------------------
check_tls() {
  local t1 t2 rc ms
  t1=$(date +%s%N)
  curl -sk --max-time 5 "https://$REG/v2/" -o /dev/null; rc=$?
  t2=$(date +%s%N); ms=$(( (t2 - t1) / 1000000 ))
  note "https probe: curl exit $rc after ${ms} ms"
  [ "$rc" != 0 ] || why "TLS request succeeded?"
  [ "$ms" -lt 1000 ] || why "TLS probe took ${ms} ms (>= 1 s)"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/")" = 401 ] || why "plain HTTP no longer answers after the TLS probe"
}
check "7 TLS ClientHello is refused within 1 s" check_tls

# --- 8. restart keeps data -------------------------------------------------------------------
check_restart() {
  kill -TERM "$BERTH_PID"
  wait_gone "$BERTH_PID" 100 || { kill -KILL "$BERTH_PID"; why "berth still running 10 s after SIGTERM"; }
  wait "$BERTH_PID"; local rc=$?
  [ "$rc" = 0 ] || why "berth exited with status $rc after SIGTERM"
  BERTH_PID=""
  start_berth || { tail -5 "$W/berth.log"; why "berth did not restart on the same data dir"; return 1; }
  "${SKOPEO[@]}" copy -q --preserve-digests --src-tls-verify=false "docker://$REG/e2e/docker:1" "dir:$W/after-restart" || why "skopeo pull by tag after restart failed"
  [ "$(sha "$W/after-restart/manifest.json")" = "$DOCKER_DIG" ] || why "digest after restart $(sha "$W/after-restart/manifest.json") != $DOCKER_DIG"
  "${SKOPEO[@]}" copy -q --all --preserve-digests --src-tls-verify=false "docker://$REG/e2e/multi:1" "oci:$W/multi-after:1" || why "skopeo pull --all of the index after restart failed"
  [ "$(jq -r '.manifests[0].digest' "$W/multi-after/index.json")" = "$SRC_IDX" ] || why "index digest changed after restart"
}
check "8 SIGTERM exits 0; after restart on the same data dir skopeo pulls by tag again" check_restart

# --- 9. access control with real clients ----------------------------------------------------
ANON_AUTH=$W/anon-auth.json; echo '{}' >"$ANON_AUTH"
dist_href() {
  curl -s -u "admin:$ADMIN_PW" "$URL/pulp/api/v3/distributions/container/container/?name=$1" | jq -r '.results[0].pulp_href'
}
set_private() {
  curl -s -u "admin:$ADMIN_PW" -X PATCH -H 'Content-Type: application/json' -d "{\"private\": $2}" "$URL$(dist_href "$1")" | grep -q task
}
check_anonymous() {
  REGISTRY_AUTH_FILE=$ANON_AUTH "${SKOPEO[@]}" copy -q --src-tls-verify=false "docker://$REG/e2e/docker:1" "dir:$W/anon" || why "anonymous pull of a public distribution failed"
  set_private e2e/docker true || why "could not make e2e/docker private"
  if REGISTRY_AUTH_FILE=$ANON_AUTH "${SKOPEO[@]}" copy -q --src-tls-verify=false "docker://$REG/e2e/docker:1" "dir:$W/anon2" >"$W/anon2.out" 2>&1; then
    why "anonymous pull of a private distribution worked"
  fi
  grep -qi 'unauthorized\|authentication required\|denied' "$W/anon2.out" || why "anonymous private pull said: $(cat "$W/anon2.out")"
  if REGISTRY_AUTH_FILE=$ANON_AUTH "${POD[@]}" pull -q --tls-verify=false "$REG/e2e/docker:1" >/dev/null 2>&1; then
    why "anonymous podman pull of a private distribution worked"
  fi
  return 0
}
check_reader() {
  REGISTRY_AUTH_FILE=$ANON_AUTH "${SKOPEO[@]}" copy -q --src-tls-verify=false --src-creds "reader:$READER_PW" "docker://$REG/e2e/docker:1" "dir:$W/reader" || why "the read-only user could not pull a private distribution"
  if REGISTRY_AUTH_FILE=$ANON_AUTH "${SKOPEO[@]}" copy -q --dest-tls-verify=false --dest-creds "reader:$READER_PW" "dir:$W/reader" "docker://$REG/e2e/reader-push:1" >"$W/rp.out" 2>&1; then
    why "the read-only user could push"
  fi
  [ "$(curl -s -u "admin:$ADMIN_PW" "$URL/pulp/api/v3/distributions/container/container/?name=e2e/reader-push" | jq .count)" = 0 ] || why "the refused push created something"
  set_private e2e/docker false || why "could not make e2e/docker public again"
}
check "9a anonymous pull: public works, private is refused (skopeo, podman)" check_anonymous
check "9b read-only user: pulls private content, cannot push" check_reader

T1=$(date +%s%N)
echo "runtime $(( (T1 - T0) / 1000000000 )) s"
if [ "$FAIL" -gt 0 ]; then echo "--- berth log (last 20 lines) ---"; tail -20 "$W/berth.log"; fi
e2e_summary
