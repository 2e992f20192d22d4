// The approvals inbox: tool calls held for a human's decision, newest first, kept live by
// `approvalUpdates` (a new request appears, a decided one leaves the pending view).
import { useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { ApprovalActions } from "../actions.jsx";
import { gql, subscribe } from "../api.js";
import { ErrorNote, Panel, Status } from "../components.jsx";
import { span, when } from "../format.js";
import { route, setQuery } from "../router.js";

const FIELDS = `id status tool arguments risk preview expiresAt createdAt decidedBy decidedAt reason taskId
    agent { id name } task { id status }`;
export const APPROVALS_QUERY = `query Approvals($first: Int!, $after: String, $status: ApprovalStatus) {
  approvalRequests(first: $first, after: $after, status: $status) {
    edges { node { ${FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
export const APPROVAL_UPDATES = `subscription ApprovalUpdates { approvalUpdates { ${FIELDS} } }`;
const STATUSES = ["PENDING", "APPROVED", "REJECTED", "EXPIRED", "CANCELLED"];
const PAGE = 50;
// Requests opened by a worker in another process reach this server's subscription only
// through Redis; on a single SQLite process set-up without it, a slow re-read catches them.
const REREAD_MS = 20_000;

const newestFirst = (a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1);

export function Approvals() {
  const wanted = route.value.query.get("status") || "PENDING"; // ?status=ALL: every status
  const status = wanted === "ALL" ? "" : wanted;
  const requests = useSignal(null); // null until the first read
  const next = useSignal(null);
  const error = useSignal(null);
  const now = useSignal(Date.now());
  // Requests this page saw decided: a re-read that started before the decision must not
  // bring them back into the pending view.
  const decided = useRef(new Set()).current;
  const generation = useRef(0); // a read for a filter no longer shown is dropped
  const variables = { first: PAGE, status: status || null };
  const shows = (r) => !status || (r.status === status && !(status === "PENDING" && decided.has(r.id)));

  const load = async (after = null) => {
    const mine = generation.current;
    try {
      const page = (await gql(APPROVALS_QUERY, { ...variables, after })).approvalRequests;
      if (mine !== generation.current) return;
      const rows = page.edges.map((e) => e.node).filter(shows);
      const held = requests.value || [];
      requests.value = after ? [...held, ...rows.filter((r) => !held.some((x) => x.id === r.id))] : rows;
      next.value = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
      error.value = null;
    } catch (err) {
      error.value = err;
    }
  };
  const upsert = (request) => {
    if (request.status !== "PENDING") decided.add(request.id);
    const rest = (requests.value || []).filter((r) => r.id !== request.id);
    requests.value = shows(request) ? [...rest, request].sort(newestFirst) : rest;
  };

  useEffect(() => {
    generation.current += 1;
    requests.value = null;
    load();
    const stop = subscribe({ query: APPROVAL_UPDATES }, {
      next: ({ approvalUpdates }) => upsert(approvalUpdates),
      error: (err) => (error.value = err),
    });
    const reread = setInterval(() => load(), REREAD_MS);
    const tick = setInterval(() => (now.value = Date.now()), 5_000);
    return () => {
      stop();
      clearInterval(reread);
      clearInterval(tick);
    };
  }, [status]);

  const list = requests.value || [];
  return (
    <div class="page approvals">
      <div class="page-head">
        <h1>Approvals</h1>
        <form class="filters row" onSubmit={(e) => e.preventDefault()}>
          <label>Status
            <select name="status" value={status} onChange={(e) => setQuery({ status: e.currentTarget.value === "PENDING" ? "" : e.currentTarget.value || "ALL" })}>
              {STATUSES.map((s) => <option key={s} value={s}>{s.toLowerCase()}</option>)}
              <option value="">any</option>
            </select>
          </label>
        </form>
      </div>
      <ErrorNote error={error.value} />
      <Panel title={status === "PENDING" ? `Waiting for a decision (${list.length}${next.value ? "+" : ""})` : "Requests"} op={{ query: APPROVALS_QUERY, variables }}>
        <table class="grid" data-testid="approvals">
          <thead>
            <tr><th>tool</th><th>risk</th><th>call</th><th>task</th><th>age</th><th>{status === "PENDING" ? "expires" : "decision"}</th><th class="actions-col" /></tr>
          </thead>
          <tbody>
            {list.map((r) => (
              <tr key={r.id} data-approval={r.id}>
                <td><code>{r.tool}</code></td>
                <td><span class={`risk risk-${r.risk}`}>{r.risk}</span></td>
                <td class="wrap clip" title={JSON.stringify(r.arguments, null, 2)}>{r.preview}</td>
                <td class="wrap">
                  <a href={`/ui/tasks/${r.taskId}`}>{r.taskId}</a>
                  <br /><span class="muted">{r.agent?.name}</span> {r.task && <Status status={r.task.status} />}
                </td>
                <td class="nowrap" title={when(r.createdAt)}>{span(r.createdAt, now.value)}</td>
                <td class="nowrap">{r.status === "PENDING" ? expiry(r, now.value) : decision(r)}</td>
                <td class="actions-col">
                  <ApprovalActions request={r} compact onDone={({ approvalRequest }) => upsert({ ...r, ...approvalRequest })} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {requests.value === null && !error.value && <p class="muted">Loading…</p>}
        {requests.value?.length === 0 && <p class="muted">{status === "PENDING" ? "Nothing waits for a decision." : "No requests match."}</p>}
        {next.value && <button type="button" class="ghost" onClick={() => load(next.value)}>More</button>}
      </Panel>
    </div>
  );
}

function expiry(r, now) {
  if (!r.expiresAt) return <span class="muted">no expiry</span>;
  const due = Date.parse(r.expiresAt) <= now;
  return <span title={when(r.expiresAt)} class={due ? "error" : ""}>{due ? "due" : `in ${span(r.expiresAt, now)}`}</span>;
}

function decision(r) {
  return (
    <span title={r.reason || undefined}>
      <span class={`outcome outcome-${r.status === "APPROVED" ? "success" : "denied"}`}>{r.status.toLowerCase()}</span>
      {r.decidedBy && <span class="muted small"> by {r.decidedBy}</span>}
      {r.reason && <><br /><span class="small">“{r.reason}”</span></>}
    </span>
  );
}
