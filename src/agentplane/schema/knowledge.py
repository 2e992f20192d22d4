"""GraphQL for knowledge bases, documents, retrieval previews and memories."""

import contextlib
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any

import strawberry
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.types import Info

from agentplane import models
from agentplane.core.errors import ValidationFailed
from agentplane.resolvers import knowledge, memories
from agentplane.resolvers.pagination import Page
from agentplane.retrieval.fusion import Hit
from agentplane.schema.context import Context
from agentplane.schema.live import LiveFrames
from agentplane.schema.types import Connection


@strawberry.type
class Document:
    id: strawberry.ID
    knowledge_base_id: strawberry.ID
    title: str
    content_type: str
    size_bytes: int
    status: str = strawberry.field(description="queued, indexing, ready or failed.")
    progress: float = strawberry.field(description="chunksIndexed / chunkCount (0..1).")
    chunk_count: int = strawberry.field(description="The chunks the document splits into.")
    chunks_indexed: int
    error: str | None
    error_code: str | None = strawberry.field(
        description="Why indexing failed: INDEXING_FAILED or INGEST_ABANDONED."
    )
    created_at: datetime


def _doc(d: models.Document) -> Document:
    return Document(
        id=strawberry.ID(d.id),
        knowledge_base_id=strawberry.ID(d.knowledge_base_id),
        title=d.title,
        content_type=d.content_type,
        size_bytes=d.size_bytes,
        status=str(d.status),
        progress=d.progress,
        chunk_count=d.chunk_count,
        chunks_indexed=d.chunks_indexed,
        error=d.error,
        error_code=d.error_code,
        created_at=d.created_at,
    )


@strawberry.type
class KnowledgeBase:
    id: strawberry.ID
    name: str
    description: str
    created_at: datetime

    @strawberry.field
    async def documents(self, info: Info[Context, None]) -> list[Document]:
        return [_doc(d) for d in await knowledge.list_documents(info.context.actor, self.id)]


def _kb(kb: models.KnowledgeBase) -> KnowledgeBase:
    return KnowledgeBase(
        id=strawberry.ID(kb.id), name=kb.name, description=kb.description, created_at=kb.created_at
    )


@strawberry.type
class RetrieverScore:
    retriever: str
    rank: int
    score: float


@strawberry.type
class RetrievalHit:
    id: strawberry.ID
    text: str
    fused_score: float
    fused_rank: int
    scores: list[RetrieverScore]
    details: JSON


def _hit(h: Hit) -> RetrievalHit:
    return RetrievalHit(
        id=strawberry.ID(h.id),
        text=h.text,
        fused_score=h.fused_score,
        fused_rank=h.fused_rank,
        scores=[
            RetrieverScore(retriever=name, rank=int(s["rank"]), score=s["score"])
            for name, s in h.retrievers.items()
        ],
        details=h.meta,  # type: ignore[arg-type]
    )


