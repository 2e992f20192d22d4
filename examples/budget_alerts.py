"""Print budget alerts as they happen (graphql-transport-ws), until interrupted.

    python examples/budget_alerts.py

Reads AGENTPLANE_URL (default http://127.0.0.1:8090) and AGENTPLANE_TOKEN (a token whose
role may read budgets: every predefined role can).
"""

import asyncio
import json
import os

from websockets.asyncio.client import connect

SUBSCRIPTION = """
subscription {
  budgetAlerts { scope tenantId account agentId window alertState monthlyLimitUsd
                 currentSpendUsd at }
}
"""


async def watch() -> None:
    url = os.environ.get("AGENTPLANE_URL", "http://127.0.0.1:8090").replace("http", "ws", 1)
    token = os.environ["AGENTPLANE_TOKEN"]
    async with connect(url + "/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        init = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
        )
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "next":
                print(json.dumps(message["payload"]["data"]["budgetAlerts"]), flush=True)
            elif message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] in ("complete", "error"):
                print(json.dumps(message))
                return


if __name__ == "__main__":
    asyncio.run(watch())
