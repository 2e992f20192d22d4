"""Knowledge bases and documents: tenant filter, permissions, ingest, retrieval."""

import contextlib
import ipaddress
import mimetypes
import os
from collections.abc import AsyncGenerator
from urllib.parse import urlsplit

import httpx
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from agentplane.core.errors import (
    Conflict,
    DocumentTooLarge,
    FetchFailed,
    FetchRefused,
    NotFound,
    UnsupportedContentType,
    ValidationFailed,
)
from agentplane.core.post_commit import after_commit
from agentplane.models import Chunk, Document, DocumentStatus, KnowledgeBase
from agentplane.resolvers import indexing
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, get_owned, require, scoped_to_tenant
from agentplane.resolvers.tenants import check_writable, resolve_tenant_name
from agentplane.retrieval import ingest
from agentplane.retrieval import knowledge as retrieval
from agentplane.retrieval.fusion import Hit
from agentplane.retrieval.vectors import vector_index
from agentplane.subscriptions.feeds import Sink

ALIASES = {"text": "text/plain", "markdown": "text/markdown", "html": "text/html"}
FETCH_TIMEOUT_S = 10.0


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
        # Lock the documents first, as delete_document does, against a finishing indexer.
        await Document.filter(knowledge_base_id=kb.id).update(lease_expires_at=None)
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


def _content_type(declared: str | None, filename: str | None = None) -> str:
    """The declared type (aliases and parameters stripped); for a missing or generic one,
    the type the file name's extension implies (`.md`, `.html`, `.txt`)."""
    value = ALIASES.get(declared or "", declared or "").split(";")[0].strip().lower()
    if value in ("", "application/octet-stream") and filename:
        mimetypes.add_type("text/markdown", ".md")
        value = mimetypes.guess_type(filename)[0] or value
    if value not in ingest.CONTENT_TYPES:
        raise UnsupportedContentType(
            f"Content type {value or 'unknown'!r} is not supported; one of "
            f"{list(ingest.CONTENT_TYPES)}",
            field="contentType",
        )
    return value


def _check_size(size: int, field: str) -> None:
    if size > max_document_bytes():
        raise DocumentTooLarge(
            f"Document is {size} bytes; the limit is {max_document_bytes()}", field=field
        )


