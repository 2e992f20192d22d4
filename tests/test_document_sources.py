"""Documents from an uploaded file (GraphQL multipart request spec) and from a URL
(a real local HTTP server): what is accepted, what is refused, and that a refusal
leaves nothing indexed."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from agentplane.models import Chunk, Document
from agentplane.resolvers import knowledge
from tests.support.factories import make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

CREATE_KB = """mutation($n: String!) {
  createKnowledgeBase(input: {name: $n}) { knowledgeBase { id } } }"""
ADD_DOC = """mutation($i: AddDocumentInput!) { addDocument(input: $i) {
  document { id title status progress chunkCount contentType sizeBytes } } }"""
RETRIEVE = """query($k: [ID!]!, $q: String!) { retrieve(knowledgeBaseIds: $k, query: $q) {
  text details } }"""

PAGES: dict[str, tuple[int, str, bytes]] = {
    "/guide.md": (200, "text/markdown; charset=utf-8", b"# Guide\n\nBackups run **nightly**."),
    "/page": (200, "text/html", b"<html><body><p>Office opens at nine.</p></body></html>"),
    "/report.pdf": (200, "application/pdf", b"%PDF-1.4"),
    "/missing": (404, "text/plain", b"not here"),
    "/moved": (302, "text/plain", b""),
}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/huge.txt":
            status, ctype, body = 200, "text/plain", b"word " * (knowledge.max_document_bytes())
        else:
            status, ctype, body = PAGES.get(self.path, (404, "text/plain", b""))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if status == 302:
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def _kb(gql: GraphQLClient, token: str) -> str:
    return str(
        (await gql.ok(CREATE_KB, token, n="help"))["createKnowledgeBase"]["knowledgeBase"]["id"]
    )


async def upload(
    client: httpx.AsyncClient,
    variables: dict[str, Any],
    file: tuple[str, bytes, str],
    headers: dict[str, str],
) -> httpx.Response:
    """A GraphQL multipart request: `operations`, `map`, then the file part."""
    operations = {"query": ADD_DOC, "variables": {"i": {**variables, "file": None}}}
    return await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.i.file"]})},
        files={"0": file},
        headers=headers,
    )


async def test_a_file_uploaded_over_graphql_multipart_is_indexed(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    kb = await _kb(gql, op)
    bearer = {"Authorization": f"Bearer {op}"}
    text = b"# Returns\n\nItems can be returned within **30 days**."

    response = await upload(
        client, {"knowledgeBaseId": kb, "wait": True}, ("returns.md", text, "text/markdown"), bearer
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    doc = body["data"]["addDocument"]["document"]
    assert (doc["title"], doc["contentType"], doc["status"]) == (
        "returns.md",
        "text/markdown",
        "ready",
    )
    assert (doc["progress"], doc["chunkCount"], doc["sizeBytes"]) == (1.0, 1, len(text))
    hits = (await gql.ok(RETRIEVE, op, k=[kb], q="how many days to return"))["retrieve"]
    assert hits[0]["text"] == "Returns\n\nItems can be returned within 30 days."
    # a generic type falls back to the name's extension
    generic = ("notes.txt", b"Plain notes.", "application/octet-stream")
    response = await upload(client, {"knowledgeBaseId": kb}, generic, bearer)
    assert response.json()["data"]["addDocument"]["document"]["contentType"] == "text/plain"


async def test_refused_uploads_leave_nothing_indexed(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    tenant, other = await make_tenant("acme"), await make_tenant("bolt")
    op, viewer = await make_token(tenant, "operator"), await make_token(tenant, "viewer")
    kb = await _kb(gql, op)
    foreign = await _kb(gql, await make_token(other, "operator"))
    bearer = {"Authorization": f"Bearer {op}"}
    cases = [
        (
            {"knowledgeBaseId": kb},
            ("a.pdf", b"%PDF-1.4", "application/pdf"),
            bearer,
            "UNSUPPORTED_CONTENT_TYPE",
        ),
        (
            {"knowledgeBaseId": kb},
            ("a.bin", b"\xff\xfe\x00", "text/plain"),
            bearer,
            "UNSUPPORTED_CONTENT_TYPE",
        ),
        (
            {"knowledgeBaseId": kb},
            ("big.txt", b"x" * (knowledge.max_document_bytes() + 1), "text/plain"),
            bearer,
            "DOCUMENT_TOO_LARGE",
        ),
        ({"knowledgeBaseId": foreign}, ("a.txt", b"mine now", "text/plain"), bearer, "NOT_FOUND"),
        (
            {"knowledgeBaseId": kb},
            ("a.txt", b"hi", "text/plain"),
            {"Authorization": f"Bearer {viewer}"},
            "FORBIDDEN",
        ),
        (
            {"knowledgeBaseId": kb, "text": "both"},
            ("a.txt", b"hi", "text/plain"),
            bearer,
            "VALIDATION",
        ),
    ]
    for variables, file, headers, code in cases:
        response = await upload(client, variables, file, headers)
        assert response.status_code == 200, response.text
        assert error_codes(response.json()) == [code], (file[0], response.json())
    # no bearer and no CSRF token: multipart is refused before it is parsed
    response = await upload(client, {"knowledgeBaseId": kb}, ("a.txt", b"hi", "text/plain"), {})
    assert response.status_code == 403
    assert await Document.all().count() == 0 and await Chunk.all().count() == 0


async def test_a_url_on_an_allowed_host_is_fetched_and_indexed(
    gql: GraphQLClient, site: str
) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    kb = await _kb(gql, op)

    md = await gql.ok(
        ADD_DOC, op, i={"knowledgeBaseId": kb, "url": f"{site}/guide.md", "wait": True}
    )
    html = await gql.ok(
        ADD_DOC,
        op,
        i={"knowledgeBaseId": kb, "url": f"{site}/page", "title": "Hours", "wait": True},
    )

    doc = md["addDocument"]["document"]
    assert (doc["title"], doc["contentType"], doc["status"]) == (
        "guide.md",
        "text/markdown",
        "ready",
    )
    assert html["addDocument"]["document"]["title"] == "Hours"
    chunks = {c.text for c in await Chunk.filter(knowledge_base_id=kb)}
    assert chunks == {"Guide\n\nBackups run nightly.", "Office opens at nine."}


async def test_refused_urls_leave_nothing_indexed(
    gql: GraphQLClient, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant("acme")
    op = await make_token(tenant, "operator")
    kb = await _kb(gql, op)
    cases = [
        (f"{site}/report.pdf", "UNSUPPORTED_CONTENT_TYPE"),
        (f"{site}/huge.txt", "DOCUMENT_TOO_LARGE"),
        (f"{site}/missing", "FETCH_FAILED"),
        (f"{site}/moved", "FETCH_FAILED"),  # redirects are not followed (here: to metadata)
        ("http://10.0.0.1/secret", "FETCH_REFUSED"),  # never contacted
        ("http://example.com/page", "FETCH_REFUSED"),
        ("file:///etc/passwd", "VALIDATION"),
        ("http://127.0.0.1:1/closed", "FETCH_FAILED"),
    ]
    for url, code in cases:
        body = await gql(ADD_DOC, op, i={"knowledgeBaseId": kb, "url": url})
        assert error_codes(body) == [code], (url, body)
    assert await Document.all().count() == 0 and await Chunk.all().count() == 0
    # an operator may name more hosts; localhost stays allowed
    monkeypatch.setenv("AGENTPLANE_FETCH_ALLOW_HOSTS", "docs.internal")
    assert knowledge.fetch_allowed("docs.internal") and knowledge.fetch_allowed("localhost")
    assert not knowledge.fetch_allowed("10.0.0.1")
