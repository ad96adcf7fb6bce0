"""`ferry monitor --report drift.html`: one self-contained HTML file (no CDN, no scripts) that
shows, per column, the reference distribution beside the latest window's, with the test's
figures next to the plot.

Numbers alone hide *how* a column moved (a shifted mean, a new category, a fatter tail); the
plots show it. Each plot is a matplotlib figure (Agg, no display) embedded as a base64 PNG.
The reference side is drawn from the stored profile alone: its exact values and counts up to
`EXACT_VALUES` distinct values, else its quantile sketch, so the reference data is never re-read.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ferry.monitor.drift.base import DriftResult
from ferry.monitor.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    as_floats,
    category_counts,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ferry.monitor.api import MonitorReport

HISTOGRAM_BINS = 30
MAX_BARS = 20
"""Categories drawn one by one; the rest are pooled as `OTHER`."""
OTHER = "(other)"
FIGURE_INCHES = (5.0, 2.6)
FIGURE_DPI = 80
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c72b0", "#dd8452"
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}
.column{display:flex;gap:2em;align-items:center;border-top:1px solid #ddd;padding:.8em 0}
.ok{color:#2a7d2a}.warn{color:#b8860b}.drift{color:#c0392b;font-weight:bold}
.insufficient_data{color:#777}"""


def write_report(path: Path, report: MonitorReport) -> None:
    """Write the report's latest window as one HTML file at `path`."""
    path.write_text(render(report), encoding="utf-8")


def render(report: MonitorReport) -> str:
    latest = report.latest
    sections = [_column_section(result, _profile_column(report, result), report.samples)
                for result in (*latest.report.columns, *latest.report.outputs)]
    title = f"Drift of {report.version.uri}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"
            f"{_summary(report)}<h2>Columns: reference and current</h2>{''.join(sections)}"
            "</body></html>")


def _summary(report: MonitorReport) -> str:
    latest, stale = report.latest, report.staleness
    rows = [("window", f"{latest.start:%Y-%m-%d %H:%M:%S} to {latest.end:%Y-%m-%d %H:%M:%S}"
             " UTC"), ("rows", str(latest.rows)),
            ("dataset drift", _verdict(latest.report.verdict)),
            ("prediction drift", _verdict(latest.report.prediction_verdict)),
            ("share of columns drifting", f"{latest.report.drift_share:.0%}"),
            ("model age", f"{stale.age_days:.1f} days ({_verdict(stale.level)})"),
            ("live performance", _e(str(report.performance or "no labels yet")))]
    cells = "".join(f"<tr><th>{_e(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f"<table>{cells}</table>"


def _column_section(result: DriftResult, column: ColumnProfile, samples: pa.Table) -> str:
    values = samples.column(result.column) if result.column in samples.column_names \
        else pa.array([], pa.float64())
    figures = [("method", result.method), ("statistic", _number(result.statistic)),
               ("p-value", _number(result.p_value)), ("PSI", _number(result.psi)),
               ("rows", f"{result.rows_current} (reference {result.rows_reference})")]
    cells = "".join(f"<tr><th>{name}</th><td>{_e(value)}</td></tr>" for name, value in figures)
    return (f"<div class='column'><div><h3>{_e(result.column)}</h3>"
            f"<p>{_verdict(result.verdict)}</p><table>{cells}</table></div>"
            f"<img alt='{_e(result.column)}: reference and current'"
            f" src='data:image/png;base64,{_plot(column, values)}'></div>")


def _profile_column(report: MonitorReport, result: DriftResult) -> ColumnProfile:
    profile = report.profile
    return profile.columns.get(result.column) or profile.outputs[result.column]


def _plot(column: ColumnProfile, values: Any) -> str:
    """The column's reference and current distributions as a base64 PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_INCHES, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    if isinstance(column, NumericProfile):
        _histograms(axes, column, as_floats(values))
    else:
        _bars(axes, column, values)
    axes.set_ylabel("share of rows")
    axes.legend(loc="best", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _histograms(axes: Axes, column: NumericProfile, current: np.ndarray) -> None:
    current = current[np.isfinite(current)]
    edges = _edges(column, current)
    axes.stairs(reference_shares(column, edges), edges, fill=True, alpha=0.45,
                color=REFERENCE_COLOUR, label="reference")
    shares = np.histogram(current, edges)[0] / max(current.size, 1)
    axes.stairs(shares, edges, color=CURRENT_COLOUR, linewidth=2, label="current")


def _edges(column: NumericProfile, current: np.ndarray) -> np.ndarray:
    low = min(column.min, float(current.min())) if current.size else column.min
    high = max(column.max, float(current.max())) if current.size else column.max
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, HISTOGRAM_BINS + 1)


def reference_shares(column: NumericProfile, edges: np.ndarray) -> np.ndarray:
    """The reference's share of values per bin: counted from its exact values, or read off
    its quantile sketch (the CDF between two sketch points taken as a straight line)."""
    points = np.asarray(column.points)
    if column.exact:
        counts = np.histogram(points, edges, weights=np.asarray(column.counts, dtype=float))[0]
        return np.asarray(counts / max(column.count, 1))
    cdf = np.interp(edges, points, np.linspace(0.0, 1.0, points.size), left=0.0, right=1.0)
    return np.diff(cdf)


def _bars(axes: Axes, column: CategoricalProfile, values: Any) -> None:
    reference = dict(zip(column.values, column.counts, strict=True))
    current, _ = category_counts(values)
    labels = _categories(reference, current)
    positions = np.arange(len(labels))
    sides = ((-0.2, reference, column.count, REFERENCE_COLOUR, "reference"),
             (0.2, current, sum(current.values()), CURRENT_COLOUR, "current"))
    for offset, counts, total, colour, name in sides:
        axes.bar(positions + offset, _shares(labels, counts, total), width=0.4, color=colour,
                 label=name)
    axes.set_xticks(positions, [str(label) for label in labels], rotation=30, ha="right",
                    fontsize="small")


def _categories(reference: dict[Any, int], current: dict[Any, int]) -> list[Any]:
    """The reference's most frequent categories, then the window's new ones, `MAX_BARS` in
    all; the last bar pools what is left."""
    ordered = list(reference) + [c for c in sorted(current, key=current.__getitem__,
                                                    reverse=True) if c not in reference]
    return ordered if len(ordered) <= MAX_BARS else [*ordered[:MAX_BARS - 1], OTHER]


def _shares(labels: list[Any], counts: dict[Any, int], total: int) -> np.ndarray:
    """Each category's share of `total` non-missing values; "(other)" takes the rest."""
    shown = [counts.get(label, 0) for label in labels]
    if labels and labels[-1] == OTHER and OTHER not in counts:
        shown[-1] = total - sum(shown[:-1])
    return np.asarray(shown, dtype=np.float64) / max(total, 1)


def _verdict(value: Any) -> str:
    if value is None:
        return "<span class='insufficient_data'>none</span>"
    return f"<span class='{_e(str(value))}'>{_e(str(value))}</span>"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


__all__ = ["reference_shares", "render", "write_report"]
