"""Orchestrator + engine (real binaries) against hostile and odd input (docs/json-input.md,
docs/files.md, issue 9 items 1, 4, 6, 7):
- JSON nested 150,000 deep (arrays) or 100,000 deep (objects) and numbers out of range
  are 400 problems and the orchestrator keeps serving;
- one line model: a file sent as a string keeps its trailing newline, CRLF becomes LF, so a
  model rewriting the same text is "unchanged" and an edit_file spanning lines matches;
- one set of rules: draft paths and content the engine would refuse are a 400 naming the
  field, a file of exactly 1 MiB goes through a refinement, NUL in a workflow name and a
  base_revision of 2^63 are 400s naming the field."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from e2ekit import Orchestrator, Stack, create_workflow, curl, refine, wait_proposal, ws_follow
from testkit import nested_arrays, nested_objects, wait_until

MIB = 1 << 20
PROBLEM_BASE = "https://agentic-ide.dev/problems/"

# The refinement's model: rewrites /string.md with the text it already has, edits the
# CRLF file across lines, and adds one file.
SCRIPT = {"turns": [
    {"node": "orchestrator", "content": "Editing.", "tool_calls": [
        {"id": "s1", "name": "write_file", "arguments": {"file_path": "/string.md", "content": "alpha\nbeta\n"}},
        {"id": "s2", "name": "edit_file", "arguments": {"file_path": "/notes.md", "old_string": "one\ntwo",
                                                        "new_string": "1\n2"}},
        {"id": "s3", "name": "write_file", "arguments": {"file_path": "/added.md", "content": "new\n"}}]},
    {"node": "orchestrator", "content": "Done."},
]}


class ScriptedCase(unittest.TestCase):
    """One engine playing SCRIPT and one orchestrator per class (Stack with STACK_ARGS), and a
    signed-in user."""
    STACK_ARGS = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="e2e-hostile-")
        script = os.path.join(cls.tmp, "script.json")
        with open(script, "w") as f:
            json.dump(SCRIPT, f)
        cls.stack = Stack(script=script, **cls.STACK_ARGS)
        cls.orch = cls.stack.orch
        cls.token = cls.stack.user()

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

class HostileInput(ScriptedCase):
    STACK_ARGS = {"orch_extra": ["--max-body-bytes", str(4 * MIB)]}

    def setUp(self):
        self.wf = create_workflow(self.orch, self.token, template="single-agent")
        self.wid = self.wf["id"]

    def still_serving(self):
        self.assertIsNone(self.orch.proc.returncode, "the orchestrator died:\n" + self.stack.logs())
        r = curl(self.orch.url, "GET", f"/api/workflows/{self.wid}", token=self.token)
        self.assertEqual(r.status, 200, r.text)

    def problem(self, r, status, field=None):
        self.assertEqual(r.status, status, r.text)
        self.assertTrue(r.header("content-type").startswith("application/problem+json"), r.headers)
        body = r.json()
        if field is not None:
            self.assertIn(field, [e["field"] for e in body.get("errors", [])], body)
        self.still_serving()
        return body

    def put_files(self, files, base_revision=None, raw=None):
        if raw is not None:
            return curl(self.orch.url, "PUT", f"/api/workflows/{self.wid}/draft/files", raw=raw, token=self.token)
        if base_revision is None:
            base_revision = self.draft()["revision"]
        return curl(self.orch.url, "PUT", f"/api/workflows/{self.wid}/draft/files",
                    {"files": files, "base_revision": base_revision}, token=self.token)

    def draft(self):
        return curl(self.orch.url, "GET", f"/api/workflows/{self.wid}/draft", token=self.token).json()

    # ------------------------------------------------------------ item 1: depth
    def test_deep_arrays_in_draft_files_and_new_workflow(self):
        body = '{"files": {"/a.md": {"content": ' + nested_arrays(150_000) + '}}, "base_revision": 1}'
        self.assertLess(len(body), 400_000)
        p = self.problem(self.put_files(None, raw=body), 400, "(body)")
        self.assertEqual(p["title"], "JSON nested too deeply")
        self.assertEqual(p["limit"], 64)
        self.assertIn("64", p["errors"][0]["message"])
        r = curl(self.orch.url, "POST", "/api/workflows", raw='{"name": "deep", "files": ' + nested_arrays(150_000) + "}",
                 token=self.token)
        self.problem(r, 400, "(body)")
        self.assertEqual(self.draft()["revision"], 1, "nothing was written")

    def test_nested_objects(self):
        r = curl(self.orch.url, "POST", "/api/workflows", raw='{"name": "deep", "files": ' + nested_objects(100_000) + "}",
                 token=self.token)
        p = self.problem(r, 400, "(body)")
        self.assertEqual(p["limit"], 64)

    def test_deep_login_body_before_authentication(self):
        r = curl(self.orch.url, "POST", "/api/auth/login", raw='{"email": ' + nested_arrays(150_000) + "}")
        self.problem(r, 400, "(body)")

    # ------------------------------------------------------------ item 4: numbers
    def test_number_out_of_range_names_the_field(self):
        p = self.problem(self.put_files(None, raw='{"files": {}, "base_revision": 1e999}'), 400, "base_revision")
        self.assertEqual(p["title"], "Number out of range")
        self.assertIn("1e999", p["detail"])
        raw = '{"files": {"/a.md": {"content": ["x", -1e999]}}, "base_revision": 1}'
        self.problem(self.put_files(None, raw=raw), 400, 'files["/a.md"].content[1]')
        r = curl(self.orch.url, "POST", "/api/workflows", raw='{"name": "n", "extra": {"x": 1E400}}', token=self.token)
        self.problem(r, 400, "extra.x")

    # ------------------------------------------------------------ item 7: NUL, 2^63
    def test_nul_in_workflow_name_and_description(self):
        r = curl(self.orch.url, "POST", "/api/workflows", {"name": "evil\u0000name"}, token=self.token)
        self.problem(r, 400, "name")
        r = curl(self.orch.url, "POST", "/api/workflows", {"name": "line\nbreak"}, token=self.token)
        self.problem(r, 400, "name")
        r = curl(self.orch.url, "POST", "/api/workflows", {"name": "ok", "description": "a\u0000b"}, token=self.token)
        self.problem(r, 400, "description")

    def test_base_revision_out_of_range_never_wraps(self):
        for v in (2**63, 2**64 + 5, -(2**63), 0, 2**53):
            raw = '{"files": {"/n.md": {"content": "x"}}, "base_revision": %d}' % v
            p = self.problem(self.put_files(None, raw=raw), 400, "base_revision")
            self.assertIn("9007199254740991", p["detail"])
        r = curl(self.orch.url, "POST", f"/api/workflows/{self.wid}/versions", raw='{"base_revision": 9223372036854775808}',
                 token=self.token)
        self.problem(r, 400, "base_revision")
        self.assertEqual(self.draft()["revision"], 1)
        self.assertNotIn("/n.md", self.draft()["files"])

    # ------------------------------------------------------------ item 7: shared rules
    def test_draft_paths_and_content_the_engine_refuses_are_400(self):
        for path, field in [("/x\\..\\y", "files./x\\..\\y"), ("/a//b.md", "files./a//b.md"),
                            ("/" + "p" * 600, "files./" + "p" * 600)]:
            self.problem(self.put_files({path: {"content": "x"}}), 400, field)
        self.problem(self.put_files({"/nul.md": {"content": "a\u0000b"}}), 400, "files./nul.md.content")
        self.problem(self.put_files({"/big.md": {"content": "x" * (MIB + 1)}}), 400, "files./big.md.content")
        self.problem(self.put_files({"/x\\..\\y": None}), 400, "files./x\\..\\y")
        r = curl(self.orch.url, "POST", "/api/workflows", {"name": "w", "files": {"/x\\y.md": {"content": "x"}}},
                 token=self.token)
        self.problem(r, 400, "files./x\\y.md")
        # Nothing was written, so refinements of this workflow still work (they used to 502).
        self.assertEqual(self.draft()["revision"], 1)
        self.refine_and_wait()

    def test_file_of_exactly_one_mib_goes_through_a_refinement(self):
        r = self.put_files({"/max.md": {"content": "y" * MIB}})
        self.assertEqual(r.status, 200, r.text[:500])
        p = self.refine_and_wait()
        self.assertEqual(p["status"], "completed", p.get("error"))

    def test_a_big_draft_streams_to_the_browser_without_1013(self):
        # Every state update carries the whole tree (here ~0.9 MB): one such event is larger than
        # a browser's byte bound by itself and must never close a reader that keeps up.
        r = self.put_files({"/big.md": {"content": "z" * 900_000}})
        self.assertEqual(r.status, 200, r.text[:500])
        started = refine(self.orch, self.token, self.wid, prompt="Tidy up.")
        self.assertEqual(started.status, 202, started.text)
        events, close, resumes = ws_follow(self.orch, started.json()["thread_id"], self.token, timeout=60,
                                           max_resumes=0)
        self.assertEqual((close, resumes), (1000, 0), [e.get("event_type") for e in events][-5:])
        self.assertEqual(events[-1]["event_type"], "end")
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertTrue(any(len(json.dumps(e)) > 900_000 for e in events), "no event carried the big file")

    def test_too_many_files_in_a_draft(self):
        files = {f"/f{i}.md": {"content": "x"} for i in range(400)}
        self.assertEqual(self.put_files(files).status, 200)
        more = {f"/g{i}.md": {"content": "x"} for i in range(101 + 1)}
        body = self.problem(self.put_files(more), 400, "files")
        self.assertIn("500 files", body["detail"])

    # ------------------------------------------------------------ item 6: line model
    def test_line_model_agrees_between_services(self):
        r = self.put_files({"/string.md": {"content": "alpha\nbeta\n"}, "/notes.md": {"content": "one\r\ntwo\r\nthree\r\n"}})
        self.assertEqual(r.status, 200, r.text)
        files = r.json()["files"]
        self.assertEqual(files["/string.md"]["content"], ["alpha", "beta", ""])
        self.assertEqual(files["/notes.md"]["content"], ["one", "two", "three", ""])
        p = self.refine_and_wait()
        self.assertEqual(p["status"], "completed", p.get("error"))
        changes = {c["path"]: c for c in p["changes"]}
        # The model wrote the same text back: no false "modified".
        self.assertEqual(changes["/string.md"]["change"], "unchanged", changes)
        # The edit spanning lines matched the CRLF text.
        self.assertEqual(p["generated_files"]["/notes.md"]["content"], ["1", "2", "three", ""])
        self.assertEqual(changes["/notes.md"]["change"], "modified")
        self.assertEqual((changes["/notes.md"]["lines_added"], changes["/notes.md"]["lines_removed"]), (2, 2))
        d = curl(self.orch.url, "GET", f"/api/proposals/{p['id']}/diff", token=self.token,
                 headers={"Accept": "text/x-diff"})
        self.assertEqual(d.status, 200)
        self.assertNotIn("string.md", d.text)
        self.assertIn("-one\n-two\n+1\n+2\n three\n", d.text)
        self.assertIn("+++ b/added.md\n@@ -0,0 +1 @@\n+new\n", d.text)
        self.assertNotIn("No newline", d.text)

    def refine_and_wait(self):
        r = refine(self.orch, self.token, self.wid, prompt="Tidy up.")
        self.assertEqual(r.status, 202, r.text)
        p = wait_proposal(self.orch, self.token, r.json()["proposal_id"], timeout=60)
        self.assertEqual(p["status"], "completed", p)
        return p


class JobTooLarge(ScriptedCase):
    """A draft within the files' limits (which count text) whose job is over the engine's body
    limit once written as JSON (a control character takes 6 bytes): the start is a 413
    job-too-large naming the engine's limit, the proposal is failed, and the circuit breaker
    does not count it, so other refinements go on (it used to be "broken pipe", three
    attempts, a 503, and an open breaker for everyone)."""

    ENGINE_LIMIT = 2 * MIB
    STACK_ARGS = {"engine_extra": ["--max-body-bytes", str(ENGINE_LIMIT)],
                  "orch_extra": ["--max-body-bytes", str(4 * MIB), "--refinement-rate-limit", "100"]}

    def breaker_state(self):
        for line in curl(self.orch.url, "GET", "/metrics").text.splitlines():
            if line.startswith("ide_orchestrator_circuit_breaker_state "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def test_413_with_the_engines_limit_and_the_breaker_stays_closed(self):
        wid = create_workflow(self.orch, self.token, template="single-agent")["id"]
        draft = curl(self.orch.url, "GET", f"/api/workflows/{wid}/draft", token=self.token).json()
        r = curl(self.orch.url, "PUT", f"/api/workflows/{wid}/draft/files",
                 {"files": {"/ctl.md": {"content": "\u0001" * 500_000}}, "base_revision": draft["revision"]},
                 token=self.token)
        self.assertEqual(r.status, 200, r.text[:500])
        for _ in range(8):  # more than the breaker's threshold of 5 consecutive failures
            r = refine(self.orch, self.token, wid, prompt="Tidy up.")
            self.assertEqual(r.status, 413, r.text)
            body = r.json()
            self.assertEqual(body["type"], PROBLEM_BASE + "job-too-large", body)
            self.assertEqual(body["limit"], self.ENGINE_LIMIT, body)
            self.assertIn("bytes as JSON", body["detail"])
        self.assertEqual(self.breaker_state(), 0.0, self.stack.logs())
        listed = curl(self.orch.url, "GET", f"/api/workflows/{wid}/proposals", token=self.token).json()
        failed = [p for p in listed["items"] if p["status"] == "failed"]
        self.assertEqual(len(failed), 8, listed)
        self.assertTrue(all("bytes as JSON, more than the engine accepts (2097152 bytes)" in p["error"] for p in failed),
                        failed[0])
        # Other refinements are not refused.
        other = create_workflow(self.orch, self.token, template="single-agent")["id"]
        ok = refine(self.orch, self.token, other, prompt="Tidy up.")
        self.assertEqual(ok.status, 202, ok.text)
        p = wait_proposal(self.orch, self.token, ok.json()["proposal_id"], timeout=60)
        self.assertEqual(p["status"], "completed", p)


class BigEvents(ScriptedCase):
    """Events over Beast's default WebSocket message limit (16 MiB) reach the browser whole;
    an orchestrator whose --engine-max-event-bytes is smaller than an event ends the stream
    with an error event and 1011 "event too large", fails the proposal and deletes its engine
    thread (it used to deliver nothing and close 1000 "end")."""

    STACK_ARGS = {"orch_extra": ["--max-body-bytes", str(8 * MIB)]}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.small = Orchestrator(cls.tmp, cls.stack.engine.base,
                                 extra=["--engine-max-event-bytes", str(256 * 1024)]).start()

    @classmethod
    def tearDownClass(cls):
        cls.small.stop()
        super().tearDownClass()

    def workflow_with(self, orch, token, files):
        wid = create_workflow(orch, token, template="single-agent")["id"]
        for path, content in files.items():
            draft = curl(orch.url, "GET", f"/api/workflows/{wid}/draft", token=token).json()
            r = curl(orch.url, "PUT", f"/api/workflows/{wid}/draft/files",
                     {"files": {path: {"content": content}}, "base_revision": draft["revision"]}, token=token)
            self.assertEqual(r.status, 200, r.text[:500])
        return wid

    def test_an_event_over_16_mib_reaches_the_browser(self):
        orch, token = self.orch, self.token
        # Three files of 1,000,000 control characters: 18 MB per state update as JSON.
        wid = self.workflow_with(orch, token, {f"/ctl{i}.md": "\u0001" * 1_000_000 for i in range(3)})
        started = refine(orch, token, wid, prompt="Tidy up.")
        self.assertEqual(started.status, 202, started.text)
        events, close, _ = ws_follow(orch, started.json()["thread_id"], token, timeout=120, max_resumes=0)
        self.assertEqual(close, 1000, [e.get("event_type") for e in events][-5:])
        self.assertEqual(events[-1]["event_type"], "end")
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertTrue(any(len(json.dumps(e)) > 16 * MIB for e in events), "no event was over 16 MiB")
        p = wait_proposal(orch, token, started.json()["proposal_id"], timeout=60)
        self.assertEqual(p["status"], "completed", p.get("error"))

    def test_the_event_limit_cannot_exceed_what_the_orchestrator_parses(self):
        r = subprocess.run([self.small.exe, "serve", "--engine-max-event-bytes", str(64 * MIB + 1)],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--engine-max-event-bytes", r.stdout + r.stderr)

    def test_an_event_over_the_limit_ends_the_stream_with_1011(self):
        email = "big-events@example.com"
        self.small.add_user(email)
        token = self.small.login(email)
        wid = self.workflow_with(self.small, token, {"/big.md": "z" * 300_000})
        started = refine(self.small, token, wid, prompt="Tidy up.")
        self.assertEqual(started.status, 202, started.text)
        events, close, _ = ws_follow(self.small, started.json()["thread_id"], token, timeout=60, max_resumes=0)
        self.assertEqual(close, 1011, [e.get("event_type") for e in events][-5:])
        self.assertEqual(events[-1]["event_type"], "error", events[-1])
        self.assertIn("262144 bytes", json.dumps(events[-1]))
        self.assertTrue(all(len(json.dumps(e)) < 262144 for e in events))
        p = wait_proposal(self.small, token, started.json()["proposal_id"], timeout=60)
        self.assertEqual(p["status"], "failed", p)
        self.assertIn("too large for the orchestrator to relay", p["error"])
        # The engine run was stopped: its thread is deleted (the engine answers 404 for it).
        thread = started.json()["thread_id"]
        wait_until(lambda: curl(self.stack.engine.base, "GET", f"/spec-engine/state/{thread}").status == 404,
                   timeout=30, what="the engine thread deleted")


if __name__ == "__main__":
    unittest.main()
