#!/usr/bin/env bash
# End-to-end test of sync (mirroring an upstream registry), driven by the unmodified `pulp` CLI,
# against real upstreams: Debian's docker-registry (plain, and behind htpasswd Basic auth), and
# a second Berth (Bearer token auth). Real clients (skopeo, podman) pull the result.
#
#   BERTH_BIN=target/release/berth PULP_BIN=.../pulp FIXTURE_PY=.../python bash tests/e2e/sync.sh
#
# Environment: BERTH_BIN (the Berth under test), PULP_BIN (pulp-cli 0.41.1), FIXTURE_PY (a
# python3 with `cryptography`, for the cosign signatures; default python3), UPSTREAM_BERTH_BIN
# (the Berth used as the token-auth upstream; default BERTH_BIN). The Berth under test takes its
# backend from the environment (BERTH_BACKEND=aws with its bucket, table and queue runs it on the
# AWS adapters); the upstream Berth always runs on its own embedded store.
# Needs: docker-registry, skopeo, podman, gpg, htpasswd (apache2-utils), curl, python3.
# Loopback only, free ports, everything under one `mktemp -d` folder and removed on exit with
# every process this script started. Prints `OK   name` / `FAIL name` lines and ends with
# `N passed, N failed`; exits non-zero if anything failed.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BERTH_BIN=${BERTH_BIN:-$HERE/../../target/release/berth}
UPSTREAM_BERTH_BIN=${UPSTREAM_BERTH_BIN:-$BERTH_BIN}
PULP_BIN=${PULP_BIN:-pulp}
FIXTURE_PY=${FIXTURE_PY:-python3}
FX=$HERE/fixtures/sync_fixture.py
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init berth-sync-e2e
T0=$(date +%s)

# --- processes and cleanup ---------------------------------------------------------------------
cleanup() {
  set +e
  stop_pids
  [ -d "$W/gnupg" ] && gpgconf --homedir "$W/gnupg" --kill gpg-agent >/dev/null 2>&1
  [ -d "$W/pstorage" ] && "${POD[@]}" rmi -a -f >/dev/null 2>&1
  umount_under "$W"
  rm -rf "$W"
}

# --- isolated client configuration -----------------------------------------------------------------
mkdir -p "$W/pstorage" "$W/prun" "$W/ptmp" "$W/tmp" "$W/cache" "$W/config"
export TMPDIR=$W/tmp XDG_CACHE_HOME=$W/cache XDG_CONFIG_HOME=$W/config
export REGISTRY_AUTH_FILE=$W/auth.json; echo '{}' >"$REGISTRY_AUTH_FILE"
export CONTAINERS_REGISTRIES_CONF=$W/registries.conf
printf 'unqualified-search-registries = []\n' >"$CONTAINERS_REGISTRIES_CONF"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
mkdir -p "$W/regd-none"   # a registries.d with no lookaside anywhere
SKOPEO=(skopeo --policy "$W/policy.json" --registries.d "$W/regd-none")
POD=(podman --root "$W/pstorage" --runroot "$W/prun" --storage-driver vfs --tmpdir "$W/ptmp" --events-backend none)

fx()  { python3 "$FX" "$@"; }
fxc() { "$FIXTURE_PY" "$FX" "$@"; }   # the subcommands that need `cryptography`
# fxpush --state S --registry R --repo N [--creds U:P] [--registries-d D --sign-by FPR] TAG[=IMAGE]...
fxpush() { fx push --catalog "$W/images/catalog.json" --policy "$W/policy.json" --registries-d "$W/regd-none" "$@"; }
digest_of_file() { sha256sum "$1" | awk '{print "sha256:"$1}'; }

# --- preconditions ----------------------------------------------------------------------------------
missing=""
for b in docker-registry skopeo podman gpg gpgconf htpasswd curl python3; do command -v "$b" >/dev/null || missing="$missing $b"; done
[ -x "$BERTH_BIN" ] || missing="$missing berth($BERTH_BIN)"
[ -x "$UPSTREAM_BERTH_BIN" ] || missing="$missing upstream-berth($UPSTREAM_BERTH_BIN)"
command -v "$PULP_BIN" >/dev/null || missing="$missing pulp($PULP_BIN)"
"$FIXTURE_PY" -c 'import cryptography' 2>/dev/null || missing="$missing cryptography(for $FIXTURE_PY)"
if [ -n "$missing" ]; then echo "FAIL missing:$missing"; echo "0 passed, 1 failed"; exit 1; fi

# --- servers -------------------------------------------------------------------------------------------
# start_registry NAME [AUTH_YAML]: a docker-registry on a free port; sets ${NAME}_PORT and ${NAME}_PID
start_registry() {
  local name=$1 auth=${2:-} port; port=$(free_port)
  mkdir -p "$W/$name"
  cat >"$W/$name/config.yml" <<EOF
version: 0.1
log:
  level: error
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
  env -u REGISTRY_AUTH_FILE docker-registry serve "$W/$name/config.yml" >"$W/$name/log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  printf -v "${name}_PORT" %s "$port"; printf -v "${name}_PID" %s "$pid"
  wait_http "http://127.0.0.1:$port/v2/" "$pid"
}
# start_berth NAME BIN PASSWORD [ENV…]: a Berth on a free port; sets ${NAME}_PORT and ${NAME}_PID
start_berth() {
  local name=$1 bin=$2 pw=$3 port; port=$(free_port); shift 3
  mkdir -p "$W/$name"
  berth_start "$bin" "127.0.0.1:$port" "$W/$name/data" "$W/$name/log" "$pw" "$@"
  local rc=$?
  printf -v "${name}_PORT" %s "$port"; printf -v "${name}_PID" %s "$STARTED_PID"
  return $rc
}

