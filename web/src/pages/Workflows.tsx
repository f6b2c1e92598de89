// The caller's workflows (GET /api/workflows, paged) and "New workflow" from a template.

import { useState } from "preact/hooks";
import { api } from "../api/client";
import type { Page, Workflow } from "../api/types";
import { href, navigate } from "../router";
import { Empty, ErrorBanner, Loading, Time, useAction, useAsync, useTitle } from "../components/ui";

const templateWords: Record<string, string> = {
  "multi-agent": "Multi-agent: a coordinator delegating to specialists",
  "single-agent": "Single agent with tools",
};

function CreateWorkflow({ onCancel }: { onCancel?: () => void }) {
  const templates = useAsync(() => api.templates(), []);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [template, setTemplate] = useState("multi-agent");
  const create = useAction(async () => {
    const wf = await api.createWorkflow({
      name: name.trim(),
      description: description.trim() || undefined,
      template: template || undefined,
    });
    navigate({ page: "draft", workflowId: wf.id });
  });
  const submit = (ev: Event) => {
    ev.preventDefault();
    create.run();
  };

  return (
    <form class="card form" onSubmit={submit} aria-labelledby="new-wf-title" data-testid="create-workflow">
      <h2 id="new-wf-title">New workflow</h2>
      <ErrorBanner error={create.error} />
      <label class="field">
        <span>Name</span>
        <input required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} name="name" />
      </label>
      <label class="field">
        <span>
          Description <span class="muted">(optional)</span>
        </span>
        <input value={description} onInput={(e) => setDescription(e.currentTarget.value)} name="description" />
      </label>
      <label class="field">
        <span>Start from</span>
        <select value={template} onChange={(e) => setTemplate(e.currentTarget.value)} name="template">
          {(templates.data ?? [{ name: "multi-agent", files: 0 }]).map((t) => (
            <option key={t.name} value={t.name}>
              {templateWords[t.name] ?? t.name}
              {t.files ? ` (${t.files} files)` : ""}
            </option>
          ))}
          <option value="">An empty workflow</option>
        </select>
      </label>
      {templates.error !== undefined && <ErrorBanner error={templates.error} title="Templates could not be loaded" />}
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={create.busy}>
          {create.busy ? "Creating…" : "Create workflow"}
        </button>
        {onCancel && (
          <button type="button" class="btn" onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

export function WorkflowsPage() {
  useTitle("Workflows");
  const [pages, setPages] = useState<Page<Workflow>[]>([]);
  const first = useAsync(async () => {
    const p = await api.listWorkflows();
    setPages([p]);
    return p;
  }, []);
  const [more, setMore] = useState<{ busy: boolean; error?: unknown }>({ busy: false });
  const [creating, setCreating] = useState(false);
  const items = pages.flatMap((p) => p.items);
  const next = pages.length ? pages[pages.length - 1].next_cursor : null;

  async function loadMore() {
    setMore({ busy: true });
    try {
      const p = await api.listWorkflows(next);
      setPages((ps) => [...ps, p]);
      setMore({ busy: false });
    } catch (e) {
      setMore({ busy: false, error: e });
    }
  }

  return (
    <main id="main" class="page">
      <div class="page-head">
        <div>
          <h1>Workflows</h1>
          <p class="muted">Specifications of multi-agent systems: their spec, their cast of agents and their graph.</p>
        </div>
        {!creating && items.length > 0 && (
          <button type="button" class="btn btn-primary" onClick={() => setCreating(true)}>
            New workflow
          </button>
        )}
      </div>
      {first.loading && !pages.length && <Loading label="Loading workflows…" />}
      <ErrorBanner error={first.error} title="Your workflows could not be loaded">
        <button type="button" class="btn" onClick={first.reload}>
          Try again
        </button>
      </ErrorBanner>
      {(creating || (!first.loading && !first.error && items.length === 0)) && (
        <div class="stack">
          {items.length === 0 && (
            <Empty title="No workflows yet">
              <p>Create your first one from a template; you can refine it with AI right after.</p>
            </Empty>
          )}
          <CreateWorkflow onCancel={items.length ? () => setCreating(false) : undefined} />
        </div>
      )}
      {items.length > 0 && (
        <ul class="wf-list" data-testid="workflow-list" aria-label="Your workflows">
          {items.map((w) => (
            <li key={w.id} class="wf-item">
              <a href={href({ page: "draft", workflowId: w.id })} class="wf-link">
                <span class="wf-name">{w.name}</span>
                {w.description && <span class="wf-desc">{w.description}</span>}
              </a>
              <span class="wf-meta">
                <span class={`role role-${w.role}`}>{w.role}</span>
                <span>
                  updated <Time at={w.updated_at} />
                </span>
              </span>
            </li>
          ))}
        </ul>
      )}
      {next && (
        <div class="center">
          <button type="button" class="btn" onClick={loadMore} disabled={more.busy}>
            {more.busy ? "Loading…" : "Show more"}
          </button>
        </div>
      )}
      <ErrorBanner error={more.error} />
    </main>
  );
}
