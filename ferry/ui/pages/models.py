"""The registry's pages: every model (`/`), one model's versions, aliases and history with the
form that moves an alias through the gate (`/ui/models/NAME`), and one version
(`/ui/models/NAME/VERSION`: signature, metrics, conversion check, lineage graph, optimization
report, gate and test reports, steps, files).

Pages read what `ferry models`, `ferry versions`, `ferry show` and `ferry history` read
(`Registry`); the models page reads `Registry.catalog()`, every model's version count, latest
version and aliases in two queries (`Registry.models()` and `versions()` take a few queries per
model: over half a second for 100 models of 20 versions). Moving an alias goes through
`ferry.gate.promote.promote`, as `ferry promote` does, after the admin token is checked.
Registry calls block, so every endpoint runs them on a worker thread: the server's event loop
keeps answering predictions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ferry.errors import (
    FerryError,
    InvalidInputError,
    ModelNotFoundError,
    NotFoundError,
    VersionNotFoundError,
)
from ferry.registry import Event, ModelVersion, RegisteredModel, Registry, Report
from ferry.registry.catalog import ModelSummary
from ferry.registry.entities import Status, extra_artifacts
from ferry.text import is_whole_number
from ferry.ui.bars import Bar, bar_chart
from ferry.ui.context import UIContext
from ferry.ui.lineage import lineage_graph, lineage_svg, version_href
from ferry.ui.render import html_errors, render_page
from ferry.uri import validate_name

if TYPE_CHECKING:
    from ferry.gate.promote import Promotion

MAX_QUERY_CHARS = 200
"""Longest search text or framework name the models page takes."""
MAX_FORM_BYTES = 16 * 1024
"""Largest alias form read; a bigger body is refused before it is kept."""
MAX_FORM_FIELDS = 20
MAX_HISTORY = 300
"""History lines shown on a model page, newest first (the rest: `ferry history NAME`)."""
MAX_SHOWN_VALUES = 8
"""Values of a worst row shown in the conversion check's table."""
MODELS_PER_PAGE = 25
"""Models on one page of `/` unless `per_page` says otherwise (a cold browser lays out 100
rows in about twice the time of 25: bench/ui/RESULTS.md)."""
MAX_PER_PAGE = 100
MAX_SIZES = 20_000
"""Artifact sizes remembered (artifacts never change under their sha256)."""


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


# -- formatting, shared by the templates ------------------------------------------------------


