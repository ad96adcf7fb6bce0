"""How the CLI shows things: rich tables for people, `--json` for scripts, errors on stderr."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ferry.errors import FerryError

USAGE_EXIT_CODE = 2
"""Exit code for a mistake in what the user asked (as argparse and click use)."""
INTERNAL_EXIT_CODE = 1

stdout = Console()
stderr = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn ferry's errors into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except FerryError as exc:
            fail(str(exc), USAGE_EXIT_CODE)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("FERRY_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set FERRY_DEBUG=1 for the"
                 " traceback)", INTERNAL_EXIT_CODE)
        raise AssertionError("unreachable")

    return wrapper


def fail(message: str, code: int = USAGE_EXIT_CODE) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def plain(value: Any) -> Any:
    """JSON-friendly copies of records, enums and dates."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(plain(value), indent=2, default=str) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout.print(table)


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
