"""`/ui/drift`: the models the drift job judged, with each version's latest verdict; and
`/ui/drift/NAME`: one version's verdict per column over time (a table and an SVG strip),
the reference and current distributions of one column side by side, its staleness and,
when labels came back, its live performance.

Verdicts are the results `ferry monitor` and the server's drift schedule stored
(`MonitoringStore.results`), never recomputed here. The reference side of a distribution is
the version's stored profile; the current side the rows the capture sampled in the latest
judged window (the last hour when none was judged), at most `CURRENT_ROWS` of them, which
also feed `live_performance` and `staleness` as `ferry monitor` computes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ferry.errors import InvalidInputError
from ferry.monitor.durations import parse_duration
from ferry.monitor.events import MonitorResult
from ferry.monitor.job import ResultKind, read_samples, reference_profile
from ferry.monitor.performance import live_performance
from ferry.monitor.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    as_floats,
    category_counts,
)
from ferry.monitor.report import reference_shares
from ferry.monitor.staleness import Staleness, staleness
from ferry.monitor.store import MonitoringStore, open_store
from ferry.registry import ModelVersion, Registry
from ferry.text import is_whole_number
from ferry.ui.charts import Cell, figure, paired_bars, verdict_strip
from ferry.ui.context import UIContext
from ferry.ui.render import html_errors, render_page
from ferry.uri import ModelURI

SPANS = ("24h", "7d", "30d")
"""How far back the pages read results (by when they were judged)."""
DEFAULT_SPAN = "24h"
"""A day: under the server's 10-minute schedule, 144 windows of results (about 0.2 s to read
for 30 columns); a week takes about 1.3 s."""
INDEX_LOOKBACKS = (timedelta(hours=1), timedelta(hours=24))
"""The index needs only each version's newest window: it reads the last hour's results, else
the last day's, before the whole span."""
STRIP_WINDOWS = 48
"""Windows the strip draws at most (the newest)."""
TABLE_WINDOWS = 6
"""Windows the verdict table lists at most (the newest)."""
CURRENT_ROWS = 50_000
"""Sampled rows read for the current distribution at most (a seeded uniform draw)."""
UNJUDGED_SPAN = timedelta(hours=1)
"""The current window when no result exists: the last hour."""
NUMERIC_BINS = 20
MAX_BARS = 12
"""Categories drawn one by one; the rest are pooled as `OTHER`."""
OTHER = "(other)"
MAX_VERSION = 2**31 - 1
"""Largest version number asked for (the registry's column is a 32-bit integer)."""
DATASET_ROW = "(whole dataset)"


@dataclass
class JudgedWindow:
    """One judged window: the dataset's result and each column's (the latest judgement of
    that window wins)."""

    start: datetime
    end: datetime
    rows: int = 0
    dataset: MonitorResult | None = None
    columns: dict[str, MonitorResult] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The window's end, as the table and strip name it."""
        return self.end.strftime("%m-%d %H:%M")

    @property
    def drifting(self) -> list[str]:
        """The columns whose verdict is drift."""
        return [name for name, r in self.columns.items() if r.verdict == "drift"]


@dataclass(frozen=True)
class Distribution:
    """One column's reference and current shares, bar by bar."""

    column: str
    kind: str
    labels: list[str]
    reference: list[float]
    current: list[float]
    reference_rows: int
    current_rows: int
    chart: Markup


@dataclass(frozen=True)
class DriftView:
    """Everything `/ui/drift/NAME` shows of one version."""

    version: ModelVersion
    versions: list[tuple[int, bool]]
    """Every version of the model, and whether it has results in the span."""
    windows: list[JudgedWindow]
    columns: list[str]
    strip: Markup | None
    current_window: tuple[datetime, datetime]
    profile_columns: list[str]
    distribution: Distribution | None
    staleness: Staleness
    performance: dict[str, Any] | None


@dataclass(frozen=True)
class IndexRow:
    model: str
    version: int
    window: JudgedWindow


def routes(context: UIContext) -> list[BaseRoute]:
    """The index and the per-model page."""
    async def index(request: Request) -> Response:
        """`/ui/drift`."""
        return await drift_index(request, context)

    async def model(request: Request) -> Response:
        """`/ui/drift/NAME`."""
        return await drift_model(request, context)

    return [Route("/ui/drift", html_errors(index), methods=["GET"], name="ui-drift"),
            Route("/ui/drift/{name}", html_errors(model), methods=["GET"],
                  name="ui-drift-model")]


def _since(request: Request) -> str:
    """The `since` query parameter: one of `SPANS` (anything else is refused)."""
    since = request.query_params.get("since", DEFAULT_SPAN)
    if since not in SPANS:
        raise InvalidInputError(f"since {since[:40]!r} is not offered: choose one of "
                                f"{', '.join(SPANS)}")
    return since


async def drift_index(request: Request, context: UIContext) -> Response:
    """`/ui/drift`: every judged version's latest window."""
    since = _since(request)
    rows, unjudged = await run_in_threadpool(index_rows, context, since)
    return render_page(request, "drift_index.html", title="Drift", active="drift",
                       rows=rows, unjudged=unjudged, since=since, spans=SPANS,
                       figure=figure)


