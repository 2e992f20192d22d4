"""Background indexing of accepted documents, with progress and crash recovery.

`addDocument` validates, stores the text and answers at once (`queued`); an indexer task
embeds the chunks in batches, reporting `chunksIndexed` on the document row and on the
`documentUpdates` subscription. The chunks are written in the same transaction that turns
the document `ready`, so retrieval never sees part of a document. An indexer holds a lease
on its document, renewed with every batch: if its process dies, the lease runs out and the
watcher of any live process starts the document again from its stored text (after
MAX_ATTEMPTS starts it is marked `failed`, `INGEST_ABANDONED`), so nothing accepted is lost.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from agentplane.core.cancellation import stop_if_cancelled
from agentplane.models import Chunk, Document, DocumentStatus
from agentplane.retrieval import ingest
from agentplane.retrieval.embedders import get_embedder, to_blob
from agentplane.retrieval.vectors import vector_index
from agentplane.subscriptions import feeds
from agentplane.subscriptions.broker import get_broker
from agentplane.subscriptions.feeds import Sink

log = logging.getLogger(__name__)

CHANNEL = "agentplane:documents"
BATCH = 32  # chunks embedded between two progress reports
MAX_ATTEMPTS = 3
OPEN = (DocumentStatus.QUEUED, DocumentStatus.INDEXING)
DONE = (DocumentStatus.READY, DocumentStatus.FAILED)

_tasks: dict[str, "asyncio.Task[None]"] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def lease_s() -> float:
    """How long an indexer's silence is tolerated (AGENTPLANE_INDEX_LEASE_S, 60 s): it
    renews the lease with every batch of BATCH chunks, so this bounds one batch's time."""
    return float(os.environ.get("AGENTPLANE_INDEX_LEASE_S", "60"))


def lease_until() -> datetime:
    return _now() + timedelta(seconds=lease_s())


def start(doc_id: str) -> None:
    """Index `doc_id` in this process (the caller holds its lease)."""
    task = asyncio.create_task(_index(doc_id), name=f"index {doc_id}")
    _tasks[doc_id] = task
    task.add_done_callback(lambda _: _tasks.pop(doc_id, None))


async def wait(doc_id: str, timeout: float = 300.0) -> Document | None:
    """The document once it is `ready` or `failed` (None if it was deleted); indexed by
    this process or another one, so it watches the row, not only the local task."""
    async with asyncio.timeout(timeout):
        while True:
            task = _tasks.get(doc_id)
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            doc = await Document.get_or_none(id=doc_id)
            if doc is None or doc.status in DONE:
                return doc
            await asyncio.sleep(0.1)


async def _index(doc_id: str) -> None:
    try:
        doc = await Document.get_or_none(id=doc_id)
        if doc is None or doc.status not in OPEN or doc.source is None:
            return
        pieces = ingest.chunk(ingest.extract(doc.content_type, doc.source))
        if not await _progress(doc, 0):
            return
        embedder, vectors = get_embedder(), list[Any]()
        for first in range(0, len(pieces), BATCH):
            vectors.extend(await embedder.embed(pieces[first : first + BATCH]))
            if not await _progress(doc, len(vectors)):
                return  # deleted (or finished by another indexer) meanwhile
        await _finish(doc, pieces, vectors)
    except asyncio.CancelledError:
        raise  # shutting down: the lease runs out and another start resumes it
    except Exception as exc:
        stop_if_cancelled()  # a cancel that a driver error replaced is still a shutdown
        log.exception("indexing %s failed", doc_id)
        await fail(doc_id, "INDEXING_FAILED", f"Indexing failed: {type(exc).__name__}: {exc}")


async def _progress(doc: Document, indexed: int) -> bool:
    """Report progress and renew the lease; False once the document is no longer open."""
    changed = await Document.filter(id=doc.id, status__in=OPEN).update(
        status=DocumentStatus.INDEXING,
        chunks_indexed=indexed,
        progress=indexed / max(doc.chunk_count, 1),
        lease_expires_at=lease_until(),
    )
    if changed:
        doc.status, doc.chunks_indexed = DocumentStatus.INDEXING, indexed
        doc.progress = indexed / max(doc.chunk_count, 1)
        await publish(doc)
    return bool(changed)


