// Entry point of the web console: session gate, top bar, and one module per page.
//
// Pages: pages/SignIn, pages/Workflows, and per workflow (pages/WorkflowShell) the Draft,
// Proposals/Proposal and Versions tabs. Runs, members and workflow settings plug in as
// further routes (router.ts), tabs (WorkflowShell.tsx) and calls (api/client.ts).

import "./styles/app.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { getSession, onSessionChange, signOut, type Session } from "./session";
import { href, navigate, useRoute } from "./router";
import { SignInPage } from "./pages/SignIn";
import { WorkflowsPage } from "./pages/Workflows";
import { WorkflowShell } from "./pages/WorkflowShell";
import { DraftPage } from "./pages/Draft";
import { ProposalPage, ProposalsPage } from "./pages/Proposal";
import { VersionsPage } from "./pages/Versions";

function TopBar({ session }: { session: Session }) {
  return (
    <header class="topbar">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <a class="brand" href={href({ page: "workflows" })}>
        <span class="brand-mark" aria-hidden="true">
          A
        </span>
        <span>Agentic IDE</span>
      </a>
      <div class="topbar-user">
        <span class="user-name" title={session.user.email} data-testid="user-name">
          {session.user.name}
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
