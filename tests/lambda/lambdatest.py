"""What the Lambda tests share: pass/fail reporting, free ports, the moto settings, and the
bucket, table and queue made by the local binary with BERTH_AWS_INIT=1."""
import base64
import hashlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

MOTO = os.environ.get("BERTH_TEST_MOTO")
PASS = FAIL = 0
W = tempfile.mkdtemp(prefix="berth-lambda-")
PROCS = []


def ok(name, detail=""):
    global PASS
    PASS += 1
    print(f"OK   {name}{(' — ' + detail) if detail else ''}")


def bad(name, detail=""):
    global FAIL
    FAIL += 1
    print(f"FAIL {name}{(': ' + detail) if detail else ''}")


def check(name, cond, detail=""):
    (ok if cond else bad)(name, detail)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


SUFFIX = hashlib.sha256(str(time.time()).encode()).hexdigest()[:8]
AWS_ENV = {
    "AWS_ENDPOINT_URL": MOTO or "",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "BERTH_BUCKET": f"berth-fn-{SUFFIX}",
    "BERTH_TABLE": f"berth-fn-{SUFFIX}",
    "BERTH_LOG": "warn",
}
PW = "fn-admin-" + SUFFIX
HOST = "reg.example.com"


def create_resources(bin_dir, queue=f"berth-fn-{SUFFIX}"):
    """The local binary in BIN_DIR with BERTH_AWS_INIT=1 makes the bucket, table and queues.

    It polls QUEUE while it runs, and its last long poll stays open on the emulator after it
    stops, taking the next message sent: a test that reads the queue itself uses another one."""
    port = free_port()
    env = dict(os.environ, **AWS_ENV, BERTH_BACKEND="aws", BERTH_AWS_INIT="1", BERTH_QUEUE_NAME=queue,
               BERTH_ADMIN_PASSWORD=PW)
    p = subprocess.Popen([os.path.join(bin_dir, "berth"), "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(W, "local")],
                         env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(W, "local.log"), "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        # moto's queue URLs: <endpoint>/<default account>/<name>
        return f"{MOTO.rstrip('/')}/123456789012/{queue}"
    finally:
        p.terminate()
        p.wait(10)




def basic(u, p):
    return "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()


def summary():
    print(f"{PASS} passed, {FAIL} failed")
    return 1 if FAIL else 0