@strawberry.type
class Memory:
    id: strawberry.ID
    agent_id: strawberry.ID | None
    subject: str | None
    type: str
    text: str
    importance: float
    status: str
    conflict_key: str | None
    superseded_by: strawberry.ID | None
    source_step_id: str | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _mem(m: models.Memory) -> Memory:
    return Memory(
        id=strawberry.ID(m.id),
        agent_id=strawberry.ID(m.agent_id) if m.agent_id else None,
        subject=m.subject,
        type=m.type,
        text=m.text,
        importance=m.importance,
        status=str(m.status),
        conflict_key=m.conflict_key,
        superseded_by=strawberry.ID(m.superseded_by) if m.superseded_by else None,
        source_step_id=m.source_step_id,
        expires_at=m.expires_at,
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


@strawberry.type
class MemoryPayload:
    memory: Memory
    superseded: list[Memory] = strawberry.field(
        description="Memories this one replaced (same conflict key, now `superseded`)."
    )
    eviction_candidates: list[Memory] = strawberry.field(
        description="Over the agent's soft budget (`config.maxMemories`): the least "
        "important, oldest active memories, suggested for archiving. Nothing was refused."
    )


def _mem_payload(
    m: models.Memory,
    superseded: Sequence[models.Memory] = (),
    evict: Sequence[models.Memory] = (),
) -> MemoryPayload:
    return MemoryPayload(
        memory=_mem(m),
        superseded=[_mem(x) for x in superseded],
        eviction_candidates=[_mem(x) for x in evict],
    )


@strawberry.type
class KnowledgeBasePayload:
    knowledge_base: KnowledgeBase


@strawberry.type
class DocumentPayload:
    document: Document


@strawberry.input
class CreateKnowledgeBaseInput:
    name: str
    description: str = ""
    tenant: str | None = strawberry.field(default=None, description="Platform callers only.")


@strawberry.input
class KnowledgeBaseIdInput:
    id: strawberry.ID


@strawberry.input
class DocumentIdInput:
    id: strawberry.ID


@strawberry.input
class MemoryIdInput:
    id: strawberry.ID


@strawberry.input(description="Exactly one of `text`, `file` (GraphQL multipart) or `url`.")
class AddDocumentInput:
    knowledge_base_id: strawberry.ID
    title: str | None = strawberry.field(
        default=None, description="Required with `text`; defaults to the file or URL name."
    )
    content_type: str | None = strawberry.field(
        default=None,
        description="text/plain, text/markdown or text/html (or text, markdown, html); "
        "for a file or URL, defaults to its declared type or its name's extension.",
    )
    text: str | None = None
    file: Upload | None = None
    url: str | None = strawberry.field(
        default=None,
        description="Fetched once (loopback hosts only unless AGENTPLANE_FETCH_ALLOW_HOSTS).",
    )
    wait: bool = strawberry.field(
        default=False,
        description="Answer once the document is ready or failed (else at once, queued).",
    )


@strawberry.input
class CreateMemoryInput:
    text: str
    agent_id: strawberry.ID | None = None
    subject: str | None = None
    type: str = "fact"
    importance: float = 0.5
    conflict_key: str | None = None
    expires_at: datetime | None = None
    pending: bool = False
    tenant: str | None = None


@strawberry.input
class UpdateMemoryInput:
    id: strawberry.ID
    text: str | None = None
    type: str | None = None
    importance: float | None = None
    expires_at: datetime | None = None


@strawberry.input
class MemoryFilter:
    agent_id: strawberry.ID | None = None
    subject: str | None = None
    status: str | None = None
    type: str | None = None


@strawberry.type
class KnowledgeQuery:
    @strawberry.field
    async def knowledge_bases(self, info: Info[Context, None]) -> list[KnowledgeBase]:
        return [_kb(kb) for kb in await knowledge.list_knowledge_bases(info.context.actor)]

    @strawberry.field
    async def knowledge_base(self, info: Info[Context, None], id: strawberry.ID) -> KnowledgeBase:
        return _kb(await knowledge.get_knowledge_base(info.context.actor, id))

    @strawberry.field(description="One document, with its indexing status and progress.")
    async def document(self, info: Info[Context, None], id: strawberry.ID) -> Document:
        return _doc(await knowledge.get_document(info.context.actor, id))

    @strawberry.field(description="Preview hybrid retrieval, with each retriever's rank/score.")
    async def retrieve(
        self,
        info: Info[Context, None],
        knowledge_base_ids: list[strawberry.ID],
        query: str,
        first: int = 5,
    ) -> list[RetrievalHit]:
        hits = await knowledge.retrieve(
            info.context.actor, [str(i) for i in knowledge_base_ids], query, first
        )
        return [_hit(h) for h in hits]

    @strawberry.field(description="Memories, newest first.")
    async def memories(
        self,
        info: Info[Context, None],
        filter: MemoryFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Memory]:
        f: dict[str, Any] = strawberry.asdict(filter) if filter else {}
        page = await memories.list_memories(info.context.actor, first, after, **f)
        return Connection.of(Page([_mem(m) for m in page.items], page.has_next, page.has_previous))

    @strawberry.field
    async def memory(self, info: Info[Context, None], id: strawberry.ID) -> Memory:
        return _mem(await memories.get_memory(info.context.actor, id))

    @strawberry.field
    async def recall(
        self,
        info: Info[Context, None],
        query: str,
        agent_id: strawberry.ID | None = None,
        first: int = 5,
    ) -> list[RetrievalHit]:
        hits = await memories.recall(info.context.actor, query, agent_id, first)
        return [_hit(h) for h in hits]


@strawberry.type
class KnowledgeSubscription:
    @strawberry.subscription(
        description="Documents of a knowledge base as they are added, index (progress) and "
        "turn ready or failed."
    )
    async def document_updates(
        self, info: Info[Context, None], knowledge_base_id: strawberry.ID
    ) -> AsyncGenerator[Document, None]:
        # Through the documents feed (subscriptions/feeds.py), as taskEvents goes.
        frames = LiveFrames.of(info, convert=_doc)
        updates = knowledge.document_updates(info.context.actor, knowledge_base_id, frames)
        async with contextlib.aclosing(updates):
            async for doc in updates:
                yield _doc(doc)


@strawberry.type
class KnowledgeMutation:
    @strawberry.mutation
    async def create_knowledge_base(
        self, info: Info[Context, None], input: CreateKnowledgeBaseInput
    ) -> KnowledgeBasePayload:
        kb = await knowledge.create_knowledge_base(
            info.context.actor, name=input.name, description=input.description, tenant=input.tenant
        )
        return KnowledgeBasePayload(knowledge_base=_kb(kb))

    @strawberry.mutation(description="Delete a knowledge base with its documents and chunks.")
    async def delete_knowledge_base(
        self, info: Info[Context, None], input: KnowledgeBaseIdInput
    ) -> KnowledgeBasePayload:
        kb = await knowledge.delete_knowledge_base(info.context.actor, input.id)
        return KnowledgeBasePayload(knowledge_base=_kb(kb))

    @strawberry.mutation(
        description="Add a document from text, an uploaded file or a URL. It is validated "
        "now (a refusal stores nothing) and indexed in the background: `queued`, `indexing` "
        "with progress, then `ready` (its chunks appear at once) or `failed`."
    )
    async def add_document(
        self, info: Info[Context, None], input: AddDocumentInput
    ) -> DocumentPayload:
        actor = info.context.actor
        given = [x for x in (input.text, input.file, input.url) if x is not None]
        if len(given) != 1:
            raise ValidationFailed("Give exactly one of `text`, `file` or `url`", field="input")
        if input.file is not None:
            upload: Any = input.file  # starlette's UploadFile under this ASGI app
            doc = await knowledge.upload_document(
                actor,
                knowledge_base_id=input.knowledge_base_id,
                data=await upload.read(),
                filename=getattr(upload, "filename", None),
                content_type=input.content_type or getattr(upload, "content_type", None),
                title=input.title,
            )
        elif input.url is not None:
            doc = await knowledge.ingest_url(
                actor, knowledge_base_id=input.knowledge_base_id, url=input.url, title=input.title
            )
        else:
            doc = await knowledge.add_document(
                actor,
                knowledge_base_id=input.knowledge_base_id,
                title=input.title or "",
                content_type=input.content_type or "text/plain",
                text=input.text or "",
            )
        if input.wait:
            doc = await knowledge.wait_for_document(actor, doc.id)
        return DocumentPayload(document=_doc(doc))

    @strawberry.mutation(description="Delete a document and its chunks.")
    async def delete_document(
        self, info: Info[Context, None], input: DocumentIdInput
    ) -> DocumentPayload:
        return DocumentPayload(
            document=_doc(await knowledge.delete_document(info.context.actor, input.id))
        )

    @strawberry.mutation
    async def create_memory(
        self, info: Info[Context, None], input: CreateMemoryInput
    ) -> MemoryPayload:
        fields: dict[str, Any] = strawberry.asdict(input)
        return _mem_payload(*await memories.create_memory(info.context.actor, **fields))

    @strawberry.mutation(description="Edit a memory (a new text is embedded again).")
    async def update_memory(
        self, info: Info[Context, None], input: UpdateMemoryInput
    ) -> MemoryPayload:
        changes: dict[str, Any] = {
            k: v for k, v in strawberry.asdict(input).items() if v is not None and k != "id"
        }
        return _mem_payload(await memories.update_memory(info.context.actor, input.id, **changes))

    @strawberry.mutation(
        description="A pending memory goes live (superseding its key's older one)."
    )
    async def approve_memory(
        self, info: Info[Context, None], input: MemoryIdInput
    ) -> MemoryPayload:
        return _mem_payload(*await memories.approve_memory(info.context.actor, input.id))

    @strawberry.mutation(description="Archive a memory: kept, listed, never recalled.")
    async def archive_memory(
        self, info: Info[Context, None], input: MemoryIdInput
    ) -> MemoryPayload:
        return _mem_payload(await memories.archive_memory(info.context.actor, input.id))

    @strawberry.mutation
    async def delete_memory(self, info: Info[Context, None], input: MemoryIdInput) -> MemoryPayload:
        return _mem_payload(await memories.delete_memory(info.context.actor, input.id))
