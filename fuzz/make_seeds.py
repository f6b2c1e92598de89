#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<harness>/ (docs/fuzzing.md).

Small, real-looking inputs in each harness's input format, taken from the shapes the
services really exchange (tests/unit, tests/fixtures, config/demo). Re-run after changing
a harness's input format: `python3 fuzz/make_seeds.py` (files are named by content hash,
so re-running is idempotent; remove a directory first to drop old seeds).
"""
import hashlib
import json
import os

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def put(harness, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def js(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


DEFINITION = {
    "graph": {
        "nodes": [
            {"id": "main", "type": "AgentNode",
             "data": {"name": "Main", "system_prompt": "You refine specs.", "tools": ["ls", "read_file", "edit_file"]}},
            {"id": "writer", "type": "SubAgentNode",
             "data": {"name": "Writer", "description": "writes", "system_prompt": "x", "tools": ["write_file"]}},
        ],
        "edges": [{"source": "main", "target": "writer"}],
        "entryPoint": "main",
    }
}
FILES = {
    "/THE_SPEC/plan.md": {"content": ["# Plan", "", "1. Research", ""], "created_at": "2026-01-01T00:00:00Z",
                          "modified_at": "2026-01-01T00:00:00Z"},
    "/definition.json": {"content": "{\n  \"name\": \"crew\"\n}\n"},
}
JOB = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "job_id": "7f1c2d9e-0a4b-4c55-9a8e-1f2e3d4c5b6a",
       "agent_definition": DEFINITION,
       "input_payload": {"messages": [{"role": "user", "content": "Tighten the plan"}], "files": FILES}}


def json_seeds():
    for v in [JOB, {"a": [1, 2.5, -3e10, True, None, "\u00e9\u2603\U0001F600"]}, [], {}, "x", 0,
              {"files": {"/a.md": {"content": ["a", "b", ""]}}}]:
        put("fuzz_json", js(v))
    put("fuzz_json", '{"n": 1e999}')
    put("fuzz_json", "[" * 70 + "]" * 70)
    put("fuzz_json", '{"s": "\\ud83d\\ude00 \\u0000 \\n"}')
    put("fuzz_json", '{"big": 18446744073709551615, "neg": -9223372036854775808}')


def sse_seeds():
    put("fuzz_sse", "\x05data: {\"a\":1}\n\n: keep-alive\n\nevent: error\ndata: x\n\n")
    put("fuzz_sse", "\x11\xef\xbb\xbfdata:a\r\ndata:b\r\n\r\nid: 7\ndata: c\rdata\n\n")
    put("fuzz_sse", "\x00data: [DONE]")


def chunk(delta=None, finish=None, usage=None, extra=None):
    c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1767225600, "model": "m",
         "choices": [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    if extra:
        c.update(extra)
    return "data: " + js(c) + "\n\n"


def chat_seeds():
    text = chunk({"role": "assistant", "content": "Hel"}) + chunk({"content": "lo \u00e9"}) + chunk(finish="stop") + \
        chunk(usage={"prompt_tokens": 10, "completion_tokens": 3}) + "data: [DONE]\n\n"
    put("fuzz_chat_stream", "\x03" + text)
    calls = chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                   "function": {"name": "edit_", "arguments": ""}}]}) + \
        chunk({"tool_calls": [{"index": 0, "function": {"name": "file", "arguments": "{\"file_path\": \"/a"}}]}) + \
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ".md\", \"old_string\": \"x\\u00"}}]}) + \
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "e9\", \"new_string\": \"y\"}"}}]}) + \
        chunk({"tool_calls": [{"index": 0, "id": "call_b", "function": {"name": "ls", "arguments": ""}}]}) + \
        chunk(finish="tool_calls") + "data: [DONE]\n\n"
    put("fuzz_chat_stream", "\x07" + calls)
    put("fuzz_chat_stream", "\x01" + calls.replace("\n\n", "\r\n\r\n").replace("data: ", "data:"))
    put("fuzz_chat_stream", "\x02: keep-alive\n\n" + chunk({"content": "a"}) + 'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
    put("fuzz_chat_stream", "\x09" + 'data: {"choices":[{"delta":{"content":"\\ud83d"}}]}\n\ndata: {"choices":[{"delta":{"content":"\\ude00"},"finish_reason":"stop"}]}\n\n')
    put("fuzz_chat_stream", b"\x04data: {\"choices\":[{\"delta\":{\"content\":\"\xe2\x98\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"\x83\"}}]}\n\n")
    put("fuzz_chat_stream", "\x05" + chunk({"content": "cut"}))


def invoke_seeds():
    body = js(JOB)
    put("fuzz_invoke", "Content-Type: application/json\x00" + body)
    ce = {"specversion": "1.0", "id": "evt-1", "source": "/ide-orchestrator", "type": "dev.agentic-ide.refinement.requested",
          "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json", "data": JOB}
    put("fuzz_invoke", "Content-Type: application/cloudevents+json\x00" + js(ce))
    put("fuzz_invoke", "Content-Type: application/json\nce-specversion: 1.0\nce-id: e2\nce-source: /x\n"
                       "ce-type: t\nce-time: 2026-01-01T00:00:00.5+01:00\x00" + body)
    put("fuzz_invoke", "Content-Type: application/json\x00" + js({"job_id": "../x", "agent_definition": {}}))
    put("fuzz_invoke", "Content-Type: text/plain\x00{}")
    # Regression: a CloudEvent time outside system_clock's range (util.cpp parse_rfc3339).
    put("fuzz_invoke", "Content-Type: application/json\nce-specversion: 1.0\nce-id: e3\nce-source: /x\n"
                       "ce-type: t\nce-time: 0001-01-01T00:00:00Z\x00" + body)


def jwt_seeds():
    now = 1767225600
    hdr = js({"alg": "HS256", "typ": "JWT"})
    claims = {"sub": "u-1", "email": "ada@example.com", "iss": "ide-orchestrator", "aud": "agentic-ide",
              "iat": now - 10, "exp": now + 3600, "jti": "abc"}
    put("fuzz_jwt", hdr + "\x00" + js(claims))
    put("fuzz_jwt", js({"alg": "RS256", "kid": "k1"}) + "\x00" + js(dict(claims, iss="https://idp.example",
                                                                         aud=["agentic-ide-external", "x"],
                                                                         email_verified="true")))
    put("fuzz_jwt", js({"alg": "none"}) + "\x00" + js(claims))
    put("fuzz_jwt", hdr + "\x00" + js(dict(claims, exp=1e300, nbf=now)))
    put("fuzz_jwt", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln\x00bearer, eyJ.eyJ.c2ln\x00a=1&token=eyJ%2E")
    put("fuzz_jwt", "Basic dXNlcg==\x00chat, access_token, tok\x00?token=")


def paths_seeds():
    for pat, path in [("/docs/**/*.md", "/docs/a.md"), ("*.md", "/plan.md"), ("**", "/a/b/c"),
                      ("*a*a*a*a*a*a*a*b", "/" + "a" * 60), ("/THE_CAST/?riter.md", "/THE_CAST/Writer.md"),
                      ("***/x", "/y/x"), ("a/**/b", "/a/b")]:
        put("fuzz_paths", pat + "\x00" + path)
    put("fuzz_paths", "\x00/a//b/./c/")
    put("fuzz_paths", "\x00../etc/passwd")
    put("fuzz_paths", "\x00/x\\..\\y")
    put("fuzz_paths", "x\r\ny\rz\n\n")
    put("fuzz_paths", b"\x00/caf\xc3\xa9/\xff.md")


def tools_seeds():
    # FuzzedDataProvider reads integral choices from the end of the input and strings from
    # the front; a few random-looking byte strings are as good a start as any.
    put("fuzz_tools", b"# Plan\\\n1. Research\x00old\\new\x00" + bytes(range(0, 64)))
    put("fuzz_tools", b"Research\\Study\\plan.md\\x\x03\x01\x00\x03\x03\x01\x03\x00\x02")
    put("fuzz_tools", b"*.md\\Writer\\\x04\x05\x05\x04\x01\x01")
    put("fuzz_tools", bytes([i * 37 % 256 for i in range(200)]))


def bodies_seeds():
    bodies = [
        (0, {"email": "ada@example.com", "password": "correct horse battery staple"}),
        (1, {"name": "Research crew", "template": "multi-agent"}),
        (1, {"name": "Crew", "description": "d", "files": FILES}),
        (2, {"base_revision": 3}),
        (3, {"files": dict(FILES, **{"/old.md": None}), "base_revision": 1}),
        (3, {"files": {"/a.md": {"content": "x\r\ny\n"}}, "base_revision": 9007199254740993}),
        (4, {"user_prompt": "Tighten the plan", "context_file_path": "/THE_SPEC/plan.md",
             "context_selection": "1. Research"}),
        (4, {"user_prompt": "x", "context_file_path": "/x\\..\\y"}),
    ]
    for route, b in bodies:
        put("fuzz_bodies", bytes([route]) + js(b).encode())
    put("fuzz_bodies", bytes([2]))  # publish with an empty body
    put("fuzz_bodies", bytes([16]) + b'{"name": 1e999}')
    put("fuzz_bodies", bytes([18]) + b'{"files": {"/a.md": {"content": ["a\\u0000"]}}, "base_revision": 1}')


def query_seeds():
    for t in ["/api/workflows?limit=20&cursor=MjAyNi0wMS0wMVQwMDowMDowMC4wMDAwMDFafDBiN2M",
              "/api/ws/refinements/7f1c2d9e-0a4b-4c55-9a8e-1f2e3d4c5b6a?after_seq=40&token=a.b.c",
              "/spec-engine/stream/job-1?after_seq=0", "/a%20b/c?x=1&x=2&y", "/?limit=0", "/?limit=%2B5",
              "*", "http://h/x", "/?after_seq=999999999999999999", "2026-01-01T00:00:00.000001Z|0b7c0c1e"]:
        put("fuzz_query", t)


def diff_seeds():
    put("fuzz_diff", "# Plan\n\n1. Research\n2. Write\n\x00# Plan\n\n1. Research\n2. Review\n3. Write\n")
    put("fuzz_diff", "a\nb\nc\x00a\nb\nc\n")
    put("fuzz_diff", "\x00x\n")
    put("fuzz_diff", "\n".join(str(i) for i in range(30)) + "\x00" + "\n".join(str(i) for i in range(5, 40, 2)))


def merge_seeds():
    put("fuzz_merge", bytes([i * 53 % 256 for i in range(64)]))
    put("fuzz_merge", b"plan\nnew\x01\x02\x03\x00\x01\x04\x02\x01\x00\x03\x01\x02\x02\x01\x00\x01")
    put("fuzz_merge", b"\x05" * 40)


if __name__ == "__main__":
    json_seeds()
    sse_seeds()
    chat_seeds()
    invoke_seeds()
    jwt_seeds()
    paths_seeds()
    tools_seeds()
    bodies_seeds()
    query_seeds()
    diff_seeds()
    merge_seeds()
