// Published versions: list, publish the draft as the next version, deploy one, view one with
// its files (VersionPage), and go on to run it.

import { useState } from "preact/hooks";
import { api } from "../api/client";
import type { Deployment, Workflow } from "../api/types";
import { getSession } from "../session";
import { FileBrowser } from "../components/FileBrowser";
import { ErrorBanner, Loading, Notice, Time, useAction, useAsync } from "../components/ui";
import { href } from "../router";

export function VersionsPage({ workflow }: { workflow: Workflow }) {
  const versions = useAsync(() => api.listVersions(workflow.id), [workflow.id]);
  const [notice, setNotice] = useState<string | null>(null);
  const [deployment, setDeployment] = useState<Deployment | null>(null);
  const canPublish = workflow.role !== "viewer";
  const me = getSession()?.user.id;
  const items = versions.data?.items ?? [];
  const latest = items.reduce((n, v) => Math.max(n, v.number), 0);
  const [doing, setDoing] = useState<string | null>(null);
  const action = useAction(async (kind: "publish" | "deploy", number?: number) => {
    setDoing(kind === "deploy" ? `deploy-${number ?? latest}` : kind);
    setNotice(null);
    if (kind === "publish") {
      const v = await api.publish(workflow.id);
      setNotice(
        v.created === false
          ? `The draft has not changed since version ${v.number}; nothing new was published.`
          : `Published version ${v.number}.`,
      );
      versions.reload();
    } else {
      setDeployment(await api.deploy(workflow.id, number));
    }
  });
  const busy = action.busy ? doing : null;
  const error = action.error;
  const publish = () => action.run("publish");
  const deploy = (n?: number) => action.run("deploy", n);

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
              <button type="button" class="btn" onClick={() => deploy(latest || undefined)} disabled={!!busy || !items.length}>
                {busy === `deploy-${latest}` ? "Deploying…" : latest ? `Deploy version ${latest}` : "Deploy"}
              </button>
            </div>
          )}
        </div>
        <p class="muted small">
          A version is an immutable snapshot of the draft. Deploying checks that its /definition.json runs on the engine
          and makes it the version that <a href={href({ page: "runs", workflowId: workflow.id })}>runs</a> execute.
        </p>
        {notice && <Notice kind="success">{notice}</Notice>}
        <ErrorBanner error={error} title="That did not work" />
        {deployment && (
          <div class="banner banner-success" role="status" data-testid="deployment">
            <strong class="banner-title">
              Version {deployment.version.number} {deployment.status}
            </strong>
            <p>
              {deployment.definition?.name ?? "The definition"}
              {deployment.definition?.version ? ` ${deployment.definition.version}` : ""}
              {agents !== undefined ? ` with ${agents} agent${agents === 1 ? "" : "s"}` : ""} was checked and recorded{" "}
              <Time at={deployment.deployed_at} />.{" "}
              <a href={href({ page: "runs", workflowId: workflow.id })}>Run it</a>
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
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
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
                  <td class="row-actions">
                    <a class="btn btn-small" href={href({ page: "version", workflowId: workflow.id, number: v.number })}>
                      View<span class="sr-only"> version {v.number}</span>
                    </a>
                    {canPublish && v.number !== latest && (
                      <button type="button" class="btn btn-small" onClick={() => deploy(v.number)} disabled={!!busy}>
                        {busy === `deploy-${v.number}` ? "Deploying…" : `Deploy v${v.number}`}
                        <span class="sr-only"> (version {v.number})</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}

/** One published version with its files (GET /api/workflows/{id}/versions/{number}). */
export function VersionPage({ workflow, number, file }: { workflow: Workflow; number: number; file?: string }) {
  const version = useAsync(() => api.getVersion(workflow.id, number), [workflow.id, number]);
  const v = version.data;
  const back = (
    <a class="btn btn-small btn-ghost" href={href({ page: "versions", workflowId: workflow.id })}>
      All versions
    </a>
  );
  if (!v) {
    if (version.loading) return <Loading label={`Loading version ${number}…`} />;
    return (
      <ErrorBanner error={version.error} title={`Version ${number} could not be loaded`}>
        {back}
      </ErrorBanner>
    );
  }
  return (
    <section class="card" aria-labelledby="version-title" data-testid="version-view">
      <div class="panel-head">
        <h2 id="version-title" class="panel-title-lg">
          Version {v.number}
        </h2>
        <span class="muted small">
          published <Time at={v.created_at} />
        </span>
        {back}
        {workflow.role !== "viewer" && (
          <a class="btn btn-small" href={href({ page: "runs", workflowId: workflow.id })}>
            Run a version
          </a>
        )}
      </div>
      <FileBrowser
        files={v.files ?? {}}
        selected={file}
        label={`Files of version ${v.number}`}
        hrefFor={(p) => href({ page: "version", workflowId: workflow.id, number: v.number, file: p })}
      />
    </section>
  );
}
