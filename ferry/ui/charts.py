"""Charts as inline SVG, drawn here in Python: nothing is fetched and no script runs.

    line_chart     time series (requests per minute, one line per version)
    paired_bars    two distributions side by side (a column's reference and current shares)
    verdict_strip  a grid of verdicts, one row per column and one cell per window

Each chart is an `<svg role="img">` with a `<title>` and an `aria-label` saying what it shows;
series differ by dash pattern or fill as well as by colour, verdicts carry a symbol, and the
pages print the same numbers in a table beside each chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

COLOURS = ("#0b5cad", "#b00020", "#1b6e20", "#8a5a00", "#5b2a86", "#00696b")
"""Line and bar colours, each at least 4.5:1 against white."""
DASHES = ("", "7 4", "2 3", "10 3 2 3", "4 2", "1 2")
"""A dash pattern per line, so two lines differ without colour."""
REFERENCE_COLOUR, CURRENT_COLOUR = "#0b5cad", "#b34700"
VERDICT_STYLES = {"ok": ("#d7ecd9", "\u2713"), "warn": ("#fbe7b5", "!"),
                  "drift": ("#f6c4cb", "\u2717"), "insufficient_data": ("#e4e4e4", "?")}
"""Cell fill and symbol of each verdict; an unknown one is drawn blank."""
MAX_TICKS = 6
LABEL_CHARS = 28
"""Longest row or bar label drawn; longer ones are cut with an ellipsis (the table has them
whole)."""
CELL = 24
STRIP_MIN_WIDTH = 400
"""Room for the strip's legend however few windows it shows."""


@dataclass(frozen=True)
class Line:
    """One series of a line chart: a name for its legend and a value per x position."""

    name: str
    values: Sequence[float]


@dataclass(frozen=True)
class Cell:
    """One verdict of the strip and the sentence its tooltip shows."""

    verdict: str
    tooltip: str


@dataclass(frozen=True)
class Frame:
    """Where the plot sits inside the picture."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def inner_width(self) -> float:
        """Width of the plot area."""
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> float:
        """Height of the plot area."""
        return self.height - self.top - self.bottom

    def y(self, value: float, top: float) -> float:
        """The vertical position of `value` on an axis from 0 to `top`."""
        return self.top + self.inner_height * (1 - (value / top if top else 0.0))


def nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for nothing)."""
    if not (value > 0 and math.isfinite(value)):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def figure(value: float | None, spec: str = ".3g") -> str:
    """`value` formatted for a table; a dash for none (or not a number)."""
    if value is None or math.isnan(value):
        return "\u2013"
    return format(value, spec) if math.isfinite(value) else ("\u221e" if value > 0 else "-\u221e")


def number(value: float) -> str:
    """A short axis label: 1200 as 1.2k, 0.25 as 0.25."""
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:.3g}"


def _svg(frame: Frame, label: str, body: list[str]) -> Markup:
    """The picture: an accessible `<svg role="img">` around `body`."""
    text = escape(label)
    return Markup(f'<svg class="chart" role="img" aria-label="{text}" width="{frame.width}"'
                  f' height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}"'
                  f' xmlns="http://www.w3.org/2000/svg"><title>{text}</title>'
                  + "".join(body) + "</svg>")


def _y_axis(frame: Frame, top: float) -> list[str]:
    """Grid lines and labels at 0, half and the top of the axis."""
    parts = []
    for value in (0.0, top / 2, top):
        y = frame.y(value, top)
        parts.append(f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}"'
                     f' y2="{y:.1f}" stroke="#c8c8c8"/><text x="{frame.left - 6}"'
                     f' y="{y + 4:.1f}" text-anchor="end">{number(value)}</text>')
    return parts


def _ticks(count: int) -> list[int]:
    """At most `MAX_TICKS` positions spread over `count`, the first and last included."""
    if count <= MAX_TICKS:
        return list(range(count))
    step = (count - 1) / (MAX_TICKS - 1)
    return sorted({round(i * step) for i in range(MAX_TICKS)})


