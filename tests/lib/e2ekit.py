"""Helpers for the orchestrator end-to-end tests (tests/e2e/).

Starts the real binaries (build/bin/spec-engine and build/bin/ide-orchestrator) on
free loopback ports, drives HTTP with curl (a client we did not write) and the
WebSocket with Python's `websockets` package (Debian python3-websockets 10.x,
asyncio API). Environment: BIN_DIR (build/bin), PROJECT_SOURCE_DIR, optional
TEST_PG_URL (postgresql://... of a throwaway server; each orchestrator gets its own
fresh database).
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import websockets

BIN_DIR = os.environ.get("BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
SRC_DIR = os.environ.get("PROJECT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO_SCRIPT = os.path.join(SRC_DIR, "config", "demo", "refinement-script.json")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, proc=None, timeout=20.0):
    """Waits until GET url answers 200 (curl); raises if `proc` exits or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while waiting for {url}")
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1", url],
                           capture_output=True, text=True)
        if r.stdout.strip() == "200":
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy within {timeout} s")


class Proc:
    """A child process with its log file; stop() sends SIGTERM then SIGKILL."""

    def __init__(self, args, log_path, env=None):
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


def write_script(path, turns):
    with open(path, "w") as f:
        json.dump({"turns": turns}, f)
    return path


def pg_url_for(dbname):
    """TEST_PG_URL with its database replaced by `dbname` (the binaries create it)."""
    base = os.environ["TEST_PG_URL"]
    head, _, _ = base.rpartition("/")
    return f"{head}/{dbname}"


class Engine:
    """spec-engine on a free port with its own data dir; scripted model by default."""

    def __init__(self, workdir, script=DEMO_SCRIPT, port=None, extra=(), database_url=None):
        self.database_url = database_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "engine-data")
        self.script = script
        self.extra = list(extra)
        self.proc = None

    def command(self):
        exe = os.path.join(BIN_DIR, "spec-engine")
        cmd = [exe]
        h = subprocess.run([exe, "--help"], capture_output=True, text=True)
        if any(line.strip().startswith("serve") for line in (h.stdout + h.stderr).splitlines()):
            cmd.append("serve")
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data_dir]
        if self.script:
            cmd += ["--model-override", "scripted:" + self.script]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        return cmd + self.extra

    def start(self):
        env = dict(os.environ)
        env.pop("OPENAI_API_KEY", None)
        self.proc = Proc(self.command(), os.path.join(self.workdir, "engine.log"), env)
        wait_http(self.url + "/health", self.proc.p)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.stop(sig)


class Orchestrator:
    """ide-orchestrator on a free port; SQLite under workdir unless `database_url`."""

    def __init__(self, workdir, engine_url, port=None, database_url=None, extra=(), jwt_secret=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.engine_url = engine_url
        self.database_url = database_url
        self.extra = list(extra)
        self.jwt_secret = jwt_secret or secrets.token_hex(32)
        self.proc = None
        self.logs = 0

    def storage(self):
        s = ["--data-dir", os.path.join(self.workdir, "orch-data")]
        if self.database_url:
            s += ["--database-url", self.database_url]
        return s

    def env(self):
        env = dict(os.environ)
        env["JWT_SECRET"] = self.jwt_secret
        return env

    def start(self):
        exe = os.path.join(BIN_DIR, "ide-orchestrator")
        cmd = [exe, "serve", *self.storage(), "--host", "127.0.0.1", "--port", str(self.port),
               "--engine-url", self.engine_url, *self.extra]
        self.logs += 1
        self.proc = Proc(cmd, os.path.join(self.workdir, f"orchestrator-{self.logs}.log"), self.env())
        wait_http(self.url + "/health", self.proc.p)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            return self.proc.stop(sig)

    def add_user(self, email, password="s3cret-passw0rd!", name="Test User"):
        exe = os.path.join(BIN_DIR, "ide-orchestrator")
        r = subprocess.run([exe, "user", "add", *self.storage(), "--email", email, "--name", name],
                           input=password + "\n", capture_output=True, text=True, env=self.env(), timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"user add failed: {r.stderr}")
        return r.stdout.strip()

    def login(self, email, password="s3cret-passw0rd!"):
        r = curl(self.url, "POST", "/api/auth/login", {"email": email, "password": password})
        if r.status != 200:
            raise RuntimeError(f"login failed: {r.status} {r.text}")
        return r.json()["token"]


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())


