"""Markdown table: Triton's perf_analyzer and `ferry bench` side by side, per protocol and
concurrency, from the files bench/serve/perf_analyzer.sh leaves in OUT.

Usage: python bench/serve/perf_report.py OUT > OUT/report.md

Reads OUT/pa-PROTOCOL-cN.csv (perf_analyzer's -f report: one row per concurrency, latencies in
microseconds) and OUT/ferry-bench-PROTOCOL.json (`ferry bench --json`: one step per
concurrency, latencies in milliseconds); OUT/machine.txt, when present, heads the report.
A run that left no figures shows its status from OUT/pa-PROTOCOL-cN.status; one measured at a
looser stability than 30 % says so from OUT/pa-PROTOCOL-cN.note.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

PROTOCOLS = ("http", "grpc")
PERCENTILES = ("p50", "p90", "p99")
Figures = tuple[float, float, float, float]
"""Throughput per second, then p50, p90 and p99 latency in milliseconds."""


def perf_analyzer_figures(out: Path, protocol: str, concurrency: int) -> Figures | None:
    path = out / f"pa-{protocol}-c{concurrency}.csv"
    if not path.exists():
        return None
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("Concurrency")]
    if not rows:
        return None
    row = rows[-1]
    p50, p90, p99 = (float(row[f"{p} latency"]) / 1000 for p in PERCENTILES)
    return float(row["Inferences/Second"]), p50, p90, p99


def ferry_bench_steps(out: Path, protocol: str) -> dict[int, dict[str, Any]]:
    path = out / f"ferry-bench-{protocol}.json"
    try:
        steps = json.loads(path.read_text()).get("steps", [])
    except (OSError, ValueError):
        return {}
    return {int(step["level"]): step for step in steps}


def ferry_bench_figures(step: dict[str, Any] | None) -> Figures | None:
    if step is None or not step.get("requests"):
        return None
    return (float(step["req_s"]), float(step["p50_ms"]), float(step["p90_ms"]),
            float(step["p99_ms"]))


def cells(figures: Figures | None, status: str, note: str = "") -> list[str]:
    if figures is None:
        return [status or "n/a", "", "", ""]
    rate, *latencies = figures
    return [f"{rate:,.0f}" + (f" ({note})" if note else ""), *(f"{ms:.2f}" for ms in latencies)]


def side_file(out: Path, protocol: str, concurrency: int, suffix: str) -> str:
    """perf_analyzer.sh's `.status` (why no figures) or `.note` (a retry's looser stability)."""
    path = out / f"pa-{protocol}-c{concurrency}.{suffix}"
    return path.read_text().strip() if path.exists() else ""


def table(out: Path, levels: list[int]) -> list[str]:
    head = ("| protocol | concurrency | perf_analyzer infer/s | p50 ms | p90 ms | p99 ms "
            "| ferry bench req/s | p50 ms | p90 ms | p99 ms |")
    lines = [head, "|" + "---|" * 10]
    for protocol in PROTOCOLS:
        steps = ferry_bench_steps(out, protocol)
        for level in levels:
            analyzer = cells(perf_analyzer_figures(out, protocol, level),
                             side_file(out, protocol, level, "status"),
                             side_file(out, protocol, level, "note"))
            bench = cells(ferry_bench_figures(steps.get(level)), "n/a")
            lines.append("| " + " | ".join([protocol, str(level), *analyzer, *bench]) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--concurrency", default="1,2,4,8,16,32")
    arguments = parser.parse_args()
    out: Path = arguments.out
    levels = [int(level) for level in arguments.concurrency.split(",")]
    machine = out / "machine.txt"
    if machine.exists():
        print("```\n" + machine.read_text().strip() + "\n```\n")
    print("\n".join(table(out, levels)))


if __name__ == "__main__":
    main()
