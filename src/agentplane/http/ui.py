"""The operator dashboard's built files (`ui/` in the repository, built into static/ui).

Hashed assets and versioned vendor files never change under their name, so browsers keep
them for a year; `index.html` is revalidated on every load, so a new build is picked up at
once. A path without an extension is a dashboard route (`/ui/tasks/tsk_…`): it gets
`index.html`, and the app routes it; a missing file with an extension stays a 404.
"""

from pathlib import Path, PurePosixPath

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).parents[1] / "static" / "ui"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The app talks only to this origin (GraphQL over HTTP and websockets); no CDN.
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class DashboardFiles(StaticFiles):
    def __init__(self) -> None:
        super().__init__(directory=UI_DIR, html=True, check_dir=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or PurePosixPath(path).suffix:
                raise
            response = await super().get_response("index.html", scope)
        if response.status_code == 404:  # html=True answers a missing page itself
            if PurePosixPath(path).suffix:
                return response
            response = await super().get_response("index.html", scope)
        first = path.split("/", 1)[0]
        if first in ("assets", "vendor") and response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        else:
            response.headers["Cache-Control"] = REVALIDATE
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response
