#!/usr/bin/env bash
# Registry authentication with real clients, in both modes.
#
# Token auth off (Basic): an anonymous ping is challenged, so skopeo and podman send the
# credentials they hold and their pushes land; `podman login` refuses a wrong password;
# anonymous pulls of public content still work. Token auth on: `podman login` refuses a wrong
# password; containerd's `ctr` (Debian's containerd, started here on a private socket) pulls
# with `--user` through the OAuth2 `POST /token`, with no 405 in Berth's access log.
#
#   BERTH_BIN=target/release/berth bash tests/e2e/auth.sh
#
# Needs: skopeo, podman, curl, jq, python3; containerd and ctr for the containerd check
# (SKIPped if absent). Loopback only; everything under one `mktemp -d` folder, removed on exit
# with every process this script started. Ends with `N passed, N failed`.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BERTH_BIN=${BERTH_BIN:-$HERE/../../target/release/berth}
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init berth-auth
cleanup() {
  set +e
  stop_pid "$CTD_PID"
  stop_pids
  [ -d "$W/pstorage" ] && "${POD[@]}" rmi -a -f >/dev/null 2>&1
  umount_under "$W"
  rm -rf "$W"
}
PW=auth-admin-$RANDOM
READER_PW=auth-reader-$RANDOM
POD=(podman --root "$W/pstorage" --runroot "$W/prun" --storage-driver vfs --tmpdir "$W/podtmp" --events-backend none)
mkdir -p "$W/pstorage" "$W/prun" "$W/podtmp" "$W/tmp"
export TMPDIR="$W/tmp"
export REGISTRY_AUTH_FILE="$W/auth.json"; echo '{}' >"$REGISTRY_AUTH_FILE"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
SKOPEO=(skopeo --policy "$W/policy.json")
ANON=$W/anon.json; echo '{}' >"$ANON"
python3 "$HERE/make_oci.py" "$W/src" one="auth one" two="auth two" >/dev/null || { echo "FAIL test image"; exit 1; }

# start MODE: a Berth with token auth MODE (on|off), its access log on; sets REG, URL, LOG
start() {
  local port; port=$(free_port)
  REG=127.0.0.1:$port; URL=http://$REG; LOG=$W/berth-$1.log
  export CONTAINERS_REGISTRIES_CONF="$W/registries-$1.conf"
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$CONTAINERS_REGISTRIES_CONF"
  # on the AWS adapters each Berth gets a table, bucket and queue of its own
  local aws=()
  [ -n "${BERTH_TABLE:-}" ] && aws=(BERTH_TABLE="$BERTH_TABLE-$1" BERTH_BUCKET="$BERTH_BUCKET-$1" BERTH_QUEUE_NAME="$BERTH_QUEUE_NAME-$1")
  berth_start "$BERTH_BIN" "$REG" "$W/data-$1" "$LOG" "$PW" BERTH_TOKEN_AUTH="$1" \
    BERTH_READONLY_USERS="reader:$READER_PW" BERTH_LOG="info,berth::access=debug" "${aws[@]}"
}
# set_private NAME true|false: whether the distribution NAME (made by a push) is private
set_private() {
  local href
  href=$(curl -s -u "admin:$PW" "$URL/pulp/api/v3/distributions/container/container/?name=$1" | jq -r '.results[0].pulp_href')
  curl -s -u "admin:$PW" -X PATCH -H 'Content-Type: application/json' -d "{\"private\": $2}" "$URL$href" | grep -q task
}
# podman_login USER PASSWORD: podman's login, into the shared auth file
podman_login() { "${POD[@]}" login --tls-verify=false -u "$1" -p "$2" "$REG" >"$W/login.out" 2>&1; }

logins_check_the_password() {
  echo '{}' >"$REGISTRY_AUTH_FILE"
  if podman_login admin wrong; then why "podman login with a wrong password said: $(cat "$W/login.out")"; fi
  grep -qi 'unauthorized\|invalid' "$W/login.out" || why "wrong password answered: $(cat "$W/login.out")"
  if podman_login nobody "$PW"; then why "podman login as an unknown user succeeded"; fi
  podman_login reader "$READER_PW" || why "the reader's login failed: $(cat "$W/login.out")"
  podman_login admin "$PW" || why "the admin's login failed: $(cat "$W/login.out")"
}

# --- token auth off ------------------------------------------------------------------------------
start off || { echo "FAIL berth (token auth off) did not start"; tail -5 "$W/berth-off.log"; exit 1; }
check "basic: an anonymous GET /v2/ is challenged with Basic" bash -c '
  [ "$(curl -s -o /dev/null -w "%{http_code}" "$0/v2/")" = 401 ] || exit 1
  curl -s -D - -o /dev/null "$0/v2/" | tr -d "\r" | grep -qi "^www-authenticate: Basic realm="' "$URL"
