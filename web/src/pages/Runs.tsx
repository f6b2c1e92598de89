// Runs: try what the specification describes. Start a run of the deployed version, a published
// version or the draft with a message (POST /api/workflows/{id}/runs), list the runs, and watch
// one live (/api/ws/runs/{thread_id}) with its output and the files it wrote; cancel it.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api } from "../api/client";
import type { Run, RunStarted, RunTarget, Workflow } from "../api/types";
import { FileBrowser } from "../components/FileBrowser";
import { renderMarkdown } from "../components/FileViewer";
import { StreamView } from "../components/StreamView";
import { ErrorBanner, Loading, Notice, StatusBadge, Time, runStatusWords, useAction, useAsync } from "../components/ui";
import { useEngineStarter } from "../components/useRefinement";
import { useLiveStream } from "../components/useLiveStream";
import { href, navigate } from "../router";

/** "the draft (revision 3)", "version 2", "the deployed version". */
function targetWords(r: Pick<Run, "version" | "draft_revision">): string {
  if (r.version !== null && r.version !== undefined) return `version ${r.version}`;
  return r.draft_revision ? `the draft (revision ${r.draft_revision})` : "the draft";
}

/** The start form: which version runs, and the message to its entry agent. */
function StartRun({ workflow }: { workflow: Workflow }) {
  const versions = useAsync(() => api.listVersions(workflow.id), [workflow.id]);
  const items = versions.data?.items ?? [];
  const [input, setInput] = useState("");
  // "" = the deployed version; "draft"; or a version number.
  const [target, setTarget] = useState<string>("draft");
  const chose = useRef(false);
  useEffect(() => {
    if (!chose.current && items.length) setTarget("");
  }, [items.length]);

  const onStarted = useCallback(
    (r: RunStarted) => navigate({ page: "run", workflowId: workflow.id, runId: r.run_id ?? r.id }),
    [workflow.id],
  );
  const call = useCallback(
    (req: { input: string; target?: RunTarget }, key: string) => api.startRun(workflow.id, req.input, req.target, key),
    [workflow.id],
  );
  const starter = useEngineStarter(call, onStarted, {
    what: "The engine is unavailable",
    note: "Nothing was started. The console retries by itself when the countdown ends.",
    failTitle: "The run could not start",
  });
  const notDeployed =
    starter.error instanceof ApiError && starter.error.status === 409 && target === "" ? (
      <p class="small">
        Deploy a version on the <a href={href({ page: "versions", workflowId: workflow.id })}>Versions</a> tab, or
        choose the draft or a version above.
      </p>
    ) : null;

  return (
    <form
      class="card form"
      aria-labelledby="run-title"
      data-testid="start-run"
      onSubmit={(e) => {
        e.preventDefault();
        const t: RunTarget | undefined = target === "" ? undefined : target === "draft" ? "draft" : Number(target);
        starter.start({ input: input.trim(), target: t });
      }}
    >
      <h2 id="run-title" class="panel-title-lg">
        Run this workflow
      </h2>
      <p class="muted small">
        Send a message to the workflow's entry agent and watch its agents work. Run the draft to try a change before
        you publish it.
      </p>
      <label class="field">
        <span>What runs</span>
        <select
          name="target"
          value={target}
          onChange={(e) => {
            chose.current = true;
            setTarget(e.currentTarget.value);
          }}
        >
          <option value="draft">The draft, as it is now</option>
          {items.length > 0 && <option value="">The deployed version</option>}
          {items.map((v) => (
            <option key={v.id} value={String(v.number)}>
              Version {v.number}
            </option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>Message</span>
        <textarea
          name="input"
          rows={4}
          required
          maxLength={20000}
          value={input}
          onInput={(e) => setInput(e.currentTarget.value)}
          placeholder="e.g. Prepare this week's briefing on our three main competitors."
        />
      </label>
      {starter.notice}
      {notDeployed}
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={starter.pending || starter.waiting || !input.trim()}>
          {starter.pending ? "Starting…" : "Start the run"}
        </button>
      </div>
    </form>
  );
}

export function RunsPage({ workflow }: { workflow: Workflow }) {
  const runs = useAsync(() => api.listRuns(workflow.id), [workflow.id]);
  const canRun = workflow.role !== "viewer";
  const items = runs.data?.items ?? [];
  return (
    <div class="runs-layout">
      {canRun ? (
        <StartRun workflow={workflow} />
      ) : (
        <div class="card">
          <p class="muted">You can watch this workflow's runs; only its owner and editors can start them.</p>
        </div>
      )}
      <section class="card" aria-labelledby="runs-title">
        <div class="panel-head">
          <h2 id="runs-title" class="panel-title-lg">
            Runs
          </h2>
          <button type="button" class="btn btn-small" onClick={runs.reload} disabled={runs.loading}>
            Refresh
          </button>
        </div>
        {!runs.data ? (
          runs.loading ? (
            <Loading label="Loading runs…" />
          ) : (
            <ErrorBanner error={runs.error} title="The runs could not be loaded" />
          )
        ) : items.length === 0 ? (
          <p class="muted">No runs yet.</p>
        ) : (
          <ul class="run-list" data-testid="run-list" aria-label="Runs, newest first">
            {items.map((r) => (
              <li key={r.id}>
                <a class="run-link" href={href({ page: "run", workflowId: workflow.id, runId: r.id })}>
                  <span class="run-input">{r.input}</span>
                  <span class="run-meta">
                    <StatusBadge status={r.status} words={runStatusWords} /> <span>{targetWords(r)}</span>{" "}
                    <Time at={r.created_at} />
                  </span>
                </a>
              </li>
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}

/** One run: its message, the live activity while it runs, then its output and files. */
export function RunPage({ workflow, runId, file }: { workflow: Workflow; runId: string; file?: string }) {
  const run = useAsync(() => api.getRun(workflow.id, runId), [workflow.id, runId]);
  const r = run.data;
  const processing = r?.status === "processing";
  // Once watched, the activity stays on screen after the run ends.
  const [showActivity, setShowActivity] = useState(false);
  useEffect(() => {
    if (processing) setShowActivity(true);
  }, [processing]);
  const streamable = !!r && r.stream_available && (processing || showActivity);
  const { view, state } = useLiveStream(r?.thread_id ?? "", streamable, "runs");
  const canAct = workflow.role !== "viewer";
  const cancel = useAction(async () => run.set(await api.cancelRun(workflow.id, runId)));

  // The stream ended or was lost: the server finalises the run; poll until it is final.
  useEffect(() => {
    if (!processing || (state?.kind !== "ended" && state?.kind !== "lost")) return;
    let stop = false;
    (async () => {
      for (let i = 0; i < 120 && !stop; i++) {
        try {
          const nr = await api.getRun(workflow.id, runId);
          if (nr.status !== "processing") {
            if (!stop) run.set(nr);
            return;
          }
        } catch {
          /* keep polling */
        }
        await new Promise((res) => setTimeout(res, 500));
      }
    })();
    return () => {
      stop = true;
    };
  }, [state?.kind, processing]);

  if (!r) {
    if (run.loading) return <Loading label="Loading the run…" />;
    return (
      <ErrorBanner error={run.error} title="This run could not be loaded">
        <a class="btn" href={href({ page: "runs", workflowId: workflow.id })}>
          All runs
        </a>
      </ErrorBanner>
    );
  }
  const files = r.files ?? {};
  const fileCount = Object.keys(files).length;

  return (
    <div class="proposal">
      <div class="card">
        <div class="panel-head">
          <h2 class="panel-title-lg">Run of {targetWords(r)}</h2>
          <span data-testid="run-status">
            <StatusBadge status={r.status} words={runStatusWords} />
          </span>
          <span class="muted small">
            started <Time at={r.created_at} />
          </span>
          <a class="btn btn-small btn-ghost" href={href({ page: "runs", workflowId: workflow.id })}>
            All runs
          </a>
        </div>
        <blockquote class="prompt">{r.input}</blockquote>
        {r.status === "failed" && (
          <div class="banner banner-error" role="alert">
            <strong class="banner-title">The run failed</strong>
            <p>{r.error ?? "No reason was recorded."}</p>
          </div>
        )}
        {r.status === "cancelled" && <Notice>This run was cancelled.</Notice>}
        <ErrorBanner error={cancel.error} title="The run could not be cancelled" />
        {canAct && processing && (
          <div class="form-actions">
            <button type="button" class="btn btn-danger" onClick={() => cancel.run()} disabled={cancel.busy}>
              {cancel.busy ? "Cancelling…" : "Cancel the run"}
            </button>
          </div>
        )}
      </div>

      {r.status === "completed" && (
        <section class="card" aria-labelledby="output-title" data-testid="run-output">
          <h2 id="output-title" class="panel-title-lg">
            Output
          </h2>
          {r.output ? (
            <div class="markdown" dangerouslySetInnerHTML={{ __html: renderMarkdown(r.output) }} />
          ) : (
            <p class="muted">The run finished without a final message.</p>
          )}
          <h2 class="panel-title-lg">
            Files it wrote <span class="muted small">({fileCount})</span>
          </h2>
          {fileCount ? (
            <FileBrowser
              files={files}
              selected={file}
              label="Files the run wrote"
              hrefFor={(p) => href({ page: "run", workflowId: workflow.id, runId, file: p })}
            />
          ) : (
            <p class="muted">This run wrote no files.</p>
          )}
        </section>
      )}

      {streamable && (
        <section class="card" aria-label="What the agents did">
          <StreamView view={view} state={state} label="Run activity" />
        </section>
      )}
      {!processing && !showActivity && r.stream_available && (
        <button type="button" class="btn btn-link" onClick={() => setShowActivity(true)}>
          Show what the agents did
        </button>
      )}
      {!processing && !r.stream_available && r.status !== "cancelled" && (
        <p class="muted small" data-testid="run-activity-gone">
          What the agents did is no longer kept: the engine's record of a run is deleted some time after it ends.
        </p>
      )}
    </div>
  );
}