def index_rows(context: UIContext, since: str) -> tuple[list[IndexRow], list[str]]:
    """Each judged version's latest window, and the models with no result in the span."""
    cutoff = datetime.now(UTC) - parse_duration(since, "since")
    rows, unjudged = [], []
    with open_store(context.monitoring_url) as store:
        for model in context.registry.models():
            found = _latest_per_version(model.name, _recent(store, model.name, cutoff))
            rows += found
            unjudged += [] if found else [model.name]
    return rows, unjudged


def _recent(store: MonitoringStore, model: str, cutoff: datetime) -> list[MonitorResult]:
    """The model's results of the most recent lookback that has any, at most back to
    `cutoff`."""
    now = datetime.now(UTC)
    for back in INDEX_LOOKBACKS:
        if now - back > cutoff:
            found = store.results(model, since=now - back)
            if found:
                return found
    return store.results(model, since=cutoff)


def _latest_per_version(model: str, results: list[MonitorResult]) -> list[IndexRow]:
    """The newest window of each version among `results`, newest version first."""
    versions = sorted({r.version for r in results}, reverse=True)
    return [IndexRow(model, v, judged_windows(r for r in results if r.version == v)[-1])
            for v in versions]


def judged_windows(results: Iterable[MonitorResult]) -> list[JudgedWindow]:
    """Results (oldest judged first, as the store answers) grouped by window, oldest
    window first."""
    windows: dict[tuple[datetime, datetime], JudgedWindow] = {}
    for result in results:
        key = (result.window_start, result.window_end)
        window = windows.setdefault(key, JudgedWindow(*key))
        window.rows = result.rows
        if result.kind == ResultKind.DATASET:
            window.dataset = result
        elif result.column is not None:
            window.columns[result.column] = result
    return [windows[key] for key in sorted(windows)]


async def drift_model(request: Request, context: UIContext) -> Response:
    """`/ui/drift/NAME`, with `?version=`, `?since=` and `?column=`."""
    name, since = request.path_params["name"], _since(request)
    asked = _version_number(request.query_params.get("version"))
    view = await run_in_threadpool(model_view, context, name, asked, since,
                                   request.query_params.get("column") or None)
    return render_page(request, "drift_model.html", title=f"Drift of {view.version.uri}",
                       active="drift", view=view, since=since, spans=SPANS,
                       table_windows=view.windows[-TABLE_WINDOWS:], figure=figure)


def _version_number(text: str | None) -> int | None:
    """The `version` query parameter as a number; None when absent."""
    if text is None or text == "":
        return None
    if not (is_whole_number(text) and 1 <= int(text) <= MAX_VERSION):
        raise InvalidInputError(f"version {text[:40]!r} is not a version number (1, 2, ...)")
    return int(text)


def model_view(context: UIContext, name: str, asked: int | None, since: str,
               column: str | None) -> DriftView:
    """One version's drift page: `asked`, else the version judged last, else the latest."""
    registry = context.registry
    numbers = [v.version for v in registry.versions(name)]  # an unknown model: not found
    cutoff = datetime.now(UTC) - parse_duration(since, "since")
    with open_store(context.monitoring_url) as store:
        results = store.results(name, since=cutoff)
        version = _chosen_version(registry, name, asked, results)
        windows = judged_windows(r for r in results if r.version == version.version)
        bounds = _current_window(windows)
        samples = read_samples(store, version, *bounds, max_rows=CURRENT_ROWS)
    judged = {r.version for r in results}
    return _view(registry, version, [(n, n in judged) for n in numbers],
                 windows[-STRIP_WINDOWS:], bounds, samples, column)


def _chosen_version(registry: Registry, name: str, asked: int | None,
                    results: list[MonitorResult]) -> ModelVersion:
    """The version asked for, else the one judged last, else the latest."""
    if asked is not None:
        return registry.get(ModelURI(name=name, version=asked))
    if results:
        return registry.get(ModelURI(name=name, version=results[-1].version))
    return registry.get(ModelURI(name=name))


def _current_window(windows: list[JudgedWindow]) -> tuple[datetime, datetime]:
    """[start, end) of the current distribution: the latest judged window, else the last hour."""
    if windows:
        return windows[-1].start, windows[-1].end
    now = datetime.now(UTC)
    return now - UNJUDGED_SPAN, now


def _view(registry: Registry, version: ModelVersion, versions: list[tuple[int, bool]],
          windows: list[JudgedWindow], bounds: tuple[datetime, datetime], samples: pa.Table,
          column: str | None) -> DriftView:
    """The page's figures from what was read."""
    profile = reference_profile(registry, version)
    performance = live_performance(version, samples)
    columns = _column_order(windows)
    return DriftView(
        version=version, versions=versions,
        windows=windows, columns=columns, strip=_strip(version, windows, columns),
        current_window=bounds, profile_columns=_profile_names(profile),
        distribution=_distribution(profile, samples, _chosen_column(profile, windows, column)),
        staleness=staleness(version, performance=performance), performance=performance)


