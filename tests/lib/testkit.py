"""Shared helpers for the Python integration tests (stdlib + Debian python3-websockets 10.4).

- free_port(), wait_until()
- Engine: start/stop the real `spec-engine` binary on a loopback port with a temp data dir
- http(): one request with urllib, returns (status, headers, body-as-JSON-or-bytes)
- ws_read_all() / ws_reject_status(): WebSocket client (asyncio API of websockets 10.4)
- make_pg_database(): a fresh PostgreSQL database on TEST_PG_URL (or None)
- definitions and scripts for the scripted model
"""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

BIN_DIR = os.environ.get("BIN_DIR") or os.path.join(
    os.environ.get("PROJECT_SOURCE_DIR", os.getcwd()), "build", "bin")
PROJECT_SOURCE_DIR = os.environ.get("PROJECT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
FIXTURES = os.path.join(PROJECT_SOURCE_DIR, "tests", "fixtures")


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=20.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value; raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def http(method, url, body=None, headers=None, timeout=15.0, raw=False):
    """One HTTP request. `body`: dict/list (sent as JSON unless headers set a type), bytes or str.
    Returns (status, headers dict with lower-case names, parsed JSON or bytes)."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, hdrs, payload = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, payload = e.code, e.headers, e.read()
    h = {k.lower(): v for k, v in hdrs.items()}
    if not raw and payload and "json" in h.get("content-type", ""):
        payload = json.loads(payload)
    return status, h, payload


def make_pg_database(prefix="se_it"):
    """Creates a fresh database on TEST_PG_URL's server; returns its URL, or None when unset."""
    base = os.environ.get("TEST_PG_URL")
    if not base:
        return None
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", base, "-v", "ON_ERROR_STOP=1", "-q", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return base.rsplit("/", 1)[0] + "/" + name


class Engine:
    """The spec-engine binary on a free loopback port with its own data dir."""

    def __init__(self, args=(), data_dir=None, database_url=None, env=None, port=None):
        self.port = port or free_port()
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="spec-engine-it-")
        self.database_url = database_url
        self.args = list(args)
        self.env = dict(env or {})
        self.proc = None
        self.log_path = os.path.join(self.data_dir, f"engine-{self.port}-{int(time.time()*1000)}.log")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self, wait=True):
        cmd = [os.path.join(BIN_DIR, "spec-engine"), "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", self.data_dir, "--log-level", "debug"] + self.args
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        env = dict(os.environ)
        env.setdefault("MIGRATIONS_DIR", os.path.join(PROJECT_SOURCE_DIR, "migrations"))
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.update(self.env)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=20.0):
        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError(f"spec-engine exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return http("GET", self.base + "/health", timeout=1.0)[0] == 200
            except OSError:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.05)
        raise AssertionError(f"spec-engine not healthy:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-20000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Stops the process (SIGTERM, then SIGKILL after `timeout`); returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and getattr(self, "log_file", None):
            self.log_file.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        return self.stop(sig=signal.SIGKILL)

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- API helpers -------------------------------------------------------
    def invoke(self, job, headers=None):
        return http("POST", self.base + "/spec-engine/invoke", job, headers=headers)

    def state(self, thread_id):
        return http("GET", self.base + "/spec-engine/state/" + thread_id)

    def wait_terminal(self, thread_id, timeout=60.0):
        def done():
            st, _, body = self.state(thread_id)
            if st == 200 and body["status"] in ("completed", "failed", "cancelled"):
                return body
            return None
        return wait_until(done, timeout=timeout, what=f"thread {thread_id} to end")


async def _ws_read_all(url, timeout, on_message=None):
    import websockets  # Debian python3-websockets
    out = []
    async with websockets.connect(url, open_timeout=timeout, close_timeout=5, max_size=None) as ws:
        try:
            while True:
                msg = await asyncio.wait_for(ws.recv(), timeout=timeout)
                ev = json.loads(msg)
                out.append(ev)
                if on_message:
                    on_message(ev)
        except websockets.exceptions.ConnectionClosedOK:
            pass
        await ws.wait_closed()
        return out, ws.close_code


def ws_read_all(url, timeout=30.0, on_message=None):
    """Reads every message until the server closes; returns (events, close_code).
    Raises on an abnormal close or when nothing arrives within `timeout`."""
    return asyncio.run(_ws_read_all(url, timeout, on_message))


async def _ws_reject_status(url):
    import websockets
    try:
        async with websockets.connect(url, open_timeout=10):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


def ws_reject_status(url):
    """The HTTP status of a refused WebSocket handshake (101 when accepted)."""
    return asyncio.run(_ws_reject_status(url))


# --- definitions and scripts ----------------------------------------------------
def agent_node(node_id, tools, prompt="You are helpful.", name=None):
    return {"id": node_id, "type": "AgentNode",
            "data": {"name": name or node_id, "system_prompt": prompt, "tools": tools,
                     "llm_config": {"provider": "openai", "model": "gpt-4.1-mini", "temperature": 0}}}


def multi_agent_definition():
    """orchestrator delegates to writer through `task`."""
    return {"graph": {
        "nodes": [agent_node("orchestrator", ["write_todos", "ls", "read_file", "write_file", "edit_file", "task", "writer"]),
                  agent_node("writer", ["read_file", "write_file", "edit_file", "ls"])],
        "edges": [{"source": "orchestrator", "target": "writer", "type": "delegation"}],
        "entryPoint": "orchestrator"}}


def single_agent_definition(tools=("ls", "read_file", "write_file", "edit_file")):
    return {"graph": {"nodes": [agent_node("main", list(tools))], "edges": [], "entryPoint": "main"}}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def new_job(definition, job_id=None, messages="Refine the spec.", files=None):
    payload = {"messages": messages}
    if files is not None:
        payload["files"] = files
    return {"trace_id": "trace-" + uuid.uuid4().hex[:8], "job_id": job_id or str(uuid.uuid4()),
            "agent_definition": definition, "input_payload": payload}


def last_files(events):
    """`files` of the last on_state_update that carries files."""
    files = None
    for e in events:
        if e["event_type"] == "on_state_update" and isinstance(e["data"], dict) and "files" in e["data"]:
            files = e["data"]["files"]
    return files


def file_text(f):
    c = f["content"]
    return "\n".join(c) if isinstance(c, list) else c
