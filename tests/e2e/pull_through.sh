#!/usr/bin/env bash
# End-to-end test of pull-through caching with real clients, against real upstreams (Debian's
# docker-registry, one plain and one behind htpasswd Basic auth) whose own access logs count
# every request Berth makes upstream.
#
# The pull-through remotes and distributions are made through the Pulp API (curl, and once the
# unmodified `pulp` CLI's `debug openapi call`). Token auth is on (the default) and every pull is
# anonymous, from a public cache. Checked: podman and skopeo pull `<berth>/cache/<upstream
# path>:<tag>` and the second pull asks upstream nothing; after the TTL a tag pull costs one
# HEAD; a tag moved upstream is seen after the TTL; a one-platform pull of a two-platform index
# fetches only that platform upstream; excluded names are NAME_UNKNOWN; 16 concurrent first
# pulls make one upstream GET per manifest and blob; a client killed in the middle of a layer
# leaves no partial blob; with the upstream stopped cached tags still pull and an uncached one
# fails at once; credentials reach the htpasswd upstream and a wrong password fails cleanly;
# docker pulls through `registry-mirrors` (BERTH_PULL_THROUGH_DEFAULT) and containerd through a
# hosts.toml mirror with `ns` (BERTH_PULL_THROUGH_NS), with no internet; the cached repository
# is visible through the API with a version holding the pulled tag; an upstream that redirects
# blob GETs (a Berth on the AWS adapters on moto, 307s to presigned S3 URLs) pulls through too.
#
#   BERTH_BIN=target/release/berth PULP_BIN=.../pulp bash tests/e2e/pull_through.sh
#
# The Berth under test takes its backend from the environment (BERTH_BACKEND=aws with its
# bucket, table and queue runs it on the AWS adapters; each Berth here gets a bucket, table and
# queue of its own, suffixed). Needs: docker-registry, skopeo, podman, htpasswd, curl, jq,
# python3; the pulp CLI for its check, dockerd and docker for the docker check, containerd and
# ctr for the containerd check (each SKIPped when absent). Loopback only, free ports,
# everything under one `mktemp -d` folder, removed on exit with every process this script
# started. Prints `OK   name` / `FAIL name` (/ `SKIP name`) lines and ends with
# `N passed, N failed`.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BERTH_BIN=${BERTH_BIN:-$HERE/../../target/release/berth}
PULP_BIN=${PULP_BIN:-pulp}
TTL=${PT_TTL:-8}   # BERTH_PULL_THROUGH_TTL of the Berths here, in seconds (the first check pulls four times within it)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init berth-pull-through
T0=$SECONDS
cleanup() {
  set +e
  stop_dockerd
  stop_pid "$CTD_PID"
  stop_pids
  [ -d "$W/pstorage" ] && "${POD[@]}" rmi -a -f >/dev/null 2>&1
  umount_under "$W"
  rm -rf "$W"
}

missing=""
for b in docker-registry skopeo podman htpasswd curl jq python3; do command -v "$b" >/dev/null || missing="$missing $b"; done
[ -x "$BERTH_BIN" ] || missing="$missing berth($BERTH_BIN)"
if [ -n "$missing" ]; then echo "FAIL missing:$missing"; echo "0 passed, 1 failed"; exit 1; fi

# --- isolated client configuration ---------------------------------------------------------------
mkdir -p "$W/pstorage" "$W/prun" "$W/ptmp" "$W/tmp" "$W/cache" "$W/config"
export TMPDIR=$W/tmp XDG_CACHE_HOME=$W/cache XDG_CONFIG_HOME=$W/config
export REGISTRY_AUTH_FILE=$W/auth.json; echo '{}' >"$REGISTRY_AUTH_FILE"   # anonymous everywhere
export CONTAINERS_REGISTRIES_CONF=$W/registries.conf
printf 'unqualified-search-registries = []\n' >"$CONTAINERS_REGISTRIES_CONF"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
mkdir -p "$W/regd"
SKOPEO=(skopeo --policy "$W/policy.json" --registries.d "$W/regd")
POD=(podman --root "$W/pstorage" --runroot "$W/prun" --storage-driver vfs --tmpdir "$W/ptmp" --events-backend none)
sha() { sha256sum "$1" | awk '{print "sha256:"$1}'; }
fail_setup() { echo "FAIL $*"; echo "$PASS passed, $((FAIL + 1)) failed"; exit 1; }

# --- upstreams: docker-registry with its access log on ---------------------------------------------
# start_registry NAME [AUTH_YAML]: a docker-registry on a free port (on ${NAME}_PORT when it
# ran before), its log appended to $W/NAME/log; sets ${NAME}_PORT and ${NAME}_PID
start_registry() {
  local name=$1 auth=${2:-} port
  port=$(eval "echo \${${name}_PORT:-}"); [ -n "$port" ] || port=$(free_port)
  mkdir -p "$W/$name"
  cat >"$W/$name/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $W/$name/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
EOF
  # (docker-registry reads REGISTRY_* variables as configuration: REGISTRY_AUTH_FILE would become auth.file)
  env -u REGISTRY_AUTH_FILE docker-registry serve "$W/$name/config.yml" >>"$W/$name/log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  printf -v "${name}_PORT" %s "$port"; printf -v "${name}_PID" %s "$pid"
  wait_http "http://127.0.0.1:$port/v2/" "$pid"
}
# the upstream's requests, as "METHOD PATH" lines, from its access log (Apache's combined format):
# up_mark NAME remembers where the log ends; up_since NAME prints the requests made since
up_mark() { sleep 0.3; printf -v "MARK_$1" %s "$(wc -l <"$W/$1/log")"; }
up_since() {
  local m="MARK_$1"; sleep 0.3
  tail -n +"$((${!m} + 1))" "$W/$1/log" | sed -n 's/^[0-9.]* - [^ ]* \[[^]]*\] "\([A-Z]*\) \([^ ]*\) HTTP[^"]*" \([0-9]*\) .*/\1 \2 \3/p'
}

