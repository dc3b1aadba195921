#!/usr/bin/env python3
"""Berth's torture suite: races, floods, crashes and a full disk against the release binary.

    BERTH_BIN=target/release/berth python3 tests/chaos/run.py [CASE...]

Cases (all by default; name some to run only those):
  a  16 clients logging in at once, then concurrent first pushes into one new repository
     (skopeo, and raw uploads whose first POSTs leave at once), then an orphan cleanup: no 429,
     every tag still pulls, one push repository per name, its distribution points at it
  b  racing creates of one name (repositories, remotes, distributions, base paths): one wins
  c  a flood of wrong passwords (management API and /token): memory stays bounded and the
     right password is answered at once afterwards
  d  slowloris and idle keep-alive floods beyond the server's open-files limit: a normal client
     is served again within a bound
  e  kill -9 in the middle of pushes, restart at once, retry at once: no 429, quick, nothing
     partial visible
  f  remote URLs that point at metadata services, unspecified or link-local addresses are
     refused; loopback is allowed unless BERTH_REMOTE_PRIVATE_NETWORKS=deny
  g  a full disk (embedded store on a 64 MiB tmpfs; needs root): a clean 507, no partial file,
     and everything works again once space returns, without a restart

Each case starts its own Berth (BERTH_BIN) on a free loopback port with a fresh data directory
under one temporary folder, and stops it. With BERTH_BACKEND=aws in the environment (and the
AWS_* settings, BERTH_BUCKET, BERTH_TABLE, BERTH_QUEUE_NAME; see test.sh's on_aws) every case
runs on the AWS adapters in a bucket, table and queue of its own (the given names plus the
case's letter), and case g is skipped. Needs python3 and skopeo; case g needs root (mount).
Prints `OK`/`FAIL`/`SKIP` lines per check, each case's figures, a summary, and ends with
`N passed, N failed`; exits 1 when a check failed. CHAOS_KEEP=1 keeps the work folder (the
servers' logs) for a look afterwards.
"""
import base64
import errno
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BERTH_BIN = os.environ.get("BERTH_BIN") or os.path.join(ROOT, "target", "release", "berth")
AWS = os.environ.get("BERTH_BACKEND", "embedded") == "aws"
BACKEND = "aws" if AWS else "embedded"
PW = "chaos-admin-%08x" % random.getrandbits(32)
NONCE = "%06x" % random.getrandbits(24)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MIB = 1024 * 1024

WORK = tempfile.mkdtemp(prefix="berth-chaos.")
PROCS = []          # every process this script started, stopped on exit
MOUNTS = []         # every tmpfs this script mounted, unmounted on exit


def log(msg):
    print(msg, flush=True)


# --- results ------------------------------------------------------------------------------------

class Case:
    def __init__(self, key, title):
        self.key, self.title = key, title
        self.passed = self.failed = 0
        self.figures = []   # (label, value)
        self.skipped = None
        self.seconds = 0.0

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            log(f"OK   {self.key}: {name}")
        else:
            self.failed += 1
            detail = str(detail)
            if len(detail) > 400:
                detail = detail[:400] + "…"
            log(f"FAIL {self.key}: {name}" + (f": {detail}" if detail else ""))
        return ok

    def figure(self, label, value):
        self.figures.append((label, value))
        log(f"     {self.key}: {label}: {value}")


# --- processes ----------------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop_proc(p, grace=35):
    if p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    except ProcessLookupError:
        pass


class Berth:
    """One Berth process on a free loopback port; restartable on the same data directory."""

    def __init__(self, case_key, data_dir=None, env=None, nofile=None):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.data_dir = data_dir or tempfile.mkdtemp(prefix=f"data-{case_key}.", dir=WORK)
        self.log_path = os.path.join(WORK, f"berth-{case_key}-{self.port}.log")
        self.nofile = nofile
        e = dict(os.environ)
        e.update({
            "BERTH_LISTEN": self.host,
            "BERTH_DATA_DIR": self.data_dir,
            "BERTH_ADMIN_PASSWORD": PW,
            "BERTH_LOG": os.environ.get("CHAOS_BERTH_LOG", "info"),
            "NO_COLOR": "1",
        })
        for k in ("BERTH_PUBLIC_URL", "BERTH_TOKEN_AUTH"):
            e.pop(k, None)
        if AWS:
            for k in ("BERTH_BUCKET", "BERTH_TABLE", "BERTH_QUEUE_NAME"):
                e[k] = f"{os.environ.get(k, 'berth-chaos')}-{case_key}-{NONCE}".lower()
            e.pop("BERTH_QUEUE_URL", None)
        e.update(env or {})
        self.env = e
        self.proc = None

    def start(self, timeout=90):
        nofile = self.nofile

        def pre():
            os.setsid()
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BERTH_BIN], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=pre)
        out.close()
        PROCS.append(self.proc)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"berth exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if http_req(self.port, "GET", "/v2/", timeout=2)[0] in (200, 401):
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"berth not ready after {timeout} s: {self.log_tail()}")

    def stop(self):
        if self.proc:
            stop_proc(self.proc)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self, key):
        """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def open_fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


# --- HTTP ---------------------------------------------------------------------------------------

def basic(user, pw):
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


ADMIN = basic("admin", PW)


def http_req(port, method, path, headers=None, body=None, timeout=60, host="127.0.0.1", source=None):
    """One request on a fresh connection (from the loopback address `source`, when given):
    (status, headers with lower-case names, body)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def get_url(url, timeout=60):
    """GET an absolute URL (a presigned S3 URL after a 307), no credentials."""
    u = urllib.parse.urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    return http_req(u.port or 80, "GET", path, timeout=timeout, host=u.hostname)


