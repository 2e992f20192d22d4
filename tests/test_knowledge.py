"""Knowledge: ingest -> hybrid retrieval -> a run whose prompt holds the hits and whose
trace explains each one; refusals leave nothing indexed; tenants never see each other."""

from agentplane.core.config import Settings
from agentplane.models import Chunk, Document, Step, StepKind, TaskStatus
from agentplane.resolvers import knowledge, tasks
from agentplane.retrieval import knowledge as retrieval
from agentplane.retrieval.embedders import get_embedder, to_blob
from agentplane.retrieval.fusion import weights_of
from agentplane.runtime import agent_loop
from agentplane.runtime.worker import Worker
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes
from tests.support.knowledge import add_ready, document_when_done
from tests.test_runtime import operator_of, wait_for_status

DOCS = [
    (
        "Refunds",
        "text/markdown",
        "# Refunds\n\nOur **refund policy** allows returns within 30 days.",
    ),
    ("Shipping", "text", "Parcels ship from Rotterdam and usually arrive within a week."),
    (
        "Security",
        "text/html",
        "<html><head><style>p{}</style></head><body><p>Passwords are hashed with "
        "argon2.</p><script>alert(1)</script></body></html>",
    ),
]

CREATE_KB = """mutation($n: String!) {
  createKnowledgeBase(input: {name: $n}) { knowledgeBase { id name } } }"""
ADD_DOC = """mutation($i: AddDocumentInput!) { addDocument(input: $i) {
  document { id status progress chunkCount chunksIndexed contentType sizeBytes } } }"""
RETRIEVE = """query($k: [ID!]!, $q: String!) { retrieve(knowledgeBaseIds: $k, query: $q, first: 3) {
  id text fusedRank fusedScore scores { retriever rank score } details } }"""


