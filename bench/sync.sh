#!/usr/bin/env bash
# Sync benchmark: Berth mirroring a docker-registry on the same machine, against
# `skopeo sync --src docker --dest dir` of the same tags (the reference), in one run.
#
#   bench/sync.sh                            # build Berth (release), run, print a markdown table
#   BENCH_OUT=bench/sync-results.md bench/sync.sh   # also write the table to that file
#
# What is measured:
#   1. a full sync of ~500 MB in 52 tags (50 images sharing a base layer and, in groups of
#      ten, a middle layer; a two-platform index; `latest`), Berth (remote + repository
#      through its Pulp-compatible API, POST .../sync/, task polled) vs skopeo sync;
#   2. a re-sync with nothing changed upstream (no version, no blob downloaded: checked in
#      docker-registry's access log), target < 0.5 s;
#   3. Berth's peak RSS (VmHWM) while syncing one 1 GiB layer, target < 150 MB.
#
# Knobs (environment): BERTH_BIN (skip the build and use this binary), SKIP_BUILD=1,
#   TAGS (50), BASE_MIB (16), GROUP_MIB (4), UNIQUE_MIB (8), INDEX_MIB (24), HUGE_MIB (1024),
#   NOOP_RUNS (5), KEEP_TMP=1 (debugging).
# Needs: docker-registry, skopeo, curl, python3 (stdlib only), sha256sum, head.
# Layers are random bytes from /dev/urandom, streamed to files (never held in memory).
# Everything listens on 127.0.0.1 only; every wait/poll loop is bounded.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

TAGS=${TAGS:-50}
BASE_MIB=${BASE_MIB:-16}
GROUP_MIB=${GROUP_MIB:-4}
UNIQUE_MIB=${UNIQUE_MIB:-8}
INDEX_MIB=${INDEX_MIB:-24}
HUGE_MIB=${HUGE_MIB:-1024}
NOOP_RUNS=${NOOP_RUNS:-5}
NGROUPS=5

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_setup berth-sync-bench docker-registry skopeo curl python3 sha256sum head

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$2"; }
mb() { python3 -c "import sys; print(f'{int(sys.argv[1])/1024:.1f}')" "$1"; }
jfield() { jget - "$1"; }

# gen FILE MIB: random bytes streamed to FILE; prints the sha256 digest
gen() { echo "sha256:$(head -c "$2M" /dev/urandom | tee "$1" | sha256sum | cut -d' ' -f1)"; }

# ---------------------------------------------------------------- 1. content, generated offline
C=$WORK/content
mkdir -p "$C/layers" "$C/small"
log "generating layers: base ${BASE_MIB} MiB, ${NGROUPS} x ${GROUP_MIB} MiB, ${TAGS} x ${UNIQUE_MIB} MiB, 2 x ${INDEX_MIB} MiB, ${HUGE_MIB} MiB"
{
    echo "base $(gen "$C/layers/base" "$BASE_MIB") $((BASE_MIB * 1048576))"
    for g in $(seq 1 "$NGROUPS"); do echo "g$g $(gen "$C/layers/g$g" "$GROUP_MIB") $((GROUP_MIB * 1048576))"; done
    for i in $(seq 1 "$TAGS"); do echo "u$i $(gen "$C/layers/u$i" "$UNIQUE_MIB") $((UNIQUE_MIB * 1048576))"; done
    for a in amd64 arm64; do echo "$a $(gen "$C/layers/$a" "$INDEX_MIB") $((INDEX_MIB * 1048576))"; done
    echo "huge $(gen "$C/layers/huge" "$HUGE_MIB") $((HUGE_MIB * 1048576))"
} >"$C/layers.txt"

# configs, manifests and the push plan (small files only; the layers are named by digest)
python3 - "$C" "$TAGS" "$NGROUPS" <<'PY'
import hashlib, json, os, sys
out, tags, groups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
layers = {}
for line in open(os.path.join(out, "layers.txt")):
    name, digest, size = line.split()
    layers[name] = {"digest": digest, "size": int(size)}
OCI_M, OCI_I = "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"

def small(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "small", d[7:]), "wb") as f:
        f.write(data)
    return d, len(data)

