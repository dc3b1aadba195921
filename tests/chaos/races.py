"""Torture cases a and b: concurrent pushes into one new repository, racing creates of one name."""
import hashlib
import os
import random
import time
import urllib.parse

from images import finish, image, skopeo_push, too_many, write_layout
from lib import ADMIN, NONCE, WORK, Api, Berth, parallel


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
