"""Pages from Jinja2 templates shipped in the package, autoescaped."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ferry.errors import FerryError, InvalidInputError, NotFoundError, UnauthorizedError

NAVIGATION = (("models", "Models", "/"), ("traffic", "Live traffic", "/ui/traffic"),
              ("drift", "Drift", "/ui/drift"), ("batch", "Batch runs", "/ui/batch"))
"""(key, label, path) of each entry of the header's navigation."""


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ferry.ui", "templates"),
                             autoescape=jinja2.select_autoescape(default=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals["navigation"] = NAVIGATION
    return env


def render_page(request: Request, template: str, *, title: str, active: str,
                status_code: int = 200, **values: Any) -> HTMLResponse:
    """`template` (extending `base.html`) as a page; `active` is its navigation key."""
    html = environment().get_template(template).render(
        request=request, title=title, active=active, **values)
    return HTMLResponse(html, status_code=status_code)


Endpoint = Callable[[Request], Awaitable[Response]]


def html_errors(endpoint: Endpoint) -> Endpoint:
    """`endpoint`, answering ferry's errors as a page (404 unknown model or version, 401
    without the admin token, 400 a bad value) rather than the API's JSON."""
    @functools.wraps(endpoint)
    async def page(request: Request) -> Response:
        try:
            return await endpoint(request)
        except FerryError as exc:
            return render_page(request, "error.html", title="Not shown", active="",
                               status_code=_status(exc), message=str(exc))

    return page


def _status(exc: FerryError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UnauthorizedError):
        return 401
    return 400 if isinstance(exc, InvalidInputError) else 500
