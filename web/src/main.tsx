// Entry point of the web console: session gate, top bar, and one module per page.
//
// Pages: pages/SignIn, pages/Workflows, the caller's proposals across workflows, and per
// workflow (pages/WorkflowShell) the Draft, Proposals/Proposal, Versions/Version, Runs/Run and
// Settings (rename, members, delete) tabs. A page is a route (router.ts), a tab
// (WorkflowShell.tsx), its calls (api/client.ts) and a module in pages/.

import "./styles/app.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { getSession, onSessionChange, signOut, type Session } from "./session";
import { href, navigate, useRoute } from "./router";
import { SignInPage } from "./pages/SignIn";
import { WorkflowsPage } from "./pages/Workflows";
import { WorkflowShell } from "./pages/WorkflowShell";
import { DraftPage } from "./pages/Draft";
import { MyProposalsPage, ProposalPage, ProposalsPage } from "./pages/Proposal";
import { VersionPage, VersionsPage } from "./pages/Versions";
import { RunPage, RunsPage } from "./pages/Runs";
import { SettingsPage } from "./pages/Settings";
import { api } from "./api/client";
import type { Profile } from "./api/types";

/** The signed-in account from GET /api/me (fresh name and e-mail); the sign-in answer's copy
 *  until it arrives, or while the server cannot be reached. */
function useProfile(session: Session): Pick<Profile, "name" | "email"> {
  const [me, setMe] = useState<Profile | null>(null);
  useEffect(() => {
    let live = true;
    api.me().then(
      (p) => live && setMe(p),
      () => {
        /* offline: the session's user is shown */
      },
    );
    return () => {
      live = false;
    };
  }, [session.token]);
  return me ?? session.user;
}

function TopBar({ session }: { session: Session }) {
  const me = useProfile(session);
  return (
    <header class="topbar">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <a class="brand" href={href({ page: "workflows" })}>
        <span class="brand-mark" aria-hidden="true">
          A
        </span>
        <span class="brand-name">Agentic IDE</span>
      </a>
      <div class="topbar-user">
        <a class="topbar-link" href={href({ page: "myproposals" })}>
          Your proposals
        </a>
        <span class="user-who" title={`Signed in as ${me.name} <${me.email}>`}>
          <span class="sr-only">Signed in as </span>
          <span class="user-name" data-testid="user-name">
            {me.name}
          </span>
          <span class="user-email" data-testid="user-email">
            {me.email}
          </span>
        </span>
        <button type="button" class="btn btn-small btn-ghost" onClick={signOut}>
          Sign out
        </button>
      </div>
    </header>
  );
}

function Pages() {
  const route = useRoute();
  switch (route.page) {
    case "signin":
    case "workflows":
      return <WorkflowsPage />;
    case "draft":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="draft" title="Draft">
          {(wf) => <DraftPage workflow={wf} file={route.file} />}
        </WorkflowShell>
      );
    case "proposals":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="proposals" title="Proposals">
          {(wf) => <ProposalsPage workflow={wf} />}
        </WorkflowShell>
      );
    case "proposal":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="proposals" title="Proposal">
          {(wf) => <ProposalPage key={route.proposalId} workflow={wf} proposalId={route.proposalId} live={route.live} />}
        </WorkflowShell>
      );
    case "versions":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="versions" title="Versions">
          {(wf) => <VersionsPage workflow={wf} />}
        </WorkflowShell>
      );
    case "version":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="versions" title={`Version ${route.number}`}>
          {(wf) => <VersionPage key={route.number} workflow={wf} number={route.number} file={route.file} />}
        </WorkflowShell>
      );
    case "runs":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="runs" title="Runs">
          {(wf) => <RunsPage workflow={wf} />}
        </WorkflowShell>
      );
    case "run":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="runs" title="Run">
          {(wf) => <RunPage key={route.runId} workflow={wf} runId={route.runId} file={route.file} />}
        </WorkflowShell>
      );
    case "settings":
      return (
        <WorkflowShell workflowId={route.workflowId} tab="settings" title="Settings">
          {(wf, reload) => <SettingsPage workflow={wf} onChanged={reload} />}
        </WorkflowShell>
      );
    case "myproposals":
      return <MyProposalsPage />;
    case "notfound":
      return (
        <main id="main" class="page">
          <h1>Nothing here</h1>
          <p>
            There is no page at <code>{route.path}</code>. <a href={href({ page: "workflows" })}>Go to your workflows</a>.
          </p>
        </main>
      );
  }
}

function App() {
  const [session, setSession] = useState(getSession());
  const [reason, setReason] = useState<string | undefined>();
  useEffect(
    () =>
      onSessionChange((s, why) => {
        setSession(s);
        setReason(why);
        if (s && location.hash.startsWith("#/signin")) navigate({ page: "workflows" }, { replace: true });
      }),
    [],
  );
  if (!session) return <SignInPage reason={reason} />;
  return (
    <>
      <TopBar session={session} />
      <Pages />
    </>
  );
}

render(<App />, document.getElementById("app")!);
