// The draft: file tree, viewer (Markdown rendered, JSON pretty-printed), editor with the
// revision conflict (409) explained, and the Refine panel (prompt, optionally on the open file
// and the selected text).

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api } from "../api/client";
import type { Draft, RefinementStarted, Workflow } from "../api/types";
import { FileTree } from "../components/FileTree";
import { FileViewer } from "../components/FileViewer";
import { Empty, ErrorBanner, Loading, Notice, Time, useAsync } from "../components/ui";
import { useRefinementStarter } from "../components/useRefinement";
import { href, navigate } from "../router";

const textOf = (d: Draft, path: string) => d.files[path]?.content.join("\n") ?? "";
const linesOf = (text: string) => text.split("\n");

interface Conflict {
  baseRevision: number;
  currentRevision?: number;
  message: string;
}

function Editor({
  workflowId,
  draft,
  path,
  onSaved,
  onClose,
  onSelect,
}: {
  workflowId: string;
  draft: Draft;
  path: string;
  onSaved: (d: Draft) => void;
  onClose: () => void;
  onSelect: (text: string) => void;
}) {
  const [text, setText] = useState(() => textOf(draft, path));
  const [base, setBase] = useState(draft.revision);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const dirty = text !== textOf(draft, path) || base !== draft.revision;

  async function save(revision = base) {
    setBusy(true);
    setError(undefined);
    try {
      const d = await api.putDraftFiles(workflowId, revision, { [path]: { content: linesOf(text) } });
      setConflict(null);
      onSaved(d);
    } catch (e) {
      if (e instanceof ApiError && e.conflict) {
        setConflict({ baseRevision: revision, currentRevision: e.problem.current_revision, message: e.message });
      } else {
        setError(e);
      }
    } finally {
      setBusy(false);
    }
  }

  async function keepMine() {
    // Take the newest revision as the base and save this text over it (the user chose to).
    try {
      const latest = await api.getDraft(workflowId);
      setBase(latest.revision);
      await save(latest.revision);
    } catch (e) {
      setError(e);
    }
  }

  async function takeTheirs() {
    try {
      const latest = await api.getDraft(workflowId);
      setConflict(null);
      onSaved(latest);
      onClose();
    } catch (e) {
      setError(e);
    }
  }

  return (
    <form
      class="editor"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      {conflict && (
        <div class="banner banner-warning" role="alert" data-testid="draft-conflict">
          <strong class="banner-title">Someone else saved this draft first</strong>
          <p>
            You edited revision {conflict.baseRevision}; the draft is now at revision{" "}
            {conflict.currentRevision ?? "a newer one"}. Nothing of yours was saved. Your text is still here: keep it
            (it replaces their version of {path}) or load theirs (your edit is dropped).
          </p>
          <div class="banner-actions">
            <button type="button" class="btn btn-primary" onClick={keepMine} disabled={busy}>
              Save mine over theirs
            </button>
            <button type="button" class="btn" onClick={takeTheirs} disabled={busy}>
              Discard mine, load theirs
            </button>
          </div>
        </div>
      )}
      <ErrorBanner error={error} title="Not saved" />
      <label class="sr-only" for="editor-text">
        Contents of {path}
      </label>
      <textarea
        id="editor-text"
        class="editor-text"
        spellcheck={false}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onSelect={(e) => {
          const t = e.currentTarget;
          onSelect(t.value.slice(t.selectionStart, t.selectionEnd));
        }}
      />
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !dirty}>
          {busy ? "Saving…" : "Save"}
        </button>
        <button type="button" class="btn" onClick={onClose} disabled={busy}>
          {dirty ? "Discard changes" : "Close editor"}
        </button>
        <span class="muted small">Editing revision {base}</span>
      </div>
    </form>
  );
}

