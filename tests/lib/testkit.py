"""Shared helpers for the Python integration and end-to-end tests (stdlib + Debian
python3-websockets 10.4). Used by every test module directly and by e2ekit.py
(orchestrator helpers) and fake_engine.py (the recorded-stream engine).

- free_port(), wait_until(), wait_http()
- Proc: a child process with its log file
- Engine: start/stop the real `spec-engine` binary on a loopback port with a temp data dir
- http(): one request with urllib, returns (status, headers, body-as-JSON-or-bytes)
- ws_collect() / collect_many() / browse() / ws_status(): WebSocket client (asyncio API of websockets 10.4)
- ws_send_blocking(): a blocking raw-socket WebSocket client that sends one (large) message
- FakeOpenAiCase: a TestCase base running engines against local fake OpenAI servers
- make_pg_database() / pg_url_for(): PostgreSQL databases on TEST_PG_URL
- PgCluster: a PostgreSQL server of one test's own (to restart it)
- definitions and scripts for the scripted model
"""
import asyncio
import glob
from http.client import HTTPException
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid

PROJECT_SOURCE_DIR = os.environ.get("PROJECT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN_DIR = os.environ.get("BIN_DIR") or os.path.join(PROJECT_SOURCE_DIR, "build", "bin")
FIXTURES = os.path.join(PROJECT_SOURCE_DIR, "tests", "fixtures")


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=20.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value; raises AssertionError on timeout.
    Other exceptions count as transient and polling goes on; an AssertionError raised by
    pred() is a test failure and propagates at once."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


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


class Proc:
    """A child process with its log file; stop() sends SIGTERM then SIGKILL."""

    def __init__(self, args, log_path, env=None):
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    @property
    def returncode(self):
        return self.p.returncode

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the process (`sig`, then SIGKILL after `timeout`); returns the exit code."""
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

    def output(self):
        """Everything the process has logged so far, decoded."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=40):
        return "\n".join(self.output().splitlines()[-n:])


def wait_http(url, proc=None, timeout=20.0):
    """Waits until GET url answers 200; raises if `proc` (a Proc) exits or time runs out,
    with the tail of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{os.path.basename(proc.args[0])} exited with {proc.returncode} "
                               f"while waiting for {url}:\n{proc.tail()}")
        try:
            if http("GET", url, timeout=1.0)[0] == 200:
                return
        except (OSError, HTTPException):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not become healthy within {timeout} s:\n{proc.tail() if proc else ''}")


def pg_url_for(dbname):
    """TEST_PG_URL with its database replaced by `dbname` (the binaries create it)."""
    head, _, _ = os.environ["TEST_PG_URL"].rpartition("/")
    return f"{head}/{dbname}"


def make_pg_database(prefix="se_it"):
    """Creates a fresh database on TEST_PG_URL's server; returns its URL, or None when unset."""
    base = os.environ.get("TEST_PG_URL")
    if not base:
        return None
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", base, "-v", "ON_ERROR_STOP=1", "-q", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return pg_url_for(name)


class PgCluster:
    """A PostgreSQL cluster of one test's own (initdb + pg_ctl in a temp dir, a free loopback
    port, trust auth; as the `postgres` user when run as root, like scripts/with-test-services.sh),
    for tests that restart or stop the server: the shared TEST_PG_URL server is used by tests
    running in parallel. url(dbname) names a database on it; restart() is `pg_ctl restart`."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise unittest.SkipTest("PostgreSQL server binaries not found")
        self.bin = bins[-1]
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pg-cluster-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.runas = []
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.runas = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args, timeout=60):
        r = subprocess.run(self.runas + list(args), capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({r.returncode}): {r.stdout}{r.stderr}\n"
                               f"{self.log()[-2000:]}")
        return r.stdout

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self):
        if not os.path.exists(self.data):
            self._run(os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--no-locale")
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log_path, "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
                  "start")
        return self

    def restart(self, mode="immediate"):
        """`pg_ctl restart -m MODE`: every connection is cut; the server is back when this returns."""
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log_path, "-w", "-t", "30", "-m", mode,
                  "restart")

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


class Engine:
    """The spec-engine binary on a free loopback port with its own data dir.
    `env` entries override the environment (None removes a variable); the log goes to
    `log_dir` (default: the data dir)."""

    def __init__(self, args=(), data_dir=None, database_url=None, env=None, port=None, log_dir=None):
        self.port = port or free_port()
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="spec-engine-it-")
        self.database_url = database_url
        self.args = list(args)
        self.env = dict(env or {})
        self.proc = None
        self.log_path = os.path.join(log_dir or self.data_dir, f"engine-{self.port}-{int(time.time()*1000)}.log")

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
        env = {k: v for k, v in env.items() if v is not None}
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.proc = Proc(cmd, self.log_path, env)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=20.0):
        wait_http(self.base + "/health", self.proc, timeout)

    def log(self):
        return self.proc.output()[-20000:] if self.proc else ""

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Stops the process (SIGTERM, then SIGKILL after `timeout`); returns the exit code."""
        return self.proc.stop(sig, timeout) if self.proc else None

    def kill9(self):
        return self.stop(sig=signal.SIGKILL)

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def shutdown_cleanly(self):
        """Stops (SIGTERM), removes the data dir, and raises AssertionError with the log
        unless the process exited 0: a test class's tearDownClass check that the engine
        survived everything the tests sent it."""
        rc = self.stop()
        log = self.log()
        self.cleanup()
        if rc not in (0, None):
            raise AssertionError(f"spec-engine exited with {rc} on SIGTERM:\n{log}")

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


# --- WebSocket ---------------------------------------------------------------------
async def _ws_collect(url, headers, subprotocols, origin, stop_after, timeout, until_close):
    import websockets  # Debian python3-websockets
    events = []
    kwargs = {"extra_headers": headers or {}, "open_timeout": 10, "close_timeout": 5, "max_size": None}
    if subprotocols:
        kwargs["subprotocols"] = subprotocols
    if origin:
        kwargs["origin"] = origin
    async with websockets.connect(url, **kwargs) as ws:
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout)
            except websockets.ConnectionClosedOK:
                break
            except websockets.ConnectionClosed:
                if until_close:
                    raise
                break
            ev = json.loads(raw)
            events.append(ev)
            if stop_after is not None and len(events) >= stop_after:
                break
            if ev.get("event_type") == "end" and not until_close:
                # the server closes after end; wait for the close briefly
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except (websockets.ConnectionClosed, asyncio.TimeoutError):
                    pass
                break
        if until_close:
            await ws.wait_closed()
        return events, ws.close_code, ws.subprotocol