PW=e2e-sync-$RANDOM-$RANDOM
MT=e2e-metrics-$RANDOM-$RANDOM   # the bearer token of /metrics
start_registry up || { echo "FAIL docker-registry did not start: $(tail -3 "$W/up/log")"; echo "0 passed, 1 failed"; exit 1; }
# its log is JSON lines (checked at the end) and /metrics is on (checked after the first sync)
start_berth berth "$BERTH_BIN" "$PW" BERTH_LOG_FORMAT=json BERTH_METRICS_TOKEN="$MT" || { echo "FAIL berth did not start: $(tail -5 "$W/berth/log")"; echo "0 passed, 1 failed"; exit 1; }
UP=127.0.0.1:$up_PORT
B=127.0.0.1:$berth_PORT
echo "berth $B ($BERTH_BIN); upstream docker-registry $UP; $("$PULP_BIN" --version | head -1)"
P=("$PULP_BIN" --base-url "http://$B" --username admin --password "$PW")
pulp() { "${P[@]}" "$@"; }

# --- helpers for the management API ----------------------------------------------------------------
href() { pulp container "$1" show --name "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pulp_href"])'; }
latest_number() {
  pulp container repository show --name "$1" |
    python3 -c 'import json,sys; h=json.load(sys.stdin)["latest_version_href"]; print(h.rstrip("/").rsplit("/",1)[1])'
}
# run_sync REPO REMOTE [mirror]: runs the sync, leaves the CLI output in $W/sync.out and the task in $W/task.json;
# returns the CLI's status
run_sync() {
  local rc
  if [ "${3:-}" = mirror ]; then
    pulp debug openapi call --id repositories_container_container_sync \
      --parameter "container_container_repository_href=$(href repository "$1")" \
      --body "{\"remote\": \"$(href remote "$2")\", \"mirror\": true}" >"$W/sync.out" 2>&1
  else
    pulp container repository sync --name "$1" --remote "$2" >"$W/sync.out" 2>&1
  fi
  rc=$?
  local t; t=$(grep -o '/pulp/api/v3/tasks/[0-9a-f-]*/' "$W/sync.out" | head -1)
  if [ -n "$t" ]; then pulp task show --href "$t" >"$W/task.json" 2>&1; else echo '{}' >"$W/task.json"; fi
  return $rc
}
task_field() { jget "$W/task.json" "$1"; }
# summary_is REPO N EXPECTED: version N's content summary, in the one-line form, is EXPECTED
summary_is() {
  pulp container repository version show --repository "$1" --version "$2" >"$W/v.json" || { why "version $2 of $1 not found"; return 1; }
  local got; got=$(fx summary-of "$W/v.json")
  echo "expected: $3"; echo "got:      $got"
  note "$1 version $2: $got"
  [ "$got" = "$3" ] || why "version $2 of $1: summary '$got' != expected '$3'"
}
# rget BASE PATH: GET from a registry as an anonymous client (follows a Bearer challenge with an
# anonymous token); body in $W/b, headers in $W/h; prints the status
rget() {
  local url="http://$1$2" code
  code=$(curl -s -o "$W/b" -D "$W/h" -w '%{http_code}' "$url")
  if [ "$code" = 401 ] && grep -qi '^www-authenticate: *bearer' "$W/h"; then
    local ch realm service scope tok
    ch=$(grep -i '^www-authenticate:' "$W/h" | tr -d '\r')
    realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$ch"); service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$ch")
    scope=$(sed -n 's/.*scope="\([^"]*\)".*/\1/p' <<<"$ch")
    tok=$(curl -s -G "$realm" --data-urlencode "service=$service" ${scope:+--data-urlencode "scope=$scope"} |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("token") or d.get("access_token"))')
    code=$(curl -s -o "$W/b" -D "$W/h" -w '%{http_code}' -H "Authorization: Bearer $tok" "$url")
  fi
  echo "$code"
}
hdr() { tr -d '\r' <"$W/h" | awk -F': ' -v n="$1" 'tolower($1) == n {sub(/^[^:]*: /, ""); print}' | tail -1; }
raw_digest() { "${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$1" >"$W/raw" && digest_of_file "$W/raw"; }
tags_of() { jget "$1" '" ".join(sorted(d["tags"]))'; }
blob_gets() { grep -c '"GET /v2/[^ ]*/blobs/sha256:' "$W/up/log"; }

# ====================================================================================================
# 1. the upstream: generated images, a two-platform index, a Docker schema 2 image, cosign signatures
# ====================================================================================================
ST=$W/upstream.json   # what the test put upstream: tag -> manifests and blobs
fill_upstream() {
  fx layout "$W/images" >/dev/null || why "writing the images failed"
  fxpush --state "$ST" --registry "$UP" --repo fx/app \
    v1.0 v1.1 v1.2-rc v2.0 latest=v2.0 multi docker || why "skopeo push to docker-registry failed"
  fxc genkey "$W/cosign" || why "key generation failed"
  fxc cosign --state "$ST" --registry "$UP" --repo fx/app --key "$W/cosign.key" v1.0 v2.0 multi || why "cosign signing failed"
  fxc cosign --kind att --state "$ST" --registry "$UP" --repo fx/app --key "$W/cosign.key" v1.1 || why "cosign attestation failed"
  fxc cosign-verify --registry "$UP" --repo fx/app --pub "$W/cosign.pub" v1.0 || why "the crafted signature does not verify upstream"
  rget "$UP" /v2/fx/app/tags/list >/dev/null
  local got want
  got=$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["tags"])))' "$W/b")
  want=$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1])))))' "$ST")
  [ "$got" = "$want" ] || why "upstream tags [$got] != pushed [$want]"
  local t
  for t in v1.0 multi docker; do   # pushed byte for byte
    [ "$(raw_digest "$UP/fx/app:$t")" = "$(jget "$ST" "d['$t']['manifests'][0]")" ] || why "upstream $t digest differs from the generated manifest"
  done
  note "upstream fx/app: $(jget "$ST" 'len(d)') tags ($(jget "$ST" '" ".join(sorted(t if not t.startswith("sha256-") else t[:13]+"…"+t[-4:] for t in d))'))"
}
check "1 upstream filled: 5 tags sharing a layer, 2-platform OCI index, Docker schema 2, cosign .sig/.att crafted" fill_upstream

