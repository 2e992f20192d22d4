// Costs and budgets: month-to-date spend against each ceiling, and spend by agent, model, day.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { gql } from "../api.js";
import { Bars, ErrorNote, Meter, Panel } from "../components.jsx";
import { usd } from "../format.js";
import { route, setQuery } from "../router.js";

export const BUDGETS_QUERY = `query Budgets {
  budgets(first: 100) { edges { node {
    id scope account agentId window monthlyLimitUsd currentSpendUsd reservedUsd alertState tenant { name }
  } } }
  tenantBudget: budget(scope: TENANT) { window monthlyLimitUsd currentSpendUsd reservedUsd alertState }
}`;
export const SPEND_QUERY = `query Spend($window: String) {
  byAgent: spendBreakdown(by: AGENT, window: $window) { key label costUsd calls unpricedCalls }
  byModel: spendBreakdown(by: MODEL, window: $window) { key label costUsd calls unpricedCalls }
  byDay: spendBreakdown(by: DAY, window: $window) { key label costUsd calls unpricedCalls }
}`;
const PLATFORM_BUDGETS = BUDGETS_QUERY.replace(/\n  tenantBudget:.*\n/, "\n");

const thisMonth = () => new Date().toISOString().slice(0, 7);

export function Costs({ platform }) {
  const window = route.value.query.get("window") || thisMonth();
  const budgets = useSignal([]);
  const tenantBudget = useSignal(null);
  const spend = useSignal(null);
  const error = useSignal(null);
  const budgetsQuery = platform ? PLATFORM_BUDGETS : BUDGETS_QUERY;

  useEffect(() => {
    gql(budgetsQuery).then(
      (d) => {
        budgets.value = d.budgets.edges.map((e) => e.node);
        tenantBudget.value = d.tenantBudget || null;
      },
      (err) => (error.value = err),
    );
  }, []);
  useEffect(() => {
    spend.value = null;
    gql(SPEND_QUERY, { window }).then((d) => (spend.value = d), (err) => (error.value = err));
  }, [window]);

  const rows = [...budgets.value];
  const tb = tenantBudget.value;
  if (tb && !rows.some((b) => b.scope === "TENANT")) rows.unshift({ ...tb, scope: "TENANT", id: "tenant" });
  const agentNames = Object.fromEntries((spend.value?.byAgent || []).map((b) => [b.key, b.label]));
  const bars = (list) => (list || []).map((b) => ({ label: b.label, value: b.costUsd, title: `${b.calls} calls${b.unpricedCalls ? `, ${b.unpricedCalls} unpriced` : ""}` }));

  return (
    <div class="page costs">
      <div class="page-head">
        <h1>Costs and budgets</h1>
        <label class="inline">Month
          <input type="month" name="window" value={window} onChange={(e) => setQuery({ window: e.currentTarget.value })} />
        </label>
      </div>
      <ErrorNote error={error.value} />
      <Panel title="Budgets (month to date)" op={{ query: budgetsQuery, variables: {} }}>
        <table class="grid" data-testid="budgets">
          <thead><tr><th>scope</th><th>applies to</th><th>window</th><th class="n">spent</th><th class="n">reserved</th><th class="n">ceiling</th><th>use</th><th>alert</th></tr></thead>
          <tbody>
            {rows.map((b) => (
              <tr key={b.id || b.scope}>
                <td>{b.scope.toLowerCase()}</td>
                <td class="wrap">{b.tenant?.name || (b.scope === "GLOBAL" ? "every tenant" : "")}{b.account ? ` · ${b.account}` : ""}{b.agentId ? ` · agent ${agentNames[b.agentId] || b.agentId}` : ""}</td>
                <td>{b.window}</td>
                <td class="n">{usd(b.currentSpendUsd)}</td>
                <td class="n">{usd(b.reservedUsd)}</td>
                <td class="n">{b.monthlyLimitUsd === null ? "none" : usd(b.monthlyLimitUsd)}</td>
                <td>{b.monthlyLimitUsd !== null && <Meter spent={b.currentSpendUsd} limit={b.monthlyLimitUsd} state={b.alertState} />}</td>
                <td><span class={`alert alert-${b.alertState.toLowerCase()}`}>{b.alertState.toLowerCase()}</span></td>
              </tr>
            ))}
          </tbody>
        </table>
        {!rows.length && <p class="muted">No budgets set. A tenant admin or billing user sets them with <code>setBudget</code>.</p>}
      </Panel>
      <div class="columns">
        <Panel title={`Spend by agent · ${window}`} op={{ query: SPEND_QUERY, variables: { window } }}>
          <Bars rows={bars(spend.value?.byAgent)} format={usd} empty="No spend this month." />
        </Panel>
        <Panel title={`Spend by model · ${window}`} op={{ query: SPEND_QUERY, variables: { window } }}>
          <Bars rows={bars(spend.value?.byModel)} format={usd} empty="No spend this month." />
        </Panel>
      </div>
      <Panel title={`Spend by day (UTC) · ${window}`} op={{ query: SPEND_QUERY, variables: { window } }}>
        <DayChart days={spend.value?.byDay || []} window={window} />
      </Panel>
    </div>
  );
}

/** Every day of the month up to today (or its end), with zero where nothing was spent. */
function monthDays(window, known) {
  const [year, month] = window.split("-").map(Number);
  const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const today = new Date().toISOString().slice(0, 10);
  const byKey = Object.fromEntries(known.map((d) => [d.key, d]));
  const days = [];
  for (let day = 1; day <= last; day += 1) {
    const key = `${window}-${String(day).padStart(2, "0")}`;
    if (key > today) break;
    days.push(byKey[key] || { key, costUsd: 0, calls: 0 });
  }
  return days;
}

function DayChart({ days: known, window }) {
  if (!known.length) return <p class="muted">No spend this month.</p>;
  const days = monthDays(window, known);
  const max = Math.max(...days.map((d) => d.costUsd)) || 1;
  return (
    <div class="daychart" role="img" aria-label="Spend by day">
      {days.map((d) => (
        <div class="day" key={d.key} title={`${d.key}: ${usd(d.costUsd)}, ${d.calls} calls`}>
          <span class="day-value">{d.costUsd ? usd(d.costUsd) : ""}</span>
          <span class="day-bar" style={{ height: d.costUsd ? `${Math.max(2, (100 * d.costUsd) / max)}%` : "1px" }} />
          <span class="day-label">{d.key.slice(5)}</span>
        </div>
      ))}
    </div>
  );
}
