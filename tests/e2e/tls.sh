#!/usr/bin/env bash
# HTTPS with real clients, certificate verification on everywhere (no --tls-verify=false).
#
# openssl makes a CA and a server certificate (an EC key in SEC1 form) for 127.0.0.1; Berth
# serves them with --tls-cert/--tls-key, token auth on. curl gets HTTP/2 and HTTP/1.1 with an
# https token realm and is refused without the CA; a plain-HTTP request is told it reached an
# HTTPS server; skopeo pushes and pulls and podman logs in and pulls with a cert dir holding the
# CA as ca.crt (and fail without it); the pulp CLI works with the CA in REQUESTS_CA_BUNDLE. Then
# a bad replacement of the certificate is logged and not taken, a renewed certificate (an RSA
# key in PKCS#1 form) reaches new connections without a restart, and a start with a key that is
# not the certificate's fails with exit code 2.
#
#   BERTH_BIN=target/release/berth PULP_BIN=.../pulp bash tests/e2e/tls.sh
#
# Needs: openssl, curl, skopeo, podman, python3; the pulp CLI (SKIPped if absent). Loopback
# only; everything under one `mktemp -d` folder, removed on exit with every process this script
# started. Ends with `N passed, N failed`.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BERTH_BIN=${BERTH_BIN:-$HERE/../../target/release/berth}
PULP_BIN=${PULP_BIN:-pulp}
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init berth-tls
cleanup() {
  set +e
  stop_pids
  [ -d "$W/pstorage" ] && "${POD[@]}" rmi -a -f >/dev/null 2>&1
  umount_under "$W"
  rm -rf "$W"
}
PW=tls-admin-$RANDOM
POD=(podman --root "$W/pstorage" --runroot "$W/prun" --storage-driver vfs --tmpdir "$W/podtmp" --events-backend none)
mkdir -p "$W/pstorage" "$W/prun" "$W/podtmp" "$W/tmp" "$W/certs" "$W/pki" "$W/tls"
export TMPDIR="$W/tmp" XDG_CACHE_HOME="$W/cache" XDG_CONFIG_HOME="$W/config"
export REGISTRY_AUTH_FILE="$W/auth.json"; echo '{}' >"$REGISTRY_AUTH_FILE"
# no registry is insecure: every client verifies the certificate
export CONTAINERS_REGISTRIES_CONF="$W/registries.conf"; : >"$CONTAINERS_REGISTRIES_CONF"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
SKOPEO=(skopeo --policy "$W/policy.json")
CA=$W/certs/ca.crt
[ -x "$BERTH_BIN" ] || { echo "FAIL berth binary not found: $BERTH_BIN"; echo "0 passed, 1 failed"; exit 1; }
python3 "$HERE/make_oci.py" "$W/src" one="tls one" >/dev/null || { echo "FAIL test image"; exit 1; }

# --- the PKI: a CA, and server certificates it signs -------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/pki/ca.key" -out "$CA" -days 2 -subj "/CN=berth e2e CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 ||
  { echo "FAIL openssl could not make the CA"; exit 1; }
# issue KEYFILE CERTFILE: a certificate for 127.0.0.1 and localhost over the key in KEYFILE
issue() {
  openssl req -new -key "$1" -subj "/CN=127.0.0.1" -out "$W/pki/req.csr" 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$W/pki/ext" &&
    openssl x509 -req -in "$W/pki/req.csr" -CA "$CA" -CAkey "$W/pki/ca.key" -CAcreateserial -days 2 \
      -extfile "$W/pki/ext" -out "$2" 2>/dev/null
}
# an EC key as SEC1 (`EC PRIVATE KEY`)
openssl ecparam -name prime256v1 -genkey -noout -out "$W/tls/key.pem" 2>/dev/null && issue "$W/tls/key.pem" "$W/tls/cert.pem" ||
  { echo "FAIL openssl could not make the server certificate"; exit 1; }
fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
# the fingerprint of the certificate a new connection is served
served() { openssl s_client -connect "$REG" -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2; }

PORT=$(free_port)
REG=127.0.0.1:$PORT URL=https://127.0.0.1:$PORT LOG=$W/berth.log
BERTH_ADMIN_PASSWORD="$PW" NO_COLOR=1 BERTH_LOG=info "$BERTH_BIN" --listen "$REG" --data-dir "$W/data" \
  --tls-cert "$W/tls/cert.pem" --tls-key "$W/tls/key.pem" >>"$LOG" 2>&1 &
STARTED_PID=$!; PIDS+=("$STARTED_PID")
for _ in $(seq 1 100); do
  [ "$(curl -s --cacert "$CA" -o /dev/null -w '%{http_code}' "$URL/v2/")" = 401 ] && break
  alive "$STARTED_PID" || break
  sleep 0.1