def _x(frame: Frame, index: int, count: int) -> float:
    """The horizontal position of point `index` of `count`, evenly spaced."""
    if count <= 1:
        return frame.left + frame.inner_width / 2
    return frame.left + frame.inner_width * index / (count - 1)


def line_chart(label: str, x_labels: Sequence[str], lines: Sequence[Line], *,
               width: int = 720, height: int = 240) -> Markup:
    """Lines over shared x positions (`x_labels`, evenly spaced), on an axis from 0."""
    frame = Frame(width, height, left=52, right=16, top=12, bottom=52)
    top = nice_top(max((v for line in lines for v in line.values), default=0.0))
    body = _y_axis(frame, top)
    for index in _ticks(len(x_labels)):
        body.append(f'<text x="{_x(frame, index, len(x_labels)):.1f}"'
                    f' y="{frame.height - frame.bottom + 16}" text-anchor="middle">'
                    f"{escape(x_labels[index])}</text>")
    for position, line in enumerate(lines):
        body.append(_polyline(frame, line, top, position))
    body.append(_legend(frame, [line.name for line in lines]))
    return _svg(frame, label, body)


def _polyline(frame: Frame, line: Line, top: float, position: int) -> str:
    """One line, with its colour and dash pattern by position."""
    count = len(line.values)
    points = " ".join(f"{_x(frame, i, count):.1f},{frame.y(v, top):.1f}"
                      for i, v in enumerate(line.values))
    dash = DASHES[position % len(DASHES)]
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<polyline fill="none" stroke="{COLOURS[position % len(COLOURS)]}"'
            f' stroke-width="2"{dashes} points="{points}"><title>{escape(line.name)}</title>'
            "</polyline>")


def _legend(frame: Frame, names: Sequence[str]) -> str:
    """A swatch of each line's colour and dash, and its name, along the bottom."""
    parts, x, y = [], float(frame.left), frame.height - 10
    for position, name in enumerate(names):
        dash = DASHES[position % len(DASHES)]
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{x:.0f}" x2="{x + 26:.0f}" y1="{y - 4}" y2="{y - 4}"'
                     f' stroke="{COLOURS[position % len(COLOURS)]}" stroke-width="2"{dashes}/>'
                     f'<text x="{x + 31:.0f}" y="{y}">{escape(_cut(name))}</text>')
        x += 46 + 7 * len(_cut(name))
    return "".join(parts)


def paired_bars(label: str, categories: Sequence[str], reference: Sequence[float],
                current: Sequence[float], *, width: int = 720, height: int = 280) -> Markup:
    """Two bars per category: the reference's share filled, the current one's outlined."""
    frame = Frame(width, height, left=52, right=16, top=12, bottom=92)
    top = nice_top(max([*reference, *current], default=0.0))
    body = _y_axis(frame, top)
    slot = frame.inner_width / max(len(categories), 1)
    for index, name in enumerate(categories):
        left = frame.left + index * slot
        body.append(_bar(frame, left + slot * 0.1, slot * 0.38, reference[index], top,
                         f"{name}: reference {reference[index]:.1%}", filled=True))
        body.append(_bar(frame, left + slot * 0.52, slot * 0.38, current[index], top,
                         f"{name}: current {current[index]:.1%}", filled=False))
        body.append(_category_label(frame, left + slot / 2, name))
    body.append(_bar_legend(frame))
    return _svg(frame, label, body)


def _bar(frame: Frame, x: float, width: float, value: float, top: float, title: str,
         *, filled: bool) -> str:
    """One bar from the axis up to `value`, with its figure as a tooltip."""
    y = frame.y(value, top)
    base = frame.height - frame.bottom
    style = (f'fill="{REFERENCE_COLOUR}"' if filled else
             f'fill="#ffffff" stroke="{CURRENT_COLOUR}" stroke-width="2"')
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 1):.1f}"'
            f' height="{max(base - y, 0):.1f}" {style}><title>{escape(title)}</title></rect>')