def ws_collect(url, headers=None, subprotocols=None, origin=None, stop_after=None, timeout=60, until_close=False):
    """Connects, reads events until `end` (or `stop_after` events), returns (events, close_code, subprotocol).
    With until_close=True it reads every message until the server closes instead, and raises on an
    abnormal close. Raises when nothing arrives within `timeout`."""
    return asyncio.run(_ws_collect(url, headers, subprotocols, origin, stop_after, timeout, until_close))


async def browse(stream, stop_after=None, timeout=60, on_open=None):
    """One browser on `stream` (a URL or (URL, headers)): reads events until the
    server closes the connection, normally or not, or `stop_after` events arrived. Returns
    (events, close_code); close_code is 1006 when the connection was cut (the replica died).
    `on_open` (an asyncio.Event) is set once connected. Raises when nothing arrives for `timeout` s."""
    import websockets  # Debian python3-websockets
    url, headers = (stream, {}) if isinstance(stream, str) else stream
    events = []
    async with websockets.connect(url, extra_headers=headers, open_timeout=30, close_timeout=5,
                                  max_size=None) as ws:
        if on_open is not None:
            on_open.set()
        try:
            while stop_after is None or len(events) < stop_after:
                events.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        except websockets.ConnectionClosed:
            pass
        return events, ws.close_code


def collect_many(streams, timeout=60):
    """Follows several streams at once to their close; [(events, close_code)] in order.
    Each of `streams` is a URL or (URL, headers). Raises when one is silent for `timeout` s."""
    async def all_of():
        return await asyncio.gather(*(browse(stream, timeout=timeout) for stream in streams))
    return asyncio.run(all_of())


