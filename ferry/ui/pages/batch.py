"""`/ui/batch`: batch scoring runs as `ferry runs` lists them (`Registry.runs`), newest first,
of every model or of the one `?model=NAME` names: status, rows, duration, version, engine,
when it started, input and output (the run record keeps no password)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ferry.registry import BatchRun, Registry
from ferry.ui.charts import figure
from ferry.ui.context import UIContext
from ferry.ui.render import html_errors, render_page

MAX_RUNS = 500
"""Runs one page lists at most (the newest)."""


@dataclass(frozen=True)
class RunRow:
    """One run, formatted for the table."""

    id: str
    model: str
    version: int
    status: str
    rows: str
    seconds: str
    engine: str
    started: str
    created_by: str
    input: str
    output: str
    error: str | None


@dataclass(frozen=True)
class RunList:
    runs: list[RunRow]
    total: int
    models: list[str]


def routes(context: UIContext) -> list[BaseRoute]:
    """The batch runs page."""
    async def page(request: Request) -> Response:
        """`/ui/batch`."""
        return await batch_page(request, context)

    return [Route("/ui/batch", html_errors(page), methods=["GET"], name="ui-batch")]


async def batch_page(request: Request, context: UIContext) -> Response:
    """Every model's runs, or `?model=NAME`'s (an unknown model answers 404)."""
    model = request.query_params.get("model") or None
    listed = await run_in_threadpool(list_runs, context.registry, model)
    return render_page(request, "batch.html", title="Batch runs", active="batch",
                       listed=listed, chosen=model, limit=MAX_RUNS)


def list_runs(registry: Registry, model: str | None) -> RunList:
    """The newest `MAX_RUNS` runs of `model` (None: of every model)."""
    names = [m.name for m in registry.models()]
    runs = [run for name in ([model] if model else names) for run in registry.runs(name)]
    runs.sort(key=lambda run: (run.time(), run.id), reverse=True)
    return RunList([run_row(run) for run in runs[:MAX_RUNS]], len(runs), names)


def run_row(run: BatchRun) -> RunRow:
    """One run as the table shows it."""
    workers = f" \u00d7 {run.workers}" if run.workers > 1 else ""
    return RunRow(id=run.id, model=run.model, version=run.version, status=run.status,
                  rows=f"{run.rows:,}", seconds=figure(run.duration_s, ".1f"),
                  engine=f"{run.engine}{workers}",
                  started=run.time().strftime("%Y-%m-%d %H:%M:%S"),
                  created_by=run.created_by, input=run.input, output=run.output,
                  error=run.error)
