"""One refinement is one trace a person can read (docs/observability.md).

Both real binaries on loopback ports export spans (OTEL_EXPORTER_OTLP_ENDPOINT) to a local OTLP/HTTP
JSON receiver (tests/lib/otlp_receiver.py). The refinement request carries a traceparent of the
test's own, so every span of the refinement must be in that trace:

  ide-orchestrator  POST /api/workflows/{id}/refinements     SERVER
    ide-orchestrator  POST /spec-engine/invoke               CLIENT
      spec-engine  POST /spec-engine/invoke                  SERVER
        spec-engine  spec_engine.run                         INTERNAL
          invoke_agent <agent>  -> chat <model> per model call, execute_tool <tool> per tool call,
                                   the sub-agent's invoke_agent under the `task` call
    ide-orchestrator  proposal.track                         INTERNAL  (the tracker's stream)
      spec-engine  GET /spec-engine/stream/{thread_id}       SERVER
      ide-orchestrator  proposal.finalise                    INTERNAL

The browser's WebSocket is its own trace whose ws_proxy.stream span links to the refinement.
Token usage: chat spans, the engine state's `usage` (kept across a restart) and the Prometheus
counter agree. A restarted orchestrator's tracker still puts its spans into the refinement's trace.
"""
import json
import os
import re
import secrets
import shutil
import tempfile
import unittest

from e2ekit import DEMO_SCRIPT, Stack, create_workflow, curl, wait_proposal, ws_url
from otlp_receiver import OtlpReceiver, trace_summary
from testkit import http, wait_until, write_json, ws_collect


def traceparent():
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def refine_traced(orch, token, workflow_id, tp, prompt="Add a fact checker."):
    return curl(orch.url, "POST", f"/api/workflows/{workflow_id}/refinements", {"user_prompt": prompt}, token=token,
                headers={"traceparent": tp})


