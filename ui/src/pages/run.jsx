// The live run view: a task's trace over `taskEvents`, merged by seq (no duplicate, no gap),
// resumed from the last seq after any reconnection.
import { useComputed, useSignal, useSignalEffect } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { ApprovalActions, TaskActions } from "../actions.jsx";
import { gql, link, subscribe } from "../api.js";
import { ErrorNote, Meter, Panel, Status } from "../components.jsx";
import { ms, num, pct, usd, when } from "../format.js";
import { route, setQuery } from "../router.js";

export const TASK_QUERY = `query RunTask($id: ID!) {
  task(id: $id) {
    id status statusReason isTerminal query output error attempt costUsd
    createdAt startedAt finishedAt workerId
    agent { id name model }
    pendingApproval { id status tool arguments risk preview expiresAt }
  }
}`;
export const BUDGET_QUERY = `query TenantBudget {
  budget(scope: TENANT) { window monthlyLimitUsd currentSpendUsd reservedUsd alertState }
}`;
export const EVENTS = `subscription RunEvents($taskId: ID!, $afterSeq: Int) {
  taskEvents(taskId: $taskId, afterSeq: $afterSeq) {
    id seq kind model inputTokens outputTokens latencyMs costUsd createdAt payload payloadTruncated
  }
}`;
const STEPS_QUERY = `query RunSteps($id: ID!, $afterSeq: Int, $first: Int) {
  task(id: $id) { steps(afterSeq: $afterSeq, first: $first) {
    id seq kind model inputTokens outputTokens latencyMs costUsd createdAt payload payloadTruncated
  } }
}`;
const FULL_PAYLOAD = `query StepPayload($id: ID!) { node(id: $id) { ... on Step { fullPayload } } }`;

