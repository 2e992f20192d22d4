import { effect, signal } from "@preact/signals";
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { authProblem, canRead, gql, link, loadViewer, setToken, token, viewer } from "./api.js";
import { Agents } from "./pages/agents.jsx";
import { Approvals } from "./pages/approvals.jsx";
import { Audit } from "./pages/audit.jsx";
import { Costs } from "./pages/costs.jsx";
import { Fleet } from "./pages/fleet.jsx";
import { RunView } from "./pages/run.jsx";
import { SignIn } from "./pages/signin.jsx";
import { Tenants } from "./pages/tenants.jsx";
import { Tools } from "./pages/tools.jsx";
import { navigate, onLinkClick, route } from "./router.js";
import "./style.css";

const THEME_KEY = "agentplane.theme";
const theme = signal(localStorage.getItem(THEME_KEY) || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
effect(() => {
  document.documentElement.dataset.theme = theme.value;
});
const booting = signal(Boolean(token.value));

const NAV = [
  ["/", "Fleet", "tasks"],
  ["/approvals", "Approvals", "approvals"],
  ["/costs", "Costs"],
  ["/audit", "Audit", "audit"],
  ["/agents", "Agents", "tasks"],
  ["/tools", "Tools", "tools"],
  ["/tenants", "Tenants"],
];

function Page() {
  const { path } = route.value;
  const platform = viewer.value && !viewer.value.tenant;
  const run = path.match(/^\/tasks\/([\w-]+)$/);
  if (run) return <RunView id={run[1]} key={run[1]} />;
  switch (path) {
    case "/": return canRead(viewer.value, "tasks") ? <Fleet /> : <Costs platform={platform} />;
    case "/costs": return <Costs platform={platform} />;
    case "/audit": return <Audit platform={platform} />;
    case "/approvals": return <Approvals />;
    case "/agents": return <Agents />;
    case "/tools": return <Tools />;
    case "/tenants": return <Tenants platform={platform} />;
    default: return <div class="page"><h1>Not found</h1><p><a href="/ui/">Back to the fleet</a></p></div>;
  }
}

async function signOut() {
  const v = viewer.value;
  // A token this dashboard minted at a local sign-in is ours to revoke.
  if (v?.tokenId && localStorage.getItem("agentplane.minted") === v.tokenId) {
    await gql(`mutation SignOut($input: IdInput!) { revokeAccessToken(input: $input) { token { id } } }`, { input: { id: v.tokenId } }).catch(() => {});
  }
  await fetch("/api/v1/auth/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  setToken("");
  viewer.value = null;
}

function App() {
  useEffect(() => {
    if (!token.value) return;
    loadViewer()
      .catch(() => {})
      .finally(() => (booting.value = false));
  }, []);
  if (booting.value) return <p class="muted boot">Loading…</p>;
  if (!viewer.value || authProblem.value) return <SignIn onSignedIn={() => navigate(route.value.path, Object.fromEntries(route.value.query), { replace: true })} />;
  const v = viewer.value;
  const { path } = route.value;
  return (
    <div class="shell" onClick={onLinkClick}>
      <header class="top">
        <a class="brand" href="/ui/">agentplane</a>
        <nav aria-label="Main">
          {NAV.filter(([, , what]) => canRead(v, what)).map(([to, label]) => (
            <a key={to} href={`/ui${to}`} aria-current={(to === "/" ? path === "/" || path.startsWith("/tasks") : path === to) ? "page" : undefined}>{label}</a>
          ))}
          <a href="/graphql" target="_blank" rel="noopener">GraphiQL</a>
        </nav>
        <span class="grow" />
        <span class={`link link-${link.value}`} data-testid="link" title="Live updates">{link.value === "idle" ? "" : link.value}</span>
        <span class="who" data-testid="who">{v.role}{v.tenant ? ` · ${v.tenant.name}` : " · platform"}</span>
        <button type="button" class="ghost" onClick={() => (theme.value = theme.value === "dark" ? "light" : "dark")} aria-label="Toggle dark mode">
          {theme.value === "dark" ? "☀" : "☾"}
        </button>
        <button type="button" class="ghost" onClick={signOut}>Sign out</button>
      </header>
      <main>
        <Page />
      </main>
    </div>
  );
}

effect(() => localStorage.setItem(THEME_KEY, theme.value));
render(<App />, document.getElementById("app"));
