"""HTTP/ASGI plumbing: the Starlette app, middleware, CSRF, body limits, /graphql, request ids.

The outermost transport: it wires schema/, rest_compat/ and mcp/ and may import every layer.
"""
