// Read-only view of one file: Markdown rendered (marked, sanitised by DOMPurify), JSON
// pretty-printed, anything else as plain text.

import DOMPurify from "dompurify";
import { marked } from "marked";
import { useMemo } from "preact/hooks";

export type FileKind = "markdown" | "json" | "text";

export function fileKind(path: string): FileKind {
  const p = path.toLowerCase();
  if (p.endsWith(".md") || p.endsWith(".markdown")) return "markdown";
  if (p.endsWith(".json")) return "json";
  return "text";
}

/** Markdown -> sanitised HTML (no scripts, no event handlers, no inline styles). */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false, gfm: true }) as string;
  return DOMPurify.sanitize(html, { FORBID_ATTR: ["style"], FORBID_TAGS: ["style"] });
}

/** Pretty-printed JSON, or null when `text` is not valid JSON. */
export function prettyJson(text: string): string | null {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

export function FileViewer({ path, text }: { path: string; text: string }) {
  const kind = fileKind(path);
  const html = useMemo(() => (kind === "markdown" ? renderMarkdown(text) : ""), [kind, text]);
  const json = useMemo(() => (kind === "json" ? prettyJson(text) : null), [kind, text]);
  if (kind === "markdown") {
    return <div class="markdown" data-testid="file-view" dangerouslySetInnerHTML={{ __html: html }} />;
  }
  if (kind === "json") {
    return (
      <div data-testid="file-view">
        {json === null && <p class="muted">This file is not valid JSON; shown as written.</p>}
        <pre class="code" tabIndex={0} aria-label={`Contents of ${path}`}>
          <code>{json ?? text}</code>
        </pre>
      </div>
    );
  }
  return (
    <pre class="code" data-testid="file-view" tabIndex={0} aria-label={`Contents of ${path}`}>
      <code>{text}</code>
    </pre>
  );
}
