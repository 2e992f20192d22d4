// The fleet board: counts by status, and the task list kept live through `taskUpdates`.
// Filters live in the URL (?status=&agent=), so a view can be bookmarked and shared.
import { useSignal, useSignalEffect } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { TaskActions } from "../actions.jsx";
import { gql, link, subscribe } from "../api.js";
import { ErrorNote, Panel, Status } from "../components.jsx";
import { usd, when } from "../format.js";
import { route, setQuery } from "../router.js";

export const TASKS_QUERY = `query FleetTasks($first: Int!, $after: String, $status: TaskStatus, $agentId: ID) {
  tasks(first: $first, after: $after, status: $status, agentId: $agentId) {
    edges { node { id status statusReason createdAt updatedAt costUsd query agent { id name } } }
    pageInfo { hasNextPage endCursor }
  }
}`;
export const COUNTS_QUERY = `query FleetCounts { taskCounts { agentId status statusReason count } }`;
export const AGENTS_QUERY = `query FleetAgents { agents(first: 100) { edges { node { id name } } } }`;
export const UPDATES = `subscription FleetUpdates($agentId: ID) {
  taskUpdates(agentId: $agentId) { id status statusReason createdAt updatedAt costUsd query agent { id name } }
}`;

// The board's columns: each is a predicate over (status, reason). A status added later
// still shows, under its own name.
const COLUMNS = [
  { key: "running", label: "Running", match: (s) => s === "RUNNING" || s === "RETRYING" },
  { key: "queued", label: "Queued", match: (s) => s === "QUEUED" },
  { key: "approval", label: "Waiting for approval", match: (s) => s === "WAITING_FOR_APPROVAL" },
  { key: "budget", label: "Paused by budget", match: (s, r) => s === "PAUSED" && r === "budget" },
  { key: "paused", label: "Paused", match: (s, r) => s === "PAUSED" && r !== "budget" },
  { key: "failed", label: "Failed", match: (s) => s === "FAILED" },
  { key: "completed", label: "Completed", match: (s) => s === "COMPLETED" },
  { key: "cancelled", label: "Cancelled", match: (s) => s === "CANCELLED" },
];
const FILTER_STATUS = ["QUEUED", "RUNNING", "WAITING_FOR_APPROVAL", "PAUSED", "RETRYING", "COMPLETED", "FAILED", "CANCELLED"];
const PAGE = 50;

export function Fleet() {
  const status = route.value.query.get("status") || "";
  const agent = route.value.query.get("agent") || "";
  const tasks = useSignal([]);
  const counts = useSignal([]);
  const agents = useSignal([]);
  const next = useSignal(null);
  const error = useSignal(null);
  const live = useSignal(false);
  const countsTimer = useRef(0);

  const variables = { first: PAGE, status: status || null, agentId: agent || null };
  const loadCounts = async () => {
    try {
      counts.value = (await gql(COUNTS_QUERY)).taskCounts;
    } catch (err) {
      error.value = err;
    }
  };
  const load = async (after = null) => {
    try {
      const page = (await gql(TASKS_QUERY, { ...variables, after })).tasks;
      const rows = page.edges.map((e) => e.node);
      tasks.value = after ? [...tasks.value, ...rows] : rows;
      next.value = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
      error.value = null;
    } catch (err) {
      error.value = err;
    }
  };
  useEffect(() => {
    gql(AGENTS_QUERY).then((d) => (agents.value = d.agents.edges.map((e) => e.node)), (err) => (error.value = err));
    loadCounts();
  }, []);
  useEffect(() => {
    load();
    const stop = subscribe(
      { query: UPDATES, variables: { agentId: agent || null } },
      {
        next: ({ taskUpdates: task }) => {
          live.value = true;
          const rest = tasks.value.filter((t) => t.id !== task.id);
          const known = rest.length !== tasks.value.length;
          if (!status || task.status === status) {
            tasks.value = known
              ? tasks.value.map((t) => (t.id === task.id ? task : t))
              : [task, ...rest].sort((a, b) => (a.id < b.id ? 1 : -1));
          } else if (known) {
            tasks.value = rest;
          }
          clearTimeout(countsTimer.current);
          countsTimer.current = setTimeout(loadCounts, 300);
        },
        error: (err) => (error.value = err),
      },
    );
    return () => {
      live.value = false;
      stop();
    };
  }, [status, agent]);

  // After an outage, updates sent meanwhile are gone: read the list and counts again.
  const was = useRef(link.peek());
  const reload = useRef(null);
  reload.current = () => {
    load();
    loadCounts();
  };
  useSignalEffect(() => {
    const now = link.value;
    if (now === "connected" && was.current === "reconnecting") reload.current();
    was.current = now;
  });

  const scoped = counts.value.filter((c) => !agent || c.agentId === agent);
  const total = (column) => scoped.filter((c) => column.match(c.status, c.statusReason)).reduce((n, c) => n + c.count, 0);
  const names = Object.fromEntries(agents.value.map((a) => [a.id, a.name]));

  return (
    <div class="page fleet">
      <div class="page-head">
        <h1>Fleet</h1>
        <form class="filters row" onSubmit={(e) => e.preventDefault()}>
          <label>Status
            <select name="status" value={status} onChange={(e) => setQuery({ status: e.currentTarget.value })}>
              <option value="">any</option>
              {FILTER_STATUS.map((s) => <option key={s} value={s}>{s.toLowerCase()}</option>)}
            </select>
          </label>
          <label>Agent
            <select name="agent" value={agent} onChange={(e) => setQuery({ agent: e.currentTarget.value })}>
              <option value="">any</option>
              {agents.value.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
            </select>
          </label>
        </form>
      </div>
      <ErrorNote error={error.value} />
      <Panel title="By status" op={{ query: COUNTS_QUERY, variables: {} }}>
        <div class="counts" data-testid="counts">
          {COLUMNS.map((column) => (
            <div class={`count count-${column.key}`} key={column.key}>
              <span class="count-n">{total(column)}</span>
              <span class="count-label">{column.label}</span>
            </div>
          ))}
        </div>
      </Panel>
      <Panel title={`Tasks${live.value ? " · live" : ""}`} op={{ query: TASKS_QUERY, variables }}>
        <table class="grid" data-testid="tasks">
          <thead><tr><th>task</th><th>agent</th><th>status</th><th>query</th><th class="n">cost</th><th>created</th><th class="actions-col">actions</th></tr></thead>
          <tbody>
            {tasks.value.map((t) => (
              <tr key={t.id} data-task={t.id}>
                <td><a href={`/ui/tasks/${t.id}`}><code>{t.id}</code></a></td>
                <td>{t.agent?.name || names[t.agent?.id] || "—"}</td>
                <td><Status status={t.status} reason={t.statusReason} /></td>
                <td class="wrap clip">{t.query}</td>
                <td class="n">{usd(t.costUsd)}</td>
                <td class="nowrap">{when(t.createdAt)}</td>
                <td class="actions-col"><TaskActions task={t} compact onDone={(u) => (tasks.value = tasks.value.map((x) => (x.id === u.id ? { ...x, ...u } : x)))} /></td>
              </tr>
            ))}
          </tbody>
        </table>
        {!tasks.value.length && (
          <p class="muted">
            {status || agent ? "No tasks match these filters." : "No tasks yet: create an agent and submit a task (GraphiQL, or the README's first session); it shows up here live."}
          </p>
        )}
        {next.value && <button type="button" class="ghost" onClick={() => load(next.value)}>More</button>}
      </Panel>
    </div>
  );
}