def image(label, arch, names):
    # the layers are random bytes: diff_ids are nominal (registries never unpack them)
    cfg = json.dumps({"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
                      "config": {"Labels": {"bench": label}},
                      "rootfs": {"type": "layers", "diff_ids": [layers[n]["digest"] for n in names]}},
                     sort_keys=True).encode()
    cd, cs = small(cfg)
    m = json.dumps({"schemaVersion": 2, "mediaType": OCI_M,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layers[n]} for n in names]},
                   sort_keys=True).encode()
    md, ms = small(m)
    return md, ms, cd, cs

plan, blobs, manifests, upstream_bytes = [], set(), set(), 0
for i in range(1, tags + 1):
    names = ["base", f"g{(i - 1) % groups + 1}", f"u{i}"]
    md, ms, cd, cs = image(f"t{i:02d}", "amd64", names)
    plan.append(("bench/app", f"t{i:02d}", md, OCI_M, cd, names))
    manifests.add(md); blobs.add(cd); blobs.update(layers[n]["digest"] for n in names)
kids = []
for arch in ("amd64", "arm64"):
    md, ms, cd, cs = image("multi-" + arch, arch, ["base", arch])
    plan.append(("bench/app", md, md, OCI_M, cd, ["base", arch]))
    kids.append({"mediaType": OCI_M, "digest": md, "size": ms, "platform": {"architecture": arch, "os": "linux"}})
    manifests.add(md); blobs.add(cd); blobs.update(layers[n]["digest"] for n in ("base", arch))
idx, _ = small(json.dumps({"schemaVersion": 2, "mediaType": OCI_I, "manifests": kids}, sort_keys=True).encode())
plan.append(("bench/app", "multi", idx, OCI_I, None, []))
manifests.add(idx)
plan.append(("bench/app", "latest", plan[tags - 1][2], OCI_M, None, []))   # same manifest as the last tag
md, ms, cd, cs = image("huge", "amd64", ["huge"])
plan.append(("bench/huge", "latest", md, OCI_M, cd, ["huge"]))
with open(os.path.join(out, "plan.txt"), "w") as f:
    for repo, ref, md, mt, cd, names in plan:
        f.write(" ".join([repo, ref, md, mt, cd or "-", ",".join(names) or "-"]) + "\n")
sizes = {l["digest"]: l["size"] for l in layers.values()}
total = sum(sizes[b] if b in sizes else os.path.getsize(os.path.join(out, "small", b[7:])) for b in blobs)
with open(os.path.join(out, "expect.env"), "w") as f:
    f.write(f"EXP_TAGS={tags + 2}\nEXP_MANIFESTS={len(manifests)}\nEXP_BLOBS={len(blobs)}\nAPP_BYTES={total}\n")
PY
# shellcheck disable=SC1091
source "$C/expect.env"
declare -A LAYER_DIGEST
while read -r name digest _; do LAYER_DIGEST[$name]=$digest; done <"$C/layers.txt"
HUGE_DIGEST=${LAYER_DIGEST[huge]}

# ---------------------------------------------------------------- servers
DR_PORT=$(free_port)
BERTH_PORT=$(free_port "$DR_PORT")
DR=http://127.0.0.1:$DR_PORT
BERTH=http://127.0.0.1:$BERTH_PORT
mkdir -p "$WORK/dr-data" "$WORK/berth-data"
dr_config "$WORK/dr-config.yml" "$DR_PORT" on
# the access log (on stdout) shows what each sync downloads
env -u REGISTRY_AUTH_FILE docker-registry serve "$WORK/dr-config.yml" >"$WORK/docker-registry.log" 2>&1 &
DR_PID=$!; PIDS+=("$DR_PID")
BERTH_PW=bench-$RANDOM-$RANDOM
BERTH_LOG=warn BERTH_ADMIN_PASSWORD=$BERTH_PW "$BERTH_BIN" --listen "127.0.0.1:$BERTH_PORT" --data-dir "$WORK/berth-data" \
    >"$WORK/berth.log" 2>&1 &
BERTH_PID=$!; PIDS+=("$BERTH_PID")
wait_ready "$DR" docker-registry "$DR_PID"
wait_ready "$BERTH" berth "$BERTH_PID"
log "docker-registry pid $DR_PID on $DR; Berth pid $BERTH_PID on $BERTH"

