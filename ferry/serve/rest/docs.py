"""`/docs`: Swagger UI on `/openapi.json`, its script and style served from the installed
`swagger-ui-bundle` package, so that the page works with no network.

The page names its assets relative to itself (`docs/static/...` from `/docs`), so it also
works behind a proxy that serves ferry under a path prefix.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route
from swagger_ui_bundle import swagger_ui_path

from ferry.errors import NotFoundError

ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
"""The files the page loads, and their content types (nothing else is served)."""

CACHE = "public, max-age=86400"

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferry API</title>
<link rel="icon" type="image/png" href="docs/static/favicon-32x32.png">
<link rel="stylesheet" href="docs/static/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


async def docs_page(_request: Request) -> Response:
    return HTMLResponse(DOCS_HTML)


async def docs_asset(request: Request) -> Response:
    name: str = request.path_params["file"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(f"no docs asset named {name!r}: the page uses {', '.join(ASSETS)}")
    return FileResponse(Path(str(swagger_ui_path)) / name, media_type=media_type,
                        headers={"Cache-Control": CACHE})


def docs_routes() -> list[Route]:
    """`/docs` and `/docs/static/{file}`, to mount in the REST app."""
    return [Route("/docs", docs_page, methods=["GET"]),
            Route("/docs/static/{file}", docs_asset, methods=["GET"])]
