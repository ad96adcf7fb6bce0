"""`ferry export`: a registered version as a bundle another team runs without ferry, and
optionally as a Triton model repository entry.

Exit codes: 0 exported, 1 it failed (an unknown model, a version that runs natively and has
no ONNX form: one line says which), 2 a usage error (a non-empty directory without --force, a
batching option out of range). The export package is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ferry.cli.app import _registry
from ferry.cli.output import (
    JsonFlag,
    UsageError,
    command_line,
    handles_errors,
    print_json,
    stdout,
)
from ferry.serve.defaults import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_QUEUE_DELAY_S

if TYPE_CHECKING:
    from ferry.export import ExportResult
    from ferry.serve.batching import BatchSettings


@handles_errors
def export_command(
    uri: Annotated[str, typer.Argument(help="The version: NAME, NAME:VERSION or NAME@alias.")],
    directory: Annotated[Path, typer.Argument(help="The bundle's folder (created; must be"
                                              " empty unless --force).")],
    triton: Annotated[Path | None, typer.Option(
        "--triton", help="Also add the version to this Triton model repository:"
        " NAME/VERSION/model.onnx and NAME/config.pbtxt.")] = None,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Replace an earlier export"
                                        " in DIR (and the version's folder in --triton).")
                     ] = False,
    max_batch_size: Annotated[int | None, typer.Option(
        help=f"Triton's max_batch_size (default {DEFAULT_MAX_BATCH_SIZE}, as ferry serve).")
    ] = None,
    max_queue_delay_ms: Annotated[float | None, typer.Option(
        help="Triton's dynamic batching delay (default"
             f" {DEFAULT_MAX_QUEUE_DELAY_S * 1000:g} ms).")] = None,
    preferred_batch_size: Annotated[list[int] | None, typer.Option(
        help="Triton's preferred batch sizes (repeatable).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Export a version: model.onnx, signature.json, golden cases and a README in DIR."""
    from ferry.export.bundle import MARKER, export_bundle
    from ferry.export.staging import check_target
    from ferry.export.triton import check_repository
    from ferry.uri import ModelURI

    registry = _registry()
    with command_line():
        ModelURI.parse(uri)
        check_target(directory, force=force, marker=MARKER)
        batching = _batching(triton, max_batch_size, max_queue_delay_ms, preferred_batch_size)
        if triton is not None:
            check_repository(triton, registry.get(uri), force=force)
    result = export_bundle(uri, directory, registry=registry, triton=triton, force=force,
                           batching=batching)
    if json_output:
        print_json(result)
        return
    _summary(result)


def _batching(triton: Path | None, max_batch_size: int | None,
              max_queue_delay_ms: float | None,
              preferred: list[int] | None) -> BatchSettings | None:
    """Triton's batching from the options, given only with --triton."""
    from ferry.serve.batching import BatchSettings

    given = max_batch_size is not None or max_queue_delay_ms is not None or bool(preferred)
    if triton is None:
        if given:
            raise UsageError("--max-batch-size, --max-queue-delay-ms and"
                             " --preferred-batch-size set Triton's batching: add --triton")
        return None
    defaults = BatchSettings()
    return BatchSettings(
        max_batch_size=defaults.max_batch_size if max_batch_size is None else max_batch_size,
        max_queue_delay_s=(defaults.max_queue_delay_s if max_queue_delay_ms is None
                           else max_queue_delay_ms / 1000),
        preferred_batch_sizes=tuple(preferred or ()))


def _summary(result: ExportResult) -> None:
    stdout.print(f"exported {result.uri} to {result.directory}: {', '.join(result.files)}"
                 f" ({len(result.cases)} golden cases)", soft_wrap=True, highlight=False)
    if result.triton is not None:
        stdout.print(f"Triton repository {result.triton.repository}: {result.triton.model_file}"
                     f" and {result.triton.config_file}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `export` to the `ferry` command line."""
    app.command("export")(export_command)
