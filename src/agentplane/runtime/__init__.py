"""Task execution: the worker, the agent loop, tools, MCP client, model providers, maintenance.
Beside resolvers/ (may import it, subscriptions/, retrieval/), above models/ and core/."""
