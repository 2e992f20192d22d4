"""Knowledge bases, their documents and chunks, and agents' memories."""

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids
from agentplane.models.tenant import Tenant


class DocumentStatus(StrEnum):
    INGESTING = "ingesting"  # legacy: rows of synchronous ingest (never written now)
    QUEUED = "queued"  # accepted and validated; no indexer has started
    INDEXING = "indexing"  # an indexer holds the lease and is embedding
    READY = "ready"  # chunks visible to retrieval (they appear in the same transaction)
    FAILED = "failed"


class KnowledgeBase(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.knowledge_base_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="knowledge_bases", on_delete=fields.CASCADE
    )
    tenant_id: str
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "knowledge_base"
        unique_together = (("tenant", "name"),)


class Document(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.document_id)
    knowledge_base: fields.ForeignKeyRelation[KnowledgeBase] = fields.ForeignKeyField(
        "models.KnowledgeBase", related_name="documents", on_delete=fields.CASCADE
    )
    knowledge_base_id: str
    tenant_id = fields.CharField(max_length=40, db_index=True)
    title = fields.CharField(max_length=500)
    content_type = fields.CharField(max_length=64)
    size_bytes = fields.IntField(default=0)
    status = fields.CharEnumField(DocumentStatus, max_length=16, default=DocumentStatus.INGESTING)
    progress = fields.FloatField(default=0.0)  # 0..1: chunks indexed / chunks
    chunk_count = fields.IntField(default=0)  # known at acceptance: the chunks to index
    chunks_indexed = fields.IntField(default=0)
    error = fields.TextField(null=True)
    error_code = fields.CharField(max_length=64, null=True)
    # The accepted text until it is indexed (a restarted indexer starts from it), then null.
    source = fields.TextField(null=True)
    # The indexer's lease: an INDEXING/QUEUED document past it is resumed by maintenance.
    lease_expires_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "document"


class Chunk(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.chunk_id)
    document: fields.ForeignKeyRelation[Document] = fields.ForeignKeyField(
        "models.Document", related_name="chunks", on_delete=fields.CASCADE
    )
    document_id: str
    knowledge_base_id = fields.CharField(max_length=40, db_index=True)
    tenant_id = fields.CharField(max_length=40)
    position = fields.IntField()
    text = fields.TextField()
    # float32 little-endian, L2-normalised (see retrieval.vectors: no pgvector here).
    embedding = fields.BinaryField(null=True)

    class Meta:
        table = "chunk"
        indexes = (("knowledge_base_id", "id"),)


class MemoryStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ARCHIVED = "archived"
    PENDING = "pending"  # awaiting an operator's approval


class Memory(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.memory_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="memories", on_delete=fields.CASCADE
    )
    tenant_id: str
    agent_id = fields.CharField(max_length=40, null=True)  # null: every agent of the tenant
    subject = fields.CharField(max_length=200, null=True)  # the user it is about, if any
    type = fields.CharField(max_length=32, default="fact")
    text = fields.TextField()
    importance = fields.FloatField(default=0.5)
    source_step_id = fields.CharField(max_length=40, null=True)
    expires_at = fields.DatetimeField(null=True)
    conflict_key = fields.CharField(max_length=200, null=True)
    status = fields.CharEnumField(MemoryStatus, max_length=16, default=MemoryStatus.ACTIVE)
    superseded_by = fields.CharField(max_length=40, null=True)
    embedding = fields.BinaryField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "memory"
        indexes = (("tenant_id", "agent_id", "status"),)