start_registry up || fail_setup "docker-registry did not start: $(tail -3 "$W/up/log")"
htpasswd -Bbn puller "pt-secret-$$" >"$W/htpasswd"
start_registry sec "auth:
  htpasswd:
    realm: pt-e2e
    path: $W/htpasswd" || fail_setup "docker-registry (htpasswd) did not start: $(tail -3 "$W/sec/log")"
UP=127.0.0.1:$up_PORT SEC=127.0.0.1:$sec_PORT

# --- test images ----------------------------------------------------------------------------------
python3 "$HERE/make_oci.py" "$W/img" v1="pull-through one" v2="pull-through two" conc="sixteen at once" \
  hub="through the mirror" secret="not for the cache" gone="never pulled" >/dev/null || fail_setup "make_oci.py"
# a two-platform index (tag multi, its children linux/amd64 and linux/arm64) and a 20 MB layer
# (tag big, uncompressed random bytes) in the same layout; prints the children's digests
python3 - "$HERE" "$W/img" >"$W/img/extra.txt" <<'PY' || fail_setup "the index and big images"
import gzip, hashlib, io, json, os, sys, tarfile
sys.path.insert(0, sys.argv[1])
import make_oci
root = sys.argv[2]
idx_path = os.path.join(root, "index.json")
index = json.load(open(idx_path))

def image(text, arch, layer=None, ltype="application/vnd.oci.image.layer.v1.tar+gzip"):
    if layer is None:
        layer, diff_id = make_oci.layer(text)
    else:
        diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    ld, ls = make_oci.blob(root, layer)
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/true"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, sort_keys=True).encode()
    cd, cs = make_oci.blob(root, config)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                    "layers": [{"mediaType": ltype, "digest": ld, "size": ls}]}, sort_keys=True).encode()
    md, ms = make_oci.blob(root, m)
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms}, cd, ld

amd, amd_cfg, amd_layer = image("the amd64 platform", "amd64")
arm, arm_cfg, arm_layer = image("the arm64 platform", "arm64")
children = [dict(amd, platform={"architecture": "amd64", "os": "linux"}),
            dict(arm, platform={"architecture": "arm64", "os": "linux"})]
idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": children}, sort_keys=True).encode()
xd, xs = make_oci.blob(root, idx)
index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": xd, "size": xs,
                           "annotations": {"org.opencontainers.image.ref.name": "multi"}})
# a tar holding 20 MB of random bytes, gzip'ed (skopeo would compress an uncompressed layer on
# its way upstream, changing its digest)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
    data = os.urandom(20 * 1024 * 1024)
    info = tarfile.TarInfo("big.bin"); info.size, info.mtime, info.mode = len(data), 0, 0o644
    t.addfile(info, io.BytesIO(data))
big, _, big_layer = image("", "amd64", gzip.compress(raw.getvalue(), compresslevel=1, mtime=0))
index["manifests"].append(dict(big, annotations={"org.opencontainers.image.ref.name": "big"}))
json.dump(index, open(idx_path, "w"))
print("AMD", amd["digest"], amd_cfg, amd_layer)
print("ARM", arm["digest"], arm_cfg, arm_layer)
print("INDEX", xd)
print("BIG", big["digest"], big_layer)
PY
read -r _ AMD_M AMD_C AMD_L < <(grep '^AMD ' "$W/img/extra.txt")
read -r _ ARM_M ARM_C ARM_L < <(grep '^ARM ' "$W/img/extra.txt")
read -r _ BIG_M BIG_L < <(grep '^BIG ' "$W/img/extra.txt")
# push SRC_TAG REGISTRY REPO:TAG [CREDS]: the test image SRC_TAG (all platforms) upstream
push() {
  "${SKOPEO[@]}" copy -q --all --dest-tls-verify=false ${4:+--dest-creds "$4"} "oci:$W/img:$1" "docker://$2/$3" >"$W/push.out" 2>&1 ||
    why "pushing $1 to $2/$3 failed: $(cat "$W/push.out")"
}
upstream_fill() {
  push v1 "$UP" up/app:v1 && push v1 "$UP" up/app:moving && push multi "$UP" up/multi:1 &&
    push conc "$UP" up/conc:1 && push big "$UP" up/big:1 && push secret "$UP" up/secret:1 &&
    push v2 "$UP" up/app:later && push hub "$UP" library/ptimg:1 &&
    push v1 "$SEC" up/app:v1 "puller:pt-secret-$$"
}
check "the upstreams hold the test images" upstream_fill

