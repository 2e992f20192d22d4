"""Knowledge and memory over Koda's REST conventions: the same resolvers as GraphQL, a
multipart upload, asynchronous indexing, cursor paging, and cross-tenant probes."""

import asyncio
from typing import Any

import httpx

from agentplane.models import Chunk, Document
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient

KB = "/api/control-plane/knowledge-bases"
DOCS = "/api/control-plane/documents"
MEMS = "/api/control-plane/memories"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _ready(client: httpx.AsyncClient, auth: dict[str, str], doc_id: str) -> Any:
    async with asyncio.timeout(60):
        while (doc := (await client.get(f"{DOCS}/{doc_id}", headers=auth)).json())[
            "status"
        ] not in ("ready", "failed"):
            await asyncio.sleep(0.05)
    return doc


async def test_documents_over_rest_index_in_the_background_and_match_graphql(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    token = await make_token(await make_tenant("acme"), "operator")
    auth = _auth(token)
    created = await client.post(KB, headers=auth, json={"name": "help"})
    assert created.status_code == 201, created.text
    kb = created.json()

    # JSON text: accepted at once (202, queued), ready later
    added = await client.post(
        f"{KB}/{kb['id']}/documents",
        headers=auth,
        json={"title": "Refunds", "content_type": "markdown", "text": "# Refunds\n\n30 days."},
    )
    assert added.status_code == 202, added.text
    assert (added.json()["status"], added.json()["chunk_count"]) == ("queued", 1)
    ready = await _ready(client, auth, added.json()["id"])
    assert (ready["status"], ready["chunks_indexed"], ready["progress"]) == ("ready", 1, 1.0)

    # a multipart file upload, waited for
    uploaded = await client.post(
        f"{KB}/{kb['id']}/documents/upload?wait=true",
        headers=auth,
        files={"file": ("hours.html", b"<p>Office opens at nine.</p>", "text/html")},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert (uploaded.json()["title"], uploaded.json()["content_type"]) == (
        "hours.html",
        "text/html",
    )
    assert uploaded.json()["status"] == "ready"
    hits = await client.post(
        f"{KB}/{kb['id']}/search", headers=auth, json={"query": "when does the office open"}
    )
    assert hits.json()["hits"][0]["text"] == "Office opens at nine."

    # the same documents through GraphQL
    listed = (await client.get(f"{KB}/{kb['id']}/documents", headers=auth)).json()["documents"]
    data = await gql.ok(
        "query($id: ID!) { knowledgeBase(id: $id) { documents { id status chunkCount } } }",
        token,
        id=kb["id"],
    )
    assert [
        {"id": d["id"], "status": d["status"], "chunkCount": d["chunk_count"]} for d in listed
    ] == data["knowledgeBase"]["documents"]

    deleted = await client.delete(f"{DOCS}/{uploaded.json()['id']}", headers=auth)
    assert deleted.status_code == 200
    assert await Chunk.filter(document_id=uploaded.json()["id"]).count() == 0


async def test_refused_rest_documents_store_nothing(client: httpx.AsyncClient) -> None:
    auth = _auth(await make_token(await make_tenant("acme"), "operator"))
    kb = (await client.post(KB, headers=auth, json={"name": "help"})).json()
    upload = f"{KB}/{kb['id']}/documents/upload"
    cases = [
        (upload, {"files": {"file": ("a.pdf", b"%PDF-1.4", "application/pdf")}}),
        (upload, {"files": {"file": ("a.txt", b"word " * 120_000, "text/plain")}}),
        (upload, {"files": {"file": ("a.txt", b"   \n", "text/plain")}}),
        (upload, {"data": {"title": "no file"}}),
        (f"{KB}/{kb['id']}/documents", {"json": {"title": "x", "text": ""}}),
        (f"{KB}/{kb['id']}/documents", {"json": {"title": "x", "text": "a", "url": "b"}}),
    ]
    answers = []
    for path, kwargs in cases:
        response = await client.post(path, headers=auth, **kwargs)
        answers.append((response.status_code, response.json()["code"]))
    assert answers == [
        (415, "UNSUPPORTED_CONTENT_TYPE"),
        (413, "DOCUMENT_TOO_LARGE"),
        (400, "VALIDATION"),
        (400, "VALIDATION"),
        (400, "VALIDATION"),
        (400, "VALIDATION"),
    ]
    assert await Document.all().count() == 0 and await Chunk.all().count() == 0


async def test_memories_over_rest_page_like_the_graphql_connection(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    tenant = await make_tenant("acme")
    token = await make_token(tenant, "operator")
    auth = _auth(token)
    agent = await make_agent(tenant, "support")
    ids = []
    for n in range(5):
        created = await client.post(
            MEMS, headers=auth, json={"text": f"fact {n}", "agent_id": agent.id}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["memory"]["id"])
    rest, cursor = [], None
    while True:
        page = (
            await client.get(
                MEMS, headers=auth, params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            )
        ).json()
        rest.append([m["id"] for m in page["memories"]])
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    graphql, after = [], None
    while True:
        conn = (
            await gql.ok(
                "query($a: String) { memories(first: 2, after: $a) { "
                "edges { node { id } } pageInfo { hasNextPage endCursor } } }",
                token,
                a=after,
            )
        )["memories"]
        graphql.append([e["node"]["id"] for e in conn["edges"]])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert rest == graphql == [ids[4:2:-1], ids[2:0:-1], ids[:1]]  # newest first

    # the operator workflow: pending -> approve, edit, archive, delete
    key = {"text": "Prefers email", "conflict_key": "contact", "agent_id": agent.id}
    old = (await client.post(MEMS, headers=auth, json=key)).json()["memory"]
    pending = (
        await client.post(
            MEMS, headers=auth, json={**key, "text": "Prefers phone", "pending": True}
        )
    ).json()["memory"]
    approved = (await client.post(f"{MEMS}/{pending['id']}/approve", headers=auth)).json()
    assert approved["memory"]["status"] == "active"
    assert [m["id"] for m in approved["superseded"]] == [old["id"]]
    edited = await client.patch(f"{MEMS}/{pending['id']}", headers=auth, json={"importance": 0.9})
    assert edited.json()["memory"]["importance"] == 0.9
    archived = await client.post(f"{MEMS}/{pending['id']}/archive", headers=auth)
    assert archived.json()["memory"]["status"] == "archived"
    got = (await client.get(f"{MEMS}/{old['id']}", headers=auth)).json()
    assert (got["status"], got["superseded_by"]) == ("superseded", pending["id"])
    assert (await client.delete(f"{MEMS}/{old['id']}", headers=auth)).status_code == 200
    assert (await client.get(f"{MEMS}/{old['id']}", headers=auth)).status_code == 404
    recalled = await client.post(
        f"{MEMS}/recall", headers=auth, json={"query": "fact", "agent_id": agent.id}
    )
    assert recalled.status_code == 200 and recalled.json()["hits"]


async def test_another_tenants_ids_answer_like_missing_ones(client: httpx.AsyncClient) -> None:
    owner = _auth(await make_token(await make_tenant("bolt"), "operator"))
    stranger = _auth(await make_token(await make_tenant("acme"), "operator"))
    kb = (await client.post(KB, headers=owner, json={"name": "secret"})).json()["id"]
    doc = (
        await client.post(
            f"{KB}/{kb}/documents?wait=true", headers=owner, json={"title": "s", "text": "codes"}
        )
    ).json()["id"]
    memory = (await client.post(MEMS, headers=owner, json={"text": "secret"})).json()["memory"][
        "id"
    ]
    probes = [
        ("GET", f"{KB}/{{}}", kb, None),
        ("DELETE", f"{KB}/{{}}", kb, None),
        ("GET", f"{KB}/{{}}/documents", kb, None),
        ("POST", f"{KB}/{{}}/documents", kb, {"title": "t", "text": "x"}),
        ("POST", f"{KB}/{{}}/search", kb, {"query": "codes"}),
        ("GET", f"{DOCS}/{{}}", doc, None),
        ("DELETE", f"{DOCS}/{{}}", doc, None),
        ("GET", f"{MEMS}/{{}}", memory, None),
        ("PATCH", f"{MEMS}/{{}}", memory, {"text": "x"}),
        ("DELETE", f"{MEMS}/{{}}", memory, None),
        ("POST", f"{MEMS}/{{}}/approve", memory, None),
        ("POST", f"{MEMS}/{{}}/archive", memory, None),
    ]
    for method, template, real, body in probes:
        theirs = await client.request(method, template.format(real), headers=stranger, json=body)
        missing = await client.request(
            method, template.format(real[:4] + "missing"), headers=stranger, json=body
        )
        assert theirs.status_code == missing.status_code == 404, (method, template)
        strip = (real, real[:4] + "missing")
        assert _without(theirs.json(), strip) == _without(missing.json(), strip)
    upload = await client.post(
        f"{KB}/{kb}/documents/upload", headers=stranger, files={"file": ("a.txt", b"x")}
    )
    assert (upload.status_code, upload.json()["code"]) == (404, "NOT_FOUND")
    assert await Document.filter(knowledge_base_id=kb).count() == 1


def _without(body: dict[str, Any], ids: tuple[str, str]) -> dict[str, Any]:
    message = body["message"]
    for i in ids:
        message = message.replace(i, "…")
    return {**body, "message": message}
