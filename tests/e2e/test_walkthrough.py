"""The README walkthrough cannot rot: scripts/walkthrough.sh is the source of the README's
"Walkthrough" block (checked verbatim here), and `make demo` (scripts/demo.sh: both real
binaries, the scripted model, then the walkthrough) runs it end to end: sign in, workflow,
refine, stream, proposal, diff, approve, publish, deploy, run, the run's output.
"""
import os
import re
import subprocess
import unittest

from testkit import BIN_DIR, PROJECT_SOURCE_DIR

SCRIPT = os.path.join(PROJECT_SOURCE_DIR, "scripts", "walkthrough.sh")
README = os.path.join(PROJECT_SOURCE_DIR, "README.md")


def walkthrough_block():
    with open(SCRIPT, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^# >>> walkthrough\n(.*?)^# <<< walkthrough$", text, re.S | re.M)
    assert m, "scripts/walkthrough.sh lost its walkthrough markers"
    return m.group(1)


def demo_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(BIN_DIR=BIN_DIR, MIGRATIONS_DIR=os.path.join(PROJECT_SOURCE_DIR, "migrations"), NO_COLOR="1")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.update(extra)
    return env


def run_demo(env, timeout=240):
    return subprocess.run([os.path.join(PROJECT_SOURCE_DIR, "scripts", "demo.sh")], env=env, capture_output=True,
                          text=True, timeout=timeout)


class Walkthrough(unittest.TestCase):
    def test_readme_shows_the_script(self):
        with open(README, encoding="utf-8") as f:
            readme = f.read()
        self.assertIn("```sh\n" + walkthrough_block() + "```", readme,
                      "README.md's Walkthrough block must be the block between the markers of scripts/walkthrough.sh")

    def test_make_demo_runs_the_walkthrough(self):
        r = run_demo(demo_env())
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-6000:])
        for step in ("Sign in", "Ask the AI to refine it", "The proposal", "Approve it", "Publish the draft",
                     "Run the deployed version", "The run's output"):
            self.assertIn("==> " + step, out)
        self.assertEqual(out.count("end of run: completed"), 2, out[-4000:])  # the refinement, then the run
        # Agents and the engine's bookkeeping are labelled apart.
        self.assertRegex(out, r"agent orchestrator \| tool write_file +/THE_CAST/FactChecker\.md")
        self.assertRegex(out, r"agent Coordinator \| tool task +-> sub-agent 'WebResearcher'")
        self.assertRegex(out, r"engine \| step \d+ \(Writer\)")
        self.assertIn("+++ b/THE_CAST/FactChecker.md", out)  # the diff
        self.assertIn("version 1 deployed: agents Coordinator, WebResearcher, Writer, FactChecker", out)
        self.assertIn("Briefing ready in /report.md", out)  # the run's output
        self.assertRegex(out, r"files produced:\n\s+/report\.md")
        self.assertIn("Demo finished successfully.", out)


if __name__ == "__main__":
    unittest.main()
