// Hash routes (#/w/<id>/draft ...), so the server needs one document at `/` and no fallback
// for deep links. A route is a page name plus its parameters.

import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "signin" }
  | { page: "workflows" }
  | { page: "draft"; workflowId: string; file?: string }
  | { page: "proposals"; workflowId: string }
  /** `live`: opened right after starting the refinement, so its activity is shown as it streams. */
  | { page: "proposal"; workflowId: string; proposalId: string; live?: boolean }
  | { page: "versions"; workflowId: string }
  | { page: "version"; workflowId: string; number: number; file?: string }
  | { page: "runs"; workflowId: string }
  | { page: "run"; workflowId: string; runId: string; file?: string }
  | { page: "settings"; workflowId: string }
  /** The caller's proposals across workflows. */
  | { page: "myproposals" }
  | { page: "notfound"; path: string };

/** Parses location.hash ("#/w/<id>/proposals/<pid>"). */
export function parse(hash: string): Route {
  const [pathPart, query = ""] = hash.replace(/^#/, "").split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts.length === 0) return { page: "workflows" };
  if (parts[0] === "signin" && parts.length === 1) return { page: "signin" };
  if (parts[0] === "proposals" && parts.length === 1) return { page: "myproposals" };
  if (parts[0] === "w" && parts[1]) {
    const workflowId = parts[1];
    const tab = parts[2] ?? "draft";
    if (tab === "draft" && parts.length <= 3) return { page: "draft", workflowId, file: params.get("file") ?? undefined };
    if (tab === "proposals" && parts.length === 3) return { page: "proposals", workflowId };
    if (tab === "proposals" && parts.length === 4)
      return { page: "proposal", workflowId, proposalId: parts[3], live: params.get("live") === "1" };
    if (tab === "versions" && parts.length === 3) return { page: "versions", workflowId };
    if (tab === "versions" && parts.length === 4 && /^[1-9][0-9]{0,8}$/.test(parts[3]))
      return { page: "version", workflowId, number: Number(parts[3]), file: params.get("file") ?? undefined };
    if (tab === "runs" && parts.length === 3) return { page: "runs", workflowId };
    if (tab === "runs" && parts.length === 4) return { page: "run", workflowId, runId: parts[3], file: params.get("file") ?? undefined };
    if (tab === "settings" && parts.length === 3) return { page: "settings", workflowId };
  }
  return { page: "notfound", path: pathPart };
}

/** The hash of a route (inverse of parse). */
export function href(r: Route): string {
  const e = encodeURIComponent;
  switch (r.page) {
    case "signin":
      return "#/signin";
    case "workflows":
      return "#/";
    case "draft":
      return `#/w/${e(r.workflowId)}/draft${r.file ? `?file=${e(r.file)}` : ""}`;
    case "proposals":
      return `#/w/${e(r.workflowId)}/proposals`;
    case "proposal":
      return `#/w/${e(r.workflowId)}/proposals/${e(r.proposalId)}${r.live ? "?live=1" : ""}`;
    case "versions":
      return `#/w/${e(r.workflowId)}/versions`;
    case "version":
      return `#/w/${e(r.workflowId)}/versions/${r.number}${r.file ? `?file=${e(r.file)}` : ""}`;
    case "runs":
      return `#/w/${e(r.workflowId)}/runs`;
    case "run":
      return `#/w/${e(r.workflowId)}/runs/${e(r.runId)}${r.file ? `?file=${e(r.file)}` : ""}`;
    case "settings":
      return `#/w/${e(r.workflowId)}/settings`;
    case "myproposals":
      return "#/proposals";
    case "notfound":
      return `#${r.path}`;
  }
}

export function navigate(r: Route, opts: { replace?: boolean } = {}) {
  const h = href(r);
  if (opts.replace) history.replaceState(null, "", h);
  else history.pushState(null, "", h);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

/** The current route; re-renders on navigation. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}
