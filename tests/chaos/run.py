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

The cases live in races.py (a, b), floods.py (c, d), faults.py (e, g) and ssrf.py (f); lib.py
(the run's state and its cleanup, Berth processes, HTTP) and images.py (images, skopeo) hold
what they share.
"""
import os
import shutil
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:   # the modules below sit next to this file, whatever the working directory
    sys.path.insert(0, HERE)

from faults import case_e, case_g  # noqa: E402 - after the path above
from floods import case_c, case_d  # noqa: E402
from lib import BACKEND, BERTH_BIN, WORK, Case, cleanup, log  # noqa: E402
from races import case_a, case_b  # noqa: E402
from ssrf import case_f  # noqa: E402


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