def ws_send_blocking(url, message_bytes, headers=None, timeout=30):
    """A plain blocking WebSocket client (RFC 6455 over a raw socket): upgrades, writes one text
    message of `message_bytes` bytes in full before reading anything (as simple clients do), then
    reads until the server's close frame, answers it (§5.5.1) and reads until the connection ends.
    Returns (write_error, close_code, close_reason): write_error is None when the whole message
    went out, close_code None when no close frame arrived (1006)."""
    import base64
    import struct
    from urllib.parse import urlparse
    u = urlparse(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        target = u.path + ("?" + u.query if u.query else "")
        head = (f"GET {target} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                "Sec-WebSocket-Version: 13\r\n")
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        sock.sendall((head + "\r\n").encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"no upgrade answer: {got!r}")
            got += chunk
        status_line, got = got.split(b"\r\n", 1)[0], got.split(b"\r\n\r\n", 1)[1]
        if b" 101 " not in status_line:
            raise AssertionError(f"upgrade refused: {status_line!r}")
        # Client frames are masked (§5.3); a zero masking key leaves the payload as is.
        frame = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", message_bytes) + b"\0\0\0\0"
        write_error = None
        try:
            sock.sendall(frame + b"x" * message_bytes)
        except OSError as e:
            write_error = e

        def close_frame(data):
            """(code, reason) of the first complete close frame in `data` (server frames are unmasked)."""
            i = 0
            while i + 2 <= len(data):
                op, n, h = data[i] & 0x0F, data[i + 1] & 0x7F, 2
                if n == 126:
                    n, h = struct.unpack("!H", data[i + 2:i + 4])[0], 4
                elif n == 127:
                    n, h = struct.unpack("!Q", data[i + 2:i + 10])[0], 10
                if i + h + n > len(data):
                    return None
                if op == 0x8:
                    body = data[i + h:i + h + n]
                    code = struct.unpack("!H", body[:2])[0] if len(body) >= 2 else None
                    return code, body[2:].decode("utf-8", "replace")
                i += h + n
            return None

        closed = close_frame(got)
        try:
            while True:
                if closed is not None:  # answer the close (masked, zero key), then wait for the end
                    sock.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", closed[0] or 1000))
                    while sock.recv(65536):
                        pass
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
                closed = close_frame(got)
        except OSError:
            pass  # a reset after the close frame, or the read timeout
        return (write_error, *(closed or (None, None)))
    finally:
        sock.close()


def ws_status(url, headers=None, origin=None):
    """Attempts an upgrade; returns the HTTP status of a refusal, or 101 when accepted."""
    import websockets

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


def nested_arrays(depth):
    """JSON text of `depth` nested arrays ("[[[...]]]"): 150,000 of them are 300 KB."""
    return "[" * depth + "]" * depth


def nested_objects(depth):
    """JSON text of `depth` nested objects ({"a":{"a":...{}...}})."""
    return '{"a":' * depth + "{}" + "}" * depth


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


# --- engine against a fake OpenAI-compatible server ------------------------------
class FakeOpenAiCase(unittest.TestCase):
    """Base for tests of the engine's `openai` provider against local fake servers
    (tests/fixtures/spec_engine/fake_openai.py). fake() and engine() start them;
    tearDown stops every one."""

    def setUp(self):
        self.engines, self.fakes = [], []

    def tearDown(self):
        for e in self.engines:
            e.cleanup()
        for f in self.fakes:
            f.stop()

    def fake(self, replies, **kw):
        """A started FakeOpenAI serving `replies` (kw: split, certfile, keyfile)."""
        sys.path.insert(0, os.path.join(FIXTURES, "spec_engine"))
        from fake_openai import FakeOpenAI
        f = FakeOpenAI(replies, **kw).start()
        self.fakes.append(f)
        return f

    def engine(self, fake, *extra, ca_file=None, database_url=None, env=None):
        """A started engine with every node on `openai:test-model` served by `fake`."""
        args = ["--model-override", "openai:test-model", *extra]
        if ca_file:
            args += ["--ca-file", ca_file]
        e = Engine(args, database_url=database_url,
                   env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test-not-secret",
                        **(env or {})}).start()
        self.engines.append(e)
        return e

    def run_to_end(self, engine, definition=None, timeout=60, files=None):
        """Invokes one job and follows its stream to the close; returns (job, events, state)."""
        job = new_job(definition or single_agent_definition(), files=files)
        st, _, body = engine.invoke(job)
        self.assertEqual(st, 202, body)
        events, code, _ = ws_collect(f"{engine.ws_base}/spec-engine/stream/{job['job_id']}", timeout=timeout,
                                     until_close=True)
        self.assertEqual(code, 1000)
        return job, events, engine.state(job["job_id"])[2]
