"""`ferry feedback`, `ferry traffic` and `ferry log`: what the server's capture recorded, and
the true labels that arrive later. Each reads or writes the monitoring store
(`FERRY_MONITORING_URL`, else the embedded one under `FERRY_HOME`); the monitoring package is
imported when a command runs, not at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ferry.cli.output import (
    JsonFlag,
    UsageError,
    command_line,
    handles_errors,
    print_json,
    print_table,
    stdout,
    when,
)

if TYPE_CHECKING:
    from ferry.monitor.feedback import FeedbackResult
    from ferry.monitor.request_log import LoggedRequest
    from ferry.monitor.traffic import TrafficReport

UriArgument = Annotated[str, typer.Argument(help="The model: NAME (every version), NAME:3 or"
                                            " NAME@alias.")]
SinceOption = Annotated[str, typer.Option(help="How far back: a number and a unit (s, m, h,"
                                          " d), e.g. 30m, 24h, 7d.")]


@handles_errors
def feedback_command(
    uri: Annotated[str, typer.Argument(help="The model the requests went to (its version"
                                       " checks the labels): NAME, NAME:3 or NAME@alias.")],
    labels: Annotated[Path, typer.Argument(help="A CSV file with a header: id,row,label (row"
                                           " defaults to 0).")],
    json_output: JsonFlag = False,
) -> None:
    """Attach true labels to captured requests by request id (labels of requests the capture
    did not sample are skipped and counted)."""
    from ferry.monitor.feedback import feedback

    with command_line():  # a bad file, label or request id is the input's mistake: exit 2
        result = feedback(uri, labels)
    if json_output:
        print_json(result.to_dict())
        return
    stdout.print(f"attached {result.labels} labels to {result.model}; {result.matched} name a"
                 " sampled row" + _skipped(result), highlight=False)


def _skipped(result: FeedbackResult) -> str:
    if not result.skipped:
        return ""
    return (f"; skipped {result.skipped} labels of requests the capture did not sample, among"
            f" them {', '.join(result.skipped_ids)}")


@handles_errors
def traffic_command(
    uri: UriArgument,
    since: SinceOption = "1h",
    bucket: Annotated[str, typer.Option(help="Width of each bucket of the request rate, e.g."
                                        " 1m, 1h.")] = "1m",
    json_output: JsonFlag = False,
) -> None:
    """Requests per second, latency percentiles, payload sizes, datatypes and errors."""
    from ferry.monitor.durations import parse_duration
    from ferry.monitor.traffic import check_buckets, traffic
    from ferry.uri import ModelURI

    with command_line():
        ModelURI.parse(uri)
        span, width = parse_duration(since, "--since"), parse_duration(bucket, "--bucket")
        check_buckets(span, width, "--bucket")
    with stdout.status("reading the captured requests", spinner="dots"):
        report = traffic(uri, since=span, bucket=width)
    if json_output:
        print_json(report.to_dict())
        return
    _show_traffic(report)


def _show_traffic(report: TrafficReport) -> None:
    which = "every version" if report.version is None else f"version {report.version}"
    latency, sent, answered = report.latency, report.request_bytes, report.response_bytes
    stdout.print(f"{report.model} ({which}) from {when(report.start)} to {when(report.end)} UTC",
                 highlight=False)
    print_table("totals", ["measure", "value"], [
                    ("requests", report.requests),
                    ("requests/s", f"{report.per_second:.2f}"),
                    ("error rate", f"{report.error_rate:.1%}"),
                    ("statuses", _mix(report.statuses)),
                    ("latency p50 / p95 / p99 ms", "-" if latency is None else
                     f"{latency.p50_ms:.1f} / {latency.p95_ms:.1f} / {latency.p99_ms:.1f}"),
                    ("request bytes mean / p95", "-" if sent is None else
                     f"{sent.mean:,.0f} / {sent.p95:,.0f}"),
                    ("response bytes mean / p95", "-" if answered is None else
                     f"{answered.mean:,.0f} / {answered.p95:,.0f}"),
                    ("input datatypes", _mix(report.datatypes)),
                ])
    print_table(f"per {report.bucket_s:g} s", ["from", "requests", "requests/s", "errors"],
                [(when(b.start), b.requests, f"{b.per_second:.2f}", b.errors)
                 for b in report.buckets])


def _mix(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "-"


@handles_errors
def log_command(
    uri: UriArgument,
    since: SinceOption = "1h",
    status: Annotated[str | None, typer.Option(help="Only requests that ended so: ok,"
                                               " invalid_input, not_found, timeout, ...")] = None,
    limit: Annotated[int, typer.Option(help="The newest this many requests.")] = 50,
    json_output: JsonFlag = False,
) -> None:
    """The captured requests, newest last: time, id, version, status, latency, size."""
    from ferry.monitor.durations import parse_duration
    from ferry.monitor.request_log import check_status, request_log
    from ferry.uri import ModelURI

    with command_line():
        ModelURI.parse(uri)
        span = parse_duration(since, "--since")
        check_status(status, "--status")
        if limit < 1:
            raise UsageError(f"--limit {limit}: give at least 1")
    requests = request_log(uri, since=span, status=status, limit=limit)
    if json_output:
        print_json([request.to_dict() for request in requests])
        return
    _show_log(uri, requests)


def _show_log(uri: str, requests: list[LoggedRequest]) -> None:
    print_table(f"requests to {uri}", [
        "time (UTC)", "request id", "version", "alias", "protocol", "status", "ms", "batch",
        "bytes in/out"], [
        (when(r.ts), r.request_id, r.version, r.alias, r.protocol, r.status,
         f"{r.latency_ms:.1f}", r.batch_size, f"{r.request_bytes:,}/{r.response_bytes:,}")
        for r in requests])


def register(app: typer.Typer) -> None:
    app.command("feedback")(feedback_command)
    app.command("traffic")(traffic_command)
    app.command("log")(log_command)
