"""Keyset pagination over time-sortable primary keys, shared by every list."""

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from agentplane.core.errors import ValidationFailed

T = TypeVar("T")
M = TypeVar("M", bound=Model)
MAX_PAGE = 100
MAX_KEY = 40  # longest primary key a cursor can name
DEFAULT_PAGE = 20


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    has_previous: bool

    def cursor(self, item: T) -> str:
        return encode_cursor(item.id)  # type: ignore[attr-defined]


def encode_cursor(key: object) -> str:
    return base64.urlsafe_b64encode(f"k:{key}".encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("Malformed cursor", field="after") from None
    if not raw.startswith("k:") or len(raw) > 2 + MAX_KEY:
        raise ValidationFailed("Malformed cursor", field="after")
    return raw[2:]


def page_size(first: int | None) -> int:
    """`first` defaults to 20 and is capped at 100 (never an unbounded list)."""
    if first is None:
        return DEFAULT_PAGE
    if first < 0:
        raise ValidationFailed("`first` must not be negative", field="first")
    return min(first, MAX_PAGE)


async def paginate(
    qs: QuerySet[M], first: int | None, after: str | None, newest_first: bool = False
) -> Page[M]:
    size = page_size(first)
    if after is not None:
        key = decode_cursor(after)
        qs = qs.filter(id__lt=key) if newest_first else qs.filter(id__gt=key)
    rows = await qs.order_by("-id" if newest_first else "id").limit(size + 1)
    return Page(items=list(rows[:size]), has_next=len(rows) > size, has_previous=after is not None)


@dataclass
class OffsetPage(Generic[T]):
    """A limit/offset page with the total count, for REST dialects that number pages."""

    items: list[T]
    total: int
    limit: int
    offset: int


MAX_OFFSET = 10**9


async def offset_paginate(
    qs: QuerySet[M], limit: int, offset: int, order: str = "id"
) -> OffsetPage[M]:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"`limit` must be 1..{MAX_PAGE}", field="limit")
    if not 0 <= offset <= MAX_OFFSET:
        raise ValidationFailed(f"`offset` must be 0..{MAX_OFFSET}", field="offset")
    total = await qs.count()
    rows = await qs.order_by(order).offset(offset).limit(limit)
    return OffsetPage(items=list(rows), total=total, limit=limit, offset=offset)