# --- the Berths ---------------------------------------------------------------------------------
PW=pt-admin-$RANDOM-$RANDOM
# start_berth NAME [NAME=VALUE...]: a Berth on a free port (token auth on, the default; its
# access log on) with its data in $W/NAME; sets ${NAME}_PORT and ${NAME}_PID. On the AWS
# adapters each Berth gets a table, bucket and queue of its own
start_berth() {
  local name=$1 port; shift
  port=$(eval "echo \${${name}_PORT:-}"); [ -n "$port" ] || port=$(free_port)
  mkdir -p "$W/$name"
  local aws=()
  [ -n "${BERTH_TABLE:-}" ] && aws=(BERTH_TABLE="$BERTH_TABLE-$name" BERTH_BUCKET="$BERTH_BUCKET-$name" BERTH_QUEUE_NAME="$BERTH_QUEUE_NAME-$name")
  berth_start "$BERTH_BIN" "127.0.0.1:$port" "$W/$name/data" "$W/$name/log" "$PW" \
    BERTH_LOG="info,berth::access=debug" BERTH_PULL_THROUGH_TTL="$TTL" ${aws[@]+"${aws[@]}"} "$@"
  local rc=$?
  printf -v "${name}_PORT" %s "$port"; printf -v "${name}_PID" %s "$STARTED_PID"
  return $rc
}
start_berth b || fail_setup "berth did not start: $(tail -5 "$W/b/log")"
B=127.0.0.1:$b_PORT URL=http://127.0.0.1:$b_PORT
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$B" >>"$CONTAINERS_REGISTRIES_CONF"
note "berth $B ($BERTH_BIN, backend ${BERTH_BACKEND:-embedded}, TTL $TTL s); upstreams $UP, $SEC (htpasswd)"

# --- the Pulp API ---------------------------------------------------------------------------------
# api METHOD URL PATH [JSON]: the answer's body in $W/api.json; prints the status
api() {
  curl -s -o "$W/api.json" -w '%{http_code}' -u "admin:$PW" -X "$1" ${4:+-H 'Content-Type: application/json' -d "$4"} "$2$3"
}
# wait_task URL HREF: until the task is completed (at most 20 s)
wait_task() {
  local s
  for _ in $(seq 1 100); do
    s=$(curl -s -u "admin:$PW" "$1$2" | jq -r .state)
    case $s in completed) return 0 ;; failed|canceled) why "task $2 $s: $(curl -s -u "admin:$PW" "$1$2")"; return 1 ;; esac
    sleep 0.2
  done
  why "task $2 still $s after 20 s"
}
# pt_remote URL NAME UPSTREAM_URL [EXTRA_JSON_FIELDS]: a pull-through remote (201); REMOTE_HREF
pt_remote() {
  local code
  code=$(api POST "$1" /pulp/api/v3/remotes/container/pull-through/ "{\"name\": \"$2\", \"url\": \"$3\"${4:+, $4}}")
  [ "$code" = 201 ] || { why "remote $2: $code $(cat "$W/api.json")"; return 1; }
  REMOTE_HREF=$(jq -r .pulp_href "$W/api.json")
  [ "$(jq -r .policy "$W/api.json")" = on_demand ] || why "remote $2: policy $(jq -r .policy "$W/api.json")"
}
# pt_dist URL NAME BASE_PATH REMOTE_HREF: a pull-through distribution (202, its task completed)
pt_dist() {
  local code task
  code=$(api POST "$1" /pulp/api/v3/distributions/container/pull-through/ \
    "{\"name\": \"$2\", \"base_path\": \"$3\", \"remote\": \"$4\"}")
  [ "$code" = 202 ] || { why "distribution $2: $code $(cat "$W/api.json")"; return 1; }
  task=$(jq -r .task "$W/api.json")
  wait_task "$1" "$task" || return 1
  code=$(api GET "$1" "/pulp/api/v3/distributions/container/pull-through/?name=$2")
  [ "$code" = 200 ] && [ "$(jq -r '.results[0].remote' "$W/api.json")" = "$4" ] ||
    why "distribution $2 reads back as: $code $(cat "$W/api.json")"
}
api_setup() {
  pt_remote "$URL" up "http://$UP" && pt_dist "$URL" cache cache "$REMOTE_HREF" || return 1
  pt_remote "$URL" sec "http://$SEC" '"username": "puller", "password": "pt-secret-'$$'"' && pt_dist "$URL" sec sec "$REMOTE_HREF" || return 1
  pt_remote "$URL" sec-wrong "http://$SEC" '"username": "puller", "password": "wrong"' && pt_dist "$URL" sec-wrong sec-wrong "$REMOTE_HREF"
  # the password is write-only
  api GET "$URL" "$REMOTE_HREF" >/dev/null
  jq -e 'has("password") or has("username") | not' "$W/api.json" >/dev/null || why "the remote shows its credentials: $(cat "$W/api.json")"
  [ "$(jq -c '[.hidden_fields[] | select(.is_set) | .name] | sort' "$W/api.json")" = '["password","username"]' ] ||
    why "hidden_fields: $(jq -c .hidden_fields "$W/api.json")"
}
check "pull-through remotes (201) and distributions (202, a task) through the Pulp API (curl)" api_setup

cli_setup() {
  local P=("$PULP_BIN" --base-url "$URL" --username admin --password "$PW")
  "${P[@]}" debug openapi call --id remotes_container_pull_through_create \
    --body "{\"name\": \"filtered\", \"url\": \"http://$UP\", \"includes\": [\"up/*\"], \"excludes\": [\"up/secret*\"]}" \
    >"$W/cli.json" 2>&1 || { why "remotes_container_pull_through_create: $(cat "$W/cli.json")"; return 1; }
  local href; href=$(jq -r .pulp_href "$W/cli.json")
  [ "$(jq -c .excludes "$W/cli.json")" = '["up/secret*"]' ] || why "excludes: $(jq -c .excludes "$W/cli.json")"
  "${P[@]}" debug openapi call --id distributions_container_pull_through_create \
    --body "{\"name\": \"filtered\", \"base_path\": \"filtered\", \"remote\": \"$href\"}" >"$W/cli2.json" 2>&1 ||
    { why "distributions_container_pull_through_create: $(cat "$W/cli2.json")"; return 1; }
  "${P[@]}" debug openapi call --id distributions_container_pull_through_list --parameter name=filtered >"$W/cli3.json" 2>&1 &&
    [ "$(jq -r '.results[0].remote' "$W/cli3.json")" = "$href" ] || why "the distribution lists as: $(cat "$W/cli3.json")"
}
HAVE_PULP=0
if command -v "$PULP_BIN" >/dev/null; then
  HAVE_PULP=1
  check "pulp debug openapi call remotes_container_pull_through_create (and the distribution)" cli_setup
