#!/usr/bin/env python3
"""Streaming under load (R9): N concurrent refinement runs on the real spec-engine
binary (scripted model), each followed by its own WebSocket subscriber.

Prints, per concurrency level: invoke latency, run wall time (invoke -> `end`
received), event delivery lag (client receive time - event `ts`), events per
second across all streams, and whether every stream was complete and in order.
Bounded: loopback only, a fixed number of runs, a hard timeout.

Usage: /usr/bin/python3 bench/stream_load.py [--sessions 10,50] [--turns 20]
Env:   BIN_DIR (default build/bin)
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "lib"))
import testkit  # noqa: E402


def script(turns):
    """A script of `turns` steps, each writing a file and streaming ~40 words."""
    text = " ".join(f"word{i}" for i in range(40))
    out = []
    for i in range(turns):
        out.append({"content": text, "tool_calls": [
            {"id": f"c{i}", "name": "write_file",
             "arguments": {"file_path": f"/THE_SPEC/part{i}.md", "content": f"# Part {i}\n" + text}}]})
    out.append({"content": "done"})
    return {"turns": out}


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


async def follow(url, lags, timeout):
    import websockets
    events = []
    async with websockets.connect(url, open_timeout=timeout, max_size=None) as ws:
        try:
            while True:
                msg = await asyncio.wait_for(ws.recv(), timeout=timeout)
                now = time.time()
                ev = json.loads(msg)
                events.append(ev)
                ts = datetime.fromisoformat(ev["ts"].replace("Z", "+00:00")).timestamp()
                lags.append(now - ts)
        except websockets.exceptions.ConnectionClosedOK:
            pass
    return events


async def one_session(engine, definition, lags, timeout):
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    st, _, body = await loop.run_in_executor(None, engine.invoke, testkit.new_job(definition))
    t_invoke = time.monotonic() - t0
    if st != 202:
        raise RuntimeError(f"invoke answered {st}: {body}")
    events = await follow(f"{engine.ws_base}/spec-engine/stream/{body['thread_id']}", lags, timeout)
    wall = time.monotonic() - t0
    seqs = [e["seq"] for e in events]
    ok = bool(events) and events[-1]["event_type"] == "end" and seqs == list(range(1, len(seqs) + 1)) \
        and events[-1]["data"].get("status") == "completed"
    return t_invoke, wall, len(events), ok


async def level(engine, definition, n, timeout):
    lags = []
    t0 = time.monotonic()
    results = await asyncio.gather(*[one_session(engine, definition, lags, timeout) for _ in range(n)])
    elapsed = time.monotonic() - t0
    invokes = [r[0] * 1000 for r in results]
    walls = [r[1] for r in results]
    events = sum(r[2] for r in results)
    complete = sum(1 for r in results if r[3])
    lag_ms = [x * 1000 for x in lags]
    print(f"sessions={n:4d}  complete_in_order={complete}/{n}  events={events}  "
          f"events_per_s={events / elapsed:8.1f}  elapsed_s={elapsed:6.2f}")
    print(f"    invoke_ms p50={pct(invokes, 50):7.1f} p95={pct(invokes, 95):7.1f} max={max(invokes):7.1f}")
    print(f"    run_wall_s p50={pct(walls, 50):6.2f} p95={pct(walls, 95):6.2f} max={max(walls):6.2f}")
    print(f"    delivery_lag_ms p50={pct(lag_ms, 50):6.1f} p95={pct(lag_ms, 95):6.1f} "
          f"p99={pct(lag_ms, 99):6.1f} max={max(lag_ms):6.1f} mean={statistics.fmean(lag_ms):6.1f}")
    return complete == n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="10,50", help="comma-separated concurrency levels (default 10,50)")
    ap.add_argument("--turns", type=int, default=20, help="model turns per run (default 20)")
    ap.add_argument("--max-concurrent-runs", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=120.0, help="per-stream idle timeout, seconds")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-stream-")
    script_path = testkit.write_json(os.path.join(tmp, "script.json"), script(args.turns))
    engine = testkit.Engine(args=["--model-override", f"scripted:{script_path}",
                                  "--max-concurrent-runs", str(args.max_concurrent_runs),
                                  "--max-queue", "1000"])
    engine.start()
    definition = testkit.single_agent_definition()
    print(f"spec-engine streaming load: turns/run={args.turns} max_concurrent_runs={args.max_concurrent_runs} "
          f"(SQLite, scripted model, loopback)")
    ok = True
    try:
        for n in [int(x) for x in args.sessions.split(",")]:
            ok = asyncio.run(level(engine, definition, n, args.timeout)) and ok
    finally:
        engine.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
