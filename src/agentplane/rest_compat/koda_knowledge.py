"""Koda knowledge and memory (`/api/control-plane/knowledge-bases`, `…/documents`,
`…/memories`).

Koda's control plane lists "memory and knowledge surfaces" (knowledge assets, documents,
memory curation) without documenting their paths; these follow its control-plane
conventions as `koda_approvals` does (snake_case records, the `{code, category, message,
…}` envelope, `limit`/`cursor` paging with `next_cursor`/`has_more`) over the same
resolvers as GraphQL's knowledge fields and mutations. Documents index in the background:
adding one answers 202 with the document `queued` (or, with `?wait=true`, 200 once it is
`ready` or `failed`); `GET …/documents/{id}` shows its progress.
"""

from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.responses import Response

from agentplane.core.errors import ValidationFailed
from agentplane.models import Document, DocumentStatus, KnowledgeBase, Memory, MemoryStatus
from agentplane.resolvers import knowledge, memories
from agentplane.rest_compat.common import (
    BOOL,
    DATETIME,
    INT,
    NUM,
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
    parse_datetime,
    record,
)
from agentplane.rest_compat.koda import koda
from agentplane.retrieval.fusion import Hit
from agentplane.retrieval.memory import TYPES

CP = "/api/control-plane"
KB = CP + "/knowledge-bases"
DOCS = CP + "/documents"
MEMS = CP + "/memories"
FIELDS = {
    "knowledgeBaseId": "knowledge_base_id",
    "contentType": "content_type",
    "conflictKey": "conflict_key",
    "expiresAt": "expires_at",
    "first": "limit",
}

# ---------------------------------------------------------------- records
KNOWLEDGE_BASE = record({"id": STR, "name": STR, "description": STR, "created_at": DATETIME})
DOC_STATUS = {
    "type": "string",
    "enum": [s.value for s in DocumentStatus if s is not DocumentStatus.INGESTING],
}
DOCUMENT = record(
    {
        "id": STR,
        "knowledge_base_id": STR,
        "title": STR,
        "content_type": STR,
        "size_bytes": INT,
        "status": DOC_STATUS,
        "progress": NUM,
        "chunk_count": INT,
        "chunks_indexed": INT,
        "error": nullable(STR),
        "error_code": nullable(STR),
        "created_at": DATETIME,
    }
)
MEMORY = record(
    {
        "id": STR,
        "agent_id": nullable(STR),
        "subject": nullable(STR),
        "type": STR,
        "text": STR,
        "importance": NUM,
        "status": {"type": "string", "enum": [s.value for s in MemoryStatus]},
        "conflict_key": nullable(STR),
        "superseded_by": nullable(STR),
        "source_step_id": nullable(STR),
        "expires_at": nullable(DATETIME),
        "created_at": DATETIME,
        "updated_at": DATETIME,
    }
)
MEMORY_RESULT = record(
    {"memory": MEMORY, "superseded": array(MEMORY), "eviction_candidates": array(MEMORY)}
)
HIT = record(
    {
        "id": STR,
        "text": STR,
        "fused_score": NUM,
        "fused_rank": INT,
        "scores": array(record({"retriever": STR, "rank": INT, "score": NUM})),
        "details": OBJ,
    }
)
HITS = record({"hits": array(HIT)})


def kb_record(kb: KnowledgeBase) -> dict[str, Any]:
    return {
        "id": kb.id,
        "name": kb.name,
        "description": kb.description,
        "created_at": iso(kb.created_at),
    }


def document_record(d: Document) -> dict[str, Any]:
    return {
        "id": d.id,
        "knowledge_base_id": d.knowledge_base_id,
        "title": d.title,
        "content_type": d.content_type,
        "size_bytes": d.size_bytes,
        "status": str(d.status),
        "progress": d.progress,
        "chunk_count": d.chunk_count,
        "chunks_indexed": d.chunks_indexed,
        "error": d.error,
        "error_code": d.error_code,
        "created_at": iso(d.created_at),
    }


