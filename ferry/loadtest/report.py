"""How a run is shown: table cells for the terminal, a JSON document, and a PNG plot.

The plot has two panels sharing the x axis (concurrency, or offered rate in open loop):
throughput on top, p50 and p99 latency below with the latency target as a dashed line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferry.loadtest.results import StepResult


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _rate(value: float) -> str:
    return _num(value, 0 if value >= 100 else 1)


def table_title(heading: str) -> str:
    return f"{heading} (latency in ms)"


def table_columns(results: Sequence[StepResult]) -> list[str]:
    """Short headers, so the table fits an 80-column terminal."""
    columns = ["step", "requests", "req/s", "rows/s", "p50", "p90", "p99", "max", "errors"]
    if any(r.mode == "rate" for r in results):
        columns += ["sent", "drop", "late"]
    if any(r.server_cpu_us_per_req is not None for r in results):
        columns.append("srv µs/req")
    if any(r.met_target is not None for r in results):
        columns.append("target")
    return columns


def table_rows(results: Sequence[StepResult]) -> list[list[str]]:
    columns = table_columns(results)
    rows = []
    for r in results:
        row = [r.label, str(r.requests), _rate(r.req_s), _rate(r.rows_s), _num(r.p50_ms),
               _num(r.p90_ms), _num(r.p99_ms), _num(r.max_ms), str(r.error_count)]
        if "sent" in columns:
            row += [str(r.sent or 0), str(r.dropped or 0), str(r.late or 0)]
        if "srv µs/req" in columns:
            row.append(_num(r.server_cpu_us_per_req, 0))
        if "target" in columns:
            row.append("met" if r.met_target else "missed")
        rows.append(row)
    return rows


def error_lines(results: Sequence[StepResult]) -> list[str]:
    """One line per step with errors: counts by status and the first sample message."""
    lines = []
    for r in results:
        if r.error_count:
            counts = ", ".join(f"{code} x{count}" for code, count in r.errors.items())
            sample = f"; e.g. {r.error_samples[0]}" if r.error_samples else ""
            lines.append(f"{r.label} errors: {counts}{sample}")
    return lines


def verdict(best: StepResult | None, target_ms: float, percentile: str) -> str:
    """One line naming the highest throughput under the latency target."""
    if best is None:
        return (f"no step met {percentile} <= {target_ms:g} ms with no errors: lower the load"
                " or raise the target")
    return (f"highest throughput with {percentile} <= {target_ms:g} ms: {best.label},"
            f" {best.req_s:,.1f} req/s ({best.rows_s:,.1f} rows/s), {percentile}"
            f" {best.latency_ms(percentile):.2f} ms")


def report_dict(settings: dict[str, Any], model: dict[str, Any],
                results: Sequence[StepResult], skipped: Sequence[float],
                best: StepResult | None) -> dict[str, Any]:
    return {"tool": "ferry bench", "settings": settings, "model": model,
            "steps": [r.to_dict() for r in results], "skipped_levels": list(skipped),
            "best": best.to_dict() if best is not None else None}


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_plot(path: Path, results: Sequence[StepResult], title: str,
               target_ms: float | None = None, percentile: str = "p99") -> None:
    """Throughput and p50/p99 latency against the step level, as a PNG (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results:
        raise ValueError("no steps to plot")
    xs = [r.level for r in results]
    open_loop = results[0].mode == "rate"
    figure = Figure(figsize=(7.5, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(xs, [r.req_s for r in results], "o-", label="completed req/s")
    if open_loop:
        top.plot(xs, xs, ":", color="grey", label="offered req/s")
    top.set_ylim(bottom=0)
    top.set_ylabel("throughput (req/s)")
    top.legend(loc="best")
    top.grid(True, alpha=0.3)
    top.set_title(title)
    for name, style in (("p50", "o-"), ("p99", "s-")):
        points = [(r.level, r.latency_ms(name)) for r in results
                  if r.latency_ms(name) is not None]
        if points:
            bottom.plot([p[0] for p in points], [p[1] for p in points], style, label=name)
    if target_ms is not None:
        bottom.axhline(target_ms, linestyle="--", color="red",
                       label=f"{percentile} target {target_ms:g} ms")
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("offered rate (req/s)" if open_loop else "concurrency")
    bottom.legend(loc="best")
    bottom.grid(True, alpha=0.3)
    if len(xs) > 1 and min(xs) > 0 and max(xs) / min(xs) >= 8:
        bottom.set_xscale("log", base=2 if not open_loop else 10)
    bottom.set_xticks(xs, [f"{x:g}" for x in xs])
    figure.savefig(path, format="png", dpi=100)
