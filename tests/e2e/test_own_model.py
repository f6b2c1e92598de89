"""Your own model (README "Use your own model"), against the local OpenAI-compatible test
server (tests/fixtures/spec_engine/fake_openai.py) with a model name other than gpt-4.1-mini:
the orchestrator's --refinement-model (flag and environment variable) reaches the model server
in every refinement request, and `make demo` with OPENAI_BASE_URL + OPENAI_MODEL (no API key, as
with Ollama) runs the whole walkthrough on that server with that model name.
"""
import os
import shutil
import tempfile
import unittest

from e2ekit import Orchestrator, create_workflow, refine, wait_proposal
from test_walkthrough import demo_env, run_demo
from testkit import FakeOpenAiCase, Engine

MODEL = "llama3.1:8b-instruct-q4"

# The refinement's first model call writes a file (so the proposal changes something); every
# later call gets the fake's plain final answer.
REFINEMENT_REPLIES = [{"content": "Adding the FactChecker.",
                       "tool_calls": [{"id": "w1", "name": "write_file",
                                       "arguments": {"file_path": "/THE_CAST/FactChecker.md",
                                                     "content": "# FactChecker\n\nVerifies findings.\n"}}]}]


class YourOwnModel(FakeOpenAiCase):
    def test_refinement_model_flag_and_env_reach_the_model_server(self):
        fake = self.fake([])
        d = tempfile.mkdtemp(prefix="e2e-model-")
        self.addCleanup(shutil.rmtree, d, True)
        # No engine override: the model named in the job's agent definition is the one called.
        engine = Engine([], data_dir=os.path.join(d, "engine"), log_dir=d,
                        env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": None}).start()
        self.engines.append(engine)
        for how, extra, env in (("flag", ["--refinement-model", MODEL], {}),
                                ("env", [], {"IDE_ORCHESTRATOR_REFINEMENT_MODEL": MODEL + "-env"})):
            with self.subTest(how):
                os.makedirs(os.path.join(d, how))
                os.environ.update(env)  # Orchestrator.env() copies the environment
                try:
                    orch = Orchestrator(os.path.join(d, how), engine.base, extra=extra).start()
                finally:
                    for k in env:
                        os.environ.pop(k)
                self.addCleanup(orch.stop)
                orch.add_user("ada@example.com")
                token = orch.login("ada@example.com")
                with fake.lock:
                    fake.replies = list(REFINEMENT_REPLIES)
                    before = len(fake.requests)
                wf = create_workflow(orch, token)
                p = wait_proposal(orch, token, refine(orch, token, wf["id"]).json()["proposal_id"], timeout=60)
                self.assertEqual(p["status"], "completed", p)
                self.assertIn("/THE_CAST/FactChecker.md", p["generated_files"])
                models = {r["model"] for r in fake.requests[before:]}
                self.assertEqual(models, {MODEL + ("-env" if how == "env" else "")})

    def test_make_demo_with_openai_base_url_and_a_model_name(self):
        fake = self.fake(REFINEMENT_REPLIES)
        r = run_demo(demo_env(OPENAI_BASE_URL=fake.base_url, OPENAI_MODEL=MODEL))
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-6000:])
        self.assertIn(f"real model {MODEL} via {fake.base_url}", out)
        self.assertGreaterEqual(len(fake.requests), 3, "the refinement's calls and the run's")
        self.assertEqual({q["model"] for q in fake.requests}, {MODEL})
        self.assertIn("Demo finished successfully.", out)


if __name__ == "__main__":
    unittest.main()
