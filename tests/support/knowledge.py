"""Documents index in the background: helpers that wait for them."""

import asyncio
from typing import Any

from agentplane.models import Document, DocumentStatus
from agentplane.resolvers import knowledge
from agentplane.resolvers.auth import Actor
from tests.support.graphql import GraphQLClient


async def add_ready(actor: Actor, **fields: Any) -> Document:
    """`knowledge.add_document`, then wait until the document is indexed."""
    doc = await knowledge.add_document(actor, **fields)
    done = await knowledge.wait_for_document(actor, doc.id)
    assert done.status == DocumentStatus.READY, (done.error_code, done.error)
    return done


async def document_when_done(gql: GraphQLClient, token: str, doc_id: str) -> dict[str, Any]:
    """Poll `document(id)` (as a client would) until it is ready or failed."""
    query = """query($id: ID!) { document(id: $id) {
      id status progress chunkCount chunksIndexed errorCode } }"""
    for _ in range(600):
        doc: dict[str, Any] = (await gql.ok(query, token, id=doc_id))["document"]
        if doc["status"] in ("ready", "failed"):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"document {doc_id} still {doc['status']}")
