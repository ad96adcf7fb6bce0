"""One version's page (`/ui/models/NAME/VERSION`): signature, metrics, conversion check,
lineage graph, optimization report, gate and test reports, steps, files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ferry.errors import FerryError, InvalidInputError, NotFoundError, VersionNotFoundError
from ferry.registry import ModelVersion, Registry, Report
from ferry.registry.entities import extra_artifacts
from ferry.text import is_whole_number
from ferry.ui.bars import Bar, bar_chart
from ferry.ui.context import UIContext
from ferry.ui.lineage import lineage_graph, lineage_svg, version_href
from ferry.ui.pages.formats import FMT, artifact_size, check_state
from ferry.ui.pages.model import checked_name
from ferry.ui.render import render_page

MAX_SHOWN_VALUES = 8
"""Values of a worst row shown in the conversion check's table."""


@dataclass(frozen=True)
class FileLine:
    """One artifact behind a version."""

    kind: str
    sha256: str
    size: int | None


@dataclass(frozen=True)
class WorstRow:
    """A row the conversion check compared, as text."""

    kind: str
    index: str
    about: str
    inputs: str
    original: str
    onnx: str


@dataclass(frozen=True)
class ReportView:
    """A kept gate or test report, with its checks when it is the newest of its kind."""

    report: Report
    checks: list[dict[str, Any]] | None = None
    note: str = ""


@dataclass(frozen=True)
class OptimizationRow:
    label: str
    precision: str
    medians: dict[int, float]
    speedups: dict[int, float]
    chosen: bool = False


@dataclass(frozen=True)
class OptimizationRun:
    """What `ferry optimize` recorded on the version it registered (`lineage.optimization`):
    the original's latency, other ways of calling it, and the chosen candidate's."""

    source: str
    result: ModelVersion
    batch_sizes: list[int]
    rows: list[OptimizationRow]
    processor: str
    charts: list[tuple[int, Markup]]
    """(batch size, its bar chart)."""


def show_version(context: UIContext, request: Request) -> Response:
    """`/ui/models/NAME/VERSION`; an alias in place of VERSION redirects to its version."""
    registry = context.registry
    name = checked_name(request.path_params["name"])
    text = request.path_params["version"]
    if not is_whole_number(text):
        return _alias_redirect(registry, name, text)
    version = registry.get(f"{name}:{_path_version(name, text)}")
    versions = registry.versions(name)
    graph = lineage_graph(version, versions)
    return render_page(
        request, "version.html", title=f"Version {version.uri}", active="models", v=version,
        check=check_state(version), lineage=lineage_table(version),
        lineage_svg=lineage_svg(graph, f"Lineage of {version.uri}"),
        runs=optimization_runs(version, versions), reports=report_views(registry, version),
        steps=steps_text(registry, version), files=files_of(registry, version),
        worst=worst_rows(version.conversion_check), fmt=FMT)


def _path_version(name: str, text: str) -> int:
    if len(text) > 9:
        raise VersionNotFoundError(f"model {name!r} has no version {text}", model=name)
    return int(text)


def _alias_redirect(registry: Registry, name: str, alias: str) -> Response:
    try:
        version = registry.get(f"{name}@{alias}")
    except InvalidInputError:
        raise NotFoundError(f"model {name!r} has no version or alias {alias!r}",
                            model=name) from None
    return RedirectResponse(version_href(name, version.version), status_code=307)


def lineage_table(version: ModelVersion) -> list[tuple[str, Any]]:
    """`ferry show`'s lineage table: the recorded lineage (the optimization record is
    shown as its own report), the parent and the artifacts it came from."""
    lineage = {k: v for k, v in version.lineage.items() if k != "optimization"}
    if version.parent_version is not None:
        lineage["parent_version"] = version.parent_version
    lineage["original_sha256"] = version.original_sha256
    if version.onnx_sha256:
        lineage["onnx_sha256"] = version.onnx_sha256
    return sorted(lineage.items())


def worst_rows(check: Mapping[str, Any]) -> list[WorstRow]:
    """The conversion check's worst rows as text: inputs (the first few), both outputs."""
    rows = []
    for row in check.get("worst_rows") or []:
        values = list((row.get("values") or {}).items())
        more = len(values) - MAX_SHOWN_VALUES + int(row.get("more_values") or 0)
        shown = ", ".join(f"{k}={FMT.num(v)}" for k, v in values[:MAX_SHOWN_VALUES])
        rows.append(WorstRow(str(row.get("kind", "")), str(row.get("index", "")),
                             str(row.get("about") or ""),
                             shown + (f", … {more} more" if more > 0 else ""),
                             _outputs_text(row.get("original")), _outputs_text(row.get("onnx"))))
    return rows


def _outputs_text(outputs: Any) -> str:
    if not isinstance(outputs, dict):
        return FMT.num(outputs)
    return "; ".join(f"{k}: {_rounded(v)}" for k, v in outputs.items())


def _rounded(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_rounded(v) for v in value) + "]"
    return FMT.num(value)


def report_views(registry: Registry, version: ModelVersion) -> list[ReportView]:
    """The version's gate and test reports, newest first; the newest of each kind with its
    checks (read from the stored report)."""
    reports = list(reversed(registry.reports(version.name, version.version)))
    newest = {r.kind: r.id for r in reversed(reports)}
    return [_report_view(registry, r) if newest.get(r.kind) == r.id else ReportView(r)
            for r in reports]