check "basic: podman login refuses a wrong password and an unknown user, takes the right ones" logins_check_the_password
skopeo_pushes_with_creds() {
  REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --dest-tls-verify=false --dest-creds "admin:$PW" \
    "oci:$W/src:one" "docker://$REG/auth/skopeo:1" >"$W/sk.out" 2>&1 || why "skopeo push with --dest-creds failed: $(cat "$W/sk.out")"
  if REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --dest-tls-verify=false --dest-creds "reader:$READER_PW" \
    "oci:$W/src:one" "docker://$REG/auth/reader:1" >"$W/rd.out" 2>&1; then why "the reader pushed"; fi
  grep -qi 'denied\|forbidden' "$W/rd.out" || why "the reader's push said: $(cat "$W/rd.out")"
}
check "basic: skopeo pushes with --dest-creds (a read-only user is denied)" skopeo_pushes_with_creds
podman_pushes_after_login() {
  podman_login admin "$PW" || why "login failed"
  "${SKOPEO[@]}" copy -q "oci:$W/src:two" "containers-storage:[vfs@$W/pstorage+$W/prun]localhost/auth-two:2" >"$W/pl.out" 2>&1 ||
    why "the test image did not go into podman's store: $(cat "$W/pl.out")"
  "${POD[@]}" push -q --tls-verify=false localhost/auth-two:2 "$REG/auth/podman:2" >"$W/pp.out" 2>&1 ||
    why "podman push after login failed: $(cat "$W/pp.out")"
  "${POD[@]}" pull -q --tls-verify=false "$REG/auth/podman:2" >"$W/pp.out" 2>&1 || why "podman pull with the login failed: $(cat "$W/pp.out")"
}
check "basic: podman pushes after login and pulls back" podman_pushes_after_login
anonymous_pulls_public_content() {
  set_private auth/skopeo false || why "could not make auth/skopeo public"
  set_private auth/podman true || why "could not make auth/podman private"
  REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --src-tls-verify=false "docker://$REG/auth/skopeo:1" "dir:$W/anon-sk" >"$W/an.out" 2>&1 ||
    why "anonymous skopeo pull of public content failed: $(cat "$W/an.out")"
  REGISTRY_AUTH_FILE=$ANON "${POD[@]}" pull -q --tls-verify=false "$REG/auth/skopeo:1" >"$W/an.out" 2>&1 ||
    why "anonymous podman pull of public content failed: $(cat "$W/an.out")"
  if REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --src-tls-verify=false "docker://$REG/auth/podman:2" "dir:$W/anon-p" >/dev/null 2>&1; then
    why "anonymous pull of a private distribution worked"
  fi
}
check "basic: anonymous skopeo and podman pull public content, not private" anonymous_pulls_public_content
stop_pids; PIDS=()

# --- token auth on -------------------------------------------------------------------------------
start on || { echo "FAIL berth (token auth on) did not start"; tail -5 "$W/berth-on.log"; exit 1; }
check "token: podman login refuses a wrong password and an unknown user, takes the right ones" logins_check_the_password
skopeo_pushes() {
  REGISTRY_AUTH_FILE=$ANON "${SKOPEO[@]}" copy -q --dest-tls-verify=false --dest-creds "admin:$PW" \
    "oci:$W/src:one" "docker://$REG/auth/ctr:1" >"$W/sk.out" 2>&1 || why "skopeo push failed: $(cat "$W/sk.out")"
}
check "token: skopeo pushes the test image" skopeo_pushes

ctr_pulls_with_user() {
  start_containerd || return 1
  local before log
  before=$(wc -l <"$LOG")
  ctr --address "$W/ctd/sock" -n auth content fetch --plain-http --user "admin:$PW" "$REG/auth/ctr:1" >"$W/ctr.out" 2>&1 ||
    why "ctr fetch with --user failed: $(tail -5 "$W/ctr.out")"
  log=$(tail -n +"$((before + 1))" "$LOG")
  grep -q 'method=POST route=/token status=200' <<<"$log" || why "no POST /token answered 200 in the access log: $(grep token <<<"$log" | head -5)"
  if grep -q 'status=405' <<<"$log"; then why "a 405 in the access log: $(grep 'status=405' <<<"$log" | head -3)"; fi
  if grep -q 'method=GET route=/token' <<<"$log"; then why "containerd fell back to GET /token: $(grep 'route=/token' <<<"$log" | head -3)"; fi
  # a wrong password: refused on the POST (containerd then tries the GET, refused too)
  before=$(wc -l <"$LOG")
  if ctr --address "$W/ctd/sock" -n auth content fetch --plain-http --user "admin:wrong" "$REG/auth/ctr:1" >"$W/ctr-bad.out" 2>&1; then
    why "ctr fetched with a wrong password"
  fi
  log=$(tail -n +"$((before + 1))" "$LOG")
  grep -q 'method=POST route=/token status=401' <<<"$log" || why "the wrong password was not refused on the POST: $(grep token <<<"$log" | head -5)"
  if grep -q 'status=405' <<<"$log"; then why "a 405 in the access log: $(grep 'status=405' <<<"$log" | head -3)"; fi
}
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  check "token: ctr fetches with --user through POST /token, no 405, a wrong password refused" ctr_pulls_with_user
else
  skip "token: ctr (containerd not installed)"
fi
e2e_summary
