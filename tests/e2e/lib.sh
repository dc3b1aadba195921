# What the end-to-end scripts (tests/e2e/*.sh) and the benchmarks (bench/lib.sh) share: the
# check lines and their count, processes and free loopback ports, waiting for a server, starting
# a Berth, a containerd and a dockerd of the test's own, and reading JSON. Sourced, never run; it
# sets nothing but functions, the daemons' process variables and, through e2e_init, W (the work
# folder), PASS, FAIL and PIDS.
#
# A script prints `OK   name` / `FAIL name` (/ `SKIP name`) lines and ends with `e2e_summary`.

# e2e_init PREFIX: W is a fresh `mktemp -d` folder; counts and the process list start empty;
# fd 3 is the script's stdout (for `note` from inside a check, whose output is captured); the
# script's own `cleanup` runs on exit, also after Ctrl-C or a TERM
e2e_init() {
  W=$(mktemp -d "/tmp/$1.XXXXXX")
  PASS=0; FAIL=0
  PIDS=()
  exec 3>&1
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

ok()   { PASS=$((PASS+1)); echo "OK   $1"; }
bad()  { FAIL=$((FAIL+1)); echo "FAIL $1${2:+: $2}"; }   # bad NAME [DETAIL]
skip() { echo "SKIP $1"; }
note() { echo "     $*" >&3; }                      # an informational line, printed even from inside a check
why()  { echo "-> $*" >>"$W/why"; : >"$W/failed"; return 1; }   # record a reason; the check fails
# check NAME CMD [ARGS...]: run CMD (its output kept in $W/why, shown on failure, indented); the
# check fails if CMD returns non-zero or called `why` anywhere
check() {
  local name=$1; shift; : >"$W/why"; rm -f "$W/failed"
  if "$@" >>"$W/why" 2>&1 && [ ! -e "$W/failed" ]; then ok "$name"; return 0; fi
  bad "$name"
  [ -s "$W/why" ] && sed 's/^/       /' "$W/why" | tail -15
  return 0
}
# e2e_summary: the closing count; the exit status says whether anything failed
e2e_summary() {
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
}

# --- processes ----------------------------------------------------------------------------------
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
# wait_gone PID TENTHS: until PID has exited, at most TENTHS tenths of a second
wait_gone() { local p=$1 n=$2; for _ in $(seq 1 "$n"); do alive "$p" || return 0; sleep 0.1; done; return 1; }
# stop_pid PID: SIGTERM, then SIGKILL after 5 s; reaps it
stop_pid() {
  local p=$1
  alive "$p" || return 0
  kill -TERM "$p" 2>/dev/null
  wait_gone "$p" 50 || kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
# stop_pids: stop_pid for every process in PIDS
stop_pids() { local p; for p in "${PIDS[@]}"; do stop_pid "$p"; done; }
umount_under() {  # unmount everything mounted below $1, deepest first
  awk -v p="$1/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
}

# --- servers --------------------------------------------------------------------------------------
# free_port [TAKEN...]: a loopback port nobody listens on, none of TAKEN (ports picked already
# for servers not started yet)
free_port() {
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null) ||
      while :; do p=$((20000 + RANDOM % 40000)); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
    [[ " $* " == *" $p "* ]] || { echo "$p"; return; }
  done
}
# wait_http URL PID [STATUS_REGEX]: until URL answers (with a status matching the regex, when
# given), while PID lives; at most 10 s
wait_http() {
  local code
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1")
    if [ "$code" != 000 ] && [[ "$code" =~ ${3:-.} ]]; then return 0; fi
    alive "$2" || return 1
    sleep 0.1
  done
  return 1
}
# berth_start BIN ADDR DATA_DIR LOG PASSWORD [NAME=VALUE...]: a Berth on ADDR (its log appended
# to LOG, the variables added to its environment), waited for until /v2/ answers; STARTED_PID
# is its process, also added to PIDS
berth_start() {
  local bin=$1 addr=$2 data=$3 log=$4 pw=$5; shift 5
  env "$@" BERTH_ADMIN_PASSWORD="$pw" NO_COLOR=1 "$bin" --listen "$addr" --data-dir "$data" >>"$log" 2>&1 &
  STARTED_PID=$!; PIDS+=("$STARTED_PID")
  wait_http "http://$addr/v2/" "$STARTED_PID"
}

# --- daemons of the test's own: containerd and dockerd on sockets under $W ------------------------
CTD_PID=""; DOCKERD_PID=""; DOCKER_REASON=""
# start_containerd: Debian's containerd on $W/ctd/sock (CTD_PID), waited for; the CRI plugin off
start_containerd() {
  mkdir -p "$W/ctd"
  cat >"$W/ctd/config.toml" <<TOML
version = 2
root = "$W/ctd/root"
state = "$W/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/ctd/sock"
[ttrpc]
  address = "$W/ctd/sock.ttrpc"
[debug]
  address = ""
TOML
  containerd --config "$W/ctd/config.toml" >"$W/ctd/log" 2>&1 &
  CTD_PID=$!
  for _ in $(seq 1 100); do
    ctr --address "$W/ctd/sock" version >/dev/null 2>&1 && return 0
    alive "$CTD_PID" || break
    sleep 0.1
  done
  why "containerd did not start: $(tail -5 "$W/ctd/log")"
}
# start_dockerd: a dockerd (${DOCKERD:-dockerd}) on $W/d/docker.sock with no networking of its
# own (DOCKERD_PID; DOCKER_HOST and DOCKER_CONFIG exported), with the words of ${DOCKERD_ARGS}
# added (e.g. --registry-mirror URL); on failure DOCKER_REASON says why
start_dockerd() {
  local dockerd=${DOCKERD:-dockerd}
  command -v "$dockerd" >/dev/null || { DOCKER_REASON="dockerd not installed ($dockerd)"; return 1; }
  command -v docker >/dev/null || { DOCKER_REASON="docker CLI not installed"; return 1; }
  mkdir -p "$W/d" "$W/dc"
  export DOCKER_HOST="unix://$W/d/docker.sock" DOCKER_CONFIG="$W/dc"
  "$dockerd" --host "unix://$W/d/docker.sock" --data-root "$W/d/root" --exec-root "$W/d/exec" --pidfile "$W/d/dockerd.pid" \
    --bridge none --iptables=false --ip6tables=false --ip-masq=false ${DOCKERD_ARGS:-} >"$W/d/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 200); do
    docker version >/dev/null 2>&1 && return 0
    alive "$DOCKERD_PID" || break
    sleep 0.1
  done
  DOCKER_REASON="dockerd did not come up: $(grep -iE 'level=(error|fatal)|failed' "$W/d/dockerd.log" | tail -1 | cut -c1-200)"
  stop_dockerd; return 1
}
# stop_dockerd: the dockerd start_dockerd started, and its containerd if it was orphaned
stop_dockerd() {
  alive "$DOCKERD_PID" || return 0
  kill -TERM "$DOCKERD_PID" 2>/dev/null
  wait_gone "$DOCKERD_PID" 200 || kill -KILL "$DOCKERD_PID" 2>/dev/null
  wait "$DOCKERD_PID" 2>/dev/null
  local f cpid
  for f in "$W"/d/exec/containerd/containerd.pid "$W"/d/exec/*/containerd.pid; do
    [ -f "$f" ] || continue
    cpid=$(cat "$f" 2>/dev/null)
    if alive "$cpid" && grep -q "$W/d" "/proc/$cpid/cmdline" 2>/dev/null; then
      kill -TERM "$cpid"; wait_gone "$cpid" 50 || kill -KILL "$cpid" 2>/dev/null
    fi
  done
  DOCKERD_PID=""
}

# --- JSON -------------------------------------------------------------------------------------------
# jget FILE EXPR: a value from a JSON file (`-` reads stdin); `d` is the document; lists and
# objects print as JSON
jget() {
  python3 -c 'import json,sys; d=json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1])); v=eval(sys.argv[2], {"d": d}); print(v if not isinstance(v, (list, dict)) else json.dumps(v))' "$@"
}