# ====================================================================================================
# 2. pulp CLI workflow: remote + repository + sync + distribution; pull everything back
# ====================================================================================================
fx expect --state "$ST" >"$W/e1.json"
t_workflow() {
  pulp container remote create --name fx --url "http://$UP" --upstream-name fx/app --policy immediate >/dev/null || why "remote create"
  pulp container repository create --name fx >/dev/null || why "repository create"
  run_sync fx fx || { cat "$W/sync.out"; why "sync failed"; }
  [ "$(task_field 'd["state"]')" = completed ] || why "task state $(task_field 'd.get("state")')"
  task_field 'd["created_resources"]' | grep -q '/versions/1/' || why "created_resources lacks version 1: $(task_field 'd.get("created_resources")')"
  pulp container distribution create --name fx --base-path fx --repository fx >/dev/null || why "distribution create"
  [ "$(latest_number fx)" = 1 ] || why "latest version is not 1"
}
check "2 remote create, repository create, sync, distribution create (pulp CLI)" t_workflow
check "2a version 1 content summary is exact (blobs = configs+layers, manifests incl. index children and signatures, tags incl. .sig/.att)" \
  summary_is fx 1 "$(fx summary --base - --new "$W/e1.json")"

t_tags_served() {
  [ "$(rget "$B" /v2/fx/tags/list)" = 200 ] || why "GET /v2/fx/tags/list: $(head -c 200 "$W/b")"
  local got; got=$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["tags"])))' "$W/b")
  [ "$got" = "$(tags_of "$W/e1.json")" ] || why "served tags [$got] != upstream [$(tags_of "$W/e1.json")]"
}
check "2b Berth lists exactly the upstream tags" t_tags_served

t_skopeo_all() {
  local t up got n=0
  for t in $(tags_of "$W/e1.json"); do
    up=$(raw_digest "$UP/fx/app:$t") || why "skopeo inspect upstream $t"
    got=$(raw_digest "$B/fx:$t") || { why "skopeo inspect --raw $B/fx:$t failed"; continue; }
    [ "$got" = "$up" ] || why "$t: Berth serves $got, upstream has $up"
    n=$((n+1))
  done
  note "skopeo inspect --raw: $n tags, same digests as upstream"
  # the index children by digest, and the Docker image with its media type
  for t in $(jget "$ST" '" ".join(d["multi"]["manifests"][1:])'); do
    [ "$(raw_digest "$B/fx@$t")" = "$t" ] || why "index child $t not served byte for byte"
  done
  [ "$(rget "$B" /v2/fx/manifests/docker)" = 200 ] || why "GET docker manifest"
  [ "$(hdr content-type)" = application/vnd.docker.distribution.manifest.v2+json ] || why "docker image served as '$(hdr content-type)'"
}
check "2c skopeo inspect --raw of every synced tag from Berth: digests equal upstream's" t_skopeo_all

t_podman_all() {
  local t want got n=0
  for t in $(tags_of "$W/e1.json"); do
    case $t in sha256-*) continue ;; esac   # cosign artifacts are not runnable images
    "${POD[@]}" pull -q --tls-verify=false "$B/fx:$t" >/dev/null 2>"$W/pull.err" || { why "podman pull $t: $(tail -2 "$W/pull.err")"; continue; }
    want=$(jget "$W/e1.json" "d['tags']['$t']")
    got=$("${POD[@]}" image inspect --format '{{.Digest}}' "$B/fx:$t")
    [ "$got" = "$want" ] || why "podman $t: image digest $got != upstream $want"
    n=$((n+1))
  done
  "${POD[@]}" image inspect --format '{{.RepoDigests}}' "$B/fx:multi" | grep -q "$(jget "$ST" 'd["multi"]["manifests"][1]')" ||
    why "podman pull of multi did not pick the amd64 child"
  note "podman pull: $n image tags, digests equal upstream's"
}
check "2d podman pull of every synced image tag from Berth: image digests equal upstream's" t_podman_all
check "2e the cosign signature of v1.0 still verifies when read from Berth" \
  fxc cosign-verify --registry "$B" --repo fx --pub "$W/cosign.pub" v1.0

t_metrics() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$B/metrics")" = 401 ] || why "/metrics answers without the token"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' "http://$B/metrics")" = 401 ] || why "/metrics answers a wrong token"
  local code; code=$(curl -s -o "$W/metrics" -D "$W/h" -w '%{http_code}' -H "Authorization: Bearer $MT" -H 'X-Request-ID: e2e-scrape-1' "http://$B/metrics")
  [ "$code" = 200 ] || { why "GET /metrics with the token: $code"; return 1; }
  [ "$(hdr x-request-id)" = e2e-scrape-1 ] || why "the answer does not echo X-Request-ID"
  pulp container repository version show --repository fx --version 1 >"$W/v1.json" || why "version 1 of fx"
  python3 - "$W/metrics" "$W/v1.json" "$UP" <<'PY' || why "$(tail -3 "$W/metrics.why")"
import json, re, sys
text, version, up = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3]
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\])*"'
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{%s(?:,%s)*\})?) (\S+)$' % (label, label))
m = {}
note = open(3, "w", closefd=False)   # the script's informational lines
with open(sys.argv[1] + ".why", "w") as why:
    def fail(msg):
        why.write(msg + "\n"); sys.exit(1)
    for line in text.splitlines():
        if re.match(r'^# (HELP|TYPE) \S+ .+$', line):
            continue
        s = sample.match(line)
        if not s:
            fail(f"not a sample: {line!r}")
        m[s[1]] = float(s[2])
    get = lambda k: m.get(k, 0.0)
    total = lambda name, *having: sum(v for k, v in m.items() if k.startswith(name + "{") and all(h in k for h in having))
    print(f"     {len(m)} samples", file=note)
    if get('berth_sync_runs_total{outcome="completed"}') != 1 or total("berth_sync_runs_total") != 1:
        fail(f"sync runs: {[(k, v) for k, v in m.items() if 'sync_runs' in k]}")
    if get('berth_sync_duration_seconds_count{outcome="completed"}') != 1:
        fail("the sync's duration is not counted once")
    present = version["content_summary"]["present"]
    for ty in ("blob", "manifest", "tag"):
        want = present["container." + ty]["count"]
        got = get(f'berth_content_units{{type="{ty}"}}')
        print(f"     {ty}s: {got:.0f} (version 1 holds {want})", file=note)
        if got != want:
            fail(f"berth_content_units of {ty}: {got} != {want}")
    if get('berth_content_bytes{type="blob"}') <= 0:
        fail("no blob bytes")
    if total("berth_upstream_requests_total", f'host="{up}"', 'class="2xx"') <= 0:
        fail(f"no upstream requests to {up}")
    if get('berth_job_queue_depth') != 0:
        fail("the job queue is not empty")
    if get('berth_http_requests_total{route="/v2/{name}/manifests/{reference}",method="GET",status="200"}') <= 0:
        fail("no manifest pulls counted")
    blob_gets = total("berth_http_requests_total", 'route="/v2/{name}/blobs/{digest}"', 'method="GET"')
    served = get('berth_http_response_bytes_total{route="/v2/{name}/blobs/{digest}",method="GET"}')
    print(f"     blob GETs: {blob_gets:.0f}, {served:.0f} bytes served", file=note)
    if blob_gets <= 0 or (served <= 0 and 'status="307"' not in text):
        fail("no blob pulls counted")
    if '"fx"' in text or 'fx/app' in text:
        fail("a repository name is in the metrics")
