"""Spec Engine on the real binary against hostile and odd input (docs/json-input.md,
docs/files.md): JSON nested 150,000 deep and numbers out of range are 400s and the
engine keeps serving; files follow the shared line model (CRLF becomes LF, a trailing
newline is a final "" line, an edit_file spanning lines matches CRLF text); model tool
calls that break the shared path/content/size rules get a tool error the model reads."""
import json
import os
import tempfile
import unittest

import testkit
from testkit import Engine, http, nested_arrays, nested_objects, ws_collect

MIB = 1 << 20

# One agent: writes CRLF text, edits across lines, then tries what the rules refuse.
SCRIPT = {"turns": [
    {"content": "Writing.", "tool_calls": [
        {"id": "c1", "name": "write_file", "arguments": {"file_path": "/crlf.md", "content": "one\r\ntwo\r\nthree\r\n"}},
        {"id": "c2", "name": "edit_file", "arguments": {"file_path": "/crlf.md", "old_string": "one\r\ntwo",
                                                        "new_string": "1\r\n2"}},
        {"id": "c3", "name": "edit_file", "arguments": {"file_path": "/seeded.md", "old_string": "b\nc",
                                                        "new_string": "B\nC"}}]},
    {"content": "Trying the limits.", "tool_calls": [
        {"id": "c4", "name": "write_file", "arguments": {"file_path": "/x\\..\\y", "content": "x"}},
        {"id": "c5", "name": "write_file", "arguments": {"file_path": "/nul.md", "content": "a\u0000b"}},
        {"id": "c6", "name": "write_file", "arguments": {"file_path": "/big.md", "content": "x" * (MIB + 1)}},
        {"id": "c7", "name": "write_file", "arguments": {"file_path": "/max.md", "content": "y" * MIB}}]},
    {"content": "Done."},
]}


class HostileInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="se-hostile-")
        script = testkit.write_json(os.path.join(cls.tmp, "script.json"), SCRIPT)
        cls.engine = Engine(["--model-override", "scripted:" + script, "--max-body-bytes", str(4 * MIB)]).start()

    @classmethod
    def tearDownClass(cls):
        cls.engine.shutdown_cleanly()

    def post_raw(self, text):
        return http("POST", self.engine.base + "/spec-engine/invoke", text.encode(),
                    headers={"Content-Type": "application/json"}, timeout=60)

    def assert_serving(self):
        self.assertIsNone(self.engine.proc.returncode, "the engine died:\n" + self.engine.log())
        st, _, body = http("GET", self.engine.base + "/health")
        self.assertEqual(st, 200, self.engine.log())

    def job_text(self, extra_json):
        job = testkit.new_job(testkit.single_agent_definition())
        text = json.dumps(job)
        # splice a raw JSON value into input_payload (json.dumps cannot write these)
        return text.replace('"input_payload": {', '"input_payload": {"extra": ' + extra_json + ", ", 1)

    def test_deep_arrays_in_input_payload(self):
        body_text = self.job_text(nested_arrays(150_000))
        self.assertLess(len(body_text), 400_000)
        st, h, body = self.post_raw(body_text)
        self.assertEqual(st, 400, body)
        self.assertEqual(h.get("content-type"), "application/problem+json")
        self.assertEqual(body["title"], "JSON nested too deeply")
        self.assertIn("64", body["detail"])
        self.assertIn("input_payload.extra", body["detail"])
        self.assertEqual(body["errors"][0]["field"], "body")
        self.assert_serving()

    def test_nested_objects(self):
        st, _, body = self.post_raw(nested_objects(100_000))
        self.assertEqual(st, 400, body)
        self.assertIn("limit of 64", body["errors"][0]["message"])
        self.assert_serving()

    def test_deep_structured_cloudevent(self):
        st, _, body = http("POST", self.engine.base + "/spec-engine/invoke",
                           ('{"specversion":"1.0","id":"e1","source":"/t","type":"t","data":' + nested_arrays(150_000) + "}").encode(),
                           headers={"Content-Type": "application/cloudevents+json"}, timeout=60)
        self.assertEqual(st, 400, body)
        self.assert_serving()

    def test_number_out_of_range_names_the_field(self):
        st, _, body = self.post_raw(self.job_text('{"n": [1, 1e999]}'))
        self.assertEqual(st, 400, body)
        self.assertEqual(body["title"], "Number out of range")
        self.assertEqual(body["errors"][0]["field"], "input_payload.extra.n[1]")
        self.assertIn("1e999", body["detail"])
        st, _, body = self.post_raw("-1e999")
        self.assertEqual(st, 400, body)
        self.assertEqual(body["errors"][0]["field"], "body")
        self.assert_serving()

    def test_seeded_files_that_break_the_rules_are_named(self):
        job = testkit.new_job(testkit.single_agent_definition(), files={
            "/x\\..\\y": {"content": ["a"]}, "/nul.md": {"content": "a\u0000b"}, "/big.md": {"content": "x" * (MIB + 1)}})
        st, _, body = self.engine.invoke(job)
        self.assertEqual(st, 400, body)
        fields = sorted(e["field"] for e in body["errors"])
        self.assertEqual(fields, ['input_payload.files["/big.md"]', 'input_payload.files["/nul.md"]',
                                  'input_payload.files["/x\\..\\y"]'], body)
        self.assert_serving()

    def test_line_model_and_tool_errors_in_a_run(self):
        job = testkit.new_job(testkit.single_agent_definition(),
                              files={"/seeded.md": {"content": "a\r\nb\r\nc\r\n"}, "/lines.md": {"content": ["p\r", "q", ""]}})
        st, _, body = self.engine.invoke(job)
        self.assertEqual(st, 202, body)
        events, _, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{job['job_id']}")
        state = self.engine.wait_terminal(job["job_id"])
        self.assertEqual(state["status"], "completed", state)
        files = state["generated_files"]
        # CRLF became LF, the trailing newline is a final "", edits across lines matched.
        self.assertEqual(files["/crlf.md"]["content"], ["1", "2", "three", ""])
        self.assertEqual(files["/seeded.md"]["content"], ["a", "B", "C", ""])
        self.assertEqual(files["/lines.md"]["content"], ["p", "q", ""])
        # Exactly 1 MiB is a valid file; the rest were tool errors the model read.
        self.assertEqual(len(files["/max.md"]["content"][0]), MIB)
        self.assertEqual(sorted(files), ["/crlf.md", "/lines.md", "/max.md", "/seeded.md"])
        out = {e["data"]["tool_call_id"]: e["data"]["output"] for e in events if e["event_type"] == "on_tool_end"}
        for call in ("c1", "c2", "c3", "c7"):
            self.assertFalse(out[call].startswith("Error:"), (call, out[call]))
        self.assertTrue(out["c4"].startswith("Error:") and "backslash" in out["c4"], out["c4"])
        self.assertTrue(out["c5"].startswith("Error:") and "NUL" in out["c5"], out["c5"])
        self.assertTrue(out["c6"].startswith("Error:") and "bytes per file" in out["c6"], out["c6"])
        self.assert_serving()


if __name__ == "__main__":
    unittest.main()
