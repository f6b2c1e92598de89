"""Tool-call streams as other OpenAI-compatible servers send them (issue 9 item 3), end
to end: the real spec-engine binary against the local fake server replaying scripted raw
SSE bodies. Each test checks what the run did with the stream: which tools ran with which
arguments, which files were written, how the run ended.

Cases: index 0 with a new id per call (vLLM, SGLang, Dynamo); the id only on the first
fragment; arguments cut inside characters and escapes; the function name cut; empty
arguments; calls with finish_reason "stop"; a usage-only final chunk; a stream closed
without [DONE] (whole turn accepted, truncated tool call never run); ": keep-alive"
comments, "data:" without a space, CRLF and CR line ends; an error object mid-stream."""
import json
import os
import sys
import unittest

import testkit

sys.path.insert(0, os.path.join(testkit.FIXTURES, "spec_engine"))
from fake_openai import chunk, sse, tool_delta  # noqa: E402

TOOLS = ("ls", "read_file", "write_file", "edit_file", "glob", "grep")
DONE = "data: [DONE]\n\n"
USAGE = sse(chunk(None, None, choices=[], usage={"prompt_tokens": 10, "completion_tokens": 5}))


def finish(reason="tool_calls"):
    return sse(chunk({}, reason))


def write_args(path, content):
    return json.dumps({"file_path": path, "content": content})


def pieces(text, n):
    return [text[i:i + n] for i in range(0, len(text), n)]


