#!/usr/bin/env python3
"""The scale benchmark's client (bench/scale.sh runs it): fills a registry with history over
plain HTTP with keep-alive, then times the reads whose cost must not grow with it.

  scale.py fill  BASE REPO N MOVES [TOKEN]   # N images tagged t<i>, then MOVES moves of `latest`
  scale.py named BASE N USER:PASSWORD         # N repositories and N distributions (Pulp API)
  scale.py time  BASE PATH RUNS [TOKEN|user:password]  # median and p95 of RUNS GETs, in ms

`fill` prints one JSON object: the median push time (manifest PUT, ms) of the first and the
last 100 images. Standard library only; loopback only.
"""
import base64
import hashlib
import http.client
import json
import statistics
import sys
import time
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Client:
    def __init__(self, base, auth=None):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.auth = auth

    def request(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.auth:
            h["Authorization"] = self.auth
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, r.headers, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    raise

    def blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, f"upload start: {status}"
        loc = headers["Location"]
        if loc.startswith("http"):
            u = urllib.parse.urlparse(loc)
            loc = u.path + ("?" + u.query if u.query else "")
        sep = "&" if "?" in loc else "?"
        status, _, body = self.request(
            "PUT",
            f"{loc}{sep}digest={digest}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert status == 201, f"upload: {status} {body[:200]}"
        return digest

    def manifest(self, repo, ref, data):
        status, _, body = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", body=data, headers={"Content-Type": OCI_MANIFEST}
        )
        assert status == 201, f"manifest {ref}: {status} {body[:200]}"


def auth_header(arg):
    if not arg:
        return None
    if ":" in arg:
        return "Basic " + base64.b64encode(arg.encode()).decode()
    return "Bearer " + arg


def fill(base, repo, n, moves, token=None):
    c = Client(base, auth_header(token))
    layer = c.blob(repo, b"the one layer every image shares")
    manifests = []
    times = []
    for i in range(n):
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"i": str(i)}}}).encode()
        cd = c.blob(repo, config)
        m = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 32}
                ],
            }
        ).encode()
        t0 = time.perf_counter()
        c.manifest(repo, f"t{i}", m)
        times.append((time.perf_counter() - t0) * 1000)
        manifests.append(m)
        if (i + 1) % 2000 == 0:
            recent = statistics.median(times[-2000:])
            print(f"  {i + 1} images; median push of the last 2000: {recent:.2f} ms", file=sys.stderr, flush=True)
    move_times = []
    for j in range(moves):
        t0 = time.perf_counter()
        c.manifest(repo, "latest", manifests[j % n])
        move_times.append((time.perf_counter() - t0) * 1000)
        if (j + 1) % 2000 == 0:
            recent = statistics.median(move_times[-2000:])
            print(f"  {j + 1} moves of latest; median move of the last 2000: {recent:.2f} ms", file=sys.stderr, flush=True)
    k = min(100, n)
    out = {
        "push_first_ms": statistics.median(times[:k]),
        "push_last_ms": statistics.median(times[-k:]),
    }
    if moves:
        k = min(100, moves)
        out["move_first_ms"] = statistics.median(move_times[:k])
        out["move_last_ms"] = statistics.median(move_times[-k:])
    print(json.dumps(out))


def named(base, n, auth):
    """N container repositories, and N distributions (each one task), through the Pulp API."""
    c = Client(base, auth_header(auth))
    api = "/pulp/api/v3"
    for i in range(n):
        body = json.dumps({"name": f"named-{i:06}"}).encode()
        status, _, data = c.request(
            "POST", f"{api}/repositories/container/container/", body=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 201, f"repository {i}: {status} {data[:200]}"
        body = json.dumps({"name": f"named-{i:06}", "base_path": f"named-{i:06}/app"}).encode()
        status, _, data = c.request(
            "POST", f"{api}/distributions/container/container/", body=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 202, f"distribution {i}: {status} {data[:200]}"
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} repositories and distributions", file=sys.stderr, flush=True)


def timed(base, path, runs, auth=None):
    c = Client(base, auth_header(auth))
    headers = {"Accept": OCI_MANIFEST} if "/manifests/" in path else {}
    status, _, body = c.request("GET", path, headers=headers)
    assert status == 200, f"{path}: {status} {body[:300]}"
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        status, _, _ = c.request("GET", path, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert status == 200
    samples.sort()
    print(
        json.dumps(
            {
                "median_ms": round(statistics.median(samples), 2),
                "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
                "body": json.loads(body) if body[:1] in (b"{", b"[") else None,
            }
        )
    )


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fill":
        fill(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] if len(sys.argv) > 6 else None)
    elif cmd == "named":
        named(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "time":
        timed(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        sys.exit(__doc__)