class OneRefinementOneTrace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rx = OtlpReceiver().start()
        cls.stack = Stack(env={"OTEL_EXPORTER_OTLP_ENDPOINT": cls.rx.url})
        cls.token = cls.stack.user()
        with open(DEMO_SCRIPT) as f:
            cls.turns = json.load(f)["turns"]

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        cls.rx.close()

    def children(self, spans, parent, name=None):
        out = [s for s in spans if s.parent_span_id == parent.span_id and (name is None or s.name == name)]
        return sorted(out, key=lambda s: s.start)

    def one_child(self, spans, parent, name):
        found = self.children(spans, parent, name)
        self.assertEqual(len(found), 1, f"{name!r} under {parent.name!r}:\n{trace_summary(spans)}")
        return found[0]

    def check_agent(self, spans, agent, node, name, turns):
        """The agent's spans: a chat per scripted turn of `node`, in order; after each, an
        execute_tool per tool call of that turn; returns the execute_tool spans of `task` calls."""
        a = agent.attributes
        self.assertEqual(agent.name, f"invoke_agent {name}")
        self.assertEqual(agent.kind, "INTERNAL")
        self.assertEqual(a["gen_ai.operation.name"], "invoke_agent")
        self.assertEqual(a["gen_ai.agent.name"], name)
        self.assertEqual(a["gen_ai.agent.id"], node)
        self.assertEqual(a["gen_ai.provider.name"], "scripted")
        self.assertEqual(a["gen_ai.system"], "scripted")
        self.assertEqual(a["gen_ai.request.model"], "scripted")
        mine = [t for t in turns if t.get("node") == node]
        ops = self.children(spans, agent)
        chats = [s for s in ops if s.name.startswith("chat")]
        tools = [s for s in ops if s.name.startswith("execute_tool")]
        self.assertEqual(len(ops), len(chats) + len(tools), trace_summary(spans))
        self.assertEqual(len(chats), len(mine), trace_summary(spans))
        expected_tools = [c for t in mine for c in t.get("tool_calls", [])]
        self.assertEqual([s.attributes["gen_ai.tool.name"] for s in tools], [c["name"] for c in expected_tools])
        self.assertEqual([s.name for s in tools], [f"execute_tool {c['name']}" for c in expected_tools])
        self.assertEqual([s.attributes["gen_ai.tool.call.id"] for s in tools], [c["id"] for c in expected_tools])
        for chat, turn in zip(chats, mine):
            c = chat.attributes
            self.assertEqual(chat.name, "chat scripted")
            self.assertEqual(chat.kind, "CLIENT")
            self.assertEqual(c["gen_ai.operation.name"], "chat")
            self.assertEqual(c["gen_ai.provider.name"], "scripted")
            self.assertEqual(c["gen_ai.request.model"], "scripted")
            self.assertEqual(c["gen_ai.response.model"], "scripted")
            self.assertEqual(c["gen_ai.agent.name"], name)
            self.assertGreater(c["gen_ai.usage.input_tokens"], 0)
            self.assertGreater(c["gen_ai.usage.output_tokens"], 0)
            self.assertEqual(c["gen_ai.response.finish_reasons"], ["tool_calls" if turn.get("tool_calls") else "stop"])
            self.assertFalse(chat.failed)
        for t in tools:
            self.assertEqual(t.kind, "INTERNAL")
            self.assertEqual(t.attributes["gen_ai.operation.name"], "execute_tool")
            self.assertEqual(t.attributes["gen_ai.tool.type"], "function")
        # every model call comes before the tool calls it asked for
        for chat, nxt in zip(chats, chats[1:]):
            between = [t for t in tools if chat.start <= t.start <= nxt.start]
            self.assertTrue(all(t.end <= nxt.start for t in between))
        self.assertEqual(a["gen_ai.usage.input_tokens"],
                         sum(s.attributes["gen_ai.usage.input_tokens"] for s in spans
                             if s.name.startswith("chat") and self.under(spans, s, agent)))
        return [t for t in tools if t.attributes["gen_ai.tool.name"] == "task"]

    @staticmethod
    def under(spans, span, ancestor):
        by_id = {s.span_id: s for s in spans}
        while span is not None:
            if span.span_id == ancestor.span_id:
                return True
            span = by_id.get(span.parent_span_id)
        return False

    def test_refinement_is_one_trace(self):
        orch, engine = self.stack.orch, self.stack.engine
        wf = create_workflow(orch, self.token)
        trace_id, caller_span, tp = traceparent()
        r = refine_traced(orch, self.token, wf["id"], tp)
        self.assertEqual(r.status, 202, r.text)
        started = r.json()
        thread = started["thread_id"]
        events, code, _ = ws_collect(ws_url(orch, thread), headers={"Authorization": "Bearer " + self.token})
        self.assertEqual(code, 1000)
        p = wait_proposal(orch, self.token, started["proposal_id"])
        self.assertEqual(p["status"], "completed", p)

        def complete(all_spans):
            names = {s.name for s in all_spans if s.trace_id == trace_id}
            return {"proposal.finalise", "spec_engine.run", "proposal.track"} <= names and any(
                s.name == "ws_proxy.stream" for s in all_spans)
        everything = self.rx.wait_for(complete, timeout=30, what="the refinement's spans")
        spans = [s for s in everything if s.trace_id == trace_id]
        summary = trace_summary(spans)
        print("\n" + summary)
        if os.environ.get("TRACE_SUMMARY_FILE"):
            with open(os.environ["TRACE_SUMMARY_FILE"], "w") as f:
                f.write(summary + "\n")

        # One trace: a single root (the request's span, child of the caller's), no orphans.
        by_id = {s.span_id: s for s in spans}
        self.assertEqual(len(by_id), len(spans), "span ids are unique")
        roots = [s for s in spans if s.parent_span_id not in by_id]
        self.assertEqual([(s.name, s.parent_span_id) for s in roots],
                         [("POST /api/workflows/{id}/refinements", caller_span)], summary)
        request = roots[0]
        self.assertEqual((request.service, request.kind), ("ide-orchestrator", "SERVER"))
        self.assertEqual({s.service for s in spans}, {"ide-orchestrator", "spec-engine"})

        invoke = self.one_child(spans, request, "POST /spec-engine/invoke")
        self.assertEqual((invoke.service, invoke.kind), ("ide-orchestrator", "CLIENT"))
        self.assertEqual(invoke.attributes["http.response.status_code"], 202)
        engine_invoke = self.one_child(spans, invoke, "POST /spec-engine/invoke")
        self.assertEqual((engine_invoke.service, engine_invoke.kind), ("spec-engine", "SERVER"))
        run = self.one_child(spans, engine_invoke, "spec_engine.run")
        self.assertEqual(run.attributes["gen_ai.conversation.id"], thread)
        self.assertEqual(run.attributes["spec_engine.run.status"], "completed")

        root_agent = self.one_child(spans, run, "invoke_agent Workflow Refinement Orchestrator")
        tasks = self.check_agent(spans, root_agent, "orchestrator", "Workflow Refinement Orchestrator", self.turns)
        self.assertEqual(len(tasks), 1)
        reviewer = self.one_child(spans, tasks[0], "invoke_agent Specification Reviewer")
        self.assertEqual(self.check_agent(spans, reviewer, "reviewer", "Specification Reviewer", self.turns), [])
        for s in spans:
            if s.service == "spec-engine" and s.name.split(" ")[0] in ("invoke_agent", "chat", "execute_tool"):
                self.assertEqual(s.attributes["gen_ai.conversation.id"], thread)
                self.assertFalse(s.failed, s)

        # Tokens: the chat spans, the run span, the engine's state and its metrics agree.
        chats = [s for s in spans if s.name.startswith("chat ")]
        self.assertEqual(len(chats), len(self.turns))
        used_in = sum(s.attributes["gen_ai.usage.input_tokens"] for s in chats)
        used_out = sum(s.attributes["gen_ai.usage.output_tokens"] for s in chats)
        self.assertEqual((run.attributes["gen_ai.usage.input_tokens"], run.attributes["gen_ai.usage.output_tokens"]),
                         (used_in, used_out))
        status, _, state = engine.state(thread)
        self.assertEqual(status, 200)
        self.assertEqual(state["usage"], {"input_tokens": used_in, "output_tokens": used_out})
        status, _, metrics = http("GET", engine.base + "/metrics", raw=True)
        self.assertEqual(status, 200)
        counted = {m.group(1): float(m.group(2)) for m in re.finditer(
            r'^spec_engine_gen_ai_token_usage_total\{[^}]*gen_ai_token_type="(input|output)"[^}]*\} (\S+)$',
            metrics.decode(), re.M)}
        self.assertEqual(counted, {"input": used_in, "output": used_out})

        # The tracker's stream: in the refinement's trace, on any replica (a child of the request).
        track = self.one_child(spans, request, "proposal.track")
        self.assertEqual(track.service, "ide-orchestrator")
        self.assertEqual(track.attributes["proposal_id"], started["proposal_id"])
        self.assertEqual(track.attributes["outcome"], "completed")
        stream = self.one_child(spans, track, "GET /spec-engine/stream/{thread_id}")
        self.assertEqual(stream.service, "spec-engine")
        finalise = self.one_child(spans, track, "proposal.finalise")
        self.assertEqual(finalise.attributes["finalise.status"], "completed")
        self.assertEqual(finalise.attributes["finalise.result"], "applied")
        self.assertGreaterEqual(finalise.start, run.start)

        # The browser's WebSocket: its own trace, linked to the refinement's request.
        ws = [s for s in everything if s.name == "ws_proxy.stream" and s.attributes.get("thread_id") == thread]
        self.assertEqual(len(ws), 1, trace_summary(everything))
        self.assertNotEqual(ws[0].trace_id, trace_id)
        self.assertEqual([(lk["trace_id"], lk["span_id"]) for lk in ws[0].links], [(trace_id, request.span_id)])
        self.assertEqual(ws[0].attributes["outcome"], "end")
        upgrade = [s for s in everything if s.span_id == ws[0].parent_span_id]
        self.assertEqual([s.name for s in upgrade], ["GET /api/ws/refinements/{thread_id}"])

        # The usage is stored: a restarted engine answers the same.
        engine.stop()
        engine.start()
        status, _, again = engine.state(thread)
        self.assertEqual((status, again["usage"]), (200, state["usage"]))


