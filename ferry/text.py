"""Checks on text from outside (paths, headers, forms) shared by every layer.

`str.isdigit()` is true for "²", "¹" and other Unicode digits that `int()` and `float()`
refuse, so a check made with it lets a user's typo through to a ValueError (a 500). Use these.
"""

from __future__ import annotations

MAX_NUMBER_DIGITS = 18
"""Digits a whole number from outside may have (it fits in 64 bits)."""


def is_whole_number(text: str) -> bool:
    """Whether `text` is a whole number written in ASCII digits, 1 to `MAX_NUMBER_DIGITS` of
    them (no sign, no spaces)."""
    return 0 < len(text) <= MAX_NUMBER_DIGITS and text.isascii() and text.isdigit()


def as_number(text: str) -> float | None:
    """`text` as a float, or None when it is not one."""
    try:
        return float(text)
    except ValueError:
        return None
