"""`/ui/traffic`: live numbers per model and version from the server's own metrics (the
fragment `/ui/traffic/live`, which the page refreshes every few seconds), and one model's
history from the monitoring store, as `ferry traffic` reports it.

Live: requests, requests per second (the counter's change between two scrapes, kept by a
`RateKeeper` per dashboard), errors, latency percentiles, batch sizes, queue and compute time.
The server counts payload sizes per protocol only, so they are shown for the whole server
live, and per version in the history (the capture records each request's sizes and input
datatypes). Under `ferry ui` no model is served: the page says so and shows the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ferry.errors import FerryError, InvalidInputError
from ferry.monitor.store import open_store
from ferry.monitor.traffic import Target, TrafficReport, Window, report, span
from ferry.ui.charts import Line, figure, line_chart
from ferry.ui.context import UIContext
from ferry.ui.live import UNRESOLVED, RateKeeper, Snapshot, VersionNumbers, parse_exposition
from ferry.ui.live import request_counts as counts_of
from ferry.ui.render import environment, html_errors, render_page

SPANS = {"15m": "15s", "1h": "1m", "6h": "5m", "24h": "15m"}
"""The history spans offered, and the bucket each is cut into (60 to 96 buckets)."""
DEFAULT_SPAN = "1h"
HISTORY_EVENTS = 500_000
"""Newest captured requests of one model a page reads at most."""
REFRESH_S = 3


@dataclass(frozen=True)
class LiveRow:
    """One served version's live numbers, formatted for the table."""

    model: str
    version: str
    requests: int
    per_second: str
    errors: int
    error_share: str
    latency_ms: tuple[str, str, str]
    batch_mean: str
    batch_p90: str
    queue_ms: str
    compute_ms: str


@dataclass(frozen=True)
class LiveView:
    """The live fragment: a row per served version, and the server's own numbers."""

    enabled: bool
    rows: list[LiveRow] = field(default_factory=list)
    inflight: int = 0
    request_bytes: str = ""
    response_bytes: str = ""
    as_of: str = ""


@dataclass(frozen=True)
class History:
    """One model's captured traffic over a span: a report per version that had requests."""

    model: str
    since: str
    bucket: str
    reports: list[TrafficReport]
    chart: Markup | None
    truncated: bool = False
    problem: str | None = None


def routes(context: UIContext) -> list[BaseRoute]:
    """The traffic page and its live fragment, sharing one `RateKeeper`."""
    keeper = RateKeeper()

    async def page(request: Request) -> Response:
        """`/ui/traffic`."""
        return await traffic_page(request, context, keeper)

    async def live(request: Request) -> Response:
        """`/ui/traffic/live`."""
        return live_fragment(request, context, keeper)

    return [Route("/ui/traffic", html_errors(page), methods=["GET"], name="ui-traffic"),
            Route("/ui/traffic/live", html_errors(live), methods=["GET"],
                  name="ui-traffic-live")]


async def traffic_page(request: Request, context: UIContext, keeper: RateKeeper) -> Response:
    """The whole page: the live table (as the fragment answers it) and the history."""
    since = request.query_params.get("since", DEFAULT_SPAN)
    if since not in SPANS:
        raise InvalidInputError(f"since {since[:40]!r} is not offered: choose one of "
                                f"{', '.join(SPANS)}")
    snapshot = _scrape(context)
    view = live_view(snapshot, keeper)
    models = await run_in_threadpool(lambda: [m.name for m in context.registry.models()])
    chosen = request.query_params.get("model") or _busiest(snapshot, models)
    history = None if chosen is None else await run_in_threadpool(
        read_history, context, chosen, since)
    return render_page(request, "traffic.html", title="Live traffic", active="traffic",
                       live=view, refresh_s=REFRESH_S, models=models, chosen=chosen,
                       spans=list(SPANS), since=since, history=history)


