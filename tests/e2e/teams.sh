#!/usr/bin/env bash
# Teams and access end to end: the unmodified `pulp` CLI makes users, a group and roles on
# namespaces; real clients push and pull as those users, in both registry auth modes.
#
# Token auth on: alice owns namespace team-a and pushes there with podman and docker (a dockerd
# started here), not to team-b; she makes her image private with her own CLI; bob, a consumer
# of team-a through his group, pulls it with podman and containerd's `ctr --user` (no 405) and
# cannot push; bob sees team-a and not team-b in `_catalog` and in `pulp container
# distribution list`; out of the group he pulls nothing private; a deleted user cannot log in.
# Token auth off (Basic): the same roles, with skopeo and podman pushing with Basic credentials.
#
#   BERTH_BIN=target/release/berth PULP_BIN=.../pulp bash tests/e2e/teams.sh
#
# Needs: the pulp CLI, skopeo, podman, curl, jq, python3; dockerd/docker and containerd/ctr
# for their checks (SKIPped if absent). Loopback only; everything under one `mktemp -d` folder,
# removed on exit with every process this script started. Ends with `N passed, N failed`.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BERTH_BIN=${BERTH_BIN:-$HERE/../../target/release/berth}
PULP_BIN=${PULP_BIN:-pulp}
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init berth-teams
cleanup() {
  set +e
  stop_dockerd
  stop_pid "$CTD_PID"
  stop_pids
  [ -d "$W/pstorage" ] && "${POD[@]}" rmi -a -f >/dev/null 2>&1
  umount_under "$W"
  rm -rf "$W"
}
PW=teams-admin-$RANDOM
ALICE_PW=wonderland-$RANDOM
BOB_PW=builder-$RANDOM
POD=(podman --root "$W/pstorage" --runroot "$W/prun" --storage-driver vfs --tmpdir "$W/podtmp" --events-backend none)
mkdir -p "$W/pstorage" "$W/prun" "$W/podtmp" "$W/tmp"
export TMPDIR="$W/tmp" XDG_CACHE_HOME=$W/cache XDG_CONFIG_HOME=$W/config
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
SKOPEO=(skopeo --policy "$W/policy.json")
ANON=$W/anon.json; echo '{}' >"$ANON"
[ -x "$BERTH_BIN" ] || { echo "FAIL berth binary not found: $BERTH_BIN"; echo "0 passed, 1 failed"; exit 1; }
command -v "$PULP_BIN" >/dev/null || { echo "FAIL pulp CLI not found: $PULP_BIN"; echo "0 passed, 1 failed"; exit 1; }
python3 "$HERE/make_oci.py" "$W/src" one="team one" two="team two" >/dev/null || { echo "FAIL test image"; exit 1; }

# start MODE: a Berth with token auth MODE (on|off); sets REG, URL, LOG
start() {
  local port; port=$(free_port)
  REG=127.0.0.1:$port; URL=http://$REG; LOG=$W/berth-$1.log
  export CONTAINERS_REGISTRIES_CONF="$W/registries-$1.conf"
  export REGISTRY_AUTH_FILE="$W/auth-$1.json"; echo '{}' >"$REGISTRY_AUTH_FILE"
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$CONTAINERS_REGISTRIES_CONF"
  local aws=()
  [ -n "${BERTH_TABLE:-}" ] && aws=(BERTH_TABLE="$BERTH_TABLE-$1" BERTH_BUCKET="$BERTH_BUCKET-$1" BERTH_QUEUE_NAME="$BERTH_QUEUE_NAME-$1")
  berth_start "$BERTH_BIN" "$REG" "$W/data-$1" "$LOG" "$PW" BERTH_TOKEN_AUTH="$1" \
    BERTH_LOG="info,berth::access=debug" "${aws[@]}"
}
# as USER PASSWORD ARGS...: the pulp CLI as that user, its JSON into $W/out.json
as() { local u=$1 p=$2; shift 2; "$PULP_BIN" --base-url "$URL" --username "$u" --password "$p" "$@" >"$W/out.json" 2>"$W/err.txt"; }
admin() { as admin "$PW" "$@"; }
has() { grep -q -- "$1" "$W/out.json"; }
# login USER PASSWORD: podman's login into this mode's auth file
login() { "${POD[@]}" login --tls-verify=false -u "$1" -p "$2" "$REG" >"$W/login.out" 2>&1; }
# push_as USER PASSWORD SRC_TAG DEST: skopeo copies the test image with these credentials
push_as() {
  REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --dest-tls-verify=false --dest-creds "$1:$2" \
    "oci:$W/src:$3" "docker://$REG/$4" >"$W/push.out" 2>&1
}
pull_as() {
  REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --src-tls-verify=false --src-creds "$1:$2" \
    "docker://$REG/$3" "dir:$W/pulled-$RANDOM" >"$W/pull.out" 2>&1
}
# catalog USER PASSWORD [MODE]: what _catalog lists for that user, one name per line
catalog() {
  if [ "$3" = on ]; then
    local tok
    tok=$(curl -s -u "$1:$2" "$URL/token?service=$REG&scope=registry:catalog:*" | jq -r .token)
    curl -s -H "Authorization: Bearer $tok" "$URL/v2/_catalog" | jq -r '.repositories[]'
  else
    curl -s -u "$1:$2" "$URL/v2/_catalog" | jq -r '.repositories[]'
  fi
}

