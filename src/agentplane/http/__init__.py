"""HTTP/ASGI plumbing: the app, rate and websocket limits, CSRF, body limits, /graphql, request ids.

The outermost transport: it wires schema/, rest_compat/ and mcp/ and may import every layer.
"""