# ---------------------------------------------------------------- fill the upstream
t=$(now)
declare -A PUSHED
while read -r -u 3 repo ref md mt cd names; do
    if [[ "$names" != - ]]; then
        IFS=, read -r -a ns <<<"$names"
        for n in "${ns[@]}"; do
            key="$repo ${LAYER_DIGEST[$n]}"
            [[ -n "${PUSHED[$key]:-}" ]] && continue
            push_blob "$DR" "$repo" "$C/layers/$n" "${LAYER_DIGEST[$n]}"; PUSHED[$key]=1
        done
    fi
    [[ "$cd" != - ]] && push_blob "$DR" "$repo" "$C/small/${cd#sha256:}" "$cd"
    push_manifest "$DR" "$repo" "$ref" "$C/small/${md#sha256:}" "$mt"
done 3<"$C/plan.txt"
log "upstream filled in $(secs "$t" "$(now)") s: bench/app $EXP_TAGS tags, $EXP_MANIFESTS manifests, $EXP_BLOBS blobs, $(mb $((APP_BYTES / 1024))) MiB; bench/huge 1 tag (${HUGE_MIB} MiB layer)"
rm -rf "$C/layers"   # the upstream has them now
tags_up=$(curl -sS "$DR/v2/bench/app/tags/list?n=1000" | jfield 'len(d["tags"])')
[[ "$tags_up" == "$EXP_TAGS" ]] || die "upstream lists $tags_up tags, want $EXP_TAGS"

