"""Knowledge bases and documents: tenant filter, permissions, ingest, retrieval."""

import os

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from agentplane.core.errors import (
    Conflict,
    DocumentTooLarge,
    UnsupportedContentType,
    ValidationFailed,
)
from agentplane.models import Chunk, Document, DocumentStatus, KnowledgeBase
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, get_owned, require, scoped_to_tenant
from agentplane.resolvers.tenants import check_writable, resolve_tenant_name
from agentplane.retrieval import ingest
from agentplane.retrieval import knowledge as retrieval
from agentplane.retrieval.embedders import get_embedder, to_blob
from agentplane.retrieval.fusion import Hit
from agentplane.retrieval.vectors import vector_index

ALIASES = {"text": "text/plain", "markdown": "text/markdown", "html": "text/html"}


def max_document_bytes() -> int:
    # Below the GraphQL request-body cap (1 MiB), so the error names the document.
    return int(os.environ.get("AGENTPLANE_MAX_DOCUMENT_BYTES", str(512 * 1024)))


async def get_knowledge_base(actor: Actor | None, kb_id: str) -> KnowledgeBase:
    actor = require(actor, Perm.KNOWLEDGE_READ)
    return await get_owned(actor, KnowledgeBase, kb_id, "Knowledge base")


async def list_knowledge_bases(actor: Actor | None) -> list[KnowledgeBase]:
    actor = require(actor, Perm.KNOWLEDGE_READ)
    query = await scoped_to_tenant(actor, KnowledgeBase.all(), None)
    return await query.order_by("id")


@audited("knowledge_base.create")
async def create_knowledge_base(
    actor: Actor | None, *, name: str, description: str = "", tenant: str | None = None
) -> KnowledgeBase:
    actor = require(actor, Perm.KNOWLEDGE_WRITE)
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("`name` must be 1-200 characters", field="name")
    tenant_id = await resolve_tenant_name(actor, tenant)
    try:
        return await KnowledgeBase.create(tenant_id=tenant_id, name=name, description=description)
    except IntegrityError:
        raise Conflict(f"A knowledge base named {name!r} already exists", field="name") from None


async def _writable_kb(actor: Actor | None, kb_id: str) -> KnowledgeBase:
    actor = require(actor, Perm.KNOWLEDGE_WRITE)
    kb = await get_knowledge_base(actor, kb_id)
    await check_writable(kb.tenant_id)  # a suspended tenant keeps reads only
    return kb


@audited("knowledge_base.delete")
async def delete_knowledge_base(actor: Actor | None, kb_id: str) -> KnowledgeBase:
    kb = await _writable_kb(actor, kb_id)
    async with in_transaction():
        # Chunks first: SQLite's FTS triggers fire per deleted chunk row.
        await Chunk.filter(knowledge_base_id=kb.id).delete()
        await Document.filter(knowledge_base_id=kb.id).delete()
        await KnowledgeBase.filter(id=kb.id).delete()
    vector_index.invalidate(kb.id)
    return kb


async def list_documents(actor: Actor | None, kb_id: str) -> list[Document]:
    kb = await get_knowledge_base(actor, kb_id)
    return await Document.filter(knowledge_base_id=kb.id).order_by("id")


async def get_document(actor: Actor | None, doc_id: str) -> Document:
    actor = require(actor, Perm.KNOWLEDGE_READ)
    return await get_owned(actor, Document, doc_id, "Document")


@audited("document.add")
async def add_document(
    actor: Actor | None, *, knowledge_base_id: str, title: str, content_type: str, text: str
) -> Document:
    """Extract, chunk, embed, then write the document and every chunk in one
    transaction: a refused or failed document leaves nothing half-indexed."""
    kb = await _writable_kb(actor, knowledge_base_id)
    content_type = ALIASES.get(content_type, content_type).split(";")[0].strip().lower()
    if content_type not in ingest.CONTENT_TYPES:
        raise UnsupportedContentType(
            f"Content type {content_type!r} is not supported; one of {list(ingest.CONTENT_TYPES)}",
            field="contentType",
        )
    size = len(text.encode())
    if size > max_document_bytes():
        raise DocumentTooLarge(
            f"Document is {size} bytes; the limit is {max_document_bytes()}", field="text"
        )
    if not title.strip() or len(title) > 500:
        raise ValidationFailed("`title` must be 1-500 characters", field="title")
    pieces = ingest.chunk(ingest.extract(content_type, text))
    if not pieces:
        raise ValidationFailed("The document has no text", field="text")
    vectors = await get_embedder().embed(pieces)
    async with in_transaction():
        doc = await Document.create(
            knowledge_base_id=kb.id,
            tenant_id=kb.tenant_id,
            title=title,
            content_type=content_type,
            size_bytes=size,
            status=DocumentStatus.INGESTING,
        )
        await Chunk.bulk_create(
            [
                Chunk(
                    document_id=doc.id,
                    knowledge_base_id=kb.id,
                    tenant_id=kb.tenant_id,
                    position=i,
                    text=piece,
                    embedding=to_blob(vectors[i]),
                )
                for i, piece in enumerate(pieces)
            ]
        )
        doc.status, doc.progress, doc.chunk_count = DocumentStatus.READY, 1.0, len(pieces)
        await doc.save(update_fields=["status", "progress", "chunk_count"])
    vector_index.invalidate(kb.id)
    return doc


@audited("document.delete")
async def delete_document(actor: Actor | None, doc_id: str) -> Document:
    doc = await get_document(actor, doc_id)
    await _writable_kb(actor, doc.knowledge_base_id)
    async with in_transaction():
        await Chunk.filter(document_id=doc.id).delete()
        await Document.filter(id=doc.id).delete()
    vector_index.invalidate(doc.knowledge_base_id)
    return doc


async def retrieve(
    actor: Actor | None, knowledge_base_ids: list[str], query: str, first: int = 5
) -> list[Hit]:
    """Preview what an agent would retrieve: every id is tenant-checked."""
    if not 1 <= first <= 100:
        raise ValidationFailed("`first` must be 1..100", field="first")
    kbs = [await get_knowledge_base(actor, kb_id) for kb_id in knowledge_base_ids]
    return await retrieval.retrieve([kb.id for kb in kbs], query, first)
