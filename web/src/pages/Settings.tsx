// A workflow's settings: rename it (owner, editor), its members (everyone sees them; the owner
// adds people by e-mail, changes roles and removes them; others may leave), and delete it
// (owner). Viewers see everything read-only. Routes the server does not offer yet
// (PATCH/DELETE workflow, members) show a clear "not available" message.

import { useState } from "preact/hooks";
import { api } from "../api/client";
import type { Member, Role, Workflow } from "../api/types";
import { getSession } from "../session";
import { ErrorBanner, Loading, Notice, useAction, useAsync } from "../components/ui";
import { navigate } from "../router";

const roleWords: Record<Role, string> = {
  owner: "Owner: everything, including sharing and deleting",
  editor: "Editor: edits, refines, publishes, deploys and runs",
  viewer: "Viewer: reads only",
};

function Rename({ workflow, onChanged }: { workflow: Workflow; onChanged: () => void }) {
  const [name, setName] = useState(workflow.name);
  const [description, setDescription] = useState(workflow.description ?? "");
  const [done, setDone] = useState(false);
  const save = useAction(async () => {
    setDone(false);
    await api.updateWorkflow(workflow.id, { name: name.trim(), description: description.trim() });
    setDone(true);
    onChanged();
  });
  const readOnly = workflow.role === "viewer";
  const dirty = name.trim() !== workflow.name || description.trim() !== (workflow.description ?? "");
  return (
    <form
      class="card form"
      aria-labelledby="rename-title"
      data-testid="rename-workflow"
      onSubmit={(e) => {
        e.preventDefault();
        save.run();
      }}
    >
      <h2 id="rename-title" class="panel-title-lg">
        Name and description
      </h2>
      <label class="field">
        <span>Name</span>
        <input name="name" required maxLength={200} value={name} readOnly={readOnly} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <label class="field">
        <span>
          Description <span class="muted">(optional)</span>
        </span>
        <input
          name="description"
          maxLength={2000}
          value={description}
          readOnly={readOnly}
          onInput={(e) => setDescription(e.currentTarget.value)}
        />
      </label>
      <ErrorBanner error={save.error} title="Not saved" />
      {done && !dirty && <Notice kind="success">Saved.</Notice>}
      {!readOnly && (
        <div class="form-actions">
          <button type="submit" class="btn btn-primary" disabled={save.busy || !dirty || !name.trim()}>
            {save.busy ? "Saving…" : "Save"}
          </button>
        </div>
      )}
    </form>
  );
}

function MemberRow({ workflow, m, onChanged }: { workflow: Workflow; m: Member; onChanged: () => void }) {
  const me = getSession()?.user.id;
  const isOwner = workflow.role === "owner";
  const act = useAction(async (kind: "role" | "remove", role?: Exclude<Role, "owner">) => {
    if (kind === "role" && role) await api.putMember(workflow.id, m.user_id, role);
    else await api.removeMember(workflow.id, m.user_id);
    if (kind === "remove" && m.user_id === me) navigate({ page: "workflows" });
    else onChanged();
  });
  const selectId = `role-${m.user_id}`;
  return (
    <li data-testid="member">
      <span class="member-who">
        <strong>{m.name}</strong>
        {m.user_id === me && <span class="muted"> (you)</span>}
        <br />
        <span class="muted small">{m.email}</span>
      </span>
      <span class="member-actions">
        {isOwner && m.role !== "owner" ? (
          <>
            <label class="sr-only" for={selectId}>
              Role of {m.name}
            </label>
            <select
              id={selectId}
              value={m.role}
              disabled={act.busy}
              onChange={(e) => act.run("role", e.currentTarget.value as Exclude<Role, "owner">)}
            >
              <option value="editor">editor</option>
              <option value="viewer">viewer</option>
            </select>
            <button type="button" class="btn btn-small" onClick={() => act.run("remove")} disabled={act.busy}>
              Remove<span class="sr-only"> {m.name}</span>
            </button>
          </>
        ) : (
          <>
            <span class={`role role-${m.role}`}>{m.role}</span>
            {m.user_id === me && m.role !== "owner" && (
              <button type="button" class="btn btn-small" onClick={() => act.run("remove")} disabled={act.busy}>
                Leave this workflow
              </button>
            )}
          </>
        )}
      </span>
      {act.error !== undefined && (
        <div class="member-error">
          <ErrorBanner error={act.error} />
        </div>
      )}
    </li>
  );
}

