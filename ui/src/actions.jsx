// Operator actions: on a task (pause, resume, retry, cancel) and on an approval request
// (approve, reject). Each asks for a reason, which the server records in the audit entry
// (optional when approving). The run view, the fleet board and the approvals inbox render
// whatever these allow; the server checks the role again.
import { useSignal } from "@preact/signals";
import { canAct, canDecide, gql, viewer } from "./api.js";
import { ReasonDialog } from "./components.jsx";

const control = (field) => ({
  query: `mutation ${field[0].toUpperCase()}${field.slice(1)}($input: TaskControlInput!) {
  ${field}(input: $input) { task { id status statusReason isTerminal } }
}`,
  field,
});

const run = ({ query, field }) => async (task, reason) =>
  (await gql(query, { input: { id: task.id, reason } }))[field].task;

const CONTROL = {
  cancel: control("cancelTask"),
  pause: control("pauseTask"),
  resume: control("resumeTask"),
  retry: control("retryTask"),
};

export const TASK_ACTIONS = [
  { name: "pause", label: "Pause", allowed: (s) => ["QUEUED", "RUNNING", "RETRYING"].includes(s), run: run(CONTROL.pause) },
  { name: "resume", label: "Resume", allowed: (s) => s === "PAUSED", run: run(CONTROL.resume) },
  { name: "retry", label: "Retry", allowed: (s) => s === "FAILED" || s === "CANCELLED", run: run(CONTROL.retry) },
  { name: "cancel", label: "Cancel", danger: true, allowed: (s) => !["COMPLETED", "FAILED", "CANCELLED"].includes(s), run: run(CONTROL.cancel) },
];

const DECIDE = `mutation DecideApproval($input: DecideApprovalInput!) {
  decideApproval(input: $input) { approvalRequest { id status reason decidedBy decidedAt } task { id status statusReason isTerminal } }
}`;

// `args` (APPROVE only): edited arguments, or undefined to run the call as the model asked.
const decide = (decision) => async (request, reason, args) =>
  (await gql(DECIDE, { input: { id: request.id, decision, reason: reason || null, ...(args === undefined ? {} : { arguments: args }) } }))
    .decideApproval;

const DECISIONS = [
  { name: "approve", label: "Approve", reasonOptional: true, editsArguments: true, run: decide("APPROVE") },
  { name: "reject", label: "Reject", danger: true, run: decide("REJECT") },
];

/** Buttons for `actions` on `subject`, each opening the reason dialog; `onDone` gets the result. */
function ActionButtons({ actions, subject, label, args, onDone, compact, testid }) {
  const pending = useSignal(null);
  return (
    <span class="actions" data-testid={testid}>
      {actions.map((action) => (
        <button
          type="button"
          key={action.name}
          class={`${compact ? "small " : ""}${action.danger ? "danger" : ""}`}
          onClick={(e) => {
            e.stopPropagation();
            pending.value = action;
          }}
        >
          {action.label}
        </button>
      ))}
      {pending.value && (
        <ReasonDialog
          action={pending.value}
          subject={label}
          args={pending.value.editsArguments ? args : undefined}
          onConfirm={async (reason, edited) => onDone?.(await pending.value.run(subject, reason, edited), pending.value)}
          onClose={() => (pending.value = null)}
        />
      )}
    </span>
  );
}

/** The action buttons for one task; nothing at all for roles that cannot act. */
export function TaskActions({ task, onDone, compact }) {
  if (!canAct(viewer.value) || !task) return null;
  const allowed = TASK_ACTIONS.filter((a) => a.allowed(task.status, task));
  return <ActionButtons actions={allowed} subject={task} label={task.id} onDone={onDone} compact={compact} testid="task-actions" />;
}

/**
 * Approve (optionally with edited JSON arguments) / Reject for a pending approval request, in
 * the run view and the inbox; nothing for roles without `approval:decide`. `onDone` gets the
 * `decideApproval` payload: `{approvalRequest, task}`.
 */
export function ApprovalActions({ request, onDone, compact }) {
  if (!canDecide(viewer.value) || request?.status !== "PENDING") return null;
  return (
    <ActionButtons actions={DECISIONS} subject={request} label={`${request.tool} (${request.id})`} args={request.arguments}
      onDone={onDone} compact={compact} testid="approval-actions" />
  );
}