PY
}
check "2f GET /metrics after the sync and the pulls: 401 without the token; 1 sync run; units equal version 1's content; upstream requests, pulls counted" t_metrics

# ====================================================================================================
# 3. include/exclude wildcard filters (before the upstream changes)
# ====================================================================================================
fx expect --state "$ST" --include 'v1*' --exclude '*-rc' >"$W/ef.json"
t_filters() {
  pulp container remote create --name flt --url "http://$UP" --upstream-name fx/app --policy immediate \
    --include-tags '["v1*"]' --exclude-tags '["*-rc"]' >/dev/null || why "remote create with filters"
  pulp container repository create --name flt >/dev/null || why "repository create"
  run_sync flt flt || { cat "$W/sync.out"; why "filtered sync failed"; }
  pulp container repository content list --repository flt --version 1 >"$W/flt-tags.json" || why "content list"
  local got want
  got=$(python3 -c 'import json,sys; print(" ".join(sorted(t["name"] for t in json.load(open(sys.argv[1])))))' "$W/flt-tags.json")
  want=$(tags_of "$W/ef.json")
  echo "tags: $got"
  [ "$got" = "$want" ] || why "filtered tags [$got] != expected [$want]"
  grep -qw 'v1\.0' <<<"$got" && grep -qw 'v1\.1' <<<"$got" || why "v1.0 or v1.1 missing"
  [ "$(wc -w <<<"$got")" = 4 ] || why "expected v1.0, v1.1, v1.0's .sig and v1.1's .att"
}
check "3 filters include [v1*] exclude [*-rc]: exactly v1.0, v1.1 + their cosign companion tags" t_filters
check "3a filtered version 1 content summary is exact" summary_is flt 1 "$(fx summary --base - --new "$W/ef.json")"

