"""`ferry compare`, `ferry promote` and `ferry test`: the promotion gate from the command line.

Exit codes, for CI: 0 the gate (or the test suite) passed, 1 it failed (or something else
went wrong, with one line saying what), 2 a usage error: a flag, a file, a column or a
version that cannot be used. The gate package is imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ferry.cli.output import (
    FAILURE_EXIT_CODE,
    JsonFlag,
    UsageError,
    command_line,
    handles_errors,
    print_json,
    print_table,
    stdout,
)

if TYPE_CHECKING:
    from ferry.gate.checks import Check, Judged
    from ferry.gate.compare import GateResult
    from ferry.gate.performance import TimingSettings

DataOption = Annotated[Path, typer.Option("--data", help="Hold-out rows: a Parquet, CSV or"
                                          " JSON-lines file with the label column.")]
LabelOption = Annotated[str, typer.Option("--label", help="The column holding the true"
                                          " answers.")]
SliceOption = Annotated[list[str] | None, typer.Option(
    "--slice", help="A column to slice on (repeat for more); slices are also found"
    " automatically.")]
SensitiveOption = Annotated[str | None, typer.Option(
    "--sensitive", help="A column of groups for the bias checks (four-fifths rule).")]
ReportOption = Annotated[Path | None, typer.Option("--report", help="Write an HTML report"
                                                   " here.")]
TimingFlag = Annotated[bool, typer.Option("--timing/--no-timing", help="Time both versions"
                                          " (latency, throughput, cost).")]
PriceOption = Annotated[float, typer.Option("--price-per-core-hour", help="Price of one"
                                            " core-hour, for the cost per 1,000 predictions.")]
ThresholdOption = Annotated[list[str] | None, typer.Option(
    "--threshold", help="METRIC=VALUE: an absolute floor (ceiling for a lower-is-better"
    " metric), e.g. accuracy=0.9.")]
AbsoluteOption = Annotated[list[str] | None, typer.Option(
    "--min-absolute-change", help="METRIC=VALUE: the candidate must beat the baseline by this"
    " much.")]
RelativeOption = Annotated[list[str] | None, typer.Option(
    "--min-relative-change", help="METRIC=VALUE: the candidate must beat the baseline by this"
    " share, e.g. f1=0.01.")]


@handles_errors
def compare_command(
    candidate: Annotated[str, typer.Argument(help="The new version: NAME:VERSION or"
                                             " NAME@alias.")],
    baseline: Annotated[str, typer.Argument(help="The version to beat, e.g."
                                            " NAME@production.")],
    data: DataOption, label: LabelOption, slice_columns: SliceOption = None,
    sensitive: SensitiveOption = None, report: ReportOption = None, timing: TimingFlag = True,
    price: PriceOption = 0.05, threshold: ThresholdOption = None,
    min_absolute_change: AbsoluteOption = None, min_relative_change: RelativeOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the slicer.")] = 0,
    json_output: JsonFlag = False,
) -> None:
    """Compare a candidate version with a baseline on hold-out data; exit 1 if the gate fails."""
    from ferry.gate.compare import compare_versions, gate_rows, keep_result
    from ferry.registry import Registry

    registry = Registry()
    with command_line():
        options = _options(label, slice_columns, sensitive, timing, price, seed,
                           _thresholds(threshold, min_absolute_change, min_relative_change))
        versions = registry.get(candidate), registry.get(baseline)
        rows = gate_rows(_existing(data), options)
        result = compare_versions(registry, *versions, rows, options)
    keep_result(registry, *versions, result)
    _finish(result, report, json_output)


def _options(label: str, slices: list[str] | None, sensitive: str | None, timing: bool,
             price: float, seed: int, thresholds: dict[str, Any]) -> Any:
    from ferry.gate.compare import GateOptions

    return GateOptions(label=label, slices=tuple(slices or ()), sensitive=sensitive,
                       thresholds=thresholds or None, timing=_timing(timing, price), seed=seed)


def _timing(enabled: bool, price: float) -> TimingSettings | None:
    from ferry.gate.performance import TimingSettings

    if price <= 0:
        raise UsageError("--price-per-core-hour must be above 0")
    return TimingSettings(price_per_core_hour=price) if enabled else None


def _thresholds(floors: list[str] | None, absolute: list[str] | None,
                relative: list[str] | None) -> dict[str, Any]:
    """MLflow's knobs per metric, from METRIC=VALUE options."""
    from ferry.gate.conditions import MetricThreshold

    knobs: dict[str, dict[str, float]] = {}
    for option, values in (("threshold", floors), ("min_absolute_change", absolute),
                           ("min_relative_change", relative)):
        for metric, value in _pairs(values, option):
            knobs.setdefault(metric, {})[option] = value
    return {metric: MetricThreshold(**given, greater_is_better=_greater_is_better(metric))
            for metric, given in knobs.items()}