def _category_label(frame: Frame, x: float, name: str) -> str:
    """A bar's label, slanted under the axis."""
    y = frame.height - frame.bottom + 14
    return (f'<text x="{x:.1f}" y="{y}" text-anchor="end" transform="rotate(-35 {x:.1f}'
            f' {y})">{escape(_cut(name, 18))}</text>')


def _bar_legend(frame: Frame) -> str:
    """What a filled and an outlined bar stand for."""
    y = frame.height - 10
    return (f'<rect x="{frame.left}" y="{y - 10}" width="14" height="10"'
            f' fill="{REFERENCE_COLOUR}"/><text x="{frame.left + 19}" y="{y}">reference'
            f' (filled)</text><rect x="{frame.left + 140}" y="{y - 10}" width="14"'
            f' height="10" fill="#ffffff" stroke="{CURRENT_COLOUR}" stroke-width="2"/>'
            f'<text x="{frame.left + 159}" y="{y}">current (outlined)</text>')


def verdict_strip(label: str, rows: Sequence[str], windows: Sequence[str],
                  cells: Sequence[Sequence[Cell | None]]) -> Markup:
    """One row of cells per name in `rows`, one column per window (oldest on the left);
    `cells[r][w]` is None where that window judged no such column."""
    left = 12 + 7 * max((len(_cut(name)) for name in rows), default=4)
    frame = Frame(max(left + CELL * max(len(windows), 1) + 16, STRIP_MIN_WIDTH),
                  12 + CELL * len(rows) + 60, left=left, right=16, top=12, bottom=60)
    body = []
    for r, name in enumerate(rows):
        y = frame.top + r * CELL
        body.append(f'<text x="{left - 6}" y="{y + 17}" text-anchor="end">'
                    f"{escape(_cut(name))}</text>")
        body += [_verdict_cell(left + w * CELL, y, cell)
                 for w, cell in enumerate(cells[r]) if cell is not None]
    body.append(_strip_axis(frame, windows))
    body.append(_strip_legend(frame))
    return _svg(frame, label, body)


def _verdict_cell(x: float, y: float, cell: Cell) -> str:
    """One cell: the verdict's fill and symbol, its sentence as a tooltip."""
    fill, symbol = VERDICT_STYLES.get(cell.verdict, ("#ffffff", ""))
    return (f'<g><title>{escape(cell.tooltip)}</title><rect x="{x + 1}" y="{y + 1}"'
            f' width="{CELL - 2}" height="{CELL - 2}" fill="{fill}" stroke="#767676"/>'
            f'<text x="{x + CELL / 2}" y="{y + 17}" text-anchor="middle">{symbol}</text></g>')


def _strip_axis(frame: Frame, windows: Sequence[str]) -> str:
    """The first and last windows' times under the grid."""
    if not windows:
        return ""
    y = frame.height - frame.bottom + 16
    last = frame.left + CELL * len(windows)
    first = f'<text x="{frame.left}" y="{y}">{escape(windows[0])}</text>'
    if len(windows) == 1:
        return first
    return first + f'<text x="{last}" y="{y + 16}" text-anchor="end">{escape(windows[-1])}</text>'


def _strip_legend(frame: Frame) -> str:
    """Each verdict's fill and symbol, named."""
    parts, x, y = [], 12.0, frame.height - 8
    for verdict, (fill, symbol) in VERDICT_STYLES.items():
        parts.append(f'<rect x="{x:.0f}" y="{y - 12}" width="14" height="14" fill="{fill}"'
                     f' stroke="#767676"/><text x="{x + 7:.0f}" y="{y - 1}"'
                     f' text-anchor="middle">{symbol}</text><text x="{x + 19:.0f}"'
                     f' y="{y}">{verdict}</text>')
        x += 34 + 7 * len(verdict)
    return "".join(parts)


def _cut(text: str, limit: int = LABEL_CHARS) -> str:
    """`text`, cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
