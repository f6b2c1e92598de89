// One proposal: the live stream while the refinement runs (cancel), then the change summary
// and the diff per file with approve / reject. A conflicting approve (409) names the files and
// offers the way forward: refine again on the current draft with the same prompt.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api } from "../api/client";
import type { Proposal, RefinementStarted, Workflow } from "../api/types";
import { DiffView } from "../components/DiffView";
import { StreamView } from "../components/StreamView";
import { ErrorBanner, Loading, Notice, StatusBadge, Time, useAsync, useTitle } from "../components/ui";
import { useEngineStarter } from "../components/useRefinement";
import { useLiveStream } from "../components/useLiveStream";
import { href, navigate } from "../router";

function ChangeSummary({ p }: { p: Proposal }) {
  const changed = (p.changes ?? []).filter((c) => c.change !== "unchanged");
  if (!changed.length) return <p class="muted">This proposal changes no file.</p>;
  const added = changed.reduce((n, c) => n + c.lines_added, 0);
  const removed = changed.reduce((n, c) => n + c.lines_removed, 0);
  return (
    <section aria-labelledby="summary-title">
      <h2 id="summary-title" class="panel-title-lg">
        Changes{" "}
        <span class="muted small">
          {changed.length} file{changed.length === 1 ? "" : "s"}, <span class="plus">+{added}</span>{" "}
          <span class="minus">−{removed}</span>
        </span>
      </h2>
      <ul class="changes" data-testid="change-summary">
        {changed.map((c) => (
          <li key={c.path}>
            <span class={`change change-${c.change}`}>{c.change}</span> <code>{c.path}</code>{" "}
            <span class="plus">+{c.lines_added}</span> <span class="minus">−{c.lines_removed}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function ProposalPage({ workflow, proposalId, live = false }: { workflow: Workflow; proposalId: string; live?: boolean }) {
  const proposal = useAsync(() => api.getProposal(proposalId), [proposalId]);
  const p = proposal.data;
  const processing = p?.status === "processing";
  // Opened right after starting it: show the activity even if the run already finished.
  const [showActivity, setShowActivity] = useState(live);
  // A run watched live stays on screen after it ends.
  useEffect(() => {
    if (processing) setShowActivity(true);
  }, [processing]);
  const { view, state } = useLiveStream(p?.thread_id ?? "", !!p && (processing || showActivity));
  const [diff, setDiff] = useState<{ text?: string; error?: unknown }>({});
  const [action, setAction] = useState<{ busy?: string; error?: unknown; done?: string }>({});
  const polling = useRef(false);
  const canAct = workflow.role !== "viewer";

  // The stream ended (or was lost): the tracker finalises the proposal server-side; poll briefly.
  useEffect(() => {
    if (!p || p.status !== "processing") return;
    if (state?.kind !== "ended" && state?.kind !== "lost") return;
    if (polling.current) return;
    polling.current = true;
    let stop = false;
    (async () => {
      for (let i = 0; i < 120 && !stop; i++) {
        try {
          const np = await api.getProposal(proposalId);
          if (np.status !== "processing") {
            proposal.set(np);
            break;
          }
        } catch {
          /* keep polling; errors show on the next load */
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      polling.current = false;
    })();
    return () => {
      stop = true;
      polling.current = false;
    };
  }, [state?.kind, p?.status]);

  // The diff, once there is something to review.
  useEffect(() => {
    if (!p || p.status !== "completed") return;
    let live = true;
    api.proposalDiff(p.id).then(
      (text) => live && setDiff({ text }),
      (error) => live && setDiff({ error }),
    );
    return () => {
      live = false;
    };
  }, [p?.id, p?.status]);

  const onStarted = useCallback(
    (r: RefinementStarted) => navigate({ page: "proposal", workflowId: workflow.id, proposalId: r.proposal_id, live: true }),
    [workflow.id],
  );
  // Re-run with the same prompt on the current draft: POST /retry (which links the two and
  // rejects a conflicting completed proposal as superseded).
  const againCall = useCallback((pr: Proposal): Promise<RefinementStarted> => api.retry(pr.id), []);
  const again = useEngineStarter(againCall, onStarted, { failTitle: "The refinement could not be started again" });
  const refineAgain = () => p && again.start(p);
  const rerunId =
    again.error instanceof ApiError && again.error.status === 409 ? again.error.problem.retry_proposal_id : undefined;

  async function act(kind: "approve" | "reject" | "cancel") {
    if (!p) return;
    setAction({ busy: kind });
    try {
      if (kind === "approve") {
        const r = await api.approve(p.id);
        proposal.set(r.proposal);
        setAction({ done: `Applied to the draft: it is now at revision ${r.draft.revision}.` });
      } else {
        const r = kind === "reject" ? await api.reject(p.id) : await api.cancel(p.id);
        proposal.set(r.proposal);
        setAction({ done: kind === "reject" ? "Rejected: the draft was not changed." : "Cancelled: the refinement was stopped." });
      }
    } catch (e) {
      setAction({ error: e });
      if (e instanceof ApiError && e.status === 409 && !e.problem.paths) proposal.reload();
    }
  }

  if (!p) {
    return proposal.loading ? (
      <Loading label="Loading the proposal…" />
    ) : (
      <ErrorBanner error={proposal.error} title="This proposal could not be loaded" />
    );
  }

  const conflictPaths = action.error instanceof ApiError && action.error.status === 409 ? action.error.problem.paths : undefined;

  return (
    <div class="proposal">
      <div class="card">
        <div class="panel-head">
          <h2 class="panel-title-lg">Refinement</h2>
          <span data-testid="proposal-status">
            <StatusBadge status={p.status} />
          </span>
          <span class="muted small">
            started <Time at={p.created_at} />
          </span>
        </div>
        <blockquote class="prompt">{p.user_prompt}</blockquote>
        {p.context_file_path && (
          <p class="small muted">
            Focused on <code>{p.context_file_path}</code>
            {p.context_selection ? " (a selection in it)" : ""}
          </p>
        )}
        {p.status === "failed" && (
          <div class="banner banner-error" role="alert">
            <strong class="banner-title">The refinement failed</strong>
            <p>{p.error ?? "No reason was recorded."}</p>
            {canAct && (
              <div class="banner-actions">
                <button type="button" class="btn btn-primary" onClick={refineAgain} disabled={again.pending}>
                  Try again with the same prompt
                </button>
              </div>
            )}
          </div>
        )}
        {canAct && (p.status === "cancelled" || p.status === "rejected") && !action.done && (
          <div class="form-actions">
            <button type="button" class="btn" onClick={refineAgain} disabled={again.pending}>
              Refine again with the same prompt
            </button>
          </div>
        )}
        {action.done && <Notice kind="success">{action.done}</Notice>}
        {action.done && p.status === "approved" && (
          <p>
            <a class="btn" href={href({ page: "draft", workflowId: workflow.id })}>
              Open the draft
            </a>
          </p>
        )}
        {conflictPaths ? (
          <div class="banner banner-error" role="alert" data-testid="approve-conflict">
            <strong class="banner-title">The draft changed while the AI was working</strong>
            <p>
              These files were changed both in the draft and in this proposal: {conflictPaths.map((x) => (
                <code key={x}>{x} </code>
              ))}
              . Nothing was applied.
            </p>
            <p>Refine again on the current draft with the same prompt, or reject this proposal.</p>
            <div class="banner-actions">
              <button type="button" class="btn btn-primary" onClick={refineAgain} disabled={again.pending}>
                Refine again on the current draft
              </button>
              <button type="button" class="btn" onClick={() => act("reject")}>
                Reject this proposal
              </button>
            </div>
          </div>
        ) : (
          <ErrorBanner error={action.error} title="That did not work" />
        )}
        {again.notice}
        {rerunId && (
          <p>
            <a class="btn" href={href({ page: "proposal", workflowId: workflow.id, proposalId: rerunId })}>
              Open the re-run
            </a>
          </p>
        )}
        {canAct && processing && (
          <div class="form-actions">
            <button type="button" class="btn btn-danger" onClick={() => act("cancel")} disabled={!!action.busy}>
              {action.busy === "cancel" ? "Cancelling…" : "Cancel refinement"}
            </button>
          </div>
        )}
      </div>


      {p.status === "completed" && (
        <div class="card">
          <ChangeSummary p={p} />
          {canAct && (
            <div class="form-actions review-actions">
              <button type="button" class="btn btn-primary" onClick={() => act("approve")} disabled={!!action.busy}>
                {action.busy === "approve" ? "Applying…" : "Approve and apply"}
              </button>
              <button type="button" class="btn" onClick={() => act("reject")} disabled={!!action.busy}>
                {action.busy === "reject" ? "Rejecting…" : "Reject"}
              </button>
            </div>
          )}
          <h2 class="panel-title-lg">Diff</h2>
          {diff.text !== undefined ? (
            diff.text.trim() ? (
              <DiffView diff={diff.text} />
            ) : (
              <p class="muted">No differences from the current draft.</p>
            )
          ) : diff.error ? (
            <ErrorBanner error={diff.error} title="The diff could not be loaded" />
          ) : (
            <Loading label="Loading the diff…" />
          )}
        </div>
      )}

      {(processing || showActivity) && (
        <section class="card" aria-label="What the AI did">
          <StreamView view={view} state={state} />
        </section>
      )}

      {/* Failed-to-start and cancelled runs have no stream left on the engine. */}
      {["completed", "approved", "rejected"].includes(p.status) && !showActivity && (
        <button type="button" class="btn btn-link" onClick={() => setShowActivity(true)}>
          Show what the AI did
        </button>
      )}
    </div>
  );
}

/** One proposal in a list, linked to its page: the prompt (after the workflow's name, when
 * given, for lists across workflows), its status and when it started. */
function ProposalRow({ p, workflowName }: { p: Proposal; workflowName?: string }) {
  return (
    <li>
      <a href={href({ page: "proposal", workflowId: p.workflow_id, proposalId: p.id })} class="proposal-link">
        <span class="proposal-prompt">
          {workflowName !== undefined && <span class="muted small">{workflowName} · </span>}
          {p.user_prompt}
        </span>
        <span class="proposal-meta">
          <StatusBadge status={p.status} /> <Time at={p.created_at} />
        </span>
      </a>
    </li>
  );
}

export function ProposalsPage({ workflow }: { workflow: Workflow }) {
  const list = useAsync(() => api.listProposals(workflow.id), [workflow.id]);
  if (!list.data) {
    return list.loading ? <Loading label="Loading proposals…" /> : <ErrorBanner error={list.error} />;
  }
  if (!list.data.items.length) {
    return (
      <div class="card">
        <p class="empty-title">No refinements yet</p>
        <p class="muted">
          Open the <a href={href({ page: "draft", workflowId: workflow.id })}>draft</a> and describe a change in the
          Refine panel.
        </p>
      </div>
    );
  }
  return (
    <ul class="proposal-list card" data-testid="proposal-list" aria-label="Proposals">
      {list.data.items.map((p) => (
        <ProposalRow key={p.id} p={p} />
      ))}
    </ul>
  );
}

/** The caller's proposals in every workflow (GET /api/proposals), each linked to its workflow. */
export function MyProposalsPage() {
  useTitle("Your proposals");
  const list = useAsync(() => api.myProposals(), []);
  // Names for the workflow ids (the first page of the caller's workflows is enough to name most).
  const names = useAsync(
    () => api.listWorkflows().then((p) => Object.fromEntries(p.items.map((w) => [w.id, w.name])) as Record<string, string>),
    [],
  );
  return (
    <main id="main" class="page">
      <div class="page-head">
        <div>
          <h1>Your proposals</h1>
          <p class="muted">Refinements you started, and the ones started in workflows you own, newest first.</p>
        </div>
      </div>
      {!list.data ? (
        list.loading ? (
          <Loading label="Loading proposals…" />
        ) : (
          <ErrorBanner error={list.error} title="Your proposals could not be loaded" />
        )
      ) : !list.data.items.length ? (
        <div class="card">
          <p class="empty-title">No proposals yet</p>
          <p class="muted">
            Open a <a href={href({ page: "workflows" })}>workflow</a> and describe a change in its Refine panel.
          </p>
        </div>
      ) : (
        <ul class="proposal-list card" data-testid="my-proposal-list" aria-label="Your proposals">
          {list.data.items.map((p) => (
            <ProposalRow key={p.id} p={p} workflowName={names.data?.[p.workflow_id] ?? "A workflow"} />
          ))}
        </ul>
      )}
    </main>
  );
}
