"""The registry's pages and their routes: every model (`/`, here, a page at a time), one
model's versions, aliases and history with the form that moves an alias through the gate
(`/ui/models/NAME`, `model.py`), and one version (`/ui/models/NAME/VERSION`, `version.py`).

Pages read what `ferry models`, `ferry versions`, `ferry show` and `ferry history` read
(`Registry`); the models page reads `Registry.catalog()`, every model's version count, latest
version and aliases in two queries (`Registry.models()` and `versions()` take a few queries per
model: over half a second for 100 models of 20 versions). Moving an alias goes through
`ferry.gate.promote.promote`, as `ferry promote` does, after the admin token is checked.
Registry calls block, so every endpoint runs them on a worker thread: the server's event loop
keeps answering predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ferry.errors import InvalidInputError
from ferry.registry import Registry
from ferry.registry.catalog import ModelSummary
from ferry.text import is_whole_number
from ferry.ui.context import UIContext
from ferry.ui.pages.formats import FMT, artifact_size
from ferry.ui.pages.model import promote_from_form, read_form, show_model
from ferry.ui.pages.version import show_version
from ferry.ui.render import html_errors, render_page

MAX_QUERY_CHARS = 200
"""Longest search text or framework name the models page takes."""
MODELS_PER_PAGE = 25
"""Models on one page of `/` unless `per_page` says otherwise (a cold browser lays out 100
rows in about twice the time of 25: bench/ui/RESULTS.md)."""
MAX_PER_PAGE = 100


def routes(context: UIContext) -> list[BaseRoute]:
    """`/`, `/ui/models/NAME` (GET; POST moves an alias) and `/ui/models/NAME/VERSION`."""

    @html_errors
    async def models_page(request: Request) -> Response:
        return await run_in_threadpool(show_models, context, request)

    @html_errors
    async def model_page(request: Request) -> Response:
        return await run_in_threadpool(show_model, context, request)

    @html_errors
    async def move_alias(request: Request) -> Response:
        form = await read_form(request)
        context.authorize(form.get("token"))
        return await run_in_threadpool(promote_from_form, context, request, form)

    @html_errors
    async def version_page(request: Request) -> Response:
        return await run_in_threadpool(show_version, context, request)

    return [Route("/", models_page, methods=["GET"], name="ui-models"),
            Route("/ui/models/{name}", model_page, methods=["GET"], name="ui-model"),
            Route("/ui/models/{name}", move_alias, methods=["POST"], name="ui-move-alias"),
            Route("/ui/models/{name}/{version}", version_page, methods=["GET"],
                  name="ui-version")]


# -- the models page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Paging:
    """Which slice of the filtered models a page shows (1-based `page`, clamped to the last)."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def current(self) -> int:
        return min(self.page, self.pages)

    @property
    def first(self) -> int:
        return (self.current - 1) * self.per_page

    @property
    def last(self) -> int:
        return min(self.first + self.per_page, self.total)


def show_models(context: UIContext, request: Request) -> Response:
    """`/`: every model, filtered by `q` (text) and `framework`, `per_page` at a time (query
    parameters)."""
    q = _query_text(request, "q")
    framework = _query_text(request, "framework")
    everything = context.registry.catalog()
    frameworks = sorted({m.framework for m in everything if m.framework})
    shown = [m for m in everything if (not framework or m.framework == framework)
             and (not q or m.matches(q.lower()))]
    paging = Paging(_query_number(request, "page", 1, 1_000_000),
                    _query_number(request, "per_page", MODELS_PER_PAGE, MAX_PER_PAGE),
                    len(shown))
    rows = [_sized(context.registry, m) for m in shown[paging.first:paging.last]]
    return render_page(request, "models.html", title="Models", active="models", rows=rows,
                       total=len(everything), matching=len(shown), paging=paging,
                       frameworks=frameworks, framework=framework, q=q, fmt=FMT)


def _query_number(request: Request, key: str, default: int, most: int) -> int:
    """A whole-number query parameter from 1 to `most`, or InvalidInputError naming it."""
    text = request.query_params.get(key, "").strip()
    if not text:
        return default
    if not is_whole_number(text) or not 1 <= int(text) <= most:
        raise InvalidInputError(f"{key} must be a whole number from 1 to {most}, got {text!r}")
    return int(text)


def _sized(registry: Registry, summary: ModelSummary) -> ModelSummary:
    return ModelSummary(**{**summary.__dict__,
                           "size": artifact_size(registry, summary.artifact)})


def _query_text(request: Request, key: str) -> str:
    value = request.query_params.get(key, "").strip()
    if len(value) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"{key} is longer than {MAX_QUERY_CHARS} characters")
    return value


