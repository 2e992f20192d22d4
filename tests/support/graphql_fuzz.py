"""Schemathesis in GraphQL mode against a live `/graphql`, with our own verdict.

Schemathesis counts every `errors` entry with a `path` as a server error; ours are
answers (NOT_FOUND, VALIDATION, …), so `verdict` fails only what is a fault: a 5xx, a
masked INTERNAL error, an error without a documented code, a non-null field that
resolved to null, or a response the GraphQL spec does not allow (its shape, its errors'
shape, or `data` that does not match the selection).
"""

from collections import Counter
from typing import Any

import schemathesis
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "VALIDATION",
    "CONFLICT",
    "TENANT_SUSPENDED",
    "BUDGET_EXCEEDED",
    "RATE_LIMITED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "MISSING_PAGINATION_BOUNDARIES",
    "EXCESSIVE_PAGINATION",
    "MAX_NODE_LIMIT_EXCEEDED",
    "BAD_REQUEST",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_CONTENT_TYPE",
    "DOCUMENT_TOO_LARGE",
}
NON_NULL = "Cannot return null for non-nullable field"


def _keys(selection: SelectionSetNode) -> tuple[dict[str, FieldNode], set[str]]:
    """The response keys a selection always yields, and those it may (type-conditioned)."""
    always: dict[str, FieldNode] = {}
    maybe: set[str] = set()
    for node in selection.selections:
        if isinstance(node, FieldNode):
            always[(node.alias or node.name).value] = node
        elif isinstance(node, InlineFragmentNode):
            inner_always, inner_maybe = _keys(node.selection_set)
            if node.type_condition is None:
                always.update(inner_always)
                maybe |= inner_maybe
            else:
                maybe |= set(inner_always) | inner_maybe
        elif isinstance(node, FragmentSpreadNode):
            maybe.add("*")  # named fragments: keys not checked at this level
    return always, maybe


def _shape_errors(value: Any, selection: SelectionSetNode, path: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in _shape_errors(item, selection, path)]
    if not isinstance(value, dict):
        return [f"{path}: an object was selected, got {type(value).__name__}"]
    always, maybe = _keys(selection)
    problems = []
    if "*" not in maybe:
        extra = set(value) - set(always) - maybe
        if extra:
            problems.append(f"{path}: keys not selected: {sorted(extra)}")
    missing = set(always) - set(value)
    if missing:
        problems.append(f"{path}: selected keys missing: {sorted(missing)}")
    for key, field in always.items():
        if field.selection_set is not None and key in value:
            problems += _shape_errors(value[key], field.selection_set, f"{path}.{key}")
    return problems


def verdict(status: int, content_type: str, body: Any, query: str) -> str | None:
    """Why the response is a fault, or None."""
    if status >= 500:
        return f"HTTP {status}"
    if not content_type.startswith(("application/json", "application/graphql-response+json")):
        return f"content type {content_type!r}"
    if not isinstance(body, dict) or not body.keys() <= {"data", "errors", "extensions"}:
        return f"not a GraphQL response: {str(body)[:200]}"
    errors = body.get("errors")
    if "data" not in body and not errors:
        return "neither data nor errors"
    if errors is not None and (not isinstance(errors, list) or not errors):
        return "`errors` present but not a non-empty list"
    for error in errors or []:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return f"malformed error {error!r}"
        for location in error.get("locations") or []:
            if not (isinstance(location, dict) and location.keys() == {"line", "column"}):
                return f"malformed location {location!r}"
        if not all(isinstance(p, str | int) for p in error.get("path") or []):
            return f"malformed path {error.get('path')!r}"
        code = (error.get("extensions") or {}).get("code")
        if code == "INTERNAL":
            return f"INTERNAL at {error.get('path')}: {error['message']}"
        if code not in CODES:
            return f"undocumented code {code!r}: {error['message']}"
        if NON_NULL in error["message"]:
            return f"non-null violation: {error['message']}"
    data = body.get("data")
    if data is not None:
        if not isinstance(data, dict):
            return "`data` is not an object"
        try:
            document = parse(query)
        except Exception:
            return "a response with data for a query that does not parse"
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        problems = _shape_errors(data, operations[0].selection_set, "data")
        if problems:
            return "; ".join(problems)
    return None


def fuzz(
    url: str, headers: dict[str, str], examples: int, seed: int | None = None
) -> tuple[Counter[str], Counter[str]]:
    """Every query and mutation with `examples` generated cases each: the error codes
    seen (`OK` for none), and the faults by operation and reason."""
    schema = schemathesis.graphql.from_url(url, headers=headers, timeout=30)
    seen: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    for result in schema.get_all_operations():
        _run(result.ok(), headers, examples, seed, seen, faults)
    return seen, faults


def _run(
    operation: Any,
    headers: dict[str, str],
    examples: int,
    seed: int | None,
    seen: Counter[str],
    faults: Counter[str],
) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers, timeout=30)
        try:
            body = response.json()
        except ValueError:
            body = None
        query = case.body if isinstance(case.body, str) else (case.body or {}).get("query", "")
        content_type = response.headers.get("content-type", [""])[0]
        reason = verdict(response.status_code, content_type, body, query)
        errors = (body.get("errors") or []) if isinstance(body, dict) else []
        codes = [(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)]
        seen.update(str(c) for c in codes or ["OK"])
        if reason is not None:
            faults[f"{operation.label}: {reason}"] += 1

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()
