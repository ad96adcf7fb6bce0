"""`ferry batch` scores a dataset into a warehouse table; `ferry runs` lists the runs.

Exit codes: 0 the run completed, 1 it failed (an unreadable file, repeated keys, a target
that refused the rows: one line says which), 2 a usage error (a flag, a missing or mistyped
column, reported before scoring starts). The batch package is imported when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ferry.cli.app import _registry
from ferry.cli.output import (
    JsonFlag,
    command_line,
    handles_errors,
    print_json,
    print_table,
    stderr,
    stdout,
    when,
)

if TYPE_CHECKING:
    from ferry.registry import BatchRun


class RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


class RowsProgress:
    """The batch's progress bar on stderr: rows, rows per second, time left."""

    def __init__(self, enabled: bool):
        self.progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                                 RowsPerSecond(), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=stderr, disable=not enabled)
        self.task = self.progress.add_task("scoring", total=None)

    def start(self, total_rows: int | None, done_rows: int) -> None:
        self.progress.update(self.task, total=total_rows, completed=done_rows)
        self.progress.start()

    def advance(self, rows: int) -> None:
        self.progress.advance(self.task, rows)

    def finish(self) -> None:
        self.progress.stop()


@handles_errors
def batch_command(
    uri: Annotated[str, typer.Argument(help="The version: NAME, NAME:VERSION or NAME@alias.")],
    input: Annotated[str, typer.Option("--input", "-i", help="Parquet, CSV or JSON-lines: a"
                                       " file, a folder, a glob or an fsspec URL (s3://...).")],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="A folder for Parquet files, PATH.duckdb#TABLE, or"
        " postgresql+psycopg://.../db#TABLE; by default the warehouse in $FERRY_HOME, a table"
        " named after the model.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="The column that identifies a row;"
                                            " stored predictions are served by it.")] = None,
    keep: Annotated[list[str] | None, typer.Option("--keep", help="An input column to copy"
                                                   " to the output (repeat for more).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="local or spark.")] = "local",
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (local)"
                                         " or cores (spark local[N]).")] = 1,
    threads: Annotated[int, typer.Option("--threads", help="Runtime threads per"
                                         " worker.")] = 1,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue the last"
                                         " unfinished run of this version, input and output"
                                         " from its last complete part.")] = False,
    spark_master: Annotated[str | None, typer.Option("--spark-master", help="A Spark"
                                                     " master URL (default local[WORKERS]).")
                            ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Score a dataset with a registered version into a warehouse table, as one run."""
    from ferry.batch import BatchOptions
    from ferry.batch.plan import plan_batch
    from ferry.batch.runner import run_plan

    registry = _registry()
    options = BatchOptions(input=input, output=output, key=key, keep=tuple(keep or ()),
                           engine=engine, workers=workers, threads=threads, resume=resume,
                           spark_master=spark_master)
    with command_line():
        plan = plan_batch(uri, options, registry)
    run = run_plan(plan, registry, RowsProgress(enabled=not json_output))
    if json_output:
        print_json(run)
        return
    _summary(run)


def _summary(run: BatchRun) -> None:
    seconds = run.duration_s or 0.0
    rate = run.rows / seconds if seconds > 0 else 0.0
    stdout.print(f"run {run.id}: scored {run.rows:,} rows with {run.uri} in {seconds:.1f} s"
                 f" ({rate:,.0f} rows/s) into {run.output}", soft_wrap=True, highlight=False)


@handles_errors
def runs_command(
    uri: Annotated[str, typer.Argument(help="A model NAME (every version) or NAME:VERSION.")],
    json_output: JsonFlag = False,
) -> None:
    """List a model's batch runs, newest first: input, output, rows, duration, status."""
    from ferry.uri import ModelURI

    with command_line():
        parsed = ModelURI.parse(uri)
    runs = _registry().runs(parsed.name, parsed.version)
    if json_output:
        print_json(runs)
        return
    print_table(f"batch runs of {uri}", ["run", "version", "status", "rows", "seconds",
                                         "started", "input", "output"],
                [_row(run) for run in runs])


def _row(run: BatchRun) -> list[Any]:
    seconds = "" if run.duration_s is None else f"{run.duration_s:.1f}"
    return [run.id, run.version, run.status, f"{run.rows:,}", seconds, when(run.started_at),
            run.input, run.output]


def register(app: typer.Typer) -> None:
    """Add `batch` and `runs` to the `ferry` command line."""
    app.command("batch")(batch_command)
    app.command("runs")(runs_command)