teams_with_the_cli() {
  admin user create --username alice --password "$ALICE_PW" --email alice@example.com || why "user create alice: $(cat "$W/err.txt")"
  has '"username": "alice"' || why "user create printed $(head -c 300 "$W/out.json")"
  if has password_hash || has "$ALICE_PW"; then why "the password came back"; fi
  admin user create --username bob --password "$BOB_PW" || why "user create bob: $(cat "$W/err.txt")"
  admin group create --name team-a-readers || why "group create: $(cat "$W/err.txt")"
  admin group user add --group team-a-readers --username bob || why "group user add: $(cat "$W/err.txt")"
  admin group user list --group team-a-readers && has '"username": "bob"' || why "group user list: $(cat "$W/out.json" "$W/err.txt")"
  admin user show --username bob && has team-a-readers || why "bob's groups: $(head -c 400 "$W/out.json")"
  admin container namespace create --name team-a || why "namespace create: $(cat "$W/err.txt")"
  admin container namespace create --name team-b || why "namespace create team-b: $(cat "$W/err.txt")"
  admin container namespace role add --name team-a --role container.containernamespace_owner --user alice ||
    why "namespace role add (owner): $(cat "$W/err.txt")"
  admin container namespace role add --name team-a --role container.containernamespace_consumer --group team-a-readers ||
    why "namespace role add (consumer): $(cat "$W/err.txt")"
  admin container namespace role list --name team-a && has alice && has team-a-readers || why "role list: $(cat "$W/out.json")"
  admin user role-assignment list --username alice && has container.containernamespace_owner && has pulp_container/namespaces ||
    why "role-assignment list: $(cat "$W/out.json" "$W/err.txt")"
  admin role show --name container.containernamespace_consumer && has namespace_pull_containerdistribution ||
    why "role show: $(cat "$W/out.json" "$W/err.txt")"
  # a global role given and taken back; a user changed
  admin user role-assignment add --username bob --role container.containerremote_creator --object "" ||
    why "role-assignment add: $(cat "$W/err.txt")"
  admin user role-assignment list --username bob && has container.containerremote_creator || why "not listed: $(cat "$W/out.json")"
  admin user role-assignment remove --username bob --role container.containerremote_creator --object "" ||
    why "role-assignment remove: $(cat "$W/err.txt")"
  admin user role-assignment list --username bob && ! has container.containerremote_creator || why "still listed: $(cat "$W/out.json")"
  admin user update --username alice --first-name Alice || why "user update: $(cat "$W/err.txt")"
  admin user show --username alice && has '"first_name": "Alice"' || why "user show: $(cat "$W/out.json")"
  # what does not exist is refused with Pulp's words
  if admin container namespace role add --name team-a --role container.nope --user bob; then why "an unknown role was given"; fi
  grep -q 'does not exist' "$W/out.json" "$W/err.txt" || why "unknown role said: $(cat "$W/out.json" "$W/err.txt")"
}
alice_pushes_to_her_namespace_only() {
  push_as alice "$ALICE_PW" one team-a/app:1 || why "alice's push to team-a: $(cat "$W/push.out")"
  if push_as alice "$ALICE_PW" one team-b/app:1; then why "alice pushed to team-b"; fi
  grep -qi 'denied\|unauthorized\|forbidden' "$W/push.out" || why "alice's push to team-b said: $(cat "$W/push.out")"
  login alice "$ALICE_PW" || why "alice's podman login: $(cat "$W/login.out")"
  "${SKOPEO[@]}" copy -q "oci:$W/src:two" "containers-storage:[vfs@$W/pstorage+$W/prun]localhost/team-two:2" >"$W/cp.out" 2>&1 ||
    why "the test image did not go into podman's store: $(cat "$W/cp.out")"
  "${POD[@]}" push -q --tls-verify=false localhost/team-two:2 "$REG/team-a/app:2" >"$W/pp.out" 2>&1 ||
    why "alice's podman push: $(cat "$W/pp.out")"
  if "${POD[@]}" push -q --tls-verify=false localhost/team-two:2 "$REG/team-b/app:2" >"$W/pp.out" 2>&1; then
    why "alice's podman push to team-b landed"
  fi
  # the admin fills team-b, private
  push_as admin "$PW" one team-b/app:1 || why "the admin's push to team-b: $(cat "$W/push.out")"
  admin container distribution update --name team-b/app --private || why "team-b private: $(cat "$W/err.txt")"
}
alice_makes_her_image_private() {
  as alice "$ALICE_PW" container distribution update --name team-a/app --private || why "alice's update: $(cat "$W/err.txt")"
  as alice "$ALICE_PW" container distribution show --name team-a/app && has '"private": true' || why "not private: $(cat "$W/out.json")"
  # she cannot see team-b's private distribution at all
  if as alice "$ALICE_PW" container distribution show --name team-b/app; then why "alice sees team-b/app: $(cat "$W/out.json")"; fi
}
bob_pulls_and_cannot_push() {
  pull_as bob "$BOB_PW" team-a/app:1 || why "bob's pull of the private image: $(cat "$W/pull.out")"
  login bob "$BOB_PW" || why "bob's podman login: $(cat "$W/login.out")"
  "${POD[@]}" pull -q --tls-verify=false "$REG/team-a/app:2" >"$W/bp.out" 2>&1 || why "bob's podman pull: $(cat "$W/bp.out")"
  if push_as bob "$BOB_PW" two team-a/app:3; then why "bob pushed to team-a"; fi
  if pull_as bob "$BOB_PW" team-b/app:1; then why "bob pulled team-b"; fi
  if REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --src-tls-verify=false "docker://$REG/team-a/app:1" "dir:$W/anon" >/dev/null 2>&1; then
    why "an anonymous pull of the private image worked"
  fi
}
bob_sees_team_a_only() {
  local mode=$1 seen
  seen=$(catalog bob "$BOB_PW" "$mode" | tr '\n' ' ')
  [ "$seen" = "team-a/app " ] || why "bob's catalog: '$seen'"
  seen=$(catalog admin "$PW" "$mode" | tr '\n' ' ')
  [[ "$seen" == *team-b/app* ]] || why "the admin's catalog: '$seen'"
  as bob "$BOB_PW" container distribution list || why "bob's distribution list: $(cat "$W/err.txt")"
  has team-a/app || why "bob's list lacks team-a/app: $(cat "$W/out.json")"
  if has team-b; then why "bob's list shows team-b: $(cat "$W/out.json")"; fi
  as bob "$BOB_PW" container namespace list || why "bob's namespace list: $(cat "$W/err.txt")"
  if has '"name": "team-b"'; then why "bob's namespace list shows team-b"; fi
  # bob cannot give himself more
  if as bob "$BOB_PW" container namespace role add --name team-a --role container.containernamespace_owner --user bob; then
    why "bob made himself an owner"
  fi
  if as bob "$BOB_PW" user role-assignment add --username bob --role container.containernamespace_creator --object ""; then
    why "bob gave himself the creator role"
  fi
}
out_of_the_group_bob_pulls_nothing_private() {
  admin group user remove --group team-a-readers --username bob || why "group user remove: $(cat "$W/err.txt")"
  if pull_as bob "$BOB_PW" team-a/app:1; then why "bob still pulls after leaving the group"; fi
  [ -z "$(catalog bob "$BOB_PW" "$1")" ] || why "bob's catalog after leaving: $(catalog bob "$BOB_PW" "$1")"
}
a_deleted_user_cannot_log_in() {
  admin user destroy --username bob || why "user destroy: $(cat "$W/err.txt")"
  if login bob "$BOB_PW"; then why "a deleted user logged in"; fi
  if as bob "$BOB_PW" container distribution list; then why "a deleted user used the API"; fi
}