class Formats:
    """Small formatters the templates call (`fmt.when(...)`)."""

    @staticmethod
    def when(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def size(value: int | None) -> str:
        """Bytes in B, KB, MB or GB (powers of 1024); '' when unknown."""
        if value is None:
            return ""
        amount, unit = float(value), "B"
        for unit in ("B", "KB", "MB", "GB"):
            if amount < 1024 or unit == "GB":
                break
            amount /= 1024
        return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"

    @staticmethod
    def num(value: Any) -> str:
        """Numbers with 4 significant digits; containers as compact JSON; None as ''."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:.4g}" if math.isfinite(value) else str(value)
        if isinstance(value, dict | list | tuple):
            return json.dumps(value, default=str, separators=(", ", ": "))
        return str(value)

    @staticmethod
    def href(name: str, version: int | None = None) -> str:
        base = f"/ui/models/{quote(name, safe='')}"
        return base if version is None else version_href(name, version)


FMT = Formats()


def check_state(version: ModelVersion) -> tuple[str, str]:
    """The conversion check in a word, and its CSS class (`ferry versions`' check column)."""
    check = version.conversion_check
    if "skipped" in check:
        return f"none ({check['skipped']})", "muted"
    if "equivalence_gate" in check:
        gate = check.get("equivalence_gate") or {}
        return ("passed" if gate.get("passed") else "FAILED"), \
            ("ok" if gate.get("passed") else "bad")
    if check.get("passed"):
        return ("passed (forced)" if version.forced else "passed"), "ok"
    return ("FAILED (forced)" if version.forced else "FAILED"), "bad"


# -- the models page ----------------------------------------------------------------------------


_SIZES: dict[str, int] = {}
"""Bytes by sha256: the same in every store, so remembered across registries."""


def artifact_size(registry: Registry, sha256: str | None) -> int | None:
    """Bytes of a stored artifact (one stat, then remembered: content under a sha256 never
    changes); None when it is missing (asked again next time)."""
    if not sha256:
        return None
    if sha256 not in _SIZES:
        store = registry.artifacts
        try:
            size = int(store.fs.size(store.path(sha256)))
        except (FileNotFoundError, OSError):
            return None
        if len(_SIZES) >= MAX_SIZES:
            _SIZES.clear()
        _SIZES[sha256] = size
    return _SIZES[sha256]


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
    def first(self) -> int:
        return (min(self.page, self.pages) - 1) * self.per_page

    @property
    def last(self) -> int:
        return min(self.first + self.per_page, self.total)

    @property
    def current(self) -> int:
        return min(self.page, self.pages)


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


# -- one model: versions, aliases, history, the alias form ------------------------------------


@dataclass(frozen=True)
class AliasLine:
    """An alias, the version it holds, and its last move."""

    alias: str
    version: int
    moved: Event | None


@dataclass(frozen=True)
class FormState:
    """What the alias form shows again after a refusal (never the token)."""

    values: dict[str, str] = field(default_factory=dict)
    error: str = ""
    notice: str = ""


def checked_name(name: str) -> str:
    """A model name from the path; an invalid one reads as a model that does not exist."""
    try:
        return validate_name(name)
    except InvalidInputError:
        raise ModelNotFoundError(f"no model named {name!r}: the models page lists them",
                                 model=None) from None


def show_model(context: UIContext, request: Request) -> Response:
    """`/ui/models/NAME`; `?moved=ALIAS` after the form moved an alias says so."""
    name = checked_name(request.path_params["name"])
    moved = request.query_params.get("moved", "")[:MAX_QUERY_CHARS]
    return model_response(context, request, name, FormState(), moved=moved)


def model_response(context: UIContext, request: Request, name: str, form: FormState,
                   status_code: int = 200, moved: str = "") -> Response:
    """The model page, with the alias form in `form`'s state."""
    registry = context.registry
    model = registry.model(name)
    versions = registry.versions(name)
    history = registry.history(name)
    aliases = alias_lines(model, history)
    if moved and not form.notice:
        form = FormState(form.values, form.error, _moved_notice(aliases, moved))
    return render_page(request, "model.html", title=f"Model {name}", active="models",
                       status_code=status_code, model=model, versions=versions,
                       aliases=aliases, history=list(reversed(history))[:MAX_HISTORY],
                       older=max(0, len(history) - MAX_HISTORY), form=form,
                       ready=[v.version for v in versions if v.status == Status.READY],
                       locked=not context.admin_token, check_state=check_state, fmt=FMT)


def alias_lines(model: RegisteredModel, history: Sequence[Event]) -> list[AliasLine]:
    """Every alias with its version and the history event that last set it."""
    last: dict[str, Event] = {}
    for event in history:
        if event.alias and event.event in ("alias_set", "alias_moved"):
            last[event.alias] = event
    return [AliasLine(alias, version, last.get(alias))
            for alias, version in sorted(model.aliases.items())]


def _moved_notice(aliases: Sequence[AliasLine], alias: str) -> str:
    line = next((a for a in aliases if a.alias == alias), None)
    if line is None:
        return ""
    was = line.moved.from_version if line.moved else None
    return f"{alias} now points at version {line.version}" + (
        f" (moved from {was})" if was is not None else "")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body, at most `MAX_FORM_BYTES` read and `MAX_FORM_FIELDS` fields;
    the first value of each field."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidInputError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise InvalidInputError(f"the form has more than {MAX_FORM_FIELDS} fields") from exc
    return {key: values[0] for key, values in fields.items()}


def promote_from_form(context: UIContext, request: Request,
                      form: dict[str, str]) -> Response:
    """Move an alias as `ferry promote` does; back to the model page (303) when it moved."""
    name = checked_name(request.path_params["name"])
    context.registry.model(name)
    kept = {k: v for k, v in form.items() if k != "token"}
    try:
        done = _promote(context.registry, name, form)
    except (InvalidInputError, VersionNotFoundError) as exc:
        return model_response(context, request, name, FormState(kept, error=str(exc)), 400)
    if done.moved:
        return RedirectResponse(f"{FMT.href(name)}?moved={quote(done.alias)}#aliases",
                                status_code=303)
    if done.from_version == done.to_version:
        note = f"{done.alias} already points at version {done.to_version}"
        return model_response(context, request, name, FormState(kept, notice=note))
    return model_response(context, request, name, FormState(kept, error=_refusal(done)), 409)


def _refusal(done: Promotion) -> str:
    """Why the gate kept the alias where it was (a `Promotion` that did not move)."""
    report = f" (gate report {done.report.id})" if done.report else ""
    return (f"the gate failed{report}: {done.alias} stays at version {done.from_version};"
            f" failed checks: {', '.join(done.to_dict()['failures']) or 'none named'}")


def _promote(registry: Registry, name: str, form: Mapping[str, str]) -> Promotion:
    """`ferry.gate.promote.promote` with the form's values, checked as the CLI checks them."""
    from ferry.gate.performance import TimingSettings
    from ferry.gate.promote import promote

    version = _form_version(form.get("version", ""))
    data, label = form.get("data", "").strip(), form.get("label", "").strip()
    if bool(data) != bool(label):
        raise InvalidInputError("give the data path and the label column together")
    if data and not Path(data).is_file():
        raise InvalidInputError(f"data {data!r}: no such file on the server")
    override = form.get("override") == "on"
    reason = form.get("reason", "").strip() or None
    timing = TimingSettings() if form.get("timing") == "on" else None
    return promote(name, form.get("alias", "").strip(), version, data or None, label or None,
                   override=override, reason=reason, registry=registry, timing=timing)


def _form_version(text: str) -> int:
    text = text.strip()
    if not is_whole_number(text) or len(text) > 9:
        raise InvalidInputError(f"version {text!r}: choose a version number")
    return int(text)


# -- one version -------------------------------------------------------------------------------


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
