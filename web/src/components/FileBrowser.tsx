// A read-only set of files (a version's, or the files a run wrote): the tree on one side and the
// open file's view on the other. The open file is part of the URL (`hrefFor`), so it survives a
// reload and the back button.

import type { FileMap } from "../api/types";
import { FileTree } from "./FileTree";
import { FileViewer } from "./FileViewer";

export function FileBrowser({
  files,
  selected,
  hrefFor,
  label,
}: {
  files: FileMap;
  /** The path to show; the first file when absent or not in `files`. */
  selected?: string;
  hrefFor: (p: string) => string;
  /** Accessible name of the file list, e.g. "Files of version 2". */
  label: string;
}) {
  const paths = Object.keys(files).sort();
  if (!paths.length) return <p class="muted">No files.</p>;
  const path = selected && files[selected] ? selected : paths.find((p) => p.endsWith("plan.md")) ?? paths[0];
  return (
    <div class="file-browser">
      <FileTree files={files} selected={path} hrefFor={hrefFor} label={label} />
      <section class="file-browser-view" aria-label={`Contents of ${path}`}>
        <h3 class="file-title">
          <code>{path}</code>
        </h3>
        <FileViewer path={path} text={files[path].content.join("\n")} />
      </section>
    </div>
  );
}
