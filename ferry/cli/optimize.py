"""`ferry optimize URI`: search the fastest variant that predicts the same, register it, and
write the report."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ferry.cli.output import handles_errors, print_json, print_table, stderr
from ferry.errors import InvalidInputError
from ferry.optimizer import Gate, OptimizeResult, SearchProgress, optimize
from ferry.optimizer.search import DEFAULT_BATCH_SIZES, Status


class _Bar(SearchProgress):
    """The search's steps as a rich progress bar on stderr."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = progress.add_task("preparing", total=None)

    def start(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def advance(self, description: str) -> None:
        self.progress.update(self.task, advance=1, description=description)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInputError(f"--batch-sizes {text!r}: give numbers like 1,64") from None
    if not sizes or min(sizes) < 1:
        raise InvalidInputError(f"--batch-sizes {text!r}: give positive numbers like 1,64")
    return sizes


def _gate(pairs: list[str] | None) -> Gate:
    """`--tolerance key=value` pairs over the default gate."""
    gate = Gate()
    known = {f.name for f in fields(Gate)}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise InvalidInputError(f"--tolerance {pair!r}: use KEY=VALUE with KEY one of"
                                    f" {', '.join(sorted(known))}")
        try:
            gate = replace(gate, **{key: float(value)})
        except ValueError:
            raise InvalidInputError(f"--tolerance {pair!r}: {value!r} is not a number") from None
    return gate


@handles_errors
def optimize_command(
    uri: Annotated[str, typer.Argument(help="The version to optimize: NAME, NAME:3 or"
                                       " NAME@alias.")],
    batch_sizes: Annotated[str, typer.Option(help="Batch sizes to time; the first one picks"
                                             " the winner.")] =
    ",".join(map(str, DEFAULT_BATCH_SIZES)),
    threads: Annotated[int | None, typer.Option(help="Most intra-op threads to try (default:"
                                                " the cores this process may use).")] = None,
    lossless_only: Annotated[bool, typer.Option("--lossless-only", help="Only exact"
                                                " candidates: no int8, bf16 or fp16.")] = False,
    tolerance: Annotated[list[str] | None, typer.Option(help="Gate threshold KEY=VALUE, e.g."
                                                        " lossy_min_label_agreement=0.999;"
                                                        " repeatable.")] = None,
    report: Annotated[Path, typer.Option(help="Markdown report (a .png chart and .json data"
                                         " are written next to it).")] =
    Path("optimize-report.md"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Search and report, register"
                                          " nothing.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")
                           ] = False,
) -> None:
    """Find, check and register the fastest variant of a model that predicts the same."""
    sizes, gate = _sizes(batch_sizes), _gate(tolerance)
    if threads is not None and threads < 1:
        raise InvalidInputError(f"--threads {threads}: give at least 1")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                  "/{task.total}"), TimeElapsedColumn(), console=stderr,
                  transient=True) as progress:
        result = optimize(uri, batch_sizes=sizes, threads=threads, lossless_only=lossless_only,
                          gate=gate, report=report, register=not dry_run,
                          progress=_Bar(progress))
    if json_output:
        print_json(result.to_dict())
        return
    _show(result)


def _show(result: OptimizeResult) -> None:
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