def _column_order(windows: list[JudgedWindow]) -> list[str]:
    """Every column judged in the windows, inputs before outputs, in first-judged order."""
    seen: dict[str, str] = {}
    for window in windows:
        for name, result in window.columns.items():
            seen.setdefault(name, result.kind)
    return sorted(seen, key=lambda name: seen[name] != ResultKind.FEATURE)


def _profile_names(profile: Profile | None) -> list[str]:
    """The profile's input and output columns, in its order."""
    return [] if profile is None else [*profile.columns, *profile.outputs]


def _chosen_column(profile: Profile | None, windows: list[JudgedWindow],
                   asked: str | None) -> str | None:
    """`asked` (which the profile must hold), else the latest window's first drifting
    column, else the profile's first."""
    names = _profile_names(profile)
    if asked is not None and asked not in names:
        raise InvalidInputError(f"column {asked[:80]!r} is not in the reference profile")
    drifting = [c for c in (windows[-1].drifting if windows else []) if c in names]
    return asked or next(iter(drifting + names), None)


def _strip(version: ModelVersion, windows: list[JudgedWindow],
           columns: list[str]) -> Markup | None:
    """The verdict strip: a row per column and one for the dataset, a cell per window."""
    if not windows:
        return None
    rows = [*columns, DATASET_ROW]
    cells = [[_cell(name, w, w.columns.get(name)) for w in windows] for name in columns]
    cells.append([_cell(DATASET_ROW, w, w.dataset) for w in windows])
    label = (f"Verdict per column of {version.uri} over its last {len(windows)} judged"
             " windows, oldest on the left")
    return verdict_strip(label, rows, [w.label for w in windows], cells)


def _cell(name: str, window: JudgedWindow, result: MonitorResult | None) -> Cell | None:
    """One strip cell; None where the window judged no such column."""
    if result is None:
        return None
    return Cell(result.verdict, f"{name}, window ending {window.label}: {result.verdict}"
                f" ({result.method} {figure(result.statistic, '.4g')})")


def _distribution(profile: Profile | None, samples: pa.Table,
                  column: str | None) -> Distribution | None:
    """The chosen column's reference and current shares, and their chart."""
    if profile is None or column is None:
        return None
    reference = profile.columns.get(column) or profile.outputs[column]
    values = samples.column(column) if column in samples.column_names else pa.array([])
    if isinstance(reference, NumericProfile):
        labels, ref, cur, rows = numeric_shares(reference, as_floats(values))
    else:
        labels, ref, cur, rows = categorical_shares(reference, values)
    chart = paired_bars(f"Share of rows per {'bin' if reference.kind == 'numeric' else 'value'}"
                        f" of {column}: reference and current", labels, ref, cur)
    return Distribution(column, str(reference.kind), labels, ref, cur, reference.count, rows,
                        chart)


Shares = tuple[list[str], list[float], list[float], int]
"""Bar labels, the reference's and the current window's share per bar, current rows."""


def numeric_shares(column: NumericProfile, current: np.ndarray) -> Shares:
    """`NUMERIC_BINS` equal bins over both sides' range; the reference's shares read off
    its profile as `ferry monitor --report` draws them."""
    current = current[np.isfinite(current)]
    low = min(column.min, float(current.min())) if current.size else column.min
    high = max(column.max, float(current.max())) if current.size else column.max
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, NUMERIC_BINS + 1)
    reference = [float(v) for v in reference_shares(column, edges)]
    shares = np.histogram(current, edges)[0] / max(current.size, 1)
    labels = [f"{figure(a)} to {figure(b)}" for a, b in pairwise(edges)]
    return labels, reference, [float(v) for v in shares], int(current.size)


def categorical_shares(column: CategoricalProfile, values: Any) -> Shares:
    """The reference's most frequent values, then the window's new ones, `MAX_BARS` in all;
    the last bar pools the rest."""
    reference = dict(zip(column.values, column.counts, strict=True))
    current, _ = category_counts(values)
    ordered = [*reference, *sorted((c for c in current if c not in reference),
                                   key=lambda c: -current[c])]
    shown = ordered if len(ordered) <= MAX_BARS else ordered[:MAX_BARS - 1]
    total = sum(current.values())
    ref = _pooled(shown, reference, column.count, len(ordered) > len(shown))
    cur = _pooled(shown, current, total, len(ordered) > len(shown))
    labels = [str(c) for c in shown] + ([OTHER] if len(ordered) > len(shown) else [])
    return labels, ref, cur, total


def _pooled(shown: Sequence[Any], counts: dict[Any, int], total: int,
            pool: bool) -> list[float]:
    """Each shown category's share of `total`; with `pool`, a last share for the rest."""
    kept = [counts.get(c, 0) for c in shown]
    shares = [*kept, total - sum(kept)] if pool else kept
    return [count / total if total else 0.0 for count in shares]