class TrackerAfterRestart(unittest.TestCase):
    """The traceparent is stored with the proposal: the tracker of a restarted orchestrator still
    follows the run inside the refinement's trace."""

    def setUp(self):
        self.rx = OtlpReceiver().start()
        self.tmp = tempfile.mkdtemp(prefix="traces-")
        turns = [{"node": "orchestrator", "content": f"step {i}", "delay_ms": 400,
                  "tool_calls": [{"id": f"t{i}", "name": "write_todos",
                                  "arguments": {"todos": [{"content": f"step {i}", "status": "in_progress"}]}}]}
                 for i in range(15)]  # about 6 s: the orchestrator restarts while it runs
        turns.append({"node": "orchestrator", "content": "Done."})
        script = write_json(os.path.join(self.tmp, "slow.json"), {"turns": turns})
        self.stack = Stack(script=script, env={"OTEL_EXPORTER_OTLP_ENDPOINT": self.rx.url})

    def tearDown(self):
        self.stack.close()
        self.rx.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_restarted_tracker_joins_the_trace(self):
        orch = self.stack.orch
        token = self.stack.user()
        wf = create_workflow(orch, token)
        trace_id, _, tp = traceparent()
        r = refine_traced(orch, token, wf["id"], tp)
        self.assertEqual(r.status, 202, r.text)
        started = r.json()
        wait_until(lambda: self.stack.engine.state(started["thread_id"])[2].get("status") == "running",
                   what="the run to start")
        orch.stop()  # SIGTERM: the tracker releases its lease; its span ends as "stopped"
        orch.start()
        p = wait_proposal(orch, token, started["proposal_id"], timeout=60)
        self.assertEqual(p["status"], "completed", p)
        spans = self.rx.wait_for(
            lambda spans: any(s.trace_id == trace_id and s.name == "proposal.finalise" for s in spans),
            what="the finalisation span")
        spans = [s for s in spans if s.trace_id == trace_id]
        summary = trace_summary(spans)
        request = [s for s in spans if s.name == "POST /api/workflows/{id}/refinements"]
        self.assertEqual(len(request), 1, summary)
        tracks = sorted([s for s in spans if s.name == "proposal.track"], key=lambda s: s.start)
        self.assertEqual([s.parent_span_id for s in tracks], [request[0].span_id] * 2, summary)
        self.assertEqual([s.attributes["outcome"] for s in tracks], ["stopped", "completed"], summary)
        finalise = [s for s in spans if s.name == "proposal.finalise"]
        self.assertEqual([s.parent_span_id for s in finalise], [tracks[1].span_id], summary)


if __name__ == "__main__":
    unittest.main()
