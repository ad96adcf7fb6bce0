"""The gate's HTML report: the verdict, every check in a table, and three plots.

- metric bars: each quality metric of both versions, the candidate's bar with the confidence
  interval of its difference from the baseline when the check has one;
- slices: the primary metric per slice, candidate against baseline;
- latency: p50 / p95 / p99 of both versions, in process and through the server.

One self-contained file: plots are matplotlib figures (Agg) embedded as base64 PNG, no script
or font is fetched.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferry.gate.checks import Check, Kind, Verdict

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ferry.gate.compare import GateResult

STYLE = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#1a1a1a;max-width:72rem}"
         "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #bbb;"
         "padding:.3rem .6rem;text-align:left}th{background:#eee}.passed{color:#0b6b0b}"
         ".failed{color:#b00020;font-weight:bold}.reported{color:#555}img{max-width:100%}")
FIGURE_INCHES = (7.5, 3.2)
FIGURE_DPI = 100


def write_report(path: Path, result: GateResult) -> None:
    path.write_text(render(result), encoding="utf-8")


def render(result: GateResult) -> str:
    title = f"Gate: {result.candidate} against {result.baseline}"
    plots = [(name, draw) for name, draw, checks in (
        ("Quality metrics", _metric_bars, _of(result, Kind.QUALITY)),
        ("Slices (primary metric)", _slice_bars, _of(result, Kind.SLICE)),
        ("Latency", _latency_bars, _of(result, Kind.LATENCY))) if checks]
    figures = "".join(f"<h2>{_e(name)}</h2><img alt='{_e(name)}' src='data:image/png;base64,"
                      f"{_png(draw, result.checks)}'>" for name, draw in plots)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"
            f"{_summary(result)}{figures}<h2>Every check</h2>{_table(result.checks)}"
            "</body></html>")


def _of(result: GateResult, kind: Kind) -> list[Check]:
    return [check for check in result.checks if check.kind is kind]


def _summary(result: GateResult) -> str:
    failures = ", ".join(check.name for check in result.failures()) or "none"
    rows = [("verdict", f"<span class='{result.status}'>{result.status}</span>"),
            ("rows", str(result.rows)), ("task", _e(result.task)),
            ("data", _e(str(result.data.get("path") or "a DataFrame"))),
            ("fingerprint", _e(str(result.data.get("fingerprint", "")))),
            ("failed checks", _e(failures))]
    return "<table>" + "".join(f"<tr><th>{name}</th><td>{value}</td></tr>"
                               for name, value in rows) + "</table>"


def _table(checks: Sequence[Check]) -> str:
    head = "".join(f"<th>{name}</th>" for name in
                   ("check", "candidate", "baseline", "condition", "verdict"))
    rows = "".join(f"<tr><td>{_e(c.name)}</td><td>{_number(c.candidate)}</td>"
                   f"<td>{_number(c.baseline)}</td><td>{_e(c.condition)}</td>"
                   f"<td class='{c.verdict}'>{c.verdict}</td></tr>" for c in checks)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _png(draw: Callable[[Axes, Sequence[Check]], None], checks: Sequence[Check]) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_INCHES, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure.subplots(), checks)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _paired_bars(axes: Axes, names: list[str], candidate: list[float], baseline: list[float],
                 errors: Any = None) -> None:
    positions = np.arange(len(names))
    axes.bar(positions - 0.2, baseline, 0.4, label="baseline", color="#9e9e9e")
    axes.bar(positions + 0.2, candidate, 0.4, yerr=errors, capsize=3, label="candidate",
             color="#1565c0")
    axes.set_xticks(positions, names, rotation=20, ha="right", fontsize="small")
    axes.legend(fontsize="small")


def _metric_bars(axes: Axes, checks: Sequence[Check]) -> None:
    shown = [c for c in checks if c.kind is Kind.QUALITY and _both(c)]
    errors = np.array([_error_bar(c) for c in shown]).T if shown else None
    _paired_bars(axes, [c.name.removeprefix("quality.") for c in shown],
                 [float(c.candidate or 0) for c in shown], [float(c.baseline or 0) for c in shown],
                 errors)


def _error_bar(check: Check) -> tuple[float, float]:
    """Below and above the candidate's bar: its difference's confidence interval, moved onto
    the candidate (0 when the check has none)."""
    interval = check.detail.get("ci") or check.detail.get("difference_ci")
    if not interval or check.baseline is None or check.candidate is None:
        return 0.0, 0.0
    low, high = float(interval[0]) + check.baseline, float(interval[1]) + check.baseline
    return max(check.candidate - low, 0.0), max(high - check.candidate, 0.0)


def _slice_bars(axes: Axes, checks: Sequence[Check]) -> None:
    shown = sorted((c for c in checks if c.kind is Kind.SLICE and _both(c)),
                   key=lambda c: c.verdict is not Verdict.FAILED)[:20]
    _paired_bars(axes, [c.name.removeprefix("slice.")[:40] for c in shown],
                 [float(c.candidate or 0) for c in shown], [float(c.baseline or 0) for c in shown])


def _latency_bars(axes: Axes, checks: Sequence[Check]) -> None:
    shown = [c for c in checks if c.kind is Kind.LATENCY and _both(c)]
    _paired_bars(axes, [c.name.removeprefix("latency.") for c in shown],
                 [float(c.candidate or 0) for c in shown], [float(c.baseline or 0) for c in shown])
    axes.set_ylabel("ms")


def _both(check: Check) -> bool:
    return check.candidate is not None and check.baseline is not None


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