else
  skip "pulp debug openapi call remotes_container_pull_through_create (no pulp CLI at $PULP_BIN)"
  filtered_curl() {
    pt_remote "$URL" filtered "http://$UP" '"includes": ["up/*"], "excludes": ["up/secret*"]' && pt_dist "$URL" filtered filtered "$REMOTE_HREF"
  }
  check "the filtered remote and distribution (curl, no pulp CLI)" filtered_curl
fi

# --- registry helpers -----------------------------------------------------------------------------
ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
# token URL NAME: an anonymous pull token for NAME, through the challenge of URL's /v2/
token() {
  local ch realm service
  ch=$(curl -s -D - -o /dev/null "$1/v2/" | tr -d '\r' | grep -i '^www-authenticate:')
  realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$ch"); service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$ch")
  curl -s -G "$realm" --data-urlencode "service=$service" --data-urlencode "scope=repository:$2:pull" | jq -r '.token // .access_token'
}
# rget URL NAME KIND REF [CURL_ARGS...]: an anonymous GET of /v2/NAME/KIND/REF (body in $W/rb,
# headers in $W/rh, redirects followed); prints the status
rget() {
  local url=$1 name=$2 kind=$3 ref=$4; shift 4
  curl -s -L -o "$W/rb" -D "$W/rh" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $(token "$url" "$name")" \
    -H "Accept: $ACCEPT" "$@" "$url/v2/$name/$kind/$ref"
}
# sk_copy NAME:TAG DIR [ARGS...]: skopeo copies NAME:TAG from the Berth to dir:DIR (anonymously)
sk_copy() {
  local src=$1 dir=$2; shift 2
  rm -rf "$dir"
  timeout 60 "${SKOPEO[@]}" copy -q --src-tls-verify=false "$@" "docker://$B/$src" "dir:$dir" >"$dir.out" 2>&1
}
# dir_verified DIR: every blob skopeo wrote into DIR hashes to the digest the manifest names
dir_verified() {
  local d f
  for d in $(jq -r '.config.digest, .layers[].digest' "$1/manifest.json"); do
    f="$1/${d#sha256:}"
    [ -f "$f" ] && [ "$(sha "$f")" = "$d" ] || { why "$1: $d missing or corrupt"; return 1; }
  done
}
pod_pull() { timeout 60 "${POD[@]}" pull -q --tls-verify=false "$@" >"$W/pod.out" 2>&1; }
digest_of() { jq -r ".manifests[] | select(.annotations[\"org.opencontainers.image.ref.name\"] == \"$1\") | .digest" "$W/img/index.json"; }
V1=$(digest_of v1) V2=$(digest_of v2) CONC=$(digest_of conc) HUB=$(digest_of hub)
# lines_of PATTERN: the requests in $W/req matching PATTERN (grep -E), counted
lines_of() { grep -cE "$1" "$W/req"; }

# --- 1. podman and skopeo pull through the cache; the second pull asks upstream nothing ------------
t_first_pull() {
  up_mark up
  CHECKED_V1=$SECONDS
  pod_pull "$B/cache/up/app:v1" || { why "podman pull failed: $(cat "$W/pod.out")"; return 1; }
  sk_copy cache/up/app:v1 "$W/d1" || { why "skopeo copy failed: $(cat "$W/d1.out")"; return 1; }
  dir_verified "$W/d1" || return 1
  [ "$(sha "$W/d1/manifest.json")" = "$V1" ] || why "skopeo got $(sha "$W/d1/manifest.json"), upstream has $V1"
  up_since up >"$W/req"
  note "the first pulls asked upstream: $(tr '\n' ';' <"$W/req")"
  [ "$(lines_of '^GET /v2/up/app/manifests/v1 ')" = 1 ] || why "the first pulls made $(lines_of '^GET /v2/up/app/manifests/v1 ') GETs of the tag upstream"
  # the second round: podman (after rmi) and skopeo again, within the TTL
  up_mark up
  "${POD[@]}" rmi -a -f >/dev/null 2>&1
  pod_pull "$B/cache/up/app:v1" || why "the second podman pull failed: $(cat "$W/pod.out")"
  sk_copy cache/up/app:v1 "$W/d1b" || why "the second skopeo copy failed: $(cat "$W/d1b.out")"
  dir_verified "$W/d1b" || return 1
  local took=$((SECONDS - CHECKED_V1))
  up_since up >"$W/req"
  note "both rounds took ${took} s (the TTL is $TTL s)"
  [ ! -s "$W/req" ] || why "the second pulls (${took} s after the first) asked upstream: $(tr '\n' ';' <"$W/req")"
}
check "1. podman and skopeo pull cache/up/app:v1; the second pull asks upstream nothing" t_first_pull

# prime the tag that will move upstream, then move it; after one TTL both checks 2 and 3 run
prime_moving() {
  sk_copy cache/up/app:moving "$W/dm" || { why "skopeo copy of :moving failed: $(cat "$W/dm.out")"; return 1; }
  MOVED_AT=$SECONDS
  [ "$(sha "$W/dm/manifest.json")" = "$V1" ] || why ":moving is $(sha "$W/dm/manifest.json"), not v1's $V1"
  push v2 "$UP" up/app:moving
}
check "the cache holds :moving (v1), then it moves to v2 upstream" prime_moving
# wait_ttl SINCE: sleeps until TTL+1 s have passed since SECONDS was SINCE
wait_ttl() { local left=$(($1 + TTL + 1 - SECONDS)); [ "$left" -gt 0 ] && sleep "$left"; return 0; }

