"""A small horizontal bar chart as inline SVG (the optimization report's latency per candidate).

Drawn in Python, so the page needs no script or font from elsewhere; every text is escaped.
The chart is an image with a title and a text description listing every value, so a screen
reader gets the numbers too; the page shows the same numbers in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

LABEL_WIDTH = 190
"""Pixels left of the bars for their labels."""
BAR_WIDTH = 260
"""Pixels the longest bar takes."""
VALUE_WIDTH = 160
"""Pixels right of the bars for the value and its note."""
ROW_HEIGHT = 26
BAR_HEIGHT = 16
TOP = 8
MAX_LABEL_CHARS = 28
"""Longer labels are cut (the table beside the chart has them whole)."""


@dataclass(frozen=True)
class Bar:
    """One bar: what it is, its length (any non-negative number) and a note after the value."""

    label: str
    value: float
    note: str = ""
    highlight: bool = False
    """Drawn in the accent colour (the chosen candidate); the note says why as well."""


def bar_chart(bars: Sequence[Bar], *, title: str, unit: str, digits: int = 1) -> Markup:
    """`bars` as an SVG image, longest bar `BAR_WIDTH` pixels, value and unit after each."""
    largest = max((bar.value for bar in bars if bar.value > 0), default=1.0)
    height = TOP * 2 + ROW_HEIGHT * len(bars)
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    rows = "".join(_row(i, bar, largest, unit, digits) for i, bar in enumerate(bars))
    description = "; ".join(f"{bar.label}: {_value(bar, unit, digits)}" for bar in bars)
    return Markup(
        f'<svg class="bars" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>{rows}</svg>")


def _row(index: int, bar: Bar, largest: float, unit: str, digits: int) -> str:
    """One bar with its label on the left and its value on the right."""
    y = TOP + index * ROW_HEIGHT
    length = max(1.0, BAR_WIDTH * max(bar.value, 0.0) / largest)
    fill = "#0b5cad" if bar.highlight else "#6b7b8c"
    middle = y + BAR_HEIGHT / 2 + 4
    return (f'<text x="{LABEL_WIDTH - 8}" y="{middle:.1f}" text-anchor="end">'
            f"{escape(_cut(bar.label))}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}"'
            f' fill="{fill}"></rect>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{middle:.1f}">'
            f"{escape(_value(bar, unit, digits))}</text>")


def _value(bar: Bar, unit: str, digits: int) -> str:
    note = f" ({bar.note})" if bar.note else ""
    return f"{bar.value:,.{digits}f} {unit}{note}"


def _cut(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[:MAX_LABEL_CHARS - 1] + "…"
