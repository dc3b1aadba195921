"""Shared plumbing of Berth's torture suite (tests/chaos/run.py): the run's settings and state
(the work folder, every process started and tmpfs mounted, and their cleanup), logging and
results, Berth processes, HTTP and the management API.
"""
import base64
import hashlib
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
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
PROCS = []          # every process this run started, stopped on exit
MOUNTS = []         # every tmpfs this run mounted, unmounted on exit


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


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else 0


# --- cleanup ------------------------------------------------------------------------------------

def umount(mnt):
    if mnt in MOUNTS:
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        MOUNTS.remove(mnt)


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