# --- 2. after the TTL: one HEAD, no GET of a manifest ---------------------------------------------
t_after_ttl() {
  wait_ttl "${MOVED_AT:-0}"
  up_mark up
  sk_copy cache/up/app:v1 "$W/d2" || { why "skopeo copy after the TTL failed: $(cat "$W/d2.out")"; return 1; }
  dir_verified "$W/d2" || return 1
  V1_CHECKED=$SECONDS
  up_since up >"$W/req"
  note "after the TTL upstream saw: $(tr '\n' ';' <"$W/req")"
  [ "$(lines_of '^HEAD /v2/up/app/manifests/v1 ')" = 1 ] || why "$(lines_of '^HEAD /v2/up/app/manifests/v1 ') HEADs of the tag (1 expected)"
  [ "$(lines_of '^GET .*/manifests/')" = 0 ] || why "GETs of manifests: $(grep -E '^GET .*/manifests/' "$W/req" | tr '\n' ';')"
  [ "$(lines_of '^GET .*/blobs/')" = 0 ] || why "GETs of blobs: $(grep -E '^GET .*/blobs/' "$W/req" | tr '\n' ';')"
}
check "2. after the TTL a tag pull makes exactly one HEAD upstream and no GET" t_after_ttl

# --- 3. a tag moved upstream is seen after the TTL ---------------------------------------------------
t_moved() {
  up_mark up
  sk_copy cache/up/app:moving "$W/d3" || { why "skopeo copy of :moving failed: $(cat "$W/d3.out")"; return 1; }
  dir_verified "$W/d3" || return 1
  [ "$(sha "$W/d3/manifest.json")" = "$V2" ] || why ":moving is $(sha "$W/d3/manifest.json") after the TTL, upstream has $V2 (v1 was $V1)"
  up_since up >"$W/req"
  note "the moved tag asked upstream: $(tr '\n' ';' <"$W/req")"
  [ "$(lines_of '^GET /v2/up/app/manifests/moving ')" = 1 ] || why "$(lines_of '^GET /v2/up/app/manifests/moving ') GETs of the moved tag (1 expected)"
}
check "3. a tag moved upstream (:moving, v1 -> v2) is seen after the TTL" t_moved

# --- 4. one platform of a two-platform index ---------------------------------------------------------
t_platform() {
  up_mark up
  sk_copy cache/up/multi:1 "$W/d4" --override-arch arm64 --override-os linux || { why "skopeo copy --override-arch arm64 failed: $(cat "$W/d4.out")"; return 1; }
  dir_verified "$W/d4" || return 1
  [ "$(sha "$W/d4/manifest.json")" = "$ARM_M" ] || why "copied $(sha "$W/d4/manifest.json"), the arm64 child is $ARM_M"
  up_since up >"$W/req"
  note "the arm64 pull asked upstream: $(tr '\n' ';' <"$W/req")"
  local d
  for d in "$ARM_M" "$ARM_C" "$ARM_L"; do
    [ "$(lines_of "^GET .*/$d ")" = 1 ] || why "$d (arm64) was fetched $(lines_of "^GET .*/$d ") times"
  done
  for d in "$AMD_M" "$AMD_C" "$AMD_L"; do
    [ "$(lines_of "$d")" = 0 ] || why "the amd64 platform's $d was requested: $(grep "$d" "$W/req" | tr '\n' ';')"
  done
}
check "4. an arm64 pull of a two-platform index fetches only the arm64 manifest and blobs upstream" t_platform

# --- 5. excluded names ---------------------------------------------------------------------------------
t_excluded() {
  up_mark up
  local code; code=$(rget "$URL" filtered/up/secret manifests 1)
  [ "$code" = 404 ] && [ "$(jq -r '.errors[0].code' "$W/rb" 2>/dev/null)" = NAME_UNKNOWN ] ||
    why "GET filtered/up/secret:1 answered $code $(head -c 300 "$W/rb")"
  if timeout 30 "${SKOPEO[@]}" inspect --tls-verify=false "docker://$B/filtered/up/secret:1" >"$W/ex.out" 2>&1; then
    why "skopeo inspect of an excluded name worked"
  fi
  grep -qi 'name unknown' "$W/ex.out" || why "skopeo inspect said: $(cat "$W/ex.out")"
  # a name not in includes too; an included one works
  code=$(rget "$URL" filtered/library/ptimg manifests 1)
  [ "$code" = 404 ] && [ "$(jq -r '.errors[0].code' "$W/rb" 2>/dev/null)" = NAME_UNKNOWN ] ||
    why "GET filtered/library/ptimg:1 (not included) answered $code $(head -c 300 "$W/rb")"
  sk_copy filtered/up/app:v1 "$W/d5" || why "the included filtered/up/app:v1 did not pull: $(cat "$W/d5.out")"
  up_since up >"$W/req"
  if grep -qE 'up/secret|library/ptimg' "$W/req"; then why "excluded names were asked upstream: $(tr '\n' ';' <"$W/req")"; fi
}
check "5. excluded names get NAME_UNKNOWN (skopeo inspect fails; nothing asked upstream)" t_excluded

