"""Helpers for the orchestrator end-to-end tests (tests/e2e/) and the interop test.

Starts the real binaries (build/bin/spec-engine through testkit.Engine, and
build/bin/ide-orchestrator) on free loopback ports, drives the orchestrator's HTTP API
with curl (a client we did not write); generic helpers (ports, polling, WebSocket
clients, PostgreSQL URLs) live in testkit.py. Environment: BIN_DIR (build/bin),
PROJECT_SOURCE_DIR, optional TEST_PG_URL (postgresql://... of a throwaway server;
each orchestrator gets its own fresh database).
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import uuid

from testkit import BIN_DIR, PROJECT_SOURCE_DIR, Engine, Proc, free_port, wait_http, wait_until, write_json, ws_collect

DEMO_SCRIPT = os.path.join(PROJECT_SOURCE_DIR, "config", "demo", "refinement-script.json")


def slow_script(path, turns=30, words=1500):
    """A long scripted run so there is time to kill things mid-run: every turn streams
    `words` deltas (each one an engine event that is stored and fanned out). `delay_ms` is
    honoured by engines whose scripted model supports it and ignored otherwise."""
    filler = " ".join(["checking"] * words)
    t = [{"node": "orchestrator", "content": f"Step {i}: {filler}",
          "tool_calls": [{"id": f"c{i}", "name": "write_todos",
                          "arguments": {"todos": [{"content": f"step {i}", "status": "in_progress"}]}}],
          "delay_ms": 150} for i in range(turns)]
    t.append({"node": "orchestrator", "content": "Done.",
              "tool_calls": [{"id": "w", "name": "write_file",
                              "arguments": {"file_path": "/THE_CAST/FactChecker.md", "content": "# FactChecker\n"}}]})
    t.append({"node": "orchestrator", "content": "All done."})
    return write_json(path, {"turns": t})


def scripted_engine(workdir, script=DEMO_SCRIPT, port=None, extra=(), database_url=None, env=None):
    """spec-engine (testkit.Engine, not started) on the scripted model, its data dir and log under `workdir`;
    `env` entries override its environment (None removes a variable). The scripted model counts
    the whole conversation as prompt tokens on every turn (as a real model bills it), so the
    long scripts above would reach the default budget of 2,000,000 tokens per run: the budget is
    raised here (a test of the limit passes --max-tokens, which wins over the variable)."""
    return Engine(["--model-override", "scripted:" + script, *extra], data_dir=os.path.join(workdir, "engine-data"),
                  database_url=database_url, port=port, log_dir=workdir,
                  env={"OPENAI_API_KEY": None, "SPEC_ENGINE_MAX_TOKENS": "1000000000", **(env or {})})


def stop_and_clean(procs, workdir, tail_chars=3000):
    """Stops `procs` (last started first), prints the tail of every log in `workdir` when
    E2E_SHOW_LOGS is set (to see the services' logs after a test), then removes `workdir`."""
    for p in reversed(procs):
        try:
            p.stop()
        except Exception:
            pass
    if os.environ.get("E2E_SHOW_LOGS"):
        for root, _, files in os.walk(workdir):
            for name in sorted(files):
                if name.endswith(".log"):
                    print("----", os.path.join(root, name))
                    print(open(os.path.join(root, name), errors="replace").read()[-tail_chars:])
    shutil.rmtree(workdir, ignore_errors=True)


class Orchestrator:
    """ide-orchestrator on a free port; SQLite under workdir unless `database_url`. `env` entries
    override its environment (None removes a variable); span export is off unless `env` sets
    OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self, workdir, engine_url, port=None, database_url=None, extra=(), jwt_secret=None, env=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.engine_url = engine_url
        self.database_url = database_url
        self.extra = list(extra)
        self.jwt_secret = jwt_secret or secrets.token_hex(32)
        self.extra_env = dict(env or {})
        self.exe = os.path.join(BIN_DIR, "ide-orchestrator")
        self.proc = None
        self.logs = 0

    def storage(self):
        s = ["--data-dir", os.path.join(self.workdir, "orch-data")]
        if self.database_url:
            s += ["--database-url", self.database_url]
        return s

    def env(self):
        env = dict(os.environ)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env["JWT_SECRET"] = self.jwt_secret
        env.update(self.extra_env)
        return {k: v for k, v in env.items() if v is not None}

    def start(self, timeout=30.0):
        cmd = [self.exe, "serve", *self.storage(), "--host", "127.0.0.1", "--port", str(self.port),
               "--engine-url", self.engine_url, *self.extra]
        self.logs += 1
        self.proc = Proc(cmd, os.path.join(self.workdir, f"orchestrator-{self.logs}.log"), self.env())
        wait_http(self.url + "/health", self.proc, timeout)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            return self.proc.stop(sig)

    def tail(self, n=40):
        """The last `n` lines of the current process's log."""
        return self.proc.tail(n) if self.proc else ""

    def cli(self, subcommand, *args, stdin=None):
        """Runs an admin subcommand (e.g. "user list") on this instance's storage with `args`
        after the storage flags; returns the CompletedProcess (text mode)."""
        return subprocess.run([self.exe, *subcommand.split(), *self.storage(), *args], input=stdin,
                              capture_output=True, text=True, env=self.env(), timeout=60)

    def add_user(self, email, password="s3cret-passw0rd!", name="Test User"):
        r = self.cli("user add", "--email", email, "--name", name, stdin=password + "\n")
        if r.returncode != 0:
            raise RuntimeError(f"user add failed ({r.returncode}): {r.stderr}")
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


# ------------------------------------------------------------------ flows
def wait_proposal(orch, token, proposal_id, timeout=30.0, until=("completed", "failed", "cancelled", "approved", "rejected")):
    last = {}

    def done():
        r = curl(orch.url, "GET", f"/api/proposals/{proposal_id}", token=token)
        if r.status == 200:
            last["proposal"] = r.json()
            return last["proposal"] if last["proposal"]["status"] in until else None
        return None
    try:
        return wait_until(done, timeout=timeout, interval=0.1, what=f"proposal {proposal_id}")
    except AssertionError:
        status = last.get("proposal", {}).get("status")
        raise AssertionError(f"proposal {proposal_id} still {status} after {timeout} s") from None


def create_workflow(orch, token, name="E2E workflow", template="multi-agent"):
    r = curl(orch.url, "POST", "/api/workflows", {"name": name, "template": template}, token=token)
    if r.status != 201:
        raise AssertionError(f"create workflow: {r.status} {r.text}")
    return r.json()


def refine(orch, token, workflow_id, prompt="Add a web-search specialist agent."):
    return curl(orch.url, "POST", f"/api/workflows/{workflow_id}/refinements", {"user_prompt": prompt}, token=token)


def ws_url(orch, thread_id, query=""):
    return f"ws://127.0.0.1:{orch.port}/api/ws/refinements/{thread_id}{query}"


def ws_follow(orch, thread_id, token, timeout=120, max_resumes=20):
    """Follows a thread through the proxy the way the console does: on close 1013 (this client
    fell too far behind) it reconnects with after_seq = the last seq it received. Returns
    (events, close_code, resumes)."""
    events, resumes, close = [], 0, None
    while True:
        last = max((e["seq"] for e in events if "seq" in e), default=0)
        query = f"?after_seq={last}" if last else ""
        got, close, _ = ws_collect(ws_url(orch, thread_id, query), headers={"Authorization": "Bearer " + token},
                                   timeout=timeout)
        events.extend(got)
        if close != 1013 or resumes >= max_resumes or (events and events[-1].get("event_type") == "end"):
            return events, close, resumes
        resumes += 1


class Stack:
    """Engine + orchestrator in a temp dir, stopped by close(). Prints logs on failure."""

    def __init__(self, script=DEMO_SCRIPT, orch_extra=(), engine_extra=(), database_url=None, engine_database_url=None,
                 env=None):
        """`env` entries override both services' environment (e.g. OTEL_EXPORTER_OTLP_ENDPOINT)."""
        self.dir = tempfile.mkdtemp(prefix="e2e-")
        self.engine = scripted_engine(self.dir, script=script, extra=engine_extra, database_url=engine_database_url,
                                      env=env).start()
        self.orch = Orchestrator(self.dir, self.engine.base, database_url=database_url, extra=orch_extra,
                                 env=env).start()

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
