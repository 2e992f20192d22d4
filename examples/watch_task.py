"""Watch a task live over a plain websocket (graphql-transport-ws), then exit.

    python examples/watch_task.py TASK_ID [--after-seq N]

Reads AGENTPLANE_URL (default http://127.0.0.1:8090) and AGENTPLANE_TOKEN.
"""

import argparse
import asyncio
import json
import os

from websockets.asyncio.client import connect

SUBSCRIPTION = """
subscription($taskId: ID!, $afterSeq: Int) {
  taskEvents(taskId: $taskId, afterSeq: $afterSeq) {
    seq kind model inputTokens outputTokens costUsd payload
  }
}
"""


async def watch(task_id: str, after_seq: int | None) -> None:
    url = os.environ.get("AGENTPLANE_URL", "http://127.0.0.1:8090").replace("http", "ws", 1)
    token = os.environ["AGENTPLANE_TOKEN"]
    async with connect(url + "/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        init = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        variables = {"taskId": task_id, "afterSeq": after_seq}
        payload = {"query": SUBSCRIPTION, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "next":
                print(json.dumps(message["payload"], indent=None))
            elif message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] in ("complete", "error"):
                if message["type"] == "error":
                    print(json.dumps(message["payload"]))
                return


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("task_id")
    parser.add_argument("--after-seq", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(watch(args.task_id, args.after_seq))
