"""Per-request context shared by every layer: the request ID (for audit records)."""

import contextvars
import re
import secrets

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentplane_request_id", default=None
)
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id(incoming: str | None = None) -> str:
    """The caller's X-Request-Id when it is sane, else a fresh one."""
    if incoming and _VALID.match(incoming):
        return incoming
    return "req_" + secrets.token_hex(8)


def set_request_id(value: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


def request_id() -> str | None:
    return _request_id.get()
