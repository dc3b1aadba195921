"""Torture case f: remote URLs that point at metadata services, unspecified, link-local or (when
denied) private addresses are refused.
"""
from lib import Api, Berth


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
