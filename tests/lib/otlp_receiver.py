"""A local OTLP/HTTP trace receiver for tests (standard library only).

Accepts what an OpenTelemetry exporter posts to `<endpoint>/v1/traces` in the OTLP/HTTP JSON
encoding (an ExportTraceServiceRequest: resourceSpans -> scopeSpans -> spans), answers
`200 {}` (an ExportTraceServiceResponse with nothing rejected) and records every span,
flattened, with its resource's `service.name`. Anything else gets 404 (other paths) or 400
(a body that is not such JSON); protobuf bodies are refused with 415.

    rx = OtlpReceiver().start()      # env OTEL_EXPORTER_OTLP_ENDPOINT=rx.url for the services
    ...
    spans = rx.wait_for(lambda spans: any(s.name == "proposal.finalise" for s in spans))
    print(trace_summary(rx.trace(trace_id)))
    rx.close()
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 << 20
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def any_value(v):
    """The Python value of an OTLP/JSON AnyValue (common.proto)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])  # int64 travels as a decimal string in OTLP/JSON
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return attributes(v["kvlistValue"].get("values", []))
    return None


def attributes(kvs):
    """{key: value} of an OTLP/JSON KeyValue list."""
    return {kv["key"]: any_value(kv.get("value", {})) for kv in kvs or []}


class Span:
    """One received span, flattened (ids lower-case hex; times in nanoseconds)."""

    def __init__(self, service, raw):
        self.service = service
        self.raw = raw
        self.trace_id = raw.get("traceId", "").lower()
        self.span_id = raw.get("spanId", "").lower()
        self.parent_span_id = (raw.get("parentSpanId") or "").lower() or None
        self.name = raw.get("name", "")
        self.kind = KINDS.get(raw.get("kind", 0), str(raw.get("kind")))
        self.attributes = attributes(raw.get("attributes"))
        self.status = raw.get("status") or {}
        self.links = [{"trace_id": lk.get("traceId", "").lower(), "span_id": lk.get("spanId", "").lower(),
                       "attributes": attributes(lk.get("attributes"))} for lk in raw.get("links", [])]
        self.events = [{"name": ev.get("name"), "attributes": attributes(ev.get("attributes"))}
                       for ev in raw.get("events", [])]
        self.start = int(raw.get("startTimeUnixNano", 0))
        self.end = int(raw.get("endTimeUnixNano", 0))

    @property
    def failed(self):
        """True when the span's status is ERROR (code 2)."""
        return self.status.get("code") in (2, "STATUS_CODE_ERROR")

    def __repr__(self):
        return f"<Span {self.service} {self.name!r} {self.span_id} parent={self.parent_span_id}>"


class OtlpReceiver:
    """OTLP/HTTP JSON receiver on a loopback port (`port` 0: a free one); see the module comment."""

    def __init__(self, port=0):
        self._lock = threading.Lock()
        self._spans = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                if self.path.split("?")[0] != "/v1/traces":
                    return self._answer(404, {"code": 5, "message": "only /v1/traces is served"})
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    return self._answer(413, {"code": 8, "message": "body too large"})
                body = self.rfile.read(length)
                if "json" not in (self.headers.get("Content-Type") or ""):
                    return self._answer(415, {"code": 3, "message": "only the OTLP/HTTP JSON encoding is accepted"})
                try:
                    request = json.loads(body)
                    spans = receiver._flatten(request)
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    return self._answer(400, {"code": 3, "message": f"not an ExportTraceServiceRequest: {e}"})
                with receiver._lock:
                    receiver._spans.extend(spans)
                    receiver.requests += 1
                self._answer(200, {})

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = None

    @staticmethod
    def _flatten(request):
        out = []
        if not isinstance(request, dict):
            raise ValueError("the body is not a JSON object")
        for rs in request.get("resourceSpans", []):
            service = attributes(rs.get("resource", {}).get("attributes")).get("service.name", "")
            for ss in rs.get("scopeSpans", []):
                for raw in ss.get("spans", []):
                    out.append(Span(service, raw))
        return out

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def spans(self):
        """Every span received so far, in arrival order."""
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id):
        """The spans of one trace."""
        return [s for s in self.spans() if s.trace_id == trace_id]

    def wait_for(self, pred, timeout=20.0, what="spans"):
        """Waits until pred(spans) is true; returns the spans. AssertionError on timeout, with a
        summary of what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if pred(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; received {len(spans)} spans:\n"
                                     + trace_summary(spans))
            time.sleep(0.1)


SUMMARY_ATTRIBUTES = ("gen_ai.agent.id", "gen_ai.request.model", "gen_ai.usage.input_tokens",
                      "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons", "gen_ai.tool.call.id",
                      "error.type", "http.response.status_code", "finalise.status", "outcome")


def trace_summary(spans):
    """The spans as an indented tree (children in start order): "service: name KIND {attrs}", with
    links and an ERROR mark. Spans whose parent is not among `spans` are roots."""
    by_id = {s.span_id: s for s in spans}
    children = {}
    roots = []
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        if s.parent_span_id and s.parent_span_id in by_id:
            children.setdefault(s.parent_span_id, []).append(s)
        else:
            roots.append(s)
    lines = []

    def show(s, depth):
        attrs = {k: s.attributes[k] for k in SUMMARY_ATTRIBUTES if k in s.attributes}
        line = "  " * depth + f"{s.service}: {s.name} {s.kind}"
        if attrs:
            line += " " + json.dumps(attrs, separators=(",", ":"))
        if s.failed:
            line += " ERROR " + repr(s.status.get("message", ""))[:80]
        for lk in s.links:
            line += f" -> link {lk['trace_id'][:8]}../{lk['span_id']}"
        lines.append(line)
        for c in children.get(s.span_id, []):
            show(c, depth + 1)

    for r in roots:
        show(r, 0)
    return "\n".join(lines)


def main():
    """Runs the receiver by hand: prints one line per span as it arrives and, on Ctrl-C, every
    trace as a tree. Point the services at it with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Local OTLP/HTTP JSON trace receiver (prints what it receives).")
    parser.add_argument("--port", type=int, default=4318, help="listen port on 127.0.0.1 (default 4318)")
    args = parser.parse_args()
    rx = OtlpReceiver(args.port).start()
    print(f"listening on {rx.url}/v1/traces; Ctrl-C prints the traces", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    seen = 0
    while not stop.wait(0.5):
        spans = rx.spans()
        for s in spans[seen:]:
            print(f"{s.trace_id} {s.service}: {s.name}", flush=True)
        seen = len(spans)
    rx.close()
    for trace_id in dict.fromkeys(s.trace_id for s in rx.spans()):
        print(f"\ntrace {trace_id}\n" + trace_summary(rx.trace(trace_id)))


if __name__ == "__main__":
    main()
