"""The dashboard's routes (mounted by `ferry serve`) and the app `ferry ui` serves."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from ferry.ui.context import UIContext
from ferry.ui.render import render_page

STATIC = "/ui/static"


def ui_routes(context: UIContext) -> list[BaseRoute]:
    """Every page's routes, and the static assets."""
    from ferry.ui.pages import PAGE_MODULES

    routes: list[BaseRoute] = [Mount(STATIC, StaticFiles(packages=[("ferry.ui", "static")]),
                                     name="ui-static")]
    for module in PAGE_MODULES:
        routes += module.routes(context)
    return routes


def create_ui_app(context: UIContext) -> Starlette:
    """The dashboard alone (`ferry ui`): the registry's pages, no models served."""
    return Starlette(routes=ui_routes(context), exception_handlers={HTTPException: not_found})


async def not_found(request: Request, exc: Exception) -> Response:
    """A page for a path the dashboard does not have."""
    status = getattr(exc, "status_code", 404)
    return render_page(request, "error.html", title="Not shown", active="",
                       status_code=status, message=str(getattr(exc, "detail", exc)))