async def _finish(doc: Document, pieces: list[str], vectors: list[Any]) -> None:
    async with in_transaction():
        # The status change first: on PostgreSQL it locks the row, so a concurrent
        # delete either finds the chunks committed or makes this update match nothing.
        changed = await Document.filter(id=doc.id, status__in=OPEN).update(
            status=DocumentStatus.READY,
            progress=1.0,
            chunks_indexed=len(pieces),
            chunk_count=len(pieces),
            source=None,
            lease_expires_at=None,
        )
        if not changed:
            return
        await Chunk.bulk_create(
            [
                Chunk(
                    document_id=doc.id,
                    knowledge_base_id=doc.knowledge_base_id,
                    tenant_id=doc.tenant_id,
                    position=i,
                    text=piece,
                    embedding=to_blob(vectors[i]),
                )
                for i, piece in enumerate(pieces)
            ]
        )
    vector_index.invalidate(doc.knowledge_base_id)
    doc.status, doc.progress, doc.chunks_indexed = DocumentStatus.READY, 1.0, len(pieces)
    await publish(doc)


async def fail(doc_id: str, code: str, message: str) -> None:
    changed = await Document.filter(id=doc_id, status__in=OPEN).update(
        status=DocumentStatus.FAILED,
        error_code=code,
        error=message[:2000],
        source=None,
        lease_expires_at=None,
    )
    if changed:
        doc = await Document.get_or_none(id=doc_id)
        if doc is not None:
            await publish(doc)


async def resume_stalled(now: datetime | None = None) -> int:
    """Start again every open document whose indexer's lease ran out (its process died);
    one started MAX_ATTEMPTS times already is marked failed. Returns the number started."""
    now = now or _now()
    expired = Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    started = 0
    for doc in await Document.filter(expired, status__in=OPEN).only("id", "attempts"):
        if doc.id in _tasks:  # ours, alive, only slow: its next batch renews the lease
            continue
        if doc.attempts >= MAX_ATTEMPTS:
            await fail(doc.id, "INGEST_ABANDONED", f"Indexing stopped {doc.attempts} times")
            continue
        claimed = await Document.filter(expired, id=doc.id, status__in=OPEN).update(
            status=DocumentStatus.QUEUED,
            chunks_indexed=0,
            progress=0.0,
            attempts=doc.attempts + 1,
            lease_expires_at=lease_until(),
        )
        if claimed:  # compare-and-set: of two processes' watchers one claims it
            start(doc.id)
            started += 1
    return started


async def watch_forever() -> None:
    """Every process runs this: documents left open by a dead process are resumed
    within 1.5 leases (the first round runs at startup)."""
    interval_s = lease_s() / 2
    while True:
        try:
            resumed = await resume_stalled()
            if resumed:
                log.info("indexing: resumed %d document(s)", resumed)
        except Exception:  # e.g. the database is briefly away: try again next round
            stop_if_cancelled()
            log.exception("indexing watcher round failed")
        await asyncio.sleep(interval_s)


async def stop() -> None:
    """Cancel this process's indexers and give up their leases, so the next process to
    start (or any live one's watcher) resumes their documents at once."""
    ids, tasks = list(_tasks), list(_tasks.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if ids:
        with contextlib.suppress(Exception):  # the database may be gone: the lease runs out
            await Document.filter(id__in=ids, status__in=OPEN).update(lease_expires_at=_now())


# ---------------------------------------------------------------- live progress
_FIELDS = (
    "id",
    "tenant_id",
    "knowledge_base_id",
    "title",
    "content_type",
    "size_bytes",
    "progress",
    "chunk_count",
    "chunks_indexed",
    "error",
    "error_code",
)


async def publish(doc: Document) -> None:
    data: dict[str, Any] = {name: getattr(doc, name) for name in _FIELDS}
    data["status"] = str(doc.status)
    data["created_at"] = doc.created_at.isoformat()
    try:
        await get_broker().publish(CHANNEL, data)
    except Exception:  # no broker (a script, the bench) or Redis away: the row has it all
        log.debug("document update of %s not published", doc.id, exc_info=True)


def from_event(data: dict[str, Any]) -> Document:
    return Document(
        **{n: data[n] for n in _FIELDS},
        status=DocumentStatus(data["status"]),
        created_at=datetime.fromisoformat(data["created_at"]),
    )


def updates(
    tenant_id: str | None, knowledge_base_id: str, sink: Sink | None = None
) -> AsyncGenerator[Document, None]:
    """Documents of one (already tenant-checked) base as their status or progress changes:
    written to `sink` by the documents feed while it renders them, the others yielded."""

    def concerns(message: dict[str, Any]) -> bool:
        return message.get("knowledge_base_id") == knowledge_base_id and (
            tenant_id is None or message.get("tenant_id") == tenant_id
        )

    return feeds.follow_channel(CHANNEL, from_event, concerns, sink)
