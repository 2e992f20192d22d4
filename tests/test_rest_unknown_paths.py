"""Unknown paths and methods under a dialect's prefix answer in that dialect's envelope."""

import httpx


async def test_unknown_paths_and_methods_use_the_dialect_envelope(
    client: httpx.AsyncClient,
) -> None:
    koda = await client.get("/api/control-plane/nothing-here")
    assert koda.status_code == 404
    assert set(koda.json()) == {"code", "category", "message", "retryable", "user_action"}

    kubiya = await client.get("/api/v1/no-such-thing")
    assert kubiya.status_code == 404 and kubiya.json()["error"]["code"] == "NOT_FOUND"

    opencrane = await client.post("/api/v1/token-usage")
    assert opencrane.status_code == 405
    assert set(opencrane.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert opencrane.json()["code"] == "method_not_allowed"

    opsclaw = await client.delete("/v1/agent-runs")
    assert opsclaw.status_code == 405
    assert opsclaw.json()["error"]["type"] == "invalid_request_error"

    runtime = await client.put("/api/runtime/tasks")
    assert runtime.status_code == 405 and runtime.json()["code"] == "METHOD_NOT_ALLOWED"

    elsewhere = await client.get("/not-an-api")
    assert elsewhere.status_code == 404 and elsewhere.text == "Not Found"
