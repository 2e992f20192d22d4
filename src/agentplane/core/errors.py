"""One domain error hierarchy; each adapter (GraphQL, REST dialects) renders it."""

from typing import Any


class DomainError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "NOT_FOUND"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class CsrfRejected(Forbidden):
    """A cookie-authenticated write without the session's X-CSRF-Token: no role helps."""


class ValidationFailed(DomainError):
    code = "VALIDATION"


class Conflict(DomainError):
    code = "CONFLICT"


class TenantSuspended(DomainError):
    code = "TENANT_SUSPENDED"


class BudgetExceeded(DomainError):
    code = "BUDGET_EXCEEDED"


class RateLimited(DomainError):
    code = "RATE_LIMITED"


class NotConfigured(DomainError):
    code = "NOT_CONFIGURED"


class SlowConsumer(DomainError):
    """A live stream fell too far behind and was closed; resume with its cursor."""

    code = "SLOW_CONSUMER"


class DocumentTooLarge(DomainError):
    code = "DOCUMENT_TOO_LARGE"


class UnsupportedContentType(DomainError):
    code = "UNSUPPORTED_CONTENT_TYPE"


def as_domain_error(exc: BaseException) -> DomainError | None:
    """A library's refusal of a caller's value, as the domain error it is, else None.

    The ORM refuses to compare or store a value that cannot fit its column (an ID or a
    name longer than any stored one): that is bad input, answered VALIDATION, never a
    masked server error; one place instead of a length check before every lookup.
    """
    from tortoise.exceptions import ValidationError  # late: only the error path needs it

    if isinstance(exc, ValidationError):
        column, _, reason = str(exc).partition(":")
        what = "is too long" if "Length of" in reason else "is not a valid value"
        return ValidationFailed(f"A value for `{column.strip()}` {what}")
    # PostgreSQL's class 22, "data exception": the value itself cannot be used (a NUL
    # character in text, a number out of range), whichever driver error carries it.
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain of causes; never loop on a cyclic one
        if seen is None:
            break
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return ValidationFailed(
                "A value cannot be used as given (e.g. a NUL character, or out of range)"
            )
        seen = seen.__cause__ or seen.__context__
    return None


class ApprovalRequired(DomainError):
    """A synchronous call's run waits for a human to decide a tool call: the caller cannot
    decide inside its own request, so it hears at once which approval to decide."""

    code = "APPROVAL_REQUIRED"


class FetchRefused(DomainError):
    """A URL to ingest names a host the installation may not fetch from."""

    code = "FETCH_REFUSED"


class FetchFailed(DomainError):
    """The URL to ingest could not be fetched (connection, timeout, HTTP error)."""

    code = "FETCH_FAILED"
