// The frame of every workflow page: its name, the caller's role and the tabs (draft, proposals,
// versions, runs, and settings with members, rename and delete).

import type { ComponentChildren } from "preact";
import { api } from "../api/client";
import type { Workflow } from "../api/types";
import { href, type Route } from "../router";
import { ErrorBanner, Loading, useAsync, useTitle } from "../components/ui";

export type WorkflowTab = "draft" | "proposals" | "versions" | "runs" | "settings";

const tabs: { id: WorkflowTab; label: string; route: (id: string) => Route }[] = [
  { id: "draft", label: "Draft", route: (workflowId) => ({ page: "draft", workflowId }) },
  { id: "proposals", label: "Proposals", route: (workflowId) => ({ page: "proposals", workflowId }) },
  { id: "versions", label: "Versions", route: (workflowId) => ({ page: "versions", workflowId }) },
  { id: "runs", label: "Runs", route: (workflowId) => ({ page: "runs", workflowId }) },
  { id: "settings", label: "Settings", route: (workflowId) => ({ page: "settings", workflowId }) },
];

export function WorkflowShell({
  workflowId,
  tab,
  title,
  children,
}: {
  workflowId: string;
  tab: WorkflowTab;
  title?: string;
  children: (wf: Workflow, reload: () => void) => ComponentChildren;
}) {
  const wf = useAsync(() => api.getWorkflow(workflowId), [workflowId]);
  useTitle([title, wf.data?.name].filter(Boolean).join(" · "));
  if (!wf.data) {
    return (
      <main id="main" class="page">
        {wf.loading ? (
          <Loading label="Loading the workflow…" />
        ) : (
          <>
            <h1>This workflow could not be opened</h1>
            <ErrorBanner error={wf.error}>
            <a class="btn" href={href({ page: "workflows" })}>
              Back to your workflows
            </a>
            <button type="button" class="btn" onClick={wf.reload}>
              Try again
            </button>
            </ErrorBanner>
          </>
        )}
      </main>
    );
  }
  const w = wf.data;
  return (
    <main id="main" class="page page-wide">
      <div class="wf-head">
        <nav aria-label="Breadcrumb" class="crumbs">
          <a href={href({ page: "workflows" })}>Workflows</a>
          <span aria-hidden="true"> / </span>
        </nav>
        <h1 class="wf-title">
          {w.name} <span class={`role role-${w.role}`}>{w.role}</span>
        </h1>
        {w.description && <p class="muted">{w.description}</p>}
        <nav class="tabs" aria-label="Workflow sections">
          {tabs.map((t) => (
            <a key={t.id} class="tab" href={href(t.route(w.id))} aria-current={t.id === tab ? "page" : undefined}>
              {t.label}
            </a>
          ))}
        </nav>
      </div>
      {children(w, wf.reload)}
    </main>
  );
}
