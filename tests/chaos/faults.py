"""Torture cases e and g: kill -9 in the middle of pushes, a full disk."""
import errno
import hashlib
import json
import os
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from images import finish, image, skopeo_push, too_many, write_layout
from lib import AWS, MIB, MOUNTS, NONCE, WORK, Api, Berth, parallel, path_of, raw_request, umount


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