def _report_view(registry: Registry, report: Report) -> ReportView:
    try:
        content = json.loads(registry.read_report(report))
    except (FerryError, ValueError) as exc:
        return ReportView(report, None, f"the stored report cannot be read: {exc}")
    checks = content.get("checks") if isinstance(content, dict) else None
    return ReportView(report, [c for c in checks if isinstance(c, dict)]
                      if isinstance(checks, list) else None)


def steps_text(registry: Registry, version: ModelVersion) -> list[str]:
    """What `ferry show` says of the version's steps or pipeline (described, never run)."""
    from ferry.steps import steps_of
    from ferry.steps.stored import pipeline_of

    try:
        steps = steps_of(version, registry)
        pipeline = pipeline_of(version, registry)
    except FerryError as exc:
        return [f"the stored steps cannot be read: {exc}"]
    lines = []
    if steps is not None:
        lines.append(f"steps: {steps.describe()} (Python source; loading the version runs it,"
                     " so it needs --trust-code)")
    if pipeline is not None:
        code = " (a stage is Python code: loading it needs --trust-code)"
        lines.append(f"pipeline: {pipeline.describe()}{code if pipeline.runs_code else ''}")
    return lines


def files_of(registry: Registry, version: ModelVersion) -> list[FileLine]:
    """The artifacts behind the version and its reports, with their sizes."""
    named = [(f"original ({version.original_format})", version.original_sha256),
             ("onnx", version.onnx_sha256), ("sample", version.sample_sha256),
             ("profile", version.profile_sha256),
             *((f"runtime: {k}", sha) for k, sha in
               sorted(extra_artifacts(version.runtime_settings).items()))]
    named += [(f"{r.kind} report {r.id}", r.sha256)
              for r in registry.reports(version.name, version.version)]
    return [FileLine(kind, sha, artifact_size(registry, sha)) for kind, sha in named if sha]


# -- the optimization report ------------------------------------------------------------------


def optimization_runs(version: ModelVersion,
                      versions: Sequence[ModelVersion]) -> list[OptimizationRun]:
    """The optimization that made this version, and those made from it (derived versions)."""
    made = [version] + [v for v in versions if v.parent_version == version.version]
    runs = [_run(v, v.lineage["optimization"]) for v in made
            if isinstance(v.lineage.get("optimization"), dict)]
    return [run for run in runs if run is not None]


def _run(result: ModelVersion, record: dict[str, Any]) -> OptimizationRun | None:
    baseline = _by_batch(record.get("baseline_median_s"))
    chosen = _by_batch(record.get("median_s"))
    sizes = sorted(set(baseline) | set(chosen))
    if not sizes:
        return None
    rows = _optimization_rows(record, baseline, chosen)
    machine = record.get("machine")
    source = str(result.lineage.get("optimized_from") or f"{result.name}:"
                 f"{result.parent_version}")
    return OptimizationRun(source, result, sizes, rows,
                           _machine_text(machine) if isinstance(machine, dict) else "",
                           [(size, _chart(rows, size, source, result)) for size in sizes])


def _optimization_rows(record: Mapping[str, Any], baseline: dict[int, float],
                       chosen: dict[int, float]) -> list[OptimizationRow]:
    """The original (as timed first), other ways of calling it, and the chosen candidate."""
    rows = [OptimizationRow(f"original ({record.get('baseline', 'predict')})", "-", baseline,
                            {b: 1.0 for b in baseline})]
    others = record.get("other_baselines_median_s")
    for name, medians in (others.items() if isinstance(others, dict) else ()):
        timed = _by_batch(medians)
        rows.append(OptimizationRow(f"original ({name})", "-", timed, _ratios(baseline, timed)))
    threads = f" [{record['threads']}]" if record.get("threads") else ""
    rows.append(OptimizationRow(f"{record.get('candidate', '?')}{threads}",
                                str(record.get("precision", "")), chosen,
                                _by_batch(record.get("speedup")), chosen=True))
    return rows


def _by_batch(values: Any) -> dict[int, float]:
    """{batch size: number} from a JSON record's {"1": 0.0012, ...}; bad entries left out."""
    if not isinstance(values, dict):
        return {}
    found = {}
    for key, value in values.items():
        if is_whole_number(str(key)) and isinstance(value, int | float) and math.isfinite(value):
            found[int(key)] = float(value)
    return found


def _ratios(baseline: Mapping[int, float], timed: Mapping[int, float]) -> dict[int, float]:
    return {b: baseline[b] / t for b, t in timed.items() if b in baseline and t > 0}


def _machine_text(machine: Mapping[str, Any]) -> str:
    flags = ", ".join(machine.get("flags") or []) or "none of note"
    return (f"{machine.get('processor', '?')}, {machine.get('cores', '?')} cores (flags:"
            f" {flags}); GPU: {'yes' if machine.get('gpu') else 'no'}")


def _chart(rows: Iterable[OptimizationRow], size: int, source: str,
           result: ModelVersion) -> Markup:
    bars = [Bar(row.label, row.medians[size] * 1e6,
                f"{row.speedups[size]:.2f}x" if size in row.speedups else "", row.chosen)
            for row in rows if size in row.medians]
    return bar_chart(bars, title=f"Median latency per call at batch {size}: {source} and"
                                 f" {result.uri}", unit="µs")