function Members({ workflow }: { workflow: Workflow }) {
  const members = useAsync(() => api.listMembers(workflow.id), [workflow.id]);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Exclude<Role, "owner">>("editor");
  const [added, setAdded] = useState<string | null>(null);
  const add = useAction(async () => {
    setAdded(null);
    const m = await api.putMember(workflow.id, email.trim(), role);
    setAdded(`${m.name} (${m.email}) is now ${m.role === "editor" ? "an editor" : "a viewer"}.`);
    setEmail("");
    members.reload();
  });
  const isOwner = workflow.role === "owner";
  return (
    <section class="card members" aria-labelledby="members-title">
      <h2 id="members-title" class="panel-title-lg">
        Members
      </h2>
      {!members.data ? (
        members.loading ? (
          <Loading label="Loading members…" />
        ) : (
          <ErrorBanner error={members.error} title="The members could not be loaded" />
        )
      ) : (
        <>
          <ul class="member-list" data-testid="member-list" aria-label="Members of this workflow">
            {members.data.items.map((m) => (
              <MemberRow key={m.user_id} workflow={workflow} m={m} onChanged={members.reload} />
            ))}
          </ul>
          {isOwner ? (
            <form
              class="form"
              data-testid="add-member"
              onSubmit={(e) => {
                e.preventDefault();
                add.run();
              }}
            >
              <h3 class="panel-title">Share with someone</h3>
              <div class="form-row">
                <label class="field">
                  <span>Their e-mail</span>
                  <input type="email" name="member-email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
                </label>
                <label class="field">
                  <span>Role</span>
                  <select name="member-role" value={role} onChange={(e) => setRole(e.currentTarget.value as Exclude<Role, "owner">)}>
                    <option value="editor">{roleWords.editor}</option>
                    <option value="viewer">{roleWords.viewer}</option>
                  </select>
                </label>
                <button type="submit" class="btn btn-primary" disabled={add.busy || !email.trim()}>
                  {add.busy ? "Adding…" : "Add member"}
                </button>
              </div>
              <p class="muted small">They need an account on this server; they see the workflow at their next visit.</p>
              <ErrorBanner error={add.error} title="Not added" />
              {added && <Notice kind="success">{added}</Notice>}
            </form>
          ) : (
            <p class="muted small">Only the owner can share this workflow or change roles.</p>
          )}
        </>
      )}
    </section>
  );
}

function DeleteWorkflow({ workflow }: { workflow: Workflow }) {
  const [confirming, setConfirming] = useState(false);
  const del = useAction(async () => {
    await api.deleteWorkflow(workflow.id);
    navigate({ page: "workflows" });
  });
  return (
    <section class="card danger-zone" aria-labelledby="delete-title">
      <h2 id="delete-title" class="panel-title-lg">
        Delete this workflow
      </h2>
      <p class="muted small">
        Its draft, proposals, versions and runs disappear for every member. Refinements and runs in progress are stopped.
      </p>
      <ErrorBanner error={del.error} title="Not deleted" />
      {confirming ? (
        <div class="banner banner-warning" role="alert">
          <p>
            <strong>Delete “{workflow.name}” for everyone?</strong>
          </p>
          <div class="banner-actions">
            <button type="button" class="btn btn-danger" onClick={() => del.run()} disabled={del.busy}>
              {del.busy ? "Deleting…" : "Yes, delete it"}
            </button>
            <button type="button" class="btn" onClick={() => setConfirming(false)} disabled={del.busy}>
              Keep it
            </button>
          </div>
        </div>
      ) : (
        <button type="button" class="btn btn-danger" onClick={() => setConfirming(true)}>
          Delete workflow…
        </button>
      )}
    </section>
  );
}

export function SettingsPage({ workflow, onChanged }: { workflow: Workflow; onChanged: () => void }) {
  return (
    <div class="settings-layout">
      <Rename workflow={workflow} onChanged={onChanged} />
      <Members workflow={workflow} />
      {workflow.role === "owner" && <DeleteWorkflow workflow={workflow} />}
    </div>
  );
}
