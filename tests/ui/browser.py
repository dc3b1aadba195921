#!/usr/bin/env python3
"""The web page in a real browser: Debian's chromium, driven through chromedriver by selenium.

A Berth (the release binary, embedded store, token auth on) on a loopback port syncs a small
repository from a local docker-registry (the sync tests' fixtures: tags v1.0 and multi, a
two-platform OCI index, then v2.0 in a second sync). The browser is sent to the login form,
logs in, opens the synced repository and checks that the versions, their content summaries,
the tags and their digests shown are the API's, and that the distribution's `podman pull`
line is exact; a version's page shows what it added; a running task's page follows the task
until it fails and shows its error, without reloading; logout ends the session. Screenshots
at 1280x900 and at a phone's 390x844 go to target/ui-screenshots/ and are copied to
docs/screenshots/.

  BERTH_BIN=target/release/berth target/ui-venv/bin/python tests/ui/browser.py

Environment: BERTH_BIN (the Berth under test), CHROMIUM (/usr/bin/chromium), CHROMEDRIVER
(/usr/bin/chromedriver), UI_SHOTS (where screenshots are saved; target/ui-screenshots),
UI_DOCS (where they are copied; docs/screenshots; empty: not copied).
Needs: docker-registry, skopeo, chromium, chromium-driver, selenium (PyPI).
Loopback only, free ports, one temporary folder removed on exit with every process it started.
Prints `OK   name` / `FAIL name` lines and ends with `N passed, N failed`; exits non-zero if
anything failed.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(ROOT, "tests", "e2e", "fixtures", "sync_fixture.py")
BERTH_BIN = os.environ.get("BERTH_BIN", os.path.join(ROOT, "target", "release", "berth"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = os.environ.get("UI_SHOTS", os.path.join(ROOT, "target", "ui-screenshots"))
DOCS = os.environ.get("UI_DOCS", os.path.join(ROOT, "docs", "screenshots"))
PW = "ui-test-" + base64.b32encode(os.urandom(5)).decode().lower()

PASS, FAIL = 0, 0
PROCS = []


def check(name, fn):
    global PASS, FAIL
    t0 = time.time()
    try:
        fn()
        PASS += 1
        print(f"OK   {name} ({time.time() - t0:.1f} s)", flush=True)
        return True
    except Exception as e:  # noqa: BLE001 - a failed check, reported
        FAIL += 1
        print(f"FAIL {name}: {e}", flush=True)
        for line in traceback.format_exc().splitlines()[-8:]:
            print("       " + line, flush=True)
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, seconds=15):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


def start(cmd, log, env=None):
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    PROCS.append(p)
    return p


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in PROCS:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Api:
    """The management API as the admin (Basic auth)."""

    def __init__(self, base):
        self.base = base
        self.auth = "Basic " + base64.b64encode(f"admin:{PW}".encode()).decode()

    def call(self, method, path, body=None):
        url = path if path.startswith("http") else self.base + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": self.auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def wait_task(self, href, seconds=60):
        end = time.time() + seconds
        while time.time() < end:
            t = self.call("GET", href)
            if t["state"] in ("completed", "failed", "canceled"):
                return t
            time.sleep(0.2)
        raise RuntimeError(f"task {href} did not finish in {seconds} s")

    def sync(self, repo, remote):
        task = self.call("POST", repo["pulp_href"] + "sync/", {"remote": remote["pulp_href"]})["task"]
        t = self.wait_task(task)
        if t["state"] != "completed":
            raise RuntimeError(f"sync failed: {t.get('error')}")
        return t

    def tags(self, version_href):
        """Tag name -> manifest digest of a version."""
        out = {}
        q = urllib.parse.urlencode({"repository_version": version_href, "limit": 1000})
        for t in self.call("GET", f"/pulp/api/v3/content/container/tags/?{q}")["results"]:
            out[t["name"]] = self.call("GET", t["tagged_manifest"])["digest"]
        return out


def counts(c, sign):
    """A content summary part as the page writes it."""
    parts = []
    for ty, name in (("container.tag", "tag"), ("container.manifest", "manifest"),
                     ("container.blob", "blob"), ("container.signature", "signature")):
        n = c.get(ty, {}).get("count", 0)
        if n:
            parts.append(f"{sign}{n} {name}{'' if n == 1 else 's'}")
    return ", ".join(parts) or "none"


class SlowUpstream(BaseHTTPRequestHandler):
    """An upstream that thinks for a while and then knows nothing: a sync from it runs for a
    few seconds and fails."""
    delay = 3.0

    def do_GET(self):  # noqa: N802 - the handler's name
        time.sleep(self.delay)
        body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def run():
    for b in ("docker-registry", "skopeo"):
        if not shutil.which(b):
            print(f"FAIL missing: {b}\n0 passed, 1 failed")
            return 1
    for f in (BERTH_BIN, CHROMIUM, CHROMEDRIVER):
        if not os.access(f, os.X_OK):
            print(f"FAIL missing: {f}\n0 passed, 1 failed")
            return 1
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        print("FAIL missing: selenium (pip install selenium)\n0 passed, 1 failed")
        return 1

    w = tempfile.mkdtemp(prefix="berth-ui.")
    slow = None
    driver = None
    try:
        log = open(os.path.join(w, "servers.log"), "ab")
        # --- the upstream: docker-registry with the fixtures' images -----------------------
        up_port = free_port()
        os.makedirs(os.path.join(w, "up"))
        with open(os.path.join(w, "up", "config.yml"), "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {w}/up/data\n"
                    f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{up_port}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        reg = start(["docker-registry", "serve", os.path.join(w, "up", "config.yml")], log, env)
        wait_http(f"http://127.0.0.1:{up_port}/v2/", reg)
        with open(os.path.join(w, "policy.json"), "w") as f:
            f.write('{"default":[{"type":"insecureAcceptAnything"}]}')
        os.makedirs(os.path.join(w, "regd"))
        subprocess.run([sys.executable, FIXTURE, "layout", os.path.join(w, "images")], check=True,
                       stdout=subprocess.DEVNULL)

        def push(*tags):
            subprocess.run([sys.executable, FIXTURE, "push", "--catalog", os.path.join(w, "images", "catalog.json"),
                            "--state", os.path.join(w, "state.json"), "--registry", f"127.0.0.1:{up_port}",
                            "--repo", "fx/app", "--policy", os.path.join(w, "policy.json"),
                            "--registries-d", os.path.join(w, "regd"), *tags],
                           check=True, stdout=subprocess.DEVNULL, env=dict(env, TMPDIR=w))

        # --- Berth: embedded store, token auth on ---------------------------------------------
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        berth = start([BERTH_BIN, "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(w, "berth")], log,
                      dict(os.environ, BERTH_ADMIN_PASSWORD=PW, BERTH_TOKEN_AUTH="on", NO_COLOR="1"))
        wait_http(base + "/v2/", berth)
        api = Api(base)
        state = {}

        def synced_repository():
            push("v1.0", "multi")
            remote = api.call("POST", "/pulp/api/v3/remotes/container/container/",
                              {"name": "fx", "url": f"http://127.0.0.1:{up_port}", "upstream_name": "fx/app"})
            repo = api.call("POST", "/pulp/api/v3/repositories/container/container/",
                            {"name": "fx-app", "description": "the sync fixtures, mirrored"})
            api.sync(repo, remote)
            task = api.call("POST", "/pulp/api/v3/distributions/container/container/",
                            {"name": "fx", "base_path": "fx/app", "repository": repo["pulp_href"]})["task"]
            api.wait_task(task)
            push("v2.0")
            api.sync(repo, remote)
            repo = api.call("GET", repo["pulp_href"])
            assert repo["latest_version_href"].endswith("/versions/2/"), repo["latest_version_href"]
            state["repo"] = repo

        if not check("a repository synced twice from docker-registry (versions 1 and 2), a distribution",
                     synced_repository):
            return None

        # --- the browser ---------------------------------------------------------------------
        def browser():
            nonlocal driver
            from selenium.webdriver.chrome.service import Service
            opts = webdriver.ChromeOptions()
            opts.binary_location = CHROMIUM
            for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      "--window-size=1280,900", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                      f"--user-data-dir={w}/chrome", "--lang=en-US"):
                opts.add_argument(a)
            opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
            driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, log_output=os.path.join(w, "chromedriver.log")),
                                      options=opts)
            driver.set_page_load_timeout(30)
            note(f"chromium {driver.capabilities.get('browserVersion')}")

        if not check("chromium starts under chromedriver", browser):
            return None
        wait = WebDriverWait(driver, 20)
        os.makedirs(SHOTS, exist_ok=True)

        def emulate(width, height, mobile):
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

        def screenshot(name, width, height, mobile):
            """The page as a screen of that size shows it (the window's own size differs in headless
            mode)."""
            emulate(width, height, mobile)
            try:
                driver.save_screenshot(os.path.join(SHOTS, name))
            finally:
                driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

        def login():
            driver.get(base + "/ui/")
            assert driver.current_url.startswith(base + "/ui/login?next="), driver.current_url
            driver.find_element(By.ID, "username").send_keys("admin")
            driver.find_element(By.ID, "password").send_keys("not-the-password")
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".problem"))
            assert "Invalid user name or password" in driver.find_element(By.CSS_SELECTOR, ".problem").text
            assert not driver.get_cookies(), driver.get_cookies()
            driver.find_element(By.ID, "password").send_keys(PW)
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            wait.until(lambda d: d.current_url == base + "/ui/")
            cookies = {c["name"]: c for c in driver.get_cookies()}
            c = cookies["berth_session"]
            assert c["httpOnly"] and c["sameSite"] == "Strict" and c["path"] == "/ui", c
            assert driver.find_element(By.CSS_SELECTOR, ".who .user").text == "admin"

        if not check("the login form: a wrong password refused, the right one sets an HttpOnly SameSite=Strict cookie",
                     login):
            return None

        repo = state["repo"]

        def repository_page():
            driver.find_element(By.CSS_SELECTOR, 'tr[data-repository="fx-app"] a').click()
            wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("fx-app"))
            # versions and their summaries, as the API has them
            versions = api.call("GET", repo["versions_href"])["results"]
            rows = driver.find_elements(By.CSS_SELECTOR, "#versions tr[data-version]")
            assert [r.get_attribute("data-version") for r in rows] == [str(v["number"]) for v in versions], \
                [r.get_attribute("data-version") for r in rows]
            for r, v in zip(rows, versions):
                cell = lambda label: r.find_element(By.CSS_SELECTOR, f'td[data-label="{label}"]').text  # noqa: E731
                s = v["content_summary"]
                assert cell("Content") == counts(s["present"], ""), (cell("Content"), s)
                assert cell("Added") == counts(s["added"], "+"), (cell("Added"), s)
                assert cell("Removed") == counts(s["removed"], "−"), (cell("Removed"), s)
            served = driver.find_element(By.CSS_SELECTOR, '#versions tr[data-version="2"] td[data-label="Served by"]')
            assert served.text.strip() == "fx/app", served.text
            # the latest version's tags with their digests
            want = api.tags(repo["latest_version_href"])
            shown = {r.get_attribute("data-tag"): r.find_element(By.CSS_SELECTOR, "code.digest").text
                     for r in driver.find_elements(By.CSS_SELECTOR, "#tags tr[data-tag]")}
            assert shown == want, (shown, want)
            assert set(want) >= {"v1.0", "multi", "v2.0"}, want
            multi = driver.find_element(By.CSS_SELECTOR, '#tags tr[data-tag="multi"]')
            plats = [e.text for e in multi.find_elements(By.CSS_SELECTOR, ".platform")]
            assert plats == ["linux/amd64", "linux/arm64/v8"], plats
            # the pull line
            pull = driver.find_element(By.CSS_SELECTOR, "#distributions pre.pull code").text
            assert pull == f"podman pull 127.0.0.1:{port}/fx/app", pull
            note(f"{len(rows)} versions, {len(shown)} tags; {pull}")
            screenshot("repository-desktop.png", 1280, 900, False)

        check("the synced repository: versions, summaries, tags and digests as the API's; the podman pull line",
              repository_page)

        def phone():
            emulate(390, 844, True)
            try:
                driver.refresh()
                wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("fx-app"))
                width = driver.execute_script("return document.documentElement.scrollWidth")
                inner = driver.execute_script("return window.innerWidth")
                assert inner == 390 and width <= inner, f"the page is {width} px wide on a {inner} px screen"
                head = driver.find_element(By.CSS_SELECTOR, "#tags table thead")
                assert not head.is_displayed(), "tables become cards on a phone"
                driver.save_screenshot(os.path.join(SHOTS, "repository-phone.png"))
            finally:
                driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

        check("on a phone (390x844): no sideways scrolling, tables as cards", phone)

        def version_page():
            driver.get(base + "/ui/")
            driver.find_element(By.CSS_SELECTOR, 'tr[data-repository="fx-app"] a').click()
            driver.find_element(By.CSS_SELECTOR, '#versions tr[data-version="2"] a').click()
            wait.until(lambda d: "version 2" in d.find_element(By.TAG_NAME, "h1").text)
            v2 = repo["latest_version_href"]
            q = urllib.parse.urlencode({"repository_version_added": v2})
            added = {t["name"] for t in api.call("GET", f"/pulp/api/v3/content/container/tags/?{q}")["results"]}
            shown = {e.get_attribute("data-tag") for e in driver.find_elements(By.CSS_SELECTOR, "ul.changes.added li[data-tag]")}
            assert shown == added and "v2.0" in shown, (shown, added)
            screenshot("version-desktop.png", 1280, 900, False)

        check("a version's page: the tags it added, as the API lists them", version_page)

        def live_task():
            nonlocal slow
            slow = ThreadingHTTPServer(("127.0.0.1", 0), SlowUpstream)
            threading.Thread(target=slow.serve_forever, daemon=True).start()
            remote = api.call("POST", "/pulp/api/v3/remotes/container/container/",
                              {"name": "slow", "url": f"http://127.0.0.1:{slow.server_address[1]}",
                               "upstream_name": "nothing/here"})
            task = api.call("POST", repo["pulp_href"] + "sync/", {"remote": remote["pulp_href"]})["task"]
            tid = task.rstrip("/").rsplit("/", 1)[1]
            driver.get(f"{base}/ui/tasks/{tid}/")
            state = driver.find_element(By.CSS_SELECTOR, "h1 .state").text
            assert state in ("waiting", "running"), state
            assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "2"
            driver.execute_script("window.berthMarker = 1")
            WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "h1 .state").text == "failed")
            assert driver.execute_script("return window.berthMarker") == 1, "the page was reloaded"
            assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-live") is None
            error = driver.find_element(By.CSS_SELECTOR, "pre.error").text
            want = api.call("GET", task)["error"]["description"]
            assert error == want.strip(), (error, want)
            note(f"shown without a reload: failed, {error[:80]}")

        check("a running task's page follows it (no reload) until it fails, and shows its error", live_task)

        def tasks_page():
            driver.get(base + "/ui/tasks/")
            states = [r.get_attribute("data-state") for r in driver.find_elements(By.CSS_SELECTOR, "tr[data-task]")]
            api_states = [t["state"] for t in api.call("GET", "/pulp/api/v3/tasks/")["results"]]
            assert states == api_states, (states, api_states)

        check("the tasks page lists the API's tasks with their states", tasks_page)

        def no_console_errors():
            # the one expected: the 401 answering the wrong password sent through the form
            bad = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                   and not ("/ui/login " in e["message"] and "status of 401" in e["message"])]
            assert not bad, bad

        check("no errors in the browser console (content security policy, assets, script)", no_console_errors)

        def logout():
            driver.get(base + "/ui/")
            driver.find_element(By.CSS_SELECTOR, ".who button").click()
            wait.until(lambda d: d.current_url == base + "/ui/login")
            assert "berth_session" not in {c["name"] for c in driver.get_cookies()}
            driver.get(base + "/ui/remotes/")
            assert driver.current_url.startswith(base + "/ui/login?next="), driver.current_url

        check("logout ends the session", logout)

        def screenshots():
            sizes = {}
            for name in sorted(os.listdir(SHOTS)):
                with open(os.path.join(SHOTS, name), "rb") as f:
                    head = f.read(24)
                assert head[:8] == b"\x89PNG\r\n\x1a\n", name
                sizes[name] = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
            assert sizes.get("repository-desktop.png") == (1280, 900), sizes
            assert sizes.get("repository-phone.png") == (390, 844), sizes
            if DOCS:
                os.makedirs(DOCS, exist_ok=True)
                for name in sizes:
                    shutil.copy(os.path.join(SHOTS, name), os.path.join(DOCS, name))
            note(f"{SHOTS}: {sizes}" + (f"; copied to {DOCS}" if DOCS else ""))

        check("screenshots at 1280x900 and 390x844", screenshots)
        return None
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001 - the browser may be gone already
                pass
        if slow is not None:
            slow.shutdown()
        stop_all()
        if FAIL:
            print(f"     logs: {w}/servers.log, {w}/chromedriver.log (kept)")
        else:
            shutil.rmtree(w, ignore_errors=True)


def main():
    rc = run()
    if rc is not None:
        return rc
    print(f"{PASS} passed, {FAIL} failed")
    return 1 if FAIL else 0


def note(text):
    print("     " + text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