alice_pushes_with_docker() {
  printf '%s' "$ALICE_PW" | docker login -u alice --password-stdin "$REG" >"$W/dl.out" 2>&1 || why "docker login: $(cat "$W/dl.out")"
  docker pull -q "$REG/team-a/app:1" >"$W/dp.out" 2>&1 || why "alice's docker pull: $(cat "$W/dp.out")"
  docker tag "$REG/team-a/app:1" "$REG/team-a/app:docker" || why "docker tag"
  docker push "$REG/team-a/app:docker" >"$W/dp.out" 2>&1 || why "alice's docker push: $(cat "$W/dp.out")"
  docker tag "$REG/team-a/app:1" "$REG/team-b/app:docker" || why "docker tag"
  if docker push "$REG/team-b/app:docker" >"$W/dp.out" 2>&1; then why "alice's docker push to team-b landed"; fi
  docker rmi -f "$REG/team-a/app:1" "$REG/team-a/app:docker" "$REG/team-b/app:docker" >/dev/null 2>&1
}
bob_pulls_with_ctr() {
  start_containerd || return 1
  local before log
  before=$(wc -l <"$LOG")
  ctr --address "$W/ctd/sock" -n teams content fetch --plain-http --user "bob:$BOB_PW" "$REG/team-a/app:1" >"$W/ctr.out" 2>&1 ||
    why "ctr fetch as bob: $(tail -5 "$W/ctr.out")"
  log=$(tail -n +"$((before + 1))" "$LOG")
  if grep -q 'status=405' <<<"$log"; then why "a 405 in the access log: $(grep 'status=405' <<<"$log" | head -3)"; fi
  if ctr --address "$W/ctd/sock" -n teams content fetch --plain-http --user "bob:$BOB_PW" "$REG/team-b/app:1" >"$W/ctr.out" 2>&1; then
    why "ctr fetched team-b as bob"
  fi
  stop_pid "$CTD_PID"; CTD_PID=""
}

