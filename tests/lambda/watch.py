#!/usr/bin/env python3
"""The three functions served by `cargo lambda watch`, the local Lambda emulator, on S3,
DynamoDB and SQS of a moto server, with a real upstream (Debian's docker-registry):

- the API function (over HTTP, as a function URL) makes a repository, a remote and a sync,
  which sends a job to the SQS queue;
- the job, read from the queue, goes to the worker function as an SQS event; the worker syncs
  the image from the upstream into S3 and DynamoDB;
- the registry function (over HTTP) issues a token and serves the synced manifest, and
  answers a blob GET with a 307 to a presigned S3 URL.

    BERTH_TEST_MOTO=http://127.0.0.1:PORT python3 tests/lambda/watch.py [TARGET_DIR]

Run it with a Python that has boto3 (the moto venv has). TARGET_DIR holds the release `berth`
binary, used once to create the bucket, table and queue (default target/release). cargo lambda
builds the functions in debug on their first invoke. Ends with `N passed, N failed`.
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from lambdatest import AWS_ENV, MOTO, PROCS, PW, SUFFIX, W, basic, check, create_resources, free_port, ok, summary

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release"))
API = "/pulp/api/v3"


def http(method, url, body=None, headers=None, timeout=900):
    """(status, headers, body bytes) of one request; redirects are not followed."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a):
            return None
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        r = urllib.request.build_opener(NoRedirect).open(req, timeout=timeout)
        return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_http(url, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.2)
    return False


def start_upstream():
    """docker-registry on a free port, holding one image `up/app:v1`; (url, manifest digest, layer digest)."""
    port = free_port()
    d = os.path.join(W, "upstream")
    os.makedirs(d)
    with open(os.path.join(d, "config.yml"), "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    p = subprocess.Popen(["docker-registry", "serve", os.path.join(d, "config.yml")], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
    PROCS.append(p)
    up = f"http://127.0.0.1:{port}"
    if not wait_http(up + "/v2/", p):
        raise SystemExit("docker-registry did not start")

    def push_blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        s, h, _ = http("POST", f"{up}/v2/up/app/blobs/uploads/")
        loc = h.get("Location") or h.get("location")
        loc = loc if loc.startswith("http") else up + loc
        s, _, b = http("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={digest}", data,
                       {"Content-Type": "application/octet-stream"})
        assert s == 201, (s, b)
        return digest
    layer = os.urandom(200_000)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    ld, cd = push_blob(layer), push_blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}],
    }).encode()
    s, _, b = http("PUT", f"{up}/v2/up/app/manifests/v1", manifest,
                   {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert s == 201, (s, b)
    return up, "sha256:" + hashlib.sha256(manifest).hexdigest(), ld


def sqs_event(messages):
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "md5OfBody": m.get("MD5OfBody", ""),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "s",
                       "ApproximateFirstReceiveTimestamp": "1"},
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:berth-fn-{SUFFIX}",
    } for m in messages]}


if not MOTO:
    print("FAIL BERTH_TEST_MOTO is not set: start `moto_server -H 127.0.0.1 -p PORT` and set it to http://127.0.0.1:PORT")
    print("0 passed, 1 failed")
    sys.exit(1)
for tool in ["cargo-lambda", "docker-registry"]:
    if not shutil.which(tool):
        print(f"FAIL {tool} is not installed")
        print("0 passed, 1 failed")
        sys.exit(1)
import boto3  # noqa: E402  (the moto venv has it)

