"""`ferry optimize URI`: search the fastest variant that predicts the same, register it, and
write the report. The optimizer is imported when the command runs, not at start-up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
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
    stderr,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from ferry.optimizer import Gate, OptimizeResult, SearchProgress


def _bar(progress: Progress) -> SearchProgress:
    """The search's steps as a rich progress bar on stderr."""
    from ferry.optimizer import SearchProgress

    class Bar(SearchProgress):
        def __init__(self) -> None:
            self.task = progress.add_task("preparing", total=None)

        def start(self, total: int) -> None:
            progress.update(self.task, total=total)

        def advance(self, description: str) -> None:
            progress.update(self.task, advance=1, description=description)

    return Bar()


def _sizes(values: Sequence[str]) -> tuple[int, ...]:
    """Batch sizes from repeated options, each of which may also list sizes with commas."""
    texts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    shown = ",".join(values)
    try:
        sizes = tuple(int(text) for text in texts)
    except ValueError:
        raise UsageError(f"--batch-size {shown!r}: give numbers, e.g. --batch-size 1"
                         " --batch-size 64") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-size {shown!r}: give positive numbers, e.g. --batch-size 1"
                         " --batch-size 64")
    return sizes


def _gate(pairs: list[str] | None) -> Gate:
    """`--tolerance key=value` pairs over the default gate."""
    from ferry.optimizer import Gate

    gate = Gate()
    known = {f.name for f in fields(Gate)}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise UsageError(f"--tolerance {pair!r}: use KEY=VALUE with KEY one of"
                             f" {', '.join(sorted(known))}")
        try:
            gate = replace(gate, **{key: float(value)})
        except ValueError:
            raise UsageError(f"--tolerance {pair!r}: {value!r} is not a number") from None
    return gate


@handles_errors
def optimize_command(
    uri: Annotated[str, typer.Argument(help="The version to optimize: NAME, NAME:3 or"
                                       " NAME@alias.")],
    batch_size: Annotated[list[str] | None, typer.Option(
        "--batch-size", "--batch-sizes", help="A batch size to time; repeat for more (default 1"
        " and 64). The first one picks the winner.")] = None,
    threads: Annotated[int | None, typer.Option(help="Most intra-op threads to try (default:"
                                                " the cores this process may use).")] = None,
    lossless_only: Annotated[bool, typer.Option(help="Only exact candidates: no int8, bf16 or"
                                                " fp16.")] = False,
    tolerance: Annotated[list[str] | None, typer.Option(help="Gate threshold KEY=VALUE, e.g."
                                                        " lossy_min_label_agreement=0.999;"
                                                        " repeatable.")] = None,
    report: Annotated[Path, typer.Option(help="Markdown report (a .png chart and .json data"
                                         " are written next to it).")] =
    Path("optimize-report.md"),
    dry_run: Annotated[bool, typer.Option(help="Search and report, register nothing.")
                       ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Find, check and register the fastest variant of a model that predicts the same."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ferry.optimizer import optimize
    from ferry.optimizer.search import DEFAULT_BATCH_SIZES
    from ferry.uri import ModelURI

    with command_line():
        ModelURI.parse(uri)
        sizes = _sizes(batch_size) if batch_size else DEFAULT_BATCH_SIZES
        gate = _gate(tolerance)
        if threads is not None and threads < 1:
            raise UsageError(f"--threads {threads}: give at least 1")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                  "/{task.total}"), TimeElapsedColumn(), console=stderr,
                  transient=True) as progress:
        result = optimize(uri, batch_sizes=sizes, threads=threads, lossless_only=lossless_only,
                          gate=gate, report=report, register=not dry_run,
                          progress=_bar(progress))
    if json_output:
        print_json(result.to_dict())
        return
    _show(result)


def _show(result: OptimizeResult) -> None:
    from ferry.optimizer.search import Status

    size = result.batch_sizes[0]
    rows = []
    for entry in result.candidates:
        timing = entry.timings.get(size)
        rows.append([entry.label, entry.precision, entry.status,
                     f"{timing.median_s * 1e6:,.1f}" if timing else "-",
                     f"{timing.speedup:.2f}x" if timing and timing.speedup else "-",
                     entry.reason if entry.status != Status.PASSED else
                     (entry.verdict.summary() if entry.verdict else "")])
    print_table(f"{result.source.uri} at batch {size}",
                ["candidate", "precision", "status", "µs/call", "speed-up", "why / gate"], rows)
    if result.chosen is None:
        stderr.print("no candidate passed its gate: nothing registered")
    elif result.version is not None:
        stderr.print(f"registered {result.version.uri} ({result.chosen.label})")
    else:
        stderr.print(f"would register {result.chosen.label} (--dry-run)")
    stderr.print(f"report: {result.report_path}")


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize_command)
