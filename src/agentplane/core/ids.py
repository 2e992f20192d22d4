"""Prefixed, time-sortable opaque IDs (`ten_…`, `agt_…`).

The hex millisecond timestamp first makes IDs sort by creation time, so keyset
pagination can order by the primary key alone.
"""

import secrets
import time

PREFIXES = {
    "ten": "Tenant",
    "tok": "AccessToken",
    "agt": "Agent",
    "tsk": "Task",
    "stp": "Step",
    "use": "UsageRecord",
    "usr": "User",
    "ras": "RoleAssignment",
    "ses": "Session",
    "dev": "DeviceGrant",
    "oid": "OidcLogin",
    "aud": "AuditEvent",
    "bud": "Budget",
    "rsv": "Reservation",
    "pky": "ProviderKey",
    "kb": "KnowledgeBase",
    "doc": "Document",
    "chk": "Chunk",
    "mem": "Memory",
    "mcp": "McpServer",
    "tl": "Tool",
    "apr": "ApprovalRequest",
}


MAX_LEN = 40  # the ID columns' width: longer strings name nothing


def new_id(prefix: str) -> str:
    assert prefix in PREFIXES, prefix
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


def kind_of(id_: str) -> str | None:
    """The model name an ID names, or None when the prefix is unknown."""
    prefix, sep, _ = id_.partition("_")
    return PREFIXES.get(prefix) if sep else None


# Module-level defaults for model primary keys (migrations cannot serialise lambdas).
def tenant_id() -> str:
    return new_id("ten")


def token_id() -> str:
    return new_id("tok")


def agent_id() -> str:
    return new_id("agt")


def task_id() -> str:
    return new_id("tsk")


def step_id() -> str:
    return new_id("stp")


def usage_id() -> str:
    return new_id("use")


def user_id() -> str:
    return new_id("usr")


def role_assignment_id() -> str:
    return new_id("ras")


def session_id() -> str:
    return new_id("ses")


def device_grant_id() -> str:
    return new_id("dev")


def oidc_login_id() -> str:
    return new_id("oid")


def audit_id() -> str:
    return new_id("aud")


def budget_id() -> str:
    return new_id("bud")


def reservation_id() -> str:
    return new_id("rsv")


def provider_key_id() -> str:
    return new_id("pky")


def knowledge_base_id() -> str:
    return new_id("kb")


def document_id() -> str:
    return new_id("doc")


def chunk_id() -> str:
    return new_id("chk")


def memory_id() -> str:
    return new_id("mem")


def mcp_server_id() -> str:
    return new_id("mcp")


def tool_id() -> str:
    return new_id("tl")


def approval_id() -> str:
    return new_id("apr")
