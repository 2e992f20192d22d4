"""OpenAPI 3.1 documents built from the dialects' route declarations (never by hand)."""

from collections.abc import Iterable
from typing import Any

from agentplane import __version__
from agentplane.rest_compat.common import JSON, Operation

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad request: malformed JSON or invalid parameters",
    401: "Missing or invalid credentials",
    403: "Authenticated but not allowed",
    404: "No such object (or not visible to the caller)",
    409: "Conflict with an existing object, or (a synchronous run) waiting for an approval",
    422: "Validation failed",
    429: "Rate limited",
    500: "Internal server error",
    502: "The run behind this call failed",
    503: "Not ready",
}


def _operation(op: Operation) -> JSON:
    doc: JSON = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
    }
    if op.description:
        doc["description"] = op.description
    params: list[JSON] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in op.path_params
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "schema": p.schema,
            **({"description": p.description} if p.description else {}),
        }
        for p in op.query
    ]
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {op.body_media_type: {"schema": op.body}},
        }
    responses: JSON = {}
    for status, resp in sorted(op.responses.items()):
        entry: JSON = {"description": resp.description or STATUS_TEXT.get(status, "")}
        if resp.schema is not None:
            entry["content"] = {resp.media_type: {"schema": resp.schema}}
            for media_type, schema in resp.alternatives:
                entry["content"][media_type] = {"schema": schema}
        responses[str(status)] = entry
    error_ref = {"$ref": f"#/components/schemas/{_error_name(op)}"}
    for status in op.error_statuses():
        responses[str(status)] = {
            "description": STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": error_ref}},
        }
    doc["responses"] = responses
    doc["security"] = [] if op.public else _security(op)
    return doc


def _error_name(op: Operation) -> str:
    return f"{op.dialect.name.capitalize()}Error"


def _security(op: Operation) -> list[JSON]:
    schemes: list[JSON] = [{"bearerAuth": []}]
    if op.dialect.cookie:
        schemes.append({f"{op.dialect.name}Session": []})
    return schemes


def build(operations: Iterable[Operation], title: str, description: str = "") -> JSON:
    paths: dict[str, Any] = {}
    errors: JSON = {}
    security: JSON = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
        errors[_error_name(op)] = op.dialect.error_schema
        if op.dialect.cookie:
            security[f"{op.dialect.name}Session"] = {
                "type": "apiKey",
                "in": "cookie",
                "name": op.dialect.cookie,
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__, "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": errors, "securitySchemes": security},
    }
