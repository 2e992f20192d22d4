"""Which tool calls need a human's yes, and the gate the agent loop passes each call through.

A call that needs approval and has no decision yet becomes an `ApprovalRequest`; the run
stops (`ApprovalPending`) and the worker parks the task in `waiting_for_approval`, holding
nothing. Once the request is decided (or expires), any worker resumes the run from the
trace, reaches the same call again, and the gate answers with the decision: the call to
run (perhaps with edited arguments), or the refusal the model sees as the tool's output.
"""

from dataclasses import dataclass
from typing import Any

from agentplane.core.errors import ValidationFailed
from agentplane.models import Agent, ApprovalRequest, ApprovalStatus, OnExpiry, Task
from agentplane.resolvers import approvals
from agentplane.runtime.providers.base import ToolCall
from agentplane.runtime.tools import ResolvedTool

MAX_EXPIRY_S = 30 * 24 * 3600
PREVIEW_CHARS = 500


@dataclass(frozen=True)
class ApprovalPolicy:
    risk: str
    expires_in_s: int | None  # None: the request waits until decided
    on_expiry: OnExpiry
    schema: dict[str, Any]  # the tool's JSON Schema: edited arguments must validate


class ApprovalPending(Exception):
    """The run stops here until the request is decided; the task waits holding no worker."""

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(f"waiting for approval {request.id}")
        self.request = request


class ApprovalExpired(Exception):
    """An expired request whose policy is `fail`: the task fails."""


def _tool_policies(config: Any) -> Any:
    approvals_config = config.get("approvals") if isinstance(config, dict) else None
    return approvals_config.get("tools") if isinstance(approvals_config, dict) else None


def check_config(config: dict[str, Any]) -> None:
    """Refuse a malformed `config.approvals` when the agent is saved, not at run time."""
    if "approvals" not in config:
        return
    tools = _tool_policies(config)
    if not isinstance(tools, dict):
        raise ValidationFailed(
            '`config.approvals` must be {"tools": {name: {risk, expiresInS, onExpiry}}}',
            field="config",
        )
    for name, rule in tools.items():
        where = f"`config.approvals.tools.{name}`"
        if not isinstance(rule, dict):
            raise ValidationFailed(f"{where} must be an object", field="config")
        risk = rule.get("risk", "high")
        if not isinstance(risk, str) or not 1 <= len(risk) <= 32:
            raise ValidationFailed(f"{where}.risk must be a word, e.g. high", field="config")
        expires = rule.get("expiresInS")
        if expires is not None and not (type(expires) is int and 1 <= expires <= MAX_EXPIRY_S):
            raise ValidationFailed(
                f"{where}.expiresInS must be an integer 1..{MAX_EXPIRY_S}", field="config"
            )
        if rule.get("onExpiry", "reject") not in {e.value for e in OnExpiry}:
            raise ValidationFailed(f"{where}.onExpiry must be reject or fail", field="config")


def approval_policy(agent: Agent, tool: ResolvedTool) -> ApprovalPolicy | None:
    """The approval rule for the agent's calls of `tool`, or None when they run freely: the
    agent's own `config.approvals.tools` rule, else the registry's `requiresApproval` flag
    (for an MCP tool, set from its `destructiveHint`), which waits until decided."""
    tools = _tool_policies(agent.config)
    rule = tools.get(tool.name) if isinstance(tools, dict) else None
    if not isinstance(rule, dict):
        if not tool.requires_approval:
            return None
        rule = {"risk": tool.risk}
    expires = rule.get("expiresInS")
    return ApprovalPolicy(
        risk=str(rule.get("risk", "high")),
        expires_in_s=expires if type(expires) is int else None,
        on_expiry=OnExpiry(rule.get("onExpiry", OnExpiry.REJECT.value)),
        schema=dict(tool.input_schema),
    )


def _preview(call: ToolCall) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
    text = f"{call.name}({args})"
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


async def gate(
    agent: Agent, task: Task, call: ToolCall, fence: int, tool: ResolvedTool
) -> ToolCall | str:
    """Let a tool call through, or hold it for approval.

    Returns the call to run (its arguments edited by the approver, if they were), or the
    refusal the model sees as the tool's output (already recorded as the call's step).
    Raises ApprovalPending to stop the run until a decision, ApprovalExpired to fail it.
    """
    policy = approval_policy(agent, tool)
    if policy is None:
        return call
    step_seq = await approvals.asking_step(task.id)
    request = await approvals.find_request(task.id, step_seq, call.id)
    if request is None:
        request = await approvals.open_request(
            task,
            step_seq=step_seq,
            call_id=call.id,
            tool=call.name,
            arguments=call.arguments,
            schema=policy.schema,
            risk=policy.risk,
            preview=_preview(call),
            expires_in_s=policy.expires_in_s,
            on_expiry=policy.on_expiry,
            fence=fence,
        )
    if request.status == ApprovalStatus.PENDING:
        request = await approvals.expire_if_due(request)
    match request.status:
        case ApprovalStatus.PENDING:
            raise ApprovalPending(request)
        case ApprovalStatus.APPROVED:
            arguments = request.edited_arguments
            return ToolCall(call.id, call.name, call.arguments if arguments is None else arguments)
        case ApprovalStatus.EXPIRED if request.on_expiry == OnExpiry.FAIL:
            raise ApprovalExpired(f"approval {request.id} for {call.name} expired")
    return await approvals.record_refusal(task, request, fence)