# ====================================================================================================
# 4. the upstream changes: a tag moves, a tag is deleted; additive, then mirror, then no change
# ====================================================================================================
RC_DIGEST=$(jget "$ST" 'd["v1.2-rc"]["manifests"][0]')
RC_ONLY=$(python3 - "$ST" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
others = {b for t, r in s.items() if t != "v1.2-rc" for b in r["blobs"]}
print(" ".join(sorted(set(s["v1.2-rc"]["blobs"]) - others)))
PY
)
t_mutate() {
  fxpush --state "$ST" --registry "$UP" --repo fx/app latest=moved >/dev/null ||
    why "push of the moved tag failed"
  fx delete --state "$ST" --registry "$UP" --repo fx/app v1.2-rc >/dev/null || why "DELETE of v1.2-rc's manifest failed"
  [ "$(raw_digest "$UP/fx/app:latest")" = "$(jget "$ST" 'd["latest"]["manifests"][0]')" ] || why "upstream latest did not move"
  [ "$(rget "$UP" /v2/fx/app/manifests/v1.2-rc)" = 404 ] || why "upstream still serves v1.2-rc"
  rget "$UP" /v2/fx/app/tags/list >/dev/null; grep -q 'v1.2-rc' "$W/b" && why "upstream still lists v1.2-rc"
  return 0
}
check "4 upstream: latest moved to a new image, v1.2-rc deleted (by digest)" t_mutate
fx expect --state "$ST" >"$W/e2.json"
t_additive() {
  run_sync fx fx || { cat "$W/sync.out"; why "additive sync failed"; }
  local want; want=$(fx summary --base "$W/e1.json" --new "$W/e2.json" --out "$W/p2.json")
  # the oracle itself: the moved tag replaces its old unit, nothing else goes
  [[ "$want" == "added:blob=2 added:manifest=1 added:tag=1 removed:tag=1 "* ]] || why "unexpected expectation: $want"
  summary_is fx 2 "$want"
}
check "4a additive re-sync: version 2 adds the moved tag (1 tag removed, 1 added), keeps v1.2-rc" t_additive
t_v2_served() {
  [ "$(raw_digest "$B/fx:latest")" = "$(jget "$ST" 'd["latest"]["manifests"][0]')" ] || why "Berth's latest did not move"
  [ "$(raw_digest "$B/fx:v1.2-rc")" = "$RC_DIGEST" ] || why "additive sync lost v1.2-rc"
}
check "4b after the additive sync Berth serves the moved latest and still v1.2-rc" t_v2_served
t_mirror() {
  run_sync fx fx mirror || { cat "$W/sync.out"; why "mirror sync failed"; }
  local want; want=$(fx summary --base "$W/p2.json" --new "$W/e2.json" --mirror --out "$W/p3.json")
  # the oracle itself: v1.2-rc, its manifest, its own layer and config go; nothing comes
  [[ "$want" == "removed:blob=2 removed:manifest=1 removed:tag=1 "* ]] || why "unexpected expectation: $want"
  summary_is fx 3 "$want"
}
check "4c mirror re-sync: version 3 is exactly upstream (v1.2-rc and what only it used removed)" t_mirror
t_v3_served() {
  local c; c=$(rget "$B" /v2/fx/manifests/v1.2-rc)
  [ "$c" = 404 ] || why "GET v1.2-rc after the mirror sync: $c (want 404)"
  c=$(rget "$B" "/v2/fx/manifests/$RC_DIGEST"); [ "$c" = 404 ] || why "GET v1.2-rc's manifest by digest: $c (want 404)"
  local b
  for b in $RC_ONLY; do
    c=$(rget "$B" "/v2/fx/blobs/$b"); [ "$c" = 404 ] || why "blob $b used only by v1.2-rc: GET $c (want 404)"
  done
  [ "$(rget "$B" /v2/fx/tags/list)" = 200 ] || why "tags/list"
  local got; got=$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["tags"])))' "$W/b")
  [ "$got" = "$(tags_of "$W/e2.json")" ] || why "served tags [$got] != upstream [$(tags_of "$W/e2.json")]"
}
check "4d after the mirror sync Berth no longer serves v1.2-rc nor its own blobs ($(wc -w <<<"$RC_ONLY"))" t_v3_served
t_noop() {
  local before; before=$(blob_gets)
  run_sync fx fx || { cat "$W/sync.out"; why "no-change sync failed"; }
  [ "$(task_field 'd["state"]')" = completed ] || why "task state $(task_field 'd.get("state")')"
  [ "$(task_field 'd["created_resources"]')" = "[]" ] || why "created_resources $(task_field 'd["created_resources"]') (want [])"
  [ "$(latest_number fx)" = 3 ] || why "latest version is $(latest_number fx), want 3"
  local after; after=$(blob_gets)
  [ "$after" = "$before" ] || why "the no-change sync downloaded $((after - before)) blob(s) from upstream"
  run_sync fx fx mirror || why "no-change mirror sync failed"
  [ "$(task_field 'd["created_resources"]')" = "[]" ] || why "mirror: created_resources $(task_field 'd["created_resources"]')"
  [ "$(latest_number fx)" = 3 ] || why "latest version is $(latest_number fx) after a no-change mirror sync"
}
check "4e re-sync with no upstream change (additive and mirror): no version, no resources, no blob download" t_noop
vnums() { pulp container repository version list --repository "$1" | jget - '" ".join(str(v["number"]) for v in d)'; }
t_retain() {
  pulp container repository update --name fx --retain-repo-versions 2 >/dev/null || why "repository update --retain-repo-versions 2"
  # applied at once; the latest (3), which a distribution serves, is kept and not counted
  [ "$(vnums fx)" = "3 2 1" ] || why "versions after setting it: $(vnums fx) (want 3 2 1)"
  local n
  for n in 1 2; do
    fxpush --state "$ST" --registry "$UP" --repo fx/app "r$n=v1.0" >/dev/null || why "push of tag r$n upstream failed"
    run_sync fx fx || { cat "$W/sync.out"; why "sync $n failed"; }
  done
  [ "$(vnums fx)" = "5 4 3" ] || why "versions after two syncs: $(vnums fx) (want 5 4 3)"
  note "fx versions after two syncs with retain_repo_versions 2: $(vnums fx)"
  fx expect --state "$ST" >"$W/e4.json"
  [ "$(rget "$B" /v2/fx/tags/list)" = 200 ] || why "tags/list"
  [ "$(tags_of "$W/b")" = "$(tags_of "$W/e4.json")" ] || why "served tags [$(tags_of "$W/b")] != upstream [$(tags_of "$W/e4.json")]"
}
check "4f repository update --retain-repo-versions 2, then two syncs: the served latest and the two newest before it stay, the latest is upstream's" t_retain