function NewFile({ workflowId, draft, onSaved }: { workflowId: string; draft: Draft; onSaved: (d: Draft, p: string) => void }) {
  const [open, setOpen] = useState(false);
  const [path, setPath] = useState("/THE_CAST/");
  const [error, setError] = useState<unknown>();
  if (!open) {
    return (
      <button type="button" class="btn btn-small" onClick={() => setOpen(true)}>
        Add a file
      </button>
    );
  }
  return (
    <form
      class="form form-compact"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        try {
          const p = path.trim();
          const d = await api.putDraftFiles(workflowId, draft.revision, { [p]: { content: [`# ${p.split("/").pop()?.replace(/\.md$/, "")}`, ""] } });
          setOpen(false);
          onSaved(d, p);
        } catch (err) {
          setError(err);
        }
      }}
    >
      <label class="field">
        <span>Path of the new file</span>
        <input value={path} onInput={(e) => setPath(e.currentTarget.value)} required pattern="/.+" />
      </label>
      <ErrorBanner error={error} />
      <div class="form-actions">
        <button type="submit" class="btn btn-primary btn-small">
          Create
        </button>
        <button type="button" class="btn btn-small" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function RefinePanel({ workflow, path, selection, onClearSelection }: { workflow: Workflow; path?: string; selection: string; onClearSelection: () => void }) {
  const [prompt, setPrompt] = useState("");
  const [useFile, setUseFile] = useState(true);
  const onStarted = useCallback(
    (r: RefinementStarted) => navigate({ page: "proposal", workflowId: workflow.id, proposalId: r.proposal_id, live: true }),
    [workflow.id],
  );
  const starter = useRefinementStarter(workflow.id, onStarted);
  const sel = selection.trim();

  return (
    <section class="card refine" aria-labelledby="refine-title" data-testid="refine-panel">
      <h2 id="refine-title" class="panel-title-lg">
        Refine with AI
      </h2>
      <p class="muted small">
        Describe the change. The AI edits a copy of the draft; you review its proposal before anything is applied.
      </p>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          starter.start({
            user_prompt: prompt.trim(),
            context_file_path: path && useFile ? path : undefined,
            context_selection: path && useFile && sel ? sel : undefined,
          });
        }}
      >
        <label class="field">
          <span>What should change?</span>
          <textarea
            name="prompt"
            rows={5}
            required
            maxLength={20000}
            value={prompt}
            onInput={(e) => setPrompt(e.currentTarget.value)}
            placeholder="e.g. Add a fact-checking specialist that verifies findings before the Writer uses them."
          />
        </label>
        {path && (
          <label class="check">
            <input type="checkbox" checked={useFile} onChange={(e) => setUseFile(e.currentTarget.checked)} />
            <span>
              Focus on <code>{path}</code>
            </span>
          </label>
        )}
        {path && useFile && sel && (
          <div class="selection" data-testid="refine-selection">
            <span class="small muted">On the selected text:</span>
            <blockquote>{sel.length > 240 ? `${sel.slice(0, 240)}…` : sel}</blockquote>
            <button type="button" class="btn btn-small" onClick={onClearSelection}>
              Clear selection
            </button>
          </div>
        )}
        {starter.notice}
        <button type="submit" class="btn btn-primary" disabled={starter.pending || starter.waiting || !prompt.trim()}>
          {starter.pending ? "Starting…" : "Refine"}
        </button>
      </form>
    </section>
  );
}

export function DraftPage({ workflow, file }: { workflow: Workflow; file?: string }) {
  const draft = useAsync(() => api.getDraft(workflow.id), [workflow.id]);
  const [editing, setEditing] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  const [selection, setSelection] = useState("");
  const viewRef = useRef<HTMLDivElement>(null);
  const canEdit = workflow.role !== "viewer";

  const d = draft.data;
  const paths = d ? Object.keys(d.files).sort() : [];
  const path = file && d?.files[file] ? file : paths.find((p) => p.endsWith("plan.md")) ?? paths[0];

  useEffect(() => {
    setEditing(false);
    setSelection("");
  }, [path]);

  const captureSelection = () => {
    const s = window.getSelection();
    if (!s || s.isCollapsed || !viewRef.current?.contains(s.anchorNode)) return;
    setSelection(s.toString());
  };

  if (!d) {
    return draft.loading ? (
      <Loading label="Loading the draft…" />
    ) : (
      <ErrorBanner error={draft.error} title="The draft could not be loaded">
        <button type="button" class="btn" onClick={draft.reload}>
          Try again
        </button>
      </ErrorBanner>
    );
  }

  return (
    <div class="draft-layout">
      <aside class="card draft-files">
        <div class="panel-head">
          <h2 class="panel-title">Files</h2>
          <span class="muted small" data-testid="draft-revision">
            revision {d.revision}
          </span>
        </div>
        {paths.length ? (
          <FileTree files={d.files} selected={path} hrefFor={(p) => href({ page: "draft", workflowId: workflow.id, file: p })} />
        ) : (
          <p class="muted">No files yet.</p>
        )}
        {canEdit && (
          <NewFile
            workflowId={workflow.id}
            draft={d}
            onSaved={(nd, p) => {
              draft.set(nd);
              navigate({ page: "draft", workflowId: workflow.id, file: p });
            }}
          />
        )}
      </aside>

      <section class="card draft-view" aria-labelledby="file-title">
        {!path ? (
          <Empty title="This draft has no files">
            <p>Add a file, or ask the AI to write the first specification.</p>
          </Empty>
        ) : (
          <>
            <div class="panel-head">
              <h2 id="file-title" class="file-title">
                <code>{path}</code>
              </h2>
              <span class="muted small">
                changed <Time at={d.files[path]?.modified_at} />
              </span>
              {canEdit && !editing && (
                <button type="button" class="btn btn-small" onClick={() => setEditing(true)}>
                  Edit
                </button>
              )}
            </div>
            {saved && <Notice kind="success">{saved}</Notice>}
            {editing ? (
              <Editor
                key={`${path}@${d.revision}`}
                workflowId={workflow.id}
                draft={d}
                path={path}
                onSaved={(nd) => {
                  draft.set(nd);
                  setEditing(false);
                  setSaved(`Saved as revision ${nd.revision}.`);
                  setTimeout(() => setSaved(null), 4000);
                }}
                onClose={() => setEditing(false)}
                onSelect={setSelection}
              />
            ) : (
              <div ref={viewRef} onMouseUp={captureSelection} onKeyUp={captureSelection}>
                <FileViewer path={path} text={textOf(d, path)} />
              </div>
            )}
          </>
        )}
      </section>

      {canEdit ? (
        <RefinePanel workflow={workflow} path={path} selection={selection} onClearSelection={() => setSelection("")} />
      ) : (
        <section class="card refine">
          <p class="muted">You can view this workflow; only its owner and editors can change or refine it.</p>
        </section>
      )}
    </div>
  );
}
