"""The `ferry` command line: register, list, inspect, alias, predict, collect garbage.

Only typer, rich and ferry's light modules load at start-up, so `ferry --help` and shell
completion answer at once: the registry, numpy, pandas and the converters are imported
inside the commands that use them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ferry.cli.output import (
    JsonFlag,
    UsageError,
    command_line,
    handles_errors,
    plain,
    print_json,
    print_table,
    stderr,
    stdout,
    when,
)
from ferry.text import is_whole_number
from ferry.uri import validate_name

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ferry.registry import ModelVersion, Registry, Report
    from ferry.runtime.predictor import Outputs
    from ferry.steps import Steps

app = typer.Typer(help="ferry: carry a trained model from a notebook to production.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
alias_app = typer.Typer(help="Point aliases (production, staging, ...) at versions.",
                        no_args_is_help=True)
app.add_typer(alias_app, name="alias")

PREVIEW_ROWS = 50


def _print_version(value: bool) -> None:
    if value:
        from ferry import __version__

        stdout.print(f"ferry {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def common_options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print ferry's version and exit.")] = False) -> None:
    """ferry: carry a trained model from a notebook to production."""


def _registry() -> Registry:
    from ferry.registry import Registry

    return Registry()


def _require_file(path: Path, option: str) -> None:
    if not path.is_file():
        raise UsageError(f"no such file: {path} ({option})")


def _pairs(values: list[str] | None, what: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid {what} {item!r}: write KEY=VALUE")
        try:
            result[key] = float(raw) if what == "metric" else raw
        except ValueError as exc:
            raise UsageError(f"invalid metric {item!r}: the value must be a number") from exc
    return result


def _axes(values: list[str] | None) -> dict[int, str]:
    axes: dict[int, str] = {}
    for axis, name in _pairs(values, "dynamic axis").items():
        if not is_whole_number(axis):
            raise UsageError(f"invalid dynamic axis {axis}={name}: write AXIS=NAME with"
                             " AXIS a number, e.g. 1=sequence")
        axes[int(axis)] = name
    return axes


@app.command()
@handles_errors
def register(
    file: Annotated[Path, typer.Argument(help="Model file: .onnx, .pmml, .json/.ubj (XGBoost),"
                                         " .txt (LightGBM), .pt2, .keras/.h5, a SavedModel"
                                         " directory, or a pickle.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Registered model name.")],
    framework: Annotated[str | None, typer.Option(help="sklearn, xgboost, lightgbm, torch,"
                                                   " tensorflow, onnx or pmml (guessed if left"
                                                   " out).")] = None,
    sample: Annotated[Path | None, typer.Option(help="Sample rows: .csv, .parquet, .json"
                                                " or .npy; or .npz with one array per model"
                                                " input, named after it.")] = None,
    trust_pickle: Annotated[bool, typer.Option(help="Allow loading a pickle file.")] = False,
    force: Annotated[bool, typer.Option(help="Register even if conversion fails or is off"
                                        " tolerance (then served natively).")] = False,
    metric: Annotated[list[str] | None, typer.Option(help="KEY=NUMBER, repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    dynamic_axis: Annotated[list[str] | None, typer.Option(
        help="PyTorch: AXIS=NAME, an input axis besides the batch that takes any size"
             " (e.g. 1=sequence); repeatable.")] = None,
    signature: Annotated[str | None, typer.Option(
        help="TensorFlow SavedModel: the signature to serve (default serving_default).")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Register a model file as the next version of NAME, with its checked ONNX form."""
    from ferry.data import read_sample_file
    from ferry.files import read_model_file
    from ferry.registration import register as register_model

    with command_line():
        _check_registration(file, name, framework, sample)
        if signature is not None and not file.is_dir():
            raise UsageError("--signature is for TensorFlow SavedModel directories; FILE is"
                             " a file")
        metrics, tags = _pairs(metric, "metric"), _pairs(tag, "tag")
        axes = _axes(dynamic_axis)
    model = read_model_file(file, framework=framework, trust_pickle=trust_pickle,
                            signature=signature)
    rows = read_sample_file(sample) if sample is not None else None
    with stderr.status(f"converting and checking {file.name}..."):
        version = register_model(model, name, sample=rows, metrics=metrics, tags=tags,
                                 description=description, framework=framework, force=force,
                                 dynamic_axes=axes, registry=_registry())
    if json_output:
        print_json(version)
        return
    stdout.print(f"registered [bold]{version.uri}[/] ({version.framework}, runtime"
                 f" {version.runtime}); check: {_check_summary(version)}")


def _check_registration(file: Path, name: str, framework: str | None,
                        sample: Path | None) -> None:
    """What `register` was given on the command line, before anything is read."""
    from ferry.convert import converter_for

    validate_name(name)
    if framework is not None:
        converter_for(framework)
    if not (file.is_file() or file.is_dir()):
        raise UsageError(f"no such file or directory: {file} (FILE)")
    if sample is not None:
        _require_file(sample, "--sample")


