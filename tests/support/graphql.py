"""A tiny GraphQL-over-HTTP client for tests."""

from typing import Any

import httpx


class GraphQLClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, query: str, token: str | None = None, **variables: Any) -> Any:
        """The full response body (`data` and `errors`)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def ok(self, query: str, token: str | None = None, **variables: Any) -> Any:
        """`data`, asserting there were no errors."""
        body = await self(query, token, **variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
