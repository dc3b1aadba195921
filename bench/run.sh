#!/usr/bin/env bash
# Berth vs docker-registry (distribution 2.8) on the same machine, same content, same run.
#
#   bench/run.sh                         # build Berth (release), run everything, print a summary
#   BENCH_OUT=bench/results.md bench/run.sh   # also write the summary (markdown) to that file
#
# Knobs (environment): BERTH_BIN (skip the build and use this binary), SKIP_BUILD=1,
#   WRK_THREADS (2), WRK_CONNS (16), WRK_DURATION (10s), BLOB_RUNS (5), KEEP_TMP=1 (debugging).
# Needs: docker-registry, wrk, hyperfine, curl, python3 (stdlib only), sha256sum, head.
# Everything listens on 127.0.0.1 only; every wait/request loop is bounded.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-16}
WRK_DURATION=${WRK_DURATION:-10s}
BLOB_RUNS=${BLOB_RUNS:-5}
BIG_MIB=256
HUGE_MIB=1024
MANIFEST_TYPE=application/vnd.oci.image.manifest.v1+json

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_setup berth-bench docker-registry wrk hyperfine curl python3 sha256sum

# forget_pid PID: drop a reaped PID from the cleanup list (so a recycled PID is never signalled).
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------- 1. content, generated offline
log "generating content in $WORK (small image, ${BIG_MIB} MiB layer, ${HUGE_MIB} MiB layer)"
mkdir -p "$WORK/content"
BIG=$WORK/content/big.layer
HUGE=$WORK/content/huge.layer
BIG_DIGEST=sha256:$(head -c "${BIG_MIB}M" /dev/urandom | tee "$BIG" | sha256sum | cut -d' ' -f1)
HUGE_DIGEST=sha256:$(head -c "${HUGE_MIB}M" /dev/urandom | tee "$HUGE" | sha256sum | cut -d' ' -f1)

# Small image (config + one small gzip'd tar layer) and a manifest for the 256 MiB layer.
python3 - "$WORK/content" "$BIG_DIGEST" "$((BIG_MIB * 1048576))" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out, big_digest, big_size = sys.argv[1], sys.argv[2], int(sys.argv[3])

def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

tbuf = io.BytesIO()
with tarfile.open(fileobj=tbuf, mode="w", format=tarfile.PAX_FORMAT) as tar:
    payload = b"hello from the berth benchmark\n" * 64
    ti = tarfile.TarInfo("hello.txt"); ti.size = len(payload); ti.mtime = 0; ti.mode = 0o644
    tar.addfile(ti, io.BytesIO(payload))
layer = gzip.compress(tbuf.getvalue(), mtime=0)
diff_id = "sha256:" + hashlib.sha256(tbuf.getvalue()).hexdigest()
layer_d = write("small.layer", layer)

def config(diff_ids):
    return json.dumps({
        "created": "2026-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()

cfg_d = write("small.config", config([diff_id]))
# The big layer is random bytes; its "diff_id" is only nominal (registries never unpack).
bigcfg_d = write("big.config", config([big_digest]))

def manifest(cfg, layers):
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **l} for l in layers],
    }, indent=3).encode()

write("small.manifest", manifest(cfg_d, [layer_d]))
write("big.manifest", manifest(bigcfg_d, [{"digest": big_digest, "size": big_size}]))
with open(os.path.join(out, "digests"), "w") as f:
    f.write(f"SMALL_LAYER_DIGEST={layer_d['digest']}\nSMALL_CONFIG_DIGEST={cfg_d['digest']}\n"
            f"BIG_CONFIG_DIGEST={bigcfg_d['digest']}\n")
PY
# shellcheck disable=SC1091
source "$WORK/content/digests"
SMALL_MANIFEST_DIGEST=sha256:$(sha256sum "$WORK/content/small.manifest" | cut -d' ' -f1)
SMALL_MANIFEST_BYTES=$(stat -c %s "$WORK/content/small.manifest")

