"""Koda approvals (`/api/control-plane/approvals`, `/api/runtime/tasks/{id}/approvals`).

Koda lists "approvals" among its dashboard bundles without documenting their paths; these
follow its control-plane conventions (snake_case records, `{code, category, message, …}`
errors, `cursor` paging) over the same resolvers as GraphQL's `approvalRequests` and
`decideApproval`, so a REST caller can see what a waiting task asks and answer it.
"""

from starlette.responses import Response

from agentplane.models import ApprovalRequest, ApprovalStatus
from agentplane.resolvers import approvals
from agentplane.resolvers.pagination import Page
from agentplane.rest_compat.common import (
    BOOL,
    DATETIME,
    INT,
    OBJ,
    STR,
    Call,
    Param,
    Resp,
    array,
    iso,
    json,
    nullable,
    obj,
    record,
)
from agentplane.rest_compat.koda import koda

CP = "/api/control-plane/approvals"
STATUS = {"type": "string", "enum": [s.value for s in ApprovalStatus]}
APPROVAL = record(
    {
        "id": STR,
        "task_id": STR,
        "agent_id": STR,
        "tool": STR,
        "arguments": OBJ,
        "arguments_schema": OBJ,
        "risk": STR,
        "preview": STR,
        "status": STATUS,
        "on_expiry": STR,
        "expires_at": nullable(DATETIME),
        "decided_by": nullable(STR),
        "decided_at": nullable(DATETIME),
        "reason": nullable(STR),
        "edited_arguments": nullable(OBJ),
        "step_seq": INT,
        "created_at": DATETIME,
    }
)
APPROVAL_LIST = record(
    {"approvals": array(APPROVAL), "next_cursor": nullable(STR), "has_more": BOOL}
)
LIST_QUERY = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
    Param("cursor", {"type": "string", "maxLength": 200}),
    Param("status", STATUS),
)
REASON = {"type": "string", "maxLength": 2000}
APPROVE = obj({"arguments": OBJ, "reason": REASON})
REJECT = obj({"reason": REASON})


def approval_record(request: ApprovalRequest) -> dict[str, object]:
    return {
        "id": request.id,
        "task_id": request.task_id,  # type: ignore[attr-defined]
        "agent_id": request.agent_id,
        "tool": request.tool,
        "arguments": request.arguments,
        "arguments_schema": request.arguments_schema,
        "risk": request.risk,
        "preview": request.preview,
        "status": request.status.value,
        "on_expiry": request.on_expiry.value,
        "expires_at": iso(request.expires_at),
        "decided_by": request.decided_by,
        "decided_at": iso(request.decided_at),
        "reason": request.reason,
        "edited_arguments": request.edited_arguments,
        "step_seq": request.step_seq,
        "created_at": iso(request.created_at),
    }


def _page(page: Page[ApprovalRequest]) -> Response:
    return json(
        {
            "approvals": [approval_record(r) for r in page.items],
            "next_cursor": page.cursor(page.items[-1]) if page.has_next else None,
            "has_more": page.has_next,
        }
    )


async def _list(call: Call, task_id: str | None) -> Response:
    status = call.query.get("status")
    page = await approvals.list_requests(
        call.actor,
        call.query["limit"],
        call.query.get("cursor"),
        status=ApprovalStatus(status) if status else None,
        task_id=task_id,
    )
    return _page(page)


@koda.route(
    "GET",
    CP,
    summary="Approval requests in your tenant, newest first",
    ok=Resp(APPROVAL_LIST),
    query=LIST_QUERY,
)
async def list_approvals(call: Call) -> Response:
    return await _list(call, None)


@koda.route(
    "GET",
    "/api/runtime/tasks/{task_id}/approvals",
    summary="The approval requests of one task, newest first",
    ok=Resp(APPROVAL_LIST),
    query=LIST_QUERY,
)
async def task_approvals(call: Call) -> Response:
    return await _list(call, call.path["task_id"])


@koda.route("GET", CP + "/{approval_id}", summary="One approval request", ok=Resp(APPROVAL))
async def get_approval(call: Call) -> Response:
    return json(approval_record(await approvals.get_request(call.actor, call.path["approval_id"])))


@koda.route(
    "POST",
    CP + "/{approval_id}/approve",
    summary="Approve the held tool call, optionally with edited arguments; the run continues",
    ok=Resp(APPROVAL),
    body=APPROVE,
)
async def approve(call: Call) -> Response:
    body = call.body or {}
    decided = await approvals.decide(
        call.actor,
        call.path["approval_id"],
        approve=True,
        arguments=body.get("arguments"),
        reason=body.get("reason"),
    )
    return json(approval_record(decided))


@koda.route(
    "POST",
    CP + "/{approval_id}/reject",
    summary="Reject the held tool call; the model reads the reason",
    ok=Resp(APPROVAL),
    body=REJECT,
)
async def reject(call: Call) -> Response:
    body = call.body or {}
    decided = await approvals.decide(
        call.actor, call.path["approval_id"], approve=False, reason=body.get("reason")
    )
    return json(approval_record(decided))
