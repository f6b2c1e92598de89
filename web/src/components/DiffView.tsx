// A unified diff (as GET /api/proposals/{id}/diff returns it) rendered by diff2html: one
// block per file, side by side on wide screens and line by line on narrow ones.

import "diff2html/bundles/css/diff2html.min.css";
import DOMPurify from "dompurify";
import { html, parse } from "diff2html";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

const WIDE = "(min-width: 1000px)";

/** True while the viewport matches `query`. */
export function useMedia(query: string): boolean {
  const [match, setMatch] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const m = window.matchMedia(query);
    const on = () => setMatch(m.matches);
    m.addEventListener("change", on);
    return () => m.removeEventListener("change", on);
  }, [query]);
  return match;
}

export function DiffView({ diff }: { diff: string }) {
  const wide = useMedia(WIDE);
  const rendered = useMemo(() => {
    // The API's diff names a created or deleted file /dev/null on one side (no git "new file"
    // headers); mark those files as added / deleted so they are not shown as renames.
    const files = parse(diff).map((f) => {
      if (f.oldName === "/dev/null" || f.oldName === "dev/null") return { ...f, isNew: true, oldName: f.newName };
      if (f.newName === "/dev/null" || f.newName === "dev/null") return { ...f, isDeleted: true, newName: f.oldName };
      return f;
    });
    const out = html(files, {
      outputFormat: wide ? "side-by-side" : "line-by-line",
      drawFileList: false,
      matching: "lines",
      colorScheme: "light" as never,
    });
    // diff2html escapes file contents; sanitising again costs little and keeps the rule simple:
    // nothing reaches innerHTML unsanitised.
    return DOMPurify.sanitize(out, { FORBID_ATTR: ["style"] });
  }, [diff, wide]);
  // diff2html's panes scroll sideways: make each a named, focusable region so keyboard users
  // can scroll it (WCAG 2.1.1).
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    for (const file of ref.current?.querySelectorAll(".d2h-file-wrapper") ?? []) {
      const name = file.querySelector(".d2h-file-name")?.textContent?.trim() ?? "file";
      const panes = file.querySelectorAll<HTMLElement>(".d2h-file-side-diff, .d2h-file-diff");
      panes.forEach((pane, i) => {
        pane.tabIndex = 0;
        pane.setAttribute("role", "region");
        const side = panes.length === 2 ? (i === 0 ? ", before" : ", after") : "";
        pane.setAttribute("aria-label", `Diff of ${name}${side}`);
      });
    }
  }, [rendered]);
  return (
    <div
      ref={ref}
      class={`diff ${wide ? "diff-wide" : "diff-narrow"}`}
      data-testid="diff"
      data-format={wide ? "side-by-side" : "line-by-line"}
      dangerouslySetInnerHTML={{ __html: rendered }}
    />
  );
}