def curl(base, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
    """One HTTP request through the curl binary. `body` is JSON-encoded; `raw` is sent as is."""
    with tempfile.NamedTemporaryFile() as hf, tempfile.NamedTemporaryFile() as bf:
        args = ["curl", "-sS", "--max-time", str(timeout), "-X", method, base + path, "-D", hf.name, "-o", bf.name,
                "-w", "%{http_code}"]
        if token:
            args += ["-H", f"Authorization: Bearer {token}"]
        for k, v in (headers or {}).items():
            args += ["-H", f"{k}: {v}"]
        data = None
        if body is not None:
            data = json.dumps(body).encode()
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
        if data is not None:
            if not any(k.lower() == "content-type" for k in (headers or {})):
                args += ["-H", "Content-Type: application/json"]
            args += ["--data-binary", "@-"]
        r = subprocess.run(args, input=data, capture_output=True, timeout=timeout + 5)
        status = int(r.stdout.decode().strip() or 0)
        hdrs = {}
        with open(hf.name, "rb") as f:
            for line in f.read().decode("latin-1").splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
        with open(bf.name, "rb") as f:
            return Resp(status, hdrs, f.read())


# ------------------------------------------------------------------ JWT crafting
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def make_jwt(claims, secret, alg="HS256"):
    """HS256 or 'none' JWT (RFC 7519) for security tests."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing = f"{header}.{payload}".encode()
    if alg == "none":
        return f"{header}.{payload}."
    sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def jwt_claims(token):
    return json.loads(b64url_decode(token.split(".")[1]))


# ------------------------------------------------------------------ WebSocket
async def _collect(url, headers=None, subprotocols=None, origin=None, stop_after=None, timeout=60):
    events = []
    kwargs = {"extra_headers": headers or {}, "open_timeout": 10, "max_size": None}
    if subprotocols:
        kwargs["subprotocols"] = subprotocols
    if origin:
        kwargs["origin"] = origin
    async with websockets.connect(url, **kwargs) as ws:
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout)
            except websockets.ConnectionClosed:
                break
            ev = json.loads(raw)
            events.append(ev)
            if stop_after is not None and len(events) >= stop_after:
                break
            if ev.get("event_type") == "end":
                # the server closes after end; wait for the close briefly
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except (websockets.ConnectionClosed, asyncio.TimeoutError):
                    pass
                break
        return events, ws.close_code, ws.subprotocol


def ws_collect(url, **kw):
    """Connects, reads events until `end` (or `stop_after` events), returns (events, close_code, subprotocol)."""
    return asyncio.run(_collect(url, **kw))


def ws_status(url, headers=None, origin=None):
    """Attempts an upgrade; returns the HTTP status of a refusal, or 101 when accepted."""
    async def go():
        kwargs = {"extra_headers": headers or {}, "open_timeout": 10}
        if origin:
            kwargs["origin"] = origin
        try:
            async with websockets.connect(url, **kwargs):
                return 101
        except websockets.InvalidStatusCode as e:
            return e.status_code
    return asyncio.run(go())


# ------------------------------------------------------------------ flows
def wait_proposal(orch, token, proposal_id, timeout=30.0, until=("completed", "failed", "cancelled", "approved", "rejected")):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = curl(orch.url, "GET", f"/api/proposals/{proposal_id}", token=token)
        if r.status == 200:
            last = r.json()
            if last["status"] in until:
                return last
        time.sleep(0.1)
    raise AssertionError(f"proposal {proposal_id} still {last and last.get('status')} after {timeout} s")


def create_workflow(orch, token, name="E2E workflow", template="multi-agent"):
    r = curl(orch.url, "POST", "/api/workflows", {"name": name, "template": template}, token=token)
    if r.status != 201:
        raise AssertionError(f"create workflow: {r.status} {r.text}")
    return r.json()


def refine(orch, token, workflow_id, prompt="Add a web-search specialist agent."):
    return curl(orch.url, "POST", f"/api/workflows/{workflow_id}/refinements", {"user_prompt": prompt}, token=token)


def ws_url(orch, thread_id, query=""):
    return f"ws://127.0.0.1:{orch.port}/api/ws/refinements/{thread_id}{query}"


class Stack:
    """Engine + orchestrator in a temp dir, stopped by close(). Prints logs on failure."""

    def __init__(self, script=DEMO_SCRIPT, orch_extra=(), engine_extra=(), database_url=None, engine_database_url=None):
        self.dir = tempfile.mkdtemp(prefix="e2e-")
        self.engine = Engine(self.dir, script=script, extra=engine_extra, database_url=engine_database_url).start()
        self.orch = Orchestrator(self.dir, self.engine.url, database_url=database_url, extra=orch_extra).start()

    def user(self, email=None):
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        self.orch.add_user(email)
        return self.orch.login(email)

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log"):
                with open(os.path.join(self.dir, name), "rb") as f:
                    out.append(f"---- {name}\n" + b"\n".join(f.read().splitlines()[-30:]).decode("utf-8", "replace"))
        return "\n".join(out)

    def close(self):
        self.orch.stop()
        self.engine.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
