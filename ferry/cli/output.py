"""How the CLI shows things: rich tables for people, `--json` for scripts, errors on stderr.

Exit codes: 2 for a mistake on the command line (a bad flag, argument or typed value, as
click and argparse use it), 1 for every other failure (not found, conversion failed, a
server's or the registry's error, a bug). Either way the error is one line on stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ferry.errors import (
    FerryError,
    InvalidInputError,
    InvalidNameError,
    InvalidURIError,
    UnsafeFileError,
)

USAGE_EXIT_CODE = 2
"""Exit code for a mistake on the command line (as argparse and click use)."""
FAILURE_EXIT_CODE = 1
"""Exit code for a failure that is not the command line's: not found, conversion, server."""

JsonFlag = Annotated[bool, typer.Option("--json/--no-json", help="Print JSON for scripts"
                                        " (on stdout).")]


class UsageError(InvalidInputError):
    """A value typed on the command line that ferry cannot use (exit code 2)."""


TYPED_VALUE_ERRORS = (UsageError, InvalidNameError, InvalidURIError, UnsafeFileError)
"""Errors that only what the user typed causes: names, URIs, a pickle without --trust-pickle."""

stdout = Console()
stderr = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn errors into one line on stderr and exit code 2 (the command line's mistake) or 1
    (any other failure), never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except FerryError as exc:
            fail(str(exc), exit_code(exc))
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("FERRY_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set FERRY_DEBUG=1 for the"
                 " traceback)", FAILURE_EXIT_CODE)
        raise AssertionError("unreachable")

    return wrapper


def exit_code(error: FerryError) -> int:
    return USAGE_EXIT_CODE if isinstance(error, TYPED_VALUE_ERRORS) else FAILURE_EXIT_CODE


@contextmanager
def command_line() -> Iterator[None]:
    """Checks of what the user typed: an `InvalidInputError` raised inside is a usage error
    (exit code 2); the same error later, from files, models or servers, exits with 1."""
    try:
        yield
    except UsageError:
        raise
    except InvalidInputError as exc:
        raise UsageError(str(exc), model=exc.model, version=exc.version) from exc


def fail(message: str, code: int) -> NoReturn:
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
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