def memory_record(m: Memory) -> dict[str, Any]:
    return {
        "id": m.id,
        "agent_id": m.agent_id,
        "subject": m.subject,
        "type": m.type,
        "text": m.text,
        "importance": m.importance,
        "status": str(m.status),
        "conflict_key": m.conflict_key,
        "superseded_by": m.superseded_by,
        "source_step_id": m.source_step_id,
        "expires_at": iso(m.expires_at),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def _result(
    m: Memory, superseded: list[Memory] | None = None, evict: list[Memory] | None = None
) -> Response:
    return json(
        {
            "memory": memory_record(m),
            "superseded": [memory_record(x) for x in superseded or []],
            "eviction_candidates": [memory_record(x) for x in evict or []],
        }
    )


def hit_record(h: Hit) -> dict[str, Any]:
    return {
        "id": h.id,
        "text": h.text,
        "fused_score": h.fused_score,
        "fused_rank": h.fused_rank,
        "scores": [
            {"retriever": name, "rank": int(s["rank"]), "score": s["score"]}
            for name, s in h.retrievers.items()
        ],
        "details": h.meta,
    }


# ---------------------------------------------------------------- knowledge bases
@koda.route(
    "GET",
    KB,
    summary="Knowledge bases of your tenant",
    ok=Resp(record({"knowledge_bases": array(KNOWLEDGE_BASE)})),
)
async def list_knowledge_bases(call: Call) -> Response:
    kbs = await knowledge.list_knowledge_bases(call.actor)
    return json({"knowledge_bases": [kb_record(kb) for kb in kbs]})


@koda.route(
    "POST",
    KB,
    summary="Create a knowledge base",
    ok={201: Resp(KNOWLEDGE_BASE, "Created")},
    body=obj(
        {"name": {"type": "string", "maxLength": 200}, "description": STR},
        required=("name",),
        additionalProperties=False,
    ),
)
async def create_knowledge_base(call: Call) -> Response:
    kb = await knowledge.create_knowledge_base(
        call.actor, name=call.body["name"], description=call.body.get("description", "")
    )
    return json(kb_record(kb), 201)


@koda.route(
    "GET", KB + "/{knowledge_base_id}", summary="One knowledge base", ok=Resp(KNOWLEDGE_BASE)
)
async def get_knowledge_base(call: Call) -> Response:
    kb = await knowledge.get_knowledge_base(call.actor, call.path["knowledge_base_id"])
    return json(kb_record(kb))


@koda.route(
    "DELETE",
    KB + "/{knowledge_base_id}",
    summary="Delete a knowledge base with its documents and chunks",
    ok=Resp(KNOWLEDGE_BASE),
)
async def delete_knowledge_base(call: Call) -> Response:
    kb = await knowledge.delete_knowledge_base(call.actor, call.path["knowledge_base_id"])
    return json(kb_record(kb))


@koda.route(
    "POST",
    KB + "/{knowledge_base_id}/search",
    summary="Preview hybrid retrieval, with each retriever's rank and score",
    ok=Resp(HITS),
    body=obj(
        {"query": STR, "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}},
        required=("query",),
        additionalProperties=False,
    ),
    fields=FIELDS,
)
async def search_knowledge_base(call: Call) -> Response:
    hits = await knowledge.retrieve(
        call.actor,
        [call.path["knowledge_base_id"]],
        call.body["query"],
        int(call.body.get("limit", 5)),  # JSON Schema's integer admits 5.0
    )
    return json({"hits": [hit_record(h) for h in hits]})


# ---------------------------------------------------------------- documents
WAIT = Param(
    "wait",
    {"type": "boolean", "default": False},
    description="Answer (200) once the document is ready or failed instead of at once (202).",
)
ADDED = {
    202: Resp(DOCUMENT, "Accepted: the document is queued and indexes in the background"),
    200: Resp(DOCUMENT, "With `wait=true`: the document, ready or failed"),
}
ADD_DOCUMENT = obj(
    {
        "title": {"type": "string", "maxLength": 500},
        "content_type": STR,
        "text": STR,
        "url": {"type": "string", "maxLength": 2000},
    },
    additionalProperties=False,
    oneOf=[{"required": ["text"]}, {"required": ["url"]}],
)
UPLOAD = obj(
    {
        "file": {"type": "string", "contentMediaType": "application/octet-stream"},
        "title": STR,
        "content_type": STR,
    },
    required=("file",),
)


async def _added(call: Call, doc: Document) -> Response:
    if call.query["wait"]:
        return json(document_record(await knowledge.wait_for_document(call.actor, doc.id)))
    return json(document_record(doc), 202)


@koda.route(
    "GET",
    KB + "/{knowledge_base_id}/documents",
    summary="Documents of a knowledge base, with their indexing status and progress",
    ok=Resp(record({"documents": array(DOCUMENT)})),
)
async def list_documents(call: Call) -> Response:
    docs = await knowledge.list_documents(call.actor, call.path["knowledge_base_id"])
    return json({"documents": [document_record(d) for d in docs]})


@koda.route(
    "POST",
    KB + "/{knowledge_base_id}/documents",
    summary="Add a document from `text` or a `url`; it indexes in the background",
    ok=ADDED,
    body=ADD_DOCUMENT,
    query=(WAIT,),
    errors=(413, 415, 502),
    fields=FIELDS,
)
async def add_document(call: Call) -> Response:
    kb_id, body = call.path["knowledge_base_id"], call.body
    if "url" in body:
        doc = await knowledge.ingest_url(
            call.actor, knowledge_base_id=kb_id, url=body["url"], title=body.get("title")
        )
    else:
        doc = await knowledge.add_document(
            call.actor,
            knowledge_base_id=kb_id,
            title=body.get("title", ""),
            content_type=body.get("content_type") or "text/plain",
            text=body["text"],
        )
    return await _added(call, doc)


@koda.route(
    "POST",
    KB + "/{knowledge_base_id}/documents/upload",
    summary="Upload a document file (multipart/form-data part `file`); it indexes in the "
    "background",
    description="The type comes from `content_type`, else the part's content type, else the "
    "file name's extension (.txt, .md, .html).",
    ok=ADDED,
    body=UPLOAD,
    body_media_type="multipart/form-data",
    query=(WAIT,),
    errors=(413, 415),
    fields=FIELDS,
)
async def upload_document(call: Call) -> Response:
    try:
        form = await call.request.form(max_files=1, max_fields=10)
    except (HTTPException, MultiPartException) as exc:  # a malformed multipart body
        raise ValidationFailed(f"Malformed multipart body: {_detail(exc)}", field="file") from None
    try:
        file, title, declared = form.get("file"), form.get("title"), form.get("content_type")
        if not isinstance(file, UploadFile):
            raise ValidationFailed(
                "`file` (a multipart/form-data part with a file name) is required", field="file"
            )
        data = await file.read()  # bounded by the request body limit; the resolver checks
        doc = await knowledge.upload_document(
            call.actor,
            knowledge_base_id=call.path["knowledge_base_id"],
            data=data,
            filename=file.filename,
            content_type=(declared if isinstance(declared, str) and declared else None)
            or file.content_type,
            title=title if isinstance(title, str) and title else None,
        )
    finally:
        await form.close()
    return await _added(call, doc)


def _detail(exc: Exception) -> str:
    return str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc)


@koda.route(
    "GET",
    DOCS + "/{document_id}",
    summary="One document, with its indexing status and progress",
    ok=Resp(DOCUMENT),
)
async def get_document(call: Call) -> Response:
    return json(document_record(await knowledge.get_document(call.actor, call.path["document_id"])))


@koda.route(
    "DELETE",
    DOCS + "/{document_id}",
    summary="Delete a document and its chunks (also while it indexes)",
    ok=Resp(DOCUMENT),
)
async def delete_document(call: Call) -> Response:
    doc = await knowledge.delete_document(call.actor, call.path["document_id"])
    return json(document_record(doc))


# ---------------------------------------------------------------- memories
MEMORY_TYPE = {"type": "string", "enum": list(TYPES)}
MEMORY_STATUS = {"type": "string", "enum": [s.value for s in MemoryStatus]}
IMPORTANCE = {"type": "number", "minimum": 0, "maximum": 1}
EXPIRES = nullable({"type": "string", "format": "date-time"})


@koda.route(
    "GET",
    MEMS,
    summary="Memories of your tenant, newest first",
    ok=Resp(record({"memories": array(MEMORY), "next_cursor": nullable(STR), "has_more": BOOL})),
    query=(
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
        Param("cursor", {"type": "string", "maxLength": 200}),
        Param("agent_id", {"type": "string", "maxLength": 200}),
        Param("subject", {"type": "string", "maxLength": 200}),
        Param("status", MEMORY_STATUS),
        Param("type", {"type": "string", "maxLength": 32}),
    ),
    fields=FIELDS,
)
async def list_memories(call: Call) -> Response:
    q = call.query
    page = await memories.list_memories(
        call.actor,
        q["limit"],
        q.get("cursor"),
        agent_id=q.get("agent_id"),
        subject=q.get("subject"),
        status=q.get("status"),
        type=q.get("type"),
    )
    return json(
        {
            "memories": [memory_record(m) for m in page.items],
            "next_cursor": page.cursor(page.items[-1]) if page.has_next else None,
            "has_more": page.has_next,
        }
    )


@koda.route(
    "POST",
    MEMS,
    summary="Write a memory (`pending` ones wait for approval); a newer one with the same "
    "`conflict_key` supersedes the older",
    ok={201: Resp(MEMORY_RESULT, "Created")},
    body=obj(
        {
            "text": STR,
            "agent_id": nullable(STR),
            "subject": nullable(STR),
            "type": MEMORY_TYPE,
            "importance": IMPORTANCE,
            "conflict_key": nullable(STR),
            "expires_at": EXPIRES,
            "pending": BOOL,
        },
        required=("text",),
        additionalProperties=False,
    ),
    fields=FIELDS,
)
async def create_memory(call: Call) -> Response:
    b = call.body
    created, superseded, evict = await memories.create_memory(
        call.actor,
        text=b["text"],
        agent_id=b.get("agent_id"),
        subject=b.get("subject"),
        type=b.get("type", "fact"),
        importance=float(b.get("importance", 0.5)),
        conflict_key=b.get("conflict_key"),
        expires_at=parse_datetime(b.get("expires_at"), "expires_at"),
        pending=b.get("pending", False),
    )
    response = _result(created, superseded, evict)
    response.status_code = 201
    return response


@koda.route(
    "POST",
    MEMS + "/recall",
    summary="Recall memories as an agent would, with each retriever's rank and score",
    ok=Resp(HITS),
    body=obj(
        {
            "query": STR,
            "agent_id": nullable(STR),
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
        },
        required=("query",),
        additionalProperties=False,
    ),
    fields=FIELDS,
)
async def recall_memories(call: Call) -> Response:
    b = call.body
    hits = await memories.recall(call.actor, b["query"], b.get("agent_id"), int(b.get("limit", 5)))
    return json({"hits": [hit_record(h) for h in hits]})


@koda.route("GET", MEMS + "/{memory_id}", summary="One memory", ok=Resp(MEMORY))
async def get_memory(call: Call) -> Response:
    return json(memory_record(await memories.get_memory(call.actor, call.path["memory_id"])))


@koda.route(
    "PATCH",
    MEMS + "/{memory_id}",
    summary="Edit a memory (a new text is embedded again)",
    ok=Resp(MEMORY_RESULT),
    body=obj(
        {"text": STR, "type": MEMORY_TYPE, "importance": IMPORTANCE, "expires_at": EXPIRES},
        additionalProperties=False,
    ),
    fields=FIELDS,
)
async def update_memory(call: Call) -> Response:
    changes = {k: v for k, v in call.body.items() if v is not None}
    if "expires_at" in changes:
        changes["expires_at"] = parse_datetime(changes["expires_at"], "expires_at")
    return _result(await memories.update_memory(call.actor, call.path["memory_id"], **changes))


@koda.route(
    "POST",
    MEMS + "/{memory_id}/approve",
    summary="A pending memory goes live (superseding its key's older one)",
    ok=Resp(MEMORY_RESULT),
)
async def approve_memory(call: Call) -> Response:
    return _result(*await memories.approve_memory(call.actor, call.path["memory_id"]))


@koda.route(
    "POST",
    MEMS + "/{memory_id}/archive",
    summary="Archive a memory: kept, listed, never recalled",
    ok=Resp(MEMORY_RESULT),
)
async def archive_memory(call: Call) -> Response:
    return _result(await memories.archive_memory(call.actor, call.path["memory_id"]))


@koda.route("DELETE", MEMS + "/{memory_id}", summary="Delete a memory", ok=Resp(MEMORY_RESULT))
async def delete_memory(call: Call) -> Response:
    return _result(await memories.delete_memory(call.actor, call.path["memory_id"]))