# ====================================================================================================
# 5. atomic (GPG simple signing) signatures from a lookaside, served by Berth's signature extension
# ====================================================================================================
export GNUPGHOME=$W/gnupg
mkdir -m 700 "$GNUPGHOME" "$W/lookaside" "$W/regd-sign"
LA_PORT=$(free_port)
t_sign_upstream() {
  gpg --batch --passphrase '' --quick-gen-key 'Test <t@example.test>' ed25519 sign never 2>/dev/null || why "gpg key generation failed"
  FPR=$(gpg --list-keys --with-colons t@example.test | awk -F: '/^fpr/ {print $10; exit}')
  [ -n "$FPR" ] || why "no fingerprint"
  gpg --export "$FPR" >"$W/pub.gpg"
  printf 'docker:\n  %s:\n    lookaside: file://%s\n    lookaside-staging: file://%s\n' "$UP" "$W/lookaside" "$W/lookaside" >"$W/regd-sign/default.yaml"
  fxpush --state "$W/signed.json" --registry "$UP" --repo sig/app \
    --registries-d "$W/regd-sign" --sign-by "$FPR" 1=v1.0 >/dev/null || why "skopeo copy --sign-by failed"
  fxpush --state "$W/signed.json" --registry "$UP" --repo sig/app \
    unsigned=v1.1 >/dev/null || why "unsigned push failed"
  SIGNED_DIGEST=$(jget "$W/signed.json" 'd["1"]["manifests"][0]')
  UNSIGNED_DIGEST=$(jget "$W/signed.json" 'd["unsigned"]["manifests"][0]')
  SIGFILE=$W/lookaside/sig/app@sha256=${SIGNED_DIGEST#sha256:}/signature-1
  [ -s "$SIGFILE" ] || why "no signature in the lookaside staging: $(cd "$W/lookaside" && find . -type f)"
  ( cd "$W/lookaside" && exec python3 -m http.server "$LA_PORT" --bind 127.0.0.1 ) >"$W/lookaside.log" 2>&1 &
  LA_PID=$!; PIDS+=("$LA_PID")
  wait_http "http://127.0.0.1:$LA_PORT/" "$LA_PID" || why "lookaside HTTP server did not start"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LA_PORT/sig/app@sha256=${SIGNED_DIGEST#sha256:}/signature-1")" = 200 ] ||
    why "lookaside does not serve the signature"
}
check "5 upstream: skopeo copy --sign-by (GPG) writes a lookaside signature, served over HTTP" t_sign_upstream
fx expect --state "$W/signed.json" --signatures 1 >"$W/es.json"
t_sigstore_sync() {
  pulp debug openapi call --id remotes_container_container_create --body \
    "{\"name\": \"signed\", \"url\": \"http://$UP\", \"upstream_name\": \"sig/app\", \"policy\": \"immediate\", \"sigstore\": \"http://127.0.0.1:$LA_PORT\"}" \
    >"$W/remote.json" || why "remote create with sigstore failed"
  grep -q "\"sigstore\": \"http://127.0.0.1:$LA_PORT\"" "$W/remote.json" || why "sigstore not kept: $(cat "$W/remote.json")"
  pulp container repository create --name signed >/dev/null || why "repository create"
  run_sync signed signed || { cat "$W/sync.out"; why "sync with sigstore failed"; }
  pulp container distribution create --name signed --base-path signed --repository signed >/dev/null || why "distribution create"
  summary_is signed 1 "$(fx summary --base - --new "$W/es.json")"
  grep -q "GET /sig/app@sha256=${SIGNED_DIGEST#sha256:}/signature-1 " "$W/lookaside.log" || why "Berth never asked the lookaside for signature-1"
}
check "5a sync with a sigstore lookaside: the version holds 1 container.signature (and exact counts)" t_sigstore_sync
t_extension() {
  # clients decide from their first, unauthenticated ping (a 401 with token auth on)
  curl -s -o /dev/null -D "$W/h" "http://$B/v2/"
  [ "$(hdr x-registry-supports-signatures)" = 1 ] || why "GET /v2/ ($(head -1 "$W/h" | tr -d '\r')) lacks X-Registry-Supports-Signatures: 1"
  local c; c=$(rget "$B" "/extensions/v2/signed/signatures/$SIGNED_DIGEST")
  [ "$c" = 200 ] || why "GET /extensions/v2/signed/signatures/<signed>: $c $(head -c 300 "$W/b")"
  python3 - "$W/b" "$SIGFILE" "$SIGNED_DIGEST" <<'PY' || why "signature list is wrong: $(head -c 400 "$W/b")"
import base64, json, sys
d = json.load(open(sys.argv[1]))
sigs = d["signatures"]
assert len(sigs) == 1, sigs
s = sigs[0]
assert s["schemaVersion"] == 2 and s["type"] == "atomic", s
assert s["name"].startswith(sys.argv[3] + "@"), s["name"]
assert base64.b64decode(s["content"]) == open(sys.argv[2], "rb").read(), "content differs from the lookaside file"
PY
  c=$(rget "$B" "/extensions/v2/signed/signatures/$UNSIGNED_DIGEST")
  [ "$c" = 200 ] || why "GET signatures of the unsigned image: $c"
  [ "$(jget "$W/b" 'len(d["signatures"])')" = 0 ] || why "the unsigned image has signatures: $(cat "$W/b")"
}
check "5b Berth serves the signature at /extensions/v2/signed/signatures/<digest> (same bytes), none for the unsigned image" t_extension
t_verify() {
  cat >"$W/policy-signed.json" <<EOF
{"default": [{"type": "reject"}],
 "transports": {"docker": {"$B/signed": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "$W/pub.gpg",
   "signedIdentity": {"type": "remapIdentity", "prefix": "$B/signed", "signedPrefix": "$UP/sig/app"}}]}}}
EOF
  skopeo --policy "$W/policy-signed.json" --registries.d "$W/regd-none" copy -q --src-tls-verify=false \
    "docker://$B/signed:1" "dir:$W/verified" 2>"$W/verify.err" || why "signed image refused: $(tail -2 "$W/verify.err")"
  [ -s "$W/verified/signature-1" ] || why "skopeo got no signature from Berth"
  if skopeo --policy "$W/policy-signed.json" --registries.d "$W/regd-none" copy -q --src-tls-verify=false \
    "docker://$B/signed:unsigned" "dir:$W/unverified" 2>"$W/verify2.err"; then
    why "the unsigned image was accepted"
  fi
  grep -qi 'signature' "$W/verify2.err" || why "unexpected refusal: $(tail -2 "$W/verify2.err")"
}
check "5c skopeo with a signedBy (GPGKeys) policy, reading signatures from Berth: signed accepted, unsigned rejected" t_verify

# ====================================================================================================
# 6. upstreams behind authentication: Basic (docker-registry + htpasswd), Bearer token (another Berth)
# ====================================================================================================
UPW=up-$RANDOM-$RANDOM
htpasswd -Bbn puller "$UPW" >"$W/htpasswd" 2>/dev/null
# failed_with TASKJSON_WORDS...: the last sync failed; its error.description matches each pattern
failed_with() {
  [ "$(task_field 'd["state"]')" = failed ] || { why "task state $(task_field 'd.get("state")'), want failed"; return 1; }
  local desc; desc=$(task_field '(d.get("error") or {}).get("description", "")')
  note "error.description: $desc"
  [ -n "$desc" ] || why "no error.description"
  local p
  for p in "$@"; do grep -qiE -- "$p" <<<"$desc" || why "description lacks /$p/"; done
}
# sync_with_credentials NAME HOST REPO USER PASSWORD STATE: a remote with these credentials and a
# repository, both NAME; the sync must make version 1 with exactly the fixture STATE's content
sync_with_credentials() {
  pulp container remote create --name "$1" --url "http://$2" --upstream-name "$3" --policy immediate \
    --username "$4" --password "$5" >/dev/null || why "remote create"
  pulp container repository create --name "$1" >/dev/null || why "repository create"
  run_sync "$1" "$1" || { cat "$W/sync.out"; why "sync from $2 with credentials failed"; }
  fx expect --state "$6" >"$W/expect-$1.json"
  summary_is "$1" 1 "$(fx summary --base - --new "$W/expect-$1.json")"
}
# wrong_password_fails NAME HOST REPO USER PATTERN: the same with a wrong password fails, with an
# error.description matching PATTERN, and makes no version
wrong_password_fails() {
  pulp container remote create --name "$1" --url "http://$2" --upstream-name "$3" --policy immediate \
    --username "$4" --password wrong >/dev/null || why "remote create"
  pulp container repository create --name "$1" >/dev/null || why "repository create"
  if run_sync "$1" "$1"; then why "the sync with a wrong password succeeded"; fi
  failed_with "$5"
  [ "$(latest_number "$1")" = 0 ] || why "a failed sync made a version"
}
t_basic() {
  start_registry bup "auth:
  htpasswd:
    realm: r
    path: $W/htpasswd" || { why "basic-auth docker-registry did not start: $(tail -3 "$W/bup/log")"; return 1; }
  BUP=127.0.0.1:$bup_PORT
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$BUP/v2/")" = 401 ] || why "the Basic upstream does not ask for credentials"
  fxpush --state "$W/basic.json" --registry "$BUP" --repo priv/app \
    --creds "puller:$UPW" v1.0 multi >/dev/null || why "push with credentials failed"
  sync_with_credentials basic "$BUP" priv/app puller "$UPW" "$W/basic.json"
}
check "6 upstream behind Basic auth (htpasswd): remote username/password, sync exact" t_basic
t_basic_wrong() { wrong_password_fails basic-bad "$BUP" priv/app puller '401|unauthori[sz]ed|credential|denied|authenticat'; }
check "6a Basic upstream, wrong password: the task fails with a clear error.description" t_basic_wrong

