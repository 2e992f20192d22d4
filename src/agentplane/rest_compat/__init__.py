"""REST compatibility: documented control-plane APIs served over the same resolvers."""

from starlette.routing import BaseRoute

from agentplane.rest_compat import koda


def routes() -> list[BaseRoute]:
    return [*koda.routes]