# ---------------------------------------------------------------- start both registries
BERTH_PORT=$(free_port)
DR_PORT=$(free_port "$BERTH_PORT")
BERTH=http://127.0.0.1:$BERTH_PORT
DR=http://127.0.0.1:$DR_PORT

mkdir -p "$WORK/berth-data" "$WORK/dr-data"
dr_config "$WORK/dr-config.yml" "$DR_PORT"

# Berth runs as installed: token authentication on. Every request to it carries a Bearer token
# (one admin token for the benchmark repositories), so verifying tokens is part of what is measured.
BERTH_PW=bench-$RANDOM-$RANDOM
BERTH_LOG=warn BERTH_ADMIN_PASSWORD=$BERTH_PW BERTH_TOKEN_LIFETIME=3600 "$BERTH_BIN" --listen "127.0.0.1:$BERTH_PORT" --data-dir "$WORK/berth-data" \
    >"$WORK/berth.log" 2>&1 &
BERTH_PID=$!
PIDS+=("$BERTH_PID")
docker-registry serve "$WORK/dr-config.yml" >"$WORK/docker-registry.log" 2>&1 &
DR_PID=$!
PIDS+=("$DR_PID")
wait_ready "$BERTH" berth "$BERTH_PID"
wait_ready "$DR" docker-registry "$DR_PID"
log "Berth pid $BERTH_PID on $BERTH; docker-registry pid $DR_PID on $DR"
BERTH_TOKEN=$(command curl -sS -u "admin:$BERTH_PW" \
    "$BERTH/token?service=127.0.0.1:$BERTH_PORT&scope=repository:bench/small:pull,push&scope=repository:bench/big:pull,push&scope=repository:bench/huge:pull,push" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || die "could not get a token from Berth"
# curl: requests to Berth carry the token
curl() {
    local a
    for a in "$@"; do
        case $a in "$BERTH"/*) command curl -H "Authorization: Bearer $BERTH_TOKEN" "$@"; return ;; esac
    done
    command curl "$@"
}
auth_arg() { [[ $1 == berth ]] && printf -- "-H 'Authorization: Bearer %s'" "$BERTH_TOKEN"; }

# ---------------------------------------------------------------- push the same content to both
declare -A PUSH_BIG_S
for name in berth dr; do
    if [[ $name == berth ]]; then base=$BERTH; else base=$DR; fi
    push_blob "$base" bench/small "$WORK/content/small.layer" "$SMALL_LAYER_DIGEST"
    push_blob "$base" bench/small "$WORK/content/small.config" "$SMALL_CONFIG_DIGEST"
    push_manifest "$base" bench/small latest "$WORK/content/small.manifest" "$MANIFEST_TYPE"
    t=$(date +%s.%N)
    push_blob "$base" bench/big "$BIG" "$BIG_DIGEST"
    PUSH_BIG_S[$name]=$(python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$t" "$(date +%s.%N)")
    push_blob "$base" bench/big "$WORK/content/big.config" "$BIG_CONFIG_DIGEST"
    push_manifest "$base" bench/big latest "$WORK/content/big.manifest" "$MANIFEST_TYPE"
    log "pushed to $name (256 MiB layer PUT: ${PUSH_BIG_S[$name]} s)"
done

# ---------------------------------------------------------------- verify answers with curl
for name in berth dr; do
    if [[ $name == berth ]]; then base=$BERTH; else base=$DR; fi
    url=$base/v2/bench/small/manifests/latest
    out=$(curl -sS -D "$WORK/m.hdr" -o "$WORK/m.body" -w '%{http_code}' -H "Accept: $MANIFEST_TYPE" "$url")
    [[ "$out" == 200 ]] || die "$name: GET manifest -> $out"
    cmp -s "$WORK/m.body" "$WORK/content/small.manifest" || die "$name: manifest body differs from what was pushed"
    ct=$(awk 'tolower($1)=="content-type:" {print $2}' "$WORK/m.hdr" | tr -d '\r')
    dcd=$(awk 'tolower($1)=="docker-content-digest:" {print $2}' "$WORK/m.hdr" | tr -d '\r')
    [[ "$ct" == "$MANIFEST_TYPE" ]] || die "$name: manifest Content-Type is '$ct'"
    [[ "$dcd" == "$SMALL_MANIFEST_DIGEST" ]] || die "$name: Docker-Content-Digest is '$dcd', want $SMALL_MANIFEST_DIGEST"
    got=sha256:$(curl -sS --fail "$base/v2/bench/big/blobs/$BIG_DIGEST" | sha256sum | cut -d' ' -f1)
    [[ "$got" == "$BIG_DIGEST" ]] || die "$name: 256 MiB blob GET returned content with digest $got"
    log "$name: manifest GET 200, same bytes, right Content-Type and digest; 256 MiB blob GET matches its digest"
done

# ---------------------------------------------------------------- 2. manifest GET by tag (wrk)
cat >"$WORK/manifest.lua" <<EOF
wrk.method = "GET"
wrk.headers["Accept"] = "$MANIFEST_TYPE"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("LUA_OK200 %d\nLUA_NON200 %d\n", o, b))
  io.write(string.format("LUA_P50_US %d\nLUA_P99_US %d\n", latency:percentile(50), latency:percentile(99)))
end
EOF

declare -A RPS NON200 SOCKERR P50 P99 BYTES_PER_REQ
cp "$WORK/manifest.lua" "$WORK/manifest.dr.lua"
{ echo "wrk.headers[\"Authorization\"] = \"Bearer $BERTH_TOKEN\""; cat "$WORK/manifest.lua"; } >"$WORK/manifest.berth.lua"
for name in berth dr; do
    if [[ $name == berth ]]; then base=$BERTH; else base=$DR; fi
    url=$base/v2/bench/small/manifests/latest
    wrk -t1 -c4 -d2s -s "$WORK/manifest.$name.lua" "$url" >/dev/null 2>&1 || true   # warm-up
    log "wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION against $name"
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" -s "$WORK/manifest.$name.lua" "$url" >"$WORK/wrk.$name" 2>&1 \
        || die "wrk failed against $name: $(cat "$WORK/wrk.$name")"
    sed 's/^/    /' "$WORK/wrk.$name" >&2
    RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.$name")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$WORK/wrk.$name")
    luabad=$(awk '/^LUA_NON200/ {print $2}' "$WORK/wrk.$name")
    NON200[$name]=$(( ${luabad:-0} > ${non2xx:-0} ? ${luabad:-0} : ${non2xx:-0} ))
    SOCKERR[$name]=$(awk '/Socket errors:/ {s=0; for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+,?$/) s+=$i; print s}' "$WORK/wrk.$name")
    SOCKERR[$name]=${SOCKERR[$name]:-0}
    P50[$name]=$(awk '/^LUA_P50_US/ {print $2}' "$WORK/wrk.$name")
    P99[$name]=$(awk '/^LUA_P99_US/ {print $2}' "$WORK/wrk.$name")
    reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.$name")
    BYTES_PER_REQ[$name]=$(python3 - "$WORK/wrk.$name" "$reqs" <<'PY'
import re, sys
txt = open(sys.argv[1]).read(); reqs = int(sys.argv[2])
m = re.search(r"requests in [^,]+, ([0-9.]+)([KMGT]?B) read", txt)
mult = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}[m.group(2)]
print(round(float(m.group(1)) * mult / max(reqs, 1)))
PY
)
done

# ---------------------------------------------------------------- 3. blob GET throughput (256 MiB)
declare -A BLOB_MEAN BLOB_MIN BLOB_MIBS BLOB_MIBS_BEST
for name in berth dr; do
    if [[ $name == berth ]]; then base=$BERTH; else base=$DR; fi
    url=$base/v2/bench/big/blobs/$BIG_DIGEST
    log "blob GET ${BIG_MIB} MiB x $BLOB_RUNS against $name (hyperfine)"
    hyperfine -N --warmup 1 --runs "$BLOB_RUNS" --export-json "$WORK/hf.$name.json" \
        "curl -sS --fail -o /dev/null $(auth_arg "$name") $url" >"$WORK/hf.$name.txt" 2>&1 \
        || die "hyperfine/curl failed against $name: $(tail -n 5 "$WORK/hf.$name.txt")"
    read -r BLOB_MEAN[$name] BLOB_MIN[$name] BLOB_MIBS[$name] BLOB_MIBS_BEST[$name] < <(
        python3 - "$WORK/hf.$name.json" "$BIG_MIB" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]; mib = float(sys.argv[2])
print(f"{r['mean']:.3f} {r['min']:.3f} {mib / r['mean']:.0f} {mib / r['min']:.0f}")
PY
    )
done

# ---------------------------------------------------------------- 4. peak RSS: 1 GiB push + concurrent pulls
# VmHWM is the peak RSS since start (or since the last reset). Record it over the whole run,
# then reset it (echo 5 > /proc/PID/clear_refs) so the phase's own peak is visible too.
declare -A HWM_BEFORE HWM_PHASE PUSH_HUGE_S PULLS PULL_ERR HUGE_GET_OK RSS_SAMPLED PULL_MIBS PUSH_MIBS
for name in berth dr; do
    if [[ $name == berth ]]; then base=$BERTH; pid=$BERTH_PID; else base=$DR; pid=$DR_PID; fi
    HWM_BEFORE[$name]=$(rss_kb "$pid" VmHWM)
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || log "cannot reset VmHWM of $name; phase peak = run peak"
    log "$name: pushing ${HUGE_MIB} MiB (curl -T) while pulling the ${BIG_MIB} MiB layer in a loop"

    # RSS sampler (bounded: at most 120 s at 20 Hz); stops when the stop file appears.
    rm -f "$WORK/stop"
    python3 - "$pid" "$WORK/stop" >"$WORK/rss.$name" <<'PY' &
import os, sys, time
pid, stop = sys.argv[1], sys.argv[2]
peak = 0
for _ in range(2400):
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
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")

    t=$(date +%s.%N)
    ( push_blob "$base" bench/huge "$HUGE" "$HUGE_DIGEST" && date +%s.%N >"$WORK/push.done" ) \
        >"$WORK/push.$name.log" 2>&1 &
    PUSH_PID=$!
    PIDS+=("$PUSH_PID")

    pulls=0 errs=0
    tp=$(date +%s.%N)
    for _ in $(seq 1 200); do   # bounded; normally ends when the push does
        kill -0 "$PUSH_PID" 2>/dev/null || break
        if curl -sS --fail -o /dev/null "$base/v2/bench/big/blobs/$BIG_DIGEST" 2>>"$WORK/pull.$name.err"; then
            pulls=$((pulls + 1))
        else
            errs=$((errs + 1))
        fi
    done
    tp_end=$(date +%s.%N)
    push_rc=0
    wait "$PUSH_PID" || push_rc=$?
    forget_pid "$PUSH_PID"
    if [[ $push_rc != 0 ]]; then
        touch "$WORK/stop"
        die "$name: 1 GiB push failed: $(tail -c 500 "$WORK/push.$name.log")"
    fi
    PUSH_HUGE_S[$name]=$(python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.1f}')" "$t" "$(cat "$WORK/push.done")")
    rm -f "$WORK/push.done"
    # One pull of the freshly pushed 1 GiB layer, checked against its digest.
    got=sha256:$(curl -sS --fail "$base/v2/bench/huge/blobs/$HUGE_DIGEST" | sha256sum | cut -d' ' -f1)
    if [[ "$got" == "$HUGE_DIGEST" ]]; then HUGE_GET_OK[$name]=yes; else HUGE_GET_OK[$name]="NO ($got)"; fi
    touch "$WORK/stop"
    wait "$SAMPLER_PID" || true
    forget_pid "$SAMPLER_PID"
    PULLS[$name]=$pulls
    PULL_MIBS[$name]=$(python3 -c "import sys; a,b,n,m=map(float,sys.argv[1:]); print(f'{n*m/(b-a):.0f}')" \
        "$tp" "$tp_end" "$pulls" "$BIG_MIB")
    PUSH_MIBS[$name]=$(python3 -c "import sys; print(f'{float(sys.argv[2])/float(sys.argv[1]):.0f}')" \
        "${PUSH_HUGE_S[$name]}" "$HUGE_MIB")
    PULL_ERR[$name]=$errs
    HWM_PHASE[$name]=$(rss_kb "$pid" VmHWM)
    RSS_SAMPLED[$name]=$(cat "$WORK/rss.$name")
    log "$name: push ${PUSH_HUGE_S[$name]} s, $pulls pulls ($errs failed), VmHWM phase ${HWM_PHASE[$name]} kB"
    kill -0 "$pid" 2>/dev/null || die "$name died during the memory test"
done

# Both servers still alive and sane after everything?
for name in berth dr; do
    if [[ $name == berth ]]; then base=$BERTH; pid=$BERTH_PID; else base=$DR; pid=$DR_PID; fi
    kill -0 "$pid" 2>/dev/null || die "$name is no longer running"
done

# Anything the servers logged (Berth at warn and above, docker-registry at error and above).
declare -A LOGLINES
for name in berth docker-registry; do
    LOGLINES[$name]=$(wc -l <"$WORK/$name.log")
    if [[ ${LOGLINES[$name]} != 0 ]]; then
        log "$name logged ${LOGLINES[$name]} line(s); first ones:"
        head -n 5 "$WORK/$name.log" | sed 's/^/    /' >&2
    fi
done

# ---------------------------------------------------------------- 5. summary
mb() { python3 -c "import sys; print(f'{int(sys.argv[1])/1024:.1f}')" "$1"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
verdict() { python3 -c "import sys; print('PASS' if eval(sys.argv[1]) else 'FAIL')" "$1"; }

RPS_RATIO=$(ratio "${RPS[berth]}" "${RPS[dr]}")
BLOB_RATIO=$(ratio "${BLOB_MIBS[berth]}" "${BLOB_MIBS[dr]}")
BERTH_PEAK_KB=$(( ${HWM_BEFORE[berth]} > ${HWM_PHASE[berth]} ? ${HWM_BEFORE[berth]} : ${HWM_PHASE[berth]} ))
DR_PEAK_KB=$(( ${HWM_BEFORE[dr]} > ${HWM_PHASE[dr]} ? ${HWM_BEFORE[dr]} : ${HWM_PHASE[dr]} ))
BERTH_PEAK_MB=$(mb "$BERTH_PEAK_KB")
V_RPS=$(verdict "$RPS_RATIO >= 3")
V_BLOB=$(verdict "$BLOB_RATIO >= 0.9")
V_MEM=$(verdict "$BERTH_PEAK_MB < 100")
ELAPSED=$(( $(date +%s) - T0 ))

SUMMARY=$WORK/summary.md
{
    echo "## Berth vs docker-registry — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)."
    echo "**Client and server share the same $(nproc) cores** (wrk/curl run on the machine under test); both registries run at the same time, idle while the other is measured."
    echo "Berth: \`$(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO_ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+uncommitted')\`, release build, BERTH_LOG=warn."
    echo "docker-registry: $(docker-registry --version 2>/dev/null | awk '{print $NF}'), filesystem storage, inmemory blob-descriptor cache, log level error, access log off."
    echo "Storage for both: $(df -P "$WORK" | awk 'NR==2 {print $1}') under $(dirname "$WORK"); blobs were in the page cache."
    echo
    echo "| Test | Berth | docker-registry | Berth / d-r | Target | Result |"
    echo "|---|---:|---:|---:|---|---|"
    echo "| Manifest GET by tag, req/s (wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION) | ${RPS[berth]} | ${RPS[dr]} | ${RPS_RATIO}× | ≥ 3× | $V_RPS |"
    echo "| — non-200 responses / socket errors | ${NON200[berth]} / ${SOCKERR[berth]} | ${NON200[dr]} / ${SOCKERR[dr]} | | 0 | |"
    echo "| — latency p50 / p99 (µs) | ${P50[berth]} / ${P99[berth]} | ${P50[dr]} / ${P99[dr]} | | | |"
    echo "| — bytes read per response (headers + ${SMALL_MANIFEST_BYTES} B body) | ${BYTES_PER_REQ[berth]} | ${BYTES_PER_REQ[dr]} | | | |"
    echo "| Blob GET ${BIG_MIB} MiB, MiB/s (mean of $BLOB_RUNS, curl -o /dev/null) | ${BLOB_MIBS[berth]} | ${BLOB_MIBS[dr]} | ${BLOB_RATIO}× | ≥ 0.9× | $V_BLOB |"
    echo "| — mean / best time per download (s) | ${BLOB_MEAN[berth]} / ${BLOB_MIN[berth]} | ${BLOB_MEAN[dr]} / ${BLOB_MIN[dr]} | | | |"
    echo "| Peak RSS over the whole run, VmHWM (MB) | $BERTH_PEAK_MB | $(mb "$DR_PEAK_KB") | | < 100 MB | $V_MEM |"
    echo "| — VmHWM before the 1 GiB phase (MB) | $(mb "${HWM_BEFORE[berth]}") | $(mb "${HWM_BEFORE[dr]}") | | | |"
    echo "| — VmHWM during 1 GiB push + concurrent pulls (MB, reset at phase start) | $(mb "${HWM_PHASE[berth]}") | $(mb "${HWM_PHASE[dr]}") | | | |"
    echo "| — highest sampled VmRSS in that phase (MB, 20 Hz) | $(mb "${RSS_SAMPLED[berth]}") | $(mb "${RSS_SAMPLED[dr]}") | | | |"
    echo "| 1 GiB monolithic PUT (curl -T) under concurrent pulls, s | ${PUSH_HUGE_S[berth]} | ${PUSH_HUGE_S[dr]} | | | |"
    echo "| — push rate / concurrent pull rate during the push (MiB/s) | ${PUSH_MIBS[berth]} / ${PULL_MIBS[berth]} | ${PUSH_MIBS[dr]} / ${PULL_MIBS[dr]} | | | |"
    echo "| — concurrent ${BIG_MIB} MiB pulls completed / failed | ${PULLS[berth]} / ${PULL_ERR[berth]} | ${PULLS[dr]} / ${PULL_ERR[dr]} | | | |"
    echo "| — 1 GiB layer GET afterwards matches its digest | ${HUGE_GET_OK[berth]} | ${HUGE_GET_OK[dr]} | | | |"
    echo "| Server log lines over the run (Berth warn+, d-r error+) | ${LOGLINES[berth]} | ${LOGLINES[docker-registry]} | | | |"
    echo "| 256 MiB monolithic PUT (idle server), s | ${PUSH_BIG_S[berth]} | ${PUSH_BIG_S[dr]} | | | |"
    echo
    echo "Checks before measuring: both answered the manifest GET with 200, the pushed bytes, Content-Type $MANIFEST_TYPE and the right Docker-Content-Digest; both returned the 256 MiB layer intact."
    echo "wrk counts statuses in a Lua response() hook (costs wrk ~10% of its request rate; same for both). The pull loop runs one curl at a time until the push ends, so its count depends on how the server shares the 2 cores between the two transfers."
    echo "MB = MiB (kB/1024 from /proc/PID/status). Total benchmark wall time: ${ELAPSED} s."
} >"$SUMMARY"

echo
cat "$SUMMARY"
if [[ -n "${BENCH_OUT:-}" ]]; then
    cp "$SUMMARY" "$BENCH_OUT"
    log "summary written to $BENCH_OUT"
fi
