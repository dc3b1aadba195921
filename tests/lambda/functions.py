#!/usr/bin/env python3
"""The three Lambda function binaries under a Lambda Runtime API emulator (runtime_api.py),
on S3, DynamoDB and SQS of a moto server: API Gateway HTTP API (2.0) events to `berth-registry`
and `berth-api`, an SQS batch to `berth-sync-worker`. Reports each binary's size and its
start-up time to the first handled request.

    BERTH_TEST_MOTO=http://127.0.0.1:PORT python3 tests/lambda/functions.py [TARGET_DIR]

TARGET_DIR holds the release binaries berth, berth-api, berth-registry, berth-sync-worker
(default target/release). With BERTH_FN_DIR set, the functions are taken from there in
cargo-lambda's layout (<function>/bootstrap), run through BERTH_FN_RUNNER when set (e.g.
`qemu-aarch64` for arm64 builds; `berth` still comes from TARGET_DIR). Ends with
`N passed, N failed`.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from lambdatest import (AWS_ENV, HOST, MOTO, PROCS, PW, SUFFIX, W, basic, check, create_resources, free_port, ok,
                        summary)

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "target", "release"))
FN_DIR = os.environ.get("BERTH_FN_DIR")
RUNNER = os.environ.get("BERTH_FN_RUNNER", "").split()


def function_path(name):
    return os.path.join(FN_DIR, name, "bootstrap") if FN_DIR else os.path.join(BIN, name)


def invoke(binary, events, queue_url=None, **extra_env):
    """Runs BINARY under the runtime emulator for EVENTS; returns the emulator's record."""
    port = free_port()
    evf, outf = os.path.join(W, "events.json"), os.path.join(W, "out.json")
    json.dump(events, open(evf, "w"))
    api = subprocess.Popen([sys.executable, os.path.join(HERE, "runtime_api.py"), str(port), evf, outf])
    PROCS.append(api)
    time.sleep(0.3)
    env = dict(os.environ, **AWS_ENV, **extra_env, BERTH_QUEUE_URL=queue_url or QUEUE_URL, BERTH_ADMIN_PASSWORD=PW,
               BERTH_TOKEN_KEY_SEED="seed-" + SUFFIX, BERTH_FIELD_KEY_SEED="field-" + SUFFIX,
               AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
               AWS_LAMBDA_FUNCTION_NAME=binary, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="s", AWS_LAMBDA_LOG_GROUP_NAME="g")
    env["BERTH_LOG"] = "info"  # the access log, checked below
    t0 = time.monotonic()
    started = time.time()
    fn = subprocess.Popen(RUNNER + [function_path(binary)], env=env, stdout=open(os.path.join(W, binary + ".log"), "a"),
                          stderr=subprocess.STDOUT)
    PROCS.append(fn)
    api.wait(150)
    fn.terminate()
    fn.wait(10)
    out = json.load(open(outf))
    out["wall_ms"] = round((time.monotonic() - t0) * 1000, 1)
    # start-up: process start → first request for work; first handled: → first response
    out["init_ms"] = round((out["first_next_epoch"] - started) * 1000, 1) if out.get("first_next_epoch") else None
    out["first_ms"] = round((out["results"][0]["epoch"] - started) * 1000, 1) if out["results"] and "epoch" in out["results"][0] else None
    return out


def http_event(method, path, query="", headers=None, body=None):
    h = {"host": HOST}
    h.update(headers or {})
    return {
        "version": "2.0", "routeKey": f"ANY {path}", "rawPath": path, "rawQueryString": query, "headers": h,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": HOST, "domainPrefix": "reg",
            "requestId": "r", "routeKey": f"ANY {path}", "stage": "$default", "time": "27/Nov/2026:16:00:00 +0000",
            "timeEpoch": 1795000000000,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
        },
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def resp(out, i):
    r = out["results"][i]
    if r["status"] != "response":
        return None
    return r["body"]


def header(r, name):
    for k, v in (r.get("headers") or {}).items():
        if k.lower() == name:
            return v
    return None