done
[ "$(curl -s --cacert "$CA" -o /dev/null -w '%{http_code}' "$URL/v2/")" = 401 ] ||
  { echo "FAIL berth did not start with HTTPS"; tail -5 "$LOG"; echo "0 passed, 1 failed"; exit 1; }
echo "berth on $URL"

curl_speaks_h2_and_h1() {
  local h
  h=$(curl -s --cacert "$CA" --http2 -D - -o /dev/null "$URL/v2/" | tr -d '\r')
  echo "$h" | head -1 | grep -q '^HTTP/2 401' || why "HTTP/2: $(echo "$h" | head -1)"
  echo "$h" | grep -qi "^www-authenticate: Bearer realm=\"https://$REG/token\",service=\"$REG\"" || why "challenge: $h"
  h=$(curl -s --cacert "$CA" --http1.1 -D - -o /dev/null "$URL/v2/" | tr -d '\r')
  echo "$h" | head -1 | grep -q '^HTTP/1.1 401' || why "HTTP/1.1: $(echo "$h" | head -1)"
  echo "$h" | grep -qi "realm=\"https://$REG/token\"" || why "challenge: $h"
  curl -s -o /dev/null "$URL/v2/"; local rc=$?
  [ "$rc" = 60 ] || why "curl without the CA: exit code $rc (60: the certificate is not trusted)"
}
check "curl trusting the CA gets HTTP/2 and HTTP/1.1 with an https realm; without the CA it is refused" curl_speaks_h2_and_h1

