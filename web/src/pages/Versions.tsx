// Published versions: list, publish the draft as the next version, deploy the latest one.
// Viewing an older version's files needs GET one version, which the API does not offer yet.

import { useState } from "preact/hooks";
import { api } from "../api/client";
import type { Deployment, Workflow } from "../api/types";
import { getSession } from "../session";
import { ErrorBanner, Loading, Notice, Time, useAction, useAsync } from "../components/ui";

export function VersionsPage({ workflow }: { workflow: Workflow }) {
  const versions = useAsync(() => api.listVersions(workflow.id), [workflow.id]);
  const [notice, setNotice] = useState<string | null>(null);
  const [deployment, setDeployment] = useState<Deployment | null>(null);
  const canPublish = workflow.role !== "viewer";
  const me = getSession()?.user.id;
  const items = versions.data?.items ?? [];
  const latest = items.reduce((n, v) => Math.max(n, v.number), 0);
  const [doing, setDoing] = useState<"publish" | "deploy" | null>(null);
  const action = useAction(async (kind: "publish" | "deploy") => {
    setDoing(kind);
    setNotice(null);
    if (kind === "publish") {
      const v = await api.publish(workflow.id);
      setNotice(`Published version ${v.number}.`);
      versions.reload();
    } else {
      setDeployment(await api.deploy(workflow.id));
    }
  });
  const busy = action.busy ? doing : null;
  const error = action.error;
  const publish = () => action.run("publish");
  const deploy = () => action.run("deploy");

  const agents = deployment?.definition?.graph?.nodes?.length;

  return (
    <div class="stack">
      <div class="card">
        <div class="panel-head">
          <h2 class="panel-title-lg">Versions</h2>
          {canPublish && (
            <div class="head-actions">
              <button type="button" class="btn btn-primary" onClick={publish} disabled={!!busy}>
                {busy === "publish" ? "Publishing…" : `Publish the draft as version ${latest + 1}`}
              </button>
              <button type="button" class="btn" onClick={deploy} disabled={!!busy || !items.length}>
                {busy === "deploy" ? "Deploying…" : latest ? `Deploy version ${latest}` : "Deploy"}
              </button>
            </div>
          )}
        </div>
        <p class="muted small">A version is an immutable snapshot of the draft. Deploying checks that its /definition.json runs on the engine.</p>
        {notice && <Notice kind="success">{notice}</Notice>}
        <ErrorBanner error={error} title="That did not work" />
        {deployment && (
          <div class="banner banner-success" role="status" data-testid="deployment">
            <strong class="banner-title">
              Version {deployment.version.number} deployment {deployment.status}
            </strong>
            <p>
              {deployment.definition?.name ?? "The definition"}
              {deployment.definition?.version ? ` ${deployment.definition.version}` : ""}
              {agents !== undefined ? ` with ${agents} agent${agents === 1 ? "" : "s"}` : ""} was checked and recorded{" "}
              <Time at={deployment.deployed_at} />.
            </p>
          </div>
        )}
        {!versions.data ? (
          versions.loading ? (
            <Loading label="Loading versions…" />
          ) : (
            <ErrorBanner error={versions.error} />
          )
        ) : items.length === 0 ? (
          <p class="empty-title">Nothing published yet</p>
        ) : (
          <table class="table" data-testid="version-list">
            <caption class="sr-only">Published versions, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Published</th>
                <th scope="col">By</th>
              </tr>
            </thead>
            <tbody>
              {items.map((v) => (
                <tr key={v.id}>
                  <td>
                    <strong>v{v.number}</strong>
                    {v.number === latest && <span class="badge badge-completed">latest</span>}
                  </td>
                  <td>
                    <Time at={v.created_at} />
                  </td>
                  <td>{v.created_by === me ? "you" : <code title={v.created_by}>{v.created_by.slice(0, 8)}</code>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}