export function RunView({ id }) {
  const task = useSignal(null);
  const error = useSignal(null);
  const steps = useSignal([]); // sorted by seq, gapless from 1
  const stream = useSignal("connecting"); // connecting | live | complete | error
  const budget = useSignal(null);
  const budgetError = useSignal(null);
  const full = useSignal({});
  const restart = useSignal(0);
  const state = useRef({ bySeq: new Map(), last: 0, payload: null }).current;

  const selected = useComputed(() => Number(route.value.query.get("step")) || null);
  const waterfall = useComputed(() => route.value.query.get("view") === "waterfall");

  const loadTask = async () => {
    try {
      task.value = (await gql(TASK_QUERY, { id })).task;
    } catch (err) {
      error.value = err;
    }
  };
  const loadBudget = async () => {
    try {
      budget.value = (await gql(BUDGET_QUERY)).budget;
      budgetError.value = null;
    } catch (err) {
      budgetError.value = err;
    }
  };
  useEffect(() => {
    loadTask();
    loadBudget();
  }, [id]);

  // Merge one step: ignore what we already hold, fill a hole from the API before going on.
  const publish = () => {
    steps.value = [...state.bySeq.values()].sort((a, b) => a.seq - b.seq);
  };
  const accept = (step) => {
    if (state.bySeq.has(step.seq)) return;
    state.bySeq.set(step.seq, step);
    while (state.bySeq.has(state.last + 1)) state.last += 1;
    if (state.payload) state.payload.variables.afterSeq = state.last;
    if (step.kind === "STATUS_CHANGE" && step.payload?.to && task.value) {
      task.value = { ...task.value, status: step.payload.to.toUpperCase() };
      taskSoon(); // the rest (reason, output, worker) from the task itself
    }
    if (step.costUsd) budgetSoon();
  };
  const fillGap = async (upTo) => {
    const from = state.last;
    const data = await gql(STEPS_QUERY, { id, afterSeq: from, first: Math.min(1000, upTo - from) });
    for (const step of data.task.steps) accept(step);
    publish();
  };
  const taskTimer = useRef(0);
  const taskSoon = () => {
    clearTimeout(taskTimer.current);
    taskTimer.current = setTimeout(loadTask, 300);
  };
  const budgetTimer = useRef(0);
  const budgetSoon = () => {
    clearTimeout(budgetTimer.current);
    budgetTimer.current = setTimeout(loadBudget, 800);
  };

  useEffect(() => {
    // graphql-ws re-sends this object on reconnection: `accept` keeps afterSeq current.
    const payload = { query: EVENTS, variables: { taskId: id, afterSeq: state.last } };
    state.payload = payload;
    stream.value = "connecting";
    let retryTimer = 0;
    const stop = subscribe(payload, {
      next: ({ taskEvents: step }) => {
        stream.value = "live";
        if (step.seq > state.last + 1 && !state.bySeq.has(step.seq - 1)) {
          state.bySeq.set(step.seq, step);
          fillGap(step.seq - 1).catch((err) => (error.value = err));
          return;
        }
        accept(step);
        publish();
      },
      error: (err) => {
        stream.value = "error";
        error.value = err;
        if (err.code === "SLOW_CONSUMER") retryTimer = setTimeout(() => (restart.value += 1), 500);
      },
      complete: () => {
        stream.value = "complete";
        loadTask();
        loadBudget();
      },
    });
    return () => {
      clearTimeout(retryTimer);
      stop();
    };
  }, [id, restart.value]);

  // Deep link: the selected step scrolls into view once it exists.
  useSignalEffect(() => {
    const seq = selected.value;
    if (seq && steps.value.length >= seq) {
      requestAnimationFrame(() => document.getElementById(`step-${seq}`)?.scrollIntoView({ block: "nearest" }));
    }
  });

  const select = (seq) => setQuery({ step: seq || "" });
  useEffect(() => {
    const onKey = (event) => {
      if (event.target.closest?.("input, textarea, select, dialog") || event.metaKey || event.ctrlKey || event.altKey) return;
      const list = steps.value;
      if (!list.length) return;
      const index = list.findIndex((s) => s.seq === selected.value);
      const go = (i) => {
        event.preventDefault();
        select(list[Math.max(0, Math.min(list.length - 1, i))].seq);
      };
      switch (event.key) {
        case "j": case "ArrowDown": return go(index < 0 ? 0 : index + 1);
        case "k": case "ArrowUp": return go(index < 0 ? 0 : index - 1);
        case "g": case "Home": return go(0);
        case "G": case "End": return go(list.length - 1);
        case "Escape": if (selected.value) { event.preventDefault(); select(null); } return;
        case "w": event.preventDefault(); setQuery({ view: waterfall.value ? "" : "waterfall" }); return;
        default:
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  // After an action or a decision: the task as the server now has it; a live one streams on.
  const changed = (updated) => {
    if (!updated) return;
    task.value = { ...task.value, ...updated };
    if (!updated.isTerminal) restart.value += 1;
  };
  const t = task.value;
  const runCost = steps.value.reduce((sum, s) => sum + (s.costUsd || 0), 0);
  const b = budget.value;
  const remaining = b && b.monthlyLimitUsd !== null ? b.monthlyLimitUsd - b.currentSpendUsd - b.reservedUsd : null;
  const step = steps.value.find((s) => s.seq === selected.value);
  const sync =
    link.value === "reconnecting" && stream.value !== "complete"
      ? { cls: "warn", text: `reconnecting… (resuming after seq ${state.last})` }
      : stream.value === "complete"
        ? { cls: "ok", text: `complete @ seq ${state.last}` }
        : stream.value === "live"
          ? { cls: "ok", text: `in sync @ seq ${state.last}` }
          : stream.value === "error"
            ? { cls: "bad", text: `stopped @ seq ${state.last}` }
            : { cls: "muted", text: "connecting…" };

  return (
    <div class="page run">
      <div class="page-head">
        <h1>
          Run <code>{id}</code>
        </h1>
        <span class={`sync sync-${sync.cls}`} data-testid="sync" role="status">{sync.text}</span>
      </div>
      <ErrorNote error={error.value} />
      <Panel title="Task" op={{ query: TASK_QUERY, variables: { id } }} actions={<TaskActions task={t} onDone={changed} />}>
        {t ? (
          <dl class="facts">
            <dt>Status</dt><dd data-testid="task-status"><Status status={t.status} reason={t.statusReason} /></dd>
            <dt>Agent</dt><dd>{t.agent ? <a href={`/ui/agents?focus=${t.agent.id}`}>{t.agent.name}</a> : "—"} <span class="muted">{t.agent?.model}</span></dd>
            <dt>Attempt</dt><dd>{t.attempt}</dd>
            <dt>Created</dt><dd>{when(t.createdAt)}</dd>
            <dt>Finished</dt><dd>{when(t.finishedAt)}</dd>
            <dt>Worker</dt><dd class="wrap">{t.workerId || "—"}</dd>
            <dt>Query</dt><dd class="wrap">{t.query}</dd>
            {t.output && <><dt>Output</dt><dd class="wrap">{t.output}</dd></>}
            {t.error && <><dt>Error</dt><dd class="wrap error">{t.error}</dd></>}
          </dl>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </Panel>
      {t?.status === "WAITING_FOR_APPROVAL" && t.pendingApproval && (
        <ApprovalPanel request={t.pendingApproval} onDone={({ approvalRequest, task: updated }) => changed({ ...updated, pendingApproval: { ...t.pendingApproval, ...approvalRequest } })} />
      )}
      <Panel title="Cost and budget" op={{ query: BUDGET_QUERY, variables: {} }}>
        <div class="cost-line" data-testid="cost">
          <span>This run: <strong>{usd(runCost)}</strong></span>
          {b ? (
            b.monthlyLimitUsd === null ? (
              <span>Tenant this month ({b.window}): {usd(b.currentSpendUsd)}, no ceiling</span>
            ) : (
              <span class="grow">
                Tenant remaining this month: <strong>{usd(remaining)}</strong> of {usd(b.monthlyLimitUsd)}
                {" "}(this run is {pct(runCost, b.monthlyLimitUsd).toFixed(1)}% of the ceiling)
                <Meter spent={b.currentSpendUsd} limit={b.monthlyLimitUsd} state={b.alertState} />
              </span>
            )
          ) : (
            <span class="muted">{budgetError.value ? "No tenant budget for this caller" : ""}</span>
          )}
        </div>
      </Panel>
      <Panel
        title={`Trace (${steps.value.length} steps)`}
        op={{ query: EVENTS, variables: { taskId: id, afterSeq: 0 } }}
        actions={
          <button type="button" class="ghost" aria-pressed={waterfall.value} onClick={() => setQuery({ view: waterfall.value ? "" : "waterfall" })}>
            {waterfall.value ? "Table" : "Waterfall"} <kbd>w</kbd>
          </button>
        }
      >
        <p class="muted keys">Keys: <kbd>j</kbd>/<kbd>k</kbd> or arrows move, <kbd>g</kbd>/<kbd>G</kbd> first/last, <kbd>Esc</kbd> closes the detail, <kbd>w</kbd> waterfall.</p>
        {waterfall.value ? <Waterfall steps={steps.value} selected={selected.value} onSelect={select} /> : <StepTable steps={steps.value} selected={selected.value} onSelect={select} />}
      </Panel>
      {step && <StepDrawer step={step} full={full} taskId={id} onClose={() => select(null)} />}
    </div>
  );
}

/** The tool call the task waits on, with Approve / Reject (the inbox shares the buttons). */
function ApprovalPanel({ request: r, onDone }) {
  return (
    <Panel title="Waiting for approval" actions={<ApprovalActions request={r} onDone={onDone} />}>
      <dl class="facts" data-testid="approval">
        <dt>Tool</dt><dd><code>{r.tool}</code></dd>
        <dt>Risk</dt><dd><span class={`risk risk-${r.risk}`}>{r.risk}</span></dd>
        <dt>Call</dt><dd class="wrap">{r.preview}</dd>
        <dt>Arguments</dt><dd><pre class="code">{JSON.stringify(r.arguments, null, 2)}</pre></dd>
        <dt>Expires</dt><dd>{r.expiresAt ? when(r.expiresAt) : "when decided (no expiry)"}</dd>
        <dt>Request</dt><dd><code>{r.id}</code></dd>
      </dl>
    </Panel>
  );
}

function StepTable({ steps, selected, onSelect }) {
  return (
    <table class="grid steps" data-testid="steps">
      <thead>
        <tr><th class="n">seq</th><th>kind</th><th>model / summary</th><th class="n">tokens in/out</th><th class="n">latency</th><th class="n">cost</th><th>at</th></tr>
      </thead>
      <tbody>
        {steps.map((s) => (
          <tr key={s.seq} id={`step-${s.seq}`} data-seq={s.seq} class={s.seq === selected ? "selected" : ""}
            aria-selected={s.seq === selected} onClick={() => onSelect(s.seq)} tabIndex={-1}>
            <td class="n">{s.seq}</td>
            <td><span class={`kind kind-${s.kind.toLowerCase()}`}>{s.kind.replace("_", " ").toLowerCase()}</span></td>
            <td class="wrap">{summary(s)}</td>
            <td class="n">{s.inputTokens !== null ? `${num(s.inputTokens)} / ${num(s.outputTokens)}` : "—"}</td>
            <td class="n">{ms(s.latencyMs)}</td>
            <td class="n">{s.costUsd !== null ? usd(s.costUsd) : "—"}</td>
            <td class="nowrap">{when(s.createdAt).slice(11)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function summary(step) {
  const p = step.payload || {};
  switch (step.kind) {
    case "STATUS_CHANGE": return `${p.from ? `${p.from} → ` : ""}${p.to}${p.reason ? ` · ${p.reason}` : ""}`;
    case "PROVIDER_CALL": {
      const calls = (p.toolCalls || []).map((c) => `${c.name}()`).join(", ");
      const said = typeof p.response === "string" ? p.response.slice(0, 80) : "";
      return `${step.model || "model"}${said ? ` · “${said}”` : ""}${calls ? ` → ${calls}` : ""}`;
    }
    case "TOOL_CALL": return `${p.tool || p.name || "tool"}(${p.arguments ? JSON.stringify(p.arguments).slice(0, 60) : ""})${p.output !== undefined ? ` = ${String(p.output).slice(0, 40)}` : ""}`;
    case "AUDIT": return `${p.action} · ${p.outcome}`;
    default: return p.text ? String(p.text).slice(0, 80) : step.model || "";
  }
}

function Waterfall({ steps, selected, onSelect }) {
  if (!steps.length) return <p class="muted">No steps yet.</p>;
  const spans = steps.map((s) => {
    const end = Date.parse(s.createdAt);
    return { s, start: end - (s.latencyMs || 0), end };
  });
  const t0 = Math.min(...spans.map((x) => x.start));
  const total = Math.max(1, Math.max(...spans.map((x) => x.end)) - t0);
  return (
    <div class="waterfall" data-testid="waterfall">
      <div class="wf-scale"><span>0</span><span>{ms(total)}</span></div>
      {spans.map(({ s, start, end }) => (
        <button type="button" key={s.seq} id={`step-${s.seq}`} data-seq={s.seq} class={`wf-row ${s.seq === selected ? "selected" : ""}`} onClick={() => onSelect(s.seq)}>
          <span class="wf-label">{s.seq} · {s.kind.replace("_", " ").toLowerCase()}</span>
          <span class="wf-track">
            <span class={`wf-bar kind-${s.kind.toLowerCase()}`} style={{ left: `${(100 * (start - t0)) / total}%`, width: `${Math.max(0.6, (100 * (end - start)) / total)}%` }} />
          </span>
          <span class="wf-value">{ms(s.latencyMs)}</span>
        </button>
      ))}
    </div>
  );
}

const SECTIONS = {
  PROVIDER_CALL: [["Prompt", ["prompt"]], ["Response", ["response", "toolCalls", "error"]]],
  TOOL_CALL: [["Tool arguments", ["arguments"]], ["Tool result", ["output", "result", "error"]]],
};

function StepDrawer({ step, full, taskId, onClose }) {
  const payload = full.value[step.id] || step.payload || {};
  const loadFull = async () => {
    const data = await gql(FULL_PAYLOAD, { id: step.id });
    full.value = { ...full.value, [step.id]: data.node.fullPayload };
  };
  const link = `${location.origin}/ui/tasks/${taskId}?step=${step.seq}`;
  return (
    <aside class="drawer" aria-label={`Step ${step.seq}`} data-testid="drawer">
      <header class="panel-head">
        <h2>Step {step.seq} · {step.kind.replace("_", " ").toLowerCase()}</h2>
        <button type="button" class="ghost" onClick={onClose} aria-label="Close">✕</button>
      </header>
      <dl class="facts">
        <dt>ID</dt><dd><code>{step.id}</code></dd>
        <dt>Model</dt><dd>{step.model || "—"}</dd>
        <dt>Tokens</dt><dd>{step.inputTokens !== null ? `${num(step.inputTokens)} in / ${num(step.outputTokens)} out` : "—"}</dd>
        <dt>Latency</dt><dd>{ms(step.latencyMs)}</dd>
        <dt>Cost</dt><dd>{step.costUsd !== null ? usd(step.costUsd) : "—"}</dd>
        <dt>At</dt><dd>{when(step.createdAt)}</dd>
        <dt>Link</dt><dd class="wrap"><a href={link}>{link}</a></dd>
      </dl>
      {step.payloadTruncated && !full.value[step.id] && (
        <p><button type="button" onClick={loadFull}>Load the full payload</button> <span class="muted">(this step is large; a preview is shown)</span></p>
      )}
      {(SECTIONS[step.kind] || []).map(([title, keys]) => {
        const found = keys.filter((k) => payload[k] !== undefined && payload[k] !== null && payload[k] !== "");
        return found.length ? (
          <section key={title}>
            <h3>{title}</h3>
            {found.map((k) => <pre key={k} class="code">{typeof payload[k] === "string" ? payload[k] : JSON.stringify(payload[k], null, 2)}</pre>)}
          </section>
        ) : null;
      })}
      <h3>Payload</h3>
      <pre class="code">{JSON.stringify(payload, null, 2)}</pre>
    </aside>
  );
}