# ---------------------------------------------------------------- Berth's API
API=$BERTH/pulp/api/v3
api() { # METHOD PATH [BODY]
    local args=(-sS --fail-with-body -u "admin:$BERTH_PW" -X "$1")
    [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    case $2 in http*) curl "${args[@]}" "$2" ;; /*) curl "${args[@]}" "$BERTH$2" ;; *) curl "${args[@]}" "$API/$2" ;; esac
}
# A small client of the API: `task HREF` waits for a task; `sync NAME [mirror]` POSTs a sync and
# waits for its task. Both poll every 5 ms (at most 15 min) in one process, so the time measured is
# POST -> task seen finished. They print "seconds state" and leave the task in $WORK/task.json.
cat >"$WORK/api.py" <<'PY'
import base64, json, sys, time, urllib.request
base, user, pw, out, cmd = sys.argv[1:6]
auth = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
def call(method, path, body=None):
    url = path if path.startswith("http") else base + path
    req = urllib.request.Request(url, method=method, headers={"Authorization": auth, "Content-Type": "application/json"},
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req) as r:
        return json.load(r)
def href(kind, name):
    return call("GET", f"/pulp/api/v3/{kind}/container/container/?name={name}")["results"][0]["pulp_href"]
if cmd == "sync":
    repo, remote = href("repositories", sys.argv[6]), href("remotes", sys.argv[6])
    t0 = time.monotonic()
    task = call("POST", repo + "sync/", {"remote": remote, "mirror": sys.argv[7:8] == ["mirror"]})["task"]
else:
    t0 = time.monotonic()
    task = sys.argv[6]
deadline = t0 + 900
while True:
    t = call("GET", task)
    if t["state"] in ("completed", "failed", "canceled", "skipped") or time.monotonic() > deadline:
        break
    time.sleep(0.005)
elapsed = time.monotonic() - t0
json.dump(t, open(out, "w"))
print(f"{elapsed:.3f} {t['state']}")
PY
wait_task() { python3 "$WORK/api.py" "$BERTH" admin "$BERTH_PW" "$WORK/task.json" task "$1" | cut -d' ' -f2; }
berth_sync() { python3 "$WORK/api.py" "$BERTH" admin "$BERTH_PW" "$WORK/task.json" sync "$@"; }
setup() { # NAME UPSTREAM_NAME
    api POST remotes/container/container/ "{\"name\": \"$1\", \"url\": \"$DR\", \"upstream_name\": \"$2\", \"policy\": \"immediate\"}" >/dev/null
    api POST repositories/container/container/ "{\"name\": \"$1\"}" >/dev/null
}
blob_gets() { grep -c '"GET /v2/bench/[^ ]*/blobs/sha256:' "$WORK/docker-registry.log" || true; }
present() { # NAME TYPE: count of TYPE in the latest version
    api GET "repositories/container/container/?name=$1" | jfield 'd["results"][0]["latest_version_href"]' >"$WORK/lv"
    api GET "$(cat "$WORK/lv")" | jfield "d['content_summary']['present'].get('$2', {}).get('count', 0)"
}
latest_href() { api GET "repositories/container/container/?name=$1" | jfield 'd["results"][0]["latest_version_href"]'; }

# ---------------------------------------------------------------- 2. full sync: Berth
setup app bench/app
echo 5 >"/proc/$BERTH_PID/clear_refs" 2>/dev/null || log "cannot reset VmHWM; the peak covers the whole run"
gets0=$(blob_gets)
log "Berth: syncing bench/app"
read -r BERTH_FULL_S BERTH_FULL_STATE < <(berth_sync app)
[[ "$BERTH_FULL_STATE" == completed ]] || die "Berth's sync ended $BERTH_FULL_STATE: $(cat "$WORK/task.json")"
BERTH_FULL_TASK_S=$(jfield 'd["started_at"] + " " + d["finished_at"]' <"$WORK/task.json" |
    python3 -c 'import sys, datetime as dt; a, b = sys.stdin.read().split(); p = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00")); print(f"{(p(b) - p(a)).total_seconds():.2f}")')
BERTH_FULL_HWM=$(rss_kb "$BERTH_PID" VmHWM)
BERTH_FULL_GETS=$(( $(blob_gets) - gets0 ))
GOT_TAGS=$(present app container.tag); GOT_MANIFESTS=$(present app container.manifest); GOT_BLOBS=$(present app container.blob)
CONTENT_OK=FAIL
[[ "$GOT_TAGS $GOT_MANIFESTS $GOT_BLOBS" == "$EXP_TAGS $EXP_MANIFESTS $EXP_BLOBS" ]] && CONTENT_OK=PASS
BERTH_STORED=$(du -sb "$WORK/berth-data" | cut -f1)
log "Berth: ${BERTH_FULL_S} s, $BERTH_FULL_GETS blob GETs, version has $GOT_TAGS tags / $GOT_MANIFESTS manifests / $GOT_BLOBS blobs ($CONTENT_OK)"

# ---------------------------------------------------------------- 2b. full sync: skopeo (reference)
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"
echo '{}' >"$WORK/auth.json"; mkdir -p "$WORK/regd"
gets0=$(blob_gets)
log "skopeo sync --all --src docker --dest dir bench/app"
t1=$(now)
REGISTRY_AUTH_FILE=$WORK/auth.json skopeo --policy "$WORK/policy.json" --registries.d "$WORK/regd" sync --all \
    --src docker --dest dir --src-tls-verify=false "127.0.0.1:$DR_PORT/bench/app" "$WORK/skopeo-dir" >"$WORK/skopeo.log" 2>&1 ||
    die "skopeo sync failed: $(tail -5 "$WORK/skopeo.log")"
SKOPEO_S=$(secs "$t1" "$(now)")
SKOPEO_GETS=$(( $(blob_gets) - gets0 ))
SKOPEO_DIRS=$(find "$WORK/skopeo-dir" -name manifest.json -path '*:*' -printf '%h\n' | sort -u | wc -l)
SKOPEO_STORED=$(du -sb "$WORK/skopeo-dir" | cut -f1)
[[ "$SKOPEO_DIRS" == "$EXP_TAGS" ]] || log "skopeo wrote $SKOPEO_DIRS image directories, expected $EXP_TAGS"
log "skopeo: ${SKOPEO_S} s, $SKOPEO_GETS blob GETs, $SKOPEO_DIRS images"
rm -rf "$WORK/skopeo-dir"

# ---------------------------------------------------------------- 3. no-op re-syncs
NOOP_TIMES=(); NOOP_GETS=0; NOOP_VERSIONS_OK=yes
v_before=$(latest_href app)
heads0=$(grep -c '"HEAD /v2/bench/app/manifests/' "$WORK/docker-registry.log" || true)
for i in $(seq 1 "$NOOP_RUNS"); do
    gets0=$(blob_gets)
    read -r s state < <(berth_sync app)
    [[ "$state" == completed ]] || die "no-op sync $i ended $state: $(cat "$WORK/task.json")"
    [[ "$(jfield 'len(d["created_resources"])' <"$WORK/task.json")" == 0 ]] || NOOP_VERSIONS_OK=no
    NOOP_GETS=$(( NOOP_GETS + $(blob_gets) - gets0 ))
    NOOP_TIMES+=("$s")
done
[[ "$(latest_href app)" == "$v_before" ]] || NOOP_VERSIONS_OK=no
read -r NOOP_MEDIAN NOOP_BEST NOOP_WORST < <(python3 -c 'import statistics, sys; t = sorted(map(float, sys.argv[1:])); print(f"{statistics.median(t):.3f} {t[0]:.3f} {t[-1]:.3f}")' "${NOOP_TIMES[@]}")
NOOP_HEADS=$(( ($(grep -c '"HEAD /v2/bench/app/manifests/' "$WORK/docker-registry.log" || true) - heads0) / NOOP_RUNS ))
log "no-op re-sync x$NOOP_RUNS: median $NOOP_MEDIAN s (best $NOOP_BEST, worst $NOOP_WORST), $NOOP_GETS blob GETs, new versions: $([[ $NOOP_VERSIONS_OK == yes ]] && echo none || echo SOME)"

# ---------------------------------------------------------------- 4. peak RSS syncing a 1 GiB layer
setup huge bench/huge
HWM_IDLE=$(rss_kb "$BERTH_PID" VmRSS)
echo 5 >"/proc/$BERTH_PID/clear_refs" 2>/dev/null || true
rm -f "$WORK/stop"
python3 - "$BERTH_PID" "$WORK/stop" >"$WORK/rss.sampled" <<'PY' &
import os, sys, time
pid, stop = sys.argv[1], sys.argv[2]
peak = 0
for _ in range(12000):   # at most 10 min at 20 Hz
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                peak = max(peak, int(line.split()[1]))
    except OSError:
        break
    if os.path.exists(stop):
        break
    time.sleep(0.05)
print(peak)
PY
SAMPLER_PID=$!; PIDS+=("$SAMPLER_PID")
log "Berth: syncing the ${HUGE_MIB} MiB layer"
read -r HUGE_S HUGE_STATE < <(berth_sync huge)
touch "$WORK/stop"; wait "$SAMPLER_PID" || true
[[ "$HUGE_STATE" == completed ]] || die "the 1 GiB sync ended $HUGE_STATE: $(cat "$WORK/task.json")"
HUGE_HWM=$(rss_kb "$BERTH_PID" VmHWM)
HUGE_SAMPLED=$(cat "$WORK/rss.sampled")
# the stored layer is intact: served by Berth (through a distribution) with the right digest
api POST distributions/container/container/ '{"name": "huge", "base_path": "huge", "repository": "'"$(api GET 'repositories/container/container/?name=huge' | jfield 'd["results"][0]["pulp_href"]')"'"}' |
    jfield 'd["task"]' >"$WORK/dt"
[[ "$(wait_task "$(cat "$WORK/dt")")" == completed ]] || die "distribution create failed"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BERTH/v2/huge/blobs/$HUGE_DIGEST")
auth=()
if [[ "$code" == 401 ]]; then
    tok=$(curl -sS -u "admin:$BERTH_PW" "$BERTH/token?service=127.0.0.1:$BERTH_PORT&scope=repository:huge:pull" | jfield 'd["token"]')
    auth=(-H "Authorization: Bearer $tok")
fi
HUGE_OK=NO
[[ "sha256:$(curl -sS --fail -L "${auth[@]}" "$BERTH/v2/huge/blobs/$HUGE_DIGEST" | sha256sum | cut -d' ' -f1)" == "$HUGE_DIGEST" ]] && HUGE_OK=yes
log "1 GiB sync: ${HUGE_S} s, VmHWM $(mb "$HUGE_HWM") MB, layer served intact: $HUGE_OK"
kill -0 "$BERTH_PID" 2>/dev/null || die "Berth died"
BERTH_LOG_LINES=$(wc -l <"$WORK/berth.log")

# ---------------------------------------------------------------- 5. summary
verdict() { python3 -c "import sys; print('PASS' if eval(sys.argv[1]) else 'FAIL')" "$1"; }
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1048576 / float(sys.argv[2]):.0f}')" "$1" "$2"; }
APP_MIB=$(python3 -c "import sys; print(f'{int(sys.argv[1]) / 1048576:.0f}')" "$APP_BYTES")
RATIO=$(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.2f}')" "$BERTH_FULL_S" "$SKOPEO_S")
V_NOOP=$(verdict "$NOOP_MEDIAN < 0.5 and $NOOP_GETS == 0 and '$NOOP_VERSIONS_OK' == 'yes'")
V_MEM=$(verdict "$(mb "$HUGE_HWM") < 150 and '$HUGE_OK' == 'yes'")
V_FULL=$(verdict "'$CONTENT_OK' == 'PASS' and $BERTH_FULL_GETS == $EXP_BLOBS")
ELAPSED=$(( $(date +%s) - T0 ))
if [[ "$BERTH_BIN" == "$REPO_ROOT/target/release/berth" ]]; then
    BERTH_DESC="\`$(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO_ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+uncommitted')\`, release build"
