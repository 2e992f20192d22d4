// Copies GraphiQL and the React it runs on (the exact files unpkg served, same SRI
// hashes) next to the dashboard's build, so /graphql works without internet.
// Versioned directory names: the server caches them as immutable.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const out = resolve(root, process.env.UI_OUT_DIR || "../src/agentplane/static/ui", "vendor");
const version = (name) =>
  JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;

const files = {
  graphiql: ["graphiql.min.js", "graphiql.min.css"],
  react: ["umd/react.production.min.js"],
  "react-dom": ["umd/react-dom.production.min.js"],
};
for (const [name, paths] of Object.entries(files)) {
  const dir = join(out, `${name}-${version(name)}`);
  mkdirSync(dir, { recursive: true });
  for (const path of paths) {
    copyFileSync(join(root, "node_modules", name, path), join(dir, path.split("/").pop()));
  }
}
