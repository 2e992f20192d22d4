import { useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { statusClass } from "./format.js";

/** The exact operation and variables behind a panel, ready to paste into GraphiQL. */
export function asGraphQL({ query, variables }) {
  const vars = variables && Object.keys(variables).length ? JSON.stringify(variables, null, 2) : "";
  return vars ? `${query.trim()}\n\n# variables\n${vars}\n` : `${query.trim()}\n`;
}

export function Panel({ title, op, actions, children, id }) {
  const open = useSignal(false);
  return (
    <section class="panel" id={id} aria-label={title}>
      <header class="panel-head">
        <h2>{title}</h2>
        <div class="panel-tools">
          {actions}
          {op && (
            <button type="button" class="ghost" onClick={() => (open.value = true)}>
              Copy as GraphQL
            </button>
          )}
        </div>
      </header>
      {children}
      {open.value && op && <CopyDialog text={asGraphQL(op)} onClose={() => (open.value = false)} />}
    </section>
  );
}

function Modal({ title, onClose, children, label }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    dialog.showModal();
    const close = () => onClose();
    dialog.addEventListener("close", close);
    return () => dialog.removeEventListener("close", close);
  }, []);
  return (
    <dialog ref={ref} class="modal" aria-label={label || title}>
      <h3>{title}</h3>
      {children}
    </dialog>
  );
}

export function CopyDialog({ text, onClose }) {
  const copied = useSignal("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      copied.value = "Copied";
    } catch {
      copied.value = "Select the text and copy it";
    }
  };
  return (
    <Modal title="GraphQL behind this panel" onClose={onClose}>
      <textarea class="code" readOnly rows={14} value={text} aria-label="GraphQL operation" />
      <div class="row">
        <button type="button" onClick={copy}>Copy</button>
        <a href="/graphql" target="_blank" rel="noopener">Open GraphiQL</a>
        <span class="muted" role="status">{copied.value}</span>
        <span class="grow" />
        <button type="button" class="ghost" onClick={onClose}>Close</button>
      </div>
    </Modal>
  );
}

/**
 * Asks for the reason an operator action carries (it lands in the audit log; required unless
 * `action.reasonOptional`). With `args` (approving a tool call) it also offers them as JSON
 * to edit; `onConfirm` gets the edited value only when it differs.
 */
export function ReasonDialog({ action, subject, args, onConfirm, onClose }) {
  const reason = useSignal("");
  const original = args === undefined ? "" : JSON.stringify(args, null, 2);
  const json = useSignal(original);
  const busy = useSignal(false);
  const error = useSignal("");
  const submit = async (event) => {
    event.preventDefault();
    if (!reason.value.trim() && !action.reasonOptional) {
      error.value = "Say why: the reason goes into the audit log.";
      return;
    }
    let edited;
    if (args !== undefined && json.value.trim() !== original.trim()) {
      try {
        edited = JSON.parse(json.value);
      } catch (err) {
        error.value = `The arguments are not valid JSON: ${err.message}`;
        return;
      }
    }
    busy.value = true;
    error.value = "";
    try {
      await onConfirm(reason.value.trim(), edited);
      onClose();
    } catch (err) {
      error.value = err.message;
      busy.value = false;
    }
  };
  return (
    <Modal title={`${action.label} ${subject}`} onClose={onClose}>
      <form onSubmit={submit} class="stack">
        <label>
          Reason ({action.reasonOptional ? "optional; " : ""}recorded in the audit log)
          <textarea
            name="reason"
            rows={3}
            maxLength={500}
            value={reason.value}
            onInput={(e) => (reason.value = e.currentTarget.value)}
            autoFocus
          />
        </label>
        {args !== undefined && (
          <label>
            Arguments (JSON; edit to run the call with others)
            <textarea name="arguments" class="code" rows={6} value={json.value} onInput={(e) => (json.value = e.currentTarget.value)} />
          </label>
        )}
        {error.value && <p class="error" role="alert">{error.value}</p>}
        <div class="row">
          <button type="submit" class={action.danger ? "danger" : ""} disabled={busy.value}>
            {action.label}
          </button>
          <button type="button" class="ghost" onClick={onClose}>Keep as is</button>
        </div>
      </form>
    </Modal>
  );
}

export const Status = ({ status, reason }) => (
  <span class={statusClass(status)} title={reason || undefined}>
    {String(status || "").toLowerCase()}
    {reason && status === "PAUSED" && reason !== "paused" ? ` (${reason})` : ""}
  </span>
);

export const ErrorNote = ({ error }) =>
  error ? (
    <p class="error" role="alert">
      {error.code ? <code>{error.code}</code> : null} {error.message || String(error)}
    </p>
  ) : null;

/** Horizontal bars: `rows` of `{label, value, title}`, scaled to the largest. */
export function Bars({ rows, format, empty = "Nothing yet." }) {
  if (!rows.length) return <p class="muted">{empty}</p>;
  const max = Math.max(...rows.map((r) => r.value), 0) || 1;
  return (
    <ul class="bars">
      {rows.map((r) => (
        <li key={r.label} title={r.title}>
          <span class="bar-label">{r.label}</span>
          <span class="bar-track">
            <span class="bar-fill" style={{ width: `${(100 * r.value) / max}%` }} />
          </span>
          <span class="bar-value">{format(r.value)}</span>
        </li>
      ))}
    </ul>
  );
}

/** Spend against a ceiling, coloured by alert state. */
export function Meter({ spent, limit, state }) {
  const share = limit ? Math.min(100, (100 * spent) / limit) : 0;
  return (
    <span class={`meter meter-${String(state || "ok").toLowerCase()}`} role="meter"
      aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(share)}>
      <span style={{ width: `${share}%` }} />
    </span>
  );
}