# --- 6. 16 concurrent first pulls --------------------------------------------------------------------
t_concurrent() {
  up_mark up
  local i pids=() bad=0
  for i in $(seq 1 16); do
    sk_copy cache/up/conc:1 "$W/c$i" & pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; why "copy $((i + 1)) failed: $(cat "$W/c$((i + 1)).out")"; }; done
  [ "$bad" = 0 ] || return 1
  for i in $(seq 1 16); do
    dir_verified "$W/c$i" || return 1
    [ "$(sha "$W/c$i/manifest.json")" = "$CONC" ] || why "copy $i got $(sha "$W/c$i/manifest.json") != $CONC"
  done
  up_since up >"$W/req"
  note "16 pulls asked upstream: $(awk '{print $1, $2}' "$W/req" | sort | uniq -c | awk '{print $1 "x " $2 " " $3}' | tr '\n' ';')"
  local m
  m=$(awk '$1 == "GET" {print $2}' "$W/req" | sort | uniq -c | awk '$1 != 1')
  [ -z "$m" ] || why "requested more than once: $(tr '\n' ';' <<<"$m")"
  [ "$(lines_of '^GET /v2/up/conc/manifests/1 ')" = 1 ] || why "the tag was fetched $(lines_of '^GET /v2/up/conc/manifests/1 ') times"
  for d in $(jq -r '.config.digest, .layers[].digest' "$W/c1/manifest.json"); do
    [ "$(lines_of "^GET /v2/up/conc/blobs/$d ")" = 1 ] || why "blob $d was fetched $(lines_of "^GET /v2/up/conc/blobs/$d ") times"
  done
}
check "6. 16 concurrent first pulls make one upstream GET per manifest and per blob" t_concurrent

# --- 7. a client killed in the middle of a layer ------------------------------------------------------
# stored_blob DIGEST FILE: copies what the blob store holds for DIGEST into FILE; fails when it
# holds nothing (the file under the data directory, or the S3 object at AWS_ENDPOINT_URL)
stored_blob() {
  local hex=${1#sha256:}
  if [ "${BERTH_BACKEND:-}" = aws ]; then
    curl -sf --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
      -o "$2" "$AWS_ENDPOINT_URL/$BERTH_BUCKET-b/blobs/sha256/$hex"
  else
    local f="$W/b/data/blobs/sha256/${hex:0:2}/$hex"
    [ -f "$f" ] && cp "$f" "$2"
  fi
}
t_killed() {
  up_mark up
  local code; code=$(rget "$URL" cache/up/big manifests 1)
  [ "$code" = 200 ] || { why "GET cache/up/big:1 answered $code $(head -c 300 "$W/rb")"; return 1; }
  [ "$(sha "$W/rb")" = "$BIG_M" ] || why "the manifest hashes to $(sha "$W/rb"), not $BIG_M"
  local tok; tok=$(token "$URL" cache/up/big)
  curl -s -L --limit-rate 1M -H "Authorization: Bearer $tok" -o "$W/partial" "$URL/v2/cache/up/big/blobs/$BIG_L" &
  local cpid=$!
  for _ in $(seq 1 100); do
    [ "$(stat -c %s "$W/partial" 2>/dev/null || echo 0)" -gt 1000000 ] && break
    alive "$cpid" || break
    sleep 0.1
  done
  local got; got=$(stat -c %s "$W/partial" 2>/dev/null || echo 0)
  kill -KILL "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
  note "the client was killed after $got bytes of a 20 MB layer"
  [ "$got" -gt 0 ] && [ "$got" -lt 20000000 ] || why "the client received $got bytes before it was killed"
  # whatever the store holds for the layer now is whole (or nothing yet)
  if stored_blob "$BIG_L" "$W/stored"; then
    [ "$(sha "$W/stored")" = "$BIG_L" ] || why "right after the kill the store holds $(stat -c %s "$W/stored") bytes for $BIG_L hashing to $(sha "$W/stored")"
  fi
  sk_copy cache/up/big:1 "$W/d7" || { why "the next pull failed: $(cat "$W/d7.out")"; return 1; }
  dir_verified "$W/d7" || return 1
  stored_blob "$BIG_L" "$W/stored" || why "the store holds no $BIG_L after a whole pull"
  [ "$(sha "$W/stored")" = "$BIG_L" ] || why "the store holds $(stat -c %s "$W/stored") bytes for $BIG_L hashing to $(sha "$W/stored")"
  up_since up >"$W/req"
  note "the killed and the next pull asked upstream: $(tr '\n' ';' <"$W/req")"
  # the transfer the killed client started ran to its end and was kept: the next pull read it
  [ "$(lines_of "^GET /v2/up/big/blobs/$BIG_L ")" = 1 ] || why "the layer was fetched upstream $(lines_of "^GET /v2/up/big/blobs/$BIG_L ") times (1 expected)"
}
check "7. a client killed in the middle of a 20 MB layer leaves no partial blob; the next pull verifies" t_killed

# --- 9. the htpasswd upstream: credentials, and a wrong password ------------------------------------
t_credentials() {
  up_mark sec
  sk_copy sec/up/app:v1 "$W/d9" || { why "the pull through the credentialed remote failed: $(cat "$W/d9.out")"; return 1; }
  dir_verified "$W/d9" || return 1
  [ "$(sha "$W/d9/manifest.json")" = "$V1" ] || why "got $(sha "$W/d9/manifest.json") != $V1"
  up_since sec >"$W/req"
  grep -qE '^GET /v2/up/app/manifests/v1 200' "$W/req" || why "no authorized GET of the tag upstream: $(tr '\n' ';' <"$W/req")"
  local t0=$SECONDS code
  if sk_copy sec-wrong/up/app:v1 "$W/d9w"; then why "the pull with a wrong upstream password worked"; fi
  [ $((SECONDS - t0)) -lt 30 ] || why "the failing pull took $((SECONDS - t0)) s"
  note "with a wrong password skopeo said: $(tail -1 "$W/d9w.out" | cut -c1-200)"
  code=$(rget "$URL" sec-wrong/up/app manifests v1)
  note "with a wrong password the manifest GET answered $code $(head -c 200 "$W/rb")"
  case $code in 4??|502|503|504) ;; *) why "with a wrong password the manifest GET answered $code $(head -c 300 "$W/rb")" ;; esac
  jq -e '.errors[0].message' "$W/rb" >/dev/null 2>&1 || why "the answer is no registry error: $(head -c 300 "$W/rb")"
  local msg; msg=$(jq -r '.errors[0].message' "$W/rb" 2>/dev/null)
  grep -qi 'credentials\|401' <<<"$msg" || why "the error does not say the upstream refused the credentials: $msg"
}
check "9. a remote with username/password pulls from the htpasswd upstream; a wrong password fails cleanly" t_credentials

