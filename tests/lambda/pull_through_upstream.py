"""An upstream for the pull-through checks: Debian's docker-registry on a loopback port, and in
front of it a proxy that answers blob GETs with a 307 to the registry (another origin), as
registries on a CDN or object store do. Also `sqs`, one SQS query-protocol call to moto."""
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from lambdatest import AWS_ENV, MOTO, free_port


class Upstream:
    def __init__(self, work):
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        port = free_port()
        root = os.path.join(work, "upstream")
        os.makedirs(root, exist_ok=True)
        cfg = os.path.join(root, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                    f"http:\n  addr: 127.0.0.1:{port}\n")
        self.proc = subprocess.Popen([binary, "serve", cfg], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(root, "log"), "w"))
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        target = self.url

        class Redirecting(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.forward(head=True)

            def do_GET(self):
                if "/blobs/sha256:" in self.path:
                    self.send_response(307)
                    self.send_header("Location", target + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.forward(head=False)

            def forward(self, head):
                req = urllib.request.Request(target + self.path, method="HEAD" if head else "GET")
                for k in ("Accept", "Authorization"):
                    if self.headers.get(k):
                        req.add_header(k, self.headers[k])
                try:
                    r = urllib.request.urlopen(req, timeout=10)
                    status, headers, data = r.status, r.headers, r.read()
                except urllib.error.HTTPError as e:
                    status, headers, data = e.code, e.headers, e.read()
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
        self.redirecting_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _blob(self, name, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(f"{self.url}/v2/{name}/blobs/uploads/", method="POST", data=b"")
        loc = urllib.request.urlopen(req, timeout=10).headers["Location"]
        sep = "&" if "?" in loc else "?"
        put = urllib.request.Request(urllib.parse.urljoin(self.url, loc) + f"{sep}digest={digest}", method="PUT",
                                     data=data, headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(put, timeout=10)
        return digest

    def push_image(self, name, tag, layer):
        """An OCI image of one layer at NAME:TAG; its manifest bytes and the layer's digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        cd, ld = self._blob(name, config), self._blob(name, layer)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)}],
        }).encode()
        req = urllib.request.Request(f"{self.url}/v2/{name}/manifests/{tag}", method="PUT", data=manifest,
                                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        urllib.request.urlopen(req, timeout=10)
        return manifest, ld


def sqs(action, **params):
    """One SQS query-protocol call to moto; the XML answer, or None when it failed."""
    form = urllib.parse.urlencode(dict(params, Action=action, Version="2012-11-05")).encode()
    req = urllib.request.Request(MOTO.rstrip("/") + "/", data=form, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={AWS_ENV['AWS_ACCESS_KEY_ID']}/20261201/us-east-1/sqs/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    try:
        return urllib.request.urlopen(req, timeout=15).read().decode()
    except OSError as e:
        print(f"     sqs {action}: {e}")
        return None
