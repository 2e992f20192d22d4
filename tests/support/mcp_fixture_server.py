"""A small MCP server over stdio for the client tests: `python mcp_fixture_server.py [garbage]`.

Tools: `add` (plain), `delete_everything` (destructiveHint), `hang` (never answers), `crash`
(the process exits mid-call). With the `garbage` argument it writes non-JSON to stdout first.
"""

import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer(name="agentplane-fixture", version="1.2.3")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(
    description="Pretend to delete everything.",
    annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False),
)
def delete_everything(target: str) -> str:
    return f"deleted {target}"


@server.tool(description="Never returns.")
def hang() -> str:
    while True:  # blocks the whole process, like a wedged server
        time.sleep(1)


@server.tool(description="Exits the process mid-call.")
def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    if "garbage" in sys.argv[1:]:
        sys.stdout.write("this is not json-rpc\n{oops\n")
        sys.stdout.flush()
        # and then answer nothing sensible: read stdin so the client can write, echo garbage
        for line in sys.stdin:
            sys.stdout.write("garbage " + line[:20] + "\n")
            sys.stdout.flush()
    else:
        server.run("stdio")
