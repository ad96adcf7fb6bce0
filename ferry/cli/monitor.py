"""`ferry monitor` (has the traffic drifted from the reference?) and `ferry reference set`
(replace what it is measured against); each is one call into `ferry.monitor.api`."""

from __future__ import annotations

import importlib.util
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ferry.cli.output import (
    JsonFlag,
    UsageError,
    command_line,
    handles_errors,
    print_json,
    print_table,
    stderr,
    stdout,
    when,
)
from ferry.monitor.durations import parse_duration
from ferry.uri import ModelURI

if TYPE_CHECKING:
    from ferry.monitor.api import MonitoredWindow, MonitorReport
    from ferry.monitor.drift.base import DriftResult
    from ferry.monitor.store import MonitoringStore

reference_app = typer.Typer(help="The reference data drift is measured against.",
                            no_args_is_help=True)
VERDICT_STYLES = {"ok": "green", "warn": "yellow", "drift": "bold red", "critical": "bold red",
                  "insufficient_data": "dim"}
COLUMN_HEADINGS = ("column", "method", "statistic", "p-value", "PSI", "verdict")

UriArgument = Annotated[str, typer.Argument(help="NAME (latest), NAME:3 or NAME@ALIAS.")]


@handles_errors
def monitor(
    uri: UriArgument,
    since: Annotated[str, typer.Option(help="How far back to look: 30m, 24h, 7d.")] = "24h",
    window: Annotated[str | None, typer.Option(
        help="Judge windows this long (30m, 1h, 1d); default: the whole span as one.")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Also write an HTML report with reference and current distributions.")] = None,
    store: Annotated[str | None, typer.Option(
        help="Monitoring store URL (default: FERRY_MONITORING_URL, else the embedded one"
             " under FERRY_HOME).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Judge drift of URI's captured traffic against its reference profile, per window and
    column; results are kept in the monitoring store."""
    from ferry.monitor.api import monitor as judge
    from ferry.monitor.api import window_bounds

    with command_line():
        ModelURI.parse(uri)
        span = parse_duration(since, "--since")
        step = None if window is None else parse_duration(window, "--window")
        window_bounds(datetime.now(UTC), span, step)
        _check_report(report)
        closing = _store(store)  # a URL no store answers is the command line's mistake
    with stderr.status(f"judging drift of {uri}..."), closing as opened:
        result = judge(uri, since=span, window=step, store=opened, report=report)
    if json_output:
        print_json(result.to_dict())
        return
    _print_report(result)
    if report is not None:
        stdout.print(f"report written to {escape(str(report))}", highlight=False)


@reference_app.command("set")
@handles_errors
def set_reference(
    uri: UriArgument,
    data: Annotated[Path, typer.Argument(help="Reference rows: .csv, .parquet, .json, .npy,"
                                         " or .npz with one array per model input.")],
    json_output: JsonFlag = False,
) -> None:
    """Rebuild URI's reference profile from DATA (the version's outputs on it included) and
    make drift measure against it from now on."""
    from ferry.data import read_sample_file
    from ferry.monitor.api import set_reference as replace_reference

    with command_line():
        ModelURI.parse(uri)
        if not data.is_file():
            raise UsageError(f"no such file: {data} (DATA)")
        rows = read_sample_file(data)
        with stderr.status(f"profiling {data.name} for {uri}..."):
            version = replace_reference(uri, rows)
    if json_output:
        print_json(version)
        return
    stdout.print(f"reference of [bold]{version.uri}[/] set from {escape(data.name)}")


def _check_report(report: Path | None) -> None:
    if report is None:
        return
    if not report.parent.is_dir():
        raise UsageError(f"--report {report}: no such directory {report.parent}")
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--report needs matplotlib: pip install matplotlib")


def _store(url: str | None) -> AbstractContextManager[MonitoringStore | None]:
    """The store `--store` names, closed after the command; None: the API's default."""
    from ferry.monitor.store import open_store

    return nullcontext(None) if url is None else open_store(url)


def _print_report(result: MonitorReport) -> None:
    for window in result.windows[:-1]:
        _print_window_line(window)
    latest = result.latest
    stdout.print(f"[bold]{result.version.uri}[/] {when(latest.start)} to {when(latest.end)}"
                 f" UTC, {latest.rows} rows", highlight=False)
    _print_columns("inputs", latest.report.columns)
    _print_columns("outputs", latest.report.outputs)
    prediction = latest.report.prediction_verdict
    stdout.print(f"dataset: {_styled(str(latest.report.verdict))}"
                 f" ({latest.report.drift_share:.0%} of columns drift); predictions:"
                 f" {_styled(str(prediction) if prediction else 'none')}")
    age = result.staleness
    stdout.print(f"model age: {age.age_days:.1f} days ({_styled(str(age.level))})"
                 f"; live performance: {escape(str(result.performance or 'no labels yet'))}")


def _print_window_line(window: MonitoredWindow) -> None:
    drifting = [r.column for r in window.report.columns if str(r.verdict) == "drift"]
    stdout.print(f"{when(window.start)} to {when(window.end)}: {window.rows} rows,"
                 f" {_styled(str(window.report.verdict))}"
                 + (f" ({escape(', '.join(drifting))})" if drifting else ""), highlight=False)


def _print_columns(title: str, results: tuple[DriftResult, ...]) -> None:
    if results:
        print_table(title, COLUMN_HEADINGS, [
            (escape(r.column), r.method, _number(r.statistic), _number(r.p_value),
             _number(r.psi), _styled(str(r.verdict))) for r in results])


def _styled(verdict: str) -> str:
    style = VERDICT_STYLES.get(verdict, "")
    return f"[{style}]{verdict}[/]" if style else verdict


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
    app.add_typer(reference_app, name="reference")

