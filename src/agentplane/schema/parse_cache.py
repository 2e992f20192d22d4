"""A parse cache that leaves syntax errors to Strawberry.

Strawberry's own ParserCache parses inside the extension hook, so a syntax error
escapes Strawberry's error handling (over websockets the operation ends with no
error at all). Here a document that fails to parse is simply not cached, and
Strawberry parses it again on its normal path, which reports the error properly.
"""

from collections.abc import Iterator
from functools import lru_cache

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension


@lru_cache(maxsize=512)
def _parse(query: str) -> DocumentNode:
    return parse(query)


class ParseCache(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query and not context.parse_options:
            try:
                context.graphql_document = _parse(context.query)
            except GraphQLError:
                pass  # Strawberry parses again and reports it
        yield
