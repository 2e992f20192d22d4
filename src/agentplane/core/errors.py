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


class FetchRefused(DomainError):
    """A URL to ingest names a host the installation may not fetch from."""

    code = "FETCH_REFUSED"


class FetchFailed(DomainError):
    """The URL to ingest could not be fetched (connection, timeout, HTTP error)."""

    code = "FETCH_FAILED"
