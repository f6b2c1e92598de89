"""Small helpers for orchestrator integration tests (tests/integration/).

- RecordedEngine: a fake Spec Engine on http.server that serves a recorded stream the
  way an engine does: POST /spec-engine/invoke -> 202 {thread_id}; GET
  /spec-engine/state/{id} -> the recorded state; WebSocket GET
  /spec-engine/stream/{id} -> the recorded events verbatim (no seq), then a normal
  close; DELETE /spec-engine/threads/{id} -> 204. The WebSocket server side is a few
  lines of RFC 6455 (handshake + unmasked text frames + close) so one port serves
  HTTP and WebSocket like the real engine.
- Orchestrator: the real `ide-orchestrator serve` binary on a free port with SQLite
  under a temp dir; `user add` (password on stdin), login.
- http(): JSON over urllib; ws_events(): a browser-like client with Python's
  `websockets` package (Debian python3-websockets 10.x).

Environment: BIN_DIR (build/bin), PROJECT_SOURCE_DIR.
"""
import asyncio
import base64
import hashlib
import http.server as http_server
import json
import os
import secrets
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

import websockets

SRC_DIR = os.environ.get("PROJECT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.environ.get("BIN_DIR", os.path.join(SRC_DIR, "build", "bin"))
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def interop_dir():
    """Directory of the recorded streams: $INTEROP_DIR, else $PROJECT_SOURCE_DIR/../shared/interop."""
    return os.environ.get("INTEROP_DIR") or os.path.normpath(os.path.join(SRC_DIR, "..", "shared", "interop"))


# ------------------------------------------------------------------ fake engine
def _ws_frame(opcode, payload):
    """One unmasked server frame (RFC 6455 §5.2)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


class RecordedEngine:
    """Serves `events` (list of dicts, sent verbatim) and `state` for every invoked thread."""

    def __init__(self, events, state):
        self.events, self.state = events, state
        self.jobs = []          # bodies of POST /spec-engine/invoke
        self.streams = []       # (thread_id, query) of every stream connection
        self.deleted = []       # thread ids deleted
        self.lock = threading.Lock()
        engine = self

        class Handler(http_server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                if self.path.split("?")[0] != "/spec-engine/invoke":
                    return self._json(404, {"title": "Not Found", "status": 404})
                job = body.get("data", body) if isinstance(body, dict) else {}
                with engine.lock:
                    engine.jobs.append(job)
                thread_id = job.get("job_id") or engine.state.get("thread_id")
                self._json(202, {"thread_id": thread_id, "status": "started"})

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path.startswith("/spec-engine/stream/") and self.headers.get("Upgrade", "").lower() == "websocket":
                    return self._stream(path.rsplit("/", 1)[1], query)
                if path.startswith("/spec-engine/state/"):
                    thread_id = path.rsplit("/", 1)[1]
                    if not engine.known(thread_id):
                        return self._json(404, {"title": "Not Found", "status": 404})
                    return self._json(200, dict(engine.state, thread_id=thread_id))
                if path in ("/health", "/ready"):
                    return self._json(200, {"status": "ok"})
                self._json(404, {"title": "Not Found", "status": 404})

            def do_DELETE(self):
                thread_id = self.path.split("?")[0].rsplit("/", 1)[1]
                with engine.lock:
                    engine.deleted.append(thread_id)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _stream(self, thread_id, query):
                with engine.lock:
                    engine.streams.append((thread_id, query))
                if not engine.known(thread_id):
                    return self._json(404, {"title": "Not Found", "status": 404})
                key = self.headers.get("Sec-WebSocket-Key", "")
                accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
                self.send_response(101, "Switching Protocols")
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                self.wfile.flush()
                # Events as recorded (no seq); after_seq counts positions, as an engine replays.
                after = 0
                for part in query.split("&"):
                    if part.startswith("after_seq="):
                        after = int(part.split("=", 1)[1] or 0)
                for ev in engine.events[after:]:
                    self.wfile.write(_ws_frame(0x1, json.dumps(ev).encode()))
                    self.wfile.flush()
                    time.sleep(0.01)
                self.wfile.write(_ws_frame(0x8, struct.pack("!H", 1000)))
                self.wfile.flush()
                self.connection.settimeout(2)
                try:
                    self.connection.recv(1024)  # the client's close frame
                except OSError:
                    pass
                self.close_connection = True

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def known(self, thread_id):
        with self.lock:
            return any(j.get("job_id") == thread_id for j in self.jobs) or thread_id == self.state.get("thread_id")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ orchestrator
class Orchestrator:
    """`ide-orchestrator serve` on a free port, SQLite under `workdir`."""

    def __init__(self, workdir, engine_url):
        self.workdir = workdir
        self.engine_url = engine_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.exe = os.path.join(BIN_DIR, "ide-orchestrator")
        self.env = dict(os.environ, JWT_SECRET=secrets.token_hex(32))
        self.data_dir = os.path.join(workdir, "orch-data")
        self.log_path = os.path.join(workdir, "orchestrator.log")
        self.proc = None

    def start(self, timeout=30.0):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.exe, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data_dir,
             "--engine-url", self.engine_url],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ide-orchestrator exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if http("GET", self.url + "/health", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ide-orchestrator not healthy within {timeout} s:\n{self.tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.log.close()

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def add_user(self, email, password, name="Interop Tester"):
        r = subprocess.run([self.exe, "user", "add", "--email", email, "--name", name, "--data-dir", self.data_dir],
                           input=password + "\n", capture_output=True, text=True, env=self.env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"user add failed ({r.returncode}): {r.stderr}")

    def login(self, email, password):
        status, body = http("POST", self.url + "/api/auth/login", {"email": email, "password": password})
        if status != 200:
            raise RuntimeError(f"login failed: {status} {body}")
        return body["token"]

    def api(self, method, path, body=None, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http(method, self.url + path, body, headers)


def http(method, url, body=None, headers=None, timeout=15.0):
    """One JSON request; returns (status, parsed body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def ws_events(url, timeout=30.0):
    """Browser-like client: reads JSON events until `end` or close; returns the list."""
    async def go():
        events = []
        async with websockets.connect(url, open_timeout=10, max_size=None) as ws:
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout)
                except websockets.ConnectionClosed:
                    break
                ev = json.loads(raw)
                events.append(ev)
                if ev.get("event_type") == "end":
                    break
        return events
    return asyncio.run(go())


def wait_until(pred, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
