"""Browser and CLI sign-in over HTTP: local accounts, OIDC, the device grant
(declared in `routes.py`, served and documented with the REST layer)."""