# --- token auth on -------------------------------------------------------------------------------
start on || { echo "FAIL berth (token auth on) did not start"; tail -5 "$W/berth-on.log"; exit 1; }
check "token: the pulp CLI makes users, a group, namespaces and roles" teams_with_the_cli
check "token: alice pushes to team-a with skopeo and podman, not to team-b" alice_pushes_to_her_namespace_only
check "token: alice makes her image private with her own CLI; team-b's is hidden from her" alice_makes_her_image_private
if start_dockerd; then
  check "token: alice pushes to team-a with docker, not to team-b" alice_pushes_with_docker
  stop_dockerd; unset DOCKER_HOST DOCKER_CONFIG; umount_under "$W/d"
else
  skip "token: docker: $DOCKER_REASON"
fi
check "token: bob (a consumer through his group) pulls the private image with skopeo and podman, pushes nothing" bob_pulls_and_cannot_push
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  check "token: bob pulls with ctr --user (no 405), not team-b" bob_pulls_with_ctr
else
  skip "token: ctr (containerd not installed)"
fi
check "token: bob sees team-a and not team-b in _catalog and the CLI's lists, and cannot give himself roles" bob_sees_team_a_only on
check "token: out of the group, bob pulls nothing private" out_of_the_group_bob_pulls_nothing_private on
check "token: a deleted user cannot log in" a_deleted_user_cannot_log_in
stop_pids; PIDS=()

# --- token auth off (Basic) ----------------------------------------------------------------------
start off || { echo "FAIL berth (token auth off) did not start"; tail -5 "$W/berth-off.log"; exit 1; }
rm -rf "$W/cache"   # another Berth on another port: the CLI reads its API document afresh
check "basic: the pulp CLI makes users, a group, namespaces and roles" teams_with_the_cli
check "basic: alice pushes to team-a with skopeo and podman (Basic credentials), not to team-b" alice_pushes_to_her_namespace_only
check "basic: alice makes her image private with her own CLI" alice_makes_her_image_private
check "basic: bob pulls the private image with skopeo and podman, pushes nothing" bob_pulls_and_cannot_push
check "basic: bob sees team-a and not team-b in _catalog and the CLI's lists" bob_sees_team_a_only off
check "basic: out of the group, bob pulls nothing private" out_of_the_group_bob_pulls_nothing_private off
check "basic: a deleted user cannot log in" a_deleted_user_cannot_log_in
e2e_summary