def _greater_is_better(name: str) -> bool:
    """The direction of a metric named on the command line (any task's, or MLflow's name)."""
    from ferry.gate.metrics import ALIASES, METRICS

    known = {metric.name: metric for metrics in METRICS.values() for metric in metrics}
    found = known.get(ALIASES.get(name, name))
    if found is None:
        raise UsageError(f"no metric {name!r}; the metrics are {', '.join(known)}")
    return found.greater_is_better


def _pairs(values: list[str] | None, option: str) -> list[tuple[str, float]]:
    pairs = []
    for text in values or []:
        metric, _, number = text.partition("=")
        try:
            pairs.append((metric.strip(), float(number)))
        except ValueError:
            raise UsageError(f"--{option.replace('_', '-')} takes METRIC=NUMBER, got"
                             f" {text!r}") from None
    return pairs


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"--data {path}: no such file")
    return path


def _finish(result: GateResult, report: Path | None, json_output: bool) -> None:
    if report is not None:
        from ferry.gate.report import write_report

        write_report(report, result)
    if json_output:
        print_json(result.to_dict())
    else:
        _show(result)
    if not result.passed:
        raise typer.Exit(FAILURE_EXIT_CODE)


def _show(result: GateResult) -> None:
    _show_checks(f"{result.candidate} against {result.baseline} on {result.rows} rows",
                 ["check", "candidate", "baseline"], "gate", result)


def _show_checks(title: str, columns: list[str], what: str, result: Judged) -> None:
    """The checks as a table, then the verdict and the failed checks' names."""
    rows = [[c.name, _num(c.candidate), _num(c.baseline), c.condition, str(c.verdict)]
            for c in result.checks]
    print_table(title, [*columns, "condition", "verdict"], rows)
    stdout.print(f"{what} [bold]{result.status}[/]{_failure_line(result.failures())}",
                 highlight=False, soft_wrap=True)


def _failure_line(failures: list[Check]) -> str:
    return "" if not failures else ": " + ", ".join(check.name for check in failures)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


@handles_errors
def promote_command(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str, typer.Argument(help="The alias to move, e.g. production.")],
    version: Annotated[int, typer.Argument(help="The version to move it to.")],
    data: Annotated[Path | None, typer.Option("--data", help="Hold-out rows for the gate.")]
    = None,
    label: Annotated[str | None, typer.Option("--label", help="Their label column.")] = None,
    slice_columns: SliceOption = None, sensitive: SensitiveOption = None,
    timing: TimingFlag = True, price: PriceOption = 0.05,
    override: Annotated[bool, typer.Option("--override", help="Move the alias even if the gate"
                                           " fails or is not run (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, kept in the alias's"
                                               " history.")] = None,
    report: ReportOption = None, json_output: JsonFlag = False,
) -> None:
    """Move ALIAS to VERSION if the gate passes against the version ALIAS holds now."""
    from ferry.gate.promote import promote

    with command_line():
        if (data is None) != (label is None):
            raise UsageError("give --data and --label together")
        done = promote(name, alias, version, _existing(data) if data else None, label,
                       override=override, reason=reason, slices=tuple(slice_columns or ()),
                       sensitive=sensitive, timing=_timing(timing, price))
    if done.result is not None and report is not None:
        from ferry.gate.report import write_report

        write_report(report, done.result)
    _show_promotion(done, json_output)
    if not done.moved and done.result is not None and not done.result.passed:
        raise typer.Exit(FAILURE_EXIT_CODE)