plain_http_is_told() {
  local out
  out=$(curl -s -w ' %{http_code}' "http://$REG/v2/")
  [ "$out" = "Client sent an HTTP request to an HTTPS server.
 400" ] || why "plain HTTP got: $out"
}
check "a plain-HTTP request on the HTTPS port is answered 400 and told why" plain_http_is_told

skopeo_pushes_and_pulls() {
  "${SKOPEO[@]}" copy -q --dest-cert-dir "$W/certs" --dest-creds "admin:$PW" "oci:$W/src:one" "docker://$REG/tls/img:1" \
    >"$W/sk.out" 2>&1 || why "skopeo push with --dest-cert-dir: $(cat "$W/sk.out")"
  "${SKOPEO[@]}" copy -q --src-cert-dir "$W/certs" --src-creds "admin:$PW" "docker://$REG/tls/img:1" "dir:$W/pulled" \
    >"$W/sk.out" 2>&1 || why "skopeo pull with --src-cert-dir: $(cat "$W/sk.out")"
  [ -s "$W/pulled/manifest.json" ] || why "nothing pulled"
  if "${SKOPEO[@]}" copy -q --src-creds "admin:$PW" "docker://$REG/tls/img:1" "dir:$W/untrusted" >"$W/sk.out" 2>&1; then
    why "skopeo pulled without the CA"
  fi
  grep -qi 'x509\|certificate' "$W/sk.out" || why "skopeo without the CA said: $(cat "$W/sk.out")"
}
check "skopeo pushes (--dest-cert-dir) and pulls (--src-cert-dir) with token auth; without the CA it fails" skopeo_pushes_and_pulls

podman_logs_in_and_pulls() {
  "${POD[@]}" login --cert-dir "$W/certs" -u admin -p "$PW" "$REG" >"$W/pod.out" 2>&1 || why "podman login: $(cat "$W/pod.out")"
  "${POD[@]}" pull -q --cert-dir "$W/certs" "$REG/tls/img:1" >"$W/pod.out" 2>&1 || why "podman pull: $(cat "$W/pod.out")"
  "${POD[@]}" image exists "$REG/tls/img:1" || why "the pulled image is not in podman's store"
  if "${POD[@]}" pull -q "$REG/tls/img:1" >"$W/pod.out" 2>&1; then why "podman pulled without the CA"; fi
  grep -qi 'x509\|certificate' "$W/pod.out" || why "podman without the CA said: $(cat "$W/pod.out")"
}
check "podman logs in and pulls with --cert-dir; without the CA it fails" podman_logs_in_and_pulls

pulp_cli_over_https() {
  REQUESTS_CA_BUNDLE=$CA "$PULP_BIN" --base-url "$URL" --username admin --password "$PW" \
    container distribution list --name tls/img >"$W/pulp.out" 2>&1 || why "pulp with the CA: $(cat "$W/pulp.out")"
  grep -q "\"registry_path\": \"$REG/tls/img\"" "$W/pulp.out" || why "the distribution: $(cat "$W/pulp.out")"
  REQUESTS_CA_BUNDLE=$CA "$PULP_BIN" --base-url "$URL" --username admin --password "$PW" status >"$W/pulp.out" 2>&1 ||
    why "pulp status: $(cat "$W/pulp.out")"
  grep -q "\"content_origin\": \"$URL\"" "$W/pulp.out" || why "content_origin: $(grep content_origin "$W/pulp.out")"
  if XDG_CACHE_HOME=$W/cache-untrusted "$PULP_BIN" --base-url "$URL" --username admin --password "$PW" status >"$W/pulp.out" 2>&1; then
    why "pulp worked without the CA"
  fi
  grep -qi 'certificate\|ssl' "$W/pulp.out" || why "pulp without the CA said: $(cat "$W/pulp.out")"
}
if command -v "$PULP_BIN" >/dev/null; then
  check "the pulp CLI works over HTTPS with the CA in REQUESTS_CA_BUNDLE; without it it fails" pulp_cli_over_https
else
  skip "the pulp CLI over HTTPS (pulp CLI not found: $PULP_BIN)"
fi

# replace FILE SOURCE: FILE becomes SOURCE's contents at once, as certificate renewers do it
replace() { cp "$2" "$1.new" && mv "$1.new" "$1"; }
a_bad_replacement_is_not_taken() {
  local before; before=$(served)
  [ "$before" = "$(fingerprint "$W/tls/cert.pem")" ] || why "served $before"
  cp "$W/tls/cert.pem" "$W/pki/good-cert.pem"
  echo "not a certificate" >"$W/pki/bad.pem"
  replace "$W/tls/cert.pem" "$W/pki/bad.pem"
  for _ in $(seq 1 100); do grep -q 'do not load' "$LOG" && break; sleep 0.1; done
  grep -q 'do not load.*no certificate in it\|no certificate in it.*do not load' "$LOG" || why "no warning in the log: $(tail -3 "$LOG")"
  [ "$(served)" = "$before" ] || why "another certificate is served"
  "${SKOPEO[@]}" copy -q --src-cert-dir "$W/certs" --src-creds "admin:$PW" "docker://$REG/tls/img:1" "dir:$W/pulled-bad" \
    >"$W/sk.out" 2>&1 || why "skopeo pull after the bad replacement: $(cat "$W/sk.out")"
}
check "a bad replacement of the certificate is logged and the one in use kept" a_bad_replacement_is_not_taken

a_renewed_certificate_is_served_without_a_restart() {
  # an RSA key as PKCS#1 (`RSA PRIVATE KEY`)
  openssl genrsa -traditional -out "$W/pki/new-key.pem" 2048 2>/dev/null && issue "$W/pki/new-key.pem" "$W/pki/new-cert.pem" ||
    { why "openssl could not renew"; return; }
  local want t0=$SECONDS; want=$(fingerprint "$W/pki/new-cert.pem")
  replace "$W/tls/key.pem" "$W/pki/new-key.pem"
  replace "$W/tls/cert.pem" "$W/pki/new-cert.pem"
  for _ in $(seq 1 100); do [ "$(served)" = "$want" ] && break; sleep 0.1; done
  [ "$(served)" = "$want" ] || why "still served: $(served)"
  note "new connections got the renewed certificate after $((SECONDS - t0)) s"
  grep -q 'the TLS certificate changed' "$LOG" || why "no line in the log"
  alive "$STARTED_PID" || why "berth stopped"
  "${POD[@]}" rmi -f "$REG/tls/img:1" >/dev/null 2>&1
  "${POD[@]}" pull -q --cert-dir "$W/certs" "$REG/tls/img:1" >"$W/pod.out" 2>&1 || why "podman pull after renewal: $(cat "$W/pod.out")"
}
check "a renewed certificate (RSA key) reaches new connections without a restart" a_renewed_certificate_is_served_without_a_restart

a_bad_pair_stops_the_start() {
  local rc
  BERTH_ADMIN_PASSWORD="$PW" "$BERTH_BIN" --listen "127.0.0.1:$(free_port "$PORT")" --data-dir "$W/data2" \
    --tls-cert "$W/tls/cert.pem" --tls-key "$W/pki/ca.key" >"$W/bad-start.out" 2>&1
  rc=$?
  [ "$rc" = 2 ] || why "exit code $rc: $(cat "$W/bad-start.out")"
  grep -q "ca.key is not the key of the first certificate in .*cert.pem" "$W/bad-start.out" || why "said: $(cat "$W/bad-start.out")"
}
check "a start with a key that is not the certificate's fails with exit code 2 and says so" a_bad_pair_stops_the_start

e2e_summary