def pull_through():
    """A pull-through cache of a docker-registry serving blobs itself and of one redirecting
    blob GETs elsewhere (as registries on a CDN or object store do): the registry function
    answers the first with 503 + Retry-After and queues the copy (one cache-blob job), the
    second with a 307 to the upstream's target; the sync worker copies the blob into S3, and
    the next GET is a 307 to a presigned S3 URL."""
    from pull_through_upstream import Upstream, sqs
    up = Upstream(W)
    PROCS.append(up.proc)
    layer = os.urandom(65536)
    manifest, layer_digest = up.push_image("up/app", "v1", layer)
    check("pull-through: the upstream holds the image", bool(manifest))
    auth = {"authorization": basic("admin", PW), "content-type": "application/json"}
    remotes = {}
    for name, url in (("fn-pt-direct", up.url), ("fn-pt-redirect", up.redirecting_url)):
        out = invoke("berth-api", [http_event("POST", "/pulp/api/v3/remotes/container/pull-through/", "", auth,
                                              json.dumps({"name": name, "url": url}).encode())])
        r = resp(out, 0)
        remotes[name] = json.loads(r["body"])["pulp_href"] if r and r["statusCode"] == 201 else None
    out = invoke("berth-api", [
        http_event("POST", "/pulp/api/v3/distributions/container/pull-through/", "", auth,
                   json.dumps({"name": base, "base_path": base, "remote": remotes[name]}).encode())
        for base, name in (("ptd", "fn-pt-direct"), ("ptr", "fn-pt-redirect"))])
    check("pull-through: remotes (201) and distributions (202) made through the API",
          all(remotes.values()) and all(resp(out, i) and resp(out, i)["statusCode"] == 202 for i in range(2)),
          json.dumps(out["results"])[:400])
    queue = sqs("CreateQueue", QueueName=f"berth-fn-pt-{SUFFIX}")
    queue_url = re.search(r"<QueueUrl>(.*?)</QueueUrl>", queue).group(1) if queue else None
    out = invoke("berth-registry", [
        http_event("GET", "/token", f"service={HOST}&scope={urllib.parse.quote('repository:ptd/up/app:pull')}"
                   f"&scope={urllib.parse.quote('repository:ptr/up/app:pull')}", {"authorization": basic("admin", PW)}),
    ])
    r = resp(out, 0)
    token = json.loads(r["body"])["token"] if r and r["statusCode"] == 200 else ""
    bearer = {"authorization": f"Bearer {token}", "accept": "application/vnd.oci.image.manifest.v1+json"}
    out = invoke("berth-registry", [
        http_event("GET", "/v2/ptd/up/app/manifests/v1", "", bearer),
        http_event("GET", f"/v2/ptd/up/app/blobs/{layer_digest}", "", bearer),
        http_event("GET", "/v2/ptr/up/app/manifests/v1", "", bearer),
        http_event("GET", f"/v2/ptr/up/app/blobs/{layer_digest}", "", bearer),
    ], queue_url=queue_url, BERTH_BLOB_COPY_WAIT="1")
    m, miss, m2, redirected = (resp(out, i) for i in range(4))
    def body(r):
        return base64.b64decode(r["body"]) if r.get("isBase64Encoded") else (r.get("body") or "").encode()
    check("pull-through: the registry function serves the manifest it fetched (200, the upstream's bytes)",
          m and m["statusCode"] == 200 and body(m) == manifest, json.dumps(m)[:300])
    check("pull-through: a miss of a blob the upstream serves itself is 503 with Retry-After, no bytes",
          miss and miss["statusCode"] == 503 and header(miss, "retry-after") and len(miss.get("body") or "") < 1000,
          json.dumps(miss)[:300])
    loc = header(redirected, "location") if redirected else None
    check("pull-through: a miss at an upstream that redirects is a 307 to the upstream's target",
          m2 and m2["statusCode"] == 200 and redirected and redirected["statusCode"] == 307 and loc
          and loc.startswith(up.url) and loc.endswith(f"/blobs/{layer_digest}"), json.dumps(redirected)[:300])
    got = sqs("ReceiveMessage", QueueUrl=queue_url, MaxNumberOfMessages="10", WaitTimeSeconds="1") if queue_url else ""
    import html
    jobs = [html.unescape(b) for b in re.findall(r"<Body>(.*?)</Body>", got or "", re.S)]
    copies = [j for j in jobs if '"cache-blob"' in j]
    check("pull-through: two misses of one blob queue one cache-blob job", len(copies) == 1, repr(jobs)[:300])
    out = invoke("berth-sync-worker", [{"Records": [record_of(9, copies[0] if copies else "{}")]}])
    r = resp(out, 0)
    check("sync-worker: the cache-blob job copies the blob into S3", r is not None and r.get("batchItemFailures") == [],
          json.dumps(out)[:300])
    out = invoke("berth-registry", [http_event("GET", f"/v2/ptd/up/app/blobs/{layer_digest}", "", bearer)])
    r = resp(out, 0)
    loc = header(r, "location") if r else None
    check("pull-through: then the blob GET is a 307 to a presigned S3 URL",
          r and r["statusCode"] == 307 and loc and "X-Amz-Signature" in loc, json.dumps(r)[:300])
    if loc:
        data = urllib.request.urlopen(loc, timeout=10).read()
        check("the copied blob's bytes verify", hashlib.sha256(data).hexdigest() == layer_digest.split(":")[1])