def raw_request(port, method, path, headers, body_file, length, timeout=120):
    """A request whose body is streamed from a file on a plain socket, so an answer the server
    sends before it has read the whole body (and the connection it closes) is still read.
    Returns (status, body) or (None, error text)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {length}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
        s.sendall(head.encode())
        send_error = None
        with open(body_file, "rb") as f:
            while True:
                chunk = f.read(MIB)
                if not chunk:
                    break
                try:
                    s.sendall(chunk)
                except OSError as e:   # the server answered early and closed
                    send_error = e
                    break
        data = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
                if b"\r\n\r\n" in data:
                    h, _, rest = data.partition(b"\r\n\r\n")
                    cl = [ln for ln in h.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                    if cl and len(rest) >= int(cl[0].split(b":")[1]):
                        break
        except OSError as e:
            if not data:
                return None, f"no answer ({e}; sending: {send_error})"
        if not data.startswith(b"HTTP/"):
            return None, f"no answer (sending: {send_error})"
        status = int(data.split(b" ", 2)[1])
        return status, data.partition(b"\r\n\r\n")[2]
    finally:
        s.close()


class Api:
    """The management API and the registry of one Berth, as the admin."""

    def __init__(self, berth):
        self.b = berth
        self.tokens = {}

    def req(self, method, path, body=None, auth=ADMIN, timeout=60, headers=None):
        h = {"Authorization": auth} if auth else {}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        return http_req(self.b.port, method, path, h, body, timeout)

    def json(self, method, path, body=None, **kw):
        st, _, data = self.req(method, path, body, **kw)
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, data[:300]

    def wait_task(self, href, timeout=180):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            st, d = self.json("GET", href)
            if st == 200 and d.get("state") in ("completed", "failed", "canceled"):
                return d
            time.sleep(0.2)
        return {"state": f"still running after {timeout} s"}

    def token(self, name, actions="push,pull"):
        key = (name, actions)
        if key not in self.tokens:
            q = urllib.parse.urlencode({"service": self.b.host, "scope": f"repository:{name}:{actions}"})
            st, d = self.json("GET", f"/token?{q}")
            if st != 200:
                raise RuntimeError(f"/token for {name}: {st} {d}")
            self.tokens[key] = d["token"]
        return self.tokens[key]

    def reg(self, method, name, rest, body=None, headers=None, timeout=60):
        h = {"Authorization": "Bearer " + self.token(name)}
        h.update(headers or {})
        return http_req(self.b.port, method, f"/v2/{name}/{rest}", h, body, timeout)

    def blob(self, name, digest):
        """(status, bytes) of a blob, following a redirect to storage."""
        st, h, data = self.reg("GET", name, f"blobs/{digest}")
        if st in (301, 302, 303, 307, 308):
            loc = h.get("location", "")
            if loc.startswith("/"):
                loc = f"http://{self.b.host}{loc}"
            st, _, data = get_url(loc)
        return st, data

    def connect(self):
        """A connection opened now, for a request sent later (see push_blob)."""
        c = http.client.HTTPConnection("127.0.0.1", self.b.port, timeout=60)
        c.connect()
        return c

    def push_blob(self, name, data, statuses, chunk=None, pause=0.0, on_chunk=None, conn=None):
        """Uploads data (POST, on `conn` when given, then PATCH chunks of `chunk` bytes or one
        PUT); the digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if conn is None:
            st, h, body = self.reg("POST", name, "blobs/uploads/")
        else:
            try:
                conn.request("POST", f"/v2/{name}/blobs/uploads/",
                             headers={"Authorization": "Bearer " + self.token(name)})
                r = conn.getresponse()
                st, h, body = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
            finally:
                conn.close()
        statuses.append(st)
        if st != 202:
            raise RuntimeError(f"POST upload {name}: {st} {body[:200]!r}")
        loc = h["location"]
        if chunk:
            off = 0
            while off < len(data):
                part = data[off:off + chunk]
                st, h, body = http_req(self.b.port, "PATCH", path_of(loc), {
                    "Authorization": "Bearer " + self.token(name),
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{off}-{off + len(part) - 1}",
                }, part)
                statuses.append(st)
                if st != 202:
                    raise RuntimeError(f"PATCH upload {name}: {st} {body[:200]!r}")
                loc = h["location"]
                off += len(part)
                if on_chunk:
                    on_chunk()
                time.sleep(pause)
            data = b""
        sep = "&" if "?" in loc else "?"
        st, h, body = http_req(self.b.port, "PUT", f"{path_of(loc)}{sep}digest={digest}", {
            "Authorization": "Bearer " + self.token(name),
            "Content-Type": "application/octet-stream",
        }, data)
        statuses.append(st)
        if st != 201:
            raise RuntimeError(f"PUT upload {name}: {st} {body[:200]!r}")
        return digest

    def push_manifest(self, name, tag, manifest, statuses):
        st, _, body = self.reg("PUT", name, f"manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST})
        statuses.append(st)
        if st != 201:
            raise RuntimeError(f"PUT manifest {name}:{tag}: {st} {body[:200]!r}")

    def tags(self, name):
        st, _, body = self.reg("GET", name, "tags/list?n=1000")
        if st == 404:
            return []
        if st != 200:
            raise RuntimeError(f"tags/list {name}: {st} {body[:200]!r}")
        return json.loads(body).get("tags") or []

    def verify_tag(self, name, tag, want_digest=None):
        """'' when the tag's manifest and every blob it names are served hash-correct, else why."""
        st, h, body = self.reg("GET", name, f"manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        if st != 200:
            return f"manifest {name}:{tag}: {st} {body[:200]!r}"
        d = "sha256:" + hashlib.sha256(body).hexdigest()
        if want_digest and d != want_digest:
            return f"manifest {name}:{tag} is {d}, pushed {want_digest}"
        m = json.loads(body)
        for desc in [m["config"]] + m.get("layers", []):
            st, data = self.blob(name, desc["digest"])
            if st != 200:
                return f"blob {desc['digest']} of {name}:{tag}: {st}"
            got = "sha256:" + hashlib.sha256(data).hexdigest()
            if got != desc["digest"] or len(data) != desc["size"]:
                return f"blob {desc['digest']} of {name}:{tag} served {len(data)} bytes hashing to {got}"
        return ""


def path_of(location):
    u = urllib.parse.urlsplit(location)
    return u.path + ("?" + u.query if u.query else "")


def parallel(fn, args, workers=None, prepare=None):
    """fn(*a) for every a in args at once (a barrier lines them up; with `prepare`, fn gets
    prepare(*a) as a last argument, made before the barrier); results or exceptions."""
    args = list(args)
    barrier = threading.Barrier(len(args))

    def one(a):
        try:
            extra = (prepare(*a),) if prepare else ()
        except Exception as e:  # noqa: BLE001 - returned to the caller
            extra = (e,)
        try:
            barrier.wait(30)
        except threading.BrokenBarrierError:
            pass
        try:
            if extra and isinstance(extra[0], Exception):
                raise extra[0]
            return fn(*a, *extra)
        except Exception as e:  # noqa: BLE001 - returned to the caller
            return e

    with ThreadPoolExecutor(max_workers=workers or len(args)) as ex:
        return list(ex.map(one, args))


# --- images -------------------------------------------------------------------------------------

def tar_of(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            t.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=1) as g:
        g.write(data)
    return out.getvalue()


def image(tag, layers):
    """(manifest bytes, [(digest, bytes)] of its config and layers) of an image whose layers
    are gzip'ed tars of the given files (skopeo pushes those as they are)."""
    tars = [tar_of(files) for files in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
        "history": [{"created_by": f"berth chaos {tag}"}],
    }, sort_keys=True).encode()
    blobs = [("sha256:" + hashlib.sha256(b).hexdigest(), b) for b in [config] + [gz(t) for t in tars]]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": blobs[0][0], "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": len(b)} for d, b in blobs[1:]],
    }, sort_keys=True).encode()
    return manifest, blobs


