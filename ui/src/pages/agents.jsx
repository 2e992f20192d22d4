// Agents: configuration, recent runs, error rate and this month's spend.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { gql } from "../api.js";
import { ErrorNote, Panel, Status } from "../components.jsx";
import { usd, when } from "../format.js";
import { route, setQuery } from "../router.js";

export const AGENTS_QUERY = `query Agents {
  agents(first: 100) { edges { node {
    id name displayName description model state version tools maxSteps maxConcurrentTasks
    timeoutS systemPrompt config createdAt
    tasks(first: 5) { edges { node { id status statusReason createdAt costUsd } } }
  } } }
  taskCounts { agentId status count }
  spendBreakdown(by: AGENT) { key costUsd calls }
}`;

export function Agents() {
  const focus = route.value.query.get("focus") || "";
  const data = useSignal(null);
  const error = useSignal(null);
  useEffect(() => {
    gql(AGENTS_QUERY).then((d) => (data.value = d), (err) => (error.value = err));
  }, []);
  const d = data.value;
  const agents = d ? d.agents.edges.map((e) => e.node) : [];
  const stats = (id) => {
    const mine = (d?.taskCounts || []).filter((c) => c.agentId === id);
    const all = mine.reduce((n, c) => n + c.count, 0);
    const failed = mine.filter((c) => c.status === "FAILED").reduce((n, c) => n + c.count, 0);
    const ended = mine.filter((c) => ["COMPLETED", "FAILED", "CANCELLED"].includes(c.status)).reduce((n, c) => n + c.count, 0);
    const spend = (d?.spendBreakdown || []).find((s) => s.key === id);
    return { all, failed, rate: ended ? (100 * failed) / ended : null, spend: spend?.costUsd || 0 };
  };
  return (
    <div class="page agents">
      <div class="page-head"><h1>Agents</h1></div>
      <ErrorNote error={error.value} />
      <Panel title="Agents" op={{ query: AGENTS_QUERY, variables: {} }}>
        <table class="grid" data-testid="agents">
          <thead><tr><th>agent</th><th>model</th><th>state</th><th class="n">runs</th><th class="n">error rate</th><th class="n">spend (month)</th><th>recent runs</th></tr></thead>
          <tbody>
            {agents.map((a) => {
              const s = stats(a.id);
              const open = focus === a.id;
              return [
                <tr key={a.id} class={open ? "selected" : ""} onClick={() => setQuery({ focus: open ? "" : a.id })}>
                  <td class="wrap"><strong>{a.name}</strong>{a.displayName && a.displayName !== a.name ? ` · ${a.displayName}` : ""}<br /><code class="muted">{a.id}</code></td>
                  <td class="wrap">{a.model}</td>
                  <td>{a.state.toLowerCase()} · v{a.version}</td>
                  <td class="n">{s.all}</td>
                  <td class="n">{s.rate === null ? "—" : `${s.rate.toFixed(1)}%`}</td>
                  <td class="n">{usd(s.spend)}</td>
                  <td class="wrap">{a.tasks.edges.map(({ node: t }) => (
                    <a key={t.id} href={`/ui/tasks/${t.id}`} class="chip" title={`${t.id} · ${when(t.createdAt)}`} onClick={(e) => e.stopPropagation()}><Status status={t.status} /></a>
                  ))}</td>
                </tr>,
                open && (
                  <tr key={`${a.id}-config`} class="config-row"><td colSpan={7}>
                    <dl class="facts">
                      <dt>Description</dt><dd class="wrap">{a.description || "—"}</dd>
                      <dt>System prompt</dt><dd class="wrap"><pre class="code">{a.systemPrompt || "—"}</pre></dd>
                      <dt>Tools</dt><dd>{a.tools.length ? a.tools.join(", ") : "none"}</dd>
                      <dt>Limits</dt><dd>{a.maxSteps} steps · {a.maxConcurrentTasks ?? "no"} concurrent cap · {a.timeoutS ? `${a.timeoutS} s` : "default"} timeout</dd>
                      <dt>Config</dt><dd class="wrap"><pre class="code">{JSON.stringify(a.config, null, 2)}</pre></dd>
                      <dt>Runs</dt><dd><a href={`/ui/?agent=${a.id}`}>All runs of {a.name} on the fleet board</a></dd>
                    </dl>
                  </td></tr>
                ),
              ];
            })}
          </tbody>
        </table>
        {d && !agents.length && <p class="muted">No agents yet: create one with <code>createAgent</code> in GraphiQL.</p>}
      </Panel>
    </div>
  );
}