@app.command()
@handles_errors
def models(json_output: JsonFlag = False) -> None:
    """List registered models."""
    found = _registry().models()
    if json_output:
        print_json(found)
        return
    print_table("models", ["name", "latest", "aliases", "description", "created"],
                [(m.name, m.latest_version, _aliases(m.aliases), m.description,
                  when(m.created_at)) for m in found])


@app.command()
@handles_errors
def versions(name: str, json_output: JsonFlag = False) -> None:
    """List the versions of a model."""
    found = _registry().versions(name)
    if json_output:
        print_json(found)
        return
    print_table(f"versions of {name}",
                ["version", "status", "framework", "task", "runtime", "aliases", "check",
                 "created", "by"],
                [(v.version, v.status, v.framework, v.task, v.runtime, ", ".join(v.aliases),
                  _check_summary(v), when(v.created_at), v.created_by) for v in found])


@app.command()
@handles_errors
def show(uri: str, json_output: JsonFlag = False) -> None:
    """Show a version: signature, steps, metrics, lineage, conversion check, gate and test
    results."""
    from ferry.steps import steps_of
    from ferry.steps.stored import pipeline_of

    registry = _registry()
    version = registry.get(uri)
    reports = registry.reports(version.name, version.version)
    steps = steps_of(version, registry)
    pipeline = pipeline_of(version, registry)
    if json_output:
        print_json({**plain(version), "reports": plain(reports),
                    "steps": None if steps is None else steps.to_dict(),
                    "pipeline": None if pipeline is None else json.loads(pipeline.to_bytes())})
        return
    _show_version(version, steps)
    if pipeline is not None:
        stdout.print(f"pipeline: {pipeline.describe()}" + (
            " (its Python steps are shown by --json; loading it runs them, so it needs"
            " --trust-code)" if pipeline.runs_code else ""), highlight=False, soft_wrap=True)
    _show_check(version)
    _show_reports(reports)


def _show_version(version: ModelVersion, steps: Steps | None) -> None:
    """The version's header, signature, steps and key-value tables."""
    stdout.print(f"[bold]{version.uri}[/]  {version.status}  aliases:"
                 f" {', '.join(version.aliases) or '-'}")
    stdout.print(f"framework {version.framework} {version.framework_version}, task"
                 f" {version.task}, runtime {version.runtime}, created {when(version.created_at)}"
                 f" by {version.created_by}")
    _show_signature(version)
    if steps is not None:
        stdout.print(f"steps: {steps.describe()} (Python source, shown by --json; loading the"
                     " version runs it, so it needs --trust-code)", highlight=False,
                     soft_wrap=True)
    for title, values in (("metrics", version.metrics), ("params", version.params),
                          ("tags", version.tags), ("lineage", _lineage(version))):
        if values:
            print_table(title, ["key", "value"], sorted(values.items()))


def _show_reports(reports: list[Report]) -> None:
    """The latest gate and test result of the version, if it has any."""
    latest = {report.kind: report for report in reports}
    for kind, report in sorted(latest.items()):
        against = f" against {report.summary.get('baseline')}" \
            if report.baseline_version is not None else ""
        failures = ", ".join(report.summary.get("failures") or []) or "none failed"
        stdout.print(f"{kind}: [bold]{report.status}[/]{against} on {when(report.created_at)}"
                     f" (report {report.id}; {failures})", highlight=False, soft_wrap=True)


def _lineage(version: ModelVersion) -> dict[str, Any]:
    lineage = dict(version.lineage)
    if version.parent_version is not None:
        lineage["parent_version"] = version.parent_version
    lineage["original_sha256"] = version.original_sha256
    if version.onnx_sha256:
        lineage["onnx_sha256"] = version.onnx_sha256
    return lineage


def _show_signature(version: ModelVersion) -> None:
    signature = version.signature
    rows = [("input", s.name, s.dtype, list(s.shape), "") for s in signature.inputs]
    rows += [("output", s.name, s.dtype, list(s.shape), s.role or "") for s in signature.outputs]
    print_table(f"signature ({signature.layout} layout)", ["", "name", "dtype", "shape", "role"],
                rows)
    if signature.feature_names:
        stdout.print(f"features: {', '.join(signature.feature_names)}", highlight=False)
    if signature.class_labels:
        stdout.print(f"classes: {', '.join(map(str, signature.class_labels))}", highlight=False)


def _show_check(version: ModelVersion) -> None:
    check = version.conversion_check
    outputs = check.get("outputs") or []
    if not outputs:
        stdout.print(f"conversion check: {_check_summary(version)}")
        return
    compared = check.get("compared") or {check.get("data"): check.get("rows")}
    print_table("conversion check on " + ", ".join(f"{n} {k}" for k, n in compared.items())
                + " rows",
                ["output", "passed", "max abs error", "max rel error", "label agreement",
                 "exact match"],
                [(o["role"], o["passed"], _num(o.get("max_abs_error")),
                  _num(o.get("max_rel_error")), _num(o.get("label_agreement")),
                  _num(o.get("exact_match"))) for o in outputs])
    if version.forced:
        stdout.print("[yellow]registered with --force[/]")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _check_summary(version: ModelVersion) -> str:
    check = version.conversion_check
    if "skipped" in check:
        return f"none ({check['skipped']})"
    state = "passed" if check.get("passed") else "FAILED"
    return f"{state}{' (forced)' if version.forced else ''}"


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}->{v}" for a, v in aliases.items())


