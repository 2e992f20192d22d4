// The tenant's tool registry: built-ins, HTTP tools and MCP servers with their tools.
// Read-only, except Refresh on an MCP server for roles holding `tool:write`.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { canWriteTools, gql, viewer } from "../api.js";
import { ErrorNote, Panel } from "../components.jsx";
import { when } from "../format.js";

const SERVER = `id name transport command url status statusMessage protocolVersion serverName serverVersion
      refreshedAt headerNames tools { id name remoteName description enabled requiresApproval risk }`;
export const TOOLS_QUERY = `query Tools {
  builtinTools { name description requiresApproval risk }
  tools(first: 100, source: HTTP) {
    edges { node { id name description url method enabled requiresApproval risk headerNames timeoutS } }
    pageInfo { hasNextPage }
  }
  mcpServers(first: 100) { edges { node { ${SERVER} } } pageInfo { hasNextPage } }
}`;
export const REFRESH = `mutation RefreshMcpServer($input: ToolIdInput!) { refreshMcpServer(input: $input) { mcpServer { ${SERVER} } } }`;

const origin = (url) => {
  try {
    return new URL(url).origin; // the path and query may carry more than an operator needs
  } catch {
    return url;
  }
};
const yes = (flag) => (flag ? "yes" : "no");
const Risk = ({ risk }) => <span class={`risk risk-${risk}`}>{risk}</span>;

export function Tools() {
  const data = useSignal(null);
  const error = useSignal(null);
  useEffect(() => {
    gql(TOOLS_QUERY).then((d) => (data.value = d), (err) => (error.value = err));
  }, []);
  const d = data.value;
  const http = d ? d.tools.edges.map((e) => e.node) : [];
  const servers = d ? d.mcpServers.edges.map((e) => e.node) : [];
  const replace = (server) => {
    const edges = d.mcpServers.edges.map((e) => (e.node.id === server.id ? { node: server } : e));
    data.value = { ...d, mcpServers: { ...d.mcpServers, edges } };
  };
  return (
    <div class="page tools">
      <div class="page-head"><h1>Tools</h1></div>
      <ErrorNote error={error.value} />
      {!d && !error.value && <p class="muted">Loading…</p>}
      {d && (
        <>
          <Panel title={`HTTP tools (${http.length})`} op={{ query: TOOLS_QUERY, variables: {} }}>
            <table class="grid" data-testid="http-tools">
              <thead><tr><th>name</th><th>method</th><th>origin</th><th>enabled</th><th>approval</th><th>risk</th><th>secret headers</th></tr></thead>
              <tbody>
                {http.map((t) => (
                  <tr key={t.id} data-tool={t.name}>
                    <td class="wrap"><code>{t.name}</code><br /><span class="muted small">{t.description}</span></td>
                    <td>{t.method}</td>
                    <td class="wrap">{origin(t.url)}</td>
                    <td>{yes(t.enabled)}</td>
                    <td>{t.requiresApproval ? "required" : "—"}</td>
                    <td><Risk risk={t.risk} /></td>
                    <td class="wrap">{t.headerNames.length ? t.headerNames.map((h) => <code key={h} class="chip">{h}</code>) : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {!http.length && <p class="muted">No HTTP tool registered.</p>}
            {d.tools.pageInfo.hasNextPage && <p class="muted">The first 100 are shown.</p>}
          </Panel>
          <Panel title={`MCP servers (${servers.length})`}>
            {servers.map((s) => <McpServerCard key={s.id} server={s} onRefreshed={replace} />)}
            {!servers.length && <p class="muted">No MCP server registered.</p>}
            {d.mcpServers.pageInfo.hasNextPage && <p class="muted">The first 100 are shown.</p>}
          </Panel>
          <Panel title={`Built-in tools (${d.builtinTools.length})`}>
            <table class="grid" data-testid="builtin-tools">
              <thead><tr><th>name</th><th>description</th><th>approval</th><th>risk</th></tr></thead>
              <tbody>
                {d.builtinTools.map((t) => (
                  <tr key={t.name}>
                    <td><code>{t.name}</code></td>
                    <td class="wrap">{t.description}</td>
                    <td>{t.requiresApproval ? "required" : "—"}</td>
                    <td><Risk risk={t.risk} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Panel>
        </>
      )}
    </div>
  );
}

function McpServerCard({ server: s, onRefreshed }) {
  const busy = useSignal(false);
  const error = useSignal(null);
  const refresh = async () => {
    busy.value = true;
    try {
      onRefreshed((await gql(REFRESH, { input: { id: s.id } })).refreshMcpServer.mcpServer);
      error.value = null;
    } catch (err) {
      error.value = err;
    } finally {
      busy.value = false;
    }
  };
  return (
    <section class="mcp" data-testid="mcp-server" data-server={s.name} data-id={s.id} aria-label={`MCP server ${s.name}`}>
      <div class="row">
        <h3><code>{s.name}</code></h3>
        <span class={`status mcp-${s.status.toLowerCase()}`} data-testid="mcp-status">{s.status.toLowerCase()}</span>
        <span class="grow" />
        {canWriteTools(viewer.value) && (
          <button type="button" class="small" disabled={busy.value} onClick={refresh}>{busy.value ? "Refreshing…" : "Refresh"}</button>
        )}
      </div>
      <ErrorNote error={error.value} />
      <dl class="facts">
        <dt>Transport</dt><dd>{s.transport.toLowerCase()} <span class="muted wrap">{s.transport === "STDIO" ? s.command : origin(s.url)}</span></dd>
        {s.statusMessage && <><dt>Status</dt><dd class={`wrap ${s.status === "ERROR" ? "error" : ""}`}>{s.statusMessage}</dd></>}
        <dt>Server</dt><dd>{s.serverName || "—"} {s.serverVersion && <span class="muted">{s.serverVersion}</span>}</dd>
        <dt>Protocol</dt><dd>{s.protocolVersion || "—"}</dd>
        <dt>Refreshed</dt><dd>{when(s.refreshedAt)}</dd>
        {s.headerNames.length > 0 && <><dt>Secret headers</dt><dd>{s.headerNames.map((h) => <code key={h} class="chip">{h}</code>)}</dd></>}
      </dl>
      <table class="grid">
        <thead><tr><th>tool</th><th>description</th><th>enabled</th><th>approval</th><th>risk</th></tr></thead>
        <tbody>
          {s.tools.map((t) => (
            <tr key={t.id} data-tool={t.name}>
              <td><code>{t.name}</code></td>
              <td class="wrap">{t.description}</td>
              <td>{yes(t.enabled)}</td>
              <td>{t.requiresApproval ? "required" : "—"}</td>
              <td><Risk risk={t.risk} /></td>
            </tr>
          ))}
        </tbody>
      </table>
      {!s.tools.length && <p class="muted">No tools listed.</p>}
    </section>
  );
}
