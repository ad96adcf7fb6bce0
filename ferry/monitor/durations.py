"""Spans of time as people type them on a command line: `90s`, `30m`, `24h`, `7d`.

Imports nothing heavy: `ferry monitor --help` and `ferry serve --help` read it.
"""

from __future__ import annotations

import re
from datetime import timedelta

from ferry.errors import InvalidInputError

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
MAX_DURATION = timedelta(days=3660)
"""Ten years: longer than any store keeps anything, short enough for datetime arithmetic."""


def parse_duration(text: str, flag: str, *, allow_zero: bool = False) -> timedelta:
    """`text` ("30m", "24h", "7d"; "0" too when `allow_zero`) as a timedelta; anything else
    is refused naming `flag`, the option the user typed it into."""
    if allow_zero and text.strip() == "0":
        return timedelta(0)
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidInputError(f"{flag} {text!r} is not a duration: write a number and a unit"
                                " (s, m, h or d), such as 30m, 24h or 7d")
    span = timedelta(**{UNITS[match[2]]: float(match[1])})
    if span <= timedelta(0) or span > MAX_DURATION:
        raise InvalidInputError(f"{flag} {text!r} must be above 0 and at most 3660d")
    return span


def show_duration(span: timedelta) -> str:
    """The shortest exact form `parse_duration` reads back: 600 s is "10m"."""
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