UPW2=up2-$RANDOM-$RANDOM
t_bearer() {
  start_berth ub "$UPSTREAM_BERTH_BIN" "$UPW2" BERTH_BACKEND=embedded || { why "upstream Berth did not start: $(tail -3 "$W/ub/log")"; return 1; }
  UB=127.0.0.1:$ub_PORT
  fxpush --state "$W/bearer.json" --registry "$UB" --repo team/app \
    --creds "admin:$UPW2" v1.0 docker >/dev/null || why "skopeo push to the upstream Berth failed"
  XDG_CACHE_HOME=$W/cache-ub "$PULP_BIN" --base-url "http://$UB" --username admin --password "$UPW2" \
    container distribution update --name team/app --private >/dev/null || why "could not make the upstream distribution private"
  local c; c=$(curl -s -o /dev/null -D "$W/h" -w '%{http_code}' "http://$UB/v2/team/app/manifests/v1.0")
  [ "$c" = 401 ] && grep -qi '^www-authenticate: *bearer realm=' "$W/h" ||
    why "the upstream Berth answers an anonymous manifest GET with $c and no Bearer challenge (token auth off in $UPSTREAM_BERTH_BIN?)"
  c=$(rget "$UB" /v2/team/app/manifests/v1.0)
  [ "$c" = 401 ] || [ "$c" = 403 ] || [ "$c" = 404 ] || why "an anonymous token reads the private upstream ($c)"
  sync_with_credentials bearer "$UB" team/app admin "$UPW2" "$W/bearer.json"
}
check "6b upstream behind Bearer token auth (a second Berth, private distribution): sync exact" t_bearer
t_bearer_wrong() { wrong_password_fails bearer-bad "$UB" team/app admin '401|unauthori[sz]ed|credential|denied|authenticat|token'; }
check "6c token upstream, wrong password: the task fails with a clear error.description" t_bearer_wrong

# ====================================================================================================
# 7. faults: unreachable upstream, repository missing upstream; then a healthy sync
# ====================================================================================================
DEAD=127.0.0.1:$(free_port)   # nothing listens there
t_unreachable() {
  pulp container remote create --name down --url "http://$DEAD" --upstream-name fx/app --policy immediate >/dev/null || why "remote create"
  pulp container repository create --name down >/dev/null || why "repository create"
  if run_sync down down; then why "a sync from an unreachable upstream succeeded"; fi
  failed_with "$DEAD" 'connect|refused|unreachable|reach'
  [ "$(latest_number down)" = 0 ] || why "a failed sync made a version"
}
check "7 unreachable upstream: the task fails, error.description names the address and the cause" t_unreachable
t_missing() {
  pulp container remote create --name ghost --url "http://$UP" --upstream-name no/such/repo --policy immediate >/dev/null || why "remote create"
  pulp container repository create --name ghost >/dev/null || why "repository create"
  if run_sync ghost ghost; then why "a sync of a repository missing upstream succeeded"; fi
  failed_with 'no/such/repo' '404|not found|unknown|does not exist'
  [ "$(latest_number ghost)" = 0 ] || why "a failed sync made a version"
}
check "7a repository missing upstream: the task fails, error.description names it and says not found" t_missing
t_recover() {
  pulp container remote update --name down --url "http://$UP" >/dev/null || why "remote update (url)"
  run_sync down down || { cat "$W/sync.out"; why "the sync after fixing the url failed"; }
  summary_is down 1 "$(fx summary --base - --new "$W/e4.json")"
  pulp container remote update --name ghost --upstream-name fx/app >/dev/null || why "remote update (upstream name)"
  run_sync ghost ghost || { cat "$W/sync.out"; why "the sync after fixing the upstream name failed"; }
  [ "$(latest_number ghost)" = 1 ] || why "no version 1 after the healthy sync"
}
check "7b the next sync against a healthy upstream succeeds (same repositories, remotes fixed)" t_recover

