// Vite build of the web console. `npm run build` writes ../build/web (where ide-orchestrator
// looks by default, next to build/bin); CMake passes --outDir explicitly.
import { defineConfig } from "vite";

export default defineConfig({
  // JSX through esbuild with Preact's automatic runtime (tsconfig "jsxImportSource").
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  resolve: {
    alias: { react: "preact/compat", "react-dom": "preact/compat" },
  },
  build: {
    outDir: "../build/web",
    emptyOutDir: true,
    // The server's Content-Security-Policy allows no inline script and no data: scripts:
    // keep every asset a file, and no modulepreload polyfill snippet.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2020",
    chunkSizeWarningLimit: 1500,
  },
  server: {
    // `npm run dev`: proxy the API (and its WebSocket) to a local ide-orchestrator.
    proxy: {
      "/api": { target: process.env.CONSOLE_API ?? "http://127.0.0.1:8080", ws: true },
    },
  },
});
