#!/usr/bin/env python3
"""A minimal AWS Lambda Runtime API, enough to run a function binary locally and offline.

    runtime_api.py PORT EVENTS.json OUT.json

Serves the events of EVENTS.json (a JSON list) one by one on `GET .../invocation/next`,
records each response or error, and when all are answered writes OUT.json:
{"first_next_epoch": <when the function first asked for work>, "results": [{"ms":…, "epoch":…,
"status": "response"|"error", "body": …}]}
and exits. Loopback only.
"""
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, EVENTS, OUT = int(sys.argv[1]), json.load(open(sys.argv[2])), sys.argv[3]
T0 = time.monotonic()
state = {"init_ms": None, "results": [], "next": 0, "sent_at": {}}
lock = threading.Lock()
done = threading.Event()


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _reply(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self._reply(404)
        with lock:
            if state["init_ms"] is None:
                state["init_ms"] = round((time.monotonic() - T0) * 1000, 1)
                state["first_next_epoch"] = time.time()
            i = state["next"]
            state["next"] += 1
        if i >= len(EVENTS):
            done.wait(30)  # the function waits for work that never comes; we are finishing
            return self._reply(500)
        rid = str(uuid.uuid4())
        with lock:
            state["sent_at"][rid] = (i, time.monotonic())
        body = json.dumps(EVENTS[i]).encode()
        self._reply(200, body, {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": rid,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 900_000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:berth",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
        })

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        parts = self.path.split("/")
        if "init" in parts:
            with lock:
                state["results"].append({"status": "init_error", "body": raw.decode(errors="replace")})
            self._reply(202)
            done.set()
            return
        rid, kind = parts[-2], parts[-1]
        with lock:
            i, sent = state["sent_at"].get(rid, (None, time.monotonic()))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            state["results"].append({"event": i, "status": kind, "ms": round((time.monotonic() - sent) * 1000, 1),
                                     "epoch": time.time(), "body": body})
            finished = len(state["results"]) >= len(EVENTS)
        self._reply(202)
        if finished:
            done.set()


srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
done.wait(120)
out = {"init_ms": state["init_ms"], "first_next_epoch": state.get("first_next_epoch"),
       "results": sorted(state["results"], key=lambda r: r.get("event") or 0)}
json.dump(out, open(OUT, "w"), indent=1)
srv.shutdown()