# --- 12. the cached repository through the API --------------------------------------------------------
t_repository() {
  local code href
  code=$(api GET "$URL" "/pulp/api/v3/repositories/container/container/?name=cache/up/app")
  [ "$code" = 200 ] && [ "$(jq -r .count "$W/api.json")" = 1 ] || { why "repository cache/up/app: $code $(cat "$W/api.json")"; return 1; }
  href=$(jq -r '.results[0].latest_version_href' "$W/api.json")
  code=$(api GET "$URL" "/pulp/api/v3/content/container/tags/?repository_version=$href&limit=100")
  local tags; tags=$(jq -r '[.results[].name] | sort | join(",")' "$W/api.json")
  note "cache/up/app: latest version $href holds tags $tags"
  [[ ",$tags," == *,v1,* ]] || why "the latest version holds tags '$tags' ($code)"
  [[ ",$tags," == *,moving,* ]] || why "the latest version holds tags '$tags', not moving"
  if [ "$HAVE_PULP" = 1 ]; then
    "$PULP_BIN" --base-url "$URL" --username admin --password "$PW" container repository show --name cache/up/app >"$W/rs.json" 2>&1 ||
      why "pulp container repository show --name cache/up/app: $(cat "$W/rs.json")"
  fi
  code=$(api GET "$URL" "/pulp/api/v3/distributions/container/container/?base_path=cache/up/app")
  [ "$(jq -r .count "$W/api.json")" = 1 ] || why "no distribution cache/up/app: $code $(cat "$W/api.json")"
}
check "12. the cached repository cache/up/app is visible with a version holding the pulled tags" t_repository

# --- 8. the upstream stopped -------------------------------------------------------------------------
t_upstream_down() {
  stop_pid "$up_PID"
  # past the TTL of v1's last check, so the cache does try the upstream
  wait_ttl "${V1_CHECKED:-0}"
  "${POD[@]}" rmi -a -f >/dev/null 2>&1
  pod_pull "$B/cache/up/app:v1" || why "podman pull of a cached tag with the upstream down failed: $(cat "$W/pod.out")"
  sk_copy cache/up/app:v1 "$W/d8" || why "skopeo copy of a cached tag with the upstream down failed: $(cat "$W/d8.out")"
  [ -f "$W/d8/manifest.json" ] && dir_verified "$W/d8"
  local t0=$SECONDS code
  if sk_copy cache/up/app:later "$W/d8u"; then why "an uncached tag pulled with the upstream down"; fi
  code=$(rget "$URL" cache/up/app manifests later)
  note "an uncached tag with the upstream down: $code $(head -c 200 "$W/rb")"
  [ $((SECONDS - t0)) -lt 20 ] || why "the failing pulls took $((SECONDS - t0)) s"
  case $code in 404|502|503|504) ;; *) why "an uncached tag with the upstream down answered $code $(head -c 300 "$W/rb")" ;; esac
  grep -q 'serving the cached tag' "$W/b/log" || why "Berth did not log that it served the cached tag"
}
check "8. with the upstream stopped cached tags still pull (podman, skopeo), an uncached one fails at once" t_upstream_down
start_registry up || why "the upstream did not start again"

# --- 10 and 11: docker's registry-mirrors and containerd's hosts.toml --------------------------------
# a second Berth: un-prefixed names go to the pull-through distribution `hub`
# (BERTH_PULL_THROUGH_DEFAULT), containerd's ns=docker.io to `ctd` (BERTH_PULL_THROUGH_NS): a
# name cached under ctd/ was routed by ns
start_berth m BERTH_PULL_THROUGH_DEFAULT=hub BERTH_PULL_THROUGH_NS=docker.io=ctd || fail_setup "the mirror berth did not start: $(tail -5 "$W/m/log")"
M=127.0.0.1:$m_PORT MURL=http://127.0.0.1:$m_PORT
mirror_setup() {
  pt_remote "$MURL" hub "http://$UP" && pt_dist "$MURL" hub hub "$REMOTE_HREF" &&
    pt_remote "$MURL" ctd "http://$UP" && pt_dist "$MURL" ctd ctd "$REMOTE_HREF"
}
check "the mirror Berth's pull-through distributions hub and ctd" mirror_setup
# cached_in URL NAME: the repository NAME exists there
cached_in() { [ "$(api GET "$1" "/pulp/api/v3/repositories/container/container/?name=$2")" = 200 ] && [ "$(jq -r .count "$W/api.json")" = 1 ]; }

