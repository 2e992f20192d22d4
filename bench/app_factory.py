"""uvicorn factories for the benchmarked app (settings from the environment)."""

from starlette.applications import Starlette

from agentplane.http.app import create_app


def api() -> Starlette:
    return create_app(run_worker=False)


def api_with_worker() -> Starlette:
    return create_app(run_worker=True)
