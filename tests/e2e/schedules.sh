#!/usr/bin/env bash
# End-to-end test of schedules: a sync every 5 s from a real upstream (Debian's docker-registry)
# that changes between runs, made with the unmodified `pulp` CLI (`pulp debug openapi call`,
# pulp-cli has no schedule command). New versions appear with what was pushed upstream; no two
# runs of the schedule overlap; a server stopped for longer than two intervals fires the
# schedule once when it starts again, not once per missed slot.
#
#   BERTH_BIN=target/release/berth PULP_BIN=.../pulp bash tests/e2e/schedules.sh
#
# The Berth under test takes its backend from the environment (BERTH_BACKEND=aws with its
# bucket, table and queue runs it on the AWS adapters). Needs: docker-registry, skopeo, curl,
# python3. Loopback only, free ports, everything under one `mktemp -d` folder, removed on exit
# with every process this script started. Prints `OK   name` / `FAIL name` lines and ends with
# `N passed, N failed`.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BERTH_BIN=${BERTH_BIN:-$HERE/../../target/release/berth}
PULP_BIN=${PULP_BIN:-pulp}
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init berth-schedules-e2e
cleanup() {
  set +e
  stop_pids
  rm -rf "$W"
}

missing=""
for b in docker-registry skopeo curl python3; do command -v "$b" >/dev/null || missing="$missing $b"; done
[ -x "$BERTH_BIN" ] || missing="$missing berth($BERTH_BIN)"
command -v "$PULP_BIN" >/dev/null || missing="$missing pulp($PULP_BIN)"
if [ -n "$missing" ]; then echo "FAIL missing:$missing"; echo "0 passed, 1 failed"; exit 1; fi

export XDG_CACHE_HOME=$W/cache XDG_CONFIG_HOME=$W/config TMPDIR=$W
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"

# the upstream: a docker-registry with v1 of up/app
UP=$(free_port)
mkdir -p "$W/up"
cat >"$W/up/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/up/data
http:
  addr: 127.0.0.1:$UP
EOF
env -u REGISTRY_AUTH_FILE docker-registry serve "$W/up/config.yml" >"$W/up/log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
wait_http "http://127.0.0.1:$UP/v2/" "$UP_PID" || { echo "FAIL the upstream did not start"; echo "0 passed, 1 failed"; exit 1; }
python3 "$HERE/make_oci.py" "$W/img" v1="first" v2="second" >/dev/null
upstream_push() {
  skopeo --policy "$W/policy.json" copy -q --dest-tls-verify=false "oci:$W/img:$1" "docker://127.0.0.1:$UP/up/app:$1"
}
check "the upstream holds v1" upstream_push v1

PORT=$(free_port)
PW=e2e-sched-$RANDOM-$RANDOM
P=("$PULP_BIN" --base-url "http://127.0.0.1:$PORT" --username admin --password "$PW")
pulp() { "${P[@]}" "$@"; }
start() { berth_start "$BERTH_BIN" "127.0.0.1:$PORT" "$W/data" "$W/berth.log" "$PW"; BERTH_PID=$STARTED_PID; }
start || { echo "FAIL berth did not start: $(tail -3 "$W/berth.log")"; echo "0 passed, 1 failed"; exit 1; }

href_of() { pulp "$@" | jget - 'd["pulp_href"]'; }
setup() {
  pulp container repository create --name mirror >/dev/null &&
    pulp container remote create --name up --url "http://127.0.0.1:$UP" --upstream-name up/app >/dev/null &&
    REPO=$(href_of container repository show --name mirror) && REMOTE=$(href_of container remote show --name up)
}
check "repository and remote" setup

t_create() {
  pulp debug openapi call --id task_schedules_create \
    --body "{\"name\": \"every-5s\", \"repository\": \"$REPO\", \"remote\": \"$REMOTE\", \"dispatch_interval\": \"00:00:05\"}" \
    >"$W/schedule.json" || return 1
  SCHED=$(jget "$W/schedule.json" 'd["pulp_href"]') &&
    [ "$(jget "$W/schedule.json" 'd["dispatch_interval"]')" = 00:00:05 ] &&
    [ "$(jget "$W/schedule.json" 'd["task_name"]')" = pulp_container.app.tasks.synchronize.synchronize ]
}
check "a schedule every 5 s (pulp debug openapi call)" t_create
t_list() {
  pulp debug openapi call --id task_schedules_list --parameter name=every-5s >"$W/list.json" &&
    [ "$(jget "$W/list.json" 'd["count"]')" = 1 ]
}
check "the schedule is listed" t_list

