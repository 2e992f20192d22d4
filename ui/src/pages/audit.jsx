// The audit trail, newest first, with filters kept in the URL.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { gql } from "../api.js";
import { ErrorNote, Panel } from "../components.jsx";
import { when } from "../format.js";
import { route, setQuery } from "../router.js";

export const AUDIT_QUERY = `query Audit($first: Int!, $after: String, $action: String, $tenant: String) {
  auditEvents(first: $first, after: $after, action: $action, tenant: $tenant) {
    edges { node { id createdAt actor actorKind role tenantId action resource outcome requestId taskId details } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const ACTIONS = ["task.submit", "task.cancel", "task.pause", "task.resume", "task.retry", "agent.create", "agent.update", "token.create", "token.revoke", "budget.set", "auth.login", "permission.denied"];

export function Audit({ platform }) {
  const q = route.value.query;
  const action = q.get("action") || "";
  const tenant = q.get("tenant") || "";
  const outcome = q.get("outcome") || "";
  const text = q.get("q") || "";
  const events = useSignal([]);
  const next = useSignal(null);
  const error = useSignal(null);
  const variables = { first: 30, action: action || null, tenant: tenant || null };

  const load = async (after = null) => {
    try {
      const page = (await gql(AUDIT_QUERY, { ...variables, after })).auditEvents;
      const rows = page.edges.map((e) => e.node);
      events.value = after ? [...events.value, ...rows] : rows;
      next.value = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
      error.value = null;
    } catch (err) {
      error.value = err;
    }
  };
  useEffect(() => {
    load();
  }, [action, tenant]);

  const needle = text.toLowerCase();
  const shown = events.value.filter(
    (e) => (!outcome || e.outcome === outcome) &&
      (!needle || `${e.actor} ${e.resource} ${e.taskId || ""} ${e.requestId || ""} ${JSON.stringify(e.details)}`.toLowerCase().includes(needle)),
  );
  return (
    <div class="page audit">
      <div class="page-head">
        <h1>Audit log</h1>
        <form class="filters row" onSubmit={(e) => e.preventDefault()}>
          <label>Action
            <input name="action" list="audit-actions" value={action} placeholder="any" onChange={(e) => setQuery({ action: e.currentTarget.value.trim() })} />
            <datalist id="audit-actions">{ACTIONS.map((a) => <option key={a} value={a} />)}</datalist>
          </label>
          <label>Outcome
            <select name="outcome" value={outcome} onChange={(e) => setQuery({ outcome: e.currentTarget.value })}>
              <option value="">any</option><option>success</option><option>denied</option><option>failure</option>
            </select>
          </label>
          {platform && (
            <label>Tenant
              <input name="tenant" value={tenant} placeholder="any" onChange={(e) => setQuery({ tenant: e.currentTarget.value.trim() })} />
            </label>
          )}
          <label>Search
            <input name="q" type="search" value={text} placeholder="actor, resource, reason…" onInput={(e) => setQuery({ q: e.currentTarget.value })} />
          </label>
        </form>
      </div>
      <ErrorNote error={error.value} />
      <Panel title="Events" op={{ query: AUDIT_QUERY, variables }}>
        <table class="grid" data-testid="audit">
          <thead><tr><th>time</th><th>actor</th><th>action</th><th>resource</th><th>outcome</th><th>details</th></tr></thead>
          <tbody>
            {shown.map((e) => (
              <tr key={e.id} data-action={e.action}>
                <td class="nowrap">{when(e.createdAt)}</td>
                <td class="wrap">{e.actor}<br /><span class="muted">{e.role || e.actorKind}</span></td>
                <td><code>{e.action}</code></td>
                <td class="wrap">{e.taskId ? <a href={`/ui/tasks/${e.taskId}`}>{e.resource || e.taskId}</a> : e.resource.startsWith("tsk_") ? <a href={`/ui/tasks/${e.resource}`}>{e.resource}</a> : e.resource}</td>
                <td><span class={`outcome outcome-${e.outcome}`}>{e.outcome}</span></td>
                <td class="wrap details">{e.details?.reason ? <span data-testid="reason">“{e.details.reason}”</span> : null} {Object.entries(e.details || {}).filter(([k]) => k !== "reason").map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(" · ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {!shown.length && <p class="muted">No events match.</p>}
        {next.value && <button type="button" class="ghost" onClick={() => load(next.value)}>More</button>}
      </Panel>
    </div>
  );
}
