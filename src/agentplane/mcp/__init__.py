"""The MCP transport: a tenant's agents served as MCP tools over streamable HTTP (server.py).
Imports the application layer, models/ and core/; never http/, schema/ or rest_compat/."""
