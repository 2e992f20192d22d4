"""Browser and CLI sign-in over HTTP: local accounts, OIDC, the device grant."""

from agentplane.authn.routes import routes

__all__ = ["routes"]