def write_layout(root, tag, manifest, blobs):
    """An OCI image layout at root holding one image under tag; its manifest digest."""
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    md = "sha256:" + hashlib.sha256(manifest).hexdigest()
    for d, b in blobs + [(md, manifest)]:
        with open(os.path.join(root, "blobs", "sha256", d.split(":")[1]), "wb") as f:
            f.write(b)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": md, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    return md


def skopeo_env():
    d = os.path.join(WORK, "skopeo")
    if not os.path.exists(os.path.join(d, "auth.json")):
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        with open(os.path.join(d, "policy.json"), "w") as f:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, f)
        with open(os.path.join(d, "auth.json"), "w") as f:
            f.write("{}")
    e = dict(os.environ)
    e.update({"REGISTRY_AUTH_FILE": os.path.join(d, "auth.json"), "TMPDIR": os.path.join(d, "tmp")})
    return e, os.path.join(d, "policy.json")


def skopeo_push(berth, layout, tag, dest):
    """Starts `skopeo copy oci:LAYOUT:TAG docker://BERTH/DEST`; the Popen (output in .out)."""
    env, policy = skopeo_env()
    out = tempfile.NamedTemporaryFile(dir=WORK, prefix="skopeo.", delete=False)
    p = subprocess.Popen(
        ["skopeo", "--policy", policy, "copy", "-q", "--retry-times", "0", "--preserve-digests", "--dest-creds", f"admin:{PW}",
         "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{berth.host}/{dest}"],
        env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    p.out = out.name
    p.t0 = time.monotonic()
    PROCS.append(p)
    return p


def finish(p, timeout):
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    p.seconds = time.monotonic() - p.t0
    with open(p.out, errors="replace") as f:
        p.text = f.read().strip()
    return p


def too_many(text):
    t = text.lower()
    return "429" in t or "toomanyrequests" in t or "too many requests" in t


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else 0


# --- a. concurrent pushes into one new repository ----------------------------------------------

def case_a(c):
    n, raw_rounds = 16, 3
    b = Berth("a")
    b.start()
    api = Api(b)
    try:
        base = [("base.bin", random.Random(1).randbytes(256 * 1024))]
        images = {}
        for i in range(n):
            tag = f"t{i}"
            manifest, blobs = image(tag, [base, [("own.txt", f"image {i} {NONCE}".encode())]])
            layout = os.path.join(WORK, f"a-layout-{i}")
            images[tag] = (write_layout(layout, tag, manifest, blobs), layout)
        # every pushing client logs in first (GET /token with the admin's Basic credentials):
        # 16 of them at once on a fresh server, before any login succeeded
        def login(conn):
            try:
                q = urllib.parse.urlencode({"service": b.host, "scope": "repository:chaos/new:push,pull"})
                conn.request("GET", f"/token?{q}", headers={"Authorization": ADMIN})
                r = conn.getresponse()
                r.read()
                return r.status
            finally:
                conn.close()

        logins = parallel(login, [()] * n, prepare=api.connect)
        answers = [x if isinstance(x, int) else type(x).__name__ for x in logins]
        hist = {str(x): answers.count(x) for x in set(answers)}
        c.figure(f"{n} simultaneous first logins", f"answers {hist}")
        c.check(all(x == 200 for x in logins), f"{n} clients logging in at once with the right password all get "
                "a token (no 429)", f"answers {hist}")
        t0 = time.monotonic()
        procs = [skopeo_push(b, images[t][1], t, f"chaos/new:{t}") for t in images]
        procs = [finish(p, 300) for p in procs]
        c.figure("16 parallel skopeo pushes into chaos/new", f"{time.monotonic() - t0:.1f} s wall, "
                 f"slowest {max(p.seconds for p in procs):.1f} s")
        failed = [(p.returncode, p.text[-300:]) for p in procs if p.returncode != 0]
        c.check(not failed, "every skopeo push into the new repository exits 0",
                f"{len(failed)} of {n} failed: {failed[:3]}")
        c.check(not any(too_many(p.text) for p in procs), "no push got a 429")

        # rounds of 16 POSTs of upload sessions into a new name, sent at once on connections
        # opened beforehand, each then completing an image of its own
        statuses = []
        raw_names = [f"chaos/raw-{k}" for k in range(raw_rounds)]
        raw_images = {f"r{i}": image(f"r{i}", [base, [("own.txt", f"raw {i} {NONCE}".encode())]])
                      for i in range(n)}
        raw_results = {}

        def raw_push(name, tag, conn):
            manifest, blobs = raw_images[tag]
            for k, (_, data) in enumerate(blobs):
                api.push_blob(name, data, statuses, conn=conn if k == 0 else None)
            api.push_manifest(name, tag, manifest, statuses)
            return "sha256:" + hashlib.sha256(manifest).hexdigest()

        t0 = time.monotonic()
        for name in raw_names:
            api.token(name)
            res = parallel(raw_push, [(name, t) for t in raw_images], prepare=lambda *_: api.connect())
            raw_results[name] = dict(zip(raw_images, res))
        c.figure(f"{raw_rounds} rounds of {n} simultaneous raw pushes into a new name",
                 f"{time.monotonic() - t0:.1f} s")
        errs = [repr(r) for rs in raw_results.values() for r in rs.values() if isinstance(r, Exception)]
        c.check(not errs, f"every raw push (rounds of {n} simultaneous POSTs of upload sessions) succeeds",
                f"{len(errs)} failed: {errs[:3]}")
        bad = sorted({s for s in statuses if s == 429 or s >= 500})
        c.check(not bad, "no raw request got a 429 or a 5xx", f"statuses {bad}")

        st, d = api.json("POST", "/pulp/api/v3/orphans/cleanup/", {"orphan_protection_time": 0})
        task = api.wait_task(d["task"]) if st == 202 and isinstance(d, dict) else {"state": f"{st} {d}"}
        c.check(task.get("state") == "completed", "orphan cleanup (protection time 0) completes",
                str(task.get("error") or task.get("state")))

        wanted = [("chaos/new", {t: images[t][0] for t in images})]
        wanted += [(name, {t: r for t, r in rs.items() if isinstance(r, str)}) for name, rs in raw_results.items()]
        for name, want in wanted:
            why = [w for w in (api.verify_tag(name, t, d) for t, d in want.items()) if w]
            c.check(not why, f"all {len(want)} tags of {name} pull after the cleanup, every blob hash-correct",
                    f"{len(why)} broken: {why[:3]}")
            st, repos = api.json("GET", "/pulp/api/v3/repositories/container/container-push/?" +
                                 urllib.parse.urlencode({"name": name}))
            count = repos.get("count") if st == 200 else f"{st} {repos}"
            c.check(count == 1, f"exactly one push repository named {name}", f"count {count}")
            st, dists = api.json("GET", "/pulp/api/v3/distributions/container/container/?" +
                                 urllib.parse.urlencode({"base_path": name}))
            dcount = dists.get("count") if st == 200 else f"{st} {dists}"
            c.check(dcount == 1, f"exactly one distribution at base path {name}", f"count {dcount}")
            if count == 1 and dcount == 1:
                repo, dist = repos["results"][0], dists["results"][0]
                c.check(dist.get("repository") == repo["pulp_href"],
                        f"the distribution {name} serves that repository",
                        f"{dist.get('repository')} vs {repo['pulp_href']}")
                st, tags = api.json("GET", "/pulp/api/v3/content/container/tags/?" + urllib.parse.urlencode(
                    {"repository_version": repo["latest_version_href"], "limit": 1000}))
                names = sorted(t["name"] for t in tags.get("results", [])) if st == 200 else []
                c.check(set(want) <= set(names), f"its latest version holds all {len(want)} tags",
                        f"{repo['latest_version_href']} holds {names}")
    finally:
        b.stop()


# --- b. racing creates of one name ----------------------------------------------------------------

def case_b(c):
    n, rounds = 16, 4
    b = Berth("b")
    b.start()
    api = Api(b)
    dup = {}
    try:
        # what a duplicate answers, sequentially
        name = f"seq-{NONCE}"
        api.json("POST", "/pulp/api/v3/repositories/container/container/", {"name": name})
        dup["repository"] = api.json("POST", "/pulp/api/v3/repositories/container/container/", {"name": name})
        c.figure("a sequential duplicate repository create answers", f"{dup['repository'][0]} {dup['repository'][1]}")
        wins = {"repositories": [], "remotes": [], "distributions": [], "base paths": []}
        for r in range(rounds):
            name = f"race-{r}-{NONCE}"
            # repositories
            res = parallel(lambda: api.json("POST", "/pulp/api/v3/repositories/container/container/",
                                            {"name": name}), [()] * n)
            wins["repositories"].append(summarize(c, res, 201, "name", f"round {r}: {n} racing repository creates"))
            c.check(count_named(api, "repositories/container/container", name) == 1,
                    f"round {r}: the repository list holds exactly one {name}")
            # remotes
            res = parallel(lambda: api.json("POST", "/pulp/api/v3/remotes/container/container/", {
                "name": name, "url": "http://127.0.0.1:9", "upstream_name": "chaos/upstream"}), [()] * n)
            wins["remotes"].append(summarize(c, res, 201, "name", f"round {r}: {n} racing remote creates"))
            c.check(count_named(api, "remotes/container/container", name) == 1,
                    f"round {r}: the remote list holds exactly one {name}")
            # distributions: one name and base path
            won = race_distributions(c, api, [(name, name)] * n, f"round {r}: {n} racing distribution creates")
            wins["distributions"].append(won)
            c.check(count_named(api, "distributions/container/container", name) == 1,
                    f"round {r}: the distribution list holds exactly one {name}")
            # distributions: distinct names, one base path
            bp = f"bp-{r}-{NONCE}"
            won = race_distributions(c, api, [(f"{bp}-{i}", bp) for i in range(n)],
                                     f"round {r}: {n} distributions with distinct names racing for one base path")
            wins["base paths"].append(won)
            st, d = api.json("GET", "/pulp/api/v3/distributions/container/container/?" +
                             urllib.parse.urlencode({"base_path": bp}))
            c.check(st == 200 and d.get("count") == 1, f"round {r}: exactly one distribution at base path {bp}",
                    f"{st} count {d.get('count') if isinstance(d, dict) else d}")
        for k, v in wins.items():
            c.figure(f"winners per round, {k}", v)
    finally:
        b.stop()


def summarize(c, res, ok_status, field, what):
    """Exactly one ok_status and the rest 400 with a field error on `field`; the number of wins."""
    statuses = [r if isinstance(r, Exception) else r[0] for r in res]
    wins = sum(1 for s in statuses if s == ok_status)
    losers = [r for r in res if not isinstance(r, Exception) and r[0] != ok_status]
    clean = all(r[0] == 400 and isinstance(r[1], dict) and field in r[1] for r in losers)
    hist = {}
    for s in statuses:
        hist[str(s)] = hist.get(str(s), 0) + 1
    c.check(wins == 1 and clean and len(losers) == len(res) - 1,
            f"{what}: exactly one {ok_status}, the rest 400 with a `{field}` field error",
            f"statuses {hist}; a loser said {losers[0][1] if losers else None}")
    return wins


def race_distributions(c, api, specs, what):
    """Racing distribution creates (202 + a task each, or a 400 at once): exactly one task
    completes; every other create is refused (a 400 or a failed task)."""
    res = parallel(lambda nm, bp: api.json("POST", "/pulp/api/v3/distributions/container/container/",
                                           {"name": nm, "base_path": bp}), specs)
    completed = failed = refused = other = 0
    errors = []
    for r in res:
        if isinstance(r, Exception):
            other += 1
            errors.append(repr(r))
        elif r[0] == 202:
            t = api.wait_task(r[1]["task"], 60)
            if t.get("state") == "completed":
                completed += 1
            elif t.get("state") == "failed":
                failed += 1
                errors.append(t.get("error"))
            else:
                other += 1
                errors.append(t.get("state"))
        elif r[0] == 400:
            refused += 1
        else:
            other += 1
            errors.append(f"{r[0]} {r[1]}")
    c.check(completed == 1 and other == 0, f"{what}: exactly one completes",
            f"{completed} completed, {failed} failed tasks, {refused} refused at once, {other} other: {errors[:2]}")
    return completed


def count_named(api, kind, name):
    st, d = api.json("GET", f"/pulp/api/v3/{kind}/?" + urllib.parse.urlencode({"name": name}))
    return d.get("count") if st == 200 else f"{st} {d}"


# --- c. a flood of wrong passwords ----------------------------------------------------------------

RSS_BOUND_MIB = 150
LOGIN_BOUND_S = 5.0


def case_c(c):
    n = 64
    reader_pw = "chaos-reader-%08x" % random.getrandbits(32)
    b = Berth("c", env={"BERTH_READONLY_USERS": f"reader:{reader_pw}"})
    b.start()
    api = Api(b)
    try:
        for _ in range(3):   # warm up (the admin's client was in use: its password is cached)
            api.json("GET", "/pulp/api/v3/repositories/container/container/")
            api.token("chaos/warm")
        base = b.status("VmRSS")
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                v = b.status("VmRSS")
                if v:
                    peak[0] = max(peak[0], v)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        hist, times = {}, []
        lock = threading.Lock()

        def wrong(kind, user, i, source):
            auth = basic(user, f"wrong-{i}-{random.getrandbits(32)}")
            t = time.monotonic()
            try:
                if kind == "api":
                    st = http_req(b.port, "GET", "/pulp/api/v3/repositories/container/container/",
                                  {"Authorization": auth}, timeout=90, source=source)[0]
                else:
                    q = urllib.parse.urlencode({"service": b.host, "scope": "repository:chaos/x:push,pull"})
                    st = http_req(b.port, "GET", f"/token?{q}", {"Authorization": auth}, timeout=90,
                                  source=source)[0]
            except OSError as e:
                st = type(e).__name__
            with lock:
                times.append(time.monotonic() - t)
                k = f"{kind} {st}"
                hist[k] = hist.get(k, 0) + 1

        # waves of 64, half a second apart, all in flight together: the admin with wrong
        # passwords from 127.0.0.1 (management API, then /token), and made-up users with wrong
        # passwords from 64 other loopback addresses (what no per-user or per-address
        # spacing holds back: only the bound on hashing does)
        waves = [("api", lambda i: "admin", lambda i: "127.0.0.1")] * 3 + \
                [("token", lambda i: "admin", lambda i: "127.0.0.1")] + \
                [("api", lambda i: f"user{i}-{random.getrandbits(16)}", lambda i: f"127.0.1.{i + 1}")] * 2 + \
                [("token", lambda i: f"user{i}-{random.getrandbits(16)}", lambda i: f"127.0.2.{i + 1}")]
        threads = []
        t0 = time.monotonic()
        cut = None
        for w, (kind, user, source) in enumerate(waves):
            if (peak[0] - base) / 1024 > 4 * RSS_BOUND_MIB:   # spare the machine: the check fails anyway
                cut = f"after {w} waves: memory had already grown by {(peak[0] - base) / 1024:.0f} MiB"
                break
            for i in range(n):
                th = threading.Thread(target=wrong, args=(kind, user(i), i, source(i)), daemon=True)
                th.start()
                threads.append(th)
            time.sleep(0.5)
        for th in threads:
            th.join(120)
        flood_s = time.monotonic() - t0
        after = b.status("VmRSS")
        stop.set()
        sampler.join()
        hwm = b.status("VmHWM")
        grow = (peak[0] - base) / 1024
        if cut:
            c.figure("flood cut short", cut)
        c.figure("wrong-password flood", f"{len(threads) // n} waves of {n} ({len(threads)} requests) in {flood_s:.1f} s, "
                 f"answers {dict(sorted(hist.items()))}, per request median {pct(times, .5):.2f} s, "
                 f"max {max(times):.2f} s")
        c.figure("VmRSS", f"baseline {base / 1024:.0f} MiB, peak {peak[0] / 1024:.0f} MiB (VmHWM {hwm / 1024:.0f} MiB), "
                 f"after {after / 1024:.0f} MiB: grew {grow:.0f} MiB")
        c.check(b.alive(), "the server survives the flood")
        odd = {k: v for k, v in hist.items() if k.split()[-1] not in ("401", "429", "503")}
        c.check(not odd, "every flood request is answered 401 or 429 (or 503)", str(odd))
        c.check(grow < RSS_BOUND_MIB, f"resident memory grows by less than {RSS_BOUND_MIB} MiB", f"{grow:.0f} MiB")
        # the admin (whose client was in use) and another user from another address log in
        t = time.monotonic()
        st = api.json("GET", "/pulp/api/v3/repositories/container/container/", timeout=60)[0]
        right = time.monotonic() - t
        t = time.monotonic()
        try:
            st2 = http_req(b.port, "GET", "/pulp/api/v3/repositories/container/container/",
                           {"Authorization": basic("reader", reader_pw)}, timeout=60, source="127.0.3.1")[0]
        except OSError as e:
            st2 = type(e).__name__
        right2 = time.monotonic() - t
        c.figure("the right password after the flood",
                 f"admin {st} in {right:.2f} s; reader (not cached, from 127.0.3.1) {st2} in {right2:.2f} s")
        c.check(st == 200 and right < LOGIN_BOUND_S, f"the admin's right password is answered 200 within "
                f"{LOGIN_BOUND_S:.0f} s", f"{st} after {right:.2f} s")
        c.check(st2 == 200 and right2 < LOGIN_BOUND_S, f"another user's right password (another address) is "
                f"answered 200 within {LOGIN_BOUND_S:.0f} s", f"{st2} after {right2:.2f} s")
    finally:
        b.stop()


# --- d. slowloris and idle floods -----------------------------------------------------------------

SERVE_BOUND_S = 15.0


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_flood(port, count, payload, read_response, settle, after_sent=None):
    """Opens `count` connections (non-blocking, all at once), sends payload on each, calls
    after_sent() once every payload is out (or after 10 s), and, with read_response, reads each
    one's first response; for `settle` seconds. Returns (the sockets, {status: how many})."""
    sel = selectors.DefaultSelector()
    socks, answered = [], {}
    pending = {}
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        socks.append(s)
        pending[s] = b""
        sel.register(s, selectors.EVENT_WRITE)
    t0 = time.monotonic()
    deadline = t0 + settle
    sent = set()
    while pending and time.monotonic() < deadline:
        if after_sent and (len(sent) == len(socks) or time.monotonic() - t0 > 10):
            after_sent()
            after_sent = None
        for key, ev in sel.select(timeout=0.2):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE and s not in sent:
                try:
                    s.send(payload)
                    sent.add(s)
                except OSError:
                    sel.unregister(s)
                    pending.pop(s, None)
                    continue
                if read_response:
                    sel.modify(s, selectors.EVENT_READ)
                else:
                    sel.unregister(s)
                    pending.pop(s, None)
            elif ev & selectors.EVENT_READ:
                try:
                    b = s.recv(65536)
                except OSError:
                    b = b""
                if not b:
                    sel.unregister(s)
                    pending.pop(s, None)
                    continue
                pending[s] += b
                if b"\r\n\r\n" in pending[s]:
                    status = pending[s].split(b" ", 2)[1].decode(errors="replace")
                    answered[status] = answered.get(status, 0) + 1
                    sel.unregister(s)
                    pending.pop(s, None)
    sel.close()
    if after_sent:
        after_sent()
    return socks, answered


def time_to_serve(port, limit):
    """Seconds until a fresh client's GET /v2/ is answered (new attempts after a refused or
    closed connection), or None within `limit`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            st = http_req(port, "GET", "/v2/", timeout=max(0.5, limit - (time.monotonic() - t0)))[0]
            if st in (200, 401):
                return time.monotonic() - t0
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    return None


def case_d(c):
    nofile = 1024
    have = raise_nofile(4096)
    slow_n, idle_n = 1100, 2000
    if have < idle_n + 200:
        idle_n = slow_n = max(100, have - 200)
        c.figure("flood size", f"lowered to {idle_n}: this process may open {have} files")
    # the connection bounds at their defaults (BERTH_HEADER_TIMEOUT, BERTH_IDLE_TIMEOUT,
    # BERTH_BUSY_TIMEOUT, BERTH_MAX_CONNECTIONS): what ships must hold
    b = Berth("d", nofile=nofile)
    b.start()
    try:
        fds0 = b.open_fds()
        c.figure("server", f"open-files limit {nofile} (soft and hard), {fds0} descriptors open at rest, "
                 "connection settings at their defaults")
        limit = SERVE_BOUND_S + 15   # how long to wait for the figure; the check's bound is lower
        partial = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n"
        for what, n, payload, answer, trickle in (
                ("slowloris", slow_n, partial, False, False),
                ("trickling slowloris (a header byte per second)", slow_n, partial + b"X-Slow: ", False, True),
                ("idle keep-alive", idle_n, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n", True, False)):
            # a new client tries from the moment every flood connection has sent its bytes
            probe = {}
            done = threading.Event()

            def start_probe():
                probe["sent"] = time.monotonic() - t0
                probe["fds"] = b.open_fds()

                def run():
                    probe["served"] = time_to_serve(b.port, limit)
                    done.set()

                probe["thread"] = threading.Thread(target=run, daemon=True)
                probe["thread"].start()

            t0 = time.monotonic()
            socks, answered = open_flood(b.port, n, payload, answer, 20 if answer else 10, start_probe)
            while trickle and not done.wait(1.0):
                for s_ in socks:
                    try:
                        s_.send(b"x")
                    except OSError:
                        pass
            probe["thread"].join(limit + 5)
            served = probe.get("served")
            c.figure(what, f"{len(socks)} connections sent their bytes within {probe['sent']:.1f} s"
                     + (f", answered {dict(sorted(answered.items()))}" if answer else "")
                     + f" (server at {probe['fds']} descriptors); a new client was served after "
                     + (f"{served:.1f} s" if served is not None else f"more than {limit:.0f} s"))
            c.check(served is not None and served < SERVE_BOUND_S,
                    f"with {len(socks)} {what} connections held, a new client is served within "
                    f"{SERVE_BOUND_S:.0f} s", f"{served}")
            for s_ in socks:
                s_.close()
            c.check(time_to_serve(b.port, 30) is not None, f"served again once the {what} connections close")
        c.check(b.alive(), "the server survives both floods")
    finally:
        b.stop()


# --- e. kill -9 in the middle of pushes -----------------------------------------------------------

RETRY_BOUND_S = 30.0


def case_e(c):
    b = Berth("e")
    b.start()
    api = Api(b)
    rng = random.Random(5)
    try:
        # skopeo: 3 images of 3 layers of 8 MiB; raw: 3 images of 2 layers of 3 MiB sent in
        # chunks of 512 KiB with short pauses; tag writers: 4 threads pushing one manifest under
        # new tags in a loop (each push is a new version, so a repository write is nearly
        # always in progress). The kill lands in the middle of all of them; twice, since a
        # kill can still fall between two repository writes.
        sk = {}
        for i in range(3):
            tag = f"s{i}"
            manifest, blobs = image(tag, [[("f", rng.randbytes(8 * MIB - 2048))] for _ in range(3)])
            layout = os.path.join(WORK, f"e-layout-{i}")
            sk[tag] = (write_layout(layout, tag, manifest, blobs), layout)
        raw_imgs = {f"r{i}": image(f"r{i}", [[("f", rng.randbytes(3 * MIB - 2048))] for _ in range(2)])
                    for i in range(3)}
        for rnd in range(2):
            crash_round(c, b, api, f"round {rnd}: ", f"-{rnd}", sk, raw_imgs)
    finally:
        b.stop()


def crash_round(c, b, api, label, suffix, sk, raw_imgs):
    sk_name, raw_name, tags_name = f"chaos/crash{suffix}", f"chaos/crash-raw{suffix}", f"chaos/crash-tags{suffix}"
    statuses, done_before, chunks = [], {}, threading.Event()
    api.tokens.clear()
    tag_manifest, tag_blobs = image("m", [[("m.txt", f"tags {NONCE}".encode())]])
    tag_digest = "sha256:" + hashlib.sha256(tag_manifest).hexdigest()
    for _, data in tag_blobs:
        api.push_blob(tags_name, data, statuses)
    acked, killed, steady = [], threading.Event(), threading.Event()

    def raw_push(tag, stats, pause, record=None):
        manifest, blobs = raw_imgs[tag]
        t = time.monotonic()
        for _, data in blobs:
            api.push_blob(raw_name, data, stats, chunk=512 * 1024, pause=pause, on_chunk=chunks.set)
        api.push_manifest(raw_name, tag, manifest, stats)
        if record is not None:
            record[tag] = True
        return time.monotonic() - t

    def tag_writer(i):
        k = 0
        while not killed.is_set():
            api.push_manifest(tags_name, f"m{i}-{k}", tag_manifest, statuses)
            acked.append(f"m{i}-{k}")
            if len(acked) >= 8:
                steady.set()
            k += 1

    procs = [skopeo_push(b, sk[t][1], t, f"{sk_name}:{t}") for t in sk]
    pool = ThreadPoolExecutor(max_workers=len(raw_imgs) + 4)
    futs = [pool.submit(raw_push, t, statuses, 0.15, done_before) for t in raw_imgs]
    futs += [pool.submit(tag_writer, i) for i in range(4)]
    chunks.wait(60)     # uploads under way
    steady.wait(60)     # and the tag writers committing versions one after the other
    time.sleep(random.uniform(0.1, 0.4))
    t_kill = time.monotonic()
    killed.set()
    b.kill9()
    for p in procs:
        finish(p, 60)
    for f in futs:
        try:
            f.result(60)
        except Exception:  # noqa: BLE001 - interrupted by the kill, as intended
            pass
    pool.shutdown()
    before = [t for t, p in zip(sk, procs) if p.returncode == 0]
    early = sorted({s_ for s_ in statuses if s_ == 429 or s_ >= 500})
    c.figure(f"{label}at the kill", f"{len(before)} of {len(sk)} skopeo pushes and {len(done_before)} of "
             f"{len(raw_imgs)} raw pushes had finished, {len(acked)} tags acknowledged; "
             f"{len(statuses)} raw requests answered" + (f", statuses {early} among them" if early else ""))
    ready = b.start()
    c.figure(f"{label}restart on the same data directory", f"ready {time.monotonic() - t_kill:.1f} s after the "
             f"kill ({ready:.1f} s from exec)")
    # nothing partial visible: whatever tags exist are whole; every acknowledged tag exists
    api.tokens.clear()
    for name in (sk_name, raw_name, tags_name):
        tags = api.tags(name)
        why = [w for w in (api.verify_tag(name, t) for t in tags) if w]
        c.check(not why, f"{label}after the restart every listed tag of {name} ({len(tags)}) is whole", f"{why[:3]}")
        if name == tags_name:
            lost = sorted(set(acked) - set(tags))
            c.check(not lost, f"{label}every acknowledged tag of {name} ({len(acked)}) is there", f"lost {lost[:5]}")
    unfinished = [d for t, (_, blobs) in raw_imgs.items() if t not in done_before for d, _ in blobs]
    # a blob of an unfinished raw push is either absent or whole, never partial
    partial = []
    for d in unfinished:
        st, data = api.blob(raw_name, d)
        if st == 200 and "sha256:" + hashlib.sha256(data).hexdigest() != d:
            partial.append(d)
    c.check(not partial, f"{label}no blob of an interrupted upload is served partially", f"{partial[:3]}")
    # retry everything at once
    t0 = time.monotonic()
    retry_stats = []

    def retry_tag(i):
        t = time.monotonic()
        api.push_manifest(tags_name, f"after-{i}", tag_manifest, retry_stats)
        return time.monotonic() - t

    procs = [skopeo_push(b, sk[t][1], t, f"{sk_name}:{t}") for t in sk]
    res = parallel(lambda kind, x: raw_push(x, retry_stats, 0.0) if kind == "raw" else retry_tag(x),
                   [("raw", t) for t in raw_imgs] + [("tag", i) for i in range(4)])
    procs = [finish(p, 120) for p in procs]
    times = [p.seconds for p in procs] + [r for r in res if isinstance(r, float)]
    c.figure(f"{label}retries right after the restart", f"slowest {max(times):.1f} s, all done "
             f"{time.monotonic() - t0:.1f} s after they started")
    failed = [p.text[-300:] for p in procs if p.returncode != 0] + [repr(r) for r in res if isinstance(r, Exception)]
    c.check(not failed, f"{label}every retried push succeeds", f"{failed[:3]}")
    c.check(not any(too_many(p.text) for p in procs) and 429 not in retry_stats,
            f"{label}no retried push got a 429", f"raw statuses {sorted(set(retry_stats))}")
    c.check(max(times) < RETRY_BOUND_S, f"{label}every retried push finishes within {RETRY_BOUND_S:.0f} s",
            f"slowest {max(times):.1f} s")
    for name, want in ((sk_name, {t: sk[t][0] for t in sk}),
                       (raw_name, {t: "sha256:" + hashlib.sha256(m).hexdigest() for t, (m, _) in raw_imgs.items()}),
                       (tags_name, {t: tag_digest for t in acked + [f"after-{i}" for i in range(4)]})):
        tags = api.tags(name)
        why = [w for w in (api.verify_tag(name, t, want.get(t)) for t in tags) if w]
        extra = sorted(set(tags) - set(want))
        missing = sorted(set(want) - set(tags))
        # a tag whose push was cut by the kill may or may not have landed
        if name == tags_name:
            extra = [t for t in extra if not t.startswith("m")]
        c.check(not missing and not extra and not why,
                f"{label}{name} lists every pushed tag ({len(want)}), each whole and hash-correct",
                f"missing {missing[:5]}, unexpected {extra[:5]}; {why[:3]}")


# --- f. remote URLs that point where they must not ------------------------------------------------

def case_f(c):
    b = Berth("f")
    b.start()
    api = Api(b)
    try:
        refused = ["http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://0.0.0.0/",
                   "http://0xa9.254.169.254/", "http://169.254.170.2/v2/credentials", "http://[::ffff:169.254.169.254]/"]
        for i, url in enumerate(refused):
            st, d = api.json("POST", "/pulp/api/v3/remotes/container/container/",
                             {"name": f"ssrf-{i}", "url": url, "upstream_name": "x"})
            c.check(st == 400 and isinstance(d, dict) and "url" in d, f"a remote with url {url} is refused (400 on `url`)",
                    f"{st} {d}")
        st, d = api.json("POST", "/pulp/api/v3/remotes/container/container/", {
            "name": "ssrf-proxy", "url": "http://127.0.0.1:9", "upstream_name": "x",
            "proxy_url": "http://169.254.169.254:80"})
        c.check(st == 400 and isinstance(d, dict) and "proxy_url" in d,
                "a remote with proxy_url http://169.254.169.254:80 is refused (400 on `proxy_url`)", f"{st} {d}")
        # an update cannot sneak it in either
        st, d = api.json("POST", "/pulp/api/v3/remotes/container/container/",
                         {"name": "ssrf-ok", "url": f"http://127.0.0.1:{b.port}", "upstream_name": "x"})
        c.check(st == 201, f"a remote with url http://127.0.0.1:{b.port} is accepted by default", f"{st} {d}")
        if st == 201:
            st, d = api.json("PATCH", d["pulp_href"], {"url": "http://169.254.169.254/"})
            c.check(st == 400 or (st == 202 and api.wait_task(d["task"]).get("state") == "failed"),
                    "updating that remote's url to http://169.254.169.254/ is refused", f"{st} {d}")
    finally:
        b.stop()
    b = Berth("f2", env={"BERTH_REMOTE_PRIVATE_NETWORKS": "deny"})
    b.start()
    api = Api(b)
    try:
        for i, url in enumerate([f"http://127.0.0.1:{b.port}", "http://2130706433/", "http://10.0.0.1/"]):
            st, d = api.json("POST", "/pulp/api/v3/remotes/container/container/",
                             {"name": f"deny-{i}", "url": url, "upstream_name": "x"})
            c.check(st == 400 and isinstance(d, dict) and "url" in d,
                    f"with BERTH_REMOTE_PRIVATE_NETWORKS=deny a remote with url {url} is refused", f"{st} {d}")
    finally:
        b.stop()


# --- g. a full disk -------------------------------------------------------------------------------

def tree_bytes(d):
    total, files = 0, 0
    for root, _, names in os.walk(d):
        for n in names:
            try:
                total += os.path.getsize(os.path.join(root, n))
                files += 1
            except OSError:
                pass
    return files, total


def free_bytes(path):
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize


def case_g(c):
    if AWS:
        c.skipped = "the embedded store only"
        return
    if os.geteuid() != 0:
        c.skipped = "needs root to mount a tmpfs"
        return
    mnt = os.path.join(WORK, "g-tmpfs")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "chaos-tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        c.skipped = f"cannot mount a tmpfs: {r.stderr.strip()}"
        return
    MOUNTS.append(mnt)
    b = None
    try:
        data = os.path.join(mnt, "data")
        os.makedirs(data)
        b = Berth("g", data_dir=data)
        b.start()
        api = Api(b)
        api.json("GET", "/pulp/api/v3/repositories/container/container/")
        free0 = free_bytes(mnt)
        big = os.path.join(WORK, "g-big.bin")
        h = hashlib.sha256()
        with open(big, "wb") as f:
            for _ in range(100):
                chunk = os.urandom(MIB)
                h.update(chunk)
                f.write(chunk)
        digest = "sha256:" + h.hexdigest()
        name = "chaos/full"
        st, hd, body = api.reg("POST", name, "blobs/uploads/")
        c.check(st == 202, "an upload session starts", f"{st} {body[:200]!r}")
        loc = path_of(hd.get("location", "/"))
        sep = "&" if "?" in loc else "?"
        t0 = time.monotonic()
        st, body = raw_request(b.port, "PUT", f"{loc}{sep}digest={digest}", {
            "Authorization": "Bearer " + api.token(name), "Content-Type": "application/octet-stream"},
            big, 100 * MIB)
        put_s = time.monotonic() - t0
        c.figure("100 MiB blob into 64 MiB", f"answered {st} in {put_s:.1f} s: {body[:300]!r}")
        try:
            err = json.loads(body)["errors"][0]
            text = (err.get("message", "") + " " + str(err.get("detail", ""))).lower()
        except (ValueError, KeyError, IndexError, TypeError):
            err, text = None, ""
        c.check(st in (507, 500) and err is not None, "the oversized push is answered 507 (or 500) with an OCI error",
                f"{st} {body[:200]!r}")
        c.check("space" in text or "full" in text, "the error says the server is out of space", text or repr(body[:200]))
        time.sleep(0.5)
        files, left = tree_bytes(os.path.join(data, "uploads"))
        tfiles, tleft = tree_bytes(os.path.join(data, "tmp"))
        free1 = free_bytes(mnt)
        c.figure("after the refused push", f"uploads/ {files} files {left} bytes, tmp/ {tfiles} files {tleft} bytes, "
                 f"free {free0 // MIB} MiB before, {free1 // MIB} MiB after")
        c.check(left == 0 and tleft == 0, "no partial file is left in uploads/ or tmp/",
                f"uploads/ {left} bytes, tmp/ {tleft} bytes")
        c.check(free1 >= free0 - 4 * MIB, "the space comes back", f"{free0 // MIB} MiB before, {free1 // MIB} MiB after")
        # fill the rest
        filler = os.path.join(mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (MIB, 64 * 1024, 4096, 512, 1):
                while True:
                    try:
                        if os.write(fd, b"\0" * size) < size:
                            break
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        c.figure("filler", f"{os.path.getsize(filler) // MIB} MiB, {free_bytes(mnt)} bytes free")
        t0 = time.monotonic()
        try:
            st, d = api.json("POST", "/pulp/api/v3/repositories/container/container/", {"name": "full-disk"}, timeout=30)
        except OSError as e:
            st, d = type(e).__name__, None
        full_s = time.monotonic() - t0
        c.figure("repository create on a full disk", f"{st} in {full_s:.1f} s: {str(d)[:200]}")
        c.check(isinstance(st, int) and full_s < 10 and (st < 500 or isinstance(d, dict)),
                "a repository create on a full disk answers at once (success or a clean error)", f"{st} {d}")
        c.check(b.alive(), "the server survives the full disk")
        os.remove(filler)
        # space is back: push and create without a restart
        manifest, blobs = image("after", [[("after.txt", f"after {NONCE}".encode())]])
        stats = []
        try:
            for _, blob in blobs:
                api.push_blob("chaos/after", blob, stats)
            api.push_manifest("chaos/after", "1", manifest, stats)
            pushed = ""
        except Exception as e:  # noqa: BLE001
            pushed = repr(e)
        c.check(not pushed, "once space returns a push succeeds without a restart", pushed)
        if not pushed:
            why = api.verify_tag("chaos/after", "1", "sha256:" + hashlib.sha256(manifest).hexdigest())
            c.check(not why, "and pulls back whole", why)
        st, d = api.json("POST", "/pulp/api/v3/repositories/container/container/", {"name": "after-full"})
        c.check(st == 201, "once space returns a repository create succeeds without a restart", f"{st} {d}")
        bad, count = [], 0
        for root, _, names in os.walk(os.path.join(data, "blobs")):
            for n in names:
                count += 1
                p = os.path.join(root, n)
                algo = os.path.basename(os.path.dirname(root))
                with open(p, "rb") as f:
                    if hashlib.new(algo, f.read()).hexdigest() != n:
                        bad.append(p)
        c.check(count > 0 and not bad, f"every file in the blob store ({count}) hashes to its name", f"{bad[:3]}")
    finally:
        if b:
            b.stop()
        umount(mnt)


def umount(mnt):
    if mnt in MOUNTS:
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        MOUNTS.remove(mnt)


# --- runner ---------------------------------------------------------------------------------------

CASES = [
    ("a", "concurrent pushes into one new repository, then an orphan cleanup", case_a),
    ("b", "racing creates of one name", case_b),
    ("c", "a flood of wrong passwords", case_c),
    ("d", "slowloris and idle keep-alive floods beyond the open-files limit", case_d),
    ("e", "kill -9 in the middle of pushes, restart and retry at once", case_e),
    ("f", "remote URLs refused by the SSRF policy", case_f),
    ("g", "a full disk", case_g),
]


def cleanup():
    for p in PROCS:
        try:
            stop_proc(p, grace=10)
        except Exception:  # noqa: BLE001
            pass
    for m in list(MOUNTS):
        umount(m)
    if os.environ.get("CHAOS_KEEP") == "1":
        log(f"keeping {WORK} (CHAOS_KEEP=1)")
    else:
        shutil.rmtree(WORK, ignore_errors=True)


def main():
    want = sys.argv[1:] or [k for k, _, _ in CASES]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log(f"berth: {BERTH_BIN} ({BACKEND} backend), work dir {WORK}")
    if not os.access(BERTH_BIN, os.X_OK):
        log(f"FAIL no berth binary at {BERTH_BIN}\n0 passed, 1 failed")
        return 1
    if shutil.which("skopeo") is None:
        log("FAIL skopeo is not installed\n0 passed, 1 failed")
        return 1
    results = []
    t_all = time.monotonic()
    try:
        for key, title, fn in CASES:
            if key not in want:
                continue
            c = Case(key, title)
            log(f"--- {key}. {title}")
            t0 = time.monotonic()
            try:
                fn(c)
            except Exception:  # noqa: BLE001 - a crash of the case is a failure of it
                c.check(False, "the case ran to its end", traceback.format_exc().strip().splitlines()[-1])
                traceback.print_exc(file=sys.stdout)
            c.seconds = time.monotonic() - t0
            if c.skipped:
                log(f"SKIP {key}: {c.skipped}")
            elif c.failed:
                for f in os.listdir(WORK):
                    if f.startswith(f"berth-{key}"):
                        log(f"     {key}: last lines of {f}:")
                        with open(os.path.join(WORK, f), errors="replace") as fh:
                            for line in fh.readlines()[-8:]:
                                log("       " + line.rstrip()[:300])
            results.append(c)
    finally:
        cleanup()
    log(f"=== summary ({BACKEND} backend, {time.monotonic() - t_all:.0f} s)")
    for c in results:
        state = "SKIP" if c.skipped else ("FAIL" if c.failed else "PASS")
        log(f"{state} {c.key}. {c.title}: {c.seconds:.1f} s, {c.passed} passed, {c.failed} failed"
            + (f" ({c.skipped})" if c.skipped else ""))
        for label, value in c.figures:
            log(f"       {label}: {value}")
    passed, failed = sum(c.passed for c in results), sum(c.failed for c in results)
    log(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
