# What the benchmarks share: logging, the work folder and its cleanup (every process in PIDS is
# stopped on exit), the Berth build, and small HTTP helpers. Sourced by bench/run.sh and
# bench/sync.sh after they set REPO_ROOT; `bench_setup NAME TOOL...` checks the tools and
# makes WORK. Free ports, waiting for a server and reading JSON come from tests/e2e/lib.sh, the
# library the end-to-end tests share.

# shellcheck source=tests/e2e/lib.sh
source "$REPO_ROOT/tests/e2e/lib.sh"

T0=$(date +%s)
log() { printf '[%4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# bench_setup NAME TOOL...: the tools must be on PATH; WORK is a fresh folder, removed on exit
# (kept with KEEP_TMP=1) after every process in PIDS is stopped; BERTH_BIN is built unless given
bench_setup() {
    local name=$1 tool; shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "missing tool: $tool"
    done
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [[ -z "${BERTH_BIN:-}" ]]; then
        BERTH_BIN="$REPO_ROOT/target/release/berth"
        if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
            log "building Berth (cargo build --release -p berth)"
            (cd "$REPO_ROOT" && cargo build --release -p berth 2>&1 | tail -n 3) >&2 || die "cargo build failed"
        fi
    fi
    [[ -x "$BERTH_BIN" ]] || die "no Berth binary at $BERTH_BIN"
}

bench_cleanup() {
    local rc=$? p
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "keeping $WORK (KEEP_TMP=1)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# dr_config FILE PORT [ACCESS_LOG]: a docker-registry configuration serving $WORK/dr-data on
# 127.0.0.1:PORT (deletes allowed, in-memory blob-descriptor cache, errors only), its access log
# off unless ACCESS_LOG is "on"
dr_config() {
    local disabled=true
    [[ ${3:-off} == on ]] && disabled=false
    mkdir -p "$WORK/dr-data"
    cat >"$1" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: $disabled
storage:
  filesystem:
    rootdirectory: $WORK/dr-data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$2
EOF
}

rss_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }

# wait_ready URL NAME PID: NAME answers GET /v2/ (200, or Berth's token challenge 401)
wait_ready() {
    wait_http "$1/v2/" "$3" '^(200|401)$' && return 0
    alive "$3" || die "$2 exited during startup (see $WORK/$2.log)"
    die "$2 not ready after 10 s"
}

# push_blob BASE REPO FILE DIGEST: POST an upload session, then one monolithic PUT ?digest= streaming FILE
push_blob() {
    local base=$1 repo=$2 file=$3 digest=$4 hdrs loc code url
    hdrs=$(curl -sS -D - -o /dev/null -X POST "$base/v2/$repo/blobs/uploads/")
    code=$(printf '%s\n' "$hdrs" | awk 'NR==1 {print $2}')
    [[ "$code" == 202 ]] || die "POST $base/v2/$repo/blobs/uploads/ -> $code"
    loc=$(printf '%s\n' "$hdrs" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
    [[ -n "$loc" ]] || die "no Location header from POST upload on $base/$repo"
    case $loc in http*) url=$loc ;; *) url=$base$loc ;; esac
    case $url in *\?*) url="$url&digest=$digest" ;; *) url="$url?digest=$digest" ;; esac
    # -H 'Expect:' stops curl from waiting for "100 Continue" before streaming a big body.
    code=$(curl -sS -o "$WORK/put.resp" -w '%{http_code}' -X PUT -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -T "$file" "$url")
    [[ "$code" == 201 ]] || die "PUT blob $digest to $base/$repo -> $code: $(head -c 300 "$WORK/put.resp")"
}

# push_manifest BASE REPO REF FILE MEDIATYPE
push_manifest() {
    local code
    code=$(curl -sS -o "$WORK/put.resp" -w '%{http_code}' -X PUT -H "Content-Type: $5" --data-binary "@$4" "$1/v2/$2/manifests/$3")
    [[ "$code" == 201 ]] || die "PUT manifest $2:$3 to $1 -> $code: $(head -c 300 "$WORK/put.resp")"
}