# ====================================================================================================
# 8. repair: stored bytes truncated and deleted behind Berth's back, fetched again from upstream
# ====================================================================================================
# blob_object DIGEST truncate|delete: damages the stored bytes of DIGEST (truncate: drops the last
# byte): the file under the data directory, or (BERTH_BACKEND=aws) the S3 object at AWS_ENDPOINT_URL
blob_object() {
  local hex=${1#sha256:}
  if [ "${BERTH_BACKEND:-}" = aws ]; then
    local url="$AWS_ENDPOINT_URL/$BERTH_BUCKET/blobs/sha256/$hex" sig=(--aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
    if [ "$2" = delete ]; then
      curl -sf -X DELETE "${sig[@]}" "$url" >/dev/null
    else
      curl -sf "${sig[@]}" "$url" | head -c -1 >"$W/half" && curl -sf -X PUT "${sig[@]}" --data-binary @"$W/half" "$url" >/dev/null
    fi
  else
    local f="$W/berth/data/blobs/sha256/${hex:0:2}/$hex"
    [ -f "$f" ] || return 1
    if [ "$2" = delete ]; then rm -f "$f"; else truncate -s -1 "$f"; fi
  fi
}
# blob_exact BASE_PATH DIGEST: a client's GET of the blob (following a redirect to S3) hashes to DIGEST
blob_exact() {
  local code; code=$(rget "$B" "/v2/$1/blobs/$2")
  if [ "$code" = 307 ]; then code=$(curl -s -o "$W/b" -w '%{http_code}' "$(hdr location)"); fi
  [ "$code" = 200 ] && [ "$(digest_of_file "$W/b")" = "$2" ]
}
# report_done CODE: `done` of the repair task's progress report CODE (in $W/repair.json)
report_done() { jget "$W/repair.json" "[r['done'] for r in d['progress_reports'] if r['code'] == '$1'][0]"; }
t_repair() {
  local n layer cfg
  n=$(latest_number fx)
  # the first layer and the config of the docker image
  [ "$(rget "$B" /v2/fx/manifests/docker)" = 200 ] || { why "GET docker manifest"; return 1; }
  layer=$(jget "$W/b" 'd["layers"][0]["digest"]')
  cfg=$(jget "$W/b" 'd["config"]["digest"]')
  blob_exact fx "$layer" || why "$layer is not served exactly before the damage"
  blob_object "$layer" truncate || why "cannot truncate $layer"
  blob_object "$cfg" delete || why "cannot delete $cfg"
  if blob_exact fx "$layer"; then why "the truncated $layer is still served whole"; fi
  pulp container repository version repair --repository fx --version "$n" >"$W/repair.json" 2>"$W/repair.err" ||
    { cat "$W/repair.err"; why "version repair failed"; return 1; }
  [ "$(jget "$W/repair.json" 'd["state"]')" = completed ] || why "repair task $(jget "$W/repair.json" 'd.get("state")')"
  [ "$(jget "$W/repair.json" 'd["name"]')" = pulpcore.app.tasks.repository.repair_version ] || why "task name"
  local got; got="missing=$(report_done repair.missing) corrupted=$(report_done repair.corrupted) repaired=$(report_done repair.repaired)"
  note "repair of fx version $n: $got"
  [ "$got" = "missing=1 corrupted=1 repaired=2" ] || why "progress reports: $got"
  jget "$W/repair.json" '"|".join(r["message"] for r in d["progress_reports"])' | grep -q '^Identify missing units|Identify corrupted units|Repair corrupted units' ||
    why "report messages: $(jget "$W/repair.json" '[r["message"] for r in d["progress_reports"]]')"
  blob_exact fx "$layer" || why "$layer is not served exactly after the repair"
  blob_exact fx "$cfg" || why "$cfg is not served exactly after the repair"
  "${SKOPEO[@]}" copy -q --src-tls-verify=false "docker://$B/fx:docker" "dir:$W/repaired" >/dev/null 2>"$W/skopeo.err" ||
    why "skopeo copy after the repair: $(tail -2 "$W/skopeo.err")"
  [ -f "$W/repaired/${cfg#sha256:}" ] && [ "$(digest_of_file "$W/repaired/${cfg#sha256:}")" = "$cfg" ] || why "skopeo got another config"
  # a second repair finds nothing
  pulp container repository version repair --repository fx --version "$n" >"$W/repair.json" 2>"$W/repair.err" || why "second repair failed"
  [ "$(report_done repair.missing)$(report_done repair.corrupted)$(report_done repair.repaired)" = 000 ] || why "the second repair found something"
}
check "8 version repair (pulp CLI): a truncated layer and a deleted config are fetched again; reports missing=1 corrupted=1 repaired=2; served byte for byte" t_repair

t_alive() { alive "$berth_PID" || why "berth is no longer running"; }
check "berth still running; nothing left behind by the faults" t_alive

t_json_logs() {
  python3 - "$W/berth/log" <<'PY' || why "$(cat "$W/logs.why")"
import json, os, sys
access, lines = [], 0
note = open(3, "w", closefd=False)   # the script's informational lines
with open(os.path.join(os.path.dirname(os.path.dirname(sys.argv[1])), "logs.why"), "w") as why:
    def fail(msg):
        why.write(msg + "\n"); sys.exit(1)
    for i, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
        lines += 1
        try:
            v = json.loads(line)
        except ValueError:
            fail(f"line {i} is not JSON: {line[:200]!r}")
        if not isinstance(v, dict):
            fail(f"line {i} is no object: {line[:200]!r}")
        if v.get("target") == "berth::access":
            access.append(v)
    routes = {a["route"] for a in access}
    for need in ("/v2/{name}/manifests/{reference}", "/v2/{name}/blobs/{digest}", "/metrics",
                 "/pulp/api/v3/repositories/container/container/{id}/sync/"):
        if need not in routes:
            fail(f"no access event for {need}: {sorted(routes)}")
    for a in access:
        for k in ("request_id", "method", "route", "status", "latency_ms", "bytes_in", "bytes_out", "user"):
            if k not in a:
                fail(f"access event without {k}: {a}")
        if "sha256:" in a["route"] or "?" in a["route"]:
            fail(f"a raw path as the route: {a}")
    users = {a["user"] for a in access}
    if not {"admin", "anonymous"} <= users:
        fail(f"users: {users}")
    if not any(a.get("repository") == "fx" for a in access):
        fail("no event names the repository fx")
    scrape = [a for a in access if a["request_id"] == "e2e-scrape-1"]
    if len(scrape) != 1 or scrape[0]["route"] != "/metrics" or scrape[0]["status"] != 200:
        fail(f"the scrape's event: {scrape}")
    print(f"     {lines} lines, all JSON; {len(access)} access events; routes: {len(routes)}; users: {sorted(users)}", file=note)
PY
}
check "9 BERTH_LOG_FORMAT=json: every line of Berth's log is one JSON object; access events name route templates, users, repositories, request ids" t_json_logs

echo "runtime $(( $(date +%s) - T0 )) s"
if [ "$FAIL" -gt 0 ]; then echo "--- berth log (last 20 lines) ---"; tail -20 "$W/berth/log"; fi
e2e_summary
