"""On real `agentplane serve` processes: a client follows a document's indexing live on the
`documentUpdates` subscription; the process is SIGKILLed mid-indexing, the half-indexed
document stays invisible to retrieval, and the next process resumes it to `ready`."""

import asyncio
import secrets
import signal
import time
from pathlib import Path

from tests.support.rest import graphql, operator_token
from tests.support.server import live_server
from tests.support.ws import open_ws

ENV = {"AGENTPLANE_INDEX_LEASE_S": "6"}  # above a batch's time on a loaded machine
# ~600 chunks of ~700 characters (under the 512 KiB limit): many batches to be killed in.
TEXT = "\n\n".join(
    f"Paragraph marker{i} about harbour cranes. " + "crane " * 110 for i in range(600)
)
ADD = """mutation($i: AddDocumentInput!) { addDocument(input: $i) {
  document { id status chunkCount } } }"""
DOC = """query($id: ID!) { document(id: $id) {
  status chunksIndexed chunkCount errorCode error } }"""
RETRIEVE = """query($k: [ID!]!, $q: String!) {
  retrieve(knowledgeBaseIds: $k, query: $q, first: 5) { text } }"""
UPDATES = """subscription($k: ID!) { documentUpdates(knowledgeBaseId: $k) {
  id status chunksIndexed chunkCount } }"""


async def test_progress_is_live_and_a_killed_indexer_is_resumed_by_the_next_process(
    database_url: str, tmp_path: Path
) -> None:
    admin = "agp_admin_" + secrets.token_urlsafe(24)
    with live_server(database_url, tmp_path, "--no-worker", admin_token=admin, env=ENV) as a:
        token = operator_token(a, "idx-" + secrets.token_hex(3))
        kb = graphql(
            a,
            token,
            'mutation { createKnowledgeBase(input: {name: "docks"}) { knowledgeBase { id } } }',
        )["createKnowledgeBase"]["knowledgeBase"]["id"]
        updates = []
        async with asyncio.timeout(120), open_ws(a.ws_url, token=token) as ws:
            op = await ws.subscribe(UPDATES, k=kb)
            await asyncio.sleep(0.3)  # the subscription is live before the document comes
            i = {"knowledgeBaseId": kb, "title": "Docks", "text": TEXT}
            doc = graphql(a, token, ADD, i=i)["addDocument"]["document"]
            while True:
                message = await ws.receive()
                assert message.type == "next", message
                update = message.payload["data"]["documentUpdates"]
                updates.append(update)
                if update["chunksIndexed"] >= 64:
                    break
            await ws.stop(op)
        # killed without a word, mid-indexing
        a.process.send_signal(signal.SIGKILL)
        a.process.wait(5)
    total = doc["chunkCount"]
    assert doc["status"] == "queued" and total > 300
    assert updates[0]["status"] in ("queued", "indexing") and updates[-1]["status"] == "indexing"
    progress = [u["chunksIndexed"] for u in updates]
    assert progress == sorted(progress) and progress[-1] < total

    with live_server(database_url, tmp_path, "--no-worker", admin_token=admin, env=ENV) as b:
        # nothing of the half-indexed document is visible to retrieval
        assert graphql(b, token, RETRIEVE, k=[kb], q="harbour cranes marker7")["retrieve"] == []
        deadline = time.monotonic() + 180
        while (state := graphql(b, token, DOC, id=doc["id"])["document"])["status"] != "ready":
            assert state["status"] != "failed" and time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
        assert (state["chunksIndexed"], state["chunkCount"]) == (total, total)
        hits = graphql(b, token, RETRIEVE, k=[kb], q="marker7 harbour cranes")["retrieve"]
        texts = [h["text"] for h in hits]
        assert texts[0].startswith("Paragraph marker7 ") and len(set(texts)) == len(texts)