else
    BERTH_DESC="\`$BERTH_BIN\` ($("$BERTH_BIN" --version 2>/dev/null | head -1))"
fi
SUMMARY=$WORK/summary.md
{
    echo "## Sync: Berth vs skopeo sync, from docker-registry — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r); upstream, Berth and skopeo share the cores."
    echo "Berth: $BERTH_DESC, policy immediate. Upstream: docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}'), filesystem storage, access log on; skopeo $(skopeo --version | awk '{print $3}')."
    echo "Fixture bench/app: $EXP_TAGS tags ($TAGS images = ${BASE_MIB} MiB base shared by all + one of $NGROUPS ${GROUP_MIB} MiB group layers + a ${UNIQUE_MIB} MiB own layer; a 2-platform OCI index (base + ${INDEX_MIB} MiB each); \`latest\`), $EXP_MANIFESTS manifests, $EXP_BLOBS distinct blobs, $APP_MIB MiB of distinct blobs; random bytes, in the page cache."
    echo
    echo "| Test | Berth | skopeo sync (dir) | Target | Result |"
    echo "|---|---:|---:|---|---|"
    echo "| Full sync of bench/app, wall s (Berth: POST sync → task seen completed, polled every 5 ms) | $BERTH_FULL_S | $SKOPEO_S | | |"
    echo "| — speed-up over the reference (skopeo s / Berth s) | ${RATIO}× | 1× | | |"
    echo "| — task's own run time (started_at → finished_at), s | $BERTH_FULL_TASK_S | | | |"
    echo "| — MiB/s of distinct blobs | $(rate "$APP_BYTES" "$BERTH_FULL_S") | $(rate "$APP_BYTES" "$SKOPEO_S") | | |"
    echo "| — blob GETs at the upstream (access log) | $BERTH_FULL_GETS | $SKOPEO_GETS | Berth: each blob once ($EXP_BLOBS) | $V_FULL |"
    echo "| — stored on disk afterwards, MiB | $(python3 -c "print(f'{$BERTH_STORED/1048576:.0f}')") | $(python3 -c "print(f'{$SKOPEO_STORED/1048576:.0f}')") | | |"
    echo "| — version 1: tags / manifests / blobs (want $EXP_TAGS / $EXP_MANIFESTS / $EXP_BLOBS) | $GOT_TAGS / $GOT_MANIFESTS / $GOT_BLOBS | $SKOPEO_DIRS image dirs | exact | $CONTENT_OK |"
    echo "| — Berth VmHWM during the full sync, MB | $(mb "$BERTH_FULL_HWM") | | | |"
    echo "| No-change re-sync, s (median of $NOOP_RUNS; best / worst) | $NOOP_MEDIAN ($NOOP_BEST / $NOOP_WORST) | | < 0.5 s | $V_NOOP |"
    echo "| — blob GETs at the upstream during the re-syncs / new versions | $NOOP_GETS / $([[ $NOOP_VERSIONS_OK == yes ]] && echo 0 || echo 'some') | | 0 / 0 | |"
    echo "| Sync of one ${HUGE_MIB} MiB layer, s | $HUGE_S | | | |"
    echo "| — Berth peak RSS, VmHWM (reset before), MB | $(mb "$HUGE_HWM") | | < 150 MB | $V_MEM |"
    echo "| — highest sampled VmRSS (20 Hz) / idle VmRSS before, MB | $(mb "$HUGE_SAMPLED") / $(mb "$HWM_IDLE") | | | |"
    echo "| — the layer served by Berth afterwards matches its digest | $HUGE_OK | | | |"
    echo "| Berth log lines at warn+ over the run | $BERTH_LOG_LINES | | | |"
    echo
    echo "skopeo's \`dir:\` destination keeps one directory per tag, so shared layers are downloaded and written once per tag that uses them; Berth stores each blob once. A no-change re-sync still lists the tags and checks each with a manifest HEAD ($NOOP_HEADS HEADs per re-sync at the upstream), as Pulp does. Total benchmark wall time: ${ELAPSED} s."
} >"$SUMMARY"

echo
cat "$SUMMARY"
if [[ -n "${BENCH_OUT:-}" ]]; then
    cp "$SUMMARY" "$BENCH_OUT"
    log "summary written to $BENCH_OUT"
fi
