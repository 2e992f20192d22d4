// Operator actions on a task. Each asks for a reason, which the server records in the
// audit entry. Approve/reject decide the task's pending approval request, so they show only
// where the task was read with `pendingApproval` (the run view); the run view and the fleet
// board render whatever this list allows.
import { useSignal } from "@preact/signals";
import { canAct, gql, viewer } from "./api.js";
import { ReasonDialog } from "./components.jsx";

const control = (field) => ({
  query: `mutation ${field[0].toUpperCase()}${field.slice(1)}($input: TaskControlInput!) {
  ${field}(input: $input) { task { id status statusReason isTerminal } }
}`,
  field,
});

const run = ({ query, field }) => async (task, reason) =>
  (await gql(query, { input: { id: task.id, reason } }))[field].task;

export const DECIDE = `mutation DecideApproval($input: DecideApprovalInput!) {
  decideApproval(input: $input) { approvalRequest { id status } task { id status statusReason isTerminal } }
}`;

// `args` (APPROVE only): edited arguments, or undefined to run the call as the model asked.
const decide = (decision) => async (task, reason, args) =>
  (await gql(DECIDE, { input: { id: task.pendingApproval.id, decision, reason, ...(args === undefined ? {} : { arguments: args }) } }))
    .decideApproval.task;
const deciding = (s, task) => s === "WAITING_FOR_APPROVAL" && task.pendingApproval?.status === "PENDING";

const CONTROL = {
  cancel: control("cancelTask"),
  pause: control("pauseTask"),
  resume: control("resumeTask"),
  retry: control("retryTask"),
};

export const TASK_ACTIONS = [
  { name: "approve", label: "Approve", editsArguments: true, allowed: deciding, run: decide("APPROVE") },
  { name: "reject", label: "Reject", danger: true, allowed: deciding, run: decide("REJECT") },
  { name: "pause", label: "Pause", allowed: (s) => ["QUEUED", "RUNNING", "RETRYING"].includes(s), run: run(CONTROL.pause) },
  { name: "resume", label: "Resume", allowed: (s) => s === "PAUSED", run: run(CONTROL.resume) },
  { name: "retry", label: "Retry", allowed: (s) => s === "FAILED" || s === "CANCELLED", run: run(CONTROL.retry) },
  { name: "cancel", label: "Cancel", danger: true, allowed: (s) => !["COMPLETED", "FAILED", "CANCELLED"].includes(s), run: run(CONTROL.cancel) },
];

/** The action buttons for one task; nothing at all for roles that cannot act. */
export function TaskActions({ task, onDone, compact }) {
  const pending = useSignal(null);
  if (!canAct(viewer.value) || !task) return null;
  const allowed = TASK_ACTIONS.filter((a) => a.allowed(task.status, task));
  return (
    <span class="actions" data-testid="task-actions">
      {allowed.map((action) => (
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
          subject={task.id}
          args={pending.value.editsArguments ? task.pendingApproval.arguments : undefined}
          onConfirm={async (reason, args) => onDone?.(await pending.value.run(task, reason, args))}
          onClose={() => (pending.value = null)}
        />
      )}
    </span>
  );
}
