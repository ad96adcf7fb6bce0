"""The optimization report: a Markdown table of every candidate (size, latency per batch size,
speed-up against the original, equivalence numbers, pass or fail, why skipped) and a bar chart
of the speed-ups as a PNG next to it (when matplotlib is installed)."""

from __future__ import annotations

import json
from pathlib import Path

from ferry.optimizer.search import BASELINE, CandidateResult, OptimizeResult, Status

MICRO = 1e6


def write_report(result: OptimizeResult, path: Path) -> Path:
    """Write `path` (.md; a folder gets report.md inside), its .png chart and .json data."""
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        path = path / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    chart = _chart(result, path.with_suffix(".png"))
    path.with_suffix(".json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    path.write_text(markdown(result, chart.name if chart else None))
    return path


def markdown(result: OptimizeResult, chart: str | None = None) -> str:
    sizes = result.batch_sizes
    lines = [f"# Optimizing {result.source.uri}", ""]
    chosen = result.chosen
    if chosen is not None:
        made = f" registered as **{result.version.uri}**" if result.version else ""
        speed = chosen.timings[sizes[0]].speedup
        lines.append(f"Chosen: **{chosen.label}**{made}, {_x(speed)} the original at batch"
                     f" {sizes[0]}.")
    else:
        lines.append("No candidate passed its equivalence gate: nothing was registered.")
    machine = result.machine
    lines += ["", f"Machine: {machine.processor}, {machine.cores} cores"
              f" (flags: {', '.join(machine.to_dict()['flags']) or 'none of note'});"
              f" GPU: {'yes' if machine.gpu else 'no'}.", ""]
    head = ["candidate", "precision", "status", "size KB"]
    for size in sizes:
        head += [f"b{size} µs/call", f"b{size} p90", f"b{size} speed-up"]
    head += ["equivalence", "build s", "notes"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append(_baseline_row(result))
    lines += [_other_baseline_row(result, name) for name in result.other_baselines]
    for entry in result.candidates:
        lines.append(_row(entry, sizes))
    if chart:
        lines += ["", f"![speed-up against the original]({chart})"]
    lines += ["", "Speed-ups are paired: the median over interleaved slices of the original's"
              " time over the candidate's, timed in the same run with the same inputs."
              " Equivalence is measured on held-out rows of the reference sample that"
              " calibration never saw.", ""]
    return "\n".join(lines)


def _baseline_row(result: OptimizeResult) -> str:
    cells = [f"{BASELINE} ({result.source.framework} {result.baseline_name})", "-", "baseline",
             "-"]
    for size in result.batch_sizes:
        timing = result.baseline.get(size)
        cells += [_us(timing.median_s if timing else None),
                  _us(timing.p90_s if timing else None), "1.00x"]
    cells += ["-", "-", ""]
    return "| " + " | ".join(cells) + " |"


def _other_baseline_row(result: OptimizeResult, name: str) -> str:
    """Another way of calling the original, with its speed against the baseline."""
    cells = [f"{BASELINE} ({result.source.framework} {name})", "-", "baseline", "-"]
    for size in result.batch_sizes:
        timing = result.other_baselines[name].get(size)
        cells += [_us(timing.median_s if timing else None),
                  _us(timing.p90_s if timing else None),
                  _x(timing.speedup if timing else None)]
    cells += ["-", "-", ""]
    return "| " + " | ".join(cells) + " |"


def _row(entry: CandidateResult, sizes: tuple[int, ...]) -> str:
    mark = {Status.PASSED: "pass", Status.FAILED_GATE: "FAIL gate",
            Status.FAILED_BUILD: "failed", Status.SKIPPED: "skipped"}[entry.status]
    cells = [entry.label, entry.precision, mark,
             f"{entry.size_bytes / 1024:,.0f}" if entry.size_bytes else "-"]
    for size in sizes:
        timing = entry.timings.get(size)
        cells += [_us(timing.median_s if timing else None),
                  _us(timing.p90_s if timing else None),
                  _x(timing.speedup if timing else None)]
    equivalence = entry.verdict.summary() if entry.verdict else "-"
    notes = entry.reason if entry.status in (Status.SKIPPED, Status.FAILED_BUILD) \
        else entry.notes
    cells += [equivalence, f"{entry.build_s:.2f}" if entry.build_s is not None else "-",
              notes.replace("|", "/")]
    return "| " + " | ".join(cells) + " |"


def _us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * MICRO:,.1f}"


def _x(speedup: float | None) -> str:
    return "-" if speedup is None else f"{speedup:.2f}x"


def _chart(result: OptimizeResult, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    timed = [c for c in result.candidates if c.timings]
    if not timed:
        return None
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(timed) + 1.5))
    height = 0.8 / len(result.batch_sizes)
    for offset, size in enumerate(result.batch_sizes):
        values = [c.timings[size].speedup or 0.0 for c in timed]
        positions = [i + offset * height for i in range(len(timed))]
        axes.barh(positions, values, height=height, label=f"batch {size}")
    axes.set_yticks([i + height * (len(result.batch_sizes) - 1) / 2 for i in range(len(timed))])
    axes.set_yticklabels([f"{c.label}{'' if c.status == Status.PASSED else ' (fails)'}"
                          for c in timed])
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel(f"speed-up against {result.source.framework} predict (log scale)")
    axes.set_title(f"{result.source.uri}: candidates")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
