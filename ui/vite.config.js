// The dashboard's build. Output goes into the Python package (committed), so `pip install`
// and `make run` need no Node; tests/test_ui_build.py rebuilds into a temporary directory
// (UI_OUT_DIR) and compares. Hashed names and no timestamps keep the build deterministic.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: process.env.UI_OUT_DIR || "../src/agentplane/static/ui",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