@alias_app.command("set")
@handles_errors
def alias_set(name: str, alias: str, version: int) -> None:
    """Point ALIAS of model NAME at VERSION (moving it if it exists)."""
    event = _registry().set_alias(name, alias, version)
    if event is None:
        stdout.print(f"{name}@{alias} already points at {version}")
        return
    moved = f" (was {event.from_version})" if event.from_version is not None else ""
    stdout.print(f"{name}@{alias} -> {version}{moved}")


@alias_app.command("rm")
@handles_errors
def alias_rm(name: str, alias: str) -> None:
    """Remove ALIAS from model NAME."""
    _registry().remove_alias(name, alias)
    stdout.print(f"removed {name}@{alias}")


@alias_app.command("list")
@handles_errors
def alias_list(name: str, json_output: JsonFlag = False) -> None:
    """List the aliases of model NAME."""
    aliases = _registry().aliases(name)
    if json_output:
        print_json(aliases)
        return
    print_table(f"aliases of {name}", ["alias", "version"], sorted(aliases.items()))


@app.command()
@handles_errors
def history(name: str, json_output: JsonFlag = False) -> None:
    """Every change to a model: registrations, alias moves, archives, deletions."""
    events = _registry().history(name)
    if json_output:
        print_json(events)
        return
    print_table(f"history of {name}", ["when", "event", "version", "alias", "from", "to", "by"],
                [(when(e.at), e.event, e.version, e.alias, e.from_version, e.to_version,
                  e.actor) for e in events])


@app.command()
@handles_errors
def archive(name: str, version: int) -> None:
    """Archive a version (kept, but no longer the latest)."""
    _registry().archive(name, version)
    stdout.print(f"archived {name}:{version}")


@app.command()
@handles_errors
def delete(name: str, version: Annotated[int | None, typer.Argument()] = None) -> None:
    """Delete a version, or with no VERSION the whole model (history is kept)."""
    registry = _registry()
    if version is None:
        registry.delete_model(name)
        stdout.print(f"deleted model {name}")
    else:
        registry.delete_version(name, version)
        stdout.print(f"deleted {name}:{version}")


@app.command()
@handles_errors
def predict(
    uri: str,
    input: Annotated[Path, typer.Option("--input", "-i", help="Rows: .csv, .parquet, .json"
                                        " or .npy; or .npz with one array per model input.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write predictions to"
                                                " .csv, .parquet or .json.")] = None,
    trust_code: Annotated[bool, typer.Option(help="Allow running the version's stored Python"
                                             " pre/post steps (read them with `ferry show`"
                                             " first).")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Predict with a registered version on the rows of a file."""
    from ferry.data import read_sample_file, write_table_file
    from ferry.loading import load

    with command_line():
        _require_file(input, "--input")
    rows = read_sample_file(input)
    predictor = load(uri, registry=_registry(), trust_code=trust_code)
    outputs = predictor.outputs(rows)
    frame = _prediction_frame(predictor.signature.class_labels, outputs,
                              predictor.predict(rows))
    if output is not None:
        write_table_file(frame, output)
        stderr.print(f"wrote {len(frame)} predictions to {output}")
    elif json_output:
        print_json(frame.to_dict(orient="records"))
    else:
        print_table(f"predictions of {uri}", list(frame.columns),
                    frame.head(PREVIEW_ROWS).itertuples(index=False))
        if len(frame) > PREVIEW_ROWS:
            stdout.print(f"... {len(frame) - PREVIEW_ROWS} more rows: use --output")


def _prediction_frame(labels: Any, outputs: Outputs, prediction: np.ndarray) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    from ferry.signature import Role

    values = np.asarray(prediction)
    if values.ndim == 1:
        frame = pd.DataFrame({"prediction": values})
    else:
        flat = values.reshape(len(values), -1)
        frame = pd.DataFrame(flat, columns=[f"output_{i}" for i in range(flat.shape[1])])
    probabilities = outputs.get(Role.PROBABILITIES)
    if probabilities is not None:
        names = labels or range(probabilities.shape[1])
        for index, label in enumerate(names):
            frame[f"proba_{label}"] = probabilities[:, index]
    return frame


@app.command()
@handles_errors
def gc(
    grace: Annotated[float, typer.Option(help="Keep unreferenced artifacts younger than this"
                                         " many seconds (a registration may be writing them).")
                     ] = 3600.0,
    json_output: JsonFlag = False,
) -> None:
    """Remove artifacts that no version references (left by failed registrations)."""
    if grace < 0:
        raise UsageError("--grace must be zero or more seconds")
    report = _registry().gc(grace_s=grace)
    if json_output:
        print_json(report)
        return
    stdout.print(f"removed {len(report.removed)} artifacts ({report.freed_bytes} bytes),"
                 f" kept {report.kept}")
