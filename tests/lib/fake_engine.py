"""A fake Spec Engine for the interop test (tests/integration/test_interop.py).

RecordedEngine: a fake Spec Engine on http.server that serves a recorded stream the
way an engine does: POST /spec-engine/invoke -> 202 {thread_id}; GET
/spec-engine/state/{id} -> the recorded state; WebSocket GET
/spec-engine/stream/{id} -> the recorded events verbatim (no seq), then a normal
close; DELETE /spec-engine/threads/{id} -> 204. The WebSocket server side is a few
lines of RFC 6455 (handshake + unmasked text frames + close) so one port serves
HTTP and WebSocket like the real engine.

Environment: INTEROP_DIR or PROJECT_SOURCE_DIR (the recordings live in tests/fixtures/interop).
"""
import base64
import hashlib
import http.server as http_server
import json
import os
import struct
import threading
import time

from testkit import PROJECT_SOURCE_DIR, free_port

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def interop_dir():
    """Directory of the recorded streams: $INTEROP_DIR, else the copy kept in tests/fixtures/interop
    (taken unchanged from the original Python engine's recordings)."""
    return os.environ.get("INTEROP_DIR") or os.path.join(PROJECT_SOURCE_DIR, "tests", "fixtures", "interop")


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
