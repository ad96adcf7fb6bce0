"""Checks for the server's settings: each failure is an `InvalidInputError` that names the
setting, the range it must be in and the value given."""

from __future__ import annotations

import math

from ferry.errors import InvalidInputError

MAX_PORT = 65535


def at_least(name: str, value: int, minimum: int, meaning: str) -> None:
    if value < minimum:
        raise InvalidInputError(f"{name} must be at least {minimum} ({meaning}), got {value}")


def positive(name: str, value: float, meaning: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise InvalidInputError(f"{name} must be a positive number of seconds ({meaning}),"
                                f" got {value}")


def not_negative(name: str, value: float, meaning: str) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise InvalidInputError(f"{name} must be 0 or more ({meaning}), got {value}")


def port(name: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_PORT:
        raise InvalidInputError(f"{name} must be a TCP port from 0 (any free port) to"
                                f" {MAX_PORT}, got {value}")


def within(name: str, values: tuple[int, ...], low: int, high: int, meaning: str) -> None:
    outside = [value for value in values if not low <= value <= high]
    if outside:
        raise InvalidInputError(f"{name} must lie within {low}..{high} ({meaning}), got"
                                f" {outside}")