def live_fragment(request: Request, context: UIContext, keeper: RateKeeper) -> Response:
    """The live table alone, for the page to swap in."""
    view = live_view(_scrape(context), keeper)
    html = environment().get_template("traffic_live.html").render(request=request, live=view)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _scrape(context: UIContext) -> Snapshot | None:
    """The server's numbers now (on the event loop: the exposition flushes its tallies
    there); None under `ferry ui`."""
    if context.live_metrics is None:
        return None
    return parse_exposition(context.live_metrics())


def _busiest(snapshot: Snapshot | None, models: list[str]) -> str | None:
    """The model with the most requests live, else the registry's first."""
    served = [] if snapshot is None else [n for n in snapshot.ordered() if n.key != UNRESOLVED]
    if served:
        return max(served, key=lambda numbers: numbers.requests).model
    return models[0] if models else None


def live_view(snapshot: Snapshot | None, keeper: RateKeeper) -> LiveView:
    """The fragment's numbers; `keeper` turns request counts into rates."""
    if snapshot is None:
        return LiveView(enabled=False)
    versions = snapshot.ordered()
    rates = keeper.rates(counts_of(versions))
    return LiveView(
        enabled=True, rows=[live_row(numbers, rates.get(numbers.key)) for numbers in versions],
        inflight=round(snapshot.inflight), request_bytes=figure(snapshot.request_bytes.mean,
                                                                ",.0f"),
        response_bytes=figure(snapshot.response_bytes.mean, ",.0f"),
        as_of=datetime.now(UTC).strftime("%H:%M:%S UTC"))


def live_row(numbers: VersionNumbers, rate: float | None) -> LiveRow:
    """The table row of one version's numbers; `rate` in requests per second."""
    requests, errors = round(numbers.requests), round(numbers.errors)
    latency = tuple(_ms(numbers.latency.quantile(q)) for q in (0.5, 0.9, 0.99))
    return LiveRow(
        model=numbers.model or "(no served model)", version=numbers.version or "\u2013",
        requests=requests, per_second=figure(rate, ".2f"), errors=errors,
        error_share=figure(errors / requests if requests else None, ".1%"),
        latency_ms=(latency[0], latency[1], latency[2]),
        batch_mean=figure(numbers.batch.mean, ".1f"),
        batch_p90=figure(numbers.batch.quantile(0.9), ".0f"),
        queue_ms=_ms(numbers.queue.mean), compute_ms=_ms(numbers.compute.mean))


def _ms(seconds: float | None) -> str:
    """Seconds shown as milliseconds."""
    return figure(None if seconds is None else seconds * 1000, ".2f")


def read_history(context: UIContext, model: str, since: str) -> History:
    """`model`'s captured traffic over the last `since`, per version (a model the registry
    does not know is refused as not found)."""
    context.registry.model(model)
    window, width = Window.ending(since), span(SPANS[since], "bucket")
    try:
        with open_store(context.monitoring_url) as store:
            events = store.events(model, since=window.start, until=window.end,
                                  limit=HISTORY_EVENTS)
    except (FerryError, SQLAlchemyError) as exc:
        return History(model, since, SPANS[since], [], None,
                       problem=f"the monitoring store could not be read: {exc}")
    reports = [report(Target(model, version), window, width, _of_version(events, version))
               for version in sorted(set(events["version"].to_pylist()))]
    return History(model, since, SPANS[since], reports, _chart(model, reports, since),
                   truncated=events.num_rows >= HISTORY_EVENTS)


def _of_version(events: pa.Table, version: int) -> pa.Table:
    """The events of one version."""
    return events.filter(pc.equal(events["version"], version))


def _chart(model: str, reports: list[TrafficReport], since: str) -> Markup | None:
    """Requests per bucket, one line per version."""
    if not reports:
        return None
    labels = [bucket.start.strftime("%H:%M") for bucket in reports[0].buckets]
    lines = [Line(f"version {r.version}", [b.requests for b in r.buckets]) for r in reports]
    label = (f"Requests to {model} per {SPANS[since]} over the last {since}, one line per"
             " version")
    return line_chart(label, labels, lines)
