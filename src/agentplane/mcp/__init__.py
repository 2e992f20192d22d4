"""agentplane as an MCP server: a tenant's agents as MCP tools (see server.py)."""