t_docker() {
  up_mark up
  timeout 120 docker pull ptimg:1 >"$W/docker.out" 2>&1 || { why "docker pull ptimg:1 failed: $(tail -3 "$W/docker.out"); dockerd: $(grep -iE 'level=(error|warn)' "$W/d/dockerd.log" | tail -3)"; return 1; }
  local rd; rd=$(docker image inspect --format '{{join .RepoDigests " "}}' ptimg:1)
  note "docker pulled ptimg:1: $rd"
  [[ " $rd " == *"@$HUB "* ]] || why "RepoDigests '$rd' lack $HUB"
  cached_in "$MURL" hub/library/ptimg || why "no repository hub/library/ptimg on the mirror: $(cat "$W/api.json")"
  up_since up >"$W/req"
  grep -q '^GET /v2/library/ptimg/manifests/1 ' "$W/req" || why "the upstream saw no GET of library/ptimg:1: $(tr '\n' ';' <"$W/req")"
  grep -qE 'route=/token .*status=200 .*user="?anonymous' "$W/m/log" || why "the daemon took no anonymous token: $(grep 'route=/token' "$W/m/log" | tail -3)"
}
DOCKERD_ARGS="--registry-mirror http://$M --insecure-registry $M"
if start_dockerd; then
  note "dockerd $(docker version --format '{{.Server.Version}}' 2>/dev/null) with --registry-mirror http://$M"
  check "10. docker pull ptimg:1 (docker.io, no internet) goes through registry-mirrors to the hub distribution" t_docker
  stop_dockerd
  unset DOCKER_HOST DOCKER_CONFIG
else
  skip "10. docker through registry-mirrors: $DOCKER_REASON"
fi

t_containerd() {
  start_containerd || return 1
  mkdir -p "$W/hosts/docker.io"
  cat >"$W/hosts/docker.io/hosts.toml" <<EOF
server = "https://registry-1.docker.io"

[host."http://$M"]
  capabilities = ["pull", "resolve"]
EOF
  local before; before=$(wc -l <"$W/m/log")
  up_mark up
  timeout 60 ctr --address "$W/ctd/sock" -n pt content fetch --hosts-dir "$W/hosts" docker.io/library/ptimg:1 >"$W/ctr.out" 2>&1 ||
    { why "ctr content fetch through the hosts.toml mirror failed: $(tail -5 "$W/ctr.out")"; return 1; }
  ctr --address "$W/ctd/sock" -n pt images ls >"$W/ctr-ls.out" 2>&1
  grep -q "$HUB" "$W/ctr-ls.out" || why "containerd's image is not $HUB: $(cat "$W/ctr-ls.out")"
  cached_in "$MURL" ctd/library/ptimg || why "no repository ctd/library/ptimg on the mirror (ns=docker.io not routed to ctd): $(cat "$W/api.json")"
  up_since up >"$W/req"
  grep -q '^GET /v2/library/ptimg/manifests/1 ' "$W/req" || why "the upstream saw no GET of library/ptimg:1: $(tr '\n' ';' <"$W/req")"
  tail -n +"$((before + 1))" "$W/m/log" | grep -q 'route=/v2/{name}/manifests/{reference} .*status=200' ||
    why "no manifest GET answered 200 in the mirror's access log"
}
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  check "11. ctr pulls docker.io/library/ptimg:1 through a hosts.toml mirror; ns=docker.io picks the ctd distribution" t_containerd
else
  skip "11. containerd through hosts.toml (containerd not installed)"
fi

# --- 13. a redirecting upstream: a Berth on the AWS adapters (moto), whose blob GETs are 307s ------
# to presigned S3 URLs: the cache follows them (no credentials to S3) and stores what it got
t_redirecting() {
  local n=ptup-$$-$RANDOM before
  start_berth s3up AWS_ENDPOINT_URL="$MOTO_URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=testing BERTH_BACKEND=aws BERTH_AWS_INIT=1 BERTH_BUCKET="$n" BERTH_TABLE="$n" \
    BERTH_QUEUE_NAME="$n" || { why "the upstream Berth on moto did not start: $(tail -5 "$W/s3up/log")"; return 1; }
  push gone "127.0.0.1:$s3up_PORT" up/app:v1 "admin:$PW" || return 1   # content no cache here holds
  pt_remote "$URL" s3up "http://127.0.0.1:$s3up_PORT" && pt_dist "$URL" s3cache s3cache "$REMOTE_HREF" || return 1
  pod_pull "$B/s3cache/up/app:v1" || { why "podman pull through the redirecting upstream failed: $(cat "$W/pod.out")"; return 1; }
  sk_copy s3cache/up/app:v1 "$W/d13" || { why "skopeo copy failed: $(cat "$W/d13.out")"; return 1; }
  dir_verified "$W/d13" || return 1
  [ "$(sha "$W/d13/manifest.json")" = "$(digest_of gone)" ] || why "skopeo got $(sha "$W/d13/manifest.json"), upstream has $(digest_of gone)"
  before=$(grep -c 'route=/v2/{name}/blobs/{digest} .*status=307' "$W/s3up/log")
  [ "$before" -ge 2 ] || why "the upstream Berth answered $before blob GETs with 307: $(grep 'blobs/{digest}' "$W/s3up/log" | tail -3)"
  sk_copy s3cache/up/app:v1 "$W/d13b" || why "the second skopeo copy failed: $(cat "$W/d13b.out")"
  [ "$(grep -c 'route=/v2/{name}/blobs/{digest} .*status=307' "$W/s3up/log")" = "$before" ] ||
    why "the second pull went upstream again"
}
MOTO_URL=${AWS_ENDPOINT_URL:-${BERTH_TEST_MOTO:-}}
if [ -n "$MOTO_URL" ]; then
  check "13. a redirecting upstream (a Berth on moto, blob GETs 307 to S3): podman and skopeo pull through; the second pull stays local" t_redirecting
else
  skip "13. a redirecting upstream (no moto: set BERTH_TEST_MOTO)"
fi

note "$((SECONDS - T0)) s"
e2e_summary
