"""Images for Berth's torture suite: OCI images built in memory, OCI image layouts on disk, and
pushes of them with skopeo.
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time

from lib import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, PROCS, PW, WORK


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
