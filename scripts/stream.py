#!/usr/bin/python3
"""Follows one engine thread through ide-orchestrator's WebSocket proxy and prints it for people.

Usage: TOKEN=<bearer token> scripts/stream.py ws://HOST:PORT/api/ws/{refinements|runs}/<thread_id>

Authenticates with the sub-protocol pair `bearer, <token>` (never in the URL), prints every
event until the stream ends, and exits 0 when the run completed, 1 otherwise. Lines are
labelled by who speaks: `agent <node>` for what an agent says and does (its text, tool
calls, failed tool results), `engine` for the runtime's bookkeeping (steps, todos, files
touched, the end of the run). Colours only on a terminal (NO_COLOR disables them).
Needs Debian's python3-websockets.
"""
import asyncio
import json
import os
import sys

import websockets

COLOUR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(code, text):
    return f"\033[{code}m{text}\033[0m" if COLOUR else text


def agent(node, text):
    label = paint("36", "agent " + (node or "?"))
    print(f"    {label} | {text}", flush=True)


def engine(text):
    label = paint("2", "engine")
    print(f"    {label} | {text}", flush=True)


def short(s, n=110):
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


async def follow(url, token):
    said = {}          # node -> text streamed since its last tool call
    seen_files = None  # files of the previous state update
    status = None
    async with websockets.connect(url, subprotocols=["bearer", token], open_timeout=10, max_size=None) as ws:
        async for raw in ws:
            ev = json.loads(raw)
            kind, d = ev.get("event_type"), ev.get("data") or {}
            node = d.get("node", "")
            if kind == "on_llm_stream":
                said[node] = said.get(node, "") + str(d.get("delta", ""))
                continue
            if said.get(node):
                agent(node, "says: " + short(said[node]))
                said[node] = ""
            if kind == "on_tool_start":
                inp = d.get("input") or {}
                if isinstance(inp, str):
                    try:
                        inp = json.loads(inp)
                    except ValueError:
                        inp = {}
                tool = d.get("tool")
                what = inp.get("file_path") or inp.get("path") or inp.get("pattern") or ""
                if tool == "task":
                    what = f"-> sub-agent '{inp.get('subagent_type')}': {short(inp.get('description', ''), 70)}"
                elif tool == "write_todos":
                    what = f"{len(inp.get('todos', []))} todos"
                agent(node, f"tool {tool:<11} {what}")
            elif kind == "on_tool_end":
                out = str(d.get("output", ""))
                if out.lower().startswith("error"):
                    agent(node, "  ! " + short(out))
            elif kind == "on_state_update":
                todos = d.get("todos") or []
                done = sum(1 for x in todos if isinstance(x, dict) and x.get("status") == "completed")
                line = f"step {d.get('step')} ({node})"
                if todos:
                    line += f", todos {done}/{len(todos)} done"
                files = d.get("files")
                if isinstance(files, dict):
                    if seen_files is not None:
                        changed = [p for p in files if p not in seen_files
                                   or files[p].get("content") != seen_files[p].get("content")]
                        if changed:
                            line += ", files touched: " + ", ".join(sorted(changed))
                    seen_files = files
                engine(line)
            elif kind == "error":
                engine(paint("31", f"ERROR: {d.get('error')}"))
            elif kind == "end":
                status = d.get("status")
                engine(f"end of run: {status}")
    return status


def main():
    if len(sys.argv) != 2 or not os.environ.get("TOKEN"):
        sys.exit(__doc__.strip().splitlines()[2])
    status = asyncio.run(follow(sys.argv[1], os.environ["TOKEN"]))
    sys.exit(0 if status == "completed" else f"the run did not complete (status {status})")


if __name__ == "__main__":
    main()
