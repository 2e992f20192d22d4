// Tenants: who they are, their phase, their budget and this month's spend.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { gql } from "../api.js";
import { ErrorNote, Meter, Panel } from "../components.jsx";
import { usd, when } from "../format.js";

export const TENANTS_QUERY = `query Tenants {
  tenants(first: 100) { edges { node { id name displayName email team phase createdAt suspendedAt } } }
  budgets(first: 100) { edges { node { scope monthlyLimitUsd currentSpendUsd alertState tenant { id } } } }
  taskCounts { agentId status count }
}`;

export function Tenants({ platform }) {
  const data = useSignal(null);
  const error = useSignal(null);
  useEffect(() => {
    gql(TENANTS_QUERY).then((d) => (data.value = d), (err) => (error.value = err));
  }, []);
  const d = data.value;
  const tenants = d ? d.tenants.edges.map((e) => e.node) : [];
  const budgetOf = (id) => (d?.budgets.edges || []).map((e) => e.node).find((b) => b.scope === "TENANT" && b.tenant?.id === id);
  const runs = (d?.taskCounts || []).reduce((n, c) => n + c.count, 0);
  return (
    <div class="page tenants">
      <div class="page-head"><h1>Tenants</h1></div>
      <ErrorNote error={error.value} />
      <Panel title="Tenants" op={{ query: TENANTS_QUERY, variables: {} }}>
        <table class="grid" data-testid="tenants">
          <thead><tr><th>tenant</th><th>contact</th><th>phase</th><th>created</th><th class="n">spend (month)</th><th class="n">ceiling</th><th>use</th></tr></thead>
          <tbody>
            {tenants.map((t) => {
              const b = budgetOf(t.id);
              return (
                <tr key={t.id}>
                  <td class="wrap"><strong>{t.name}</strong>{t.displayName ? ` · ${t.displayName}` : ""}<br /><code class="muted">{t.id}</code></td>
                  <td class="wrap">{t.email || "—"}{t.team ? ` · ${t.team}` : ""}</td>
                  <td><span class={`phase phase-${t.phase.toLowerCase()}`}>{t.phase.toLowerCase()}</span></td>
                  <td class="nowrap">{when(t.createdAt)}</td>
                  <td class="n">{b ? usd(b.currentSpendUsd) : "—"}</td>
                  <td class="n">{b?.monthlyLimitUsd != null ? usd(b.monthlyLimitUsd) : "none"}</td>
                  <td>{b?.monthlyLimitUsd != null && <Meter spent={b.currentSpendUsd} limit={b.monthlyLimitUsd} state={b.alertState} />}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        <p class="muted">{platform ? `${tenants.length} tenants, ${runs} runs in all.` : `${runs} runs in your tenant.`} Spend is shown where the tenant has a budget row; the Costs page breaks it down.</p>
      </Panel>
    </div>
  );
}