def _show_promotion(done: Any, json_output: bool) -> None:
    if json_output:
        print_json(done.to_dict())
        return
    if done.result is not None:
        _show(done.result)
    where = f"{done.name}@{done.alias}"
    if done.moved:
        note = f" (override: {done.reason})" if done.override else ""
        stdout.print(f"{where} moved from {done.from_version} to {done.to_version}{note}",
                     highlight=False, soft_wrap=True)
    elif done.from_version == done.to_version:
        stdout.print(f"{where} already holds {done.to_version}", highlight=False)
    else:
        stdout.print(f"{where} stays at {done.from_version}: the gate failed", highlight=False)


@handles_errors
def test_command(
    uri: Annotated[str, typer.Argument(help="The version: NAME:VERSION or NAME@alias.")],
    data: Annotated[Path | None, typer.Option("--data", help="Rows for the robustness tests"
                                              " (their label column is left out); for an"
                                              " image model, a .npy or .npz of images.")]
    = None,
    label: Annotated[str | None, typer.Option("--label", help="The label column of --data,"
                                              " if it has one.")] = None,
    robustness: Annotated[bool, typer.Option(help="Perturb the rows; saved failing rows are"
                                             " replayed first.")] = True,
    staleness: Annotated[bool, typer.Option(help="Age, and live metrics when labels came"
                                            " back.")] = True,
    stress: Annotated[bool, typer.Option(help="Highest request rate with p99 under"
                                         " --latency-target-ms.")] = True,
    latency_target_ms: Annotated[float, typer.Option("--latency-target-ms")] = 100.0,
    cases: Annotated[Path | None, typer.Option("--cases", help="Folder of regression cases"
                                               " (default $FERRY_HOME/cases).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the perturbations.")] = 0,
    json_output: JsonFlag = False,
) -> None:
    """Run a version's test suite (robustness, staleness, stress); exit 1 if a test fails."""
    from ferry.gate.compare import hold_out
    from ferry.gate.suite import TestOptions, keep_suite, run_suite
    from ferry.registry import Registry

    registry = Registry()
    with command_line():
        if latency_target_ms <= 0:
            raise UsageError("--latency-target-ms must be above 0")
        if robustness and data is None:
            raise UsageError("the robustness tests need rows: give --data (or --no-robustness)")
        version = registry.get(uri)
        images = _images(data, version) if data is not None and data.suffix in IMAGE_FILES \
            else None
        rows = None if data is None or images is not None else hold_out(_existing(data), label)
        options = TestOptions(robustness=robustness, staleness=staleness, stress=stress,
                              latency_target_ms=latency_target_ms, cases_dir=cases, seed=seed)
    result = run_suite(registry, version, rows, options, images)
    keep_suite(registry, version, result)
    if json_output:
        print_json(result.to_dict())
    else:
        _show_suite(result)
    if not result.passed:
        raise typer.Exit(FAILURE_EXIT_CODE)


IMAGE_FILES = (".npy", ".npz")


def _images(path: Path, version: Any) -> Any:
    """An image model's input tensor from a .npy file, or from a .npz's array named after
    the input (or its only array); never unpickled."""
    import numpy as np

    from ferry.gate.images import is_image_input

    inputs = version.signature.inputs
    if len(inputs) != 1 or not is_image_input(inputs[0].shape):
        raise UsageError(f"{version.uri} does not take images: give its rows as a table")
    try:
        loaded = np.load(_existing(path), allow_pickle=False)
    except ValueError as exc:
        raise UsageError(f"--data {path}: {exc}") from exc
    if path.suffix == ".npz":
        names = list(loaded.files)
        loaded = loaded[inputs[0].name if inputs[0].name in names else names[0]]
    return loaded


def _show_suite(result: Any) -> None:
    _show_checks(f"tests of {result.uri}", ["test", "value", "reference"], "tests", result)


def register(app: typer.Typer) -> None:
    """Add `compare`, `promote` and `test` to the `ferry` command line."""
    app.command("compare")(compare_command)
    app.command("promote")(promote_command)
    app.command("test")(test_command)