async def test_ingest_retrieve_and_delete_over_graphql(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    kb = (await gql.ok(CREATE_KB, op, n="help"))["createKnowledgeBase"]["knowledgeBase"]
    docs = []
    for title, ctype, text in DOCS:
        i = {"knowledgeBaseId": kb["id"], "title": title, "contentType": ctype, "text": text}
        docs.append((await gql.ok(ADD_DOC, op, i=i))["addDocument"]["document"])
    # accepted at once, its chunks counted; indexed in the background
    assert [(d["status"], d["chunksIndexed"], d["chunkCount"]) for d in docs] == [
        ("queued", 0, 1)
    ] * 3
    done = [await document_when_done(gql, op, d["id"]) for d in docs]
    assert [(d["status"], d["progress"], d["chunksIndexed"]) for d in done] == [
        ("ready", 1.0, 1)
    ] * 3
    assert docs[2]["contentType"] == "text/html"
    html_chunk = await Chunk.get(document_id=docs[2]["id"])
    assert (
        "argon2" in html_chunk.text
        and "alert" not in html_chunk.text
        and "<p>" not in html_chunk.text
    )
    md_chunk = await Chunk.get(document_id=docs[0]["id"])
    assert "**" not in md_chunk.text and not md_chunk.text.startswith("#")

    # a natural-language question: OR semantics still finds the chunk lexically
    hits = (
        await gql.ok(
            RETRIEVE, op, k=[kb["id"]], q="how long do I have to return an item for a refund?"
        )
    )["retrieve"]
    top = hits[0]
    assert top["details"]["title"] == "Refunds" and top["fusedRank"] == 1
    by = {s["retriever"]: s for s in top["scores"]}
    assert set(by) == {"lexical", "dense"} and by["lexical"]["rank"] == 1
    assert abs(top["fusedScore"] - sum(1 / (60 + s["rank"]) for s in top["scores"])) < 1e-5

    listed = await gql.ok(
        "query($id: ID!) { knowledgeBase(id: $id) { documents { id title } } }", op, id=kb["id"]
    )
    assert [d["title"] for d in listed["knowledgeBase"]["documents"]] == [
        "Refunds",
        "Shipping",
        "Security",
    ]
    await gql.ok(
        "mutation($id: ID!) { deleteDocument(input: {id: $id}) { document { id } } }",
        op,
        id=docs[0]["id"],
    )
    assert await Chunk.filter(document_id=docs[0]["id"]).count() == 0
    hits = (await gql.ok(RETRIEVE, op, k=[kb["id"]], q="refund policy"))["retrieve"]
    assert all(h["details"]["title"] != "Refunds" for h in hits)
    await gql.ok(
        "mutation($id: ID!) { deleteKnowledgeBase(input: {id: $id}) { knowledgeBase { id } } }",
        op,
        id=kb["id"],
    )
    assert await Chunk.filter(knowledge_base_id=kb["id"]).count() == 0


async def test_refused_documents_leave_nothing_indexed(
    gql: GraphQLClient, monkeypatch: object
) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    kb = (await gql.ok(CREATE_KB, op, n="help"))["createKnowledgeBase"]["knowledgeBase"]
    base = {"knowledgeBaseId": kb["id"], "title": "x"}
    body = await gql(ADD_DOC, op, i={**base, "contentType": "application/pdf", "text": "hi"})
    assert error_codes(body) == ["UNSUPPORTED_CONTENT_TYPE"]
    big = "word " * (knowledge.max_document_bytes() // 5 + 1)
    body = await gql(ADD_DOC, op, i={**base, "contentType": "text", "text": big})
    assert error_codes(body) == ["DOCUMENT_TOO_LARGE"]
    assert await Document.all().count() == 0 and await Chunk.all().count() == 0
    hits = (await gql.ok(RETRIEVE, op, k=[kb["id"]], q="word"))["retrieve"]
    assert hits == []


async def test_cross_tenant_probes_answer_not_found(gql: GraphQLClient) -> None:
    a, b = await make_tenant("acme"), await make_tenant("bolt")
    op_a, op_b = await make_token(a, "operator"), await make_token(b, "operator")
    viewer_a = await make_token(a, "viewer")
    kb = (await gql.ok(CREATE_KB, op_b, n="secret"))["createKnowledgeBase"]["knowledgeBase"]
    i = {"knowledgeBaseId": kb["id"], "title": "s", "contentType": "text", "text": "launch codes"}
    doc = (await gql.ok(ADD_DOC, op_b, i=i))["addDocument"]["document"]
    probes = [
        ("query($id: ID!) { knowledgeBase(id: $id) { id } }", {"id": kb["id"]}),
        (
            "mutation($id: ID!) { deleteKnowledgeBase(input: {id: $id}) { knowledgeBase { id } } }",
            {"id": kb["id"]},
        ),
        (
            "mutation($id: ID!) { deleteDocument(input: {id: $id}) { document { id } } }",
            {"id": doc["id"]},
        ),
        ("query($id: ID!) { document(id: $id) { id } }", {"id": doc["id"]}),
        (RETRIEVE, {"k": [kb["id"]], "q": "launch codes"}),
        (ADD_DOC, {"i": {**i, "text": "more"}}),
    ]
    for query, variables in probes:
        assert error_codes(await gql(query, op_a, **variables)) == ["NOT_FOUND"], query
    assert (await gql.ok("{ knowledgeBases { id } }", op_a))["knowledgeBases"] == []
    # a viewer reads but may not write
    body = await gql(CREATE_KB, viewer_a, n="x")
    assert error_codes(body) == ["FORBIDDEN"]


async def test_run_prompt_holds_retrieved_chunks_and_trace_explains_hits(
    services: Settings,
) -> None:
    tenant, other = await make_tenant("acme"), await make_tenant("bolt")
    actor = operator_of(tenant.id)
    kb = await knowledge.create_knowledge_base(actor, name="help")
    for title, ctype, text in DOCS:
        await add_ready(actor, knowledge_base_id=kb.id, title=title, content_type=ctype, text=text)
    foreign = await knowledge.create_knowledge_base(operator_of(other.id), name="theirs")
    await add_ready(
        operator_of(other.id),
        knowledge_base_id=foreign.id,
        title="Theirs",
        content_type="text",
        text="refund policy of another tenant",
    )
    agent = await make_agent(
        tenant,
        "support",
        model="scripted/agent",
        config={
            "script": [{"say": "done"}],
            "knowledgeBases": [kb.id, foreign.id],  # the foreign one is never read
            "retrievalInPrompt": 2,
        },
    )
    worker = Worker(services)
    await worker.start()
    try:
        task = await tasks.submit_task(actor, agent_id=agent.id, query="What is the refund policy?")
        done = await wait_for_status(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    finally:
        await worker.stop()
    assert done.status == TaskStatus.COMPLETED, done.error
    steps = await Step.filter(task_id=task.id).order_by("seq")
    hits = [s for s in steps if s.kind == StepKind.RETRIEVAL_HIT]
    assert len(hits) == 3  # every chunk of the three documents, ranked
    explained = [h.payload["hit"] for h in hits]
    assert [e["fusedRank"] for e in explained] == [1, 2, 3]
    assert explained[0]["title"] == "Refunds"
    assert all(e["knowledgeBaseId"] == kb.id for e in explained)
    assert all(set(e["retrievers"]) <= {"lexical", "dense"} and e["retrievers"] for e in explained)
    assert [h.payload["inPrompt"] for h in hits] == [True, True, False]
    call = next(s for s in steps if s.kind == StepKind.PROVIDER_CALL)
    assert call.seq > hits[-1].seq
    context = [m["content"] for m in call.payload["prompt"] if m["role"] == "system"]
    assert len(context) == 1 and "refund policy allows returns within 30 days" in context[0]
    assert explained[2]["text"] not in context[0]
    assert "another tenant" not in context[0]
    # durable replay: the rebuilt state carries the context and does not retrieve again
    state = await agent_loop.load_state(done, agent)
    assert state.retrieved and state.model_calls == 1
    assert [m.content for m in state.messages if m.role == "system"] == context


async def test_memory_ids_of_another_tenant_and_overlong_ids_answer_not_found(
    gql: GraphQLClient,
) -> None:
    a, b = await make_tenant("acme"), await make_tenant("bolt")
    op_a, op_b = await make_token(a, "operator"), await make_token(b, "operator")
    agent_b = await make_agent(b, "bolt-bot")
    created = await gql.ok(
        "mutation($i: CreateMemoryInput!) { createMemory(input: $i) { memory { id } } }",
        op_b,
        i={"text": "bolt's secret", "agentId": agent_b.id},
    )
    memory_id = created["createMemory"]["memory"]["id"]
    by_id = [
        "mutation($id: ID!) { archiveMemory(input: {id: $id}) { memory { id } } }",
        "mutation($id: ID!) { approveMemory(input: {id: $id}) { memory { id } } }",
        "mutation($id: ID!) { deleteMemory(input: {id: $id}) { memory { id } } }",
        'mutation($id: ID!) { updateMemory(input: {id: $id, text: "x"}) { memory { id } } }',
        'query($id: ID!) { recall(query: "secret", agentId: $id) { id } }',
        "query($id: ID!) { memories(filter: {agentId: $id}, first: 10) { edges { node { id } } } }",
        "query($id: ID!) { memory(id: $id) { id } }",
        "query($id: ID!) { knowledgeBase(id: $id) { id } }",
        "mutation($id: ID!) { deleteDocument(input: {id: $id}) { document { id } } }",
    ]
    for query in by_id:
        target = agent_b.id if "agentId" in query else memory_id
        assert error_codes(await gql(query, op_a, id=target)) == ["NOT_FOUND"], query
        # an ID longer than any ID names nothing (and never reaches the database)
        assert error_codes(await gql(query, op_a, id="mem_" + "x" * 60)) == ["NOT_FOUND"], query


async def test_dense_index_sees_chunks_written_by_another_process(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    kb = (await gql.ok(CREATE_KB, op, n="help"))["createKnowledgeBase"]["knowledgeBase"]
    i = {
        "knowledgeBaseId": kb["id"],
        "title": "Shipping",
        "contentType": "text",
        "text": DOCS[1][2],
        "wait": True,
    }
    await gql.ok(ADD_DOC, op, i=i)
    await gql.ok(RETRIEVE, op, k=[kb["id"]], q="parcels")  # this process caches the matrix
    # Another process ingests: rows appear without this process's cache being told.
    text = "Invoices are emailed as PDF on the first day of each month."
    doc = await Document.create(
        knowledge_base_id=kb["id"], tenant_id=tenant.id, title="Billing", content_type="text/plain"
    )
    vector = (await get_embedder().embed([text]))[0]
    chunk = await Chunk.create(
        document_id=doc.id,
        knowledge_base_id=kb["id"],
        tenant_id=tenant.id,
        position=0,
        text=text,
        embedding=to_blob(vector),
    )
    hits = (await gql.ok(RETRIEVE, op, k=[kb["id"]], q="when do I get my monthly bill?"))[
        "retrieve"
    ]
    dense = {h["id"]: h for h in hits if any(s["retriever"] == "dense" for s in h["scores"])}
    assert chunk.id in dense
    # and a chunk deleted behind this process's back is no longer returned
    await Chunk.filter(id=chunk.id).delete()
    hits = (await gql.ok(RETRIEVE, op, k=[kb["id"]], q="invoices emailed as PDF"))["retrieve"]
    assert chunk.id not in {h["id"] for h in hits}


async def test_weighted_fusion_follows_the_agent_config(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    actor = operator_of(tenant.id)
    kb = await knowledge.create_knowledge_base(actor, name="help")
    for title, ctype, text in DOCS:
        await add_ready(actor, knowledge_base_id=kb.id, title=title, content_type=ctype, text=text)
    config = {"retrievalWeights": {"lexical": 1, "dense": 0, "junk": "x"}}

    hits = await retrieval.retrieve(
        [kb.id], "refund policy returns", first=3, weights=weights_of(config)
    )

    assert weights_of(config) == {"lexical": 1.0, "dense": 0.0}
    assert weights_of({"retrievalWeights": {"dense": -1}}) is None  # unusable: plain RRF
    for hit in hits:  # only the lexical rank counts
        lexical = hit.retrievers.get("lexical")
        expected = 1 / (60 + lexical["rank"]) if lexical else 0.0
        assert abs(hit.fused_score - expected) < 1e-9
    assert hits[0].meta["title"] == "Refunds"