def _decode(data: bytes, field: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnsupportedContentType("Documents must be UTF-8 text", field=field) from None


@audited("document.add")
async def add_document(
    actor: Actor | None, *, knowledge_base_id: str, title: str, content_type: str, text: str
) -> Document:
    """Accepted `queued` after validation; a refused document leaves nothing stored."""
    await _writable_kb(actor, knowledge_base_id)  # NOT_FOUND/FORBIDDEN before the content
    return await _add_document(
        actor,
        knowledge_base_id=knowledge_base_id,
        title=title,
        content_type=_content_type(content_type),
        text=text,
        field="text",
    )


@audited("document.upload")
async def upload_document(
    actor: Actor | None,
    *,
    knowledge_base_id: str,
    data: bytes,
    filename: str | None = None,
    content_type: str | None = None,
    title: str | None = None,
) -> Document:
    """A file (GraphQL multipart or REST): its type from `content_type`, else its name."""
    await _writable_kb(actor, knowledge_base_id)  # NOT_FOUND/FORBIDDEN before any parsing
    kind = _content_type(content_type, filename)
    _check_size(len(data), "file")
    return await _add_document(
        actor,
        knowledge_base_id=knowledge_base_id,
        title=title or filename or "upload",
        content_type=kind,
        text=_decode(data, "file"),
        field="file",
    )


def fetch_allowed(host: str) -> bool:
    """Loopback only, unless AGENTPLANE_FETCH_ALLOW_HOSTS names more hosts (comma
    separated; `*` allows any): a server fetching URLs for its callers must not be a
    way into the networks it can reach."""
    allowed = {
        h.strip().lower() for h in os.environ.get("AGENTPLANE_FETCH_ALLOW_HOSTS", "").split(",")
    }
    if "*" in allowed or host.lower() in allowed:
        return True
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@audited("document.ingest_url")
async def ingest_url(
    actor: Actor | None, *, knowledge_base_id: str, url: str, title: str | None = None
) -> Document:
    """Fetch `url` (http/https, allowed hosts only, no redirects, at most the document
    size limit) and ingest it with the response's content type."""
    await _writable_kb(actor, knowledge_base_id)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("`url` must be an http(s) URL", field="url")
    if not fetch_allowed(parts.hostname):
        raise FetchRefused(
            f"Fetching from {parts.hostname!r} is not allowed (AGENTPLANE_FETCH_ALLOW_HOSTS)",
            field="url",
        )
    try:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise FetchFailed(f"GET {url} answered {response.status_code}", field="url")
            declared = response.headers.get("content-type")
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                _check_size(len(body), "url")  # stop reading as soon as it is too large
    except httpx.HTTPError as exc:
        raise FetchFailed(f"GET {url} failed: {type(exc).__name__}", field="url") from None
    kind = _content_type(declared, parts.path)
    name = title or parts.path.rsplit("/", 1)[-1] or parts.hostname
    return await _add_document(
        actor,
        knowledge_base_id=knowledge_base_id,
        title=name[:500],
        content_type=kind,
        text=_decode(bytes(body), "url"),
        field="url",
    )


async def _add_document(
    actor: Actor | None,
    *,
    knowledge_base_id: str,
    title: str,
    content_type: str,
    text: str,
    field: str,
) -> Document:
    """Validate (size, title, some text) and accept the document `queued`; indexing
    runs in the background once this call's transaction commits (see `indexing`)."""
    kb = await _writable_kb(actor, knowledge_base_id)
    size = len(text.encode())
    _check_size(size, field)
    if not title.strip() or len(title) > 500:
        raise ValidationFailed("`title` must be 1-500 characters", field="title")
    if "\x00" in text:
        raise ValidationFailed("NUL character in the document", field=field)
    pieces = ingest.chunk(ingest.extract(content_type, text))
    if not pieces:
        raise ValidationFailed("The document has no text", field=field)
    doc = await Document.create(
        knowledge_base_id=kb.id,
        tenant_id=kb.tenant_id,
        title=title,
        content_type=content_type,
        size_bytes=size,
        status=DocumentStatus.QUEUED,
        chunk_count=len(pieces),
        source=text,
        attempts=1,
        lease_expires_at=indexing.lease_until(),  # this process indexes it
    )

    async def begin() -> None:
        indexing.start(doc.id)
        await indexing.publish(doc)

    await after_commit(begin)
    return doc


async def wait_for_document(actor: Actor | None, doc_id: str, timeout: float = 300.0) -> Document:
    """The document once it is `ready` or `failed` (NOT_FOUND if deleted meanwhile)."""
    doc = await get_document(actor, doc_id)
    try:
        done = await indexing.wait(doc.id, timeout)
    except TimeoutError:
        return await get_document(actor, doc_id)  # still indexing: its progress tells
    if done is None:
        raise NotFound(f"Document {doc_id!r} not found")
    return done


@audited("document.delete")
async def delete_document(actor: Actor | None, doc_id: str) -> Document:
    """Also while it indexes: the indexer's final write matches no open document then."""
    doc = await get_document(actor, doc_id)
    await _writable_kb(actor, doc.knowledge_base_id)
    async with in_transaction():
        # Lock the row first (PostgreSQL): an indexer committing its chunks finishes before
        # the chunk delete below, or finds the document gone and writes nothing.
        await Document.filter(id=doc.id).update(lease_expires_at=None)
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


async def document_updates(
    actor: Actor | None, knowledge_base_id: str, sink: Sink | None = None
) -> AsyncGenerator[Document, None]:
    """Documents of one base as they are accepted, index (progress) and turn ready/failed:
    written to `sink` while it renders them, the others yielded."""
    kb = await get_knowledge_base(actor, knowledge_base_id)
    updates = indexing.updates(kb.tenant_id, kb.id, sink)
    async with contextlib.aclosing(updates):  # leaves the feed when the caller does
        async for doc in updates:
            yield doc
