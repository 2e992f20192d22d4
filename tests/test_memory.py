"""Memory: supersession, expiry, the operator workflow (pending -> approve, edit,
archive, delete), the soft budget, roles, and recall as an explained MEMORY_HIT step."""

from datetime import UTC, datetime, timedelta
from typing import Any

from agentplane.core.config import Settings
from agentplane.models import Memory, MemoryStatus, Step, StepKind, TaskStatus
from agentplane.resolvers import tasks
from agentplane.runtime.worker import Worker
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes
from tests.test_runtime import operator_of, wait_for_status

MEMORY = "id status text type importance conflictKey supersededBy expiresAt agentId"
CREATE = f"""mutation($i: CreateMemoryInput!) {{ createMemory(input: $i) {{
  memory {{ {MEMORY} }} superseded {{ {MEMORY} }} evictionCandidates {{ {MEMORY} }} }} }}"""
LIST = f"""query($f: MemoryFilter, $first: Int = 100, $after: String) {{
  memories(filter: $f, first: $first, after: $after) {{
    edges {{ node {{ {MEMORY} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
RECALL = """query($q: String!, $a: ID) { recall(query: $q, agentId: $a, first: 10) {
  id text fusedRank fusedScore scores { retriever rank score } details } }"""
BY_ID = """mutation($i: MemoryIdInput!) {{
  {name}(input: $i) {{ memory {{ {m} }} superseded {{ id }} }} }}"""
UPDATE = f"""mutation($i: UpdateMemoryInput!) {{
  updateMemory(input: $i) {{ memory {{ {MEMORY} }} }} }}"""


def nodes(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in data["memories"]["edges"]]


def by_id(name: str) -> str:
    return BY_ID.format(name=name, m=MEMORY)


async def create(gql: GraphQLClient, token: str, **fields: Any) -> dict[str, Any]:
    return (await gql.ok(CREATE, token, i=fields))["createMemory"]  # type: ignore[no-any-return]


async def recall_ids(gql: GraphQLClient, token: str, query: str, agent_id: str) -> list[str]:
    hits = (await gql.ok(RECALL, token, q=query, a=agent_id))["recall"]
    return [h["id"] for h in hits]


async def test_a_memory_with_the_same_conflict_key_supersedes_the_older(
    gql: GraphQLClient,
) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    agent, other = await make_agent(tenant, "support"), await make_agent(tenant, "sales")
    first = await create(
        gql, op, text="The customer prefers French", agentId=agent.id, conflictKey="language"
    )
    elsewhere = await create(
        gql, op, text="The customer prefers Dutch", agentId=other.id, conflictKey="language"
    )
    assert first["superseded"] == [] and elsewhere["superseded"] == []

    second = await create(
        gql, op, text="The customer prefers German", agentId=agent.id, conflictKey="language"
    )

    new_id, old_id = second["memory"]["id"], first["memory"]["id"]
    assert [m["id"] for m in second["superseded"]] == [old_id]
    assert second["superseded"][0]["status"] == "superseded"
    assert second["superseded"][0]["supersededBy"] == new_id
    listed = nodes(await gql.ok(LIST, op, f={"agentId": agent.id}))
    assert {m["id"]: m["status"] for m in listed} == {new_id: "active", old_id: "superseded"}
    # recall sees only the live one; another agent's memory with the key is untouched
    assert await recall_ids(gql, op, "which language does the customer prefer", agent.id) == [
        new_id
    ]
    assert (await Memory.get(id=elsewhere["memory"]["id"])).status == MemoryStatus.ACTIVE


async def test_expired_memories_are_listed_but_never_recalled(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    agent = await make_agent(tenant, "support")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    expired = await create(gql, op, text="Door code is 1234", agentId=agent.id, expiresAt=past)
    live = await create(gql, op, text="Door code is 9876", agentId=agent.id, expiresAt=future)

    assert await recall_ids(gql, op, "door code", agent.id) == [live["memory"]["id"]]
    listed = nodes(await gql.ok(LIST, op, f={"agentId": agent.id}))
    assert {m["id"] for m in listed} == {expired["memory"]["id"], live["memory"]["id"]}
    # an operator extends the expired one: it is recalled again
    await gql.ok(UPDATE, op, i={"id": expired["memory"]["id"], "expiresAt": future})
    assert set(await recall_ids(gql, op, "door code", agent.id)) == {
        expired["memory"]["id"],
        live["memory"]["id"],
    }


async def test_operator_workflow_pending_approve_edit_archive_delete(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    agent = await make_agent(tenant, "support")
    old = (await create(gql, op, text="Plan is Basic", agentId=agent.id, conflictKey="plan"))[
        "memory"
    ]
    pending = await create(
        gql, op, text="Plan is Premium", agentId=agent.id, conflictKey="plan", pending=True
    )
    new = pending["memory"]
    assert new["status"] == "pending" and pending["superseded"] == []
    assert await recall_ids(gql, op, "plan", agent.id) == [old["id"]]  # pending: not live

    approved = (await gql.ok(by_id("approveMemory"), op, i={"id": new["id"]}))["approveMemory"]
    assert approved["memory"]["status"] == "active"
    assert approved["superseded"] == [{"id": old["id"]}]
    assert await recall_ids(gql, op, "plan", agent.id) == [new["id"]]
    body = await gql(by_id("approveMemory"), op, i={"id": new["id"]})  # no longer pending
    assert error_codes(body) == ["VALIDATION"]

    edited = await gql.ok(
        UPDATE,
        op,
        i={"id": new["id"], "text": "Subscription tier is Enterprise", "importance": 0.9},
    )
    assert edited["updateMemory"]["memory"]["importance"] == 0.9
    assert await recall_ids(gql, op, "enterprise subscription tier", agent.id) == [new["id"]]
    assert (await Memory.get(id=new["id"])).text == "Subscription tier is Enterprise"

    archived = await gql.ok(by_id("archiveMemory"), op, i={"id": new["id"]})
    assert archived["archiveMemory"]["memory"]["status"] == "archived"
    assert await recall_ids(gql, op, "enterprise subscription tier", agent.id) == []
    archived_list = nodes(await gql.ok(LIST, op, f={"status": "archived"}))
    assert [m["id"] for m in archived_list] == [new["id"]]

    await gql.ok(by_id("deleteMemory"), op, i={"id": new["id"]})
    assert not await Memory.exists(id=new["id"])
    assert [m["id"] for m in nodes(await gql.ok(LIST, op))] == [old["id"]]


async def test_over_the_soft_budget_a_write_succeeds_and_suggests_evictions(
    gql: GraphQLClient,
) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    agent = await make_agent(tenant, "support", config={"maxMemories": 2})
    keep = await create(gql, op, text="VIP customer", agentId=agent.id, importance=0.9)
    cheap = await create(gql, op, text="Said hello on Monday", agentId=agent.id, importance=0.1)
    assert keep["evictionCandidates"] == [] and cheap["evictionCandidates"] == []

    third = await create(gql, op, text="Ships to Utrecht", agentId=agent.id, importance=0.5)

    assert third["memory"]["status"] == "active"  # never refused: refusing makes agents loop
    assert [m["id"] for m in third["evictionCandidates"]] == [cheap["memory"]["id"]]
    assert await Memory.filter(agent_id=agent.id, status=MemoryStatus.ACTIVE).count() == 3


async def test_a_viewer_reads_memories_but_cannot_change_them(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    op, viewer = await make_token(tenant, "operator"), await make_token(tenant, "viewer")
    agent = await make_agent(tenant, "support")
    memory = (await create(gql, op, text="Likes tea", agentId=agent.id, pending=True))["memory"]
    before = await Memory.get(id=memory["id"])

    writes = [
        (CREATE, {"i": {"text": "x", "agentId": agent.id}}),
        (UPDATE, {"i": {"id": memory["id"], "text": "Likes coffee"}}),
        (by_id("approveMemory"), {"i": {"id": memory["id"]}}),
        (by_id("archiveMemory"), {"i": {"id": memory["id"]}}),
        (by_id("deleteMemory"), {"i": {"id": memory["id"]}}),
    ]
    for query, variables in writes:
        assert error_codes(await gql(query, viewer, **variables)) == ["FORBIDDEN"], query

    after = await Memory.get(id=memory["id"])
    assert (after.text, after.status, after.updated_at) == (
        before.text,
        before.status,
        before.updated_at,
    )
    assert await Memory.all().count() == 1
    assert [m["id"] for m in nodes(await gql.ok(LIST, viewer))] == [memory["id"]]


async def test_agent_memory_tools_supersede_expire_and_recall_as_explained_steps(
    services: Settings,
) -> None:
    tenant = await make_tenant("acme")
    script = [
        {"tool": "remember", "arguments": {"text": "Invoice email is a@x.io", "key": "email"}},
        {"tool": "remember", "arguments": {"text": "Invoice email is b@x.io", "key": "email"}},
        {"tool": "remember", "arguments": {"text": "Invoice email is temp@x.io", "ttlSeconds": 0}},
        {"tool": "memory_search", "arguments": {"query": "invoice email"}},
        {"say": "{last_tool_result}"},
    ]
    agent = await make_agent(
        tenant,
        "support",
        model="scripted/agent",
        tools=["remember", "memory_search"],
        config={"script": script},
    )
    worker = Worker(services)
    await worker.start()
    try:
        task = await tasks.submit_task(operator_of(tenant.id), agent_id=agent.id, query="email?")
        done = await wait_for_status(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    finally:
        await worker.stop()
    assert done.status == TaskStatus.COMPLETED, done.error

    memories = {m.text: m for m in await Memory.filter(agent_id=agent.id)}
    old, new = memories["Invoice email is a@x.io"], memories["Invoice email is b@x.io"]
    assert (old.status, old.superseded_by) == (MemoryStatus.SUPERSEDED, new.id)
    assert new.status == MemoryStatus.ACTIVE and new.source_step_id == task.id
    steps = await Step.filter(task_id=task.id).order_by("seq")
    recall = [s for s in steps if s.kind == StepKind.MEMORY_HIT]
    assert len(recall) == 1
    hits = recall[0].payload["hits"]
    # the superseded and the expired memory are not recalled; the live one is explained
    assert [h["memoryId"] for h in hits] == [new.id]
    hit = hits[0]
    assert hit["fusedRank"] == 1 and hit["inPrompt"] is True and hit["conflictKey"] == "email"
    assert set(hit["retrievers"]) == {"lexical", "dense"}
    assert all(r["rank"] == 1 for r in hit["retrievers"].values())
    assert abs(hit["fusedScore"] - 2 / 61) < 1e-5
    assert done.output == "- (fact) Invoice email is b@x.io"
