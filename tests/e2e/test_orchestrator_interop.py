"""Interop (issue 3 "Must show" 5): streams recorded from the original Python engine
(../shared/interop/) are served to the real ide-orchestrator the way an engine would
(HTTP invoke + state + WebSocket stream, events exactly as recorded, no `seq`). The
proposal's generated_files must equal the recorded final state's, file for file, and
the browser-facing stream must carry every recorded event unchanged."""
import asyncio
import base64
import hashlib
import json
import os
import shutil
import struct
import tempfile
import threading
import unittest

from e2ekit import (Orchestrator, create_workflow, curl, free_port, refine, wait_proposal, ws_collect, ws_url)

INTEROP = os.environ.get("INTEROP_DIR") or os.path.normpath(
    os.path.join(os.environ.get("PROJECT_SOURCE_DIR", "../.."), "..", "shared", "interop"))
PAIRS = [("all_events.json", "thread_state.json"), ("isolation_events_1.json", "isolation_state_1.json"),
         ("rejection_events.json", "rejection_state.json")]
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RecordedEngine:
    """A minimal engine on raw asyncio: every invoked thread replays `events` verbatim."""

    def __init__(self, events, state):
        self.events, self.state = events, state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._conn, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _conn(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                path, _, query = target.partition("?")
                if headers.get("upgrade", "").lower() == "websocket":
                    await self._stream(reader, writer, headers, query)
                    return
                status, payload = self._http(method, path, body)
                data = json.dumps(payload).encode() if payload is not None else b""
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _http(self, method, path, body):
        if path == "/health":
            return 200, {"status": "ok"}
        if method == "POST" and path == "/spec-engine/invoke":
            job = json.loads(body)
            return 202, {"thread_id": job["job_id"], "status": "started"}
        if method == "GET" and path.startswith("/spec-engine/state/"):
            st = dict(self.state)
            st["thread_id"] = path.rsplit("/", 1)[1]
            return 200, st
        if method == "DELETE" and path.startswith("/spec-engine/threads/"):
            return 204, None
        return 404, {"title": "Not Found", "status": 404}

    async def _stream(self, reader, writer, headers, query):
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        after = 0
        for kv in query.split("&"):
            if kv.startswith("after_seq="):
                after = int(kv.split("=", 1)[1] or 0)
        for ev in self.events[after:]:
            writer.write(self._frame(0x1, json.dumps(ev).encode()))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(self._frame(0x8, struct.pack("!H", 1000)))
        await writer.drain()
        try:
            await asyncio.wait_for(reader.read(1024), 2)
        except asyncio.TimeoutError:
            pass

    @staticmethod
    def _frame(opcode, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        return head + payload


@unittest.skipUnless(os.path.isdir(INTEROP), f"recorded streams not found at {INTEROP}")
class Interop(unittest.TestCase):
    def check_pair(self, events_file, state_file):
        with open(os.path.join(INTEROP, events_file)) as f:
            events = json.load(f)
        with open(os.path.join(INTEROP, state_file)) as f:
            state = json.load(f)
        eng = RecordedEngine(events, state)
        d = tempfile.mkdtemp(prefix="e2e-interop-")
        orch = Orchestrator(d, eng.url).start()
        try:
            orch.add_user("i@example.com")
            token = orch.login("i@example.com")
            wf = create_workflow(orch, token)
            r = refine(orch, token, wf["id"], "Create a REST API server with health check endpoints")
            self.assertIn(r.status, (201, 202), r.text)
            started = r.json()
            got, _, _ = ws_collect(ws_url(orch, started["thread_id"]), headers={"Authorization": "Bearer " + token})
            self.assertEqual(got, events, "the browser stream must carry every recorded event unchanged")
            p = wait_proposal(orch, token, started["proposal_id"])
            self.assertEqual(p["status"], "completed", p)
            want = state["generated_files"]
            self.assertEqual(sorted(p["generated_files"]), sorted(want))
            for path, f in want.items():
                self.assertEqual(p["generated_files"][path]["content"], f["content"], path)
        finally:
            orch.stop()
            eng.close()
            shutil.rmtree(d, ignore_errors=True)

    def test_recorded_streams(self):
        for ev, st in PAIRS:
            if os.path.exists(os.path.join(INTEROP, ev)):
                with self.subTest(stream=ev):
                    self.check_pair(ev, st)


if __name__ == "__main__":
    unittest.main()
