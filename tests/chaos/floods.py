"""Torture cases c and d: a flood of wrong passwords, slowloris and idle keep-alive floods."""
import http.client
import random
import resource
import selectors
import socket
import threading
import time
import urllib.parse

from lib import Api, Berth, basic, http_req, pct


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