def record_of(i, body):
    return {"messageId": f"m{i}", "receiptHandle": "h", "body": body, "md5OfBody": "",
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "s",
                           "ApproximateFirstReceiveTimestamp": "1"},
            "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:berth"}


if not MOTO:
    print("FAIL BERTH_TEST_MOTO is not set: start `moto_server -H 127.0.0.1 -p PORT` and set it to http://127.0.0.1:PORT")
    print("0 passed, 1 failed")
    sys.exit(1)
try:
    QUEUE_URL = create_resources(BIN)
    ok("bucket, table and queue created on moto", QUEUE_URL)

    # --- registry: challenge, token, push, 307 to a presigned S3 URL --------------------------------
    blob = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    scope = urllib.parse.quote("repository:fn/app:pull,push")
    out = invoke("berth-registry", [
        http_event("GET", "/v2/"),
        http_event("GET", "/token", f"service={HOST}&scope={scope}", {"authorization": basic("admin", PW)}),
    ])
    r0, r1 = resp(out, 0), resp(out, 1)
    check("registry: the ping gets the token challenge", r0 and r0["statusCode"] == 401 and
          (header(r0, "www-authenticate") or "").startswith(f'Bearer realm="http://{HOST}/token"'), json.dumps(r0)[:300])
    token = json.loads(r1["body"])["token"] if r1 and r1["statusCode"] == 200 else None
    check("registry: /token issues a token to the admin", bool(token), json.dumps(r1)[:300])
    reg_init, reg_first = out["init_ms"], out["first_ms"]
    out = invoke("berth-registry", [
        http_event("POST", "/v2/fn/app/blobs/uploads/", f"digest={digest}", {"authorization": f"Bearer {token}"}, blob),
        http_event("GET", f"/v2/fn/app/blobs/{digest}", "", {"authorization": f"Bearer {token}"}),
    ])
    r0, r1 = resp(out, 0), resp(out, 1)
    check("registry: a pushed blob lands in S3 (201)", r0 and r0["statusCode"] == 201, json.dumps(r0)[:300])
    loc = header(r1, "location") if r1 else None
    check("registry: a blob GET answers 307 to a presigned URL (no bytes through Lambda)",
          r1 and r1["statusCode"] == 307 and loc and "X-Amz-Signature" in loc and not r1.get("body"), json.dumps(r1)[:300])
    if loc:
        got = urllib.request.urlopen(loc, timeout=10).read()
        check("the presigned URL serves the blob's bytes", hashlib.sha256(got).hexdigest() == digest.split(":")[1])

    # --- management API -------------------------------------------------------------------------
    out = invoke("berth-api", [
        http_event("GET", "/pulp/api/v3/status/"),
        http_event("POST", "/pulp/api/v3/repositories/container/container/", "",
                   {"authorization": basic("admin", PW), "content-type": "application/json"}, b'{"name": "fn"}'),
        http_event("GET", "/pulp/api/v3/repositories/container/container/", "name=fn",
                   {"authorization": basic("admin", PW)}),
        http_event("GET", "/pulp/api/v3/repositories/container/container/", "", {"authorization": basic("admin", "wrong")}),
    ])
    rs = [resp(out, i) for i in range(4)]
    check("api: status is public", rs[0] and rs[0]["statusCode"] == 200, json.dumps(rs[0])[:200])
    check("api: repository create answers 201", rs[1] and rs[1]["statusCode"] == 201, json.dumps(rs[1])[:300])
    check("api: the repository is listed (DynamoDB)", rs[2] and json.loads(rs[2]["body"]).get("count") == 1, json.dumps(rs[2])[:300])
    check("api: a wrong password gets 401", rs[3] and rs[3]["statusCode"] == 401, json.dumps(rs[3])[:200])
    api_init, api_first = out["init_ms"], out["first_ms"]

    # --- the web page, served by the API function ----------------------------------------------------
    def text(r):
        b = (r or {}).get("body") or ""
        return base64.b64decode(b).decode() if r.get("isBase64Encoded") else b
    form = urllib.parse.urlencode({"username": "admin", "password": PW, "next": "/ui/"}).encode()
    out = invoke("berth-api", [
        http_event("GET", "/ui/", "", {"accept": "text/html"}),
        http_event("POST", "/ui/login", "", {"origin": f"http://{HOST}",
                                              "content-type": "application/x-www-form-urlencoded"}, form),
        http_event("GET", "/ui/", "", {"authorization": basic("admin", PW)}),
    ])
    rs = [resp(out, i) for i in range(3)]
    check("api: the web page sends an anonymous browser to its login form", rs[0] and rs[0]["statusCode"] == 303 and
          header(rs[0], "location") == "/ui/login?next=%2Fui%2F", json.dumps(rs[0])[:300])
    # API Gateway (payload 2.0) carries cookies in their own list, both ways
    cookies = (rs[1] or {}).get("cookies") or []
    session = next((c.split(";")[0].split("=", 1)[1] for c in cookies if c.startswith("berth_session=")), "")
    check("api: the login form sets the session cookie", rs[1] and rs[1]["statusCode"] == 303 and session and
          "HttpOnly" in cookies[0] and "SameSite=Strict" in cookies[0], json.dumps(rs[1])[:300])
    check("api: the web page lists the repository (Basic credentials)", rs[2] and rs[2]["statusCode"] == 200 and
          'data-repository="fn"' in text(rs[2]), json.dumps(rs[2])[:300])
    later = http_event("GET", "/ui/", "", {"accept": "text/html"})
    later["cookies"] = [f"berth_session={session}"]
    out = invoke("berth-api", [later])
    r0 = resp(out, 0)
    check("api: another instance knows the session (the field key is shared)", r0 and r0["statusCode"] == 200 and
          'data-repository="fn"' in text(r0), json.dumps(r0)[:300])

    # --- sync worker: an SQS batch with partial failures ----------------------------------------------
    def record(i, body):
        return {"messageId": f"m{i}", "receiptHandle": "h", "body": body, "md5OfBody": "",
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "s",
                               "ApproximateFirstReceiveTimestamp": "1"},
                "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:berth"}
    unknown = json.dumps({"id": "j1", "kind": "no-such-kind", "payload": {}})
    out = invoke("berth-sync-worker", [{"Records": [record(0, unknown), record(1, "not a job")]}])
    r0 = resp(out, 0)
    check("sync-worker: a batch is answered with its batch item failures (none to retry here)",
          r0 is not None and r0.get("batchItemFailures") == [], json.dumps(out)[:300])
    sw_init, sw_first = out["init_ms"], out["first_ms"]

    # --- schedules: the job template.yaml's EventBridge Scheduler schedule sends, through the worker -
    template = open(os.path.join(HERE, "..", "..", "template.yaml")).read()
    tick = re.search(r"SchedulesTick:.*?Input: '([^']*)'", template, re.S)
    check("template.yaml's SchedulesTick sends a job", tick is not None)
    out = invoke("berth-api", [
        http_event("POST", "/pulp/api/v3/task-schedules/", "",
                   {"authorization": basic("admin", PW), "content-type": "application/json"},
                   json.dumps({"name": "fn-cleanup", "task_name": "pulpcore.app.tasks.orphan.orphan_cleanup",
                               "dispatch_interval": "1", "orphan_protection_time": 0}).encode()),
    ])
    made = resp(out, 0)
    check("api: a schedule is made (201)", made and made["statusCode"] == 201, json.dumps(made)[:300])
    href = json.loads(made["body"])["pulp_href"] if made and made["statusCode"] == 201 else "/none/"
    time.sleep(1.2)
    out = invoke("berth-sync-worker", [{"Records": [record(2, tick.group(1) if tick else "{}")]}])
    r0 = resp(out, 0)
    check("sync-worker: the schedules job is done", r0 is not None and r0.get("batchItemFailures") == [],
          json.dumps(out)[:300])
    out = invoke("berth-api", [http_event("GET", href, "", {"authorization": basic("admin", PW)})])
    got = resp(out, 0)
    last = json.loads(got["body"]).get("last_task") if got and got["statusCode"] == 200 else None
    check("the due schedule started its task (its last_task)", bool(last), json.dumps(got)[:300])

    # --- pull-through caching: a blob miss never passes bytes through the registry function --------
    pull_through()

    # --- logs: JSON lines, with CloudWatch EMF documents --------------------------------------------
    logs = {}
    for name in ("berth-registry", "berth-api", "berth-sync-worker"):
        docs, bad, runtime_panic = [], [], False
        for line in open(os.path.join(W, name + ".log"), encoding="utf-8"):
            # the emulator ends a run by answering without a request id, which the Lambda runtime
            # panics on (a blank line, the message, its backtrace), or by closing its connection,
            # which ends the runtime's loop with an error main prints: not the function's output
            if line.startswith("thread '") and "lambda_runtime" in line:
                runtime_panic = True
            if runtime_panic and not line.startswith("{") or not line.strip():
                continue
            if line.startswith("Error: hyper_util::client::legacy::Error("):
                continue
            runtime_panic = False
            try:
                v = json.loads(line)
                (docs if isinstance(v, dict) else bad).append(v)
            except ValueError:
                bad.append(line)
        logs[name] = docs
        check(f"{name}: every log line is one JSON object ({len(docs)} lines)", docs and not bad, repr(bad[:2])[:300])
    emf = [d for d in logs["berth-registry"] if "_aws" in d and d.get("Route") == "/v2/{name}/blobs/{digest}"]
    check("registry: each request writes an EMF document (the blob GET: Status 307, API Gateway's request id)",
          any(d["Status"] == 307 and d["RequestId"] == "r" and d["Function"] == "berth-registry" and d["Requests"] == 1
              for d in emf), json.dumps(emf)[:300])
    access = [d for d in logs["berth-registry"] if d.get("target") == "berth::access"]
    check("registry: the access log names the route template, the user, the repository and the request id",
          any(a["route"] == "/v2/{name}/blobs/uploads/" and a["user"] == "admin" and a.get("repository") == "fn/app"
              and a["request_id"] == "r" and a["bytes_in"] == len(blob) for a in access), json.dumps(access)[:300])
    content = {d["ContentType"] for d in logs["berth-api"] if "ContentUnits" in d}
    check("api: the content totals as EMF (ContentUnits per content type)",
          content == {"blob", "manifest", "tag", "signature"}, str(content))

    print()
    print("| function | release binary | start-up (process start → asks for work) | process start → first request answered |")
    print("|---|---:|---:|---:|")
    for name, init, first in [("berth-api", api_init, api_first), ("berth-registry", reg_init, reg_first),
                              ("berth-sync-worker", sw_init, sw_first)]:
        size = os.path.getsize(function_path(name)) / 1024 / 1024
        print(f"| {name} | {size:.1f} MiB | {init} ms | {first} ms |")
finally:
    for p in PROCS:
        if p.poll() is None:
            p.kill()
    subprocess.run(["rm", "-rf", W])
sys.exit(summary())