# the schedule's sync tasks, as "started finished state" lines in start order
TASK=pulp_container.app.tasks.synchronize.synchronize
sync_tasks() {
  pulp task list --name "$TASK" --limit 100 |
    jget - '"\n".join(sorted(" ".join([str(t["started_at"]), str(t["finished_at"]), t["state"]]) for t in d))'
}
# wait_version N: until the repository has version N with what the sync found (at most 20 s)
wait_version() {
  for _ in $(seq 1 100); do
    pulp container repository version show --repository mirror --version "$1" >"$W/v$1.json" 2>/dev/null && return 0
    sleep 0.2
  done
  why "no version $1 after 20 s; tasks: $(sync_tasks | tr '\n' ';')"
}
tags_in() {
  pulp container content -t tag list --repository-version "$(jget "$W/v$1.json" 'd["pulp_href"]')" |
    jget - '",".join(sorted(t["name"] for t in d))'
}
t_first() { wait_version 1 && [ "$(tags_in 1)" = v1 ] || why "version 1 holds $(tags_in 1)"; }
check "the schedule syncs: version 1 holds v1" t_first

check "the upstream changes: v2 pushed" upstream_push v2
t_second() { wait_version 2 && [ "$(tags_in 2)" = v1,v2 ] || why "version 2 holds $(tags_in 2)"; }
check "the next run sees it: version 2 holds v1 and v2" t_second

# no two runs overlapped: each started after the one before finished
t_no_overlap() {
  sync_tasks >"$W/tasks.txt"
  python3 - "$W/tasks.txt" <<'PY' || return 1
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
done = [r for r in rows if r[1] != "None"]
assert len(done) >= 2, rows
for a, b in zip(done, done[1:]):
    assert a[1] <= b[0], f"{a} overlaps {b}"
PY
}
check "no two runs of the schedule overlap" t_no_overlap

# stopped for 12 s (two slots and more missed), then started again: the overdue schedule fires
# once at start, then keeps its 5 s pace (its phase too); no run for each missed slot. In the
# 4 s after the start that is one run, or two when a slot of its pace falls in them (a catch-up
# of the missed slots would make three or more)
utc_now() { python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).isoformat())'; }
t_resume() {
  local first; first=$(jget "$W/schedule.json" 'd["next_dispatch"]')
  stop_pid "$BERTH_PID"
  sleep 12
  local restart; restart=$(utc_now)
  start || return 1
  sleep 4
  local until; until=$(utc_now)
  pulp debug openapi call --id task_schedules_read --parameter "task_schedule_href=$SCHED" >"$W/s.json" &&
    pulp task list --name "$TASK" --limit 100 >"$W/all.json" || return 1
  python3 - "$W/all.json" "$restart" "$until" "$first" "$(jget "$W/s.json" 'd["next_dispatch"]')" <<'PY'
import datetime, json, sys
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
tasks, restart, until, first, nxt = json.load(open(sys.argv[1])), *(ts(a) for a in sys.argv[2:6])
runs = sorted(t["pulp_created"] for t in tasks if restart <= ts(t["pulp_created"]) < until)
assert 1 <= len(runs) <= 2, f"{len(runs)} runs in the 4 s after the restart: {runs}"
assert nxt > restart, f"the next slot {nxt} is not after the restart {restart}"
assert (nxt - first).total_seconds() % 5 == 0, f"the next slot {nxt} left the pace of {first}"
PY
}
check "a restart after missed slots fires once, not once per slot" t_resume

t_disable() {
  pulp debug openapi call --id task_schedules_partial_update --parameter "task_schedule_href=$SCHED" \
    --body '{"enabled": false}' >"$W/off.json" && [ "$(jget "$W/off.json" 'd["next_dispatch"]')" = None ] || return 1
  sleep 1
  local n; n=$(sync_tasks | wc -l)
  sleep 6
  [ "$(sync_tasks | wc -l)" = "$n" ] || why "a disabled schedule fired"
}
check "a disabled schedule fires nothing" t_disable
check "the schedule is removed" pulp debug openapi call --id task_schedules_delete --parameter "task_schedule_href=$SCHED"

e2e_summary