class OpenAiStreamTests(testkit.FakeOpenAiCase):
    """One engine and one fake server for the class; each test queues its own replies."""

    @classmethod
    def setUpClass(cls):
        cls.shared = testkit.FakeOpenAiCase()  # owns the class-wide fake server and engine
        cls.shared.setUp()
        cls.shared_fake = cls.shared.fake([])
        cls.shared_engine = cls.shared.engine(cls.shared_fake, "--model-max-attempts", "3")

    @classmethod
    def tearDownClass(cls):
        cls.shared.tearDown()

    def run_replies(self, replies, engine=None, files=None):
        """Queues `replies` (then "done" answers), runs one job; returns (events, state, requests)."""
        fake = self.shared_fake
        with fake.lock:
            fake.replies[:] = list(replies)
            first_request = len(fake.requests)
        _, events, state = self.run_to_end(engine or self.shared_engine, testkit.single_agent_definition(TOOLS),
                                           files=files)
        return events, state, fake.requests[first_request:]

    def tool_runs(self, events):
        starts = [e["data"] for e in events if e["event_type"] == "on_tool_start"]
        ends = {e["data"]["tool_call_id"]: e["data"]["output"] for e in events if e["event_type"] == "on_tool_end"}
        return starts, ends

    def assert_completed(self, state):
        self.assertEqual(state["status"], "completed", (state, self.shared_engine.log()[-3000:]))

    def test_index_zero_with_a_new_id_per_call(self):
        body = [sse(chunk({"role": "assistant", "content": ""}))]
        for call_id, path in (("call_one", "/one.md"), ("call_two", "/two.md")):
            body.append(sse(chunk(tool_delta(0, call_id, "write_file", ""))))
            body += [sse(chunk(tool_delta(0, None, None, p))) for p in pieces(write_args(path, path[1:4]), 6)]
        body += [finish(), USAGE, DONE]
        events, state, _ = self.run_replies([{"raw": body}])
        self.assert_completed(state)
        starts, ends = self.tool_runs(events)
        self.assertEqual([s["tool_call_id"] for s in starts], ["call_one", "call_two"])
        self.assertEqual(starts[1]["input"], {"file_path": "/two.md", "content": "two"})
        self.assertEqual(testkit.file_text(state["generated_files"]["/one.md"]), "one")
        self.assertEqual(testkit.file_text(state["generated_files"]["/two.md"]), "two")
        self.assertFalse([o for o in ends.values() if o.startswith("Error")], ends)

    def test_id_only_on_the_first_fragment(self):
        body = [sse(chunk(tool_delta(0, "only_first", "write_file", "")))]
        body += [sse(chunk(tool_delta(0, None, None, p))) for p in pieces(write_args("/f.md", "first"), 4)]
        events, state, _ = self.run_replies([{"raw": body + [finish(), DONE]}])
        self.assert_completed(state)
        starts, _ = self.tool_runs(events)
        self.assertEqual([s["tool_call_id"] for s in starts], ["only_first"])
        self.assertEqual(testkit.file_text(state["generated_files"]["/f.md"]), "first")

    def test_arguments_split_mid_code_point_and_mid_escape(self):
        # Arguments text {"file_path": "/u.md", "content": "caf\u00e9 é \"q\" 😀"}, cut
        # inside "\u00e9", between the two bytes of "é" (raw bytes, as a byte-slicing
        # server sends them), between "\" and '"', and between the halves of U+1F600
        # (two \uXXXX escapes, as a UTF-16-slicing server sends them).
        def frag(raw, call_id=None, name=None):
            # Written by hand: json.dumps cannot produce raw half characters or lone surrogates.
            ident = b'"id": "%s", "type": "function", ' % call_id.encode() if call_id else b""
            fname = b'"name": "%s", ' % name.encode() if name else b""
            return (b'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, ' + ident +
                    b'"function": {' + fname + b'"arguments": "' + raw + b'"}}]}}]}\n\n')
        body = [frag(rb'{\"file_path\": \"/u.md\", \"content\": \"caf\\u00', "cut", "write_file"),
                frag(b"e9 \xc3"),
                frag(b"\xa9 \\\\"),
                frag(b'\\"q\\\\\\" \\ud83d'),
                frag(b'\\ude00\\"}'),
                finish().encode(), DONE.encode()]
        events, state, _ = self.run_replies([{"raw": body}])
        self.assert_completed(state)
        starts, ends = self.tool_runs(events)
        self.assertEqual(starts[0]["input"]["content"], 'café é "q" 😀', ends)
        self.assertEqual(testkit.file_text(state["generated_files"]["/u.md"]), 'café é "q" 😀')

    def test_function_name_split_across_fragments(self):
        args = write_args("/n.md", "named")
        body = [sse(chunk(tool_delta(0, "nm", "wri", ""))), sse(chunk(tool_delta(0, None, "te_fi", args[:10]))),
                sse(chunk(tool_delta(0, None, "le", args[10:]))), finish(), DONE]
        events, state, _ = self.run_replies([{"raw": body}])
        self.assert_completed(state)
        starts, _ = self.tool_runs(events)
        self.assertEqual(starts[0]["tool"], "write_file")
        self.assertEqual(testkit.file_text(state["generated_files"]["/n.md"]), "named")

    def test_empty_arguments_mean_an_empty_object(self):
        body = [sse(chunk(tool_delta(0, "e1", "ls", ""))), sse(chunk(tool_delta(1, "e2", "ls", None))),
                finish(), DONE]
        events, state, _ = self.run_replies([{"raw": body}], files={"/seed.md": {"content": ["x"]}})
        self.assert_completed(state)
        starts, ends = self.tool_runs(events)
        self.assertEqual([s["input"] for s in starts], [{}, {}])
        self.assertEqual(ends, {"e1": "/seed.md", "e2": "/seed.md"})

    def test_tool_calls_with_finish_reason_stop(self):
        body = [sse(chunk(tool_delta(0, "s1", "write_file", write_args("/stop.md", "ran")))), finish("stop"), DONE]
        events, state, _ = self.run_replies([{"raw": body}])
        self.assert_completed(state)
        self.assertEqual(testkit.file_text(state["generated_files"]["/stop.md"]), "ran")

    def test_usage_only_final_chunk_is_counted(self):
        # The usage arrives alone in a last chunk with "choices": []; with --max-tokens 25
        # its 30 tokens end the run, which shows they were read.
        engine = self.engine(self.shared_fake, "--max-tokens", "25")
        body = [sse(chunk({"content": "thinking"}, None, usage=None)), finish("stop"),
                sse(chunk(None, None, choices=[], usage={"prompt_tokens": 20, "completion_tokens": 10})), DONE]
        _, state, _ = self.run_replies([{"raw": body}], engine=engine)
        self.assertEqual(state["status"], "failed")
        self.assertIn("token limit reached: 30 tokens", state["error"])
        # The usage is asked for, and the run's state reports what the server counted.
        self.assertEqual(self.shared_fake.requests[-1]["stream_options"], {"include_usage": True})
        self.assertEqual(state["usage"], {"input_tokens": 20, "output_tokens": 10})

    def test_stream_closed_without_done(self):
        # Whole turn (finish_reason arrived), then the connection closes: accepted.
        whole = [sse(chunk(tool_delta(0, "w1", "write_file", write_args("/whole.md", "kept")))), finish()]
        events, state, _ = self.run_replies([{"raw": whole, "framing": "close"}])
        self.assert_completed(state)
        self.assertIn("/whole.md", state["generated_files"])
        # Closed in the middle of a tool call's arguments: the call never runs; nothing was
        # streamed to the user yet, so the model call is retried and the retry's turn runs.
        cut = [sse(chunk(tool_delta(0, "t1", "write_file", write_args("/truncated.md", "never")[:25])))]
        events, state, requests = self.run_replies(
            [{"raw": cut, "framing": "close"},
             {"raw": whole[:1] + [finish(), DONE]}])
        self.assert_completed(state)
        starts, _ = self.tool_runs(events)
        self.assertEqual([s["tool_call_id"] for s in starts], ["w1"])
        self.assertNotIn("/truncated.md", state["generated_files"])
        self.assertEqual(len(requests), 3)  # cut, retry, final answer
        # Closed after content was streamed: a retry would repeat it, so the run fails.
        events, state, requests = self.run_replies(
            [{"raw": [sse(chunk({"content": "Half an answ"}))], "framing": "close"}])
        self.assertEqual(state["status"], "failed")
        self.assertIn("ended before the turn was complete", state["error"])
        self.assertEqual(len(requests), 1)

    def test_sse_framing_variants(self):
        for eol in ("\n", "\r\n", "\r"):
            with self.subTest(eol=repr(eol)):
                args = write_args("/framing.md", repr(eol))
                body = [": keep-alive" + eol + eol,
                        "data:" + json.dumps(chunk(tool_delta(0, "fr", "write_file", args[:12]))) + eol + eol,
                        ":" + eol + eol,
                        "data:" + json.dumps(chunk(tool_delta(0, None, None, args[12:]))) + eol + eol,
                        "data: " + json.dumps(chunk({}, "tool_calls")) + eol + eol,
                        "data:[DONE]" + eol + eol]
                events, state, _ = self.run_replies([{"raw": body}])
                self.assert_completed(state)
                self.assertEqual(testkit.file_text(state["generated_files"]["/framing.md"]), repr(eol))

    def test_error_object_mid_stream(self):
        body = [sse(chunk({"content": "Let me"})),
                sse({"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}})]
        events, state, requests = self.run_replies([{"raw": body}])
        self.assertEqual(state["status"], "failed")
        self.assertEqual(state["error"], "openai: the model server sent an error in the stream: CUDA out of memory "
                                         "(type: InternalServerError, code: 500)")
        self.assertEqual(len(requests), 1)
        self.assertEqual(events[-1]["data"]["error"], state["error"])


if __name__ == "__main__":
    unittest.main()
