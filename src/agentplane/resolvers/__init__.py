"""The application layer: transport-neutral async functions, one module per domain.

Every permission check and every tenant filter lives here; GraphQL and REST
adapters call these functions with the caller's `Actor`.
"""