try:
    create_resources(BIN, f"berth-fn-{SUFFIX}-init")
    ok("bucket and table created on moto")
    sqs = boto3.client("sqs", endpoint_url=MOTO, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    queue_url = sqs.create_queue(QueueName=f"berth-fn-{SUFFIX}", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    upstream, manifest_digest, layer_digest = start_upstream()
    ok("upstream docker-registry holds up/app:v1", upstream)

    port = free_port()
    env_file = os.path.join(W, "lambda.env")
    with open(env_file, "w") as f:
        for k, v in dict(AWS_ENV, BERTH_QUEUE_URL=queue_url, BERTH_ADMIN_PASSWORD=PW,
                         BERTH_TOKEN_KEY_SEED="seed-" + SUFFIX, BERTH_FIELD_KEY_SEED="field-" + SUFFIX).items():
            f.write(f"{k}={v}\n")
    watch = subprocess.Popen(["cargo", "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", str(port),
                              "--env-file", env_file], cwd=ROOT, stdout=open(os.path.join(W, "watch.log"), "w"),
                             stderr=subprocess.STDOUT)
    PROCS.append(watch)
    base = f"http://127.0.0.1:{port}"
    if not check("cargo lambda watch serves", wait_http(base + "/", watch, 120)):
        raise SystemExit(open(os.path.join(W, "watch.log")).read()[-2000:])
    api, reg = f"{base}/lambda-url/berth-api{API}", f"{base}/lambda-url/berth-registry"
    admin = {"Authorization": basic("admin", PW), "Content-Type": "application/json"}

    # --- the API function: repository, remote, sync (the first call builds it) ----------------
    t0 = time.monotonic()
    s, _, b = http("GET", f"{api}/status/")
    check("api: status answers through the function URL", s == 200,
          f"{s}; first invoke, build included: {time.monotonic() - t0:.0f} s")
    s, _, b = http("POST", f"{api}/repositories/container/container/", json.dumps({"name": "fn"}).encode(), admin)
    check("api: repository created", s == 201, f"{s} {b[:300]!r}" if s != 201 else "")
    repo = json.loads(b)
    s, _, b = http("POST", f"{api}/remotes/container/container/",
                   json.dumps({"name": "fn", "url": upstream, "upstream_name": "up/app"}).encode(), admin)
    check("api: remote created", s == 201, f"{s} {b[:300]!r}" if s != 201 else "")
    remote = json.loads(b)
    s, _, b = http("POST", f"{base}/lambda-url/berth-api{repo['pulp_href']}sync/",
                   json.dumps({"remote": remote["pulp_href"]}).encode(), admin)
    check("api: sync accepted (202, a task)", s == 202, f"{s} {b[:300]!r}")
    task_href = json.loads(b)["task"]

    # --- the worker function: the job from SQS, as an SQS event ---------------------------------
    msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"]).get("Attributes", {})
    check("the sync job is on the SQS queue", len(msgs) == 1, f"{len(msgs)} messages; queue {json.dumps(attrs)}")
    t0 = time.monotonic()
    s, _, b = http("POST", f"{base}/2015-03-31/functions/berth-sync-worker/invocations",
                   json.dumps(sqs_event(msgs)).encode(), {"Content-Type": "application/json"})
    check("worker: the SQS batch succeeds with no item failures", s == 200 and json.loads(b) == {"batchItemFailures": []},
          f"{s} {b[:300]!r}; {time.monotonic() - t0:.0f} s")
    for m in msgs:  # what the event source mapping does after a successful batch
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    s, _, b = http("GET", f"{base}/lambda-url/berth-api{task_href}", headers=admin)
    task = json.loads(b) if s == 200 else {}
    check("api: the sync task completed and created version 1",
          task.get("state") == "completed" and any(h.endswith("/versions/1/") for h in task.get("created_resources", [])),
          json.dumps(task)[:400] if task.get("state") != "completed" else "")
    s, _, b = http("POST", f"{api}/distributions/container/container/",
                   json.dumps({"name": "fn", "base_path": "fn", "repository": repo["pulp_href"]}).encode(), admin)
    check("api: distribution created", s == 202, f"{s} {b[:200]!r}")

    # --- the registry function: token, manifest, 307 to S3 -------------------------------------
    s, h, _ = http("GET", f"{reg}/v2/")
    check("registry: the ping gets a Bearer challenge", s == 401 and "Bearer" in (h.get("www-authenticate") or h.get("WWW-Authenticate") or ""), f"{s}")
    challenge = h.get("www-authenticate") or h.get("WWW-Authenticate") or ""
    service = challenge.split('service="', 1)[1].split('"', 1)[0] if 'service="' in challenge else ""
    s, _, b = http("GET", f"{reg}/token?service={urllib.parse.quote(service)}&scope=repository:fn:pull",
                   headers={"Authorization": basic("admin", PW)})
    token = json.loads(b).get("token") if s == 200 else None
    check("registry: /token issues a token", bool(token), "" if token else f"{s} {b[:200]!r}")
    bearer = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.oci.image.manifest.v1+json"}
    s, h, b = http("GET", f"{reg}/v2/fn/manifests/v1", headers=bearer)
    got = "sha256:" + hashlib.sha256(b).hexdigest()
    check("registry: the synced manifest is served with its upstream digest", s == 200 and got == manifest_digest,
          f"{s} {got}")
    s, h, _ = http("GET", f"{reg}/v2/fn/blobs/{layer_digest}", headers=bearer)
    loc = h.get("location") or h.get("Location") or ""
    check("registry: a blob GET answers 307 to a presigned S3 URL", s == 307 and "X-Amz-Signature" in loc, f"{s} {loc[:120]}")
    if loc:
        s, _, b = http("GET", loc)
        check("the presigned URL serves the layer the sync stored in S3",
              s == 200 and "sha256:" + hashlib.sha256(b).hexdigest() == layer_digest, f"{s}")
finally:
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    log = os.path.join(W, "watch.log")
    if os.path.exists(log) and os.environ.get("BERTH_TEST_VERBOSE"):
        print(open(log).read()[-4000:])
    subprocess.run(["rm", "-rf", W])
sys.exit(summary())
